"""One fault case end to end: its own streams and archive prefix, input on its clicks stream,
the Managed Flink application on the standalone cluster, and what came out of it.

Every case reads the same simulated stream (:data:`SIMULATION`), closed by one flush event per
shard 16 s of event time after the last event (the Kinesis source never ends; each source subtask
reads one shard and keeps its own watermark, and the flush moves them all past every real window,
so the flush events are the only ones never windowed). What the job wrote is read back with boto3:
the anomalies and dead-letter streams (at-least-once: a restart may repeat records) and the S3
archive (exactly-once: files commit on checkpoints).
"""

from __future__ import annotations

import functools
import itertools
import json
import logging
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from localdev import producer, stack
from localdev.flink_cluster import TERMINAL_STATES, Application, FlinkCluster
from localdev.part_files import s3_records
from localdev.simulator import Simulation, SimulationConfig, simulate
from models.site import SITE_ENTITY
from udfs.operator_metrics import METRIC_GROUP

log = logging.getLogger(__name__)

ROOT = Path(__file__).resolve().parents[2]
#: The emulator variant of the Managed Flink sample properties, or the sample itself.
PROPERTIES_CANDIDATES = (
    ROOT / "localdev" / "application_properties.local.json",
    ROOT / "deploy" / "managed_flink" / "application_properties.json",
)
#: ~7k events over 6 simulated minutes: long enough for the detectors to warm up and flag the
#: injected anomalies, short enough for kinesis-mock (a few hundred records/s on 2 busy cores).
SIMULATION = SimulationConfig(minutes=6, events_per_second=20, seed=7)
FLUSH_AFTER_MS = 16_000
#: The job settings every case runs with (the cluster setup of the failure-free run).
JOB_SETTINGS = {"parallelism": "2", "idle_timeout_ms": "0", "checkpoint_interval_ms": "2000"}
SETTLE_DEADLINE_S = 420
#: ``(case, counts)`` of every run result of the session, for the terminal summary.
RESULTS: list[tuple[str, dict]] = []
#: A run has settled when nothing new arrived this long, over at least two more checkpoints.
QUIET_S = 20
POLL_S = 4


@functools.cache
def simulation() -> Simulation:
    """The simulated stream every case starts from (deterministic) and its ground truth."""
    return simulate(SIMULATION)


def property_groups() -> dict[str, dict[str, str]]:
    """The sample property groups the cases start from: ``{group: {key: value}}``."""
    source = next(p for p in PROPERTIES_CANDIDATES if p.is_file())
    return {g["PropertyGroupId"]: dict(g["PropertyMap"]) for g in json.loads(source.read_text())}


@dataclass(frozen=True)
class Case:
    """A case's own Kinesis streams, archive prefix and properties file."""

    name: str
    streams: Mapping[str, str]
    prefix: str
    groups: Mapping[str, Mapping[str, str]]
    directory: Path

    def arn(self, role: str) -> str:
        """ARN of the ``clicks``, ``anomalies`` or ``dead-letters`` stream."""
        return stack.stream_arn(self.streams[role])

    def properties(self, **job: str) -> Path:
        """Write the properties file (``job`` settings overridden); returns its path."""
        groups = {g: dict(m) for g, m in self.groups.items()}
        groups["job"] |= job
        suffix = "-".join(f"{k}-{v}" for k, v in sorted(job.items()))
        path = self.directory / f"application_properties{'-' + suffix if suffix else ''}.json"
        path.write_text(
            json.dumps([{"PropertyGroupId": g, "PropertyMap": m} for g, m in groups.items()])
        )
        return path


def create_case(
    aws_stack,
    directory: Path,
    name: str,
    kinesis_endpoint: str | None = None,
    settings: Mapping[str, Mapping[str, str]] | None = None,
) -> Case:
    """Fresh streams (clicks: 2 shards, anomalies: 2, dead letters: 1) and archive prefix.

    The job talks to ``kinesis_endpoint`` (default: kinesis-mock; a proxy in front of it for
    fault injection); ``settings`` override property groups.
    """
    kinesis = aws_stack.client("kinesis")
    run = f"faults-{name}-{uuid.uuid4().hex[:6]}"
    shards = {"clicks": 2, "anomalies": 2, "dead-letters": 1}
    streams = {role: f"{run}-{role}" for role in shards}
    for role, stream in streams.items():
        kinesis.create_stream(StreamName=stream, ShardCount=shards[role])
    for stream in streams.values():
        kinesis.get_waiter("stream_exists").wait(
            StreamName=stream, WaiterConfig={"Delay": 0.2, "MaxAttempts": 150}
        )
    groups = property_groups()
    groups["job"] |= JOB_SETTINGS
    groups["kinesis"] |= {
        "clicks_stream_arn": stack.stream_arn(streams["clicks"]),
        "anomalies_stream_arn": stack.stream_arn(streams["anomalies"]),
        "dead_letter_stream_arn": stack.stream_arn(streams["dead-letters"]),
        "endpoint": kinesis_endpoint or aws_stack.kinesis_endpoint,
    }
    groups["archive"] |= {
        "path": f"s3://{aws_stack.archive_bucket}/{run}/",
        "s3_endpoint": aws_stack.moto_endpoint,
    }
    for group, values in (settings or {}).items():
        groups.setdefault(group, {}).update(values)
    directory.mkdir(parents=True, exist_ok=True)
    return Case(name, streams, f"{run}/", groups, directory)


def delete_case(aws_stack, case: Case) -> None:
    """Delete the case's streams (its archive prefix stays for inspection)."""
    kinesis = aws_stack.client("kinesis")
    for stream in case.streams.values():
        kinesis.delete_stream(StreamName=stream)


def shard_partition_keys(kinesis, stream_arn: str) -> list[str]:
    """A partition key for each shard of the stream, in shard order (Kinesis maps a key to the
    shard whose hash-key range holds the key's MD5)."""
    ranges = [
        (int(s["HashKeyRange"]["StartingHashKey"]), int(s["HashKeyRange"]["EndingHashKey"]))
        for s in kinesis.list_shards(StreamARN=stream_arn)["Shards"]
    ]
    keys: dict[int, str] = {}
    candidates = (f"shard-key-{n}" for n in itertools.count())
    while len(keys) < len(ranges):
        key = next(candidates)
        hashed = int(producer.partition_key(key.encode()), 16)
        shard = next(i for i, (low, high) in enumerate(ranges) if low <= hashed <= high)
        keys.setdefault(shard, key)
    return [keys[i] for i in range(len(ranges))]


def flush_events(shards: int) -> list[dict]:
    """One valid event per shard, :data:`FLUSH_AFTER_MS` after the simulation's last event time
    (the same in every case, so every case scores the same windows)."""
    sim = simulation()
    dead = {int(i) for i in sim.truth["dead_letters"]}
    valid = [json.loads(line) for i, line in enumerate(sim.lines) if i not in dead]
    flush_time = max(e["event_time"] for e in valid) + FLUSH_AFTER_MS
    return [
        {**valid[-1], "event_id": f"flush-{shard}", "event_time": flush_time}
        for shard in range(shards)
    ]


@dataclass(repr=False)
class Outputs:
    """What a case's job wrote: anomaly records (with partition keys), dead letters, the
    archive's scored windows, raw events and entity evictions."""

    anomalies: list[tuple[str, dict]]
    dead_letters: list[dict]
    scored_windows: list[dict]
    raw_events: list[str]
    evictions: list[dict] = field(default_factory=list)

    @property
    def anomaly_ids(self) -> set[str]:
        """Distinct ``anomaly_id`` on the anomalies stream (the site's own alerts too)."""
        return {record["anomaly_id"] for _, record in self.anomalies}

    @property
    def entity_anomaly_ids(self) -> set[str]:
        """Distinct ``anomaly_id`` of entity windows on the anomalies stream (not the site's)."""
        return {
            record["anomaly_id"] for _, record in self.anomalies
            if (record["entity_type"], record["entity_id"]) != SITE_ENTITY
        }

    def inexact_duplicates(self) -> list[str]:
        """Anomaly ids that appear more than once with records that differ."""
        seen: dict[str, set[str]] = {}
        for key, record in self.anomalies:
            seen.setdefault(record["anomaly_id"], set()).add(
                key + json.dumps(record, sort_keys=True)
            )
        return sorted(i for i, versions in seen.items() if len(versions) > 1)

    @property
    def distinct_dead_letters(self) -> list[dict]:
        """Dead letters with exact repeats (a restarted at-least-once sink) removed."""
        unique = {json.dumps(d, sort_keys=True): d for d in self.dead_letters}
        return list(unique.values())

    @property
    def dead_letter_reasons(self) -> Counter:
        """``(payload, reason)`` of the distinct dead letters."""
        return Counter((d["payload"], d["reason"]) for d in self.distinct_dead_letters)

    @property
    def window_counts(self) -> Counter:
        """How often each scored window ``(entity_type, entity_id, window_end_ms)`` is archived."""
        return Counter(
            (w["entity_type"], w["entity_id"], w["window_end_ms"]) for w in self.scored_windows
        )

    def _distinct_windows(self) -> list[dict]:
        return list(
            {(w["entity_type"], w["entity_id"], w["window_end_ms"]): w
             for w in self.scored_windows}.values()
        )

    @property
    def windowed(self) -> int:
        """Events counted in the distinct archived page windows (each event has one page)."""
        return int(sum(w["events"] for w in self._distinct_windows() if w["entity_type"] == "page"))

    @property
    def flagged(self) -> int:
        """Distinct archived windows flagged as anomalies."""
        return sum(1 for w in self._distinct_windows() if w["is_anomaly"])

    @property
    def records_out(self) -> int:
        """Records accounted for: archived raw, or dead-lettered."""
        return len(self.raw_events) + len(self.distinct_dead_letters)

    def size(self) -> tuple[int, ...]:
        """Counts that grow while the job works."""
        return (len(self.anomalies), len(self.dead_letters), len(self.scored_windows),
                len(self.raw_events))

    def consumed(self, produced: int, flushes: int) -> bool:
        """Every record is archived or dead-lettered, every event but the flushes windowed, and
        the anomalies stream caught up with the flagged windows."""
        return (
            self.records_out == produced
            and self.windowed + len(self.distinct_dead_letters) == produced - flushes
            and len(self.entity_anomaly_ids) == self.flagged
        )

    def __repr__(self) -> str:
        return f"Outputs({self.summary()})"

    def summary(self) -> dict[str, int]:
        """Counts for failure messages and logs."""
        return {
            "anomaly_records": len(self.anomalies),
            "anomaly_ids": len(self.anomaly_ids),
            "dead_letters": len(self.dead_letters),
            "distinct_dead_letters": len(self.distinct_dead_letters),
            "scored_windows": len(self.scored_windows),
            "distinct_windows": len(self.window_counts),
            "flagged_windows": self.flagged,
            "windowed_events": self.windowed,
            "raw_events": len(self.raw_events),
        }


def read_outputs(aws_stack, case: Case) -> Outputs:
    """Everything the case's job wrote so far."""
    kinesis, s3 = aws_stack.client("kinesis"), aws_stack.client("s3")
    bucket, root = aws_stack.archive_bucket, case.prefix
    return Outputs(
        anomalies=[
            (key, json.loads(d)) for key, d in stack.read_stream(kinesis, case.arn("anomalies"))
        ],
        dead_letters=[
            json.loads(d) for _, d in stack.read_stream(kinesis, case.arn("dead-letters"))
        ],
        scored_windows=list(s3_records(s3, bucket, root + "scored-windows/")),
        raw_events=[r["payload"] for r in s3_records(s3, bucket, root + "raw-events/")],
        evictions=list(s3_records(s3, bucket, root + "entity-evictions/")),
    )


@dataclass(repr=False)
class RunResult:
    """A finished case run: the counts in, what came out, the job's restarts and log."""

    produced: int
    flushes: int
    outputs: Outputs
    restarts: int
    state: str
    failures: Counter
    log_tail: str
    seconds: float
    job_ids: list[str] = field(default_factory=list)
    #: The last job's own metrics (:mod:`udfs.operator_metrics`), when read.
    metrics: dict[str, int] = field(default_factory=dict)

    def counts(self) -> dict:
        """What went in and came out, how the job fared."""
        return {"produced": self.produced, "flushes": self.flushes, "restarts": self.restarts,
                "state": self.state, "failures": dict(self.failures), "seconds": self.seconds,
                **self.outputs.summary()}

    def __repr__(self) -> str:
        return f"RunResult({self.counts()})"

    def message(self, what: str = "") -> str:
        """An assertion message: what differs, the counts, the job's log tail."""
        return f"{what}\ncounts: {self.counts()}\njob log tail:\n{self.log_tail}"

    def assert_matches(self, expected: RunResult) -> None:
        """Assert the failure-free run's anomaly ids and windows, each window archived once,
        repeats only as exact copies, and in = windowed + dead letters."""
        outputs, want = self.outputs, expected.outputs
        assert outputs.anomaly_ids == want.anomaly_ids, self.message(
            f"anomaly ids only here: {sorted(outputs.anomaly_ids - want.anomaly_ids)}; "
            f"only in the failure-free run: {sorted(want.anomaly_ids - outputs.anomaly_ids)}"
        )
        assert outputs.inexact_duplicates() == [], self.message("repeats that differ")
        twice = {w: n for w, n in outputs.window_counts.items() if n > 1}
        assert twice == {}, self.message(f"{len(twice)} windows archived more than once")
        assert set(outputs.window_counts) == set(want.window_counts), self.message(
            f"windows only here: {len(set(outputs.window_counts) - set(want.window_counts))}, "
            f"only in the failure-free run: "
            f"{len(set(want.window_counts) - set(outputs.window_counts))}"
        )
        dead = len(outputs.distinct_dead_letters)
        assert outputs.windowed + dead == self.produced - self.flushes, self.message(
            "events in != windowed + dead letters"
        )


class CaseRun:
    """Drives one case on the cluster: producing, submitting, waiting, cancelling.

    Every job it submits is cancelled by :meth:`close` (the fixture's finalizer).
    """

    def __init__(self, cluster: FlinkCluster, app: Application, aws_stack, case: Case):
        self.cluster, self.app, self.aws_stack, self.case = cluster, app, aws_stack, case
        self.job_ids: list[str] = []
        self.produced = 0
        self.flushes = 0
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"produce-{case.name}")
        self._closing = threading.Event()
        self._restarts: dict[str, int] = {}  # of jobs that ended (their metrics went with them)
        self._started = time.monotonic()

    def produce(
        self, lines: list[str | bytes], rate: float | None = None, shard: int | None = None
    ) -> Future:
        """Put ``lines`` on the clicks stream in the background (PutRecords, retried): spread
        over the shards, or all on ``shard`` (in order)."""
        self.produced += len(lines)
        kinesis = self.aws_stack.client("kinesis")
        keys = shard_partition_keys(kinesis, self.case.arn("clicks"))

        def stop_when_closing(_: producer.ProduceResult) -> None:
            if self._closing.is_set():
                raise RuntimeError(f"case {self.case.name} closed while producing")

        def put() -> None:
            result = producer.produce(
                lines, kinesis, self.case.arn("clicks"), rate=rate, on_batch=stop_when_closing,
                key=producer.partition_key if shard is None else lambda _: keys[shard],
            )
            assert result.sent == len(lines), f"produced {result} of {len(lines)} lines"

        return self._pool.submit(put)

    def flush(self, only_shard: int | None = None) -> None:
        """Close the stream: one flush event on each shard of the clicks stream (or on
        ``only_shard`` alone)."""
        kinesis = self.aws_stack.client("kinesis")
        shards = kinesis.list_shards(StreamARN=self.case.arn("clicks"))["Shards"]
        if only_shard is not None:
            shards = [shards[only_shard]]
        for shard, event in zip(shards, flush_events(len(shards)), strict=True):
            kinesis.put_record(
                StreamARN=self.case.arn("clicks"),
                Data=json.dumps(event).encode(),
                PartitionKey="flush",
                ExplicitHashKey=shard["HashKeyRange"]["StartingHashKey"],
            )
        self.produced += len(shards)
        self.flushes += len(shards)

    def submit(self, savepoint: str | None = None, **job: str) -> str:
        """Submit the application (``job`` settings overridden) and wait until it runs."""
        properties = self.case.properties(**job)
        job_id = self.cluster.submit(
            self.app, env={"CLICKSENTRY_PROPERTIES": str(properties)}, savepoint=savepoint
        )
        self.job_ids.append(job_id)
        self.cluster.wait_running(job_id)
        return job_id

    def stop_with_savepoint(self, job_id: str) -> str:
        """Stop the job with a savepoint (its restarts noted first); returns the savepoint."""
        self._restarts[job_id] = self.cluster.restarts(job_id)
        return self.cluster.stop_with_savepoint(job_id)

    def outputs(self) -> Outputs:
        """What the job wrote so far."""
        return read_outputs(self.aws_stack, self.case)

    def wait_until(self, job_id: str, done: Callable[[Outputs], bool]) -> Outputs:
        """Poll the outputs until ``done``, the job ended, or they settled (nothing new for
        :data:`QUIET_S` over two more completed checkpoints); the deadline otherwise."""
        deadline = time.monotonic() + SETTLE_DEADLINE_S
        last_size, changed_at, checkpoint_at_change = None, time.monotonic(), -1
        while True:
            outputs = self.outputs()
            if done(outputs):
                return outputs
            job = self.cluster.job(job_id)
            if job["state"] in TERMINAL_STATES or time.monotonic() > deadline:
                log.warning("stopped waiting for job %s: %s", job_id, job["state"])
                return outputs
            completed = self.cluster.checkpoints(job_id)["latest"]["completed"]
            checkpoint = completed["id"] if completed else 0
            if outputs.size() != last_size:
                last_size, changed_at, checkpoint_at_change = outputs.size(), time.monotonic(), (
                    checkpoint
                )
            elif (
                time.monotonic() - changed_at >= QUIET_S
                and checkpoint >= checkpoint_at_change + 2
            ):
                log.info("job %s settled: %s", job_id, outputs.summary())
                return outputs
            time.sleep(POLL_S)

    def settled_metrics(self, job_id: str, outputs: Outputs, timeout_s: float = 90) -> dict:
        """The job's own metrics (summed over subtasks) once they count every input record and
        every archived window; what they say at the deadline otherwise."""
        deadline = time.monotonic() + timeout_s
        while True:
            metrics = self.cluster.user_metrics(job_id, METRIC_GROUP)
            caught_up = (metrics.get("eventsIn") == self.produced
                         and metrics.get("windowsScored") == len(outputs.window_counts))
            if caught_up or time.monotonic() > deadline:
                return metrics
            time.sleep(POLL_S)

    def wait_consumed(self, job_id: str) -> Outputs:
        """Wait until everything produced is consumed (or the run settled without it)."""
        return self.wait_until(job_id, lambda o: o.consumed(self.produced, self.flushes))

    def result(self, outputs: Outputs) -> RunResult:
        """The run's result; the restarts are summed over its jobs."""
        restarts = sum(
            self._restarts[j] if j in self._restarts else self.cluster.restarts(j)
            for j in self.job_ids
        )
        failures = Counter(
            f"{e['stacktrace'].splitlines()[0][:300]} (on {e.get('taskManagerId') or 'the JM'})"
            for j in self.job_ids
            for e in self.cluster.exceptions(j)
        )
        result = RunResult(
            self.produced,
            self.flushes,
            outputs,
            restarts,
            self.cluster.state(self.job_ids[-1]),
            failures,
            self.cluster.log_tail(),
            round(time.monotonic() - self._started, 1),
            list(self.job_ids),
        )
        log.info("case %s: %s", self.case.name, result.counts())
        RESULTS.append((self.case.name, result.counts()))
        return result

    def close(self) -> None:
        """Stop producing; cancel every job of this case that still runs."""
        self._closing.set()
        self._pool.shutdown(wait=True, cancel_futures=True)
        for job_id in self.job_ids:
            try:
                self.cluster.cancel(job_id)
            except Exception:  # the cluster may be gone (a failed start): nothing left to cancel
                log.exception("could not cancel job %s", job_id)


def run_through(run: CaseRun, lines: list[str | bytes]) -> RunResult:
    """The failure-free procedure: produce while the job starts, flush, wait until consumed."""
    producing = run.produce(lines)
    job_id = run.submit()
    producing.result()
    run.flush()
    return run.result(run.wait_consumed(job_id))
