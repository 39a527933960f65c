import msgpack
import numpy as np
import pytest

from models.detector import Verdict, WindowDetector, score_batches
from models.registry import DEFAULT_DETECTOR, DETECTOR_NAMES, make_detector


def _small(**params):
    return WindowDetector(
        scorer_params={"num_trees": 20, "sample_size": 32, "random_seed": 3},
        threshold_params={"settle": 5},
        warmup=5,
        **params,
    )


def _run(detector, series, states=None):
    """Feed entity -> list of values, one window per step; returns verdicts per entity."""
    states = dict(states or {})
    verdicts = {e: [] for e in series}
    steps = len(next(iter(series.values())))
    batches = ([(e, {"value": v[t]}) for e, v in series.items()] for t in range(steps))
    for out in score_batches(detector, batches, states):
        for e, verdict in out:
            verdicts[e].append(verdict)
    return verdicts, states


def _series(n=60, seed=0):
    rng = np.random.default_rng(seed)
    return {f"s{i}": list(100 * (i + 1) + rng.normal(0, 5 * (i + 1), n)) for i in range(4)}


def test_registry_names_and_errors():
    assert DEFAULT_DETECTOR in DETECTOR_NAMES
    assert "rcf-kda" in DETECTOR_NAMES
    for name in DETECTOR_NAMES:
        assert make_detector(name).name == name
    with pytest.raises(ValueError, match="unknown detector 'nope'"):
        make_detector("nope")
    with pytest.raises(ValueError, match="unknown parameter 'bogus'"):
        make_detector("rcf-kda", {"bogus": 1})
    with pytest.raises(ValueError, match="warmup"):
        make_detector("rcf-kda", {"warmup": 0})
    with pytest.raises(ValueError, match="num_trees"):
        make_detector("rcf-kda", {"scorer_params": {"num_trees": -1}})
    with pytest.raises(ValueError, match="unknown parameter 'trees'"):
        make_detector("rcf-kda", {"scorer_params": {"trees": 5}})


def test_rcf_kda_preset_is_kda():
    det = make_detector("rcf-kda")
    assert (det.scorer_.num_trees, det.scorer_.sample_size) == (100, 256)
    assert (det.scorer_.time_decay, det.scorer_.shingle_size) == (100_000, 1)
    assert det.scorer_.max_score == pytest.approx(8.0)


def test_new_entity_is_not_flagged_and_has_no_confidence():
    # GIVEN a detector WHEN a never-seen entity arrives
    [(verdict, state)] = _small().process([(None, {"value": 5.0})])
    # THEN it gets a neutral verdict and a small state
    assert isinstance(verdict, Verdict)
    assert not verdict.is_anomaly
    assert verdict.confidence == 0.0 and verdict.kind == "" and verdict.explanation == {}
    assert 0 < len(state) < 200


def test_verdicts_in_order_and_flag_a_spike_with_explanation():
    # GIVEN four steady series of different scales
    det = _small()
    series = _series()
    # WHEN one of them spikes at the end
    series["s2"][-1] = series["s2"][-2] * 3
    verdicts, _ = _run(det, series)
    # THEN only that one is flagged, with a KDA-shaped explanation
    last = {e: v[-1] for e, v in verdicts.items()}
    assert [e for e, v in last.items() if v.is_anomaly] == ["s2"]
    v = last["s2"]
    assert v.kind == "value_high"
    assert 0 < v.score <= 1 and v.raw_score == pytest.approx(v.score * 5)  # log2(32)
    assert 0 < v.grade <= 1 and v.confidence == 1.0 and v.score > v.threshold
    expl = v.explanation["value"]
    assert expl["DIRECTION"] == "HIGH" and 0 <= expl["STRENGTH"] <= 1
    assert expl["ATTRIBUTION_SCORE"] > 0
    assert expl["value"] == pytest.approx(series["s2"][-1])
    assert expl["expected"] == pytest.approx(300, rel=0.1)


def test_scores_before_learning():
    # GIVEN a warmed detector and its saved state
    det = _small()
    series = _series()
    _, states = _run(det, {e: v[:-1] for e, v in series.items()})
    snapshot = WindowDetector.from_bytes(det.to_bytes())
    # WHEN the same batch is processed twice by copies
    batch = [(states[e], {"value": v[-1]}) for e, v in series.items()]
    first = [v.raw_score for v, _ in det.process(batch)]
    # THEN the scores equal the model's scores before it learned the batch
    rows = np.array([[v[-1]] for v in series.values()])
    baseline = snapshot.baseline_
    history = snapshot.entity_states([s for s, _ in batch]).baseline
    z = baseline.deviations(baseline.transform(rows), history)
    z = np.sign(z) * np.maximum(np.abs(np.clip(z, -10, 10)), 0)
    assert first == pytest.approx(list(snapshot.scorer_.score_rows(z)))


def test_state_round_trip_and_seed_give_identical_verdicts():
    # GIVEN a detector part-way through and a copy restored from its bytes
    series = _series()
    head = {e: v[:30] for e, v in series.items()}
    tail = {e: v[30:] for e, v in series.items()}
    det = _small()
    _, states = _run(det, head)
    copy = WindowDetector.from_bytes(det.to_bytes())
    # WHEN both continue on the same windows
    a, _ = _run(det, tail, states)
    b, _ = _run(copy, tail, states)
    # THEN verdicts are identical, and a fresh run with the same seed repeats them
    assert a == b
    c, _ = _run(_small(), series)
    d, _ = _run(_small(), series)
    assert c == d


@pytest.mark.parametrize(
    ("features", "message"),
    [
        ({"value": float("nan")}, "not finite"),
        ({"value": 1.0, "other": 2.0}, "unexpected: \\['other'\\]"),
        ({"valeu": 1.0}, "missing: \\['value'\\]"),
        ({"value": "high"}, "not a number"),
    ],
)
def test_bad_windows_raise_clear_errors(features, message):
    det = _small()
    det.process([(None, {"value": 1.0})])
    with pytest.raises(ValueError, match=message):
        det.process([(None, features)])


def test_state_of_another_shape_is_rejected():
    det = _small()
    [(_, state)] = det.process([(None, {"a": 1.0, "b": 2.0})])
    other = _small()
    other.process([(None, {"value": 1.0})])
    with pytest.raises(ValueError, match="entity state has 2 features, expected 1"):
        other.process([(state, {"value": 1.0})])


def test_empty_batch():
    assert _small().process([]) == []


def test_entity_state_of_an_older_layout_is_rejected():
    # GIVEN a warmed detector and entity states in layouts before the hold-off moved out (3) and
    # before the runs (4)
    det = _small()
    det.process([(None, {"value": 1.0})])
    layouts = [[3, 1, 0, 0.0, b"\0" * 16], [4, [1, b"\0" * 16], None]]
    for old in map(msgpack.packb, layouts):
        # WHEN it is processed THEN the error names the version
        with pytest.raises(ValueError, match=r"entity state version [34] is not 6 \(or 5\)"):
            det.process([(old, {"value": 1.0})])


def _as_version_5(state):
    """The entity state as version 5 wrote it: the baseline's four arrays always, in one blob."""
    _, (n, *blobs), holdoff, runs = msgpack.unpackb(state)
    levels = blobs[1] if len(blobs) == 2 else bytes(len(blobs[0]))
    return msgpack.packb([5, [n, blobs[0] + levels], holdoff, runs])


def test_a_young_entity_keeps_no_level_arrays_and_version_5_states_restore_alike():
    # GIVEN a detector that freezes an entity's level scale after 4 windows, and two entities'
    # states saved after 2 and after 6 windows
    rng = np.random.default_rng(1)
    det = WindowDetector(
        scorer_params={"num_trees": 20, "sample_size": 32, "random_seed": 3},
        baseline_params={"level_after": 4},
    )
    series = {e: list(rng.normal(50, 5, 6)) for e in ("young", "old")}
    _, young = _run(det, {"young": series["young"][:2]})
    _, old = _run(det, {"old": series["old"]})
    states = [young["young"], old["old"]]
    # THEN the young state is smaller by the two float32 arrays of its one feature (and the
    # 2-byte header of their blob)
    assert len(states[1]) - len(states[0]) == 2 * 4 + 2
    # WHEN the same states in version 5's layout are read THEN they decode to the same arrays
    now = det.entity_states(states).baseline
    before = det.entity_states([_as_version_5(s) for s in states]).baseline
    for field in ("count", "mean", "var", "level_mean", "level_std"):
        np.testing.assert_array_equal(getattr(now, field), getattr(before, field))
    assert now.level_std[1].all() and not now.level_std[0].any()


def test_columns_choose_what_the_shared_scorer_sees():
    """GIVEN a detector whose scorer sees only ``b`` of the windows' ``a``, ``b``
    WHEN ``b`` spikes THEN the scorer knows only ``b``, the flag's explanation names only ``b``,
    and every feature still has its baseline; AND naming a column the windows lack fails."""
    det = _small(columns=["b"], inputs="raw")
    rng = np.random.default_rng(0)
    state = None
    for _ in range(60):
        window = {"a": rng.normal(50, 5), "b": rng.normal(10, 1)}
        [(verdict, state)] = det.process([(state, window)])
    [(verdict, state)] = det.process([(state, {"a": 50.0, "b": 40.0})])
    assert det.scorer_.feature_names_ == ("b",) and det.scored_names == ("b",)
    assert verdict.is_anomaly and list(verdict.explanation) == ["b"]
    assert det.entity_states([state]).baseline.count.tolist() == [61]
    with pytest.raises(ValueError, match=r"columns \['c'\] are not features of the windows"):
        _small(columns=["c"]).process([(None, {"a": 1.0, "b": 2.0})])
    with pytest.raises(ValueError, match="columns must be a non-empty list"):
        _small(columns=[])


def test_sequential_scores_each_window_after_the_ones_before_it():
    """GIVEN a sequential detector WHEN it gets batches of four entities
    THEN its verdicts and states equal those of the same windows fed one per batch
    AND differ from a batch-wise detector's, which scores a batch before learning any of it."""
    series = _series(n=40)
    batches = [[(e, {"value": v[t]}) for e, v in series.items()] for t in range(40)]

    def run(detector, batches):
        states = {}
        verdicts = [v for out in score_batches(detector, batches, states) for _, v in out]
        return [v.raw_score for v in verdicts], states

    sequential = run(_small(sequential=True, inputs="raw"), batches)
    one_by_one = run(_small(inputs="raw"), [[window] for batch in batches for window in batch])
    batch_wise = run(_small(inputs="raw"), batches)
    assert sequential == one_by_one
    assert sequential[0] != batch_wise[0]
    with pytest.raises(ValueError, match="sequential must be True or False"):
        _small(sequential=1)
