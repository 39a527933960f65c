import json
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from botocore.exceptions import ClientError

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


def test_a_record_over_1_mib_is_rejected_counted_and_not_sent(aws_stack, stream, tmp_path):
    # GIVEN three small lines, one that fills a record exactly (1 MiB with its 32-character
    # partition key) and one a byte over
    limit = producer.MAX_BYTES_PER_RECORD
    fits, over = "f" * (limit - 32), "o" * (limit - 31)
    assert producer.record_size(fits) == limit and producer.record_size(over) == limit + 1
    small = [json.dumps({"event_id": f"e{i}"}) for i in range(3)]
    events = tmp_path / "events.jsonl"
    events.write_text("\n".join([*small, fits, over]) + "\n")
    # WHEN clicksentry produce sends the file
    run = subprocess.run(
        [CLICKSENTRY, "produce", "--events", str(events), "--stream-arn", stream],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    # THEN the oversized line is rejected by name and size, counted as failed, and the exit
    # code says so
    assert run.returncode == 1, run.stdout + run.stderr
    assert "sent 4, failed 1" in run.stdout
    assert f"line 5 not sent: {limit + 1} bytes with its partition key" in run.stderr
    # AND everything else is on the stream, the 1 MiB record included
    contents = shard_contents(aws_stack.client("kinesis"), stream)
    assert sorted(line for records in contents.values() for line in records) == sorted(
        [*small, fits]
    )


THROTTLED = {"ErrorCode": "ProvisionedThroughputExceededException", "ErrorMessage": "Rate exceeded"}


class ThrottlingKinesis:
    """A ``put_records`` stand-in (kinesis-mock never throttles): each record is reported as
    throttled the first ``throttles[data]`` times it is sent; ``errors`` are raised, in turn,
    by the first calls instead."""

    def __init__(self, throttles=None, errors=()):
        self.throttles = dict(throttles or {})
        self.errors = list(errors)
        self.calls = []

    def put_records(self, StreamARN, Records):
        self.calls.append([r["Data"].decode() for r in Records])
        if self.errors:
            raise self.errors.pop(0)
        outcomes = []
        for record in Records:
            left = self.throttles.get(record["Data"].decode(), 0)
            self.throttles[record["Data"].decode()] = left - 1
            outcomes.append(THROTTLED if left > 0 else {"SequenceNumber": "1", "ShardId": "s-0"})
        failed = sum("ErrorCode" in o for o in outcomes)
        return {"FailedRecordCount": failed, "Records": outcomes}


@pytest.fixture
def widest_jitter(monkeypatch):
    """Full jitter draws from [0, bound]; take the bound, and record every bound drawn from."""
    bounds = []

    def upper(low, high):
        bounds.append((low, high))
        return high

    monkeypatch.setattr(producer.random, "uniform", upper)
    return bounds


def test_only_the_throttled_records_are_retried_with_exponential_backoff(widest_jitter):
    # GIVEN a stream that throttles "b" twice and "d" once
    kinesis, sleeps = ThrottlingKinesis({"b": 2, "d": 1}), []
    # WHEN five lines are produced
    result = producer.produce(list("abcde"), kinesis, "arn", sleep=sleeps.append)
    # THEN each retry carries only what was throttled, after a doubling full-jitter backoff
    assert kinesis.calls == [list("abcde"), ["b", "d"], ["b"]]
    assert widest_jitter == [(0, 0.2), (0, 0.4)]
    assert sleeps == [0.2, 0.4]
    # AND every record is counted sent once
    assert result == producer.ProduceResult(sent=5, failed=0, calls=3, retried_records=3)


def test_a_record_still_throttled_after_the_last_attempt_is_given_up(widest_jitter):
    # GIVEN a stream that always throttles "a"
    kinesis, sleeps = ThrottlingKinesis({"a": 1000}), []
    # WHEN "a" and "b" are produced with 8 attempts per record
    result = producer.produce(["a", "b"], kinesis, "arn", max_attempts=8, sleep=sleeps.append)
    # THEN "a" is sent 8 times, the backoff doubles up to its 5 s cap, and then it is given up
    assert kinesis.calls == [["a", "b"]] + [["a"]] * 7
    assert sleeps == [0.2, 0.4, 0.8, 1.6, 3.2, 5.0, 5.0]
    assert result == producer.ProduceResult(sent=1, failed=1, calls=8, retried_records=7)


def test_a_call_throttled_as_a_whole_is_retried_and_other_errors_stop(widest_jitter):
    # GIVEN a stream whose first call is throttled as a whole
    throttled = ClientError({"Error": {"Code": "ProvisionedThroughputExceededException"}}, "Put")
    kinesis, sleeps = ThrottlingKinesis(errors=[throttled]), []
    # WHEN two lines are produced THEN the whole call is retried once, after a backoff
    result = producer.produce(["a", "b"], kinesis, "arn", sleep=sleeps.append)
    assert kinesis.calls == [["a", "b"], ["a", "b"]]
    assert sleeps == [0.2]
    assert result == producer.ProduceResult(sent=2, failed=0, calls=2, retried_records=2)
    # AND an error that retrying cannot fix stops the run
    denied = ClientError({"Error": {"Code": "AccessDeniedException"}}, "PutRecords")
    with pytest.raises(ClientError, match="AccessDeniedException"):
        producer.produce(["a"], ThrottlingKinesis(errors=[denied]), "arn", sleep=sleeps.append)
