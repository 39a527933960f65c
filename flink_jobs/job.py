"""The clicksentry job graph: source → validate → windows → features → scoring → sinks.

Parsing, validation, late-event splitting and all windowing run in Flink SQL; Python runs once
per shard and window (:mod:`udfs.scoring_operator`). The connectors are whatever
:class:`JobTables` names, so the same graph runs on local files or on Kinesis and S3.

Nothing here builds a Flink environment at import time: :func:`create_environment` does, when
called.
"""

from __future__ import annotations

import logging
import os
import site
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from flink_jobs.aws_connectors import add_jar_to_planner, jar_url
from flink_jobs.config import Config
from flink_jobs.events import (
    FIELDS,
    dead_letter_reason_sql,
    is_bot_sql,
    late_sql,
    register_functions_sql,
)
from flink_jobs.features import (
    WINDOW_MS,
    entity_events_sql,
    features_sql,
    window_counts_sql,
)
from flink_jobs.tables import (
    DEAD_LETTER_COLUMNS,
    PARTITION_COLUMNS,
    RAW_EVENT_COLUMNS,
    archive_options,
    dead_letter_select_sql,
    local_file_options,
    scored_sql_columns,
    sink_ddl,
    source_ddl,
)
from udfs.latency import FIRED_AT_COLUMN, LATENCY_COLUMNS
from udfs.scored_window import (
    EMITTED_ROW_TYPE,
    EVICTION_COLUMNS,
    EXPLANATION_POSITION,
    MODEL_EVENT_COLUMNS,
    RECORD_POSITION,
    SCORED_ROW_TYPE,
)
from udfs.scoring_operator import (
    EVICTIONS,
    LATENCIES,
    MODEL_EVENTS,
    ScoreEntityWindows,
    start_model_watch,
)
from udfs.shard import shard_key
from udfs.site_operator import SITE_ALERT_ROW_TYPE, PageWindows, SiteAlerts, SiteKey

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class JobTables:
    """Connector options of the source and of every sink."""

    source: Mapping[str, str]
    dead_letters: Mapping[str, str]
    anomalies: Mapping[str, str]
    scored_windows: Mapping[str, str]
    raw_events: Mapping[str, str] | None = None
    entity_evictions: Mapping[str, str] | None = None
    #: Published model versions loaded or rejected (``scoring.model_uri``).
    model_events: Mapping[str, str] | None = None
    #: One row per scored window: its window-to-anomaly latency (:mod:`udfs.latency`).
    window_latencies: Mapping[str, str] | None = None


@dataclass(frozen=True)
class LocalOutputs:
    """Where the embedded job writes, below one output root."""

    root: Path

    @property
    def anomalies(self) -> Path:
        """JSON lines, one anomaly record each."""
        return self.root / "anomalies"

    @property
    def scored_windows(self) -> Path:
        """Every scored window (Parquet), Hive-partitioned ``dt=YYYY-MM-DD/hour=HH``."""
        return self.root / "scored-windows"

    @property
    def dead_letters(self) -> Path:
        """Malformed and late payloads with their reason."""
        return self.root / "dead-letters"

    @property
    def raw_events(self) -> Path:
        """Valid raw payloads and their fields (Parquet), Hive-partitioned by event time."""
        return self.root / "raw-events"

    @property
    def entity_evictions(self) -> Path:
        """Entities dropped to keep each shard within ``scoring.max_entities``."""
        return self.root / "entity-evictions"

    @property
    def model_events(self) -> Path:
        """Published model versions loaded or rejected (``scoring.model_uri``)."""
        return self.root / "model-events"

    @property
    def window_latencies(self) -> Path:
        """Per scored window, ``window_end_ms`` and ``latency_ms`` (:mod:`udfs.latency`)."""
        return self.root / "window-latencies"


def local_tables(events_file: Path, outputs: LocalOutputs, archive_writers: int = 1) -> JobTables:
    """Filesystem source (one JSON payload per line) and local file sinks.

    Scored windows and raw events are written as the archive on S3 has them (Parquet,
    ``archive_writers`` writers each).
    """
    return JobTables(
        source=local_file_options(events_file, "raw"),
        dead_letters=local_file_options(outputs.dead_letters, "json"),
        anomalies=local_file_options(outputs.anomalies, "raw"),
        scored_windows=archive_options(str(outputs.scored_windows.resolve()), archive_writers),
        raw_events=archive_options(str(outputs.raw_events.resolve()), archive_writers),
        entity_evictions=local_file_options(outputs.entity_evictions, "json"),
        model_events=local_file_options(outputs.model_events, "json"),
        window_latencies=local_file_options(outputs.window_latencies, "json"),
    )


def create_environment(
    config: Config, local: bool, cluster_options: Mapping[str, str] | None = None
):
    """Build the table environment (on a stream environment) from the configuration.

    ``local`` adds the project's jar (``make jar``: the parser functions and the connectors)
    and pins the Python workers to this interpreter (the project's virtualenv); on Managed
    Flink the application's jar and the runtime's own Python are used. ``cluster_options``
    configure the local minicluster (e.g. ``rest.port``, for a bench that reads its checkpoint
    statistics).
    """
    from pyflink.datastream import CheckpointingMode, StreamExecutionEnvironment
    from pyflink.table import StreamTableEnvironment

    job = config.group("job")
    if local:  # on Managed Flink the jar comes with the application (run option `jarfile`)
        env = _local_environment_with_jar(jar_url(), cluster_options or {})
    else:
        env = StreamExecutionEnvironment.get_execution_environment()
    env.set_parallelism(job["parallelism"])
    # Watermarks are emitted when the data advances them, never on a processing-time timer:
    # the same input then gives the same late events and the same window closes (see
    # flink_jobs.tables.source_ddl for why this stays cheap).
    env.get_config().set_auto_watermark_interval(0)
    if job["checkpoint_interval_ms"]:
        env.enable_checkpointing(job["checkpoint_interval_ms"], CheckpointingMode.EXACTLY_ONCE)
        if job["unaligned_checkpoints"]:
            env.get_checkpoint_config().enable_unaligned_checkpoints()
    t_env = StreamTableEnvironment.create(env)
    table_config = t_env.get_config()
    table_config.set("table.local-time-zone", "UTC")
    table_config.set("pipeline.name", "clicksentry")
    # Every SQL operator gets a uid derived from the plan, so a savepoint restores into the same
    # SQL (the Python operator has its own, see define_pipeline).
    table_config.set("table.exec.uid.generation", "ALWAYS")
    # Chained operators hand rows on without copying them (SQL operators copy what they keep).
    table_config.set("pipeline.object-reuse", "true")
    # Thread mode hands each row to the Python operators and back at once. In process mode
    # PyFlink holds the watermark until the Python operator's bundle is finished: the bundle
    # bounds how long a closed window waits before it is scored (bench: window-to-anomaly p50).
    table_config.set("python.execution-mode", job["python_execution_mode"])
    table_config.set("python.fn-execution.bundle.time", str(job["python_bundle_time_ms"]))
    table_config.set("python.fn-execution.bundle.size", str(job["python_bundle_size"]))
    if job["idle_timeout_ms"]:
        table_config.set("table.exec.source.idle-timeout", f"{job['idle_timeout_ms']} ms")
    if job["checkpoint_interval_ms"] and local:
        checkpoints = Path(job["checkpoint_dir"]).resolve().as_uri()
        table_config.set("execution.checkpointing.dir", checkpoints)
    if local:
        table_config.set("pipeline.jars", jar_url())
        table_config.set("python.executable", sys.executable)
        table_config.set("python.client.executable", sys.executable)
        # The interpreter thread mode embeds starts from the base Python's paths: add the venv's.
        table_config.set("python.pythonpath", os.pathsep.join(site.getsitepackages()))
    return t_env


def _local_environment_with_jar(url: str, cluster_options: Mapping[str, str]):
    """A local stream environment whose user class loader sees the project's jar.

    The client compiles the job's generated code (which names the jar's functions) with the
    environment's user class loader; PyFlink's default environment uses the JVM's application
    class loader, which never sees ``pipeline.jars``.
    """
    from pyflink.datastream import StreamExecutionEnvironment
    from pyflink.java_gateway import get_gateway

    add_jar_to_planner(url)
    jvm = get_gateway().jvm
    conf = jvm.org.apache.flink.configuration.Configuration()
    conf.setString("execution.target", "local")
    conf.setString("execution.attached", "true")
    for key, value in cluster_options.items():
        conf.setString(key, value)
    loader = jvm.java.lang.Thread.currentThread().getContextClassLoader()
    j_env = jvm.org.apache.flink.streaming.api.environment.StreamExecutionEnvironment(conf, loader)
    return StreamExecutionEnvironment(j_env)


def _with_explanation(scored):
    """The scoring operator's rows with their explanation column added.

    ``ExplanationColumn`` (the project's jar) builds it from the record's JSON, see
    :data:`udfs.scored_window.EMITTED_COLUMNS`.
    """
    from pyflink.datastream import DataStream
    from pyflink.java_gateway import get_gateway

    explain = get_gateway().jvm.io.clicksentry.flink.ExplanationColumn(
        RECORD_POSITION, EXPLANATION_POSITION
    )
    j_stream = scored._j_data_stream.map(explain, SCORED_ROW_TYPE.get_java_type_info())
    return DataStream(j_stream.name("explanation-column").uid("explanation-column"))


def create_source(t_env, config: Config, options: Mapping[str, str]) -> None:
    """Register the jar's functions and the ``clicks`` source table (rowtime and watermark)."""
    job = config.group("job")
    for statement in register_functions_sql():
        t_env.execute_sql(statement)
    t_env.execute_sql(
        source_ddl(
            "clicks",
            options,
            watermark_delay_ms=job["watermark_delay_ms"],
            max_future_ms=job["max_future_ms"],
            max_ahead_ms=job["max_ahead_ms"],
        )
    )


def _internal_rows(t_env, table):
    """``table`` as a stream of the planner's own rows (``RowData``), converted to nothing.

    ``to_data_stream`` alone hands on Java ``Row`` objects: every payload decoded from UTF-8
    into a Java string, and encoded again in each branch that reads the view back. Bridged to
    ``RowData`` both conversions are the identity (on the bench's input, the full job ran
    44,153–47,942 events/s against 37,549–39,747, with the same outputs).
    """
    from py4j.java_gateway import get_java_class
    from pyflink.datastream import DataStream
    from pyflink.java_gateway import get_gateway

    row_data = get_java_class(get_gateway().jvm.org.apache.flink.table.data.RowData)
    j_table = table._j_table
    data_type = j_table.getResolvedSchema().toPhysicalRowDataType().bridgedTo(row_data)
    return DataStream(t_env._j_tenv.toDataStream(j_table, data_type))


def _past_idle_sources(parsed):
    """The parsed stream after a rebalance, whose watermark never turns idle downstream.

    After the rebalance every subtask sees the watermark combined over every source subtask,
    an idle one (a silent shard, ``job.idle_timeout_ms``) left out: the watermark the windows
    see. An event on time at its own source subtask is on time here too, unless that subtask
    was idle and resumes behind the others: the late split checks again here, so such an event
    is dead-lettered as ``late`` instead of dropped by a window that already fired. Past the
    rebalance, ``KeepWatermarkActive`` (the project's jar) keeps idleness from reaching the
    windows, where inputs turning idle and active at slightly different moments would let
    windows close before their records arrived (dropped without a trace).
    """
    from pyflink.datastream import DataStream
    from pyflink.java_gateway import get_gateway

    j_stream = parsed.rebalance()._j_data_stream
    keep_active = get_gateway().jvm.io.clicksentry.flink.KeepWatermarkActive()
    return DataStream(
        j_stream.transform("keep-watermark-active", j_stream.getType(), keep_active)
    )


def define_features(t_env, config: Config, source: Mapping[str, str]) -> None:
    """Register the source and every view up to the feature rows handed to scoring.

    The views, in pipeline order: ``parsed`` (the payload parsed once, in Java), ``classified``
    (every payload's typed fields and its dead-letter reason, ``NULL`` when valid),
    ``valid_events``, ``entity_events`` (the fan-out to page, ad and campaign),
    ``window_counts`` (every count of an entity window, one aggregate) and ``window_features``.
    :func:`define_pipeline` adds scoring and the sinks; ``clicksentry bench`` writes the
    intermediate views to blackhole sinks to time the stages of the same graph.
    """
    from pyflink.table import Schema

    create_source(t_env, config, source)
    # Parse once (Java), then materialise: without this boundary the planner copies the
    # parse into every branch that reads it — and every field access would call it again.
    # Lateness is judged first here, against the watermark of the source subtask that read the
    # event: that depends on its shard's order alone, so the same input is late the same way.
    parsed = t_env.sql_query(
        f"SELECT payload, ts, parse_click(payload) AS e, {late_sql()} AS late_at_source"
        " FROM clicks"
    )
    t_env.create_temporary_view(
        "parsed",
        t_env.from_data_stream(
            _past_idle_sources(_internal_rows(t_env, parsed)),
            Schema.new_builder().watermark("ts", "SOURCE_WATERMARK()").build(),
        ),
    )
    fields = ", ".join(f"e.{f.name} AS {f.name}" for f in FIELDS)
    t_env.create_temporary_view(
        "classified",
        t_env.sql_query(
            f"SELECT payload, ts, {fields},"
            f" {dead_letter_reason_sql('e.reason', 'late_at_source')} AS reason"
            " FROM parsed"
        ),
    )
    t_env.create_temporary_view(
        "valid_events",
        t_env.sql_query(
            f"SELECT *, {is_bot_sql()} AS is_bot FROM classified WHERE reason IS NULL"
        ),
    )
    views = {
        "entity_events": entity_events_sql("valid_events"),
        "window_counts": window_counts_sql("entity_events"),
        "window_features": features_sql("window_counts"),
    }
    for name, sql in views.items():
        t_env.create_temporary_view(name, t_env.sql_query(sql))


def model_settings(config: Config) -> dict[str, Any]:
    """What the scoring operator needs to follow ``scoring.model_uri`` (empty: no model).

    A model on S3 is read through ``archive.s3_endpoint`` when set (the local emulator).
    """
    scoring = config.group("scoring")
    return {
        "uri": scoring["model_uri"],
        "sha256": scoring["model_sha256"],
        "poll_seconds": scoring["model_poll_seconds"],
        "s3_endpoint": config.get("archive", "s3_endpoint"),
    }


def define_pipeline(t_env, config: Config, tables: JobTables):
    """Register tables and views and return the statement set that writes every sink.

    Submit it with ``execute()``: the table environment compiles the generated code with the
    class loader that sees the project's jar (``env.execute()`` would not).
    """
    from pyflink.common import Types
    from pyflink.datastream.functions import KeySelector
    from pyflink.table import Schema

    scoring = config.group("scoring")
    model = model_settings(config)
    start_model_watch(model)  # a model that cannot be used fails here, naming the setting
    define_features(t_env, config, tables.source)
    shards = scoring["shards_per_entity_type"]

    class ByShard(KeySelector):
        def get_key(self, value):
            return shard_key(value.entity_type, value.entity_id, shards)

    # The shard key is a Java string in thread mode. Process mode keeps PyFlink's default, the
    # key pickled (cloudpickle) into bytes: the key of every snapshot taken before thread mode
    # was added. Thread mode would pickle it other bytes (plain pickle), and a restored
    # operator would silently find none of its state under them; with a string key, restoring
    # a snapshot of the other mode fails on the key's serializer instead (docs/deploy.md).
    process_mode = config.get("job", "python_execution_mode") == "process"
    shard_key_type = None if process_mode else Types.STRING()

    scored = (
        # Each row stamped with when it was emitted: when the job passed its window's end, the
        # start of the window-to-anomaly latency (udfs.latency; scoring ignores the stamp).
        t_env.to_data_stream(t_env.sql_query(
            f"SELECT *, PROCTIME() AS {FIRED_AT_COLUMN} FROM window_features"
        ))
        .key_by(ByShard(), key_type=shard_key_type)
        .process(
            ScoreEntityWindows(
                scoring["detector"],
                scoring["detector_params"],
                shards,
                WINDOW_MS,
                scoring["max_gap_windows"],
                scoring["entity_ttl_minutes"],
                scoring["model_snapshot_windows"],
                -(-scoring["max_entities"] // shards),  # per shard, rounded up
                latency_samples=tables.window_latencies is not None,
                model=model,
            ),
            output_type=EMITTED_ROW_TYPE,
        )
        .name("score-entity-windows")
        .uid("score-entity-windows")
    )
    schema = Schema.new_builder()
    for name, sql_type in scored_sql_columns():
        schema.column(name, sql_type)
    t_env.create_temporary_view(
        "scored", t_env.from_data_stream(_with_explanation(scored), schema.build())
    )
    # The site's own alert (models.site): every page window of every shard, one detector.
    site_alerts = (
        scored.filter(PageWindows())
        .key_by(SiteKey(), key_type=Types.STRING())
        .process(SiteAlerts(WINDOW_MS), output_type=SITE_ALERT_ROW_TYPE)
        .name("site-alerts")
        .uid("site-alerts")
    )
    record_only = Schema.new_builder().column("record", "STRING").build()
    t_env.create_temporary_view("site_alerts", t_env.from_data_stream(site_alerts, record_only))

    t_env.execute_sql(sink_ddl("dead_letters", DEAD_LETTER_COLUMNS, tables.dead_letters))
    t_env.execute_sql(sink_ddl("anomalies", [("record", "STRING")], tables.anomalies))
    t_env.execute_sql(
        sink_ddl("scored_windows", scored_sql_columns(), tables.scored_windows, ("dt", "hour"))
    )
    statements = t_env.create_statement_set()
    statements.add_insert_sql(f"INSERT INTO dead_letters {dead_letter_select_sql('classified')}")
    statements.add_insert_sql("INSERT INTO anomalies SELECT record FROM scored WHERE is_anomaly")
    statements.add_insert_sql("INSERT INTO scored_windows SELECT * FROM scored")
    side_outputs = (
        (EVICTIONS, EVICTION_COLUMNS, "entity_evictions", tables.entity_evictions),
        (MODEL_EVENTS, MODEL_EVENT_COLUMNS, "model_events", tables.model_events),
        (LATENCIES, LATENCY_COLUMNS, "window_latencies", tables.window_latencies),
    )
    for tag, columns, sink, options in side_outputs:
        if options is not None:
            rows = Schema.new_builder()
            for name, _, sql_type in columns:
                rows.column(name, sql_type)
            view = f"{sink}_rows"
            t_env.create_temporary_view(
                view, t_env.from_data_stream(scored.get_side_output(tag), rows.build())
            )
            t_env.execute_sql(sink_ddl(sink, [(n, t) for n, _, t in columns], options))
            statements.add_insert_sql(f"INSERT INTO {sink} SELECT * FROM {view}")
    if tables.raw_events is not None:
        t_env.execute_sql(
            sink_ddl("raw_events", [*RAW_EVENT_COLUMNS, *PARTITION_COLUMNS],
                     tables.raw_events, ("dt", "hour"))
        )
        columns = ", ".join(name for name, _ in RAW_EVENT_COLUMNS)
        statements.add_insert_sql(
            f"INSERT INTO raw_events SELECT {columns}, DATE_FORMAT(ts, 'yyyy-MM-dd'), "
            "DATE_FORMAT(ts, 'HH') FROM valid_events"
        )
    # Last, so the plan's earlier operators keep the uids a snapshot of the job without it has
    # (table.exec.uid.generation derives them from the plan's order).
    statements.add_insert_sql("INSERT INTO anomalies SELECT record FROM site_alerts")
    return statements
