"""Payloads for the alerting tests: the JSON files under tests/events/, made unique per run.

The emulators outlive a pytest session (idempotency records, incidents, poison counters stay), so
every test gives its anomalies entity ids and its Kinesis records shard ids and sequence numbers
of its own.
"""

from __future__ import annotations

import base64
import copy
import itertools
import json
import time
import uuid
from pathlib import Path
from typing import Any

EVENTS = Path(__file__).resolve().parents[1] / "events"
TEST_ENTITY_PREFIX = "cs-test-"
_sequence = itertools.count(time.time_ns())


def load(name: str) -> Any:
    return json.loads((EVENTS / name).read_text())


def unique_entity(label: str) -> str:
    return f"{TEST_ENTITY_PREFIX}{label}-{uuid.uuid4().hex[:8]}"


def for_entity(anomaly: dict[str, Any], entity_id: str) -> dict[str, Any]:
    """The anomaly re-keyed to ``entity_id`` (anomaly_id follows)."""
    changed = copy.deepcopy(anomaly)
    changed["entity_id"] = entity_id
    changed["anomaly_id"] = f"{changed['entity_type']}/{entity_id}/{changed['window_end']}"
    return changed


def encode(anomaly: dict[str, Any]) -> bytes:
    return json.dumps(anomaly, separators=(",", ":")).encode()


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
