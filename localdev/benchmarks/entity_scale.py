"""The full job over many distinct entities: events/s, checkpoints and state bytes per entity.

The input is ``events`` page views spread evenly over ``minutes`` of event time, in order
(nothing late or malformed), cycling through ``entities`` distinct pages. The job runs on the
local minicluster with checkpoints and its REST API on; :class:`CheckpointWatch` polls it and,
for every checkpoint that completes, notes its size and duration, the scoring operator's part
of it and how many entities the operator tracked then (its ``entitiesTracked`` gauge).
"""

from __future__ import annotations

import logging
import threading
import urllib.error
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from flink_jobs.config import Config
from localdev.benchmarks.pipeline import Throughput, full_job
from localdev.flink_cluster import HOST, FlinkRest, free_port
from udfs.operator_metrics import METRIC_GROUP

logger = logging.getLogger(__name__)

#: 2026-01-05T00:00:00Z, a window boundary.
START_MS = 1_767_571_200_000
USER_AGENT = "Mozilla/5.0 (X11; Linux x86_64) Firefox/133.0"
#: The scoring operator's vertex is the one whose name holds its uid.
SCORING_VERTEX = "score-entity-windows"


def entity_events(entities: int, events: int, minutes: float) -> Iterator[str]:
    """``events`` page views over ``minutes``, page ``i mod entities`` for the ``i``-th.

    >>> import json
    >>> lines = list(entity_events(entities=2, events=4, minutes=1))
    >>> [json.loads(line)["page"] for line in lines]
    ['page-0000000', 'page-0000001', 'page-0000000', 'page-0000001']
    >>> [json.loads(line)["event_time"] - START_MS for line in lines]
    [0, 15000, 30000, 45000]
    """
    step = minutes * 60_000 / events
    for i in range(events):  # a template: faster than json.dumps, line by line
        user = i % 5000
        yield (
            f'{{"event_id":"scale-{i:08}","event_time":{START_MS + int(i * step)},'
            f'"user_id":"u-{user:05}","session_id":"s-{user:05}",'
            f'"ip":"10.{i % 250}.{i // 250 % 250}.{i % 7}","user_agent":"{USER_AGENT}",'
            f'"page":"page-{i % entities:07}","campaign":null,"ad_id":null,'
            f'"action":"page_view","referrer":null}}'
        )


@dataclass
class CheckpointStats:
    """What the completed checkpoints of one job said."""

    completed: int = 0
    #: Checkpoints that failed or were declined (e.g. while the Python workers start).
    failed: int = 0
    #: Polls the REST API answered with a running job.
    polls: int = 0
    #: Per completed checkpoint: id, bytes, end-to-end ms, the scoring operator's bytes, the
    #: rows in flight it stored (unaligned checkpoints) and the entities the operator tracked
    #: when the checkpoint was read.
    checkpoints: list[dict[str, int]] = field(default_factory=list)

    @property
    def largest(self) -> dict[str, int] | None:
        """The checkpoint with the most scoring-operator state, of those read while the operator
        tracked entities (of all, if none was).

        A checkpoint taken before the first window closed holds rows waiting for it but no
        entity yet: its state says nothing per entity, however large it is.

        >>> stats = CheckpointStats(checkpoints=[
        ...     {"id": 1, "scoring_bytes": 900, "entities_tracked": 0},
        ...     {"id": 2, "scoring_bytes": 500, "entities_tracked": 40},
        ...     {"id": 3, "scoring_bytes": 700, "entities_tracked": 50}])
        >>> stats.largest["id"], CheckpointStats(checkpoints=stats.checkpoints[:1]).largest["id"]
        (3, 1)
        """
        return max(
            self.checkpoints,
            key=lambda c: (c["entities_tracked"] > 0, c["scoring_bytes"]),
            default=None,
        )

    def summary(self) -> dict[str, int | float | None]:
        """Counts for the report: the largest checkpoint and its bytes per tracked entity."""
        largest = self.largest or {}
        tracked = largest.get("entities_tracked")
        return {
            "checkpoints_completed": self.completed,
            "checkpoints_failed": self.failed,
            "checkpoint_bytes": largest.get("bytes"),
            "checkpoint_ms": largest.get("duration_ms"),
            "max_checkpoint_ms": max((c["duration_ms"] for c in self.checkpoints), default=None),
            "max_in_flight_bytes": max(
                (c["in_flight_bytes"] for c in self.checkpoints), default=None
            ),
            "scoring_state_bytes": largest.get("scoring_bytes"),
            "entities_tracked": tracked,
            "state_bytes_per_entity": (
                round(largest["scoring_bytes"] / tracked, 1) if tracked else None
            ),
        }


class CheckpointWatch(threading.Thread):
    """Polls the minicluster's REST API while a job runs (see the module docstring)."""

    def __init__(self, rest: FlinkRest, poll_s: float = 0.5) -> None:
        super().__init__(name="checkpoint-watch", daemon=True)
        self.rest, self.poll_s = rest, poll_s
        self.stats = CheckpointStats()
        self._halt = threading.Event()

    def stop(self) -> CheckpointStats:
        """Stop polling; what it saw."""
        self._halt.set()
        self.join()
        return self.stats

    def run(self) -> None:
        seen = 0
        while not self._halt.wait(self.poll_s):
            try:
                seen = self._poll(seen)
            except (urllib.error.URLError, ConnectionError, TimeoutError, KeyError) as exc:
                logger.debug("REST not answering yet: %s", exc)

    def _poll(self, seen: int) -> int:
        running = [j for j in self.rest.rest("/jobs/overview")["jobs"] if j["state"] == "RUNNING"]
        if not running:
            return seen
        job_id = running[0]["jid"]
        answer = self.rest.checkpoints(job_id)
        self.stats.polls += 1
        self.stats.completed = answer["counts"]["completed"]
        self.stats.failed = answer["counts"]["failed"]
        # The history (newest first) holds every recent checkpoint, so one completed between
        # two polls is read too, not only the latest.
        new = sorted(
            (c for c in answer["history"] if c["status"] == "COMPLETED" and c["id"] > seen),
            key=lambda c: c["id"],
        )
        if not new:
            return seen
        vertices = {v["id"]: v["name"] for v in self.rest.job(job_id)["vertices"]}
        tracked = self.rest.user_metrics(job_id, METRIC_GROUP).get("entitiesTracked", 0)
        for checkpoint in new:
            details = self.rest.rest(f"/jobs/{job_id}/checkpoints/details/{checkpoint['id']}")
            # An unaligned checkpoint also stores the rows in flight (``persisted_data``):
            # the scoring operator's own state is what is left.
            scoring = sum(
                task["state_size"] - task["persisted_data"]
                for vertex_id, task in details["tasks"].items()
                if SCORING_VERTEX in vertices.get(vertex_id, "")
            )
            self.stats.checkpoints.append({
                "id": checkpoint["id"], "bytes": checkpoint["state_size"],
                "duration_ms": checkpoint["end_to_end_duration"], "scoring_bytes": scoring,
                "in_flight_bytes": checkpoint["persisted_data"], "entities_tracked": tracked,
            })
        return new[-1]["id"]


def entity_scale_job(config: Config, source: Path, out_root: Path,
                     events: int) -> tuple[Throughput, CheckpointStats]:
    """The bench's full job on ``source``, its REST API on a free port, watched while it runs.

    The REST API fetches the tasks' metrics at most every ``metrics.fetcher.update-interval``
    (Flink's default, 10 s, lasts a short job: a gauge then reads as never reported); here it is
    the watch's poll.
    """
    port = free_port()
    watch = CheckpointWatch(FlinkRest(f"http://{HOST}:{port}"))
    rest = {"rest.port": str(port), "rest.bind-port": str(port),
            "rest.address": HOST, "rest.bind-address": HOST,
            "metrics.fetcher.update-interval": str(int(watch.poll_s * 1000))}
    watch.start()
    try:
        run = full_job(config, source, out_root, events, cluster_options=rest)
    finally:
        stats = watch.stop()
    return run, stats
