"""The per-entity baseline: what an entity's expected features are after the windows it saw."""

import numpy as np
import pytest

from models.baseline import DEFAULT_ALPHA, EwmaBaseline
from models.features import FEATURE_NAMES

CTR = FEATURE_NAMES.index("ctr")


def _window(impressions: float, clicks: float) -> dict[str, float]:
    return {name: 0.0 for name in FEATURE_NAMES} | {
        "impressions": impressions,
        "clicks": clicks,
        "events": impressions + clicks,
        "ctr": clicks / impressions if impressions else 0.0,
    }


def _learn(baseline, windows, state=None):
    state = baseline.decode([None]) if state is None else state
    for window in windows:
        row = np.array([[window[name] for name in FEATURE_NAMES]])
        state = baseline.update(baseline.transform(row), state)
    return state


def _expected_ctr(baseline, state):
    return float(baseline.expected(state)[0, CTR])


def test_a_launched_ads_partial_first_window_weighs_as_the_impressions_it_holds():
    # GIVEN an ad launched just before a window's end: 1 click of 2 impressions, then ten
    # windows at 3 clicks in 100 impressions
    baseline = EwmaBaseline(FEATURE_NAMES)
    windows = [_window(2, 1)] + [_window(100, 3)] * 10
    # WHEN the baseline learns them
    state = _learn(baseline, windows)
    # THEN its expected ctr is about the pooled rate, 31 / 1002, not the mean of the windows'
    # rates (0.5 + 10 x 0.03) / 11 = 0.073
    assert _expected_ctr(baseline, state) == pytest.approx(0.03, abs=0.002)


def test_a_window_without_impressions_teaches_nothing_about_ctr():
    # GIVEN an ad at a steady 5 %
    baseline = EwmaBaseline(FEATURE_NAMES)
    state = _learn(baseline, [_window(100, 5)] * 40)
    before = _expected_ctr(baseline, state)
    # WHEN a window without impressions (ctr 0 by definition) is learned
    state = _learn(baseline, [_window(0, 0)], state)
    # THEN the expected ctr has not moved
    assert _expected_ctr(baseline, state) == pytest.approx(before)


def test_a_busy_window_teaches_no_faster_than_an_ordinary_one():
    # GIVEN an ad at a steady 3 %, its baseline warmed up (past its plain-mean windows)
    baseline = EwmaBaseline(FEATURE_NAMES)
    state = _learn(baseline, [_window(100, 3)] * 40)
    # WHEN an episode's window brings three times the impressions at twice the rate, and an
    # ordinary-sized one the same rate
    busy = _expected_ctr(baseline, _learn(baseline, [_window(300, 18)], state))
    ordinary = _expected_ctr(baseline, _learn(baseline, [_window(100, 6)], state))
    # THEN both move the expected ctr by the baseline's weight, no more
    assert busy == pytest.approx(ordinary)
    assert ordinary == pytest.approx(0.03 + DEFAULT_ALPHA * 0.03, rel=1e-3)


def test_state_round_trips_for_young_and_frozen_entities_in_one_batch():
    # GIVEN a batch of a new entity, one of 3 windows and one past its frozen level scale
    baseline = EwmaBaseline(list(FEATURE_NAMES), level_after=4)
    rng = np.random.default_rng(2)
    rows = rng.poisson(30, (8, 3, len(FEATURE_NAMES))).astype(float)
    learn = np.array([[False, True, True]] * 3 + [[False, False, True]] * 5)
    state = baseline.decode([None] * 3)
    for t in range(8):
        state = baseline.update(baseline.transform(rows[t]), state, learn=learn[t])
    assert state.count.tolist() == [0, 3, 8] and state.level_std[2].all()
    # WHEN it is encoded and decoded
    parts = baseline.encode(state)
    decoded = baseline.decode(parts)
    # THEN only the frozen entity stores levels, and every array comes back as its float32 value
    assert [len(part) for part in parts] == [2, 2, 3]
    for name in ("count", "mean", "var", "level_mean", "level_std"):
        expected = getattr(state, name)
        if name != "count":
            expected = expected.astype(np.float32).astype(np.float64)
        np.testing.assert_array_equal(getattr(decoded, name), expected)
