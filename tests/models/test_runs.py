"""Runs: evidence that builds up over windows moving the same way, kept only while it matters."""

import numpy as np
import pytest

from models.registry import PRESETS
from models.runs import Runs

DEFAULT_SIGNIFICANCE = PRESETS["rcf-level"]["significance"]


def _feed(runs, windows, expected=5.0, history=None):
    state, out = runs.decode([None]), []
    for observed in windows:
        state, p, went_on = runs.update(
            np.array([[observed]]), np.array([[expected]]), np.ones(1), state,
            history=None if history is None else np.array([[history]]),
        )
        out.append((float(p[0, 0]), bool(went_on[0, 0]), runs.encode(state)[0]))
    return out


def test_a_sustained_drop_builds_up_evidence():
    # GIVEN clicks expected 5 a window WHEN none arrive three windows running
    out = _feed(Runs(), [0.0, 0.0, 0.0])
    # THEN each window alone is ordinary but the run is not
    assert out[0][0] == pytest.approx(2 * np.exp(-5.0))  # two-sided
    assert out[2][0] == pytest.approx(2 * np.exp(-15.0))
    assert [went_on for _, went_on, _ in out] == [False, True, True]
    assert out[2][2] == [[0, 0.0, 15.0]]


def test_a_run_against_a_rate_measured_on_little_history_needs_more_evidence():
    # GIVEN clicks expected 5 a window, WHEN none arrive for three windows
    unknown = _feed(Runs(), [0.0, 0.0, 0.0])[2][0]
    # THEN against a rate measured on two windows' worth (10 clicks), the run is weak evidence
    short = _feed(Runs(), [0.0, 0.0, 0.0], history=10.0)[2][0]
    assert short > 1e-4 > unknown
    # AND against one measured on 39 windows (the baseline's memory), nearly as strong as if
    # the rate were known
    long = _feed(Runs(), [0.0, 0.0, 0.0], history=39 * 5.0)[2][0]
    assert unknown < long < 1e-5


def test_windows_without_a_click_build_a_run_no_single_one_could_start():
    # GIVEN about 2 expected clicks a window at a dispersion of 1.4, the rate measured on 39
    # windows (a broken ad at low volume)
    runs = Runs()
    state = runs.decode([None])
    for window in range(1, 11):
        # WHEN a window brings no click
        state, p, _ = runs.update(np.array([[0.0]]), np.array([[2.0]]), np.array([1.4]), state,
                                  history=np.array([[39 * 2.0]]))
        # THEN alone it is ordinary (one-sided tail 0.25, above keep_p), yet the run is kept
        if window == 1:
            assert p[0, 0] / 2 > runs.keep_p
        assert runs.encode(state)[0] == [[0, 0.0, 2.0 * window]]
    # AND ten in a row are significant at the default's level
    assert p[0, 0] <= DEFAULT_SIGNIFICANCE


def test_a_run_without_successes_is_not_kept_where_it_could_never_become_evidence():
    # GIVEN a bot share whose history saw no bot: 0.05 expected a window, the floor of what 39
    # windows could have missed (history 1.95 expected bots)
    runs = Runs()
    state = runs.decode([None])
    for _ in range(10):
        # WHEN window after window has no bot
        state, p, _ = runs.update(np.array([[0.0]]), np.array([[0.05]]), np.ones(1), state,
                                  history=np.array([[1.95]]))
        # THEN no run is stored: its tail could never fall below exp(-1.95) = 0.14 > keep_p
        assert runs.encode(state) == [None]
    assert p[0, 0] == 1.0


def test_a_window_on_the_other_side_ends_the_run():
    out = _feed(Runs(), [0.0, 0.0, 9.0])
    assert out[2][1] is False
    assert out[2][0] == pytest.approx(2 * 0.0681, abs=0.001)  # 2 P(X >= 9 | 5): this window alone


def test_ordinary_windows_store_nothing():
    # GIVEN ordinary noise around the expected value THEN no run is kept (empty state part)
    out = _feed(Runs(keep_p=0.1), [4.0, 6.0, 5.0, 3.0, 7.0])
    assert [part for _, _, part in out] == [None] * 5


def test_state_round_trips_and_rejects_a_foreign_width():
    runs = Runs()
    state, _, _ = runs.update(np.array([[0.0, 3.0]]), np.array([[6.0, 3.0]]), np.ones(2),
                              runs.decode([None], 2))
    parts = runs.encode(state)
    again = runs.decode(parts, 2)
    assert np.array_equal(again.observed, state.observed)
    assert np.array_equal(again.expected, state.expected)
    with pytest.raises(ValueError, match="run of feature 0 in an entity state of 0 features"):
        runs.decode(parts, 0)


def test_keep_p_is_validated():
    with pytest.raises(ValueError, match="keep_p"):
        Runs(keep_p=0.0)
