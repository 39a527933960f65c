"""Payloads and helpers for the alerting tests: the JSON files under tests/events/, made unique per
run, the handler's environment on the local stack, and readers for the shared queues.

The emulators outlive a pytest session (idempotency records, incidents, poison counters stay) and
other sessions use them at the same time, so every test gives its anomalies entity ids (with this
session's token) and its Kinesis records shard ids and sequence numbers of its own.
"""

from __future__ import annotations

import base64
import copy
import itertools
import json
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from botocore.awsrequest import AWSResponse

from localdev.cli.alerts import local_stack_environment

EVENTS = Path(__file__).resolve().parent / "events"
TEST_ENTITY_PREFIX = "cs-test-"
SESSION_PREFIX = f"{TEST_ENTITY_PREFIX}{uuid.uuid4().hex[:4]}-"
STALE_AFTER_MS = 600_000
_sequence = itertools.count(time.time_ns())


def load(name: str) -> Any:
    return json.loads((EVENTS / name).read_text())


def unique_entity(label: str) -> str:
    return f"{SESSION_PREFIX}{label}-{uuid.uuid4().hex[:6]}"


def for_entity(anomaly: dict[str, Any], entity_id: str) -> dict[str, Any]:
    """The anomaly re-keyed to ``entity_id`` (anomaly_id follows)."""
    changed = copy.deepcopy(anomaly)
    changed["entity_id"] = entity_id
    changed["anomaly_id"] = f"{changed['entity_type']}/{entity_id}/{changed['window_end']}"
    return changed


def encode(anomaly: dict[str, Any]) -> bytes:
    return json.dumps(anomaly, separators=(",", ":")).encode()


def malformed_cases() -> list[dict[str, Any]]:
    """tests/events/malformed-anomaly-records.json, each case with its Kinesis ``kinesis_data``.

    A case gives the data as base64 (``kinesis_data``), as text built from repeated parts
    (``data_parts``: ``[text, times]``), or as the documented anomaly with some fields replaced
    by raw JSON text (``raw_fields``: a string or parts).
    """
    cases = []
    for case in load("malformed-anomaly-records.json"):
        if "kinesis_data" not in case:
            text = _joined(case["data_parts"]) if "data_parts" in case else _with_raw(case)
            case = {**case, "kinesis_data": base64.b64encode(text.encode()).decode()}
        cases.append(case)
    return cases


def _joined(parts: str | list[list[Any]]) -> str:
    return parts if isinstance(parts, str) else "".join(text * times for text, times in parts)


def _with_raw(case: dict[str, Any]) -> str:
    fields = case["raw_fields"]
    text = json.dumps({**load("anomaly-clicks-high.json"), **{n: f"@@{n}@@" for n in fields}})
    for name, raw in fields.items():
        text = text.replace(f'"@@{name}@@"', _joined(raw))
    return text


def new_shard_id() -> str:
    return f"shardId-{uuid.uuid4().int % 10**12:012d}"


def kinesis_event(
    payloads: list[bytes], shard_id: str, partition_key: str | None = None
) -> dict[str, Any]:
    """A Lambda Kinesis event (shape of tests/events/kinesis-event-one-anomaly.json)."""
    template = load("kinesis-event-one-anomaly.json")["Records"][0]
    records = []
    for data in payloads:
        record = copy.deepcopy(template)
        sequence_number = str(next(_sequence))
        record["kinesis"]["data"] = base64.b64encode(data).decode()
        record["kinesis"]["sequenceNumber"] = sequence_number
        record["kinesis"]["partitionKey"] = partition_key or _partition_key(data)
        record["eventID"] = f"{shard_id}:{sequence_number}"
        records.append(record)
    return {"Records": records}


def failed_sequence_numbers(response: dict[str, Any]) -> list[str]:
    return [item["itemIdentifier"] for item in response["batchItemFailures"]]


def sequence_numbers(event: dict[str, Any]) -> list[str]:
    return [record["kinesis"]["sequenceNumber"] for record in event["Records"]]


def about(entity_id: str):
    """Predicate: an SNS envelope whose entity_id attribute is ``entity_id``."""
    return lambda envelope: envelope["MessageAttributes"]["entity_id"]["Value"] == entity_id


def _partition_key(data: bytes) -> str:
    try:
        anomaly = json.loads(data)
        return f"{anomaly['entity_type']}/{anomaly['entity_id']}"
    except (ValueError, KeyError, TypeError):
        return "unknown"


def handler_environment(aws_stack) -> dict[str, str]:
    """The Lambda function's environment variables on the local stack."""
    return {
        **local_stack_environment(),
        **aws_stack.env,
        "ALERTS_TOPIC_ARN": aws_stack.alert_topic_arn,
        "IDEMPOTENCY_TABLE": aws_stack.idempotency_table,
        "SUPPRESSION_TABLE": aws_stack.suppression_table,
        "DEAD_LETTER_QUEUE_URL": aws_stack.alert_dlq_url,
        "COOLDOWN_SECONDS": "300",
        "POISON_MAX_ATTEMPTS": "3",
    }


class QueueReader:
    """Reads a queue shared with other tests and sessions.

    Takes (receives and deletes) only this session's messages and keeps them until a ``take``
    claims them; deletes test messages left over from sessions that ended long ago; every other
    message is hidden while the queue is paged through, then handed straight back.
    """

    def __init__(self, sqs, url: str) -> None:
        self.sqs = sqs
        self.url = url
        self.unclaimed: list[dict[str, Any]] = []

    def take(self, wanted: Callable[[dict[str, Any]], bool]) -> list[dict[str, Any]]:
        """Every message body (parsed) matching ``wanted`` that is in the queue now, in order.

        moto delivers SNS to SQS within the Publish call, so nothing is still on its way.
        """
        others = []
        try:
            while messages := self.sqs.receive_message(
                QueueUrl=self.url,
                MaxNumberOfMessages=10,
                WaitTimeSeconds=0,
                VisibilityTimeout=20,
                MessageSystemAttributeNames=["SentTimestamp"],
            ).get("Messages", []):
                others += [m["ReceiptHandle"] for m in messages if not self._took(m)]
        finally:
            for handle in others:
                self.sqs.change_message_visibility(
                    QueueUrl=self.url, ReceiptHandle=handle, VisibilityTimeout=0
                )
        found = [body for body in self.unclaimed if wanted(body)]
        self.unclaimed = [body for body in self.unclaimed if not wanted(body)]
        return found

    def _took(self, message: dict[str, Any]) -> bool:
        """Delete this session's and stale test messages (keeping this session's bodies)."""
        age_ms = time.time() * 1000 - int(message["Attributes"]["SentTimestamp"])
        if SESSION_PREFIX in message["Body"]:
            self.unclaimed.append(json.loads(message["Body"]))
        elif not (TEST_ENTITY_PREFIX in message["Body"] and age_ms > STALE_AFTER_MS):
            return False
        self.sqs.delete_message(QueueUrl=self.url, ReceiptHandle=message["ReceiptHandle"])
        return True


class _Body:
    def __init__(self, content: bytes) -> None:
        self._content = content

    def stream(self, **_kwargs) -> Iterator[bytes]:
        yield self._content


SNS_FAULTS = {
    "throttling": (400, "Sender", "Throttling", "Rate exceeded"),
    "outage": (503, "Receiver", "ServiceUnavailable", "Service is unavailable"),
}


def sns_fault_response(request, fault: str) -> AWSResponse:
    """SNS throttling (HTTP 400) or down (HTTP 503), as a query-protocol error response."""
    status, side, code, text = SNS_FAULTS[fault]
    xml = (
        f'<ErrorResponse xmlns="http://sns.amazonaws.com/doc/2010-03-31/"><Error><Type>{side}</Type>'
        f"<Code>{code}</Code><Message>{text}</Message></Error>"
        f"<RequestId>{fault}</RequestId></ErrorResponse>"
    )
    return AWSResponse(request.url, status, {}, _Body(xml.encode()))


class SimulatedCrash(BaseException):
    """The execution environment dying mid-invocation (timeout, out of memory): nothing catches
    it, so no idempotency record is released and the handler returns nothing."""


def dynamodb_fault_response(request) -> AWSResponse:
    """DynamoDB throttling (HTTP 400 ProvisionedThroughputExceededException), JSON protocol."""
    body = json.dumps(
        {
            "__type": "com.amazonaws.dynamodb.v20120810#ProvisionedThroughputExceededException",
            "message": "The level of configured provisioned throughput for the table was exceeded",
        }
    )
    return AWSResponse(request.url, 400, {}, _Body(body.encode()))
