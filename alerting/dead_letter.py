"""Poison records: count attempts in DynamoDB, then park the record in the SQS dead-letter queue.

A record that cannot be decoded fails its first ``max_attempts - 1`` deliveries (so a passing
glitch gets another chance) and is then sent to the dead-letter queue and reported as processed,
so it never blocks its shard. Counters live in the suppression table under ``poison#`` keys.
"""

from __future__ import annotations

import json
import logging
import time
from typing import Any

from aws_lambda_powertools.utilities.data_classes.kinesis_stream_event import KinesisStreamRecord

from alerting.anomaly import iso_utc

logger = logging.getLogger(__name__)


class PoisonRecordRetry(Exception):
    """Raised to fail a poison record once more, before its attempts are used up."""


def dead_letter_body(record: KinesisStreamRecord, error: str, attempts: int) -> str:
    """The DLQ message: why, how often, and the record with everything needed to find or replay it.

    Examples:
        >>> record = KinesisStreamRecord({
        ...     "eventSourceARN": "arn:aws:kinesis:us-east-1:123456789012:stream/s",
        ...     "eventID": "shardId-000000000000:495", "awsRegion": "us-east-1",
        ...     "kinesis": {"partitionKey": "ad/ad-7", "sequenceNumber": "495",
        ...                 "data": "bm90IGpzb24=", "approximateArrivalTimestamp": 1767571931.5}})
        >>> body = json.loads(dead_letter_body(record, "record is not UTF-8 JSON", 3))
        >>> body["error"], body["attempts"], body["record"]["data"]
        ('record is not UTF-8 JSON', 3, 'bm90IGpzb24=')
        >>> body["record"]["approximate_arrival"]
        '2026-01-05T00:12:11.500Z'
    """
    return json.dumps(
        {
            "reason": "poison record: not a valid anomaly",
            "error": error,
            "attempts": attempts,
            "record": {
                "event_source_arn": record.event_source_arn,
                "event_id": record.event_id,
                "partition_key": record.kinesis.partition_key,
                "sequence_number": record.kinesis.sequence_number,
                "approximate_arrival": iso_utc(record.kinesis.approximate_arrival_timestamp * 1000),
                "data": record.kinesis.data,
            },
        }
    )


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
