"""scikit-learn's ``IsolationForest`` as an online scorer (refitted on a sliding buffer).

sklearn's ``score_samples`` is *higher = more normal*; its sign is flipped here, at the module
boundary: the score is the isolation forest paper's ``2 ** (-E[h(x)] / c(n))``, 0..1, higher =
more anomalous.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Self

import numpy as np
from sklearn.ensemble import IsolationForest

from models import artifacts
from models.base import Scorer


class IsolationForestScorer(Scorer):
    """Isolation forest refitted every ``refit_every`` learned rows on the last ``buffer`` rows.

    Args:
        n_estimators: trees.
        max_samples: rows per tree.
        buffer: most recent learned rows kept for refitting.
        refit_every: learned rows between refits (the first fit waits for ``max_samples``).
        random_state: seed.
        feature_names: feature order; default: the keys of the first window seen.

    >>> s = IsolationForestScorer(n_estimators=20, max_samples=32, refit_every=32)
    >>> s.learn_many([{"z": float(i % 4)} for i in range(64)])
    >>> s.score_one({"z": 40.0}) > s.score_one({"z": 1.0})
    True
    """

    def __init__(
        self,
        n_estimators: int = 100,
        max_samples: int = 256,
        buffer: int = 1024,
        refit_every: int = 256,
        random_state: int = 42,
        feature_names: Sequence[str] | None = None,
    ) -> None:
        super().__init__(feature_names)
        for name, value in (
            ("n_estimators", n_estimators),
            ("max_samples", max_samples),
            ("buffer", buffer),
            ("refit_every", refit_every),
        ):
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
        if buffer < max_samples:
            raise ValueError(f"buffer ({buffer}) must hold at least max_samples ({max_samples})")
        self.n_estimators = n_estimators
        self.max_samples = max_samples
        self.buffer = buffer
        self.refit_every = refit_every
        self.random_state = random_state
        self.model_: IsolationForest | None = None
        self.buffer_: np.ndarray | None = None
        self.since_fit_ = 0

    def params(self) -> dict[str, Any]:
        """The parameters as given."""
        return {
            "n_estimators": self.n_estimators,
            "max_samples": self.max_samples,
            "buffer": self.buffer,
            "refit_every": self.refit_every,
            "random_state": self.random_state,
            "feature_names": list(self.feature_names) if self.feature_names else None,
        }

    @property
    def readiness(self) -> float:
        """1 once fitted, else the fraction of the first ``max_samples`` rows seen."""
        if self.model_ is not None:
            return 1.0
        return 0.0 if self.buffer_ is None else len(self.buffer_) / self.max_samples

    def learn_rows(self, rows: np.ndarray) -> None:
        """Buffer rows; refit when due."""
        rows = self.check_rows(rows)
        stacked = rows if self.buffer_ is None else np.vstack([self.buffer_, rows])
        self.buffer_ = stacked[-self.buffer :]
        self.since_fit_ += len(rows)
        due = self.since_fit_ >= self.refit_every if self.model_ is not None else True
        if due and len(self.buffer_) >= self.max_samples:
            self.model_ = IsolationForest(
                n_estimators=self.n_estimators,
                max_samples=self.max_samples,
                random_state=self.random_state,
            ).fit(self.buffer_)
            self.since_fit_ = 0

    def score_rows(self, rows: np.ndarray) -> np.ndarray:
        """Anomaly scores 0..1 (sklearn's ``score_samples``, sign flipped); 0 before a fit."""
        rows = self.check_rows(rows)
        if self.model_ is None:
            return np.zeros(len(rows))
        return -self.model_.score_samples(rows)

    def to_bytes(self) -> bytes:
        """Parameters, model and buffer as skops bytes."""
        return artifacts.dumps(
            {
                "params": self.params(),
                "feature_names_": list(self.feature_names_) if self.feature_names_ else None,
                "model_": self.model_,
                "buffer_": self.buffer_,
                "since_fit_": self.since_fit_,
            }
        )

    @classmethod
    def from_bytes(cls, data: bytes) -> Self:
        """Rebuild from :meth:`to_bytes` (trusted types only)."""
        state = artifacts.loads(data)
        scorer = cls(**state["params"])
        if state["feature_names_"] is not None:
            scorer.feature_names_ = tuple(state["feature_names_"])
        scorer.model_ = state["model_"]
        scorer.buffer_ = state["buffer_"]
        scorer.since_fit_ = state["since_fit_"]
        return scorer
