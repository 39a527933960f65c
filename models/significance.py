"""Whether a window's features moved by more than counting noise allows, given its volume.

An ad with 8 expected impressions that gets 1 has not necessarily broken: at that volume such
dips happen by chance every few hundred windows. A page with 800 expected that gets 100 has.
The test here tells them apart with the tail probability of the observed value under the
entity's expected one, on the feature's own counting scale:

* a **count** ``x`` with expected ``mu`` is quasi-Poisson: ``x / phi ~ Poisson(mu / phi)``;
* a **proportion** ``s`` of a count ``n`` (``ctr`` of ``impressions``, ``bot_share`` of
  ``events``) with expected ``p`` is quasi-binomial: ``s n / phi ~ Binomial(n / phi, p)``;
* the busiest IP's share (:data:`models.features.MAXIMUM_SHARES`) is not tested (p-value 1): it
  is a maximum, whose usual value falls as the volume grows;

``phi`` (at least 1) is the *dispersion*: events come in bursts (a page view brings its
impressions from the same user and IP, a bot its requests), so counts and proportions vary more
than independent events would. For a count it is one number per feature; for a proportion it
grows with the count, ``phi = 1 + (n - 1) rho`` (beta-binomial: trials that come in clusters,
correlated by ``rho``), so a large page's bot share may wobble more than a binomial would while a
small one's does not. :class:`Dispersion` learns both from the ordinary windows of every entity
(from their Pearson residuals), so the test stays calibrated without a constant per feature.
The expected value is itself an estimate, measured on the entity's history; the detector widens
``phi`` by :func:`estimation_factor` for it, most for a young entity or a long run.

The p-value is two-sided: twice the tail in the direction of the move (``P(X >= x)`` above the
expected value, ``P(X <= x)`` below it), at most 1. The tails are the continuous extension
through the incomplete gamma and beta functions, so scaled counts need not be integers.

>>> p = tail_pvalues(np.array([[1.0, 100.0]]), np.array([[8.0, 800.0]]), np.ones(2))
>>> [f"{v:.0e}" for v in p[0]]
['6e-03', '2e-215']
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from scipy import special

from models.base import Stateful
from models.features import COUNT_FEATURES, MAXIMUM_SHARES, SHARE_DENOMINATORS
from models.params import in_range, non_negative

#: Pearson residuals are clipped to this many (squared) units before they teach the dispersion,
#: so the anomalies among the ordinary windows do not inflate it.
RESIDUAL_CLIP = 25.0
#: In a test plan (:func:`significance_plan`): a count, and a feature that is not tested.
COUNT, UNTESTED = -1, -2


def count_tail(x: np.ndarray, mu: np.ndarray) -> np.ndarray:
    """Poisson tail in the direction of the move: ``P(X >= x)`` if ``x >= mu``, else ``P(X <= x)``.

    >>> [round(float(v), 4) for v in count_tail(np.array([0.0, 3.0, 12.0]), np.full(3, 3.0))]
    [0.0498, 0.5768, 0.0001]
    """
    mu = np.maximum(mu, 1e-12)
    x = np.maximum(x, 0.0)
    up = special.gammainc(np.maximum(x, 1e-12), mu)  # P(X >= x) = P(x, mu), regularised
    down = special.gammaincc(x + 1.0, mu)  # P(X <= x) = Q(x + 1, mu)
    return np.where(x >= mu, np.where(x > 0, up, 1.0), down)


def share_tail(k: np.ndarray, n: np.ndarray, p: np.ndarray) -> np.ndarray:
    """Binomial tail of ``k`` successes in ``n`` at ``p``, in the direction of the move.

    >>> [round(float(v), 4) for v in share_tail(np.array([0.0, 5.0]), np.full(2, 100.0),
    ...                                         np.full(2, 0.03))]
    [0.0476, 0.1821]
    """
    p = np.clip(p, 1e-9, 1.0 - 1e-9)
    k = np.clip(k, 0.0, n)
    safe_n = np.maximum(n, 1e-12)
    up = special.betainc(np.maximum(k, 1e-12), np.maximum(safe_n - k + 1.0, 1e-12), p)
    down = special.betainc(np.maximum(safe_n - k, 1e-12), k + 1.0, 1.0 - p)
    tail = np.where(k >= n * p, np.where(k > 0, up, 1.0), np.where(k < n, down, 1.0))
    return np.where(n > 0, tail, 1.0)


def tail_pvalues(
    raw: np.ndarray,
    expected: np.ndarray,
    dispersion: np.ndarray,
    plan: Sequence[int] = (),
) -> np.ndarray:
    """Per window and feature, the p-value of the observed value given the expected one.

    Args:
        raw: the windows' features (rows).
        expected: each entity's expected features.
        dispersion: per feature, ``phi >= 1``.
        plan: per feature, the column of the count it is a proportion of, :data:`COUNT` or
            :data:`UNTESTED` (:func:`significance_plan`; empty: every feature is a count).

    A feature equal to its expected value, or untested, gets 1.

    >>> tail_pvalues(np.array([[30.0, 0.5]]), np.array([[10.0, 0.1]]), np.ones(2), [-1, 0])
    array([[5.0...e-07, 7.1...e-08]])
    """
    phi = np.maximum(dispersion, 1.0)
    plan = np.asarray(plan, dtype=int) if len(plan) else np.full(raw.shape[1], COUNT)
    is_share = plan >= 0
    counts = count_tail(raw / phi, np.maximum(expected, 0.0) / phi)
    tail = np.where(plan == UNTESTED, 0.5, counts)
    if is_share.any():
        n = trials(raw, plan) / phi
        tail = np.where(is_share, share_tail(raw * n, n, expected), tail)
    return two_sided(tail)


def trials(raw: np.ndarray, plan: Sequence[int]) -> np.ndarray:
    """Per window and feature, the count a proportion is a share of.

    Other features get the first column: mask them with ``plan >= 0``.

    >>> trials(np.array([[200.0, 0.03]]), [COUNT, 0])
    array([[200., 200.]])
    """
    return raw[:, np.maximum(np.asarray(plan, dtype=int), 0)]


def expected_events(tested: np.ndarray, counts: np.ndarray, plan: Sequence[int]) -> np.ndarray:
    """Per window and feature, the events its test expects.

    A count's expected value, or a proportion's expected successes at the trials in ``counts``
    (an untested feature: its value).

    >>> expected_events(np.array([[40.0, 0.05]]), np.array([[200.0, 0.03]]), [COUNT, 0])
    array([[40., 10.]])
    """
    return np.where(np.asarray(plan, dtype=int) >= 0, tested * trials(counts, plan), tested)


def with_unseen_floor(expected: np.ndarray, plan: Sequence[int], alpha: float) -> np.ndarray:
    """Expected values to test against, never below what the history could have missed.

    A baseline with weight ``alpha`` remembers about ``1 / alpha`` windows. One that saw no
    purchase in them does not know that the rate is 0, only that it is below about one in that
    many windows: a count's expected value is at least ``alpha``, a share's at least ``alpha``
    over its expected count (one success among the history's trials). Without the floor, any
    purchase at all is infinitely unlikely; with it, one is ordinary (p ~ 0.05) and three in a
    window are not (p ~ 2e-5).

    >>> with_unseen_floor(np.array([[0.0, 0.0, 4.0], [2.0, 0.0, 0.0]]), [COUNT, 2, COUNT], 0.05)
    array([[0.05  , 0.0125, 4.    ],
           [2.    , 0.05  , 0.05  ]])
    """
    plan = np.asarray(plan, dtype=int)
    denominators = np.maximum(trials(expected, plan), 1.0)
    floor = np.where(plan >= 0, alpha / denominators, np.where(plan == COUNT, alpha, 0.0))
    return np.maximum(expected, floor)


def estimation_factor(expected: np.ndarray, history: np.ndarray) -> np.ndarray:
    """How much more an observed count varies around an expected value that was itself counted.

    The expected value is an estimate: a rate measured on ``history`` expected events (the
    entity's baseline remembers that many) and scaled to the ``expected`` events of the window
    or run under test. Their difference then varies by ``1 + expected / history`` times the
    counting noise of the observation alone: little for one window against a long history,
    much for a long run, or against the few windows of a new entity's history. Without it, a
    rate misjudged from a short history looks like a lasting move.

    >>> estimation_factor(np.array([2.0, 20.0, 2.0]), np.array([80.0, 80.0, 0.0]))
    array([1.025, 1.25 ,   inf])
    """
    expected, history = np.broadcast_arrays(expected, history)
    ratio = np.divide(expected, history, out=np.full(expected.shape, np.inf), where=history > 0)
    return 1.0 + np.where(expected > 0, ratio, 0.0)


def two_sided(tail: np.ndarray) -> np.ndarray:
    """The two-sided p-value of a tail in the direction of the move: twice it, at most 1.

    >>> two_sided(np.array([0.01, 0.7]))
    array([0.02, 1.  ])
    """
    return np.minimum(1.0, 2.0 * tail)


def significance_plan(
    names: Sequence[str],
    counts: Sequence[str] = COUNT_FEATURES,
    denominators: Mapping[str, str] = SHARE_DENOMINATORS,
    untested: Sequence[str] = MAXIMUM_SHARES,
) -> list[int]:
    """Per feature: the column of the count it is a proportion of, :data:`COUNT`, or ...

    ... :data:`UNTESTED` (a maximum share, a share whose count is not among ``names``, or a
    feature that counts nothing known, such as a NAB series' ``value``).

    >>> significance_plan(["impressions", "clicks", "ctr", "bot_share", "top_ip_share", "value"])
    [-1, -1, 0, -2, -2, -2]
    """
    index = {name: j for j, name in enumerate(names)}
    return [
        index[denominators[name]]
        if name in denominators and name not in untested and denominators[name] in index
        else COUNT if name in counts
        else UNTESTED
        for name in names
    ]


class Dispersion(Stateful):
    """How much more the windows vary than counting noise.

    Per feature ``phi >= 1`` for a count, ``rho >= 0`` for a proportion (``phi = 1 + (n - 1) rho``
    at ``n`` trials).

    Learns from the squared Pearson residuals ``r2`` of ordinary windows across entities,
    ``(x - mu)^2 / mu`` for a count, ``(k - n p)^2 / (n p (1 - p))`` for a proportion
    (``k = s n``), each clipped to :data:`RESIDUAL_CLIP` and counted only where the expected
    count is at least ``min_expected`` (small means carry little information about the spread):
    ``phi`` is the mean of ``r2``; ``rho`` is ``sum(r2 - 1) / sum(n - 1)`` over a batch (the
    moment estimate under the beta-binomial, where ``E[r2] = 1 + (n - 1) rho``; the large counts
    that tell most about ``rho`` weigh most). The first ``1 / alpha`` windows get a plain mean of
    the batch estimates, weighted by their windows; then each batch of ``m`` moves it by
    ``1 - (1 - alpha)^m`` towards the batch's estimate.

    Args:
        plan: per feature, as :func:`significance_plan` gives it (an untested feature learns
            nothing).
        alpha: weight of one window once warmed up.
        min_expected: expected count (of the feature, or of a share's count times ``p``) below
            which a window does not teach the dispersion.

    >>> d = Dispersion([COUNT])
    >>> rng = np.random.default_rng(0)
    >>> for _ in range(50):
    ...     mu = np.full((100, 1), 20.0)
    ...     d.learn(3.0 * rng.poisson(mu / 3.0), mu)
    >>> round(float(d.factors(mu)[0, 0]), 1)
    3.1
    """

    STATE_VERSION = 1
    CHECKS = (
        in_range("alpha", 0, 1, open_low=True, label="dispersion alpha"),
        non_negative("min_expected"),
    )

    def __init__(self, plan: Sequence[int], alpha: float = 0.001, min_expected: float = 1.0):
        self.plan = list(plan)
        self.alpha = alpha
        self.min_expected = min_expected
        self.check_params()
        self.sum_ = np.zeros(len(self.plan))
        self.count_ = np.zeros(len(self.plan))

    def factors(self, raw: np.ndarray) -> np.ndarray:
        """Per window and feature, its ``phi`` (1 until windows taught it).

        >>> d = Dispersion([COUNT, 0])
        >>> d.sum_ = np.array([2.0, 0.01])
        >>> d.factors(np.array([[11.0, 0.1], [1001.0, 0.1]]))
        array([[ 2. ,  1.1],
               [ 2. , 11. ]])
        """
        plan = np.asarray(self.plan, dtype=int)
        n = trials(raw, plan)
        shares = 1.0 + np.maximum(n - 1.0, 0.0) * np.maximum(self.sum_, 0.0)
        return np.where(plan >= 0, shares, np.maximum(self.sum_, 1.0))

    def learn(self, raw: np.ndarray, expected: np.ndarray) -> None:
        """Learn the residuals of ``raw`` windows (ordinary ones) around ``expected``."""
        if not len(raw):
            return
        plan = np.asarray(self.plan, dtype=int)
        is_share = plan >= 0
        n = trials(raw, plan)
        p = np.clip(expected, 1e-9, 1.0 - 1e-9)
        mean = np.where(is_share, n * p, expected)
        var = np.where(is_share, n * p * (1.0 - p), expected)
        value = np.where(is_share, raw * n, raw)
        usable = (mean >= self.min_expected) & (var > 0) & (plan != UNTESTED)
        usable &= ~is_share | (n >= 2)
        residual = np.minimum((value - mean) ** 2 / np.where(usable, var, 1.0), RESIDUAL_CLIP)
        m = usable.sum(axis=0)
        excess = np.where(usable, residual - 1.0, 0.0).sum(axis=0)
        beyond_one = np.where(usable, n - 1.0, 0.0).sum(axis=0)
        batch_mean = np.where(
            is_share,
            excess / np.maximum(beyond_one, 1.0),
            np.where(usable, residual, 0.0).sum(axis=0) / np.maximum(m, 1),
        )
        total = batch_mean * m
        plain = (self.count_ * self.sum_ + total) / np.maximum(self.count_ + m, 1)
        weighted = self.sum_ + (1.0 - (1.0 - self.alpha) ** m) * (batch_mean - self.sum_)
        self.sum_ = np.where(self.count_ + m <= 1.0 / self.alpha, plain, weighted)
        self.count_ = self.count_ + m

    def _get_state(self) -> dict[str, Any]:
        return {"sum_": self.sum_.tolist(), "count_": self.count_.tolist()}

    def _set_state(self, state: Mapping[str, Any]) -> None:
        self.sum_ = np.array(state["sum_"], dtype=float)
        self.count_ = np.array(state["count_"], dtype=float)
