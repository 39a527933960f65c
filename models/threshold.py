"""Thresholding, kept apart from scoring: an adaptive threshold on 0..1 scores.

The threshold follows the recent score distribution — an exponentially weighted mean and standard
deviation — and sits ``z`` deviations above the mean, never below ``floor``. Only scores that were
not flagged are learned, so a burst of anomalies does not raise the bar for the next one.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from models.base import Stateful
from models.params import in_range, integer, non_negative


@dataclass
class AdaptiveThreshold(Stateful):
    """Threshold = max(floor, mean + z * std) of recently learned scores.

    Args:
        z: how many standard deviations above the mean a score must be.
        floor: lowest threshold ever used (on the 0..1 score).
        alpha: weight of each new score in the running mean / variance (early on, 1/n).
        settle: scores learned before the threshold is trusted (confidence ramps up to it).

    >>> t = AdaptiveThreshold(z=3.0, floor=0.1, alpha=0.1, settle=4)
    >>> t.learn(np.array([0.2, 0.2, 0.2, 0.2]))
    >>> round(t.value, 3), t.confidence
    (0.2, 1.0)
    >>> round(float(t.grade(np.array([0.3]))[0]), 3)
    0.5
    >>> AdaptiveThreshold.from_bytes(t.to_bytes()) == t
    True
    """

    CHECKS = (
        non_negative("z", finite=True, label="threshold z"),
        in_range("floor", 0, 1, label="threshold floor"),
        in_range("alpha", 0, 1, open_low=True, label="threshold alpha"),
        integer("settle", 1, label="threshold settle"),
    )

    z: float = 3.0
    floor: float = 0.0
    alpha: float = 0.01
    settle: int = 100
    count_: int = field(default=0, init=False)
    mean_: float = field(default=0.0, init=False)
    var_: float = field(default=0.0, init=False)

    def __post_init__(self) -> None:
        self.check_params()

    @property
    def value(self) -> float:
        """The threshold in force."""
        return max(self.floor, self.mean_ + self.z * math.sqrt(self.var_))

    @property
    def confidence(self) -> float:
        """0..1: how many scores the threshold has learned, relative to ``settle``."""
        return min(1.0, self.count_ / self.settle)

    def grade(self, scores: np.ndarray) -> np.ndarray:
        """0..1 per score: how far past the threshold (1 = twice the threshold or more)."""
        threshold = self.value
        if threshold <= 0:
            return (np.asarray(scores) > 0).astype(np.float64)
        return np.clip((np.asarray(scores) - threshold) / threshold, 0.0, 1.0)

    def learn(self, scores: np.ndarray) -> None:
        """Fold scores into the running mean and variance, in order."""
        for s in np.asarray(scores, dtype=np.float64):
            self.count_ += 1
            a = max(self.alpha, 1.0 / self.count_)
            diff = s - self.mean_
            self.mean_ += a * diff
            self.var_ = (1.0 - a) * (self.var_ + a * diff * diff)

    def _get_state(self) -> list[float]:
        return [self.count_, self.mean_, self.var_]

    def _set_state(self, state: Sequence[float]) -> None:
        self.count_, self.mean_, self.var_ = int(state[0]), state[1], state[2]
