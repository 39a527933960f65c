"""Half-Space Trees from ``river``, on inputs rescaled to the [0, 1] space the trees split.

River's trees assume every feature lies in [0, 1]; the detector's inputs are standardised values
clipped to ``±limit``, so this scorer maps ``[-limit, limit]`` onto ``[0, 1]`` (clipping outside).
State is kept compact and pickle-free: the trees' shape follows from the seed and the feature
names, so only the node masses are stored.
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from river.anomaly import HalfSpaceTrees
from river.anomaly.hst import make_padded_tree

from models.base import Scorer
from models.params import integer, positive


class HalfSpaceTreesScorer(Scorer):
    """River's ``HalfSpaceTrees``; score 0..1, higher = more anomalous.

    Args:
        n_trees: number of trees.
        height: depth of each tree.
        window_size: windows per mass window (the reference mass is the previous window).
        limit: inputs are expected in ``[-limit, limit]``.
        random_seed: seed of the tree shapes.
        feature_names: feature order; default: the keys of the first window seen.

    >>> hst = HalfSpaceTreesScorer(n_trees=5, height=4, window_size=20, limit=5.0)
    >>> hst.learn_many([{"z": (i % 5) / 5} for i in range(60)])
    >>> hst.score_one({"z": 4.9}) > hst.score_one({"z": 0.4})
    True
    """

    kind = "hst"
    CHECKS = (
        integer("n_trees", 1),
        integer("height", 1),
        integer("window_size", 1),
        positive("limit"),
    )

    def __init__(
        self,
        n_trees: int = 10,
        height: int = 8,
        window_size: int = 250,
        limit: float = 10.0,
        random_seed: int = 42,
        feature_names: Sequence[str] | None = None,
    ) -> None:
        super().__init__(feature_names)
        self.n_trees = n_trees
        self.height = height
        self.window_size = window_size
        self.limit = limit
        self.random_seed = random_seed
        self.check_params()
        self.model_ = HalfSpaceTrees(
            n_trees=n_trees, height=height, window_size=window_size, seed=random_seed
        )

    def _dicts(self, rows: np.ndarray) -> list[dict[str, float]]:
        names = self.feature_names_ or tuple(f"x{j}" for j in range(rows.shape[1]))
        if self.feature_names_ is None:
            self.feature_names_ = names
        unit = np.clip((rows + self.limit) / (2 * self.limit), 0.0, 1.0)
        return [dict(zip(names, row.tolist(), strict=True)) for row in unit]

    @property
    def readiness(self) -> float:
        """Fraction of the first mass window seen (HST scores 0 until it is complete)."""
        if not self.model_._first_window:
            return 1.0
        return self.model_.counter / self.window_size

    def _learn(self, rows: np.ndarray) -> None:
        for x in self._dicts(rows):
            self.model_.learn_one(x)

    def _score(self, rows: np.ndarray) -> np.ndarray:
        xs = self._dicts(rows)
        return np.array([float(self.model_.score_one(x)) for x in xs], dtype=np.float64)

    def _nodes(self) -> list[Any]:
        return [node for t in self.model_.trees for node in t.iter_dfs()]

    def _get_state(self) -> dict[str, Any]:
        """Counters and node masses (the tree shapes follow from the seed)."""
        nodes = self._nodes()
        masses = np.array([[n.l_mass, n.r_mass] for n in nodes], dtype=np.uint32).reshape(-1, 2)
        return {
            **super()._get_state(),
            "built": bool(self.model_.trees),
            "counter": self.model_.counter,
            "first_window": self.model_._first_window,
            "masses": masses.tobytes(),
        }

    def _set_state(self, state: Mapping[str, Any]) -> None:
        super()._set_state(state)
        model = self.model_
        if state["built"]:
            rng = random.Random(self.random_seed)
            model.rng = rng
            limits = {name: (0.0, 1.0) for name in sorted(self.feature_names_)}
            model.trees = [
                make_padded_tree(
                    limits=dict(limits), height=model.height, padding=0.15, rng=rng,
                    r_mass=0, l_mass=0,
                )
                for _ in range(model.n_trees)
            ]
            masses = np.frombuffer(state["masses"], dtype=np.uint32).reshape(-1, 2)
            for node, (l_mass, r_mass) in zip(self._nodes(), masses.tolist(), strict=True):
                node.l_mass, node.r_mass = l_mass, r_mass
        model.counter = state["counter"]
        model._first_window = state["first_window"]
