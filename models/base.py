"""The scorer contract every backend implements, and the one place inputs are validated.

A scorer turns a feature dict (``{"clicks": 12.0, ...}``) into an anomaly score, higher = more
anomalous. It learns online (``learn_one`` / ``learn_many``), scores without learning
(``score_one`` / ``score_many``) and round-trips its whole state through bytes.

Feature order is fixed by the first dict a scorer sees (or by ``feature_names`` when given);
every later dict must carry exactly those keys with finite values.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from typing import Self

import numpy as np


def feature_names_of(x: Mapping[str, float]) -> tuple[str, ...]:
    """Return the feature names of one window, in the order given.

    >>> feature_names_of({"clicks": 1.0, "ctr": 0.1})
    ('clicks', 'ctr')
    """
    if not isinstance(x, Mapping) or not x:
        raise ValueError(f"a window's features must be a non-empty mapping, got {x!r}")
    return tuple(x)


def to_matrix(X: Sequence[Mapping[str, float]], names: Sequence[str]) -> np.ndarray:
    """Stack feature dicts into a float matrix in ``names`` order, rejecting bad input.

    Raises ``ValueError`` naming the problem: a missing or unexpected feature (which includes a
    wrong dimension), a non-numeric, NaN or infinite value.

    >>> to_matrix([{"a": 1, "b": 2.5}], ["a", "b"])
    array([[1. , 2.5]])
    >>> to_matrix([{"a": float("nan"), "b": 0}], ["a", "b"])
    Traceback (most recent call last):
    ...
    ValueError: feature 'a' is not finite: nan
    >>> to_matrix([{"a": 1}], ["a", "b"])
    Traceback (most recent call last):
    ...
    ValueError: window has 1 features, expected 2 (missing: ['b'])
    """
    names = list(names)
    out = np.empty((len(X), len(names)), dtype=np.float64)
    for i, x in enumerate(X):
        if not isinstance(x, Mapping):
            raise ValueError(f"a window's features must be a mapping, got {type(x).__name__}")
        if len(x) != len(names) or any(n not in x for n in names):
            missing = [n for n in names if n not in x]
            extra = [k for k in x if k not in names]
            detail = ", ".join(
                part
                for part in (
                    f"missing: {missing}" if missing else "",
                    f"unexpected: {extra}" if extra else "",
                )
                if part
            )
            raise ValueError(f"window has {len(x)} features, expected {len(names)} ({detail})")
        for j, n in enumerate(names):
            v = x[n]
            try:
                f = float(v)
            except (TypeError, ValueError):
                raise ValueError(f"feature {n!r} is not a number: {v!r}") from None
            if not math.isfinite(f):
                raise ValueError(f"feature {n!r} is not finite: {f}")
            out[i, j] = f
    return out


class Scorer(ABC):
    """Online anomaly scorer: higher score = more anomalous.

    Subclasses implement the array methods ``_learn_rows`` / ``_score_rows`` and the state
    methods; this class fixes the feature order and validates every input once.

    Attributes:
        feature_names_: feature order learned from the first window (``None`` before it).
    """

    def __init__(self, feature_names: Sequence[str] | None = None) -> None:
        self.feature_names = tuple(feature_names) if feature_names is not None else None
        self.feature_names_: tuple[str, ...] | None = self.feature_names

    # -- validation -------------------------------------------------------------------------
    def rows(self, X: Sequence[Mapping[str, float]]) -> np.ndarray:
        """Validate windows and return them as a matrix in this scorer's feature order."""
        if isinstance(X, Mapping):
            raise ValueError("expected a sequence of feature mappings, got one mapping")
        if self.feature_names_ is None:
            if not X:
                return np.empty((0, 0))
            self.feature_names_ = feature_names_of(X[0])
        return to_matrix(X, self.feature_names_)

    # -- the contract -----------------------------------------------------------------------
    def learn_one(self, x: Mapping[str, float]) -> None:
        """Learn one window."""
        self.learn_many([x])

    def score_one(self, x: Mapping[str, float]) -> float:
        """Score one window without learning it."""
        return float(self.score_many([x])[0])

    def learn_many(self, X: Sequence[Mapping[str, float]]) -> None:
        """Learn windows in order."""
        rows = self.rows(X)
        if len(rows):
            self.learn_rows(rows)

    def score_many(self, X: Sequence[Mapping[str, float]]) -> np.ndarray:
        """Score windows without learning them."""
        rows = self.rows(X)
        return self.score_rows(rows) if len(rows) else np.empty(0)

    def check_rows(self, rows: np.ndarray) -> np.ndarray:
        """Validate an already-ordered float matrix (the detector's fast path)."""
        rows = np.asarray(rows, dtype=np.float64)
        if rows.ndim != 2:
            raise ValueError(f"expected a 2-d matrix of windows, got {rows.ndim}-d")
        if self.feature_names_ is not None and rows.shape[1] != len(self.feature_names_):
            raise ValueError(
                f"windows have {rows.shape[1]} features, expected {len(self.feature_names_)}"
            )
        if not np.isfinite(rows).all():
            raise ValueError("windows contain NaN or infinite values")
        return rows

    @abstractmethod
    def learn_rows(self, rows: np.ndarray) -> None:
        """Learn a validated ``(n, d)`` matrix, row by row in order."""

    @abstractmethod
    def score_rows(self, rows: np.ndarray) -> np.ndarray:
        """Score a validated ``(n, d)`` matrix without learning it."""

    @property
    def readiness(self) -> float:
        """Fraction 0..1 of the scorer's warm-up done (1 for scorers that need none)."""
        return 1.0

    def unit_score(self, raw: np.ndarray) -> np.ndarray:
        """Map raw scores onto 0..1 (identity, clipped, unless the backend knows its scale)."""
        return np.clip(raw, 0.0, 1.0)

    @abstractmethod
    def to_bytes(self) -> bytes:
        """Serialise parameters and learned state."""

    @classmethod
    @abstractmethod
    def from_bytes(cls, data: bytes) -> Self:
        """Rebuild a scorer from :meth:`to_bytes` output."""
