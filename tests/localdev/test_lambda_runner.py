"""The local event source mapping on kinesis-mock, and `clicksentry alerts` end to end."""

import base64
import json
import os
import shutil
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
from alert_payloads import (
    QueueReader,
    about,
    encode,
    for_entity,
    handler_environment,
    load,
    unique_entity,
)

from localdev import stack
from localdev.lambda_runner import KinesisEventSourceMapping

pytestmark = pytest.mark.integration

CLICKSENTRY = str(Path(sys.executable).with_name("clicksentry"))

EVENT_RECORD_FIELDS = {
    "kinesis",
    "eventSource",
    "eventVersion",
    "eventID",
    "eventName",
    "invokeIdentityArn",
    "awsRegion",
    "eventSourceARN",
}
KINESIS_FIELDS = {
    "kinesisSchemaVersion",
    "partitionKey",
    "sequenceNumber",
    "data",
    "approximateArrivalTimestamp",
}


@pytest.fixture
def subscriber(aws_stack) -> QueueReader:
    return QueueReader(aws_stack.client("sqs"), aws_stack.alert_subscriber_queue_url)


@pytest.fixture
def private_stream(aws_stack):
    """A two-shard anomalies stream of this test's own on kinesis-mock, deleted afterwards.

    Other tests write to the stack's streams at the same time; a stream of its own keeps what
    this test reads exactly what it wrote.
    """
    kinesis = aws_stack.client("kinesis")
    name = f"{aws_stack.anomalies_stream}-{uuid.uuid4().hex[:8]}"
    kinesis.create_stream(StreamName=name, ShardCount=2)
    kinesis.get_waiter("stream_exists").wait(
        StreamName=name, WaiterConfig={"Delay": 0.2, "MaxAttempts": 100}
    )
    yield name
    kinesis.delete_stream(StreamName=name, EnforceConsumerDeletion=True)


def test_mapping_resumes_from_first_failed_record_and_restarts_where_it_stopped(
    aws_stack, private_stream, tmp_path
):
    # GIVEN five records on a stream and a handler that fails the third (once) and the fifth
    kinesis = aws_stack.client("kinesis")
    for n in range(1, 6):
        kinesis.put_record(StreamName=private_stream, Data=f"r{n}".encode(), PartitionKey="k")
    batches, delivered = [], set()

    def handler(event, context):
        assert context.get_remaining_time_in_millis() > 0
        records = event["Records"]
        assert all(set(r) == EVENT_RECORD_FIELDS for r in records)
        assert all(set(r["kinesis"]) == KINESIS_FIELDS for r in records)
        datas = [base64.b64decode(r["kinesis"]["data"]).decode() for r in records]
        batches.append(datas)
        failing = {"r3", "r5"} - delivered
        delivered.update(datas)
        return {
            "batchItemFailures": [
                {"itemIdentifier": r["kinesis"]["sequenceNumber"]}
                for r, data in zip(records, datas, strict=True)
                if data in failing
            ]
        }

    positions = tmp_path / "positions.json"

    # WHEN the mapping runs until caught up
    mapping = KinesisEventSourceMapping(kinesis, private_stream, handler, positions, batch_size=10)
    summary = mapping.run(until_caught_up=True, max_seconds=30, poll_interval=0.05)

    # THEN the batch is retried from the lowest failed sequence number only
    assert batches == [["r1", "r2", "r3", "r4", "r5"], ["r3", "r4", "r5"]]
    assert (summary.records, summary.invocations, summary.failed_records) == (8, 2, 3)
    assert summary.caught_up

    # WHEN two more records arrive and a new mapping (a restart) reads the same positions file
    for n in (6, 7):
        kinesis.put_record(StreamName=private_stream, Data=f"r{n}".encode(), PartitionKey="k")
    batches.clear()
    restarted = KinesisEventSourceMapping(kinesis, private_stream, handler, positions)
    restarted.run(until_caught_up=True, max_seconds=30, poll_interval=0.05)

    # THEN it neither skips nor resends
    assert batches == [["r6", "r7"]]


def _alerts_command(stream, positions, *options):
    return [
        CLICKSENTRY,
        "alerts",
        "--stream",
        stream,
        "--poll-interval",
        "0.2",
        "--positions-file",
        str(positions),
        *options,
    ]


def _handled_up_to(positions, stream_arn, written):
    """True once the positions file is at or past every (shard, sequence number) in ``written``."""
    if not positions.exists():
        return False
    saved = json.loads(positions.read_text()).get(stream_arn, {})
    return all(int(saved.get(shard, -1)) >= int(seq) for shard, seq in written.items())


def test_alerts_command_end_to_end_with_a_restart_and_no_duplicates(
    aws_stack, private_stream, tmp_path, subscriber
):
    # GIVEN six ads with one anomaly each, three on both shards of an anomalies stream now,
    # three later
    kinesis = aws_stack.client("kinesis")
    stream_arn = stack.stream_arn(private_stream)
    env = {**os.environ, **handler_environment(aws_stack)}
    anomalies = [
        for_entity(load("anomaly-clicks-high.json"), unique_entity(f"e2e{i}")) for i in range(6)
    ]

    def put(batch):
        written = {}
        for n, anomaly in enumerate(batch):
            receipt = kinesis.put_record(
                StreamName=private_stream,
                Data=encode(anomaly),
                PartitionKey=f"{anomaly['entity_type']}/{anomaly['entity_id']}",
                ExplicitHashKey=str(0 if n % 2 else 2**128 - 1),  # both shards get records
            )
            written[receipt["ShardId"]] = receipt["SequenceNumber"]
        return written

    def alerts_about(batch):
        return [len(subscriber.take(about(a["entity_id"]))) for a in batch]

    def run_once(positions):
        command = _alerts_command(private_stream, positions, "--once", "--max-seconds", "60")
        done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stdout + done.stderr
        assert "caught up: True" in done.stdout
        return done.stdout

    positions = tmp_path / "positions.json"
    written = put(anomalies[:3])

    # WHEN `clicksentry alerts` polls like the real mapping and is killed once it saved positions
    # past those records
    running = subprocess.Popen(
        _alerts_command(private_stream, positions, "--max-seconds", "60"),
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 60
        while not _handled_up_to(positions, stream_arn, written):
            assert running.poll() is None, "clicksentry alerts exited early"
            assert time.monotonic() < deadline, "records not handled within 60 s"
            time.sleep(0.2)
    finally:
        running.kill()
        running.wait()

    # THEN each of the three is alerted once and both shards have a position
    assert alerts_about(anomalies[:3]) == [1, 1, 1]
    assert set(json.loads(positions.read_text())[stream_arn]) == {
        "shardId-000000000000",
        "shardId-000000000001",
    }
    before_restart = tmp_path / "positions-before-restart.json"
    shutil.copy(positions, before_restart)

    # WHEN three more arrive and the command is started again
    put(anomalies[3:])
    restarted = run_once(positions)

    # THEN only the new ones are read and alerted; the first three are not read again
    assert alerts_about(anomalies) == [0, 0, 0, 1, 1, 1]
    assert "duplicate delivery" not in restarted

    # WHEN it had crashed after alerting but before saving positions (positions rolled back)
    shutil.copy(before_restart, positions)
    after_crash = run_once(positions)

    # THEN the three re-read anomalies are recognised as handled and nobody is alerted twice
    assert alerts_about(anomalies) == [0, 0, 0, 0, 0, 0]
    for anomaly in anomalies[3:]:
        assert f"anomaly {anomaly['anomaly_id']}: duplicate delivery" in after_crash


def test_alerts_command_names_a_bad_variable_and_exits_2(aws_stack, tmp_path):
    # GIVEN a mistyped cooldown in the environment
    env = {**os.environ, **aws_stack.env, "COOLDOWN_SECONDS": "five"}
    # WHEN `clicksentry alerts` starts
    done = subprocess.run(
        [CLICKSENTRY, "alerts", "--once"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
    )
    # THEN it stops at once and names the variable
    assert done.returncode == 2
    assert "COOLDOWN_SECONDS must be a whole number >= 1, got 'five'" in done.stdout
