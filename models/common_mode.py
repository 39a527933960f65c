"""Moves the whole batch shares: when most entities' traffic moves together, the site moved.

A newsletter or a TV spot doubles every page's traffic at once. Judged one entity at a time,
each of them moved materially; judged together, none moved *against the others*. The
detector therefore also tests each count against its expected value scaled by the batch's
common move (:func:`common_ratio`), and calls a count material only when it moved against both
(:func:`models.detector.WindowDetector.material`). The common move can only take flags away:
an outage during a site-wide spike is still an outage, a crawl still moves its bot share.

A batch has a common move when at least ``quorum`` of its entities with enough traffic moved the
same way, each by at least ``min_relative_change`` of its expected traffic. Enough traffic is
``1 / min_relative_change²`` expected counts: there, counting noise (relative standard deviation
``1 / sqrt(n)``) is smaller than the change that matters, so a move that size is not noise.

>>> import numpy as np
>>> raw = np.array([[250.0], [240.0], [30.0], [0.0]])
>>> expected = np.array([[100.0], [100.0], [12.0], [100.0]])
>>> float(common_ratio(raw, expected, np.ones(4, bool), [-1], 0.3, 0.75))
2.45
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from models.significance import COUNT


def common_ratio(
    raw: np.ndarray,
    expected: np.ndarray,
    eligible: np.ndarray,
    plan: Sequence[int],
    min_relative_change: float,
    quorum: float,
) -> float:
    """The batch's common ratio of observed to expected traffic; 1.0 without a common move.

    Args:
        raw: the windows' features (rows).
        expected: each entity's expected features.
        eligible: rows that may vote (entities with enough history).
        plan: per feature, :data:`~models.significance.COUNT` for a count
            (:func:`~models.significance.significance_plan`); only counts are traffic.
        min_relative_change: the least move that counts, as a share of the expected traffic.
        quorum: the least share of the voting entities that must have moved the same way.

    Each row's traffic is the sum of its counts; the common ratio is the median of the voters'
    observed / expected traffic. Fewer than two voters, or no quorum: 1.0.

    >>> expected = np.full((3, 1), 100.0)
    >>> float(common_ratio(np.array([[250.0], [100.0], [90.0]]), expected, np.ones(3, bool),
    ...                    [-1], 0.3, 0.75))
    1.0
    """
    counts = np.asarray(plan) == COUNT
    if quorum <= 0 or min_relative_change <= 0 or not counts.any():
        return 1.0
    observed, usual = raw[:, counts].sum(axis=1), expected[:, counts].sum(axis=1)
    voters, ratio, up, down = votes(observed, usual, eligible, min_relative_change)
    if voters.sum() < 2:
        return 1.0
    if max(up.mean(), down.mean()) < quorum:
        return 1.0
    return float(np.median(ratio))


def votes(
    observed: np.ndarray, usual: np.ndarray, eligible: np.ndarray, min_relative_change: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Which entities vote on a common move, and which way each moved.

    An entity votes when it is ``eligible`` and expects enough traffic (``usual`` at least
    ``1 / min_relative_change²``); it moved up (down) when its ``observed / usual`` traffic is
    at least ``1 + min_relative_change`` (at most ``1 - min_relative_change``).

    Returns:
        ``(voters, ratio, up, down)``: ``voters`` masks the rows; ``ratio``, ``up`` and ``down``
        are the voters' observed / usual traffic and which way it moved.

    >>> voters, ratio, up, down = votes(np.array([26.0, 5.0, 8.0]), np.array([20.0, 4.0, 20.0]),
    ...                                 np.ones(3, bool), 0.3)
    >>> voters.tolist(), ratio.tolist(), up.tolist(), down.tolist()
    ([True, False, True], [1.3, 0.4], [True, False], [False, True])
    """
    voters = eligible & (usual >= 1.0 / min_relative_change**2)
    ratio = observed[voters] / usual[voters]
    return voters, ratio, ratio >= 1 + min_relative_change, ratio <= 1 - min_relative_change
