"""SQL DDL for the job's source and sinks; connectors differ only in their ``WITH`` options.

Every option value is quoted with :func:`~flink_jobs.events.sql_string`; numbers spliced into
SQL are validated integers.

>>> print(with_clause({"connector": "filesystem", "path": "/tmp/it's"}))
WITH ('connector' = 'filesystem', 'path' = '/tmp/it''s')
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

from flink_jobs.events import rowtime_sql, sql_string
from udfs.scored_window import SCORED_COLUMNS

#: Columns of the dead-letter sink.
DEAD_LETTER_COLUMNS = (("payload", "STRING"), ("reason", "STRING"), ("event_time_ms", "BIGINT"))
PARTITION_COLUMNS = (("dt", "STRING"), ("hour", "STRING"))


def with_clause(options: Mapping[str, str]) -> str:
    """A quoted ``WITH (...)`` clause."""
    pairs = ", ".join(f"{sql_string(k)} = {sql_string(str(v))}" for k, v in options.items())
    return f"WITH ({pairs})"


def source_ddl(
    name: str, options: Mapping[str, str], *, watermark_delay_ms: int, max_future_ms: int
) -> str:
    """The click source: one raw payload per record, its event time and a watermark.

    >>> ddl = source_ddl("clicks", {"connector": "datagen"}, watermark_delay_ms=5000,
    ...                  max_future_ms=60000)
    >>> "WATERMARK FOR ts AS ts - INTERVAL '5.000' SECOND" in ddl
    True
    """
    if not isinstance(watermark_delay_ms, int) or watermark_delay_ms < 0:
        raise ValueError("watermark_delay_ms must be a non-negative int")
    return (
        f"CREATE TEMPORARY TABLE {name} ("
        f"payload STRING, "
        f"ts AS {rowtime_sql(max_future_ms)}, "
        f"WATERMARK FOR ts AS ts - INTERVAL '{watermark_delay_ms / 1000:.3f}' SECOND"
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
