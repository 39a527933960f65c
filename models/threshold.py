"""Thresholding, kept apart from scoring: an adaptive threshold on 0..1 scores.

The threshold follows the recent score distribution — an exponentially weighted mean and standard
deviation — and sits ``z`` deviations above the mean, never below ``floor``. Only scores that were
not flagged are learned, so a burst of anomalies does not raise the bar for the next one.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np


@dataclass
class AdaptiveThreshold:
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
    """

    z: float = 3.0
    floor: float = 0.0
    alpha: float = 0.01
    settle: int = 100
    count_: int = field(default=0, init=False)
    mean_: float = field(default=0.0, init=False)
    var_: float = field(default=0.0, init=False)

    def __post_init__(self) -> None:
        if not (math.isfinite(self.z) and self.z >= 0):
            raise ValueError(f"threshold z must be >= 0, got {self.z!r}")
        if not 0.0 <= self.floor <= 1.0:
            raise ValueError(f"threshold floor must be in [0, 1], got {self.floor!r}")
        if not 0.0 < self.alpha <= 1.0:
            raise ValueError(f"threshold alpha must be in (0, 1], got {self.alpha!r}")
        if not (isinstance(self.settle, int) and self.settle >= 1):
            raise ValueError(f"threshold settle must be an integer >= 1, got {self.settle!r}")

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

    def params(self) -> dict[str, Any]:
        """The parameters as given."""
        return {"z": self.z, "floor": self.floor, "alpha": self.alpha, "settle": self.settle}

    def state(self) -> list[float]:
        """Learned state, for serialisation."""
        return [self.count_, self.mean_, self.var_]

    @classmethod
    def restore(cls, params: dict[str, Any], state: list[float]) -> AdaptiveThreshold:
        """Rebuild from :meth:`params` and :meth:`state`."""
        threshold = cls(**params)
        threshold.count_, threshold.mean_, threshold.var_ = int(state[0]), state[1], state[2]
        return threshold
