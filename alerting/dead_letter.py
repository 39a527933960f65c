"""Poison records: count attempts in DynamoDB, then park the record in the SQS dead-letter queue.

A record that cannot be decoded fails its first ``max_attempts - 1`` deliveries (so a passing
glitch gets another chance) and is then sent to the dead-letter queue and reported as processed,
so it never blocks its shard. Counters live in the suppression table under ``poison#`` keys.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import logging
import time
from typing import Any

from aws_lambda_powertools.utilities.data_classes.kinesis_stream_event import KinesisStreamRecord

from alerting.anomaly import iso_utc

logger = logging.getLogger(__name__)

# SQS takes at most 256 KiB (262 144 bytes) per message, attributes included; the body stays below
# 200 000 bytes. A record's data beyond that is cut (its size and SHA-256 say what was there).
BODY_LIMIT_BYTES = 200_000
ERROR_LIMIT = 1000


class PoisonRecordRetry(Exception):
    """Raised to fail a poison record once more, before its attempts are used up."""


def dead_letter_body(record: KinesisStreamRecord, error: str, attempts: int) -> str:
    """The DLQ message: why, how often, and the record with everything needed to find or replay it.

    JSON, ASCII only, at most ``BODY_LIMIT_BYTES``: when the record's base64 ``data`` would not
    fit, only its start is kept (``data_truncated``) next to the decoded data's size
    (``data_bytes``) and SHA-256 (``data_sha256``), so the record can be found on the stream.

    Examples:
        >>> event = {
        ...     "eventSourceARN": "arn:aws:kinesis:us-east-1:123456789012:stream/s",
        ...     "eventID": "shardId-000000000000:495", "awsRegion": "us-east-1",
        ...     "kinesis": {"partitionKey": "ad/ad-7", "sequenceNumber": "495",
        ...                 "data": "bm90IGpzb24=", "approximateArrivalTimestamp": 1767571931.5}}
        >>> body = json.loads(dead_letter_body(KinesisStreamRecord(event), "not JSON", 3))
        >>> body["error"], body["attempts"], body["record"]["data"]
        ('not JSON', 3, 'bm90IGpzb24=')
        >>> body["record"]["approximate_arrival"]
        '2026-01-05T00:12:11.500Z'
        >>> event["kinesis"]["data"] = base64.b64encode(b"x" * 300_000).decode()
        >>> text = dead_letter_body(KinesisStreamRecord(event), "not JSON", 3)
        >>> len(text) <= BODY_LIMIT_BYTES
        True
        >>> kept = json.loads(text)["record"]
        >>> kept["data_truncated"], kept["data_bytes"]
        (True, 300000)
        >>> kept["data_sha256"] == hashlib.sha256(b"x" * 300_000).hexdigest()
        True
        >>> base64.b64decode(kept["data"]) == b"x" * (len(kept["data"]) // 4 * 3)
        True
    """
    data = record.kinesis.data
    body = {
        "reason": "poison record: not a valid anomaly",
        "error": error if len(error) <= ERROR_LIMIT else error[: ERROR_LIMIT - 3] + "...",
        "attempts": attempts,
        "record": {
            "event_source_arn": record.event_source_arn,
            "event_id": record.event_id,
            "partition_key": record.kinesis.partition_key,
            "sequence_number": record.kinesis.sequence_number,
            "approximate_arrival": iso_utc(record.kinesis.approximate_arrival_timestamp * 1000),
            "data": data,
        },
    }
    text = json.dumps(body)
    if len(text) <= BODY_LIMIT_BYTES:
        return text
    raw = _decoded(data)
    body["record"].update(
        data="",
        data_truncated=True,
        data_bytes=len(raw),
        data_sha256=hashlib.sha256(raw).hexdigest(),
    )
    room = BODY_LIMIT_BYTES - len(json.dumps(body))
    kept = data[: max(0, room) // 4 * 4]  # whole base64 quanta, so the start still decodes
    while len(text := json.dumps({**body, "record": {**body["record"], "data": kept}})) > (
        BODY_LIMIT_BYTES
    ):
        kept = kept[: len(kept) // 8 * 4]  # only when JSON escapes make the data longer
    return text


def _decoded(data: str) -> bytes:
    """The record's data bytes; the base64 text itself if it is not valid base64."""
    try:
        return base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError):
        return data.encode("utf-8", "surrogatepass")


class DeadLetterPolicy:
    """Bounded attempts for poison records, then the SQS dead-letter queue."""

    def __init__(
        self, dynamodb: Any, sqs: Any, table: str, queue_url: str, max_attempts: int, ttl: int
    ) -> None:
        self._dynamodb = dynamodb
        self._sqs = sqs
        self._table = table
        self._queue_url = queue_url
        self._max_attempts = max_attempts
        self._ttl = ttl

    def handle(self, record: KinesisStreamRecord, error: str) -> None:
        """Count one more attempt, and dead-letter the record once they are used up (only once).

        Raises :class:`PoisonRecordRetry` while attempts remain.
        """
        key = {"pk": {"S": f"poison#{record.event_source_arn}#{record.event_id}"}}
        item = self._dynamodb.update_item(
            TableName=self._table,
            Key=key,
            UpdateExpression="ADD attempts :one SET expires_at = :expires",
            ExpressionAttributeValues={
                ":one": {"N": "1"},
                ":expires": {"N": str(int(time.time()) + self._ttl)},
            },
            ReturnValues="ALL_NEW",
        )["Attributes"]
        attempts = int(item["attempts"]["N"])
        if "dead_lettered_at" in item:
            logger.info("poison record %s was dead-lettered before", record.event_id)
            return
        if attempts < self._max_attempts:
            raise PoisonRecordRetry(
                f"poison record {record.event_id}: attempt {attempts} of {self._max_attempts}"
            )
        self._sqs.send_message(
            QueueUrl=self._queue_url,
            MessageBody=dead_letter_body(record, error, attempts),
            MessageAttributes={
                "event_source_arn": {"DataType": "String", "StringValue": record.event_source_arn},
                "sequence_number": {
                    "DataType": "String",
                    "StringValue": record.kinesis.sequence_number,
                },
            },
        )
        self._dynamodb.update_item(
            TableName=self._table,
            Key=key,
            UpdateExpression="SET dead_lettered_at = :now",
            ExpressionAttributeValues={":now": {"N": str(int(time.time()))}},
        )
        logger.warning("poison record %s sent to the dead-letter queue: %s", record.event_id, error)
