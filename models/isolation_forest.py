"""scikit-learn's ``IsolationForest`` as an online scorer (refitted on a sliding buffer).

sklearn's ``score_samples`` is *higher = more normal*; its sign is flipped here, at the module
boundary: the score is the isolation forest paper's ``2 ** (-E[h(x)] / c(n))``, 0..1, higher =
more anomalous.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from sklearn.ensemble import IsolationForest

from models import artifacts
from models.base import Scorer
from models.params import integer


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

    kind = "iforest"
    CHECKS = (
        integer("n_estimators", 1),
        integer("max_samples", 1),
        integer("buffer", 1),
        integer("refit_every", 1),
    )

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
        self.n_estimators = n_estimators
        self.max_samples = max_samples
        self.buffer = buffer
        self.refit_every = refit_every
        self.random_state = random_state
        self.check_params()
        if buffer < max_samples:
            raise ValueError(f"buffer ({buffer}) must hold at least max_samples ({max_samples})")
        self.model_: IsolationForest | None = None
        self.buffer_: np.ndarray | None = None
        self.since_fit_ = 0

    @property
    def readiness(self) -> float:
        """1 once fitted, else the fraction of the first ``max_samples`` rows seen."""
        if self.model_ is not None:
            return 1.0
        return 0.0 if self.buffer_ is None else len(self.buffer_) / self.max_samples

    def _learn(self, rows: np.ndarray) -> None:
        """Buffer rows; refit when due."""
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

    def _score(self, rows: np.ndarray) -> np.ndarray:
        """Anomaly scores 0..1 (sklearn's ``score_samples``, sign flipped); 0 before a fit."""
        if self.model_ is None:
            return np.zeros(len(rows))
        return -self.model_.score_samples(rows)

    def _get_state(self) -> dict[str, Any]:
        """The model as skops bytes, the buffer as float64 bytes."""
        buffer = self.buffer_
        return {
            **super()._get_state(),
            "model_": artifacts.dumps(self.model_) if self.model_ is not None else None,
            "buffer_": None if buffer is None else [buffer.shape[1], buffer.tobytes()],
            "since_fit_": self.since_fit_,
        }

    def _set_state(self, state: Mapping[str, Any]) -> None:
        super()._set_state(state)
        if state["model_"] is not None:
            self.model_ = artifacts.loads(state["model_"])
        if state["buffer_"] is not None:
            d, data = state["buffer_"]
            self.buffer_ = np.frombuffer(data, dtype=np.float64).reshape(-1, d).copy()
        self.since_fit_ = state["since_fit_"]
