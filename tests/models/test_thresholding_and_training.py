import functools

import numpy as np
import pytest
import skops.io as sio

from models import artifacts
from models.detector import WindowDetector, score_batches
from models.registry import make_detector
from models.supervised_forest import SupervisedForestScorer
from models.threshold import AdaptiveThreshold
from models.training import labelled_inputs, train_supervised_forest


def _small(**params):
    return WindowDetector(
        scorer_params={"num_trees": 20, "sample_size": 32, "random_seed": 3},
        threshold_params={"settle": 5},
        warmup=5,
        **params,
    )


def _feed(detector, values, state=None):
    states = {} if state is None else {"s": state}
    verdicts = [v for [(_, v)] in score_batches(detector, ([("s", {"value": v})] for v in values),
                                                 states)]
    return verdicts, states.get("s")


def _steady(n=60, seed=0):
    return list(100 + np.random.default_rng(seed).normal(0, 3, n))


def test_adaptive_threshold_follows_the_scores_and_grades():
    # GIVEN scores around 0.2 WHEN learned THEN the threshold sits above them
    t = AdaptiveThreshold(z=3.0, floor=0.05, alpha=0.05, settle=10)
    t.learn(np.random.default_rng(0).normal(0.2, 0.02, 500))
    assert 0.23 < t.value < 0.3
    assert t.confidence == 1.0
    assert t.grade(np.array([t.value, 2 * t.value, 0.0])).tolist() == [0.0, 1.0, 0.0]
    with pytest.raises(ValueError, match="floor"):
        AdaptiveThreshold(floor=2.0)


def test_small_relative_changes_are_suppressed():
    # GIVEN a very steady series WHEN it moves by 3 % THEN the forest may score it high,
    # but with min_relative_change=0.05 it is not flagged
    values = [100.0 + 0.01 * (i % 3) for i in range(60)]
    plain, _ = _feed(_small(), [*values, 103.0])
    suppressed, _ = _feed(_small(min_relative_change=0.05), [*values, 103.0])
    assert plain[-1].is_anomaly
    assert not suppressed[-1].is_anomaly


def test_hold_off_flags_an_episode_once_unless_it_worsens():
    values = _steady()
    episode = [125.0, 125.0, 125.0, 900.0]
    plain, _ = _feed(_small(), values + episode)
    held, _ = _feed(_small(hold_off=10, z_clip=1000.0), values + episode)
    assert [v.is_anomaly for v in plain[-4:]][:2] == [True, True]
    assert [v.is_anomaly for v in held[-4:]] == [True, False, False, True]


def test_not_learning_flagged_windows_keeps_the_forest_sensitive():
    values = _steady()
    spikes = [400.0] * 6
    learning, _ = _feed(_small(), values + spikes)
    frozen, _ = _feed(_small(learn_flagged=False), values + spikes)
    assert frozen[-1].score > learning[-1].score


def test_supervised_forest_trained_from_labelled_windows(tmp_path, click_stream):
    # GIVEN the level inputs of a labelled stream
    rows, labels = labelled_inputs(make_detector("rcf-level"), click_stream.batches,
                                   click_stream.labels)
    assert rows.shape[1] == 12 and labels.sum() > 20
    # WHEN a forest is trained and saved as a skops artefact
    names = make_detector("rcf-level").scorer_inputs(
        [(None, dict(click_stream.batches[0][0][1]))]
    ).shape[1]
    artifact = tmp_path / "rf.skops"
    train_supervised_forest(rows, labels, [f"f{i}" for i in range(names)], artifact,
                            n_estimators=30)
    # THEN a detector built on it loads the artefact (pinned by its SHA-256) and separates
    # the classes
    pin = artifacts.file_sha256(artifact)
    scorer = SupervisedForestScorer.load(artifact, sha256=pin)
    proba = scorer.score_rows(rows)
    assert proba[labels == 1].mean() > 0.5 > proba[labels == 0].mean()
    det = make_detector("rcf-level", {"scorer": "supervised-forest",
                                      "scorer_params": {"artifact": str(artifact),
                                                        "artifact_sha256": pin}})
    assert det.scorer_.readiness == 1.0


def test_artefacts_refuse_untrusted_types(tmp_path):
    # GIVEN a skops file holding a type outside the trusted list
    data = sio.dumps({"f": functools.partial(print, "hello")})
    assert sio.get_untrusted_types(data=data)
    # THEN loading refuses it, naming the type
    with pytest.raises(ValueError, match="untrusted types"):
        artifacts.loads(data)
