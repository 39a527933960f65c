"""The scoring operator: keyed scoring of entity windows, with its state in Flink keyed state.

:class:`ScoreEntityWindows` is the ``KeyedProcessFunction`` the job keys by shard
(:func:`udfs.shard.shard_key`). Rows are buffered per window end and scored together when the
watermark passes the window (one event-time timer per shard and window): scoring is batched,
never per event. The logic lives in :mod:`udfs.shard`; this class only moves state in and out
of Flink and emits :func:`udfs.scored_window.scored_row` rows.

Keyed state per shard, both ``ValueState``: ``shard`` (:class:`~udfs.shard.ShardState`: the
entities' states and the pending rows, written on every change) and ``model`` (the shared
detector's bytes, snapshotted every ``model_snapshot_windows`` windows).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator

from pyflink.common import Row, Types
from pyflink.common.time import Time
from pyflink.datastream import KeyedProcessFunction, RuntimeContext
from pyflink.datastream.state import StateTtlConfig, ValueStateDescriptor

from models.detector import WindowDetector
from models.features import FEATURE_NAMES
from models.registry import make_detector
from udfs.scored_window import scored_row
from udfs.shard import ShardState, ShardWindows, WindowRow

logger = logging.getLogger(__name__)

MAX_WATERMARK = 2**63 - 1


class ScoreEntityWindows(KeyedProcessFunction):
    """Flink wiring around :class:`~udfs.shard.ShardWindows`: buffers rows, fires per window.

    Args:
        detector: registry name of the detector each new shard starts with.
        window_ms: the windows' length (the job's tumbling window).
        max_gap_windows: empty windows synthesised for an entity that went silent.
        entity_ttl_minutes: entities idle this long (event time) are dropped; Flink's state TTL
            (processing time, same length) clears abandoned shards.
        model_snapshot_windows: the shared detector is written to state every this many windows
            the shard scores: a restore resumes with a model at most that many windows old,
            while entity states and pending rows are exact.
    """

    def __init__(
        self,
        detector: str,
        window_ms: int,
        max_gap_windows: int,
        entity_ttl_minutes: int,
        model_snapshot_windows: int,
    ) -> None:
        self.detector_name = detector
        self.window_ms = window_ms
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
        for name, type_info in (
            ("shard", Types.PICKLED_BYTE_ARRAY()),
            ("model", Types.PRIMITIVE_ARRAY(Types.BYTE())),  # WindowDetector.to_bytes()
        ):
            descriptor = ValueStateDescriptor(name, type_info)
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
                WindowDetector.from_bytes(held)
                if held is not None
                else make_detector(self.detector_name)
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
        windows = ShardWindows(detector, key.split("#", 1)[0], self.window_ms, self.max_gap_windows)
        final = ctx.timer_service().current_watermark() >= MAX_WATERMARK
        records = windows.close(end, rows, shard.entities, final)
        shard.expire(end, self.entity_ttl_minutes * 60_000)
        self.shard_state.update(shard)
        unsaved = self.unsaved_windows.get(key, 0) + 1
        if unsaved >= self.model_snapshot_windows or final:
            self.model_state.update(detector.to_bytes())
            unsaved = 0
        self.unsaved_windows[key] = unsaved
        if not final and windows.active(end, shard.entities):
            ctx.timer_service().register_event_time_timer(end + self.window_ms - 1)
        for record in records:
            if record["is_anomaly"]:
                logger.info("anomaly %s score=%.3f kind=%s", record["anomaly_id"],
                            record["score"], record["kind"])
            yield scored_row(record)
