import math

import numpy as np
import pytest

from models.rcf import KDA_DEFAULTS, RandomCutForestScorer


def _train(scorer, n=200, seed=1):
    rng = np.random.default_rng(seed)
    windows = [{"a": float(a), "b": float(b)} for a, b in rng.normal(size=(n, 2))]
    scorer.learn_many(windows)
    return windows


def test_kda_defaults_and_score_scale():
    # GIVEN a scorer at KDA's defaults
    scorer = RandomCutForestScorer(**KDA_DEFAULTS)
    # WHEN it has learned enough points
    _train(scorer, n=100)
    # THEN raw scores are on KDA's 0..log2(256) scale and the unit score divides by it
    assert scorer.max_score == pytest.approx(8.0)
    assert scorer.forest_.options()["lambda"] == pytest.approx(1 / 100_000)
    raw = scorer.score_many([{"a": 0.0, "b": 0.0}, {"a": 30.0, "b": 0.0}])
    assert 0 < raw[0] < raw[1] <= 8.0
    assert scorer.unit_score(raw) == pytest.approx(raw / math.log2(256))


def test_scores_zero_until_output_after():
    # GIVEN a fresh forest with output_after = 10
    scorer = RandomCutForestScorer(num_trees=10, sample_size=32, output_after=10)
    # WHEN it has learned fewer points THEN it scores 0 and is not ready
    _train(scorer, n=5)
    assert scorer.score_one({"a": 100.0, "b": 0.0}) == 0.0
    assert scorer.readiness == pytest.approx(0.5)


def test_shingled_attribution_is_per_feature():
    # GIVEN a shingled forest (3 windows per point)
    scorer = RandomCutForestScorer(num_trees=20, sample_size=64, shingle_size=3)
    _train(scorer)
    # WHEN an outlier in feature "a" is explained
    high, low = scorer.attribution_rows(np.array([[25.0, 0.0]]))
    # THEN attribution has one HIGH/LOW pair per feature and "a" dominates, upwards
    assert high.shape == low.shape == (1, 2)
    assert high[0, 0] > 5 * max(high[0, 1], low[0, 0])
