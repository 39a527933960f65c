"""A supervised ``RandomForestClassifier`` trained from labelled windows.

The score is the forest's probability that a window is anomalous (0..1). The model is trained
offline (:func:`models.training.train_supervised_forest`) and frozen: online it scores but does
not learn, because live windows carry no labels. Its artefact is a skops file.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Self

import numpy as np
from sklearn.ensemble import RandomForestClassifier

from models import artifacts
from models.base import Scorer
from models.params import integer


class SupervisedForestScorer(Scorer):
    """Probability of the anomalous class from a trained random forest.

    Args:
        n_estimators: trees, when fitted here.
        max_depth: depth limit, when fitted here.
        random_state: seed, when fitted here.
        feature_names: feature order of the training rows.

    >>> import tempfile
    >>> rows = np.array([[0.0], [0.1], [5.0], [5.2]] * 5)
    >>> forest = SupervisedForestScorer(n_estimators=5, feature_names=["x"])
    >>> forest = forest.fit(rows, [0, 0, 1, 1] * 5)
    >>> path = Path(tempfile.mkdtemp()) / "rf.skops"
    >>> forest.save(path)
    >>> loaded = SupervisedForestScorer.load(path)
    >>> bool(loaded.score_rows(np.array([[5.1]]))[0] > 0.5), loaded.readiness
    (True, 1.0)
    """

    kind = "supervised-forest"
    CHECKS = (integer("n_estimators", 1),)

    def __init__(
        self,
        n_estimators: int = 100,
        max_depth: int | None = 8,
        random_state: int = 42,
        feature_names: Sequence[str] | None = None,
    ) -> None:
        super().__init__(feature_names)
        self.n_estimators = n_estimators
        self.max_depth = max_depth
        self.random_state = random_state
        self.check_params()
        self.model_: RandomForestClassifier | None = None

    @classmethod
    def load(cls, path: str | Path, **params: Any) -> Self:
        """A forest trained and written by :meth:`save`, ready to score (``params`` as above)."""
        scorer = super().from_params(params)
        state = artifacts.load(Path(path))
        scorer.model_ = state["model_"]
        scorer.feature_names_ = tuple(state["feature_names_"])
        return scorer

    @classmethod
    def from_params(cls, params: Mapping[str, Any] | None = None) -> Self:
        """Build with ``params``; ``artifact`` (a path) loads a trained forest (:meth:`load`)."""
        params = dict(params or {})
        artifact = params.pop("artifact", None)
        return super().from_params(params) if artifact is None else cls.load(artifact, **params)

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

    def _learn(self, rows: np.ndarray) -> None:
        """Nothing: a trained forest is frozen (live windows have no labels)."""

    def _score(self, rows: np.ndarray) -> np.ndarray:
        """Probability of the anomalous class; 0 before training."""
        if self.model_ is None:
            return np.zeros(len(rows))
        return self.model_.predict_proba(rows)[:, 1]

    def save(self, path: str | Path) -> None:
        """Write the trained model as a skops artefact."""
        if self.model_ is None:
            raise ValueError("nothing to save: the forest is not trained")
        artifacts.save(
            {"model_": self.model_, "feature_names_": list(self.feature_names_ or ())}, path
        )

    def _get_state(self) -> dict[str, Any]:
        """The model as skops bytes."""
        model = artifacts.dumps(self.model_) if self.model_ is not None else None
        return {**super()._get_state(), "model_": model}

    def _set_state(self, state: Mapping[str, Any]) -> None:
        super()._set_state(state)
        if state["model_"] is not None:
            self.model_ = artifacts.loads(state["model_"])
