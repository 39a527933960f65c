"""A supervised ``RandomForestClassifier`` trained from labelled windows.

The score is the forest's probability that a window is anomalous (0..1). The model is trained
offline (:func:`models.training.train_supervised_forest`) and frozen: online it scores but does
not learn, because live windows carry no labels. Its artefact is a skops file.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, Self

import numpy as np
from sklearn.ensemble import RandomForestClassifier

from models import artifacts
from models.base import Scorer


class SupervisedForestScorer(Scorer):
    """Probability of the anomalous class from a trained random forest.

    Args:
        artifact: path of a skops file written by :meth:`save` (or ``None`` to fit in code).
        n_estimators: trees, when fitted here.
        max_depth: depth limit, when fitted here.
        random_state: seed, when fitted here.
        feature_names: feature order of the training rows.
    """

    def __init__(
        self,
        artifact: str | None = None,
        n_estimators: int = 100,
        max_depth: int | None = 8,
        random_state: int = 42,
        feature_names: Sequence[str] | None = None,
    ) -> None:
        super().__init__(feature_names)
        if not isinstance(n_estimators, int) or n_estimators < 1:
            raise ValueError(f"n_estimators must be an integer >= 1, got {n_estimators!r}")
        self.artifact = artifact
        self.n_estimators = n_estimators
        self.max_depth = max_depth
        self.random_state = random_state
        self.model_: RandomForestClassifier | None = None
        if artifact is not None:
            state = artifacts.load(Path(artifact))
            self.model_ = state["model_"]
            self.feature_names_ = tuple(state["feature_names_"])

    def params(self) -> dict[str, Any]:
        """The parameters as given."""
        return {
            "artifact": self.artifact,
            "n_estimators": self.n_estimators,
            "max_depth": self.max_depth,
            "random_state": self.random_state,
            "feature_names": list(self.feature_names) if self.feature_names else None,
        }

    def fit(self, rows: np.ndarray, labels: np.ndarray) -> Self:
        """Train on a validated matrix and 0/1 labels (both classes needed)."""
        rows = self.check_rows(rows)
        labels = np.asarray(labels).astype(int)
        if set(np.unique(labels)) != {0, 1}:
            raise ValueError("training needs both normal (0) and anomalous (1) windows")
        self.model_ = RandomForestClassifier(
            n_estimators=self.n_estimators,
            max_depth=self.max_depth,
            random_state=self.random_state,
            class_weight="balanced",
        ).fit(rows, labels)
        return self

    @property
    def readiness(self) -> float:
        """1 once trained, else 0."""
        return 1.0 if self.model_ is not None else 0.0

    def learn_rows(self, rows: np.ndarray) -> None:
        """Validate only: a trained forest is frozen (live windows have no labels)."""
        self.check_rows(rows)

    def score_rows(self, rows: np.ndarray) -> np.ndarray:
        """Probability of the anomalous class; 0 before training."""
        rows = self.check_rows(rows)
        if self.model_ is None:
            return np.zeros(len(rows))
        return self.model_.predict_proba(rows)[:, 1]

    def save(self, path: Path) -> None:
        """Write the trained model as a skops artefact."""
        if self.model_ is None:
            raise ValueError("nothing to save: the forest is not trained")
        artifacts.save(
            {"model_": self.model_, "feature_names_": list(self.feature_names_ or ())}, path
        )

    def to_bytes(self) -> bytes:
        """Parameters and model as skops bytes."""
        return artifacts.dumps(
            {
                "params": {**self.params(), "artifact": None},
                "feature_names_": list(self.feature_names_) if self.feature_names_ else None,
                "model_": self.model_,
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
        return scorer
