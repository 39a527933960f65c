"""A local Kinesis event source mapping: poll every shard, invoke the handler like Lambda does.

Per shard it reads up to ``batch_size`` records, builds the event Lambda would send (same field
names), invokes the handler with a context object and reads ``batchItemFailures``: nothing failed
→ the shard position moves past the batch; something failed → it moves to just before the lowest
failed sequence number and the shard is read again from there (a handler error or an identifier
that is not in the batch retries the whole batch, as Lambda does). Positions are written to a
JSON file after every invocation, so a restart neither skips nor resends a batch it finished.
"""

from __future__ import annotations

import base64
import json
import logging
import os
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from botocore.exceptions import ClientError

logger = logging.getLogger(__name__)

# An iterator unused for 5 minutes expires; more than 5 reads per second per shard are throttled.
RETRYABLE_READ_ERRORS = frozenset(
    {"ExpiredIteratorException", "ProvisionedThroughputExceededException"}
)

Handler = Callable[[dict[str, Any], Any], Any]


@dataclass
class LocalLambdaContext:
    """The attributes and method of Lambda's context object that handlers and powertools use."""

    function_name: str
    invoked_function_arn: str
    timeout_seconds: float = 60.0
    memory_limit_in_mb: int = 256
    function_version: str = "$LATEST"
    aws_request_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    log_group_name: str = ""
    log_stream_name: str = "local"
    started: float = field(default_factory=time.monotonic)

    def __post_init__(self) -> None:
        self.log_group_name = self.log_group_name or f"/aws/lambda/{self.function_name}"

    def get_remaining_time_in_millis(self) -> int:
        """Milliseconds left before the invocation's timeout.

        Examples:
            >>> context = LocalLambdaContext("f", "arn:aws:lambda:us-east-1:0:function:f", 3.0)
            >>> 2900 < context.get_remaining_time_in_millis() <= 3000
            True
        """
        elapsed = time.monotonic() - self.started
        return max(0, int((self.timeout_seconds - elapsed) * 1000))


def lambda_event(records: list[dict[str, Any]], shard_id: str, stream_arn: str) -> dict[str, Any]:
    """The event Lambda's Kinesis event source mapping sends for records from ``GetRecords``.

    Examples:
        >>> from datetime import UTC, datetime
        >>> record = {"SequenceNumber": "4959", "PartitionKey": "ad/ad-7", "Data": b"{}",
        ...           "ApproximateArrivalTimestamp": datetime(2026, 1, 5, tzinfo=UTC)}
        >>> event = lambda_event([record], "shardId-000000000001",
        ...                      "arn:aws:kinesis:us-east-1:000000000000:stream/s")
        >>> event["Records"][0]["kinesis"]
        {'kinesisSchemaVersion': '1.0', 'partitionKey': 'ad/ad-7', 'sequenceNumber': '4959', 'data': 'e30=', 'approximateArrivalTimestamp': 1767571200.0}
        >>> event["Records"][0]["eventID"], event["Records"][0]["invokeIdentityArn"]
        ('shardId-000000000001:4959', 'arn:aws:iam::000000000000:role/clicksentry-alerts')
    """  # noqa: E501
    _, _, _, region, account, _ = stream_arn.split(":", 5)
    return {
        "Records": [
            {
                "kinesis": {
                    "kinesisSchemaVersion": "1.0",
                    "partitionKey": record["PartitionKey"],
                    "sequenceNumber": record["SequenceNumber"],
                    "data": base64.b64encode(record["Data"]).decode("ascii"),
                    "approximateArrivalTimestamp": (
                        record["ApproximateArrivalTimestamp"].timestamp()
                    ),
                },
                "eventSource": "aws:kinesis",
                "eventVersion": "1.0",
                "eventID": f"{shard_id}:{record['SequenceNumber']}",
                "eventName": "aws:kinesis:record",
                "invokeIdentityArn": f"arn:aws:iam::{account}:role/clicksentry-alerts",
                "awsRegion": region,
                "eventSourceARN": stream_arn,
            }
            for record in records
        ]
    }


def first_failure(response: Any, sequence_numbers: list[str]) -> str | None:
    """Where a shard resumes after ``response``: ``None`` when the whole batch succeeded.

    That is the lowest failed sequence number, or the first record's when an identifier is not in
    the batch (Lambda then retries the whole batch).

    Examples:
        >>> first_failure({"batchItemFailures": []}, ["10", "11", "12"]) is None
        True
        >>> first_failure({"batchItemFailures": [{"itemIdentifier": "12"},
        ...                                      {"itemIdentifier": "11"}]}, ["10", "11", "12"])
        '11'
        >>> first_failure({"batchItemFailures": [{"itemIdentifier": "99"}]}, ["10", "11"])
        '10'
        >>> first_failure(None, ["10", "11"]) is None
        True
    """
    if not isinstance(response, dict) or not response.get("batchItemFailures"):
        return None
    failed = [item.get("itemIdentifier") for item in response["batchItemFailures"]]
    if not all(isinstance(seq, str) and seq in sequence_numbers for seq in failed):
        return sequence_numbers[0]
    return min(failed, key=int)


class ShardPositions:
    """The last sequence number handled per shard and stream, kept in a JSON file."""

    def __init__(self, path: Path, stream_arn: str) -> None:
        self.path = path
        self.stream_arn = stream_arn
        self._all: dict[str, dict[str, str]] = json.loads(path.read_text()) if path.exists() else {}

    def get(self, shard_id: str) -> str | None:
        """The last sequence number handled on ``shard_id``, if any."""
        return self._all.get(self.stream_arn, {}).get(shard_id)

    def advance(self, shard_id: str, sequence_number: str) -> None:
        """Record that ``shard_id`` is done up to ``sequence_number`` (atomic file replace)."""
        self._all.setdefault(self.stream_arn, {})[shard_id] = sequence_number
        self.path.parent.mkdir(parents=True, exist_ok=True)
        partial = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        partial.write_text(json.dumps(self._all, indent=2, sort_keys=True))
        os.replace(partial, self.path)


@dataclass
class RunSummary:
    """What a run of the mapping did."""

    records: int = 0
    invocations: int = 0
    failed_records: int = 0
    caught_up: bool = False


class KinesisEventSourceMapping:
    """Polls every shard of a stream and invokes ``handler`` with Lambda-shaped batches."""

    def __init__(
        self,
        kinesis: Any,
        stream_name: str,
        handler: Handler,
        positions_file: Path,
        *,
        batch_size: int = 100,
        starting_position: str = "TRIM_HORIZON",
        starting_timestamp: datetime | None = None,
        function_name: str = "clicksentry-alerts",
        timeout_seconds: float = 60.0,
    ) -> None:
        self._kinesis = kinesis
        self._stream_name = stream_name
        self._handler = handler
        self._batch_size = batch_size
        self._start = {"ShardIteratorType": starting_position}
        if starting_position == "AT_TIMESTAMP":
            if starting_timestamp is None:
                raise ValueError("AT_TIMESTAMP needs a starting timestamp")
            self._start["Timestamp"] = starting_timestamp
        self._function_name = function_name
        self._timeout_seconds = timeout_seconds
        summary = kinesis.describe_stream_summary(StreamName=stream_name)
        self.stream_arn = summary["StreamDescriptionSummary"]["StreamARN"]
        self.positions = ShardPositions(positions_file, self.stream_arn)
        self._iterators: dict[str, str | None] = {}

    def run(
        self, *, until_caught_up: bool, max_seconds: float | None, poll_interval: float
    ) -> RunSummary:
        """Poll until caught up (every shard read to its end, nothing left to retry) or time is up.

        Without ``until_caught_up`` it keeps polling, like the real mapping, until ``max_seconds``.
        """
        summary = RunSummary()
        deadline = None if max_seconds is None else time.monotonic() + max_seconds
        while deadline is None or time.monotonic() < deadline:
            caught_up = True
            for shard_id in self._shard_ids():
                caught_up &= self._poll_shard(shard_id, summary)
            summary.caught_up = caught_up
            if caught_up and until_caught_up:
                break
            time.sleep(poll_interval)
        return summary

    def _shard_ids(self) -> list[str]:
        shards = self._kinesis.list_shards(StreamName=self._stream_name)["Shards"]
        return [shard["ShardId"] for shard in shards]

    def _iterator(self, shard_id: str) -> str | None:
        if shard_id not in self._iterators:
            done = self.positions.get(shard_id)
            where = (
                {"ShardIteratorType": "AFTER_SEQUENCE_NUMBER", "StartingSequenceNumber": done}
                if done
                else self._start
            )
            self._iterators[shard_id] = self._kinesis.get_shard_iterator(
                StreamName=self._stream_name, ShardId=shard_id, **where
            )["ShardIterator"]
        return self._iterators[shard_id]

    def _poll_shard(self, shard_id: str, summary: RunSummary) -> bool:
        """Read and hand over one batch; True when the shard had nothing left to read."""
        iterator = self._iterator(shard_id)
        if iterator is None:
            return True
        try:
            response = self._kinesis.get_records(ShardIterator=iterator, Limit=self._batch_size)
        except ClientError as error:
            code = error.response["Error"]["Code"]
            if code not in RETRYABLE_READ_ERRORS:
                raise
            logger.warning("%s: %s; reading it again from its saved position", shard_id, code)
            del self._iterators[shard_id]
            return False
        self._iterators[shard_id] = response.get("NextShardIterator")
        records = response["Records"]
        if not records:
            return response.get("MillisBehindLatest", 0) == 0
        sequence_numbers = [record["SequenceNumber"] for record in records]
        resume_at = self._invoke(lambda_event(records, shard_id, self.stream_arn), sequence_numbers)
        summary.invocations += 1
        summary.records += len(records)
        if resume_at is None:
            self.positions.advance(shard_id, sequence_numbers[-1])
            return False
        done = sequence_numbers[: sequence_numbers.index(resume_at)]
        summary.failed_records += len(records) - len(done)
        if done:
            self.positions.advance(shard_id, done[-1])
        logger.warning(
            "%s: %d of %d records failed; retrying from %s",
            shard_id,
            len(records) - len(done),
            len(records),
            resume_at,
        )
        self._iterators[shard_id] = self._kinesis.get_shard_iterator(
            StreamName=self._stream_name,
            ShardId=shard_id,
            ShardIteratorType="AT_SEQUENCE_NUMBER",
            StartingSequenceNumber=resume_at,
        )["ShardIterator"]
        return False

    def _invoke(self, event: dict[str, Any], sequence_numbers: list[str]) -> str | None:
        arn = self.stream_arn.split(":")
        context = LocalLambdaContext(
            function_name=self._function_name,
            invoked_function_arn=f"arn:aws:lambda:{arn[3]}:{arn[4]}:function:{self._function_name}",
            timeout_seconds=self._timeout_seconds,
        )
        try:
            response = self._handler(event, context)
        except Exception:
            logger.exception("handler failed; the whole batch will be retried")
            return sequence_numbers[0]
        return first_failure(response, sequence_numbers)
