"""An ensemble scorer: several scorers on the same inputs, their 0..1 scores combined."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Self

import msgpack
import numpy as np

from models.base import Scorer

COMBINE = ("mean", "max")


class EnsembleScorer(Scorer):
    """Combines members' unit (0..1) scores by their mean or maximum.

    Args:
        members: ``[{"kind": ..., "params": {...}}, ...]`` — scorer kinds and parameters.
        combine: ``"mean"`` or ``"max"``.
        feature_names: feature order; default: the keys of the first window seen.

    >>> e = EnsembleScorer([{"kind": "rcf", "params": {"num_trees": 10, "sample_size": 16}},
    ...                     {"kind": "hst", "params": {"n_trees": 5, "height": 4,
    ...                                                "window_size": 8}}])
    >>> e.learn_many([{"z": float(i % 3)} for i in range(40)])
    >>> e.score_one({"z": 9.0}) > e.score_one({"z": 1.0})
    True
    """

    def __init__(
        self,
        members: Sequence[Mapping[str, Any]],
        combine: str = "mean",
        feature_names: Sequence[str] | None = None,
    ) -> None:
        from models.scorers import make_scorer  # the registry of kinds includes this class

        super().__init__(feature_names)
        if combine not in COMBINE:
            raise ValueError(f"combine must be one of {COMBINE}, got {combine!r}")
        if not members:
            raise ValueError("an ensemble needs at least one member")
        self.members = [
            {"kind": m["kind"], "params": dict(m.get("params") or {})} for m in members
        ]
        self.combine = combine
        self.members_ = [make_scorer(m["kind"], m["params"]) for m in self.members]

    def params(self) -> dict[str, Any]:
        """The parameters as given."""
        return {
            "members": self.members,
            "combine": self.combine,
            "feature_names": list(self.feature_names) if self.feature_names else None,
        }

    @property
    def readiness(self) -> float:
        """The least-ready member's readiness."""
        return min(m.readiness for m in self.members_)

    def learn_rows(self, rows: np.ndarray) -> None:
        """Every member learns the rows."""
        rows = self.check_rows(rows)
        for member in self.members_:
            member.feature_names_ = self.feature_names_
            member.learn_rows(rows)

    def score_rows(self, rows: np.ndarray) -> np.ndarray:
        """Combined unit scores of the members."""
        rows = self.check_rows(rows)
        scores = np.stack([m.unit_score(m.score_rows(rows)) for m in self.members_])
        return scores.mean(axis=0) if self.combine == "mean" else scores.max(axis=0)

    def attribution_rows(self, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Attribution of the first member that has one (a random cut forest)."""
        for member in self.members_:
            if hasattr(member, "attribution_rows"):
                return member.attribution_rows(rows)
        raise AttributeError("no member of this ensemble attributes scores")

    def to_bytes(self) -> bytes:
        """Parameters and each member's bytes."""
        return msgpack.packb(
            {
                "params": self.params(),
                "feature_names_": list(self.feature_names_) if self.feature_names_ else None,
                "members_": [m.to_bytes() for m in self.members_],
            }
        )

    @classmethod
    def from_bytes(cls, data: bytes) -> Self:
        """Rebuild from :meth:`to_bytes`."""
        state = msgpack.unpackb(data)
        scorer = cls(**state["params"])
        if state["feature_names_"] is not None:
            scorer.feature_names_ = tuple(state["feature_names_"])
        scorer.members_ = [
            type(m).from_bytes(b) for m, b in zip(scorer.members_, state["members_"], strict=True)
        ]
        return scorer
