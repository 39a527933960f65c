import json
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from localdev import producer, stack

pytestmark = pytest.mark.integration

CLICKSENTRY = str(Path(sys.executable).with_name("clicksentry"))


@pytest.fixture
def stream(aws_stack):
    kinesis = aws_stack.client("kinesis")
    name = f"produce-test-{uuid.uuid4().hex[:8]}"
    kinesis.create_stream(StreamName=name, ShardCount=2)
    kinesis.get_waiter("stream_exists").wait(
        StreamName=name, WaiterConfig={"Delay": 0.2, "MaxAttempts": 100}
    )
    yield stack.stream_arn(name)
    kinesis.delete_stream(StreamName=name)


def shard_contents(kinesis, arn):
    contents = {}
    for shard in kinesis.list_shards(StreamARN=arn)["Shards"]:
        iterator = kinesis.get_shard_iterator(
            StreamARN=arn, ShardId=shard["ShardId"], ShardIteratorType="TRIM_HORIZON"
        )["ShardIterator"]
        records = []
        while iterator:
            page = kinesis.get_records(StreamARN=arn, ShardIterator=iterator, Limit=1000)
            records += [r["Data"].decode() for r in page["Records"]]
            iterator = page.get("NextShardIterator") if page["Records"] else None
        contents[shard["ShardId"]] = records
    return contents


def test_produce_command_sends_every_line_spread_over_the_shards(aws_stack, stream, tmp_path):
    # GIVEN 1,234 JSON lines, a few of them malformed on purpose
    lines = [json.dumps({"event_id": f"e{i}", "ad_id": "ad-1"}) for i in range(1230)]
    lines += ['{"event_id": "broken', "not json", '{"event_id": "e1", "x": 1}', "{}"]
    events = tmp_path / "events.jsonl"
    events.write_text("\n".join(lines) + "\n")
    # WHEN clicksentry produce sends the file to a 2-shard stream
    run = subprocess.run(
        [CLICKSENTRY, "produce", "--events", str(events), "--stream-arn", stream],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    # THEN it reports them all sent, and each line is on the stream exactly once
    assert run.returncode == 0, run.stderr
    assert "sent 1234, failed 0" in run.stdout
    contents = shard_contents(aws_stack.client("kinesis"), stream)
    assert sorted(line for records in contents.values() for line in records) == sorted(lines)
    # AND the partition keys spread the load over both shards
    assert all(len(records) > 400 for records in contents.values())


def test_batches_respect_the_put_records_limits():
    # GIVEN 1,001 small lines and 11 lines of 900 kB
    small, large = ["x"] * 1001, ["y" * 900_000] * 11
    # WHEN they are batched
    small_batches, large_batches = list(producer.batches(small)), list(producer.batches(large))
    # THEN no call exceeds 500 records or 5 MiB, and nothing is dropped
    assert [len(b) for b in small_batches] == [500, 500, 1]
    assert [len(b) for b in large_batches] == [5, 5, 1]
