"""NAB-style scoring, written from the Numenta Anomaly Benchmark's published rules.

The rules (Lavin & Ahmad 2015; NAB's README):

* Each labelled anomaly has a *window* around it. A detection inside a window is a true positive,
  worth the scaled sigmoid of its position: ``2 * sigmoid(-5 * p) - 1`` where ``p`` runs from -1 at
  the window's left edge to 0 at its right edge, rescaled so the left edge is worth exactly 1.
  Only the best (earliest) detection of a window counts; a window with none costs ``fn`` weight.
* A detection outside every window is a false positive, costing ``fp`` weight times the same
  sigmoid of how far it lies past the end of the previous window, measured in that window's
  width (-1 if no window precedes it or it is 3 widths or more past one).
* The first 15 % of each file (at most 750 rows) is a probationary period: nothing there counts,
  and a window lying entirely inside it does not count either.
* Profiles weigh the outcomes: standard (tp 1, fp 0.11, fn 1), reward_low_FP_rate (tp 1, fp 0.22,
  fn 1), reward_low_FN_rate (tp 1, fp 0.11, fn 2).
* The corpus score is normalised to 100 * (raw - null) / (perfect - null), where the null detector
  flags nothing (every window missed) and the perfect one flags each window's first row.

With a detector's own 0/1 flags, detections are the flagged rows. With a threshold on the anomaly
score, detections are the rows whose score is at or above it; :func:`best_threshold` finds the
single threshold for the whole corpus that maximises the profile's score.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

PROBATION_PERCENT = 0.15


@dataclass(frozen=True)
class Profile:
    """Weights of a true positive, a false positive and a false negative."""

    tp: float
    fp: float
    fn: float


PROFILES: dict[str, Profile] = {
    "standard": Profile(tp=1.0, fp=0.11, fn=1.0),
    "reward_low_FP_rate": Profile(tp=1.0, fp=0.22, fn=1.0),
    "reward_low_FN_rate": Profile(tp=1.0, fp=0.11, fn=2.0),
}


def scaled_sigmoid(position: float) -> float:
    """NAB's reward curve: 0.9866 at -1 (window start), 0 at 0 (window end), -1 from 3 on.

    >>> round(scaled_sigmoid(-1.0), 5), scaled_sigmoid(0.0), scaled_sigmoid(3.0)
    (0.98661, 0.0, -1.0)
    """
    if position >= 3.0:
        return -1.0
    return 2.0 / (1.0 + math.exp(5.0 * position)) - 1.0


def probationary_length(rows: int) -> int:
    """Rows at the start of a file that are not scored: 15 %, at most 750.

    >>> probationary_length(4032), probationary_length(20), probationary_length(10_000)
    (604, 3, 750)
    """
    return int(min(math.floor(PROBATION_PERCENT * rows), PROBATION_PERCENT * 5000))


@dataclass(frozen=True)
class LabelledSeries:
    """Per-row scoring terms of one file, independent of any detector.

    Attributes:
        window: index of the row's window, -1 outside every window.
        reward: unweighted true-positive reward of a detection on the row (inside windows).
        penalty: unweighted false-positive value of a detection on the row (outside, <= 0).
        scorable: whether the row is past the probationary period.
        windows: number of windows that count (have a scorable row).
    """

    window: np.ndarray
    reward: np.ndarray
    penalty: np.ndarray
    scorable: np.ndarray
    windows: int


def label_series(
    timestamps: Sequence[str] | np.ndarray, windows: Sequence[Sequence[str]]
) -> LabelledSeries:
    """Compute the scoring terms of a file from its timestamps and labelled windows.

    Timestamps and window limits are ``YYYY-MM-DD HH:MM:SS[.ffffff]`` strings (NAB's layout); a row
    belongs to a window when ``start <= timestamp <= end``.

    >>> ts = [f"2020-01-01 00:{m:02d}:00" for m in range(20)]
    >>> s = label_series(ts, [["2020-01-01 00:08:00", "2020-01-01 00:11:00"]])
    >>> s.window[7:13].tolist(), s.windows, int(s.scorable.sum())
    ([-1, 0, 0, 0, 0, -1], 1, 17)
    """
    times = np.asarray(timestamps, dtype="datetime64[us]")
    n = len(times)
    window = np.full(n, -1, dtype=np.int64)
    reward = np.zeros(n)
    penalty = np.full(n, -1.0)
    max_tp = scaled_sigmoid(-1.0)
    spans = []
    for k, (start, end) in enumerate(windows):
        inside = np.flatnonzero(
            (times >= np.datetime64(start, "us")) & (times <= np.datetime64(end, "us"))
        )
        if not len(inside):
            continue
        left, right = int(inside[0]), int(inside[-1])
        width = right - left + 1
        window[left : right + 1] = k
        for i in range(left, right + 1):
            reward[i] = scaled_sigmoid(-(right - i + 1) / width) / max_tp
        spans.append((left, right, width))
    for _, right, width in spans:
        following = [s[0] for s in spans if s[0] > right]
        stop = following[0] if following else n
        for i in range(right + 1, stop):
            penalty[i] = scaled_sigmoid(abs(right - i) / max(width - 1, 1))
    penalty[window >= 0] = 0.0
    scorable = np.arange(n) >= probationary_length(n)
    counted = len(set(window[scorable & (window >= 0)].tolist()))
    return LabelledSeries(window, reward, penalty, scorable, counted)


def raw_score(series: LabelledSeries, detections: np.ndarray, profile: Profile) -> float:
    """A file's raw NAB score for boolean ``detections`` (one per row).

    >>> ts = [f"2020-01-01 00:{m:02d}:00" for m in range(20)]
    >>> s = label_series(ts, [["2020-01-01 00:08:00", "2020-01-01 00:11:00"]])
    >>> flags = np.zeros(20, dtype=bool); flags[8] = True
    >>> raw_score(s, flags, PROFILES["standard"])
    1.0
    """
    hits = np.asarray(detections, dtype=bool) & series.scorable
    total = float(profile.fp * series.penalty[hits & (series.window < 0)].sum())
    counted = set(series.window[series.scorable & (series.window >= 0)].tolist())
    for k in counted:
        in_window = hits & (series.window == k)
        total += profile.tp * series.reward[in_window].max() if in_window.any() else -profile.fn
    return total


def null_score(series: LabelledSeries, profile: Profile) -> float:
    """Raw score of the detector that flags nothing."""
    return -profile.fn * series.windows


def perfect_score(series: LabelledSeries, profile: Profile) -> float:
    """Raw score of the detector that flags each window's first row and nothing else."""
    return profile.tp * series.windows


def normalise(raw: float, null: float, perfect: float) -> float:
    """100 * (raw - null) / (perfect - null): null detector 0, perfect detector 100.

    >>> normalise(0.0, -2.0, 2.0)
    50.0
    """
    if perfect == null:
        raise ValueError("no labelled window counts in this corpus: the score is undefined")
    return 100.0 * (raw - null) / (perfect - null)


def threshold_curve(
    series: LabelledSeries, scores: np.ndarray, profile: Profile
) -> tuple[np.ndarray, np.ndarray]:
    """A file's raw score as a function of the threshold on its anomaly scores.

    Returns:
        ``(thresholds, totals)``: thresholds descending (the distinct scores of scorable rows);
        ``totals[j]`` is the raw score when rows scoring ``>= thresholds[j]`` are detections.
    """
    scores = np.asarray(scores, dtype=np.float64)
    rows = np.flatnonzero(series.scorable)
    rows = rows[np.argsort(-scores[rows], kind="stable")]
    best = {k: -profile.fn for k in set(series.window[rows].tolist()) if k >= 0}
    total = sum(best.values())
    thresholds: list[float] = []
    totals: list[float] = []
    for pos, i in enumerate(rows):
        k = int(series.window[i])
        if k < 0:
            total += profile.fp * series.penalty[i]
        else:
            gain = profile.tp * series.reward[i]
            if gain > best[k]:
                total += gain - best[k]
                best[k] = gain
        if pos + 1 == len(rows) or scores[rows[pos + 1]] != scores[i]:
            thresholds.append(float(scores[i]))
            totals.append(total)
    return np.array(thresholds), np.array(totals)


def best_threshold(
    corpus: Mapping[str, tuple[LabelledSeries, np.ndarray]], profile: Profile
) -> tuple[float, float]:
    """The one threshold over all files that maximises the corpus' raw score.

    Args:
        corpus: per file, its labelled series and anomaly scores.
        profile: the cost profile.

    Returns:
        ``(threshold, raw total)``; the threshold is ``inf`` when flagging nothing is best.
    """
    curves = [(s, *threshold_curve(s, scores, profile)) for s, scores in corpus.values()]
    candidates = np.unique(np.concatenate([c[1] for c in curves] + [np.array([np.inf])]))
    grand = np.zeros(len(candidates))
    for series, thresholds, totals in curves:
        # number of the file's thresholds >= candidate = index into its descending curve
        taken = len(thresholds) - np.searchsorted(thresholds[::-1], candidates, side="left")
        values = np.concatenate([[null_score(series, profile)], totals])
        grand += values[taken]
    j = int(np.argmax(grand))
    return float(candidates[j]), float(grand[j])
