"""Throughput of the clicksentry job and of cuts of it, each on a local minicluster.

Every job here reads the same JSON-lines input through the same source DDL (raw payload,
rowtime from the JSON, watermark), one after the other in one process: a pure-SQL window count
(the baseline), the stages of :data:`localdev.benchmarks.stages.STAGES` (the job's own views,
:func:`flink_jobs.job.define_features`, written to blackhole sinks) and the full job with its
file sinks. Throughput is events divided by Flink's net job runtime
(``JobExecutionResult.get_net_runtime``), which leaves out client start-up but not task
deployment. Each job's CPU time is that of the JVM running the minicluster (and of its finished
children, ``/proc``) and of this process, where PyFlink runs the Python workers of a job on a
local minicluster: divided by the wall time, how many cores the job kept busy, which bounds what
a second subtask on the same machine can add.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from flink_jobs.config import Config
from flink_jobs.features import WINDOW_SECONDS
from flink_jobs.job import (
    LocalOutputs,
    create_environment,
    create_source,
    define_features,
    define_pipeline,
    local_tables,
)
from flink_jobs.tables import local_file_options, sink_ddl
from localdev.benchmarks.stages import Stage

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Throughput:
    """One measured job."""

    events: int
    net_seconds: float
    wall_seconds: float
    #: CPU seconds of the JVM (and its reaped children) and of this process, which hosts a local
    #: job's Python workers, while the job ran; None off Linux.
    cpu_seconds: float | None = None

    @property
    def events_per_s(self) -> float:
        """Events per second of net job runtime.

        >>> Throughput(1000, 0.5, 2.0).events_per_s
        2000.0
        """
        return self.events / self.net_seconds

    @property
    def cores_busy(self) -> float | None:
        """CPU seconds per wall-clock second: the cores the job kept busy on average.

        >>> Throughput(1000, 0.5, 2.0, cpu_seconds=3.0).cores_busy
        1.5
        >>> Throughput(1000, 0.5, 2.0).cores_busy is None
        True
        """
        return None if self.cpu_seconds is None else self.cpu_seconds / self.wall_seconds


def process_cpu_seconds(pid: int) -> float | None:
    """User and system CPU seconds of process ``pid`` and of its children it has reaped
    (``/proc/<pid>/stat`` fields 14–17); ``None`` where there is no ``/proc``.

    >>> process_cpu_seconds(os.getpid()) >= 0
    True
    """
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat.rsplit(")", 1)[1].split()  # the command name may hold spaces: skip past it
    utime, stime, cutime, cstime = (int(v) for v in fields[11:15])
    return (utime + stime + cutime + cstime) / os.sysconf("SC_CLK_TCK")


def _job_cpu_seconds() -> float | None:
    """CPU seconds so far of the JVM running the minicluster (and its reaped children) and of
    this process: a job submitted from Python to a local minicluster runs its Python workers in
    the submitting process (PyFlink's loopback mode), not in a child of the JVM."""
    from pyflink.java_gateway import get_gateway

    jvm = process_cpu_seconds(get_gateway().jvm.java.lang.ProcessHandle.current().pid())
    return None if jvm is None else jvm + time.process_time()


def _execute(statements, events: int) -> Throughput:
    cpu_before = _job_cpu_seconds()
    started = time.monotonic()
    table_result = statements.execute()
    result = table_result.get_job_client().get_job_execution_result().result()
    wall = time.monotonic() - started
    cpu_after = _job_cpu_seconds()
    cpu = None if cpu_before is None or cpu_after is None else cpu_after - cpu_before
    return Throughput(events, result.get_net_runtime() / 1000, wall, cpu)


def sql_baseline(config: Config, source: Path, events: int) -> Throughput:
    """Pure SQL: the same source (rowtime from the payload), a 10 s count per page, blackhole.

    ``source`` is the input file, or a directory of them.
    """
    t_env = create_environment(config, local=True)
    create_source(t_env, config, local_file_options(source, "raw"))
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


def stage_job(config: Config, source: Path, stage: Stage, events: int,
              sink_path: Path | None = None) -> Throughput:
    """The job's graph up to ``stage.view``, written to a blackhole sink.

    With ``sink_path`` the view goes to JSON files there instead (to count its rows).
    """
    from pyflink.table import TableDescriptor

    if stage.view is None:
        raise ValueError(f"stage {stage.key} is the full job: use full_job")
    t_env = create_environment(config, local=True)
    define_features(t_env, config, local_file_options(source, "raw"))
    if sink_path is None:
        sink = TableDescriptor.for_connector("blackhole").build()
    else:
        sink = (TableDescriptor.for_connector("filesystem")
                .option("path", str(sink_path.resolve())).format("json").build())
    statements = t_env.create_statement_set()
    statements.add_insert(sink, t_env.from_path(stage.view))
    return _execute(statements, events)


def full_job(config: Config, source: Path, out_root: Path, events: int,
             cluster_options: Mapping[str, str] | None = None) -> Throughput:
    """The whole job with its local file sinks under ``out_root``.

    ``cluster_options`` configure the local minicluster (e.g. its REST port).
    """
    t_env = create_environment(config, local=True, cluster_options=cluster_options)
    statements = define_pipeline(
        t_env, config,
        local_tables(source, LocalOutputs(out_root), config.get("archive", "writers")),
    )
    return _execute(statements, events)
