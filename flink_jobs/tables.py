"""SQL DDL for the job's source and sinks; connectors differ only in their ``WITH`` options.

Every option value is quoted with :func:`~flink_jobs.events.sql_string`; numbers spliced into
SQL are validated integers.

>>> print(with_clause({"connector": "filesystem", "path": "/tmp/it's"}))
WITH ('connector' = 'filesystem', 'path' = '/tmp/it''s')
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

from flink_jobs.events import FIELDS, MAX_PAYLOAD_CHARS, rowtime_sql, sql_string
from udfs.scored_window import SCORED_COLUMNS

#: Columns of the dead-letter sink (:func:`dead_letter_select_sql` fills them).
DEAD_LETTER_COLUMNS = (
    ("payload", "STRING"),
    ("reason", "STRING"),
    ("event_time_ms", "BIGINT"),
    ("payload_chars", "BIGINT"),
    ("payload_sha256", "STRING"),
)
PARTITION_COLUMNS = (("dt", "STRING"), ("hour", "STRING"))
#: Columns of the raw-event archive: the payload as read (what ``clicksentry replay`` reads back)
#: and its fields as parsed, for queries (``dt``/``hour`` of its event time besides).
RAW_EVENT_COLUMNS = (("payload", "STRING"), *((f.name, f.sql_type) for f in FIELDS))
#: The archive's Parquet codec: Snappy, what Athena and Glue read by default.
ARCHIVE_CODEC = "SNAPPY"
#: A Parquet file of the archive is closed at every checkpoint, or sooner at this size.
ARCHIVE_MAX_FILE = "128MB"


def with_clause(options: Mapping[str, str]) -> str:
    """A quoted ``WITH (...)`` clause."""
    pairs = ", ".join(f"{sql_string(k)} = {sql_string(str(v))}" for k, v in options.items())
    return f"WITH ({pairs})"


def source_ddl(
    name: str,
    options: Mapping[str, str],
    *,
    watermark_delay_ms: int,
    max_future_ms: int,
    max_ahead_ms: int,
) -> str:
    """The click source: one raw payload per record, its event time and a watermark.

    The watermark trails the largest event time by ``watermark_delay_ms``, in whole seconds of
    event time: emitted as soon as it advances (the job sets the periodic interval to 0, see
    :func:`flink_jobs.job.create_environment`), it moves at most once per second of event time,
    at points the data alone decides — so late events and window closes do not depend on
    processing-time timers.

    >>> ddl = source_ddl("clicks", {"connector": "datagen"}, watermark_delay_ms=5000,
    ...                  max_future_ms=60000, max_ahead_ms=300000)
    >>> print(ddl.split("WATERMARK FOR ts AS ")[1].split(") WITH")[0])
    CAST(FLOOR(CAST(ts AS TIMESTAMP(3)) TO SECOND) AS TIMESTAMP_LTZ(3)) - INTERVAL '5.000' SECOND
    """
    if not isinstance(watermark_delay_ms, int) or watermark_delay_ms < 0:
        raise ValueError("watermark_delay_ms must be a non-negative int")
    return (
        f"CREATE TEMPORARY TABLE {name} ("
        f"payload STRING, "
        f"ts AS {rowtime_sql(max_future_ms, max_ahead_ms)}, "
        "WATERMARK FOR ts AS CAST(FLOOR(CAST(ts AS TIMESTAMP(3)) TO SECOND) AS TIMESTAMP_LTZ(3))"
        f" - INTERVAL '{watermark_delay_ms / 1000:.3f}' SECOND"
        f") {with_clause(options)}"
    )


def sink_ddl(
    name: str,
    columns: Sequence[tuple[str, str]],
    options: Mapping[str, str],
    partitioned_by: Sequence[str] = (),
) -> str:
    """A sink table.

    >>> sink_ddl("t", [("a", "STRING")], {"connector": "blackhole"})
    "CREATE TEMPORARY TABLE t (a STRING) WITH ('connector' = 'blackhole')"
    """
    cols = ", ".join(f"`{c}` {t}" if c == "hour" else f"{c} {t}" for c, t in columns)
    parts = ""
    if partitioned_by:
        parts = f" PARTITIONED BY ({', '.join(f'`{p}`' for p in partitioned_by)})"
    return f"CREATE TEMPORARY TABLE {name} ({cols}){parts} {with_clause(options)}"


def scored_sql_columns() -> list[tuple[str, str]]:
    """Columns of the scored-window archive (everything the scoring step emits)."""
    return [(name, sql_type) for name, _, sql_type in SCORED_COLUMNS]


def local_file_options(path: Path, fmt: str) -> dict[str, str]:
    """Options of a local filesystem table (source or sink)."""
    return {"connector": "filesystem", "path": str(path.resolve()), "format": fmt}


def archive_options(path: str, writers: int) -> dict[str, str]:
    """Options of an archive table (scored windows, raw events): Parquet, Snappy.

    A Parquet file is written whole and committed at a checkpoint (the file sink's exactly-once
    commit), so each of the ``writers`` (the sink's parallelism, ``archive.writers``) adds one
    object per ``dt``/``hour`` partition per checkpoint, whatever the job's parallelism.

    >>> opts = archive_options("s3://bucket/archive/scored-windows/", 1)
    >>> opts["format"], opts["parquet.compression"], opts["sink.parallelism"]
    ('parquet', 'SNAPPY', '1')
    """
    if not isinstance(writers, int) or writers < 1:
        raise ValueError("writers must be a positive int")
    return {
        "connector": "filesystem",
        "path": path,
        "format": "parquet",
        "parquet.compression": ARCHIVE_CODEC,
        "sink.rolling-policy.file-size": ARCHIVE_MAX_FILE,
        "sink.parallelism": str(writers),
    }


def dead_letter_select_sql(view: str, max_chars: int = MAX_PAYLOAD_CHARS) -> str:
    """SQL selecting the dead letters of ``view``, a payload kept whole up to ``max_chars``.

    A longer payload keeps its first ``max_chars`` characters, its length and the SHA-256 of the
    whole of it, so a dead letter always fits a Kinesis record (1 MiB) and nothing is lost
    without a trace. The reason goes through ``count_dead_letter`` (the project's jar), which
    counts it in the job's metrics (``deadLetters``, ``deadLetters_<reason>``).

    >>> print(dead_letter_select_sql("classified", max_chars=10))
    SELECT CASE WHEN CHAR_LENGTH(payload) > 10 THEN SUBSTRING(payload, 1, 10) ELSE payload END, count_dead_letter(reason), event_time, CHAR_LENGTH(payload), CASE WHEN CHAR_LENGTH(payload) > 10 THEN SHA256(payload) END FROM classified WHERE reason IS NOT NULL
    """  # noqa: E501
    if not isinstance(max_chars, int) or max_chars < 1:
        raise ValueError("max_chars must be a positive int")
    over = f"CHAR_LENGTH(payload) > {max_chars}"
    return (
        f"SELECT CASE WHEN {over} THEN SUBSTRING(payload, 1, {max_chars}) ELSE payload END, "
        f"count_dead_letter(reason), event_time, CHAR_LENGTH(payload), "
        f"CASE WHEN {over} THEN SHA256(payload) END "
        f"FROM {view} WHERE reason IS NOT NULL"
    )
