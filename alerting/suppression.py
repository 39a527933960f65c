"""Cooldown per entity and anomaly kind: a flood of anomalous windows is one incident.

The first window of an incident sends an alert; later windows within the cooldown (event time,
``window_end_ms``) are suppressed unless the severity rises above what was last sent, which sends
an update. The incident state lives in DynamoDB so every Lambda instance of the shard sees it.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, replace
from enum import StrEnum
from typing import Any

from alerting.anomaly import Anomaly
from alerting.severity import Severity


class Action(StrEnum):
    """What to do with one anomaly."""

    ALERT = "alert"
    UPDATE = "update"
    SUPPRESS = "suppress"


@dataclass(frozen=True)
class Incident:
    """Consecutive anomalies of one entity and kind, no further apart than the cooldown."""

    key: str
    first_window_end_ms: int
    last_window_end_ms: int
    windows: int
    alerted_severity: Severity
    peak_score: float


def incident_key(anomaly: Anomaly) -> str:
    """The suppression key: entity type, entity id and anomaly kind (``-`` when there is none).

    Examples:
        >>> from types import SimpleNamespace as A
        >>> incident_key(A(entity_type="ad", entity_id="ad-7", kind="clicks_high"))
        'ad/ad-7/clicks_high'
        >>> incident_key(A(entity_type="page", entity_id="p-1", kind=""))
        'page/p-1/-'
    """
    return f"{anomaly.entity_type}/{anomaly.entity_id}/{anomaly.kind or '-'}"


def decide(
    incident: Incident | None, anomaly: Anomaly, severity: Severity, cooldown_ms: int
) -> tuple[Action, Incident]:
    """Decide whether ``anomaly`` opens an incident, worsens it or is suppressed by it.

    Examples:
        >>> from types import SimpleNamespace as A
        >>> def window(end_s, score=0.7):
        ...     return A(entity_type="ad", entity_id="ad-7", kind="clicks_high",
        ...              window_end_ms=end_s * 1000, score=score)
        >>> action, incident = decide(None, window(10), Severity.HIGH, cooldown_ms=60_000)
        >>> action, incident.windows
        (<Action.ALERT: 'alert'>, 1)
        >>> action, incident = decide(incident, window(20), Severity.HIGH, cooldown_ms=60_000)
        >>> action, incident.windows, incident.last_window_end_ms
        (<Action.SUPPRESS: 'suppress'>, 2, 20000)
        >>> action, incident = decide(incident, window(30, 0.99), Severity.CRITICAL, 60_000)
        >>> action, incident.alerted_severity.label, incident.peak_score
        (<Action.UPDATE: 'update'>, 'critical', 0.99)
        >>> decide(incident, window(100), Severity.LOW, cooldown_ms=60_000)[0]
        <Action.ALERT: 'alert'>
    """
    end_ms = anomaly.window_end_ms
    if incident is None or end_ms - incident.last_window_end_ms > cooldown_ms:
        opened = Incident(incident_key(anomaly), end_ms, end_ms, 1, severity, anomaly.score)
        return Action.ALERT, opened
    grown = replace(
        incident,
        last_window_end_ms=max(end_ms, incident.last_window_end_ms),
        windows=incident.windows + 1,
        peak_score=max(anomaly.score, incident.peak_score),
    )
    if severity > incident.alerted_severity:
        return Action.UPDATE, replace(grown, alerted_severity=severity)
    return Action.SUPPRESS, grown


class SuppressionStore:
    """Incident state in the DynamoDB suppression table (hash key ``pk``, TTL ``expires_at``).

    Records of one entity share a partition key and so a shard, which Lambda processes in order,
    so reads and writes of one incident never race.
    """

    def __init__(self, dynamodb: Any, table: str, ttl_seconds: int) -> None:
        self._dynamodb = dynamodb
        self._table = table
        self._ttl_seconds = ttl_seconds

    def load(self, key: str) -> Incident | None:
        """The incident stored under ``key``, if any."""
        item = self._dynamodb.get_item(
            TableName=self._table, Key={"pk": {"S": f"incident#{key}"}}, ConsistentRead=True
        ).get("Item")
        if item is None:
            return None
        return Incident(
            key=key,
            first_window_end_ms=int(item["first_window_end_ms"]["N"]),
            last_window_end_ms=int(item["last_window_end_ms"]["N"]),
            windows=int(item["windows"]["N"]),
            alerted_severity=Severity[item["alerted_severity"]["S"].upper()],
            peak_score=float(item["peak_score"]["N"]),
        )

    def save(self, incident: Incident) -> None:
        """Store ``incident``; DynamoDB's TTL removes it once it can no longer matter."""
        self._dynamodb.put_item(
            TableName=self._table,
            Item={
                "pk": {"S": f"incident#{incident.key}"},
                "first_window_end_ms": {"N": str(incident.first_window_end_ms)},
                "last_window_end_ms": {"N": str(incident.last_window_end_ms)},
                "windows": {"N": str(incident.windows)},
                "alerted_severity": {"S": incident.alerted_severity.label},
                "peak_score": {"N": repr(incident.peak_score)},
                "expires_at": {"N": str(int(time.time()) + self._ttl_seconds)},
            },
        )
