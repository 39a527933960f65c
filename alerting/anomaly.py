"""Decoding and validating one anomaly record (schema_version 1, see docs/anomaly-record.md)."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

ENTITY_TYPES = frozenset({"ad", "page", "campaign"})
DIRECTIONS = frozenset({"HIGH", "LOW"})
_UNIT_FIELDS = ("score", "grade", "confidence")
_NUMBER_FIELDS = ("raw_score", "threshold")


class InvalidAnomaly(ValueError):
    """The record is not a valid anomaly; it will never become valid by retrying."""


@dataclass(frozen=True)
class Movement:
    """How one feature moved away from the entity's baseline."""

    feature: str
    direction: str
    strength: float
    value: float
    expected: float


@dataclass(frozen=True)
class Anomaly:
    """A validated anomaly record; ``payload`` keeps the record exactly as received."""

    anomaly_id: str
    entity_type: str
    entity_id: str
    window_start: str
    window_end: str
    window_start_ms: int
    window_end_ms: int
    detector: str
    score: float
    threshold: float
    grade: float
    confidence: float
    kind: str
    movements: tuple[Movement, ...]
    payload: dict[str, Any]


def parse_anomaly(data: bytes) -> Anomaly:
    r"""Decode a Kinesis record's bytes into an :class:`Anomaly`, or raise :class:`InvalidAnomaly`.

    Movements are sorted strongest first.

    Examples:
        >>> raw = (b'{"schema_version": 1, "anomaly_id": "ad/ad-7/2026-01-05T00:12:10.000Z",'
        ...        b' "entity_type": "ad", "entity_id": "ad-7",'
        ...        b' "window_start": "2026-01-05T00:12:00.000Z",'
        ...        b' "window_end": "2026-01-05T00:12:10.000Z",'
        ...        b' "window_start_ms": 1767571920000, "window_end_ms": 1767571930000,'
        ...        b' "detector": "rcf-kda", "score": 0.71, "raw_score": 5.68, "threshold": 0.5,'
        ...        b' "is_anomaly": true, "grade": 0.8, "confidence": 0.9, "kind": "clicks_high",'
        ...        b' "features": {"clicks": 340}, "explanation": {"clicks": {"DIRECTION": "HIGH",'
        ...        b' "STRENGTH": 0.93, "ATTRIBUTION_SCORE": 2.1,'
        ...        b' "value": 340, "expected": 12.0}}}')
        >>> anomaly = parse_anomaly(raw)
        >>> anomaly.entity_id, anomaly.movements[0].feature, anomaly.movements[0].expected
        ('ad-7', 'clicks', 12.0)
        >>> parse_anomaly(b'{"schema_version": 2}')
        Traceback (most recent call last):
        ...
        alerting.anomaly.InvalidAnomaly: schema_version must be 1, got 2
        >>> parse_anomaly(b"\xff")
        Traceback (most recent call last):
        ...
        alerting.anomaly.InvalidAnomaly: record is not UTF-8 JSON: ...
    """
    try:
        record = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise InvalidAnomaly(f"record is not UTF-8 JSON: {error}") from None
    if not isinstance(record, dict):
        raise InvalidAnomaly(f"record must be a JSON object, got {type(record).__name__}")
    if record.get("schema_version") != 1:
        raise InvalidAnomaly(f"schema_version must be 1, got {record.get('schema_version')!r}")
    if record.get("is_anomaly") is not True:
        raise InvalidAnomaly("is_anomaly must be true on the anomalies stream")
    entity_type = _text(record, "entity_type")
    if entity_type not in ENTITY_TYPES:
        raise InvalidAnomaly(
            f"entity_type must be one of {sorted(ENTITY_TYPES)}, got {entity_type!r}"
        )
    entity_id = _text(record, "entity_id")
    window_start_ms = _integer(record, "window_start_ms")
    window_end_ms = _integer(record, "window_end_ms")
    if window_end_ms <= window_start_ms:
        raise InvalidAnomaly("window_end_ms must be after window_start_ms")
    window_end = _timestamp(record, "window_end", window_end_ms)
    anomaly_id = _text(record, "anomaly_id")
    if anomaly_id != f"{entity_type}/{entity_id}/{window_end}":
        raise InvalidAnomaly(
            f"anomaly_id must be entity_type/entity_id/window_end, got {anomaly_id!r}"
        )
    for name in _UNIT_FIELDS:
        if not 0.0 <= _number(record, name) <= 1.0:
            raise InvalidAnomaly(f"{name} must be within 0..1, got {record[name]!r}")
    for name in _NUMBER_FIELDS:
        _number(record, name)
    kind = record.get("kind")
    if not isinstance(kind, str):
        raise InvalidAnomaly(f"kind must be a string, got {kind!r}")
    if not isinstance(record.get("features"), dict):
        raise InvalidAnomaly("features must be an object")
    return Anomaly(
        anomaly_id=anomaly_id,
        entity_type=entity_type,
        entity_id=entity_id,
        window_start=_timestamp(record, "window_start", window_start_ms),
        window_end=window_end,
        window_start_ms=window_start_ms,
        window_end_ms=window_end_ms,
        detector=_text(record, "detector"),
        score=float(record["score"]),
        threshold=float(record["threshold"]),
        grade=float(record["grade"]),
        confidence=float(record["confidence"]),
        kind=kind,
        movements=_movements(record.get("explanation")),
        payload=record,
    )


def _text(record: dict[str, Any], name: str) -> str:
    value = record.get(name)
    if not isinstance(value, str) or not value.strip():
        raise InvalidAnomaly(f"{name} must be a non-empty string, got {value!r}")
    return value


def _integer(record: dict[str, Any], name: str) -> int:
    value = record.get(name)
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidAnomaly(f"{name} must be an integer, got {value!r}")
    return value


def _number(record: dict[str, Any], name: str, where: str = "") -> float:
    value = record.get(name)
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise InvalidAnomaly(f"{where}{name} must be a finite number, got {value!r}")
    return float(value)


def iso_utc(epoch_ms: float) -> str:
    """Epoch milliseconds as the records write times: ISO-8601 UTC, milliseconds, ``Z``.

    >>> iso_utc(1767571930000)
    '2026-01-05T00:12:10.000Z'
    """
    stamp = datetime.fromtimestamp(epoch_ms / 1000, tz=UTC).isoformat(timespec="milliseconds")
    return stamp.replace("+00:00", "Z")


def _timestamp(record: dict[str, Any], name: str, epoch_ms: int) -> str:
    value = _text(record, name)
    if value != iso_utc(epoch_ms):
        raise InvalidAnomaly(f"{name} must be {name}_ms as ISO-8601 UTC with Z, got {value!r}")
    return value


def _movements(explanation: Any) -> tuple[Movement, ...]:
    if not isinstance(explanation, dict):
        raise InvalidAnomaly("explanation must be an object")
    movements = []
    for feature, entry in explanation.items():
        if not isinstance(entry, dict) or entry.get("DIRECTION") not in DIRECTIONS:
            raise InvalidAnomaly(f"explanation.{feature}.DIRECTION must be HIGH or LOW")
        where = f"explanation.{feature}."
        numbers = [_number(entry, key, where) for key in ("STRENGTH", "value", "expected")]
        movements.append(Movement(feature, entry["DIRECTION"], *numbers))
    return tuple(sorted(movements, key=lambda m: m.strength, reverse=True))
