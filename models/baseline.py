"""Per-entity baseline: an exponentially weighted mean and variance of each feature.

Its state is the bulk of the detector's per-entity state (about 100 to 200 bytes). It turns a
window's raw features into standardised deviations from that entity's own recent normal, so one
shared model can score every entity: a click flood on a small ad and on a large one look alike.

Counts are modelled on a ``log1p`` scale (a doubling is a doubling at any volume), shares and rates
linearly, a share's mean weighing each window by its count (clicks over impressions, not a mean of
each window's ctr); every standard deviation has a floor so a constant feature does not turn the
first wobble into an infinite deviation.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from models.features import COUNT_FEATURES, SHARE_DENOMINATORS, SHARE_FEATURES
from models.params import Parameterised, in_range, integer, non_negative

#: Weight of a new window in the baseline, once warmed up (:class:`EwmaBaseline`'s ``alpha``).
DEFAULT_ALPHA: float = 0.05


def memory_windows(alpha: float) -> float:
    """How many windows an exponentially weighted mean of weight ``alpha`` rests on.

    The squared sum of its weights over the sum of their squares, ``(2 - alpha) / alpha``.

    >>> memory_windows(0.05)
    39.0
    """
    return (2.0 - alpha) / alpha


@dataclass(frozen=True)
class BaselineBatch:
    """Decoded state of a batch of entities (on the transformed scale).

    Attributes:
        count: windows seen.
        mean: exponentially weighted mean.
        var: exponentially weighted variance.
        level_mean: mean frozen when the entity reached ``level_after`` windows (0 before).
        level_std: floored standard deviation frozen at the same moment (0 before).
    """

    count: np.ndarray
    mean: np.ndarray
    var: np.ndarray
    level_mean: np.ndarray
    level_std: np.ndarray


class EwmaBaseline(Parameterised):
    """Exponentially weighted mean / variance per entity and feature.

    Args:
        feature_names: feature order of the rows.
        alpha: weight of a new window once warmed up (early windows get 1/n: a plain mean).
        count_features: features modelled on the log1p scale.
        share_features: features in 0..1 modelled linearly, floored by ``share_std_floor``.
        log_std_floor: smallest standard deviation of a count feature (log1p units); counts
            also get a counting-noise floor, ``1 / sqrt(1 + mean count)`` (a Poisson count's
            standard deviation on the log1p scale), so small counts do not alarm on noise.
        share_std_floor: smallest standard deviation of a share feature; a share also gets a
            sampling-noise floor ``sqrt(p (1 - p) / n)`` (``p`` its mean, at least 1 %, ``n`` the
            mean of its denominator count, see ``share_denominators``).
        share_denominators: share feature → the count feature it is a fraction of.
        share_burst: events come in bursts (a page view brings its impressions and clicks from
            the same user and IP), so a share varies as if its count were this many times smaller.
        relative_std_floor: smallest standard deviation of any feature, as a fraction of its
            absolute mean (plus ``1e-9``), on top of the two floors above.
        level_after: windows after which the entity's *level* scale is frozen (see
            :meth:`EwmaBaseline.levels`).
        update_clip: a window moves the baseline as if it were at most this many standard
            deviations away, so one outlier does not wreck the variance (a lasting shift is
            still learned within a few dozen windows).

    >>> b = EwmaBaseline(["clicks", "ctr"])
    >>> state = b.update(b.transform(np.array([[9.0, 0.02]])), b.decode([None]))
    >>> [round(float(v), 3) for v in b.expected(b.decode(b.encode(state)))[0]]
    [9.0, 0.02]
    """

    CHECKS = (
        in_range("alpha", 0, 1, open_low=True, label="baseline alpha"),
        non_negative("log_std_floor"),
        non_negative("share_std_floor"),
        non_negative("relative_std_floor"),
        non_negative("update_clip"),
        non_negative("share_burst"),
        integer("level_after", 2),
    )

    def __init__(
        self,
        feature_names: Sequence[str],
        alpha: float = DEFAULT_ALPHA,
        count_features: Sequence[str] = COUNT_FEATURES,
        share_features: Sequence[str] = SHARE_FEATURES,
        log_std_floor: float = 0.1,
        share_std_floor: float = 0.002,
        share_denominators: Mapping[str, str] = SHARE_DENOMINATORS,
        share_burst: float = 3.0,
        relative_std_floor: float = 0.05,
        update_clip: float = 3.0,
        level_after: int = 32,
    ) -> None:
        self.feature_names = feature_names
        self.alpha = alpha
        self.count_features = count_features
        self.share_features = share_features
        self.log_std_floor = log_std_floor
        self.share_std_floor = share_std_floor
        self.share_denominators = share_denominators
        self.share_burst = share_burst
        self.relative_std_floor = relative_std_floor
        self.update_clip = update_clip
        self.level_after = level_after
        self.check_params()
        self.is_log_ = np.array([n in count_features for n in feature_names])
        is_share = np.array([n in share_features for n in feature_names])
        self.abs_floor_ = np.where(
            self.is_log_, log_std_floor, np.where(is_share, share_std_floor, 1e-9)
        )
        self.rel_floor_ = np.where(self.is_log_, 0.0, relative_std_floor)
        index = {name: j for j, name in enumerate(feature_names)}
        self.share_of_ = np.array(
            [
                index.get(share_denominators.get(n, ""), -1) if n in share_features else -1
                for n in feature_names
            ]
        )

    def transform(self, rows: np.ndarray) -> np.ndarray:
        """Raw features → modelling scale (log1p for counts, negatives clamped to 0)."""
        return np.where(self.is_log_, np.log1p(np.maximum(rows, 0.0)), rows)

    def expected(self, batch: BaselineBatch) -> np.ndarray:
        """Baseline means back on the raw scale (the ``expected`` value of an explanation)."""
        return np.where(self.is_log_, np.expm1(np.where(self.is_log_, batch.mean, 0.0)), batch.mean)

    def memory(self, batch: BaselineBatch) -> np.ndarray:
        """Per entity, how many windows its means rest on: their effective number.

        A plain mean (the first ``1 / alpha`` windows) rests on every window it has seen; an
        exponentially weighted one on about :func:`memory_windows` (39 windows at 0.05).

        >>> b = EwmaBaseline(["clicks"])
        >>> state = b.decode([None, [5, bytes(8)], [500, bytes(8)]])
        >>> b.memory(state).tolist()
        [0.0, 5.0, 39.0]
        """
        return np.minimum(batch.count, memory_windows(self.alpha))

    def std(self, batch: BaselineBatch) -> np.ndarray:
        """Floored standard deviations."""
        floor = np.maximum(self.abs_floor_, self.rel_floor_ * np.abs(batch.mean))
        counts = np.expm1(np.where(self.is_log_, np.maximum(batch.mean, 0.0), 0.0))
        counting = 1.0 / np.sqrt(1.0 + counts)
        floor = np.where(self.is_log_, np.maximum(floor, counting), floor)
        if (self.share_of_ >= 0).any():
            n = np.where(self.share_of_ >= 0, counts[:, np.maximum(self.share_of_, 0)], 1.0)
            p = np.clip(batch.mean, 0.01, 0.99)
            sampling = np.sqrt(p * (1.0 - p) * self.share_burst / np.maximum(n, 1.0))
            floor = np.where(self.share_of_ >= 0, np.maximum(floor, sampling), floor)
        return np.maximum(np.sqrt(batch.var), floor)

    def deviations(self, transformed: np.ndarray, batch: BaselineBatch) -> np.ndarray:
        """Standardised deviations of each window from its entity's baseline (0 if none yet)."""
        z = (transformed - batch.mean) / self.std(batch)
        z[batch.count == 0] = 0.0
        return z

    def levels(self, transformed: np.ndarray, batch: BaselineBatch) -> np.ndarray:
        """Each window standardised by a scale frozen once its entity has ``level_after`` windows.

        Unlike :meth:`deviations`, the same value always maps to the same level once frozen, so a
        model of levels can learn which values are usual for an entity (for one series, this is
        the raw value up to a fixed affine map). Before freezing, the running baseline is used.
        """
        frozen = (batch.count >= self.level_after)[:, None]
        z = np.where(
            frozen,
            (transformed - batch.level_mean) / np.where(frozen, batch.level_std, 1.0),
            self.deviations(transformed, batch),
        )
        return z

    def update(
        self, transformed: np.ndarray, batch: BaselineBatch, learn: np.ndarray | None = None
    ) -> BaselineBatch:
        """Return the state after learning each window whose ``learn`` flag is set."""
        learn = np.ones(len(transformed), dtype=bool) if learn is None else learn
        count = batch.count + learn
        a = np.where(learn, np.maximum(self.alpha, 1.0 / np.maximum(count, 1)), 0.0)[:, None]
        diff = transformed - batch.mean
        if self.update_clip > 0:
            bound = self.update_clip * self.std(batch)
            diff = np.where(batch.count[:, None] > 1, np.clip(diff, -bound, bound), diff)
        mean = batch.mean + a * diff
        var = (1.0 - a) * (batch.var + a * diff * diff)
        if (self.share_of_ >= 0).any():
            mean = batch.mean + self._share_weights(a, transformed, mean) * diff
        updated = replace(batch, count=count, mean=mean, var=var)
        freeze = ((count == self.level_after) & learn)[:, None]
        return replace(
            updated,
            level_mean=np.where(freeze, mean, batch.level_mean),
            level_std=np.where(freeze, self.std(updated), batch.level_std),
        )

    def _share_weights(
        self, a: np.ndarray, transformed: np.ndarray, counts: np.ndarray
    ) -> np.ndarray:
        """Learning weights with each share's scaled by its window's volume: a pooled rate.

        A share learns a window in proportion to its denominator count ``n`` against that
        count's mean ``N`` (from the updated log-scale ``counts``): ``a n / N``, at most 1.
        While the baseline is a plain mean of its first windows, the share's mean is then about
        the rate over them, clicks over impressions, not a mean of each window's rate: a
        launched ad's first, partial window (1 click of 2 impressions) weighs as the two
        impressions it holds. Once warmed up, a window weighs at most ``a``: smaller windows
        less, busier ones no more, so an episode, which mostly comes with more traffic, is not
        learned faster. A window without impressions teaches nothing about its ``ctr``.

        >>> b = EwmaBaseline(["impressions", "clicks", "ctr"])
        >>> state = b.decode([None])
        >>> for window in ([2.0, 1.0, 0.5], [60.0, 2.0, 2 / 60], [60.0, 2.0, 2 / 60]):
        ...     state = b.update(b.transform(np.array([window])), state)
        >>> round(float(b.expected(state)[0, 2]), 3)
        0.033
        """
        shares = self.share_of_ >= 0
        denominators = np.maximum(self.share_of_, 0)
        n = np.expm1(np.maximum(transformed[:, denominators], 0.0))
        mean_n = np.expm1(np.maximum(counts[:, denominators], 0.0))
        volume = np.divide(n, mean_n, out=np.zeros_like(n), where=mean_n > 0)
        volume = np.where(a > self.alpha, volume, np.minimum(volume, 1.0))
        return np.where(shares, np.minimum(a * volume, 1.0), a)

    def decode(self, parts: Sequence[Sequence[Any] | None]) -> BaselineBatch:
        """Decode per-entity :meth:`encode` parts (``None`` = new entity) into arrays.

        >>> EwmaBaseline(["clicks"]).decode([[1, bytes(16)]])
        Traceback (most recent call last):
        ...
        ValueError: entity state has 2 features, expected 1
        """
        d = len(self.feature_names)
        size = 8 * d  # bytes of a blob: two float32 arrays of d features
        count = np.zeros(len(parts), dtype=np.int64)
        mean = np.zeros((len(parts), d))
        var = np.zeros((len(parts), d))
        level_mean = np.zeros((len(parts), d))
        level_std = np.zeros((len(parts), d))
        rows, counts, blobs = [], [], []
        unfrozen = bytes(size)  # the levels of an entity that has none yet
        for i, part in enumerate(parts):
            if part is None:
                continue
            if len(part) == 3:
                n, moments, levels = part
            elif len(part) == 2:
                (n, moments), levels = part, unfrozen
            else:
                raise ValueError("entity state's baseline is not [count, mean and var, levels?]")
            if len(moments) != size or len(levels) != size:
                wrong = len(moments) if len(moments) != size else len(levels)
                raise ValueError(f"entity state has {wrong // 8} features, expected {d}")
            rows.append(i)
            counts.append(n)
            blobs += (moments, levels)
        if rows:  # decoded at once, from one buffer
            arrays = np.frombuffer(b"".join(blobs), dtype=np.float32).reshape(len(rows), 4, d)
            count[rows] = counts
            mean[rows], var[rows], level_mean[rows], level_std[rows] = arrays.transpose(1, 0, 2)
        return BaselineBatch(count, mean, var, level_mean, level_std)

    @staticmethod
    def part_of_version_5(part: Sequence[Any]) -> list[Any]:
        """A part of entity state version 5 (four arrays in one blob) as :meth:`decode` reads it.

        >>> EwmaBaseline.part_of_version_5([3, b"mmvvLLSS"])
        [3, b'mmvv', b'LLSS']
        """
        n, blob = part
        half = len(blob) // 2
        return [n, blob[:half], blob[half:]]

    def encode(self, batch: BaselineBatch) -> list[list[Any]]:
        """Per entity, msgpack-able parts: window count, mean and variance, frozen levels.

        The arrays are float32 bytes, the mean and variance in one blob, the level mean and
        scale in another. The levels are left out while they are zero, before the entity's scale
        is frozen (:meth:`update`): most entities of a long tail never get there, and
        :meth:`decode` reads them back as zero.

        >>> b = EwmaBaseline(["clicks"], level_after=2)
        >>> state = b.decode([None])
        >>> for clicks in (3.0, 5.0):
        ...     state = b.update(b.transform(np.array([[clicks]])), state)
        ...     [part] = b.encode(state)
        ...     print(part[0], [len(blob) for blob in part[1:]])
        1 [8]
        2 [8, 8]
        """
        arrays = np.stack([batch.mean, batch.var, batch.level_mean, batch.level_std], axis=1)
        arrays = arrays.astype(np.float32)
        frozen = arrays[:, 2:].any(axis=(1, 2)).tolist()
        data = arrays.tobytes()  # one buffer, cut per entity: faster than an array each
        size = 8 * len(self.feature_names)  # bytes of two arrays
        starts = range(0, len(data), 2 * size)
        return [
            [n, data[at : at + size], data[at + size : at + 2 * size]]
            if held
            else [n, data[at : at + size]]
            for n, held, at in zip(batch.count.tolist(), frozen, starts, strict=True)
        ]
