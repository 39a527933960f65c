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
