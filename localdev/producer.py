"""Send click events (JSON lines) to a Kinesis stream with ``PutRecords``, losing nothing.

Records go out in calls of at most 500 records and 5 MiB; the partition key is a hash of the raw
line, so load spreads evenly over the shards whatever the traffic skew. Records that a call
reports as failed (throttling, internal errors) are retried, alone, with exponential backoff and
jitter; a call that fails as a whole is retried the same way. An optional rate paces the sends.
"""

from __future__ import annotations

import hashlib
import logging
import random
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

from botocore.exceptions import BotoCoreError, ClientError

log = logging.getLogger(__name__)

MAX_RECORDS_PER_CALL = 500
MAX_BYTES_PER_CALL = 5 * 1024 * 1024
MAX_BYTES_PER_RECORD = 1024 * 1024
RETRYABLE_CALL_ERRORS = frozenset(
    {
        "ProvisionedThroughputExceededException",
        "LimitExceededException",
        "ThrottlingException",
        "InternalFailure",
        "ServiceUnavailable",
        "KMSThrottlingException",
    }
)


@dataclass
class ProduceResult:
    """Counts of one produce run: records accepted, records given up on, calls and retries.

    ``failed`` counts every record not sent: those given up on after the last attempt and the
    ``too_large`` ones (over Kinesis's 1 MiB record limit, never sent).
    """

    sent: int = 0
    failed: int = 0
    calls: int = 0
    retried_records: int = 0
    too_large: int = 0


def partition_key(data: bytes) -> str:
    """A partition key derived from the record bytes: stable, and uniform over the hash space.

    >>> partition_key(b'{"event_id": "e1"}')
    'c68b37c874d3e5b82c9a01147b7349f8'
    >>> partition_key(b"x") == partition_key(b"x")
    True
    """
    return hashlib.md5(data, usedforsecurity=False).hexdigest()


def _entry(line: str | bytes, key: Callable[[bytes], str] = partition_key) -> dict[str, object]:
    data = line.encode() if isinstance(line, str) else line
    return {"Data": data, "PartitionKey": key(data)}


def _size(entry: dict[str, object]) -> int:
    return len(entry["Data"]) + len(entry["PartitionKey"])  # type: ignore[arg-type]


def record_size(line: str | bytes) -> int:
    """Bytes a line counts for against Kinesis's 1 MiB record limit: data plus partition key.

    >>> record_size("é"), record_size(b"x" * MAX_BYTES_PER_RECORD) > MAX_BYTES_PER_RECORD
    (34, True)
    """
    return _size(_entry(line))


def batches(
    lines: Iterable[str | bytes],
    max_records: int = MAX_RECORDS_PER_CALL,
    key: Callable[[bytes], str] = partition_key,
) -> Iterator[list[dict[str, object]]]:
    """Group lines into ``PutRecords`` entries within the per-call limits (records and bytes).

    ``key`` gives each record's partition key.

    >>> [len(b) for b in batches(["a"] * 1001)]
    [500, 500, 1]
    >>> [len(b) for b in batches(["x" * 1_000_000] * 6)]
    [5, 1]
    """
    if not 1 <= max_records <= MAX_RECORDS_PER_CALL:
        raise ValueError(f"max_records must be 1..{MAX_RECORDS_PER_CALL}, got {max_records}")
    batch: list[dict[str, object]] = []
    size = 0
    for line in lines:
        entry = _entry(line, key)
        if batch and (len(batch) == max_records or size + _size(entry) > MAX_BYTES_PER_CALL):
            yield batch
            batch, size = [], 0
        batch.append(entry)
        size += _size(entry)
    if batch:
        yield batch


def unaccepted(entries: list[dict[str, object]], response: dict) -> list[dict[str, object]]:
    """The entries a ``PutRecords`` response reports as failed (results are in request order).

    >>> response = {"FailedRecordCount": 1, "Records": [
    ...     {"SequenceNumber": "1", "ShardId": "shardId-000000000000"},
    ...     {"ErrorCode": "ProvisionedThroughputExceededException", "ErrorMessage": "slow down"},
    ... ]}
    >>> unaccepted([{"Data": b"a"}, {"Data": b"b"}], response)
    [{'Data': b'b'}]
    """
    if not response.get("FailedRecordCount"):
        return []
    return [
        entry
        for entry, outcome in zip(entries, response["Records"], strict=True)
        if "ErrorCode" in outcome
    ]


def backoff_s(attempt: int, base_s: float = 0.1, cap_s: float = 5.0) -> float:
    """Full-jitter exponential backoff before retry number ``attempt`` (1-based).

    >>> 0 <= backoff_s(1) <= 0.2 and 0 <= backoff_s(20) <= 5.0
    True
    """
    return random.uniform(0, min(cap_s, base_s * 2**attempt))


class Producer:
    """Sends batches to one stream (by ARN) and retries only what failed.

    Args:
        client: a boto3 Kinesis client.
        stream_arn: the target stream's ARN.
        rate: events per second to pace at (``None``: as fast as the stream takes them).
        max_attempts: tries per record before it counts as failed.
        sleep: injected for tests that must not wait.
    """

    def __init__(
        self,
        client,
        stream_arn: str,
        rate: float | None = None,
        max_attempts: int = 12,
        sleep: Callable[[float], None] = time.sleep,
    ):
        if rate is not None and rate <= 0:
            raise ValueError(f"rate must be positive, got {rate}")
        if max_attempts < 1:
            raise ValueError(f"max_attempts must be at least 1, got {max_attempts}")
        self.client = client
        self.stream_arn = stream_arn
        self.rate = rate
        self.max_attempts = max_attempts
        self.sleep = sleep
        self.result = ProduceResult()
        self._started = time.monotonic()

    def send(self, batch: list[dict[str, object]]) -> None:
        """Put one batch; retry failed records until accepted or out of attempts."""
        self._pace()
        pending = batch
        for attempt in range(1, self.max_attempts + 1):
            if attempt > 1:
                self.result.retried_records += len(pending)
                self.sleep(backoff_s(attempt - 1))
            pending = self._put(pending)
            if not pending:
                return
        log.error("giving up on %d records after %d attempts", len(pending), self.max_attempts)
        self.result.failed += len(pending)

    def _put(self, entries: list[dict[str, object]]) -> list[dict[str, object]]:
        """One PutRecords call; returns the entries still to send."""
        self.result.calls += 1
        try:
            response = self.client.put_records(StreamARN=self.stream_arn, Records=entries)
        except ClientError as err:
            code = err.response.get("Error", {}).get("Code", "")
            if code not in RETRYABLE_CALL_ERRORS:
                raise
            log.warning("PutRecords throttled as a whole (%s); retrying %d", code, len(entries))
            return entries
        except BotoCoreError as err:
            log.warning("PutRecords failed (%s); retrying %d records", err, len(entries))
            return entries
        failed = unaccepted(entries, response)
        self.result.sent += len(entries) - len(failed)
        if failed:
            log.debug("%d of %d records failed; retrying them", len(failed), len(entries))
        return failed

    def _pace(self) -> None:
        """Wait until the records handled so far are due at the configured rate."""
        if self.rate is None:
            return
        due = self._started + (self.result.sent + self.result.failed) / self.rate
        wait = due - time.monotonic()
        if wait > 0:
            self.sleep(wait)


def produce(
    lines: Iterable[str | bytes],
    client,
    stream_arn: str,
    rate: float | None = None,
    batch_size: int = MAX_RECORDS_PER_CALL,
    on_batch: Callable[[ProduceResult], None] | None = None,
    max_attempts: int = 12,
    sleep: Callable[[float], None] = time.sleep,
    key: Callable[[bytes], str] = partition_key,
) -> ProduceResult:
    """Send every line to the stream; returns the counts (``sent + failed`` = lines given).

    ``key`` gives each record's partition key (default: spread by :func:`partition_key`; a
    constant key keeps the stream's order on one shard).

    A line over Kinesis's 1 MiB record limit (data plus partition key) is rejected: it is never
    sent, an error names its line number and size, and it counts in ``too_large`` and ``failed``
    (so ``clicksentry produce`` exits non-zero). With a rate, calls shrink to about a tenth of a
    second's worth of records so the pace stays smooth.

    >>> class Kinesis:
    ...     def put_records(self, StreamARN, Records):
    ...         return {"FailedRecordCount": 0, "Records": [{"SequenceNumber": "1"}] * len(Records)}
    >>> produce(["a", "b", "x" * MAX_BYTES_PER_RECORD], Kinesis(), "arn")
    ProduceResult(sent=2, failed=1, calls=1, retried_records=0, too_large=1)
    """
    producer = Producer(client, stream_arn, rate=rate, max_attempts=max_attempts, sleep=sleep)
    if rate is not None:
        batch_size = min(batch_size, max(1, int(rate // 10)))

    def fitting() -> Iterator[str | bytes]:
        for number, line in enumerate(lines, 1):
            size = _size(_entry(line, key))
            if size > MAX_BYTES_PER_RECORD:
                log.error(
                    "line %d not sent: %d bytes with its partition key, over the %d-byte "
                    "Kinesis record limit",
                    number,
                    size,
                    MAX_BYTES_PER_RECORD,
                )
                producer.result.too_large += 1
                producer.result.failed += 1
                continue
            yield line

    for batch in batches(fitting(), batch_size, key):
        producer.send(batch)
        if on_batch is not None:
            on_batch(producer.result)
    return producer.result
