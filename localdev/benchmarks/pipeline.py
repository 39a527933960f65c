"""Side-by-side throughput of a pure-SQL window count and the full clicksentry job.

Both read the same JSON-lines file through the same source DDL (raw payload, rowtime from the
JSON, watermark) on the same local minicluster, one after the other in one process. Throughput
is events divided by Flink's net job runtime (``JobExecutionResult.get_net_runtime``), which
leaves out client start-up but not task deployment.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path

from flink_jobs.config import Config
from flink_jobs.features import WINDOW_SECONDS
from flink_jobs.job import (
    LocalOutputs,
    create_environment,
    create_source,
    define_pipeline,
    local_tables,
)
from flink_jobs.tables import local_file_options, sink_ddl

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Throughput:
    """One measured job."""

    events: int
    net_seconds: float
    wall_seconds: float

    @property
    def events_per_s(self) -> float:
        """Events per second of net job runtime."""
        return self.events / self.net_seconds


def _execute(statements, events: int) -> Throughput:
    started = time.monotonic()
    table_result = statements.execute()
    result = table_result.get_job_client().get_job_execution_result().result()
    wall = time.monotonic() - started
    return Throughput(events, result.get_net_runtime() / 1000, wall)


def sql_baseline(config: Config, events_file: Path, events: int) -> Throughput:
    """Pure SQL: the same source (rowtime from the payload), a 10 s count per page, blackhole."""
    t_env = create_environment(config, local=True)
    create_source(t_env, config, local_file_options(events_file, "raw"))
    t_env.execute_sql(
        sink_ddl("counts", [("page", "STRING"), ("window_start", "TIMESTAMP(3)"),
                            ("events", "BIGINT")], {"connector": "blackhole"})
    )
    statements = t_env.create_statement_set()
    statements.add_insert_sql(
        "INSERT INTO counts SELECT JSON_VALUE(payload, '$.page'), window_start, COUNT(*) "
        f"FROM TABLE(TUMBLE(TABLE clicks, DESCRIPTOR(ts), INTERVAL '{WINDOW_SECONDS}' SECOND)) "
        "GROUP BY window_start, window_end, JSON_VALUE(payload, '$.page')"
    )
    return _execute(statements, events)


def full_job(config: Config, events_file: Path, out_root: Path, events: int) -> Throughput:
    """The whole job with its local file sinks under ``out_root``."""
    t_env = create_environment(config, local=True)
    statements = define_pipeline(
        t_env, config, local_tables(events_file, LocalOutputs(out_root))
    )
    return _execute(statements, events)
