"""Hold-off: one flag per episode, unless it worsens.

After a flag, an entity's next windows are flagged only if they score higher than that flag.

Its per-entity state (windows since the last flag, that flag's score) is part of the detector's
entity state, next to the baseline's.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from models.params import Parameterised, integer

#: ``since_flag`` of an entity never flagged.
NEVER = 2**31 - 1


@dataclass(frozen=True)
class HoldOffBatch:
    """Decoded hold-off state of a batch of entities.

    Attributes:
        since_flag: windows since the entity was last flagged (:data:`NEVER` if never).
        flag_score: the score of that last flag (0 if never).
    """

    since_flag: np.ndarray
    flag_score: np.ndarray


class HoldOff(Parameterised):
    """After a flag, the entity's next ``windows`` windows need a higher score to be flagged.

    Args:
        windows: how many windows a flag holds off the next one; 0 = off.

    >>> h = HoldOff(windows=2)
    >>> state = h.update(np.array([True]), np.array([0.7]), h.decode([None]))
    >>> h.allows(np.array([0.6]), state), h.allows(np.array([0.8]), state)
    (array([False]), array([ True]))
    >>> h.encode(state), h.encode(h.decode([None]))
    ([[0, 0.7]], [None])
    """

    CHECKS = (integer("windows", 0, label="hold_off"),)

    def __init__(self, windows: int = 0) -> None:
        self.windows = windows
        self.check_params()

    def allows(self, scores: np.ndarray, batch: HoldOffBatch) -> np.ndarray:
        """Per window: not held off, or scoring above the flag that holds it off."""
        if not self.windows:
            return np.ones(len(scores), dtype=bool)
        held = batch.since_flag < self.windows
        return ~held | (scores > batch.flag_score)

    def update(self, flagged: np.ndarray, scores: np.ndarray, batch: HoldOffBatch) -> HoldOffBatch:
        """The state after a window: a flag restarts the count and records its score."""
        return HoldOffBatch(
            since_flag=np.where(flagged, 0, np.minimum(batch.since_flag + 1, NEVER)),
            flag_score=np.where(flagged, scores, batch.flag_score),
        )

    def decode(self, parts: Sequence[Sequence[Any] | None]) -> HoldOffBatch:
        """Decode per-entity :meth:`encode` parts (``None`` = never flagged) into arrays."""
        since_flag = np.full(len(parts), NEVER, dtype=np.int64)
        flag_score = np.zeros(len(parts))
        for i, part in enumerate(parts):
            if part is not None:
                since_flag[i], flag_score[i] = part
        return HoldOffBatch(since_flag, flag_score)

    def encode(self, batch: HoldOffBatch) -> list[list[Any] | None]:
        """Per entity, msgpack-able parts: ``None`` if never flagged, else the two values."""
        return [
            None if since == NEVER and score == 0.0 else [int(since), float(score)]
            for since, score in zip(batch.since_flag, batch.flag_score, strict=True)
        ]
