"""The job on Kinesis and S3 end to end, on kinesis-mock and moto server.

Both tests run one scenario: a simulated stream with injected anomalies is produced once to a
fresh 2-shard clicks stream (``clicksentry produce``), which both read from its start. The job
reads it from Kinesis until everything is consumed, and then its own anomalies stream,
dead-letter stream and S3 archive prefix are read back with boto3, reconciled, and compared with
the embedded job's output on the same input: the same scored windows, anomalies and dead letters.
One runs the job from this checkout (``clicksentry run`` with ``job.source = kinesis``), the
other the Managed Flink artefact itself (the zip's ``main.py``, from the unpacked zip's
directory, so nothing of the checkout is importable).

The Kinesis source never ends, so the stream closes with one flush event per shard, 16 s of event
time after the last event: it moves every source subtask's watermark past every real window. The
flush events' own window stays open, so they are the only events never windowed. The job runs
without idleness here: a source subtask that waits on kinesis-mock for a moment must not let the
watermark run ahead of its shard, or the comparison would depend on timing (the silent-shard case,
with the default idle timeout, is tests/faults/test_idle_shard.py).
"""

import json
import os
import signal
import subprocess
import sys
import time
import uuid
import zipfile
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import pytest
from embedded_job import OUTPUTS, canonical, run_embedded

from flink_jobs.features import WINDOW_MS
from localdev import stack
from localdev.part_files import s3_records
from localdev.run_summary import run_summary
from localdev.simulator import SimulationConfig, simulate, write_simulation
from models.site import SITE_ENTITY

pytestmark = [pytest.mark.integration, pytest.mark.flink]

ROOT = Path(__file__).resolve().parents[2]
# the local variant of the Managed Flink sample: same groups, emulator endpoints (docs/kinesis.md)
SAMPLE_PROPERTIES = ROOT / "localdev" / "application_properties.local.json"
BIN = Path(sys.executable).parent
# ~11k events: kinesis-mock takes them slowly (about 90 s here; it slows down as a shard fills),
# so the stream is produced once for both tests. Detection quality is tested on the embedded
# source (tests/flink_jobs/test_job_detects_anomalies.py, a longer, denser stream); here the
# same work goes through Kinesis and S3 and must reach the same sinks.
SIMULATION = SimulationConfig(minutes=6, events_per_second=30, seed=7)
JOB_DEADLINE_S = 360
FLUSH_AFTER_MS = 16_000


@dataclass(frozen=True)
class Clicks:
    """The clicks stream both tests read: what was put on it, the flush events included."""

    arn: str
    produced: int
    flushes: int


@dataclass(frozen=True)
class Scenario:
    clicks: Clicks
    anomalies: str
    dead_letters: str
    archive_prefix: str
    properties: Path


@pytest.fixture(scope="module")
def simulation():
    return simulate(SIMULATION)


@pytest.fixture(scope="module")
def events_file(simulation, tmp_path_factory) -> Path:
    """The simulated stream as ``events.jsonl``: the embedded job's input and what is produced."""
    events, _ = write_simulation(simulation, tmp_path_factory.mktemp("simulation"))
    return events


def sample_groups() -> dict[str, dict[str, str]]:
    document = json.loads(SAMPLE_PROPERTIES.read_text())
    return {g["PropertyGroupId"]: g["PropertyMap"] for g in document}


@pytest.fixture(scope="module")
def embedded(events_file, tmp_path_factory):
    """The embedded job's output on the same input, with the sample's scoring settings."""
    root = tmp_path_factory.mktemp("embedded")
    groups = sample_groups()
    return run_embedded(
        events_file, root / "out", int(groups["job"]["parallelism"]),
        {"scoring": groups["scoring"]},
    )


def create_streams(kinesis, shards: dict[str, int]) -> dict[str, str]:
    """Fresh streams, by role (``shards``: role -> shard count), ready to use; their names."""
    run = uuid.uuid4().hex[:8]
    names = {role: f"e2e-{run}-{role}" for role in shards}
    for role, name in names.items():
        kinesis.create_stream(StreamName=name, ShardCount=shards[role])
    for name in names.values():
        kinesis.get_waiter("stream_exists").wait(
            StreamName=name, WaiterConfig={"Delay": 0.2, "MaxAttempts": 100}
        )
    return names


@pytest.fixture(scope="module")
def clicks(aws_stack, simulation, events_file):
    """The simulated stream on a fresh 2-shard clicks stream (``clicksentry produce``), then one
    flush event per shard; deleted after the module."""
    kinesis = aws_stack.client("kinesis")
    name = create_streams(kinesis, {"clicks": 2})["clicks"]
    arn = stack.stream_arn(name)
    sent = subprocess.run(
        [BIN / "clicksentry", "produce", "--events", events_file, "--stream-arn", arn],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert sent.returncode == 0, sent.stdout + sent.stderr
    assert f"sent {len(simulation.lines)}, failed 0" in sent.stdout
    dead = {int(i) for i in simulation.truth["dead_letters"]}
    valid = [json.loads(line) for i, line in enumerate(simulation.lines) if i not in dead]
    flush_time = max(event["event_time"] for event in valid) + FLUSH_AFTER_MS
    shards = kinesis.list_shards(StreamARN=arn)["Shards"]
    for shard in shards:
        flush = {**valid[-1], "event_id": f"flush-{shard['ShardId']}", "event_time": flush_time}
        kinesis.put_record(
            StreamARN=arn,
            Data=json.dumps(flush).encode(),
            PartitionKey="flush",
            ExplicitHashKey=shard["HashKeyRange"]["StartingHashKey"],
        )
    yield Clicks(arn, len(simulation.lines) + len(shards), len(shards))
    kinesis.delete_stream(StreamName=name)


@pytest.fixture
def scenario(aws_stack, clicks, tmp_path):
    """The clicks stream, this test's own anomalies and dead-letter streams and archive prefix,
    and the local sample properties (emulator variant of the Managed Flink sample) pointed at
    them."""
    kinesis = aws_stack.client("kinesis")
    names = create_streams(kinesis, {"anomalies": 2, "dead-letters": 1})
    arns = {role: stack.stream_arn(name) for role, name in names.items()}
    prefix = f"e2e-{uuid.uuid4().hex[:8]}/"
    groups = sample_groups()
    groups["job"] |= {"checkpoint_interval_ms": "2000", "checkpoint_dir": str(tmp_path / "ckpt"),
                      "idle_timeout_ms": "0"}
    groups["kinesis"] |= {
        "clicks_stream_arn": clicks.arn,
        "anomalies_stream_arn": arns["anomalies"],
        "dead_letter_stream_arn": arns["dead-letters"],
        "endpoint": aws_stack.kinesis_endpoint,
    }
    groups["archive"] |= {
        "path": f"s3://{aws_stack.archive_bucket}/{prefix}",
        "s3_endpoint": aws_stack.moto_endpoint,
    }
    properties = tmp_path / "application_properties.json"
    properties.write_text(
        json.dumps([{"PropertyGroupId": g, "PropertyMap": m} for g, m in groups.items()])
    )
    yield Scenario(clicks, arns["anomalies"], arns["dead-letters"], prefix, properties)
    for name in names.values():
        kinesis.delete_stream(StreamName=name)


@dataclass
class Outputs:
    anomalies: list
    dead_letters: list
    scored_windows: list
    raw_events: list


def read_outputs(aws_stack, scenario):
    kinesis, s3 = aws_stack.client("kinesis"), aws_stack.client("s3")
    root = scenario.archive_prefix
    return Outputs(
        anomalies=[(k, json.loads(d)) for k, d in stack.read_stream(kinesis, scenario.anomalies)],
        dead_letters=[json.loads(d) for _, d in stack.read_stream(kinesis, scenario.dead_letters)],
        scored_windows=list(
            s3_records(s3, aws_stack.archive_bucket, root + "scored-windows/")
        ),
        raw_events=[
            r["payload"] for r in s3_records(s3, aws_stack.archive_bucket, root + "raw-events/")
        ],
    )


def run_job_until_consumed(command, env, aws_stack, scenario, log_path, cwd=None):
    """Run the job until every event is archived or dead-lettered, every window is scored, and
    the anomalies stream holds every flagged window (the deadline, otherwise)."""
    with log_path.open("w") as log:
        job = subprocess.Popen(
            command, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
            cwd=cwd,
        )
    deadline = time.monotonic() + JOB_DEADLINE_S
    produced, flushes = scenario.clicks.produced, scenario.clicks.flushes
    outputs = None
    try:
        while time.monotonic() < deadline and job.poll() is None:
            time.sleep(5)
            outputs = read_outputs(aws_stack, scenario)
            consumed = len(outputs.raw_events) + len(outputs.dead_letters) == produced
            windowed = sum(
                w["events"] for w in outputs.scored_windows if w["entity_type"] == "page"
            )
            flagged = sum(1 for w in outputs.scored_windows if w["is_anomaly"])
            if (
                consumed
                and windowed + len(outputs.dead_letters) == produced - flushes
                # the asynchronous Kinesis sink caught up
                and len(entity_anomalies(outputs)) == flagged
            ):
                break
    finally:
        if job.poll() is None:
            os.killpg(job.pid, signal.SIGINT)
            try:
                job.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(job.pid, signal.SIGKILL)
                job.wait()
    return read_outputs(aws_stack, scenario)


def entity_anomalies(outputs) -> list[dict]:
    """The anomaly records of entity windows: the stream less the site's own alerts."""
    return [
        r for _, r in outputs.anomalies if (r["entity_type"], r["entity_id"]) != SITE_ENTITY
    ]


def assert_same_as_embedded(outputs, embedded, log_path):
    """The scored windows, anomalies and dead letters equal the embedded run's on the same input.

    Up to the last two windows with events: those close at the end of the input there (where
    no empty window is synthesised: the end of a file is no outage) and on the flush here.
    """
    log = log_path.read_text()[-3000:]
    end_ms = max(w["window_end_ms"] for w in embedded["scored_windows"] if not w["synthetic"])
    end_ms -= 2 * WINDOW_MS
    here = {
        "scored_windows": outputs.scored_windows,
        "anomalies": [record for _, record in outputs.anomalies],
        "dead_letters": outputs.dead_letters,
    }
    for name in OUTPUTS:
        got, want = (
            canonical([r for r in records if r.get("window_end_ms", 0) <= end_ms])
            for records in (here[name], embedded[name])
        )
        assert len(got) == len(want) and got == want, (
            f"{name}: {len(got)} here, {len(want)} embedded; first difference: "
            f"{next(((a, b) for a, b in zip(got, want, strict=False) if a != b), None)}\n{log}"
        )


def assert_reconciled_and_detected(outputs, simulation, clicks, log_path):
    log = log_path.read_text()[-3000:]
    produced, flushes = clicks.produced, clicks.flushes
    truth = simulation.truth
    # every event is archived raw or dead-lettered with its reason; all but the flush are windowed
    assert len(outputs.raw_events) + len(outputs.dead_letters) == produced, log
    assert Counter(d["reason"] for d in outputs.dead_letters) == Counter(
        truth["dead_letter_reasons"]
    ), log
    summary = run_summary(produced - flushes, outputs.dead_letters, outputs.scored_windows, truth)
    assert summary["reconciled"], summary
    # the anomalies stream holds exactly the anomalous scored windows (and the site's own
    # alerts), keyed by entity
    flagged = [w for w in outputs.scored_windows if w["is_anomaly"]]
    assert len(entity_anomalies(outputs)) == len(flagged)
    assert all(key == f"{r['entity_type']}/{r['entity_id']}" for key, r in outputs.anomalies)
    # injected anomalies were flagged (so are on the stream); the drift control raised nothing
    detected = [kind for kind, k in summary["by_kind"].items() if k["detected"]]
    assert detected, summary["by_kind"]
    injected = {
        (e["entity_type"], e["entity_id"])
        for label in truth["anomalies"]
        if label["kind"] in detected
        for e in label["entities"]
    }
    assert any((r["entity_type"], r["entity_id"]) in injected for _, r in outputs.anomalies)
    # within the simulated time (after it, the flush gap makes every entity look silent)
    end_ms = max(w["window_end_ms"] for w in outputs.scored_windows if not w["synthetic"])
    in_time = [w for w in outputs.scored_windows if w["window_end_ms"] <= end_ms]
    assert run_summary(produced - flushes, [], in_time, truth)["control_alerts"] == 0


def test_job_reads_kinesis_and_writes_anomalies_dead_letters_and_archive(
    aws_stack, scenario, simulation, embedded, tmp_path, subprocess_env
):
    # GIVEN a simulated stream with injected anomalies on the clicks stream
    # WHEN `clicksentry run` runs the job with job.source = kinesis until it is consumed
    env = {**subprocess_env, "IS_LOCAL": "1"}
    command = [BIN / "clicksentry", "run", "--properties", scenario.properties]
    log_path = tmp_path / "job.log"
    outputs = run_job_until_consumed(command, env, aws_stack, scenario, log_path)
    # THEN the counts reconcile, injected anomalies are on the anomalies stream, and the output
    # is the embedded job's on the same input
    assert_reconciled_and_detected(outputs, simulation, scenario.clicks, log_path)
    assert_same_as_embedded(outputs, embedded, log_path)


def test_managed_flink_artefact_runs_from_its_zip(
    aws_stack, scenario, simulation, embedded, tmp_path, subprocess_env, managed_flink_zip
):
    # GIVEN the Managed Flink zip, unpacked, and a simulated stream on the clicks stream
    app = tmp_path / "app"
    with zipfile.ZipFile(managed_flink_zip) as archive:
        archive.extractall(app)
    assert (app / "main.py").is_file() and (app / "lib" / "pyflink-dependencies.jar").is_file()
    assert (app / "dep" / "krcf").is_dir() and (app / "dep" / "flink_jobs").is_dir()
    # WHEN its main.py runs with IS_LOCAL and the properties, from outside the checkout
    env = {
        **{k: v for k, v in subprocess_env.items() if k != "PYTHONPATH"},
        "IS_LOCAL": "1",
        "CLICKSENTRY_PROPERTIES": str(scenario.properties),
    }
    log_path = tmp_path / "main.log"
    outputs = run_job_until_consumed(
        [sys.executable, app / "main.py"], env, aws_stack, scenario, log_path, cwd=app,
    )
    # THEN the job ran from the zip's own packages and did the same work
    assert f"packages from {app / 'dep'}" in log_path.read_text()
    assert_reconciled_and_detected(outputs, simulation, scenario.clicks, log_path)
    assert_same_as_embedded(outputs, embedded, log_path)
