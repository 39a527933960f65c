"""Cooldown per entity and anomaly kind: a flood of anomalous windows is one incident.

The first window of an incident sends an alert; later windows within the cooldown (event time,
``window_end_ms``) are suppressed unless the severity rises above what was last sent, which sends
an update. Once its shard's event time has passed an incident's last window by the cooldown, the
incident has ended and one "ended" update is sent. The state lives in DynamoDB so every Lambda
instance sees it.

An alert or update is *reserved* before it is published: one DynamoDB transaction stores the
incident as it is after the anomaly together with an ``alert#<anomaly_id>`` item holding what to
send; the publish follows, then the reservation is marked published (docs/alerting.md, "Reserve,
publish, mark").
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass, replace
from enum import StrEnum
from typing import Any

from botocore.exceptions import ClientError

from alerting.anomaly import Anomaly
from alerting.severity import Severity

INCIDENT_PREFIX = "incident#"
ALERT_PREFIX = "alert#"


class Action(StrEnum):
    """What to do with one anomaly, or with an incident that went quiet."""

    ALERT = "alert"
    UPDATE = "update"
    SUPPRESS = "suppress"
    ENDED = "ended"


@dataclass(frozen=True)
class Incident:
    """Consecutive anomalies of one entity and kind, no further apart than the cooldown."""

    entity_type: str
    entity_id: str
    kind: str
    first_window_end_ms: int
    last_window_end_ms: int
    windows: int
    alerted_severity: Severity
    peak_score: float

    @property
    def key(self) -> str:
        """The suppression key: entity type, entity id and anomaly kind (``-`` when none).

        Examples:
            >>> Incident("ad", "ad-7", "clicks_high", 0, 0, 1, Severity.LOW, 0.6).key
            'ad/ad-7/clicks_high'
            >>> Incident("page", "p-1", "", 0, 0, 1, Severity.LOW, 0.6).key
            'page/p-1/-'
        """
        return f"{self.entity_type}/{self.entity_id}/{self.kind or '-'}"


def incident_key(anomaly: Anomaly) -> str:
    """The key of the incident ``anomaly`` belongs to.

    Examples:
        >>> from types import SimpleNamespace as A
        >>> incident_key(A(entity_type="ad", entity_id="ad-7", kind="clicks_high"))
        'ad/ad-7/clicks_high'
    """
    return f"{anomaly.entity_type}/{anomaly.entity_id}/{anomaly.kind or '-'}"


@dataclass(frozen=True)
class Reservation:
    """An alert or update reserved for one anomaly; ``message_id`` is set once it is published.

    ``incident`` is the incident as it was right after the anomaly, which is what the message
    describes, whatever later windows did to the incident.
    """

    anomaly_id: str
    action: Action
    severity: Severity
    incident: Incident
    message_id: str | None = None

    @property
    def outcome(self) -> dict[str, str]:
        """What the handler reports for the anomaly.

        Examples:
            >>> incident = Incident("ad", "ad-7", "clicks_high", 0, 0, 1, Severity.HIGH, 0.8)
            >>> Reservation("ad/ad-7/t", Action.ALERT, Severity.HIGH, incident, "m-1").outcome
            {'action': 'alert', 'severity': 'high', 'message_id': 'm-1'}
        """
        outcome = {"action": self.action.value, "severity": self.severity.label}
        return outcome if self.message_id is None else {**outcome, "message_id": self.message_id}


def decide(
    incident: Incident | None, anomaly: Anomaly, severity: Severity, cooldown_ms: int
) -> tuple[Action, Incident]:
    """Decide whether ``anomaly`` opens an incident, worsens it or is suppressed by it.

    ``incident`` is the open incident of the anomaly's key, if any.

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
        opened = Incident(
            anomaly.entity_type,
            anomaly.entity_id,
            anomaly.kind,
            first_window_end_ms=end_ms,
            last_window_end_ms=end_ms,
            windows=1,
            alerted_severity=severity,
            peak_score=anomaly.score,
        )
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
    so two invocations never update one incident at the same time; ending an incident is claimed
    with a conditional write, so only one invocation announces it.
    """

    def __init__(
        self, dynamodb: Any, table: str, ttl_seconds: int, reservation_ttl_seconds: int
    ) -> None:
        self._dynamodb = dynamodb
        self._table = table
        self._ttl_seconds = ttl_seconds
        self._reservation_ttl = reservation_ttl_seconds

    def load_open(self, key: str) -> Incident | None:
        """The open incident stored under ``key``, if any."""
        item = self._dynamodb.get_item(
            TableName=self._table, Key=_pk(key), ConsistentRead=True
        ).get("Item")
        if item is None or item["state"]["S"] != "open":
            return None
        return _incident(item)

    def save(self, incident: Incident, shard: str) -> None:
        """Store ``incident`` as open, fed by ``shard``; TTL removes it once it cannot matter."""
        self._dynamodb.put_item(TableName=self._table, Item=self._incident_item(incident, shard))

    def reservation(self, anomaly_id: str) -> Reservation | None:
        """The alert reserved for ``anomaly_id``, published or not, if any."""
        item = self._dynamodb.get_item(
            TableName=self._table, Key=_alert_pk(anomaly_id), ConsistentRead=True
        ).get("Item")
        if item is None:
            return None
        return Reservation(
            anomaly_id=anomaly_id,
            action=Action(item["action"]["S"]),
            severity=Severity[item["severity"]["S"].upper()],
            incident=_incident(item),
            message_id=item.get("message_id", {}).get("S"),
        )

    def reserve(self, reservation: Reservation, shard: str) -> None:
        """Store the reservation and its incident (open, fed by ``shard``) in one transaction.

        Fails (``TransactionCanceledException``) and writes nothing if the anomaly already has
        a reservation.
        """
        incident = reservation.incident
        self._dynamodb.transact_write_items(
            TransactItems=[
                {
                    "Put": {
                        "TableName": self._table,
                        "Item": {
                            **_alert_pk(reservation.anomaly_id),
                            **_incident_attributes(incident),
                            "action": {"S": reservation.action.value},
                            "severity": {"S": reservation.severity.label},
                            "expires_at": {"N": str(int(time.time()) + self._reservation_ttl)},
                        },
                        "ConditionExpression": "attribute_not_exists(pk)",
                    }
                },
                {"Put": {"TableName": self._table, "Item": self._incident_item(incident, shard)}},
            ]
        )

    def mark_published(self, anomaly_id: str, message_id: str) -> None:
        """Record that the reserved alert of ``anomaly_id`` was published as ``message_id``."""
        self._dynamodb.update_item(
            TableName=self._table,
            Key=_alert_pk(anomaly_id),
            UpdateExpression="SET message_id = :id",
            ConditionExpression="attribute_exists(pk)",
            ExpressionAttributeValues={":id": {"S": message_id}},
        )

    def _incident_item(self, incident: Incident, shard: str) -> dict[str, dict[str, str]]:
        return {
            **_pk(incident.key),
            **_incident_attributes(incident),
            "state": {"S": "open"},
            "shard": {"S": shard},
            "expires_at": {"N": str(int(time.time()) + self._ttl_seconds)},
        }

    def quiet(self, shard: str, before_ms: int) -> Iterator[Incident]:
        """Open incidents fed by ``shard`` whose last window ended before ``before_ms``."""
        pages = self._dynamodb.get_paginator("scan").paginate(
            TableName=self._table,
            ConsistentRead=True,
            FilterExpression="begins_with(pk, :prefix) AND #state = :open AND #shard = :shard "
            "AND last_window_end_ms < :before",
            ExpressionAttributeNames={"#state": "state", "#shard": "shard"},
            ExpressionAttributeValues={
                ":prefix": {"S": INCIDENT_PREFIX},
                ":open": {"S": "open"},
                ":shard": {"S": shard},
                ":before": {"N": str(before_ms)},
            },
        )
        for page in pages:
            yield from (_incident(item) for item in page["Items"])

    def claim_end(self, incident: Incident) -> bool:
        """Mark ``incident`` ended unless it changed or was claimed; True when this call did it."""
        return self._set_state(incident, "open", "ended")

    def reopen(self, incident: Incident) -> None:
        """Undo :meth:`claim_end` (the ended update could not be sent; a later sweep retries)."""
        self._set_state(incident, "ended", "open")

    def _set_state(self, incident: Incident, current: str, new: str) -> bool:
        try:
            self._dynamodb.update_item(
                TableName=self._table,
                Key=_pk(incident.key),
                UpdateExpression="SET #state = :new",
                ConditionExpression="#state = :current AND last_window_end_ms = :last",
                ExpressionAttributeNames={"#state": "state"},
                ExpressionAttributeValues={
                    ":new": {"S": new},
                    ":current": {"S": current},
                    ":last": {"N": str(incident.last_window_end_ms)},
                },
            )
        except ClientError as error:
            if error.response["Error"]["Code"] == "ConditionalCheckFailedException":
                return False
            raise
        return True


def _pk(key: str) -> dict[str, dict[str, str]]:
    return {"pk": {"S": f"{INCIDENT_PREFIX}{key}"}}


def _alert_pk(anomaly_id: str) -> dict[str, dict[str, str]]:
    return {"pk": {"S": f"{ALERT_PREFIX}{anomaly_id}"}}


def _incident_attributes(incident: Incident) -> dict[str, dict[str, str]]:
    return {
        "entity_type": {"S": incident.entity_type},
        "entity_id": {"S": incident.entity_id},
        "kind": {"S": incident.kind},
        "first_window_end_ms": {"N": str(incident.first_window_end_ms)},
        "last_window_end_ms": {"N": str(incident.last_window_end_ms)},
        "windows": {"N": str(incident.windows)},
        "alerted_severity": {"S": incident.alerted_severity.label},
        "peak_score": {"N": repr(incident.peak_score)},
    }


def _incident(item: dict[str, Any]) -> Incident:
    return Incident(
        entity_type=item["entity_type"]["S"],
        entity_id=item["entity_id"]["S"],
        kind=item["kind"]["S"],
        first_window_end_ms=int(item["first_window_end_ms"]["N"]),
        last_window_end_ms=int(item["last_window_end_ms"]["N"]),
        windows=int(item["windows"]["N"]),
        alerted_severity=Severity[item["alerted_severity"]["S"].upper()],
        peak_score=float(item["peak_score"]["N"]),
    )
