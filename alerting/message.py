"""The SNS message for an alert: subject, a body readable at a glance, filterable attributes."""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import quote

from alerting.anomaly import Anomaly, Movement, iso_utc
from alerting.event_text import record_json, shown
from alerting.severity import Severity
from alerting.suppression import Action, Incident

SUBJECT_LIMIT = 99
# SNS takes at most 256 KiB per message, subject and attributes included; the body stays below
# 200 000 UTF-8 bytes, which leaves more than 60 KB of margin.
BODY_LIMIT_BYTES = 200_000
MOVEMENTS_SHOWN = 20
ATTRIBUTE_LIMIT = 1024
RECORD_HEADING = "Anomaly record (JSON):"
_NOT_PRINTABLE_ASCII = re.compile(r"[^\x20-\x7e]")


@dataclass(frozen=True)
class AlertMessage:
    """Arguments for ``sns.publish`` apart from the topic."""

    subject: str
    body: str
    attributes: dict[str, dict[str, str]]


def subject_line(anomaly: Anomaly, severity: Severity, action: Action) -> str:
    r"""A one-line subject, printable ASCII and at most 99 characters (SNS wants < 100).

    Examples:
        >>> from types import SimpleNamespace as A
        >>> ad = A(entity_type="ad", entity_id="ad-0007", kind="clicks_high",
        ...        window_end="2026-01-05T00:12:10.000Z")
        >>> subject_line(ad, Severity.HIGH, Action.ALERT)
        '[clicksentry HIGH] clicks high on ad ad-0007 at 2026-01-05 00:12:10Z'
        >>> subject_line(ad, Severity.CRITICAL, Action.UPDATE)
        '[clicksentry CRITICAL update] clicks high on ad ad-0007 at 2026-01-05 00:12:10Z'
        >>> long = A(entity_type="page", entity_id="p-\u00e9" + "x" * 200, kind="",
        ...          window_end="2026-01-05T00:12:10.000Z")
        >>> line = subject_line(long, Severity.LOW, Action.ALERT)
        >>> len(line), line[:36], line.isascii()
        (99, '[clicksentry LOW] anomaly on page p-', True)
    """
    tag = severity.name if action is Action.ALERT else f"{severity.name} {action.value}"
    what = f"{_kind_text(anomaly.kind)} on {anomaly.entity_type} {shown(anomaly.entity_id)}"
    return _subject(tag, what, anomaly.window_end)


def _subject(tag: str, what: str, window_end: str) -> str:
    when = window_end.replace("T", " ").replace(".000Z", "Z")
    line = _NOT_PRINTABLE_ASCII.sub("?", f"[clicksentry {tag}] {what} at {when}")
    return line if len(line) <= SUBJECT_LIMIT else line[: SUBJECT_LIMIT - 3] + "..."


def describe_movement(movement: Movement) -> str:
    """One line on how far a feature is from normal: observed value vs the entity's baseline.

    Examples:
        >>> describe_movement(Movement("clicks", "HIGH", 0.93, 340, 12.0))
        'clicks HIGH: 340 vs expected 12 (28.3x normal), strength 0.93'
        >>> describe_movement(Movement("purchases", "LOW", 0.5, 0, 4.0))
        'purchases LOW: 0 vs expected 4 (0.0x normal), strength 0.50'
        >>> describe_movement(Movement("bot_share", "HIGH", 0.7, 0.4, 0.0))
        'bot_share HIGH: 0.4 vs expected 0 (+0.4 over normal), strength 0.70'
    """
    value, expected = movement.value, movement.expected
    far = f"{value / expected:.1f}x normal" if expected else f"{value - expected:+.3g} over normal"
    return (
        f"{shown(movement.feature)} {movement.direction}: {value:.3g} vs expected {expected:.3g} "
        f"({far}), strength {movement.strength:.2f}"
    )


def build_message(
    anomaly: Anomaly, severity: Severity, action: Action, incident: Incident, dashboard_url: str
) -> AlertMessage:
    """The alert for ``anomaly``: what, where, when, how far from normal, link, full record.

    Examples:
        >>> import json
        >>> from alerting.anomaly import parse_anomaly
        >>> from alerting.suppression import decide
        >>> anomaly = parse_anomaly(json.dumps({
        ...     "schema_version": 1, "anomaly_id": "ad/ad-7/2026-01-05T00:12:10.000Z",
        ...     "entity_type": "ad", "entity_id": "ad-7",
        ...     "window_start": "2026-01-05T00:12:00.000Z", "window_end": "2026-01-05T00:12:10.000Z",
        ...     "window_start_ms": 1767571920000, "window_end_ms": 1767571930000,
        ...     "detector": "rcf-kda", "score": 0.71, "raw_score": 5.68, "threshold": 0.5,
        ...     "is_anomaly": True, "grade": 0.8, "confidence": 0.9, "kind": "clicks_high",
        ...     "features": {"clicks": 340},
        ...     "explanation": {"clicks": {"DIRECTION": "HIGH", "STRENGTH": 0.93,
        ...                     "ATTRIBUTION_SCORE": 2.1, "value": 340, "expected": 12.0}},
        ... }).encode())
        >>> action, incident = decide(None, anomaly, Severity.CRITICAL, cooldown_ms=300_000)
        >>> message = build_message(anomaly, Severity.CRITICAL, action, incident,
        ...                         "https://dash.invalid/{entity_type}/{entity_id}")
        >>> print(message.body.split("Anomaly record")[0])
        CRITICAL: clicks high on ad ad-7
        <BLANKLINE>
        What:  clicks_high anomaly, score 0.71 (threshold 0.50, grade 0.80, confidence 0.90), detector rcf-kda
        Where: ad ad-7
        When:  2026-01-05T00:12:00.000Z to 2026-01-05T00:12:10.000Z (UTC, 10 s window)
        How far from normal:
          - clicks HIGH: 340 vs expected 12 (28.3x normal), strength 0.93
        Dashboard: https://dash.invalid/ad/ad-7
        <BLANKLINE>
        <BLANKLINE>
        >>> message.attributes["severity"]
        {'DataType': 'String', 'StringValue': 'critical'}
    """  # noqa: E501
    where = f"{anomaly.entity_type} {shown(anomaly.entity_id)}"
    lines = [f"{severity.name}: {_kind_text(anomaly.kind)} on {where}"]
    if action is Action.UPDATE:
        lines.append(
            f"Update: severity rose to {severity.label}; the incident has lasted "
            f"{incident.windows} windows since the window ending "
            f"{iso_utc(incident.first_window_end_ms)}, peak score {incident.peak_score:.2f}."
        )
    seconds = (anomaly.window_end_ms - anomaly.window_start_ms) / 1000
    link = dashboard_link(
        dashboard_url,
        anomaly.entity_type,
        anomaly.entity_id,
        anomaly.window_start_ms,
        anomaly.window_end_ms,
    )
    movements = anomaly.movements[:MOVEMENTS_SHOWN]
    hidden = len(anomaly.movements) - len(movements)
    lines += [
        "",
        f"What:  {shown(anomaly.kind) or 'unattributed'} anomaly, score {anomaly.score:.2f} "
        f"(threshold {anomaly.threshold:.2f}, grade {anomaly.grade:.2f}, "
        f"confidence {anomaly.confidence:.2f}), detector {shown(anomaly.detector)}",
        *_significance(anomaly.payload),
        *_decided_by(anomaly.payload),
        f"Where: {where}",
        f"When:  {anomaly.window_start} to {anomaly.window_end} (UTC, {seconds:g} s window)",
        "How far from normal:",
        *(f"  - {describe_movement(m)}" for m in movements),
        *([f"  - ... and {hidden} weaker features"] if hidden else []),
        *(["  (no feature attribution)"] if not anomaly.movements else []),
        f"Dashboard: {link}",
    ]
    return AlertMessage(
        subject=subject_line(anomaly, severity, action),
        body=with_record(lines, anomaly.payload),
        attributes=_attributes(severity, anomaly, action),
    )


def _significance(payload: dict) -> list[str]:
    """The line saying how unlikely the move is by chance at this entity's volume, if known.

    The job adds ``p_value`` (docs/anomaly-record.md) for detectors with a significance test;
    a field of the wrong type is left out of the body (the full record still follows it).

    >>> _significance({"p_value": 2.4e-09})
    ['Significance: p = 2.4e-09 (chance of a move this large at this volume, given its history)']
    >>> _significance({}), _significance({"p_value": "low"})
    ([], [])
    """
    p = payload.get("p_value")
    if not _is_number(p):
        return []
    return [f"Significance: p = {p:.2g} (chance of a move this large at this volume, "
            "given its history)"]


def _decided_by(payload: dict) -> list[str]:
    """The line naming the retrained forest that decided the window, if one did.

    The job adds ``model`` (docs/anomaly-record.md) when ``scoring.model_uri`` is set; a field
    of the wrong shape is left out of the body (the full record still follows it).

    >>> _decided_by({"model": {"name": "click-forest", "version": "v2", "probability": 0.91,
    ...                        "threshold": 0.62, "online_is_anomaly": False}})
    ['Decided by: forest click-forest/v2, probability 0.91 (threshold 0.62); the online detector alone would not have flagged it']
    >>> _decided_by({}), _decided_by({"model": {"name": 3}})
    ([], [])
    """  # noqa: E501
    model = payload.get("model")
    if not isinstance(model, dict):
        return []
    name, version = model.get("name"), model.get("version")
    probability, threshold = model.get("probability"), model.get("threshold")
    online = model.get("online_is_anomaly")
    numbers = (probability, threshold)
    if not (isinstance(name, str) and isinstance(version, str) and isinstance(online, bool)
            and all(map(_is_number, numbers))):
        return []
    said = "flagged it too" if online else "would not have flagged it"
    return [f"Decided by: forest {shown(name)}/{shown(version)}, probability {probability:.2f} "
            f"(threshold {threshold:.2f}); the online detector alone {said}"]


def with_record(lines: list[str], payload: dict) -> str:
    """The body: ``lines``, then the record as JSON, cut to stay within ``BODY_LIMIT_BYTES``.

    The record is shown by :func:`alerting.event_text.record_json` (ASCII, one byte a
    character); when it does not fit, its start is shown under a heading that says so.

    Examples:
        >>> print(with_record(["HIGH: clicks high on ad ad-7"], {"clicks": 340}))
        HIGH: clicks high on ad ad-7
        <BLANKLINE>
        Anomaly record (JSON):
        {
          "clicks": 340
        }
        >>> body = with_record(["HIGH: clicks high on ad ad-7"], {"blob": "x" * 300_000})
        >>> len(body.encode()) <= BODY_LIMIT_BYTES
        True
        >>> print(body.splitlines()[2])
        Anomaly record (JSON, TRUNCATED: the first 199838 of 300016 bytes; the complete record is on the anomalies stream):
        >>> body.endswith("[... truncated]")
        True
    """  # noqa: E501
    head = "\n".join(lines)
    record = record_json(payload)
    body = f"{head}\n\n{RECORD_HEADING}\n{record}"
    if len(body.encode("utf-8")) <= BODY_LIMIT_BYTES:
        return body
    tail = "\n[... truncated]"
    heading = (
        f"Anomaly record (JSON, TRUNCATED: the first {{shown}} of {len(record)} bytes; "
        "the complete record is on the anomalies stream):"
    )
    fixed = len(f"{head}\n\n{heading.format(shown=len(record))}\n{tail}".encode())
    room = max(0, BODY_LIMIT_BYTES - fixed)
    return f"{head}\n\n{heading.format(shown=room)}\n{record[:room]}{tail}"


def dashboard_link(
    template: str, entity_type: str, entity_id: str, start_ms: int, end_ms: int
) -> str:
    """Fill the dashboard URL template (the ids URL-quoted).

    Examples:
        >>> dashboard_link("https://d.invalid/{entity_type}/{entity_id}?t={window_end_ms}",
        ...                "ad", "ad 7/x", 0, 10000)
        'https://d.invalid/ad/ad%207%2Fx?t=10000'
    """
    return template.format(
        entity_type=quote(entity_type, safe=""),
        entity_id=quote(entity_id, safe=""),
        window_start_ms=start_ms,
        window_end_ms=end_ms,
    )


def build_end_message(incident: Incident, dashboard_url: str) -> AlertMessage:
    """The update that closes an incident: how long it lasted and how bad it got.

    Examples:
        >>> incident = Incident("ad", "ad-7", "clicks_high", 1767571930000, 1767572020000,
        ...                     10, Severity.HIGH, 0.86)
        >>> message = build_end_message(incident, "https://d.invalid/{entity_id}")
        >>> message.subject
        '[clicksentry HIGH ended] clicks high on ad ad-7 at 2026-01-05 00:13:40Z'
        >>> print(message.body)
        ENDED: clicks high on ad ad-7
        <BLANKLINE>
        The incident lasted 10 anomalous windows, the first ending 2026-01-05T00:12:10.000Z and the last 2026-01-05T00:13:40.000Z (UTC).
        Highest severity sent: high; peak score 0.86.
        No anomaly of this kind for this entity since then.
        Dashboard: https://d.invalid/ad-7
        >>> message.attributes["alert_type"]["StringValue"]
        'ended'
    """  # noqa: E501
    what = f"{_kind_text(incident.kind)} on {incident.entity_type} {shown(incident.entity_id)}"
    first, last = iso_utc(incident.first_window_end_ms), iso_utc(incident.last_window_end_ms)
    link = dashboard_link(
        dashboard_url,
        incident.entity_type,
        incident.entity_id,
        incident.first_window_end_ms,
        incident.last_window_end_ms,
    )
    body = [
        f"ENDED: {what}",
        "",
        f"The incident lasted {incident.windows} anomalous windows, the first ending {first} "
        f"and the last {last} (UTC).",
        f"Highest severity sent: {incident.alerted_severity.label}; "
        f"peak score {incident.peak_score:.2f}.",
        "No anomaly of this kind for this entity since then.",
        f"Dashboard: {link}",
    ]
    subject = _subject(f"{incident.alerted_severity.name} ended", what, last)
    return AlertMessage(
        subject=subject,
        body="\n".join(body),
        attributes=_attributes(incident.alerted_severity, incident, Action.ENDED),
    )


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _kind_text(kind: str) -> str:
    return shown(kind.replace("_", " ")) if kind else "anomaly"


def _attributes(
    severity: Severity, entity: Anomaly | Incident, action: Action
) -> dict[str, dict[str, str]]:
    return {
        "severity": _string(severity.label),
        "entity_type": _string(entity.entity_type),
        "entity_id": _string(shown(entity.entity_id, ATTRIBUTE_LIMIT)),
        "alert_type": _string(action.value),
    }


def _string(value: str) -> dict[str, str]:
    return {"DataType": "String", "StringValue": value}
