"""The scorer contract every backend implements, the one state envelope, and input validation.

A scorer turns a feature dict (``{"clicks": 12.0, ...}``) into an anomaly score, higher = more
anomalous. It learns online (``learn_one`` / ``learn_many``), scores without learning
(``score_one`` / ``score_many``) and round-trips its whole state through bytes
(:class:`Stateful`: versioned msgpack, never pickle).

Feature order is fixed by the first dict a scorer sees (or by ``feature_names`` when given);
every later dict must carry exactly those keys with finite values.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar, Self

import msgpack
import numpy as np

from models.params import Parameterised, param_names


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
    wanted = set(names)
    if all(isinstance(x, Mapping) and x.keys() == wanted for x in X):
        try:  # the common case at once; anything odd is checked value by value below
            out = np.array([[x[n] for n in names] for x in X], dtype=np.float64)
        except (TypeError, ValueError):
            out = None
        if out is not None and out.shape == (len(X), len(names)) and np.isfinite(out).all():
            return out
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


class Stateful(Parameterised, ABC):
    """A model that round-trips through one envelope: its type, version, parameters and state.

    ``to_bytes`` packs ``{"type", "version", "params", "state"}`` with msgpack (bytes values
    allowed); ``from_bytes`` checks type and version, rebuilds ``cls(**params)`` and hands it the
    state. Subclasses implement :meth:`_get_state` / :meth:`_set_state` only.

    >>> class Counter(Stateful):
    ...     def __init__(self, step=1):
    ...         self.step, self.total_ = step, 0
    ...     def _get_state(self):
    ...         return self.total_
    ...     def _set_state(self, state):
    ...         self.total_ = state
    >>> c = Counter(step=2)
    >>> c.total_ = 6
    >>> copy = Counter.from_bytes(c.to_bytes())
    >>> copy.step, copy.total_
    (2, 6)
    >>> Stateful.from_bytes(c.to_bytes())
    Traceback (most recent call last):
    ...
    ValueError: expected a 'Stateful' state, got one of type 'Counter'
    >>> Counter.from_bytes(msgpack.packb({"type": "Counter", "version": 0}))
    Traceback (most recent call last):
    ...
    ValueError: 'Counter' state version 0 is not supported (expected 1)
    """

    #: Version of the ``state`` layout; bump it when :meth:`_get_state` changes.
    STATE_VERSION: ClassVar[int] = 1

    @classmethod
    def state_type(cls) -> str:
        """The ``type`` recorded in the envelope (the class name unless overridden)."""
        return cls.__name__

    @abstractmethod
    def _get_state(self) -> Any:
        """Learned state as msgpack-able values."""

    @abstractmethod
    def _set_state(self, state: Any) -> None:
        """Restore :meth:`_get_state` output into a freshly built instance."""

    def to_bytes(self) -> bytes:
        """Serialise parameters and learned state."""
        return msgpack.packb(
            {
                "type": self.state_type(),
                "version": self.STATE_VERSION,
                "params": self.params(),
                "state": self._get_state(),
            }
        )

    @classmethod
    def from_bytes(cls, data: bytes) -> Self:
        """Rebuild from :meth:`to_bytes` output; ``ValueError`` if it is not this type's state."""
        try:
            envelope = msgpack.unpackb(data)
        except (ValueError, TypeError, msgpack.UnpackException) as exc:
            raise ValueError(f"not a {cls.state_type()!r} state: {exc}") from None
        kind = envelope.get("type") if isinstance(envelope, dict) else None
        if kind != cls.state_type():
            raise ValueError(f"expected a {cls.state_type()!r} state, got one of type {kind!r}")
        if envelope.get("version") != cls.STATE_VERSION:
            raise ValueError(
                f"{kind!r} state version {envelope.get('version')!r} is not supported "
                f"(expected {cls.STATE_VERSION})"
            )
        obj = cls(**envelope["params"])
        obj._set_state(envelope["state"])
        return obj


class Scorer(Stateful):
    """Online anomaly scorer: higher score = more anomalous.

    This class fixes the feature order and validates every input once, then calls the backend's
    hooks on a validated float matrix: ``_learn`` / ``_score`` (and ``_attribute`` if
    :attr:`attributes`). Backends also implement ``_get_state`` / ``_set_state`` (extending this
    class's, which holds ``feature_names_``) and set :attr:`kind`, their name in the envelope and
    in :data:`models.backends.SCORER_TYPES`.

    Attributes:
        feature_names_: feature order learned from the first window (``None`` before it).
    """

    #: The backend's kind, e.g. ``"rcf"``.
    kind: ClassVar[str] = ""

    def __init__(self, feature_names: Sequence[str] | None = None) -> None:
        self.feature_names = feature_names
        self.feature_names_: tuple[str, ...] | None = (
            tuple(feature_names) if feature_names is not None else None
        )

    @classmethod
    def state_type(cls) -> str:
        """The backend's :attr:`kind`."""
        return cls.kind

    @classmethod
    def from_params(cls, params: Mapping[str, Any] | None = None) -> Self:
        """Build with ``params``; an unknown parameter raises ``ValueError`` naming it."""
        params = dict(params or {})
        for key in params:
            if key not in param_names(cls):
                raise ValueError(f"scorer {cls.kind!r}: unknown parameter {key!r}")
        return cls(**params)

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

    def learn_rows(self, rows: np.ndarray) -> None:
        """Learn a ``(n, d)`` matrix, row by row in order (validated here)."""
        self._learn(self.check_rows(rows))

    def score_rows(self, rows: np.ndarray) -> np.ndarray:
        """Score a ``(n, d)`` matrix without learning it (validated here)."""
        return self._score(self.check_rows(rows))

    def attribution_rows(self, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Per-feature HIGH and LOW parts of each row's score (if :attr:`attributes`)."""
        if not self.attributes:
            raise ValueError(f"scorer {self.kind!r} does not attribute scores")
        return self._attribute(self.check_rows(rows))

    @abstractmethod
    def _learn(self, rows: np.ndarray) -> None:
        """Learn a validated matrix, row by row in order."""

    @abstractmethod
    def _score(self, rows: np.ndarray) -> np.ndarray:
        """Score a validated matrix without learning it."""

    def _attribute(self, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """HIGH and LOW attribution of a validated matrix (backends that attribute)."""
        raise NotImplementedError

    @property
    def attributes(self) -> bool:
        """Whether :meth:`attribution_rows` explains scores per feature (not by default)."""
        return False

    @property
    def readiness(self) -> float:
        """Fraction 0..1 of the scorer's warm-up done (1 for scorers that need none)."""
        return 1.0

    def unit_score(self, raw: np.ndarray) -> np.ndarray:
        """Map raw scores onto 0..1 (identity, clipped, unless the backend knows its scale)."""
        return np.clip(raw, 0.0, 1.0)

    def _get_state(self) -> dict[str, Any]:
        return {"feature_names_": list(self.feature_names_) if self.feature_names_ else None}

    def _set_state(self, state: Mapping[str, Any]) -> None:
        if state["feature_names_"] is not None:
            self.feature_names_ = tuple(state["feature_names_"])
