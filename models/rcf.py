"""Random cut forest scorer on ``krcf``, with Kinesis Data Analytics' parameters and defaults.

KDA's ``RANDOM_CUT_FOREST(..., numberOfTrees, subSampleSize, timeDecay, shingleSize)`` defaults to
100 trees, a sub-sample of 256 points per tree, a time decay of 100000 (krcf's ``lambda`` is its
inverse) and no shingling. Raw scores are KDA's ``ANOMALY_SCORE`` scale, 0..log2(sub-sample);
:meth:`RandomCutForestScorer.unit_score` divides by that maximum. Attribution gives KDA's
``ANOMALY_EXPLANATION`` (per feature: a HIGH and a LOW part).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import krcf
import numpy as np

from models.base import Scorer
from models.params import integer, positive

KDA_DEFAULTS: dict[str, Any] = {
    "num_trees": 100,
    "sample_size": 256,
    "time_decay": 100_000,
    "shingle_size": 1,
}


class RandomCutForestScorer(Scorer):
    """Random cut forest; scores are KDA's ``ANOMALY_SCORE``.

    Args:
        num_trees: trees in the forest (KDA ``numberOfTrees``).
        sample_size: points kept per tree (KDA ``subSampleSize``).
        time_decay: how many recent points the sample favours (KDA ``timeDecay``).
        shingle_size: consecutive windows concatenated into one point (KDA ``shingleSize``).
        output_after: points learned before scores are non-zero (default: a quarter of
            ``sample_size``, as in AWS' RCF).
        random_seed: fixes the forest's randomness: same seed and inputs give the same scores.
        feature_names: feature order; default: the keys of the first window seen.

    >>> rcf = RandomCutForestScorer(num_trees=20, sample_size=32, random_seed=7)
    >>> rcf.learn_many([{"x": float(i % 3)} for i in range(64)])
    >>> rcf.score_one({"x": 40.0}) > 2 * rcf.score_one({"x": 1.0})
    True
    """

    kind = "rcf"
    CHECKS = (
        integer("num_trees", 1),
        integer("sample_size", 2),
        integer("shingle_size", 1),
        positive("time_decay"),
        integer("output_after", 1, optional=True),
    )

    def __init__(
        self,
        num_trees: int = 100,
        sample_size: int = 256,
        time_decay: float = 100_000,
        shingle_size: int = 1,
        output_after: int | None = None,
        random_seed: int = 42,
        feature_names: Sequence[str] | None = None,
    ) -> None:
        super().__init__(feature_names)
        self.num_trees = num_trees
        self.sample_size = sample_size
        self.time_decay = time_decay
        self.shingle_size = shingle_size
        self.output_after = output_after
        self.random_seed = random_seed
        self.check_params()
        self.forest_: krcf.RandomCutForest | None = None

    def _forest(self, dimensions: int) -> krcf.RandomCutForest:
        if self.forest_ is None:
            options: krcf.RandomCutForestOptions = {
                "dimensions": dimensions,
                "shingle_size": self.shingle_size,
                "num_trees": self.num_trees,
                "sample_size": self.sample_size,
                "output_after": self.output_after or max(1, self.sample_size // 4),
                "random_seed": self.random_seed,
                "lambda": 1.0 / self.time_decay,
            }
            if self.shingle_size > 1:
                options["internal_shingling"] = True
            self.forest_ = krcf.RandomCutForest(options)
        return self.forest_

    @property
    def max_score(self) -> float:
        """Top of KDA's score scale: log2(sample_size)."""
        return math.log2(self.sample_size)

    @property
    def attributes(self) -> bool:
        """Yes: KDA's ``ANOMALY_EXPLANATION``."""
        return True

    @property
    def readiness(self) -> float:
        """Fraction 0..1 of the warm-up (``output_after`` points) done."""
        if self.forest_ is None:
            return 0.0
        needed = self.output_after or max(1, self.sample_size // 4)
        return min(1.0, self.forest_.entries_seen() / needed)

    def _learn(self, rows: np.ndarray) -> None:
        forest = self._forest(rows.shape[1])
        for row in rows:
            forest.update(row)

    def _score(self, rows: np.ndarray) -> np.ndarray:
        forest = self._forest(rows.shape[1])
        return np.fromiter((forest.score(row) for row in rows), dtype=np.float64, count=len(rows))

    def _attribute(self, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Per-feature HIGH and LOW parts (summed over shingle positions), summing to the score."""
        forest = self._forest(rows.shape[1])
        d = rows.shape[1]
        high = np.zeros_like(rows)
        low = np.zeros_like(rows)
        for i, row in enumerate(rows):
            div = forest.attribution(row)
            high[i] = np.asarray(div["high"]).reshape(-1, d).sum(axis=0)
            low[i] = np.asarray(div["low"]).reshape(-1, d).sum(axis=0)
        return high, low

    def unit_score(self, raw: np.ndarray) -> np.ndarray:
        """KDA score / log2(sample_size), clipped to 0..1."""
        return np.clip(np.asarray(raw) / self.max_score, 0.0, 1.0)

    def _get_state(self) -> dict[str, Any]:
        forest = self.forest_.to_msgpack() if self.forest_ is not None else None
        return {**super()._get_state(), "forest_": forest}

    def _set_state(self, state: Mapping[str, Any]) -> None:
        super()._set_state(state)
        if state["forest_"] is not None:
            self.forest_ = krcf.RandomCutForest.from_msgpack(state["forest_"])
