"""The scoring operator's metrics: what the operations dashboard and its alarms read.

Registered in the operator's user group ``kinesisanalytics`` → ``clicksentry``
(:data:`CLOUDWATCH_GROUP`, :data:`METRIC_GROUP`): Managed Service for Apache Flink sends a custom
metric to CloudWatch (namespace ``AWS/KinesisAnalytics``) only from below a group named
``kinesisanalytics``. Locally Flink's REST API serves them
(``/jobs/<job>/vertices/<vertex>/subtasks/metrics``). The job's Java functions count in the same
groups (``deploy/src/.../Metrics.java``): ``eventsIn`` (``ParseClickEvent``), ``deadLetters`` and
``deadLetters_<reason>`` (``CountDeadLetter``). All of them: :data:`JOB_COUNTERS`,
:data:`JOB_GAUGES`.

* running counts ``windowsScored``, ``anomalies``, ``entitiesEvicted`` (registered as gauges:
  counters of PyFlink 1.20's Python operators never reached Flink's REST API in the cluster
  test, its gauges do; a dashboard reads either as a count that grows);
* gauges ``entitiesTracked`` (entities in this subtask's shards), ``modelAgeWindows`` (windows
  the least experienced shard model of the subtask has learned: low after a fresh start, while
  the detectors warm up), ``watermarkLagMs`` (wall-clock time minus the operator's
  watermark: how far behind real time the windows close), and ``windowToAnomalyP50Ms`` /
  ``windowToAnomalyP99Ms`` (median and 99th percentile, over the subtask's last 1,024 scored
  windows, of the time from the job passing a window's end to its record leaving the operator:
  :mod:`udfs.latency`; 0 before the first).

Metrics only observe: nothing the job outputs depends on them.

>>> class Group:  # a stand-in for Flink's metric group
...     def __init__(self): self.registered = {}
...     def add_group(self, name): return self
...     def gauge(self, name, read): self.registered[name] = read
>>> group = Group()
>>> metrics = ScoringMetrics(group, lambda: 3, lambda: 12, lambda: None, now_ms=lambda: 50_000,
...                          latency_ms=lambda q: 40 if q < 0.9 else 700)
>>> metrics.scored([{"is_anomaly": True}, {"is_anomaly": False}]); metrics.evicted(2)
>>> [group.registered[n]() for n in ("windowsScored", "anomalies", "entitiesEvicted")]
[2, 1, 2]
>>> [group.registered[n]() for n in ("entitiesTracked", "modelAgeWindows", "watermarkLagMs")]
[3, 12, 0]
>>> [group.registered[n]() for n in ("windowToAnomalyP50Ms", "windowToAnomalyP99Ms")]
[40, 700]
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any

#: The user metric group every clicksentry metric is registered in, and the group above it.
METRIC_GROUP = "clicksentry"
CLOUDWATCH_GROUP = "kinesisanalytics"
#: Every metric the job registers (``deadLetters_<reason>`` besides), for dashboards and alarms.
JOB_COUNTERS = ("eventsIn", "deadLetters", "windowsScored", "anomalies", "entitiesEvicted")
JOB_GAUGES = ("entitiesTracked", "modelAgeWindows", "watermarkLagMs", "windowToAnomalyP50Ms",
              "windowToAnomalyP99Ms")


def wall_clock_ms() -> int:
    """Wall-clock time, epoch milliseconds (what the job's ``PROCTIME()`` stamps use)."""
    return time.time_ns() // 1_000_000


class ScoringMetrics:
    """The scoring operator's metrics, registered (as gauges) on construction.

    Args:
        group: the operator's metric group (``runtime_context.get_metrics_group()``).
        entities_tracked: reads how many entities the subtask's shards hold.
        model_windows: reads the windows the least experienced shard model has learned.
        watermark_ms: reads the operator's last watermark (``None`` before the first).
        now_ms: the wall clock, for the watermark lag.
        latency_ms: reads a quantile (0.5, 0.99) of the recent window-to-anomaly latencies
            (``None`` before the first).
    """

    def __init__(
        self,
        group,
        entities_tracked: Callable[[], int],
        model_windows: Callable[[], int],
        watermark_ms: Callable[[], int | None],
        now_ms: Callable[[], int] = wall_clock_ms,
        latency_ms: Callable[[float], float | None] = lambda q: None,
    ):
        metrics = group.add_group(CLOUDWATCH_GROUP).add_group(METRIC_GROUP)
        self.windows_scored = self.anomalies = self.entities_evicted = 0
        metrics.gauge("windowsScored", lambda: self.windows_scored)
        metrics.gauge("anomalies", lambda: self.anomalies)
        metrics.gauge("entitiesEvicted", lambda: self.entities_evicted)
        metrics.gauge("entitiesTracked", lambda: int(entities_tracked()))
        metrics.gauge("modelAgeWindows", lambda: int(model_windows()))

        def lag() -> int:
            watermark = watermark_ms()
            return 0 if watermark is None else max(0, now_ms() - watermark)

        metrics.gauge("watermarkLagMs", lag)
        for name, q in (("windowToAnomalyP50Ms", 0.5), ("windowToAnomalyP99Ms", 0.99)):
            metrics.gauge(name, lambda q=q: int(latency_ms(q) or 0))

    def scored(self, records: Iterable[Mapping[str, Any]]) -> None:
        """Count scored window records and the anomalies among them."""
        records = list(records)
        self.windows_scored += len(records)
        self.anomalies += sum(1 for r in records if r["is_anomaly"])

    def evicted(self, count: int) -> None:
        """Count entities dropped to keep a shard within its bound."""
        self.entities_evicted += count
