"""The scoring operator: keyed scoring of entity windows, with its state in Flink keyed state.

:class:`ScoreEntityWindows` is the ``KeyedProcessFunction`` the job keys by shard
(:func:`udfs.shard.shard_key`). Rows are buffered per window end and scored together when the
watermark passes the window: scoring is batched, never per event. The logic lives in
:mod:`udfs.shard`; this class only moves state in and out of Flink and emits
:func:`udfs.scored_window.scored_row` rows.

Keyed state per shard, all versioned msgpack bytes (never pickled classes):

* ``entity`` — per entity its state, when it was last seen and since when the shard tracks it
  (``MapState``, one entry per entity: a closed window writes the entities it scored and
  removes those dropped, not the whole shard), and ``shard`` — the last window closed and the
  shard count (``ValueState``). A shard saved in the earlier layout, all its entities in one
  ``entities`` value, is read from there once and written out in this one;
* ``pending`` — rows waiting for their window to close (``MapState``, one entry per row);
* ``model`` — the shared detector: untrained when the shard starts (under 2 KB), then every
  ``model_snapshot_windows`` windows or sooner once the batches since outweigh it;
  and ``journal`` — every batch the detector processed since (``ListState``). A restored shard
  loads the model and replays the journal, so its detector is exactly where the checkpoint
  left it.

Nothing expires on processing time: entities idle for ``entity_ttl_minutes`` of event time are
dropped as windows close.

Every record leaving the operator is timed from its window's end being passed in the job
(:mod:`udfs.latency`): the gauges ``windowToAnomalyP50Ms``/``P99Ms`` read the recent ones, and
with ``latency_samples`` every sample also goes to the :data:`LATENCIES` side output.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping
from typing import Any

import msgpack
from pyflink.common import Row, Types
from pyflink.datastream import KeyedProcessFunction, OutputTag, RuntimeContext
from pyflink.datastream.state import (
    ListStateDescriptor,
    MapStateDescriptor,
    ValueStateDescriptor,
)

from models.detector import WindowDetector
from models.features import FEATURE_NAMES
from models.registry import make_detector
from udfs.byte_state import BYTES, byte_state
from udfs.latency import FIRED_AT_COLUMN, LATENCY_ROW_TYPE, WindowLatency, epoch_milli
from udfs.model_watch import ModelWatch, read_uri
from udfs.operator_metrics import ScoringMetrics, wall_clock_ms
from udfs.scored_window import EVICTION_ROW_TYPE, MODEL_EVENT_ROW_TYPE, scored_row
from udfs.shard import (
    Batch,
    JournalBudget,
    ShardState,
    ShardWindows,
    WindowRow,
    batch_from_bytes,
    batch_to_bytes,
    pending_row_bytes,
)

logger = logging.getLogger(__name__)

MAX_WATERMARK = 2**63 - 1
#: Side output: one row per entity dropped to keep a shard within its entity bound.
EVICTIONS = OutputTag("entity-evictions", EVICTION_ROW_TYPE)
#: Side output: one row per published model version loaded or rejected (``scoring.model_uri``).
MODEL_EVENTS = OutputTag("model-events", MODEL_EVENT_ROW_TYPE)
#: Side output (with ``latency_samples``): one latency sample per record (:mod:`udfs.latency`).
LATENCIES = OutputTag("window-latencies", LATENCY_ROW_TYPE)


def _plain(params: Mapping[str, Any]) -> Any:
    """Parameters as a snapshot holds them (msgpack: tuples become lists), for comparison."""
    return msgpack.unpackb(msgpack.packb(params))


def check_restored(key: str, restored: WindowDetector, configured: WindowDetector) -> None:
    """ValueError naming the setting unless shard ``key`` restored the configured detector.

    >>> configured = make_detector("rcf-level")
    >>> check_restored("ad#1", WindowDetector.from_bytes(configured.to_bytes()), configured)
    >>> check_restored("ad#1", configured, make_detector("rcf-kda"))
    Traceback (most recent call last):
    ...
    ValueError: scoring.detector: shard ad#1 was restored with detector 'rcf-level', the job is configured with 'rcf-kda'; keep the detector or start without state
    >>> check_restored("ad#1", configured, make_detector("rcf-level", {"warmup": 5}))
    Traceback (most recent call last):
    ...
    ValueError: scoring.detector_params: shard ad#1 was restored with a 'rcf-level' detector of other parameters than the configured ones; keep the parameters or start without state
    """  # noqa: E501
    if restored.name != configured.name:
        raise ValueError(
            f"scoring.detector: shard {key} was restored with detector {restored.name!r}, the"
            f" job is configured with {configured.name!r}; keep the detector or start without"
            " state"
        )
    if _plain(restored.params()) != _plain(configured.params()):
        raise ValueError(
            f"scoring.detector_params: shard {key} was restored with a {restored.name!r}"
            " detector of other parameters than the configured ones; keep the parameters or"
            " start without state"
        )


def start_model_watch(model: Mapping[str, Any]) -> ModelWatch | None:
    """The forest ``model["uri"]`` names, loaded (ValueError naming the setting), or None."""
    if not model.get("uri"):
        return None
    endpoint = model.get("s3_endpoint") or None
    watch = ModelWatch(
        model["uri"],
        model.get("sha256", ""),
        model.get("poll_seconds", 60),
        read=lambda uri: read_uri(uri, endpoint),
    )
    watch.start()
    return watch


def decide(
    models: ModelWatch, records: list[dict[str, Any]]
) -> tuple[list[dict[str, Any]], list[Row]]:
    """The current forest's verdicts on ``records``, and the model events since the last call.

    The events are stamped with the first window end being decided.
    """
    forest = models.current()
    decided = forest.decide(records) if forest is not None else records
    at = min(r["window_end_ms"] for r in records)
    events = [Row(e.name, e.version, e.event, e.reason, at) for e in models.take_events()]
    return decided, events


class ScoreEntityWindows(KeyedProcessFunction):
    """Flink wiring around :class:`~udfs.shard.ShardWindows`: buffers rows, closes windows.

    Args:
        detector: registry name of the detector each new shard starts with (a restored shard
            must hold the same, else the job fails naming ``scoring.detector``).
        detector_params: its parameters (:func:`models.registry.make_detector`'s, validated
            by the configuration); a restored shard must hold the same, else the job fails naming
            ``scoring.detector_params``.
        shards: shards per entity type (kept in state: restoring under another count fails
            naming ``scoring.shards_per_entity_type``).
        window_ms: the windows' length (the job's tumbling window).
        max_gap_windows: empty windows synthesised for an entity that went silent.
        entity_ttl_minutes: entities idle this long (event time) are dropped.
        model_snapshot_windows: the shared detector is written to state every this many windows
            the shard closes, or sooner once the batches journalled since outweigh it.
        max_entities: entities one shard keeps at most (the least recently seen beyond are
            dropped, each reported on the :data:`EVICTIONS` side output).
        latency_samples: also emit every record's window-to-anomaly latency on the
            :data:`LATENCIES` side output (the local runs and the bench read them).
        model: with ``uri`` (``scoring.model_uri``), a retrained forest decides the windows
            (:mod:`models.published_forest`), followed by :class:`udfs.model_watch.ModelWatch`
            (``sha256``, ``poll_seconds``, ``s3_endpoint``); each version loaded or rejected is
            reported on the :data:`MODEL_EVENTS` side output.
    """

    def __init__(
        self,
        detector: str,
        detector_params: Mapping[str, Any],
        shards: int,
        window_ms: int,
        max_gap_windows: int,
        entity_ttl_minutes: int,
        model_snapshot_windows: int,
        max_entities: int,
        latency_samples: bool = False,
        model: Mapping[str, Any] | None = None,
    ) -> None:
        self.detector_name = detector
        self.detector_params = dict(detector_params)
        self.shards = shards
        self.window_ms = window_ms
        self.max_gap_windows = max_gap_windows
        self.entity_ttl_minutes = entity_ttl_minutes
        self.model_snapshot_windows = model_snapshot_windows
        self.max_entities = max_entities
        self.latency_samples = latency_samples
        self.model = dict(model or {})

    def open(self, runtime_context: RuntimeContext) -> None:
        """Declare the keyed state and register the metrics (:mod:`udfs.operator_metrics`)."""
        self.shard_state = byte_state(
            runtime_context.get_state(ValueStateDescriptor("shard", BYTES))
        )
        self.entity_state = byte_state(
            runtime_context.get_map_state(MapStateDescriptor("entity", Types.STRING(), BYTES))
        )
        self.single_value_state = byte_state(
            runtime_context.get_state(ValueStateDescriptor("entities", BYTES))
        )
        self.pending_state = byte_state(
            runtime_context.get_map_state(MapStateDescriptor("pending", Types.STRING(), BYTES))
        )
        self.model_state = byte_state(
            runtime_context.get_state(ValueStateDescriptor("model", BYTES))
        )
        self.journal_state = byte_state(
            runtime_context.get_list_state(ListStateDescriptor("journal", BYTES))
        )
        # Live objects by shard key, so a row or a timer does not decode megabytes. Flink state
        # stays the source of truth: a restored task starts with empty maps and reads it.
        self.live_shards: dict[str, ShardState] = {}
        self.live_windows: dict[str, ShardWindows] = {}
        self.journal_budgets: dict[str, JournalBudget] = {}
        self.timer_ends: dict[str, set[int]] = {}  # by shard: timers asked for, not yet fired
        self.evicted: list[Row] = []
        self.watermark_ms: int | None = None
        self.latency = WindowLatency()
        self.models = start_model_watch(self.model)
        self.metrics = ScoringMetrics(
            runtime_context.get_metrics_group(),
            entities_tracked=lambda: sum(len(s.entities) for s in self.live_shards.values()),
            model_windows=lambda: min(
                (w.detector.batches_ for w in self.live_windows.values()), default=0
            ),
            watermark_ms=lambda: self.watermark_ms,
            latency_ms=self.latency.percentile,
        )

    def _shard(self, key: str) -> ShardState:
        shard = self.live_shards.get(key)
        if shard is None:
            single_value = self.single_value_state.value()
            if single_value is not None:  # the earlier layout: written out in this one now
                shard = ShardState.restore_single_value(
                    single_value, self.pending_state.values(), self.shards
                )
                self._write(shard)
                self.single_value_state.clear()
            else:
                shard = ShardState.restore(
                    self.shard_state.value(), self.entity_state.items(),
                    self.pending_state.values(), self.shards,
                )
            self.live_shards[key] = shard
        return shard

    def _write(self, shard: ShardState) -> None:
        """Write the shard's header and the entities changed or dropped since the last write."""
        changed, removed = shard.entities.take_changes()
        for entity_id, entry in changed.items():
            self.entity_state.put(entity_id, entry)
        for entity_id in removed:
            self.entity_state.remove(entity_id)
        self.shard_state.update(shard.header_to_bytes(self.shards))

    def _windows(self, key: str) -> ShardWindows:
        """The shard's window closer around its detector (restored from state, or new)."""
        windows = self.live_windows.get(key)
        if windows is None:
            windows = ShardWindows(
                self._restore_detector(key),
                key.split("#", 1)[0],
                self.window_ms,
                self.max_gap_windows,
                self.entity_ttl_minutes * 60_000,
                on_batch=lambda batch: self._journal(key, batch),
                max_entities=self.max_entities,
                on_evict=lambda entity_id, seen, end: self.evicted.append(
                    Row(key.split("#", 1)[0], entity_id, seen, end)
                ),
            )
            self.live_windows[key] = windows
        return windows

    def _restore_detector(self, key: str) -> WindowDetector:
        """The shard's detector: written to state and its journal replayed, or a new one.

        A new one is written untrained at once (its name and parameters, for a restore to
        check); its first trained snapshot waits for :class:`udfs.shard.JournalBudget`.
        """
        configured = make_detector(self.detector_name, self.detector_params)
        held = self.model_state.value()
        if held is None:
            detector, held = configured, configured.to_bytes()
            self.model_state.update(held)
        else:
            detector = WindowDetector.from_bytes(held)
            check_restored(key, detector, configured)
        trained = len(held) if detector.batches_ else None
        budget = JournalBudget(self.model_snapshot_windows, trained)
        for data in self.journal_state.get() or ():
            detector.process(batch_from_bytes(data))
            budget.journalled(len(data))
        self.journal_budgets[key] = budget
        return detector

    def _journal(self, key: str, batch: Batch) -> None:
        """Journal a batch the detector processed, or write the detector instead.

        Which one, :class:`udfs.shard.JournalBudget` decides.
        """
        data = batch_to_bytes(batch)
        budget = self.journal_budgets[key]
        if budget.snapshot_due(len(data)):
            snapshot = self.live_windows[key].detector.to_bytes()
            self.model_state.update(snapshot)
            self.journal_state.clear()
            budget.snapshot_written(len(snapshot))
        else:
            self.journal_state.add(data)

    def process_element(self, value: Row, ctx: KeyedProcessFunction.Context) -> None:
        """Buffer the row under its window end and register the timers it may need."""
        key = ctx.get_current_key()
        end = int(value.window_end_ms)
        row = WindowRow(
            value.entity_id,
            int(value.window_start_ms),
            {name: float(value[name]) for name in FEATURE_NAMES},
        )
        self.latency.row_fired(end, epoch_milli(value[FIRED_AT_COLUMN]))
        self._shard(key).pending.setdefault(end, []).append(row)
        self.pending_state.put(f"{end}/{row.entity_id}", pending_row_bytes(end, row))
        # The window's own timer, and one per end where this entity may get an empty window:
        # registered now, before the watermark passes them, they fire in event-time order.
        # Flink keeps one timer per shard and time; asking once per end spares PyFlink encoding
        # the same timer for every row of the window (after a restore it is asked again).
        registered = self.timer_ends.setdefault(key, set())
        for timer_end in (end, *self._windows(key).synthesis_ends(end)):
            if timer_end not in registered:
                registered.add(timer_end)
                ctx.timer_service().register_event_time_timer(timer_end - 1)

    def on_timer(self, timestamp: int, ctx: KeyedProcessFunction.OnTimerContext) -> Iterator[Row]:
        """Close, in order, every window of this shard due by ``timestamp + 1``."""
        key = ctx.get_current_key()
        self.timer_ends.get(key, set()).discard(timestamp + 1)
        shard, windows = self._shard(key), self._windows(key)
        pending = {end: [r.entity_id for r in rows] for end, rows in shard.pending.items()}
        watermark = ctx.timer_service().current_watermark()
        self.latency.watermark_seen(watermark, wall_clock_ms())
        final = watermark >= MAX_WATERMARK
        if not final:
            self.watermark_ms = watermark
        records = windows.close_due(shard, timestamp + 1, final)
        self._write(shard)
        if not records:
            return
        model_events: list[Row] = []
        if self.models is not None:
            records, model_events = decide(self.models, records)
        for end in {r["window_end_ms"] for r in records}:
            for entity_id in pending.get(end, ()):
                self.pending_state.remove(f"{end}/{entity_id}")
        self.metrics.scored(records)
        for record in records:
            if record["is_anomaly"]:
                logger.info("anomaly %s score=%.3f kind=%s", record["anomaly_id"],
                            record["score"], record["kind"])
            row = scored_row(record)
            end = record["window_end_ms"]
            latency = self.latency.scored(end, wall_clock_ms())
            yield row
            if self.latency_samples and latency is not None:
                yield LATENCIES, Row(end, latency)
        for row in model_events:
            yield MODEL_EVENTS, row
        evicted, self.evicted = self.evicted, []
        if evicted:
            logger.warning("shard %s dropped %d entities (scoring.max_entities)", key, len(evicted))
            self.metrics.evicted(len(evicted))
        for row in evicted:
            yield EVICTIONS, row
