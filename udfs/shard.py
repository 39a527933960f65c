"""One keyed-state shard of the scoring operator, in plain Python (no Flink).

The job keys entity windows by *shard* — ``"<entity_type>#<n>"``, ``n`` a stable hash of the
entity id (:func:`shard_key`) — so one shared detector (e.g. a random cut forest) learns from
many entities while each entity keeps its own small state. A shard holds its entities and the
rows waiting for their window to close (:class:`ShardState`); :class:`ShardWindows` closes one
window end: it adds an empty window for each entity that went silent (so an outage is scored,
not missed — for at most ``max_gap_windows`` windows, and never at the end of a bounded input),
runs the detector over the batch and builds one record per window.

>>> shard_key("ad", "ad-0007", 4)
'ad#3'
"""

from __future__ import annotations

import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from models.detector import WindowDetector
from models.features import FEATURE_NAMES
from udfs.scored_window import build_record


def shard_key(entity_type: str, entity_id: str, shards: int) -> str:
    """Stable keyed-state shard of an entity (crc32: the same on every worker and restart)."""
    return f"{entity_type}#{zlib.crc32(entity_id.encode()) % shards}"


@dataclass
class EntityEntry:
    """What the job keeps per entity: the detector's entity state and when it was last seen."""

    state: bytes | None
    last_seen_ms: int  # window_end of the entity's last real (non-synthetic) window


@dataclass(frozen=True)
class WindowRow:
    """One entity window waiting to be scored."""

    entity_id: str
    window_start_ms: int
    features: Mapping[str, float]
    synthetic: bool = False


class ShardState:
    """What one shard keeps: its entities and the rows waiting for their window to close."""

    def __init__(self) -> None:
        self.entities: dict[str, EntityEntry] = {}
        self.pending: dict[int, list[WindowRow]] = {}

    def expire(self, now_ms: int, ttl_ms: int) -> int:
        """Drop entities not seen for ``ttl_ms`` of event time; return how many.

        >>> shard = ShardState()
        >>> shard.entities["a"] = EntityEntry(None, last_seen_ms=0)
        >>> shard.expire(now_ms=120_000, ttl_ms=60_000), shard.entities
        (1, {})
        """
        idle = [e for e, entry in self.entities.items() if entry.last_seen_ms + ttl_ms < now_ms]
        for entity_id in idle:
            del self.entities[entity_id]
        return len(idle)


class ShardWindows:
    """Closes one shard's windows, one window end at a time.

    >>> from models.registry import make_detector
    >>> windows = ShardWindows(make_detector("rcf-kda"), "ad", window_ms=10_000,
    ...                        max_gap_windows=2)
    >>> entities = {}
    >>> feats = dict.fromkeys(FEATURE_NAMES, 1.0)
    >>> rows = windows.close(10_000, [WindowRow("ad-1", 0, feats)], entities, final=False)
    >>> [(r["entity_id"], r["window_end_ms"]) for r in rows], entities["ad-1"].last_seen_ms
    ([('ad-1', 10000)], 10000)
    >>> [r["synthetic"] for r in windows.close(20_000, [], entities, final=False)]
    [True]
    >>> windows.close(30_000, [], entities, final=True)  # end of input: no synthesised outage
    []
    """

    def __init__(
        self, detector: WindowDetector, entity_type: str, window_ms: int, max_gap_windows: int
    ) -> None:
        self.detector = detector
        self.entity_type = entity_type
        self.window_ms = window_ms
        self.max_gap_ms = max_gap_windows * window_ms

    def silent(self, window_end_ms: int, seen: set[str], entities: Mapping[str, EntityEntry]):
        """Entities active within ``max_gap_windows`` that have no window ending here."""
        return [
            entity_id
            for entity_id, entry in entities.items()
            if entity_id not in seen
            and entry.last_seen_ms < window_end_ms <= entry.last_seen_ms + self.max_gap_ms
        ]

    def close(
        self,
        window_end_ms: int,
        rows: Sequence[WindowRow],
        entities: dict[str, EntityEntry],
        final: bool,
    ) -> list[dict[str, Any]]:
        """Score ``rows`` (plus synthesised empty windows) and update ``entities`` in place.

        Returns one anomaly record per window, with ``synthetic`` set on synthesised ones.
        """
        rows = list(rows)
        if not final:
            start = window_end_ms - self.window_ms
            rows += [
                WindowRow(e, start, dict.fromkeys(FEATURE_NAMES, 0.0), synthetic=True)
                for e in self.silent(window_end_ms, {r.entity_id for r in rows}, entities)
            ]
        if not rows:
            return []
        known = [entities.get(r.entity_id) for r in rows]
        verdicts = self.detector.process(
            [(k.state if k else None, r.features) for k, r in zip(known, rows, strict=True)]
        )
        out = []
        for row, entry, (verdict, state) in zip(rows, known, verdicts, strict=True):
            last_seen = entry.last_seen_ms if row.synthetic and entry else window_end_ms
            entities[row.entity_id] = EntityEntry(state, last_seen)
            record = build_record(
                self.entity_type, row.entity_id, row.window_start_ms, window_end_ms,
                row.features, verdict, self.detector.name,
            )
            record["synthetic"] = row.synthetic
            out.append(record)
        return out

    def active(self, window_end_ms: int, entities: Mapping[str, EntityEntry]) -> bool:
        """Whether any entity may still need a synthesised window after ``window_end_ms``."""
        return any(window_end_ms < e.last_seen_ms + self.max_gap_ms for e in entities.values())
