"""Keyed scoring of entity windows: per-entity state and a shared model in Flink keyed state.

The job keys feature rows by *shard* — ``"<entity_type>#<n>"``, ``n`` a stable hash of the
entity id — so one shared model (e.g. a random cut forest) learns from many entities while each
entity keeps its own small state in a ``MapState`` entry. Both live in Flink keyed state: they
are checkpointed, survive restarts, and rescale with the key groups.

Rows are buffered per window end and scored together when the watermark passes the window
(one event-time timer per shard and window): scoring is batched, never per event. An entity
that was active recently but has no row in a window gets a synthesised empty window, so a
traffic outage is scored instead of silently missing — for at most ``max_gap_windows`` windows,
and never at the end of a bounded input (the final watermark is not a real outage).

Logic worth testing without Flink sits in :class:`ShardScorer`; the Flink function only moves
state in and out.

>>> shard_key("ad", "ad-0007", 4)
'ad#3'
"""

from __future__ import annotations

import json
import logging
import zlib
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from pyflink.common import Row, Types
from pyflink.common.time import Time
from pyflink.datastream import KeyedProcessFunction, RuntimeContext
from pyflink.datastream.state import StateTtlConfig, ValueStateDescriptor

from flink_jobs.features import FEATURE_NAMES, WINDOW_SECONDS, empty_window_features
from models.detector import WindowDetector
from models.registry import make_detector
from udfs.anomaly_record import build_record

logger = logging.getLogger(__name__)

WINDOW_MS = WINDOW_SECONDS * 1000
MAX_WATERMARK = 2**63 - 1

#: Columns of a scored window, as emitted to the sinks (name, PyFlink type, SQL type).
SCORED_COLUMNS: tuple[tuple[str, Any, str], ...] = (
    ("record", Types.STRING(), "STRING"),
    ("is_anomaly", Types.BOOLEAN(), "BOOLEAN"),
    ("entity_type", Types.STRING(), "STRING"),
    ("entity_id", Types.STRING(), "STRING"),
    ("window_start", Types.STRING(), "STRING"),
    ("window_end", Types.STRING(), "STRING"),
    ("window_end_ms", Types.LONG(), "BIGINT"),
    ("detector", Types.STRING(), "STRING"),
    ("score", Types.DOUBLE(), "DOUBLE"),
    ("raw_score", Types.DOUBLE(), "DOUBLE"),
    ("threshold", Types.DOUBLE(), "DOUBLE"),
    ("grade", Types.DOUBLE(), "DOUBLE"),
    ("confidence", Types.DOUBLE(), "DOUBLE"),
    ("kind", Types.STRING(), "STRING"),
    ("synthetic", Types.BOOLEAN(), "BOOLEAN"),
    *((name, Types.DOUBLE(), "DOUBLE") for name in FEATURE_NAMES),
    ("explanation", Types.STRING(), "STRING"),
    ("dt", Types.STRING(), "STRING"),
    ("hour", Types.STRING(), "STRING"),
)
SCORED_ROW_TYPE = Types.ROW_NAMED([c[0] for c in SCORED_COLUMNS], [c[1] for c in SCORED_COLUMNS])


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


class ShardScorer:
    """Scores one shard's windows of one window end; pure Python, no Flink.

    >>> from models.registry import make_detector
    >>> scorer = ShardScorer(make_detector("rcf-kda"), "ad", max_gap_windows=2)
    >>> entities = {}
    >>> feats = dict.fromkeys(FEATURE_NAMES, 1.0)
    >>> rows = scorer.score(10_000, [WindowRow("ad-1", 0, feats)], entities, final=False)
    >>> [(r["entity_id"], r["window_end_ms"]) for r in rows], entities["ad-1"].last_seen_ms
    ([('ad-1', 10000)], 10000)
    >>> [r["synthetic"] for r in scorer.score(20_000, [], entities, final=False)]
    [True]
    >>> scorer.score(30_000, [], entities, final=True)  # end of input: no synthesised outage
    []
    """

    def __init__(self, detector: WindowDetector, entity_type: str, max_gap_windows: int) -> None:
        self.detector = detector
        self.entity_type = entity_type
        self.max_gap_ms = max_gap_windows * WINDOW_MS

    def silent(self, window_end_ms: int, seen: set[str], entities: Mapping[str, EntityEntry]):
        """Entities active within ``max_gap_windows`` that have no window ending here."""
        return [
            entity_id
            for entity_id, entry in entities.items()
            if entity_id not in seen
            and entry.last_seen_ms < window_end_ms <= entry.last_seen_ms + self.max_gap_ms
        ]

    def score(
        self,
        window_end_ms: int,
        rows: Sequence[WindowRow],
        entities: dict[str, EntityEntry],
        final: bool,
    ) -> list[dict[str, Any]]:
        """Score ``rows`` (plus synthesised empty windows) and update ``entities`` in place."""
        rows = list(rows)
        if not final:
            start = window_end_ms - WINDOW_MS
            rows += [
                WindowRow(e, start, empty_window_features(), synthetic=True)
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
                self.entity_type, row.entity_id, row.window_start_ms, row.features, verdict,
                self.detector.name,
            )
            record["synthetic"] = row.synthetic
            out.append(record)
        return out

    def active(self, window_end_ms: int, entities: Mapping[str, EntityEntry]) -> bool:
        """Whether any entity may still need a synthesised window after ``window_end_ms``."""
        return any(window_end_ms < e.last_seen_ms + self.max_gap_ms for e in entities.values())


def scored_row(record: Mapping[str, Any]) -> Row:
    """The sink row of a scored window (record JSON plus flat, queryable columns)."""
    synthetic = record.pop("synthetic", False)
    end = record["window_end"]
    values = {
        "record": json.dumps(record, separators=(",", ":")),
        "synthetic": synthetic,
        "explanation": json.dumps(record["explanation"], separators=(",", ":")),
        "dt": end[:10],
        "hour": end[11:13],
        **{k: record[k] for k in (
            "is_anomaly", "entity_type", "entity_id", "window_start", "window_end",
            "window_end_ms", "detector", "score", "raw_score", "threshold", "grade",
            "confidence", "kind",
        )},
        **{name: float(record["features"][name]) for name in FEATURE_NAMES},
    }
    return Row(**{name: values[name] for name, _, _ in SCORED_COLUMNS})


class ShardState:
    """What one shard keeps: its entities and the rows waiting for their window to close.

    Small, so it is written to Flink state on every change. The shared detector is kept apart
    (see :class:`ScoreEntityWindows`): it is megabytes, and PyFlink pickles every dirty state
    at each bundle end, which a watermark advance triggers.
    """

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


class _PersistedDetector:
    """A detector in Flink state, pickled through its own ``to_bytes``."""

    __slots__ = ("detector",)

    def __init__(self, detector: WindowDetector) -> None:
        self.detector = detector

    def __reduce__(self):
        return (_restore_detector, (self.detector.to_bytes(),))


def _restore_detector(data: bytes) -> _PersistedDetector:
    return _PersistedDetector(WindowDetector.from_bytes(data))


class ScoreEntityWindows(KeyedProcessFunction):
    """Flink wiring around :class:`ShardScorer`: buffers rows, fires per window, keeps state.

    Keyed state per shard: ``shard`` (:class:`ShardState`, written on every change) and
    ``model`` (the shared detector, snapshotted every ``model_snapshot_windows`` windows the
    shard scores: a restore resumes with a model at most that many windows old, while entity
    states and pending rows are exact). Entities idle for ``entity_ttl_minutes`` of event time
    are dropped; Flink's state TTL (processing time, same length) clears abandoned shards.
    """

    def __init__(
        self,
        detector: str,
        detector_params: Mapping[str, Any] | None,
        max_gap_windows: int,
        entity_ttl_minutes: int,
        model_snapshot_windows: int,
    ) -> None:
        self.detector_name = detector
        self.detector_params = dict(detector_params or {})
        self.max_gap_windows = max_gap_windows
        self.entity_ttl_minutes = entity_ttl_minutes
        self.model_snapshot_windows = model_snapshot_windows

    def open(self, runtime_context: RuntimeContext) -> None:
        """Declare the keyed state."""
        # ReturnExpiredIfNotCleanedUp, not NeverReturnExpired: the latter turns PyFlink's state
        # cache off for every state of the operator, and each update() then pickles the shard
        # and writes it to the JVM synchronously (measured: most of the operator's time).
        ttl = (
            StateTtlConfig.new_builder(Time.minutes(self.entity_ttl_minutes))
            .set_update_type(StateTtlConfig.UpdateType.OnCreateAndWrite)
            .set_state_visibility(StateTtlConfig.StateVisibility.ReturnExpiredIfNotCleanedUp)
            .build()
        )
        states = {}
        for name in ("shard", "model"):
            descriptor = ValueStateDescriptor(name, Types.PICKLED_BYTE_ARRAY())
            descriptor.enable_time_to_live(ttl)
            states[name] = runtime_context.get_state(descriptor)
        self.shard_state, self.model_state = states["shard"], states["model"]
        # Live objects by shard key, so a timer does not unpickle megabytes. Flink state stays
        # the source of truth: a restored task starts with empty maps and reads the state.
        self.shards: dict[str, ShardState] = {}
        self.detectors: dict[str, WindowDetector] = {}
        self.unsaved_windows: dict[str, int] = {}

    def _shard(self, key: str) -> ShardState:
        shard = self.shards.get(key) or self.shard_state.value() or ShardState()
        self.shards[key] = shard
        return shard

    def _detector(self, key: str) -> WindowDetector:
        detector = self.detectors.get(key)
        if detector is None:
            held = self.model_state.value()
            detector = (
                held.detector
                if held is not None
                else make_detector(self.detector_name, self.detector_params)
            )
            self.detectors[key] = detector
        return detector

    def process_element(self, value: Row, ctx: KeyedProcessFunction.Context) -> None:
        """Buffer the row under its window end; a timer fires when the watermark passes it."""
        end = int(value.window_end_ms)
        shard = self._shard(ctx.get_current_key())
        shard.pending.setdefault(end, []).append(
            WindowRow(
                value.entity_id,
                int(value.window_start_ms),
                {name: float(value[name]) for name in FEATURE_NAMES},
            )
        )
        self.shard_state.update(shard)
        ctx.timer_service().register_event_time_timer(end - 1)

    def on_timer(self, timestamp: int, ctx: KeyedProcessFunction.OnTimerContext) -> Iterator[Row]:
        """Score every window of this shard that ends at ``timestamp + 1``."""
        end = timestamp + 1
        key = ctx.get_current_key()
        shard, detector = self._shard(key), self._detector(key)
        rows = shard.pending.pop(end, [])
        scorer = ShardScorer(detector, key.split("#", 1)[0], self.max_gap_windows)
        final = ctx.timer_service().current_watermark() >= MAX_WATERMARK
        records = scorer.score(end, rows, shard.entities, final)
        shard.expire(end, self.entity_ttl_minutes * 60_000)
        self.shard_state.update(shard)
        unsaved = self.unsaved_windows.get(key, 0) + 1
        if unsaved >= self.model_snapshot_windows or final:
            self.model_state.update(_PersistedDetector(detector))
            unsaved = 0
        self.unsaved_windows[key] = unsaved
        if not final and scorer.active(end, shard.entities):
            ctx.timer_service().register_event_time_timer(end + WINDOW_MS - 1)
        for record in records:
            if record["is_anomaly"]:
                logger.info("anomaly %s score=%.3f kind=%s", record["anomaly_id"],
                            record["score"], record["kind"])
            yield scored_row(record)
