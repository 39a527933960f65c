"""The ``rcf-kda`` preset is KDA's ``RANDOM_CUT_FOREST`` on the columns named, and
``scoring.detector_params`` (KDA's names or the detector's own) is checked key by key."""

import math

import krcf
import numpy as np
import pytest

from models.detector import score_batches
from models.registry import KDA_PARAMS, detector_params, make_detector

COLUMNS = ["ctr", "top_ip_share", "bot_share"]


def _windows(n_windows=160, n_entities=3, seed=0, spike_at=None):
    """Batches of ``n_entities`` windows (one per entity) of five features; with ``spike_at``,
    entity ``e1``'s ``bot_share`` jumps in that window."""
    rng = np.random.default_rng(seed)
    batches = []
    for w in range(n_windows):
        batch = []
        for e in range(n_entities):
            features = {
                "clicks": float(rng.poisson(20 * (e + 1))),
                "ctr": float(rng.uniform(0.01, 0.05)),
                "top_ip_share": float(rng.uniform(0.05, 0.1)),
                "bot_share": float(np.clip(rng.normal(0.02, 0.01), 0, 1)),
                "events": float(rng.poisson(100 * (e + 1))),
            }
            if w == spike_at and e == 1:
                features["bot_share"] = 0.6
            batch.append((f"e{e}", features))
        batches.append(batch)
    return batches


def kda_reference(
    rows, numberOfTrees=100, subSampleSize=256, timeDecay=100_000, shingleSize=1, seed=42
):
    """KDA's RANDOM_CUT_FOREST with krcf directly: per row, in stream order, its score and
    attribution computed before the row is added; 0 while the forest warms up (its first
    subSampleSize / 4 points)."""
    options = {
        "dimensions": rows.shape[1],
        "shingle_size": shingleSize,
        "num_trees": numberOfTrees,
        "sample_size": subSampleSize,
        "output_after": subSampleSize // 4,
        "random_seed": seed,
        "lambda": 1.0 / timeDecay,
    }
    if shingleSize > 1:
        options["internal_shingling"] = True
    forest = krcf.RandomCutForest(options)
    scores, attributions = [], []
    for row in rows:
        scores.append(forest.score(row))
        attributions.append(forest.attribution(row))
        forest.update(row)
    return np.array(scores), attributions


def _through_rcf_kda(batches, params=None):
    detector = make_detector("rcf-kda", params)
    return [verdict for out in score_batches(detector, batches) for _, verdict in out]


@pytest.mark.parametrize(
    "kda",
    [{}, {"numberOfTrees": 30, "subSampleSize": 64, "timeDecay": 1000, "shingleSize": 2}],
    ids=["KDA defaults", "KDA parameters set"],
)
def test_rcf_kda_scores_equal_kda_random_cut_forest_through_krcf(kda):
    """GIVEN windows of three entities per window_end and KDA's parameters (defaults, or set
    through detector_params with KDA's names)
    WHEN rcf-kda scores them through the job's entry point, and krcf scores the same rows of
    the named columns in the same order, each before it is added (same seed, same parameters)
    THEN the raw scores (KDA's ANOMALY_SCORE) are equal, warming-up zeros included, and the
    0..1 score is ANOMALY_SCORE / log2(subSampleSize)."""
    batches = _windows()
    verdicts = _through_rcf_kda(batches, detector_params("rcf-kda", kda))
    rows = np.array([[f[c] for c in COLUMNS] for batch in batches for _, f in batch])
    expected, _ = kda_reference(rows, **kda)
    raw = np.array([v.raw_score for v in verdicts])
    assert np.array_equal(raw, expected)
    # the forest warms up on subSampleSize / 4 points, the first once a shingle is full
    warm_up = kda.get("subSampleSize", 256) // 4 + kda.get("shingleSize", 1) - 1
    assert not raw[:warm_up].any() and raw[warm_up:].all()
    scale = math.log2(kda.get("subSampleSize", 256))
    assert np.allclose([v.score for v in verdicts], np.minimum(expected / scale, 1.0))


def test_rcf_kda_explains_a_flagged_row_as_random_cut_forest_with_explanation():
    """GIVEN rcf-kda past its warm-up and threshold settling
    WHEN one entity's bot_share jumps
    THEN that window is flagged, and its explanation has KDA's RANDOM_CUT_FOREST_WITH_EXPLANATION
    shape: per named column an ATTRIBUTION_SCORE (krcf's attribution of that row, high + low,
    summing to the row's ANOMALY_SCORE), a DIRECTION (HIGH / LOW) and a STRENGTH; and the alert
    kind names the column that moved."""
    batches = _windows(n_windows=200, spike_at=190)
    verdicts = _through_rcf_kda(batches)
    flagged = [i for i, v in enumerate(verdicts) if v.is_anomaly]
    spike = 190 * 3 + 1
    assert spike in flagged
    verdict = verdicts[spike]
    assert verdict.kind == "bot_share_high"
    assert sorted(verdict.explanation) == sorted(COLUMNS)
    for part in verdict.explanation.values():
        assert {"ATTRIBUTION_SCORE", "STRENGTH", "DIRECTION"} <= set(part)
        assert part["DIRECTION"] in {"HIGH", "LOW"}
        assert part["ATTRIBUTION_SCORE"] >= 0 and part["STRENGTH"] >= 0
    rows = np.array([[f[c] for c in COLUMNS] for batch in batches for _, f in batch])
    _, attributions = kda_reference(rows)
    reference = attributions[spike]
    for j, column in enumerate(COLUMNS):
        both = reference["high"][j] + reference["low"][j]
        assert verdict.explanation[column]["ATTRIBUTION_SCORE"] == pytest.approx(both)
    total = sum(part["ATTRIBUTION_SCORE"] for part in verdict.explanation.values())
    assert total == pytest.approx(verdict.raw_score)


def test_rcf_kda_preset_is_kda_at_its_defaults():
    """GIVEN the preset as registered THEN it is KDA's forest at KDA's defaults on the raw
    values of the click shares, row by row, learning every row."""
    det = make_detector("rcf-kda")
    assert (det.scorer_.num_trees, det.scorer_.sample_size) == (100, 256)
    assert (det.scorer_.time_decay, det.scorer_.shingle_size) == (100_000, 1)
    assert det.inputs == "raw" and det.columns == COLUMNS
    assert det.sequential and det.learn_flagged and det.learn_per_batch == 0
    assert det.gate_z == 0 and det.hold_off == 0


def test_detector_params_map_kda_names_onto_the_forest():
    """GIVEN KDA's four parameter names and a detector parameter by its own name
    WHEN they are read for rcf-kda THEN they land on the forest and the detector."""
    settings = {
        "numberOfTrees": 50,
        "subSampleSize": 128,
        "timeDecay": 5000,
        "shingleSize": 4,
        "columns": ["ctr"],
        "threshold_params": {"floor": 0.45},
    }
    params = detector_params("rcf-kda", settings)
    assert set(KDA_PARAMS) <= set(settings)
    det = make_detector("rcf-kda", params)
    assert (det.scorer_.num_trees, det.scorer_.sample_size) == (50, 128)
    assert (det.scorer_.time_decay, det.scorer_.shingle_size) == (5000, 4)
    assert det.columns == ["ctr"] and det.threshold_.floor == 0.45
    assert det.threshold_.z == 4.0  # the preset's other threshold settings stay


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"numberofTrees": 50}, "numberofTrees: unknown key"),
        ({"numberOfTrees": 0}, "numberOfTrees: .*num_trees must be an integer >= 1, got 0"),
        ({"numberOfTrees": "100"}, "numberOfTrees: .*num_trees must be an integer"),
        ({"subSampleSize": 2.5}, "subSampleSize: .*sample_size must be an integer"),
        ({"timeDecay": -1}, "timeDecay: .*time_decay must be > 0"),
        ({"shingleSize": 0}, "shingleSize: .*shingle_size must be an integer >= 1"),
        ({"columns": "ctr"}, "columns: .*non-empty list of distinct names"),
        ({"columns": ["ctr", "clickz"]}, r"columns: columns \['clickz'\] are not features"),
        ({"threshold_params": {"floor": 3}}, "threshold_params: .*floor must be in"),
        (
            {"numberOfTrees": 50, "scorer_params": {"num_trees": 60}},
            "scorer_params: sets scorer_params.num_trees a second time",
        ),
    ],
)
def test_detector_params_bad_key_or_value_is_named(settings, message):
    """GIVEN a bad key or value WHEN detector_params reads it THEN ValueError names the key."""
    with pytest.raises(ValueError, match=message):
        detector_params("rcf-kda", settings, ["clicks", "ctr", "top_ip_share", "bot_share"])


def test_detector_params_of_another_scorer_are_refused_by_name():
    """GIVEN KDA's forest parameters for a detector whose scorer is not a forest
    THEN the key is named with the scorer that refuses it."""
    with pytest.raises(ValueError, match=r"numberOfTrees: .*scorer 'ensemble': unknown parameter"):
        detector_params("ensemble-level", {"numberOfTrees": 50})
