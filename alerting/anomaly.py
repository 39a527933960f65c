"""Decoding and validating one anomaly record (schema_version 1, see docs/anomaly-record.md)."""

from __future__ import annotations

import base64
import binascii
import json
import math
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

ENTITY_TYPES = frozenset({"ad", "page", "campaign", "site"})
DIRECTIONS = frozenset({"HIGH", "LOW"})
_UNIT_FIELDS = ("score", "grade", "confidence")
_NUMBER_FIELDS = ("raw_score", "threshold")
# The schema nests three levels deep; anything much deeper is not an anomaly record (and deep
# nesting is what makes recursive decoders and encoders blow up).
MAX_DEPTH = 16
# DynamoDB keys (incident#type/id/kind, alert#anomaly_id) must stay under 2048 bytes.
MAX_ID_BYTES = 1024
MAX_NAME_BYTES = 256
# Epoch milliseconds a datetime can represent: 1970-01-01 up to 9999-12-31T23:59:59.999Z.
MAX_EPOCH_MS = 253_402_300_799_999
_SHOWN_VALUE = 80


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

    Movements are sorted strongest first. Whatever the bytes hold (deep nesting, huge or
    non-finite numbers, timestamps no datetime can hold, lone surrogates), the only exception
    raised is :class:`InvalidAnomaly`.

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
        return _parse(data)
    except InvalidAnomaly:
        raise
    except Exception as error:  # whatever the input makes fail is a property of the record
        reason = f"{type(error).__name__}: {_clipped(str(error))}"
        raise InvalidAnomaly(f"record could not be decoded: {reason}") from None


def decode_anomaly(data: str) -> Anomaly:
    """Decode a Kinesis record's base64 ``data`` as :func:`parse_anomaly` decodes its bytes.

    Any failure, from the base64 on, raises :class:`InvalidAnomaly`.

    Examples:
        >>> decode_anomaly("bm90IGpzb24=")
        Traceback (most recent call last):
        ...
        alerting.anomaly.InvalidAnomaly: record is not UTF-8 JSON: Expecting value: ...
        >>> decode_anomaly("not base64!")
        Traceback (most recent call last):
        ...
        alerting.anomaly.InvalidAnomaly: record data is not base64: ...
    """
    try:
        raw = base64.b64decode(data, validate=True)
    except (binascii.Error, TypeError, ValueError) as error:
        raise InvalidAnomaly(f"record data is not base64: {_clipped(str(error))}") from None
    return parse_anomaly(raw)


def _parse(data: bytes) -> Anomaly:
    try:
        record = json.loads(
            data.decode("utf-8"), parse_constant=_not_finite, parse_float=_finite_float
        )
    except InvalidAnomaly:
        raise
    except (UnicodeDecodeError, ValueError, RecursionError) as error:
        raise InvalidAnomaly(f"record is not UTF-8 JSON: {_clipped(str(error))}") from None
    if not isinstance(record, dict):
        raise InvalidAnomaly(f"record must be a JSON object, got {type(record).__name__}")
    _check_structure(record)
    if record.get("schema_version") != 1:
        raise InvalidAnomaly(f"schema_version must be 1, got {_repr(record.get('schema_version'))}")
    if record.get("is_anomaly") is not True:
        raise InvalidAnomaly("is_anomaly must be true on the anomalies stream")
    entity_type = _text(record, "entity_type")
    if entity_type not in ENTITY_TYPES:
        raise InvalidAnomaly(
            f"entity_type must be one of {sorted(ENTITY_TYPES)}, got {_repr(entity_type)}"
        )
    entity_id = _text(record, "entity_id", MAX_ID_BYTES)
    window_start_ms = _epoch_ms(record, "window_start_ms")
    window_end_ms = _epoch_ms(record, "window_end_ms")
    if window_end_ms <= window_start_ms:
        raise InvalidAnomaly("window_end_ms must be after window_start_ms")
    window_end = _timestamp(record, "window_end", window_end_ms)
    anomaly_id = _text(record, "anomaly_id", MAX_ID_BYTES + 64)
    if anomaly_id != f"{entity_type}/{entity_id}/{window_end}":
        raise InvalidAnomaly(
            f"anomaly_id must be entity_type/entity_id/window_end, got {_repr(anomaly_id)}"
        )
    for name in _UNIT_FIELDS:
        if not 0.0 <= _number(record, name) <= 1.0:
            raise InvalidAnomaly(f"{name} must be within 0..1, got {_repr(record[name])}")
    for name in _NUMBER_FIELDS:
        _number(record, name)
    kind = record.get("kind")
    if not isinstance(kind, str) or len(kind.encode("utf-8")) > MAX_NAME_BYTES:
        raise InvalidAnomaly(
            f"kind must be a string of at most {MAX_NAME_BYTES} UTF-8 bytes, got {_repr(kind)}"
        )
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
        detector=_text(record, "detector", MAX_NAME_BYTES),
        score=float(record["score"]),
        threshold=float(record["threshold"]),
        grade=float(record["grade"]),
        confidence=float(record["confidence"]),
        kind=kind,
        movements=_movements(record.get("explanation")),
        payload=record,
    )


def _text(record: dict[str, Any], name: str, max_bytes: int = MAX_NAME_BYTES) -> str:
    value = record.get(name)
    if not isinstance(value, str) or not value.strip():
        raise InvalidAnomaly(f"{name} must be a non-empty string, got {_repr(value)}")
    if len(value.encode("utf-8")) > max_bytes:
        raise InvalidAnomaly(f"{name} must be at most {max_bytes} UTF-8 bytes, got {_repr(value)}")
    return value


def _epoch_ms(record: dict[str, Any], name: str) -> int:
    value = record.get(name)
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidAnomaly(f"{name} must be an integer, got {_repr(value)}")
    if not 0 <= value <= MAX_EPOCH_MS:
        raise InvalidAnomaly(
            f"{name} must be epoch milliseconds within 0..{MAX_EPOCH_MS}, got {_repr(value)}"
        )
    return value


def _number(record: dict[str, Any], name: str, where: str = "") -> float:
    value = record.get(name)
    if not isinstance(value, bool) and isinstance(value, int | float):
        try:
            number = float(value)
        except OverflowError:
            number = math.inf
        if math.isfinite(number):
            return number
    raise InvalidAnomaly(f"{where}{name} must be a finite number, got {_repr(value)}")


def _not_finite(literal: str) -> float:
    raise InvalidAnomaly(f"numbers must be finite, got {literal}")


def _finite_float(literal: str) -> float:
    number = float(literal)
    if not math.isfinite(number):
        raise InvalidAnomaly(f"numbers must be finite, got {_clipped(literal)}")
    return number


def _check_structure(record: dict[str, Any]) -> None:
    """Reject objects/arrays nested deeper than :data:`MAX_DEPTH` and strings not valid Unicode."""
    pending: list[tuple[Any, int]] = [(record, 1)]
    while pending:
        value, depth = pending.pop()
        if isinstance(value, dict | list) and depth > MAX_DEPTH:
            raise InvalidAnomaly(f"record must not nest deeper than {MAX_DEPTH} levels")
        if isinstance(value, dict):
            for key, item in value.items():
                _check_string(key)
                pending.append((item, depth + 1))
        elif isinstance(value, list):
            pending.extend((item, depth + 1) for item in value)
        elif isinstance(value, str):
            _check_string(value)


def _check_string(text: str) -> None:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidAnomaly(
            f"record holds a string that is not valid Unicode (lone surrogate): {_repr(text)}"
        ) from None


def _repr(value: Any) -> str:
    """``repr(value)``, cut so that an error message stays short whatever the record holds."""
    try:
        text = repr(value)
    except ValueError:  # an integer too long to print
        text = f"<{type(value).__name__} too long to show>"
    return _clipped(text)


def _clipped(text: str) -> str:
    return text if len(text) <= _SHOWN_VALUE else text[: _SHOWN_VALUE - 3] + "..."


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
        raise InvalidAnomaly(f"{name} must be {name}_ms as ISO-8601 UTC with Z, got {_repr(value)}")
    return value


def _movements(explanation: Any) -> tuple[Movement, ...]:
    if not isinstance(explanation, dict):
        raise InvalidAnomaly("explanation must be an object")
    movements = []
    for feature, entry in explanation.items():
        where = f"explanation.{_clipped(feature)}."
        if not isinstance(entry, dict) or entry.get("DIRECTION") not in DIRECTIONS:
            raise InvalidAnomaly(f"{where}DIRECTION must be HIGH or LOW")
        numbers = [_number(entry, key, where) for key in ("STRENGTH", "value", "expected")]
        movements.append(Movement(feature, entry["DIRECTION"], *numbers))
    return tuple(sorted(movements, key=lambda m: m.strength, reverse=True))
