"""A supervised ``RandomForestClassifier`` trained from labelled windows.

The score is the forest's probability that a window is anomalous (0..1). The model is trained
offline (:func:`models.training.train_supervised_forest`) and frozen: online it scores but does
not learn, because live windows carry no labels. Its artefact is a skops file, loaded only with
its SHA-256 pinned (``artifact_sha256``; see :mod:`models.artifacts` and SECURITY.md).
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
    >>> pin = forest.save(path)  # the artefact's SHA-256, to pin wherever it is loaded
    >>> loaded = SupervisedForestScorer.load(path, sha256=pin)
    >>> bool(loaded.score_rows(np.array([[5.1]]))[0] > 0.5), loaded.readiness
    (True, 1.0)
    >>> SupervisedForestScorer.from_params({"artifact": str(path)})
    Traceback (most recent call last):
    ...
    ValueError: scorer 'supervised-forest': 'artifact' needs 'artifact_sha256' (its SHA-256 pin)
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
    def load(cls, path: str | Path, sha256: str, **params: Any) -> Self:
        """A forest written by :meth:`save`, ready to score, if its SHA-256 is the pin ``sha256``.

        ``params`` as above. The pin is what :meth:`save` returned (or
        :func:`models.artifacts.file_sha256` of the file); a file changed since is refused.
        """
        scorer = super().from_params(params)
        state = artifacts.load(Path(path), sha256=sha256)
        scorer.model_ = state["model_"]
        scorer.feature_names_ = tuple(state["feature_names_"])
        return scorer

    @classmethod
    def from_params(cls, params: Mapping[str, Any] | None = None) -> Self:
        """Build with ``params``; ``artifact`` (a path) + ``artifact_sha256`` load a trained forest.

        >>> SupervisedForestScorer.from_params({"n_estimators": 3}).readiness
        0.0
        """
        params = dict(params or {})
        artifact = params.pop("artifact", None)
        sha256 = params.pop("artifact_sha256", None)
        if artifact is None:
            if sha256 is not None:
                raise ValueError(f"scorer {cls.kind!r}: 'artifact_sha256' without 'artifact'")
            return super().from_params(params)
        if not sha256:
            raise ValueError(
                f"scorer {cls.kind!r}: 'artifact' needs 'artifact_sha256' (its SHA-256 pin)"
            )
        return cls.load(artifact, sha256, **params)

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

    def save(self, path: str | Path) -> str:
        """Write the trained model as a skops artefact; returns its SHA-256 (the pin to load it)."""
        if self.model_ is None:
            raise ValueError("nothing to save: the forest is not trained")
        return artifacts.save(
            {"model_": self.model_, "feature_names_": list(self.feature_names_ or ())}, path
        )

    def _get_state(self) -> dict[str, Any]:
        """The model as skops bytes."""
        model = artifacts.dumps(self.model_) if self.model_ is not None else None
        return {**super()._get_state(), "model_": model}

    def _set_state(self, state: Mapping[str, Any]) -> None:
        super()._set_state(state)
        if state["model_"] is not None:
            # the job's own state (a checkpoint it wrote): no pin, skops' trusted types only
            self.model_ = artifacts.loads(state["model_"])
