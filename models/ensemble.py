"""An ensemble scorer: several leaf backends on the same inputs, their 0..1 scores combined."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from models.base import Scorer
from models.hst import HalfSpaceTreesScorer
from models.isolation_forest import IsolationForestScorer
from models.params import one_of
from models.rcf import RandomCutForestScorer
from models.supervised_forest import SupervisedForestScorer

COMBINE = ("mean", "max")
#: The backends an ensemble can combine, by kind.
MEMBER_TYPES: dict[str, type[Scorer]] = {
    cls.kind: cls
    for cls in (
        RandomCutForestScorer,
        HalfSpaceTreesScorer,
        IsolationForestScorer,
        SupervisedForestScorer,
    )
}


def make_member(kind: str, params: Mapping[str, Any] | None = None) -> Scorer:
    """Build a leaf backend of ``kind``; an unknown kind or parameter raises ``ValueError``.

    >>> make_member("hst", {"n_trees": 3}).n_trees
    3
    >>> make_member("ensemble")
    Traceback (most recent call last):
    ...
    ValueError: unknown ensemble member 'ensemble'; known: ['hst', 'iforest', 'rcf', 'supervised-forest']
    """  # noqa: E501
    if kind not in MEMBER_TYPES:
        raise ValueError(f"unknown ensemble member {kind!r}; known: {sorted(MEMBER_TYPES)}")
    return MEMBER_TYPES[kind].from_params(params)


class EnsembleScorer(Scorer):
    """Combines members' unit (0..1) scores by their mean or maximum.

    Args:
        members: ``[{"kind": ..., "params": {...}}, ...]`` — leaf backend kinds and parameters.
        combine: ``"mean"`` or ``"max"``.
        feature_names: feature order; default: the keys of the first window seen.

    >>> e = EnsembleScorer([{"kind": "rcf", "params": {"num_trees": 10, "sample_size": 16}},
    ...                     {"kind": "hst", "params": {"n_trees": 5, "height": 4,
    ...                                                "window_size": 8}}])
    >>> e.learn_many([{"z": float(i % 3)} for i in range(40)])
    >>> e.score_one({"z": 9.0}) > e.score_one({"z": 1.0})
    True
    """

    kind = "ensemble"
    CHECKS = (one_of("combine", COMBINE),)

    def __init__(
        self,
        members: Sequence[Mapping[str, Any]],
        combine: str = "mean",
        feature_names: Sequence[str] | None = None,
    ) -> None:
        super().__init__(feature_names)
        self.members = [
            {"kind": m["kind"], "params": dict(m.get("params") or {})} for m in members
        ]
        self.combine = combine
        self.check_params()
        if not members:
            raise ValueError("an ensemble needs at least one member")
        self.members_ = [make_member(m["kind"], m["params"]) for m in self.members]

    @property
    def attributes(self) -> bool:
        """Whether some member attributes scores (its attribution is the ensemble's)."""
        return any(m.attributes for m in self.members_)

    @property
    def readiness(self) -> float:
        """The least-ready member's readiness."""
        return min(m.readiness for m in self.members_)

    def _learn(self, rows: np.ndarray) -> None:
        """Every member learns the rows."""
        for member in self.members_:
            member.feature_names_ = self.feature_names_
            member._learn(rows)

    def _score(self, rows: np.ndarray) -> np.ndarray:
        """Combined unit scores of the members."""
        scores = np.stack([m.unit_score(m._score(rows)) for m in self.members_])
        return scores.mean(axis=0) if self.combine == "mean" else scores.max(axis=0)

    def _attribute(self, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Attribution of the first member that attributes (a random cut forest)."""
        return next(m for m in self.members_ if m.attributes)._attribute(rows)

    def _get_state(self) -> dict[str, Any]:
        """Each member's state."""
        return {**super()._get_state(), "members_": [m._get_state() for m in self.members_]}

    def _set_state(self, state: Mapping[str, Any]) -> None:
        super()._set_state(state)
        for member, member_state in zip(self.members_, state["members_"], strict=True):
            member._set_state(member_state)
