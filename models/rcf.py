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
from typing import Any, Self

import krcf
import msgpack
import numpy as np

from models.base import Scorer

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
        for name, value, low in (
            ("num_trees", num_trees, 1),
            ("sample_size", sample_size, 2),
            ("shingle_size", shingle_size, 1),
        ):
            if not isinstance(value, int) or value < low:
                raise ValueError(f"{name} must be an integer >= {low}, got {value!r}")
        if not time_decay > 0:
            raise ValueError(f"time_decay must be > 0, got {time_decay!r}")
        if output_after is not None and (not isinstance(output_after, int) or output_after < 1):
            raise ValueError(f"output_after must be an integer >= 1, got {output_after!r}")
        self.num_trees = num_trees
        self.sample_size = sample_size
        self.time_decay = time_decay
        self.shingle_size = shingle_size
        self.output_after = output_after
        self.random_seed = random_seed
        self.forest_: krcf.RandomCutForest | None = None

    def params(self) -> dict[str, Any]:
        """The parameters as given."""
        return {
            "num_trees": self.num_trees,
            "sample_size": self.sample_size,
            "time_decay": self.time_decay,
            "shingle_size": self.shingle_size,
            "output_after": self.output_after,
            "random_seed": self.random_seed,
            "feature_names": list(self.feature_names) if self.feature_names else None,
        }

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
    def is_ready(self) -> bool:
        """Whether the forest has learned enough points to give non-zero scores."""
        return self.forest_ is not None and self.forest_.is_output_ready()

    @property
    def readiness(self) -> float:
        """Fraction 0..1 of the warm-up (``output_after`` points) done."""
        if self.forest_ is None:
            return 0.0
        needed = self.output_after or max(1, self.sample_size // 4)
        return min(1.0, self.forest_.entries_seen() / needed)

    def learn_rows(self, rows: np.ndarray) -> None:
        """Learn rows in order."""
        rows = self.check_rows(rows)
        forest = self._forest(rows.shape[1])
        for row in rows:
            forest.update(row)

    def score_rows(self, rows: np.ndarray) -> np.ndarray:
        """Score rows (KDA scale) without learning them."""
        rows = self.check_rows(rows)
        forest = self._forest(rows.shape[1])
        return np.fromiter((forest.score(row) for row in rows), dtype=np.float64, count=len(rows))

    def score_and_learn_row(self, row: np.ndarray, learn: bool = True) -> float:
        """Score one validated row, then learn it if ``learn`` (the causal step)."""
        forest = self._forest(len(row))
        score = forest.score(row)
        if learn:
            forest.update(row)
        return score

    def attribution_rows(self, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Per-feature HIGH and LOW attribution of each row (summed over shingle positions).

        The HIGH and LOW parts of a row add up to its score.
        """
        rows = self.check_rows(rows)
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

    def to_bytes(self) -> bytes:
        """Parameters, feature order and the forest (krcf's own msgpack)."""
        return msgpack.packb(
            {
                "params": self.params(),
                "feature_names_": list(self.feature_names_) if self.feature_names_ else None,
                "forest_": self.forest_.to_msgpack() if self.forest_ is not None else None,
            }
        )

    @classmethod
    def from_bytes(cls, data: bytes) -> Self:
        """Rebuild from :meth:`to_bytes`."""
        state: Mapping[str, Any] = msgpack.unpackb(data)
        scorer = cls(**state["params"])
        if state["feature_names_"] is not None:
            scorer.feature_names_ = tuple(state["feature_names_"])
        if state["forest_"] is not None:
            scorer.forest_ = krcf.RandomCutForest.from_msgpack(state["forest_"])
        return scorer
