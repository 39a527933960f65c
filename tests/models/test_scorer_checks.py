"""The generic checks every scorer backend and every registered detector must pass."""

import numpy as np
import pytest

from models.backends import SCORER_TYPES, make_scorer
from models.detector import WindowDetector, score_batches
from models.registry import DETECTOR_NAMES, make_detector
from models.series import series_detector

SMALL = {
    "rcf": {"num_trees": 20, "sample_size": 64, "random_seed": 5},
    "hst": {"n_trees": 10, "height": 6, "window_size": 50, "limit": 6.0, "random_seed": 5},
    "iforest": {"n_estimators": 20, "max_samples": 64, "buffer": 128, "refit_every": 64,
                "random_state": 5},
    "ensemble": {"members": [
        {"kind": "rcf", "params": {"num_trees": 10, "sample_size": 32, "random_seed": 5}},
        {"kind": "hst", "params": {"n_trees": 5, "height": 5, "window_size": 50, "limit": 6.0}},
    ]},
    "supervised-forest": {"n_estimators": 20, "random_state": 5},
}


def _points(n, seed, outliers=0.0):
    """2-d standard normal windows; a fraction moved 6 sd away (label 1)."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 2))
    y = rng.random(n) < outliers
    x[y] += rng.choice([-6.0, 6.0], size=(int(y.sum()), 2))
    return [{"a": a, "b": b} for a, b in x], y


def _trained(kind, seed=0):
    scorer = make_scorer(kind, SMALL[kind])
    if kind == "supervised-forest":
        windows, y = _points(400, seed, outliers=0.1)
        scorer.fit(scorer.rows(windows), y)
    else:
        scorer.learn_many(_points(300, seed)[0])
    return scorer


def _auc(scores, labels):
    pos, neg = scores[labels], scores[~labels]
    return (pos[:, None] > neg[None, :]).mean() + 0.5 * (pos[:, None] == neg[None, :]).mean()


def test_every_backend_is_checked():
    assert set(SMALL) == set(SCORER_TYPES)


@pytest.mark.parametrize("kind", sorted(SCORER_TYPES))
def test_state_round_trip_gives_identical_scores(kind):
    # GIVEN a trained scorer and its copy through bytes
    scorer = _trained(kind)
    copy = type(scorer).from_bytes(scorer.to_bytes())
    probe, _ = _points(50, 9, outliers=0.2)
    # THEN both score alike, and still do after learning the same windows
    assert np.array_equal(scorer.score_many(probe), copy.score_many(probe))
    scorer.learn_many(probe)
    copy.learn_many(probe)
    assert np.array_equal(scorer.score_many(probe), copy.score_many(probe))


@pytest.mark.parametrize("kind", sorted(SCORER_TYPES))
def test_same_seed_same_scores(kind):
    probe, _ = _points(50, 9, outliers=0.2)
    assert np.array_equal(_trained(kind).score_many(probe), _trained(kind).score_many(probe))


@pytest.mark.parametrize("kind", sorted(SCORER_TYPES))
def test_better_than_chance_on_labelled_points(kind):
    scorer = _trained(kind)
    probe, labels = _points(200, 11, outliers=0.1)
    assert labels.sum() > 5
    assert _auc(scorer.score_many(probe), labels) > 0.8


@pytest.mark.parametrize("kind", sorted(SCORER_TYPES))
@pytest.mark.parametrize(
    ("window", "message"),
    [
        ({"a": float("nan"), "b": 0.0}, "not finite"),
        ({"a": 0.0, "b": 0.0, "c": 0.0}, "expected 2"),
        ({"a": 0.0}, "missing"),
    ],
)
def test_bad_input_raises_clear_error(kind, window, message):
    scorer = _trained(kind)
    with pytest.raises(ValueError, match=message):
        scorer.score_one(window)
    with pytest.raises(ValueError, match=message):
        scorer.learn_one(window)


@pytest.mark.parametrize("kind", sorted(SCORER_TYPES))
def test_bad_rows_raise_clear_error(kind):
    scorer = _trained(kind)
    with pytest.raises(ValueError, match="expected 2"):
        scorer.score_rows(np.zeros((3, 5)))
    with pytest.raises(ValueError, match="NaN"):
        scorer.score_rows(np.full((1, 2), np.nan))


# -- every registered detector, through the job's entry point ------------------------------


def _run(detector, stream, upto=None, states=None):
    states = dict(states or {})
    scores, labels = [], []
    for w, out in enumerate(score_batches(detector, stream.batches[:upto], states)):
        for e, verdict in out:
            scores.append(verdict.score)
            labels.append((e, w) in stream.labels)
    return np.array(scores), np.array(labels), states


@pytest.fixture(scope="module", params=DETECTOR_NAMES)
def detector_run(request, click_stream):
    detector = make_detector(request.param)
    return request.param, detector, _run(detector, click_stream)


def test_detector_better_than_chance_on_the_click_stream(detector_run):
    name, _, (scores, labels, _) = detector_run
    assert _auc(scores, labels) > 0.75, name


def test_detector_round_trip_and_seed(detector_run, click_stream):
    # GIVEN the detector part-way through the stream, and a copy through bytes
    name, _, _ = detector_run
    head = make_detector(name)
    _, _, states = _run(head, click_stream, upto=45)
    copy = WindowDetector.from_bytes(head.to_bytes())
    # WHEN both see the next windows THEN their verdicts are identical
    rest = type(click_stream)(batches=click_stream.batches[45:60])
    a = _run(head, rest, states=states)
    b = _run(copy, rest, states=states)
    assert np.array_equal(a[0], b[0])
    assert a[2] == b[2]
    # AND a fresh detector with the same seed repeats the whole run
    again = _run(make_detector(name), click_stream)
    assert np.array_equal(again[0], detector_run[2][0])


@pytest.mark.parametrize(
    ("window", "message"),
    [({"value": float("nan")}, "not finite"), ({"other": 1.0}, "missing"),
     ({"value": 1.0, "x": 2.0}, "unexpected")],
)
def test_detector_bad_input(detector_run, window, message):
    name, _, _ = detector_run
    det = series_detector(name)  # {"value": v} windows: a preset naming its columns scores value
    det.process([(None, {"value": 1.0})])
    with pytest.raises(ValueError, match=message):
        det.process([(None, window)])
