"""One Kinesis record in, at most one SNS alert out: decode, suppress, deduplicate, publish.

An alert is reserved (with its incident) before it is published and marked published after, so
a retry re-sends only an alert that may not have gone out (docs/alerting.md).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import boto3
from aws_lambda_powertools.utilities.data_classes.kinesis_stream_event import KinesisStreamRecord
from aws_lambda_powertools.utilities.idempotency import (
    DynamoDBPersistenceLayer,
    IdempotencyConfig,
    idempotent_function,
)
from aws_lambda_powertools.utilities.idempotency.persistence.datarecord import DataRecord
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from alerting.anomaly import Anomaly, InvalidAnomaly, decode_anomaly
from alerting.config import AlertingConfig
from alerting.dead_letter import DeadLetterPolicy
from alerting.message import AlertMessage, build_end_message, build_message
from alerting.severity import severity_of
from alerting.suppression import (
    Action,
    Incident,
    Reservation,
    SuppressionStore,
    decide,
    incident_key,
)

logger = logging.getLogger(__name__)

# A throttled or unreachable SNS fails the record after a few quick tries; the event source
# mapping retries it, so the Lambda does not spend its timeout waiting.
AWS_CLIENT_CONFIG = Config(
    retries={"mode": "standard", "total_max_attempts": 3}, connect_timeout=2, read_timeout=5
)
IDEMPOTENCY_KEY_PREFIX = "clicksentry-alerts.anomaly"
INCIDENT_TTL_GRACE_SECONDS = 86_400


class Alerter:
    """The per-record work of the alerting Lambda, with its AWS clients.

    ``idempotency`` is exposed so the handler can register the Lambda context (in-progress
    records then expire with the invocation's remaining time); the clients are exposed so tests
    can inject faults at botocore's send step.
    """

    def __init__(self, config: AlertingConfig, sns: Any, dynamodb: Any, sqs: Any) -> None:
        self.config = config
        self.sns = sns
        self.dynamodb = dynamodb
        self._shard_times: dict[str, int] = {}
        self.idempotency = IdempotencyConfig(
            event_key_jmespath="anomaly_id",
            raise_on_no_idempotency_key=True,
            expires_after_seconds=config.idempotency_ttl_seconds,
            response_hook=_mark_duplicate,
        )
        persistence = DynamoDBPersistenceLayer(
            table_name=config.idempotency_table, boto3_client=dynamodb
        )
        self._alert_once = idempotent_function(
            self._alert,
            data_keyword_argument="anomaly",
            persistence_store=persistence,
            config=self.idempotency,
            key_prefix=IDEMPOTENCY_KEY_PREFIX,
        )
        self._incidents = SuppressionStore(
            dynamodb,
            config.suppression_table,
            ttl_seconds=config.cooldown_seconds + INCIDENT_TTL_GRACE_SECONDS,
            reservation_ttl_seconds=config.idempotency_ttl_seconds,
        )
        self._dead_letters = DeadLetterPolicy(
            dynamodb,
            sqs,
            table=config.suppression_table,
            queue_url=config.dead_letter_queue_url,
            max_attempts=config.poison_max_attempts,
            ttl=config.idempotency_ttl_seconds,
        )

    @classmethod
    def from_environment(cls, environ: Mapping[str, str]) -> Alerter:
        """Validate the configuration in ``environ`` and create the AWS clients."""
        config = AlertingConfig.from_environ(environ)
        session = boto3.session.Session()
        return cls(
            config,
            sns=session.client("sns", config=AWS_CLIENT_CONFIG),
            dynamodb=session.client("dynamodb", config=AWS_CLIENT_CONFIG),
            sqs=session.client("sqs", config=AWS_CLIENT_CONFIG),
        )

    def process(self, record: KinesisStreamRecord) -> str:
        """Handle one record; return what happened (alert, update, suppress, dead-letter).

        Raises on anything that should be retried: AWS errors, a poison record with attempts
        left, a duplicate still in progress elsewhere. Any failure to decode or validate the
        record is an :class:`InvalidAnomaly` and takes the poison path.
        """
        try:
            anomaly = decode_anomaly(record.kinesis.data)
        except InvalidAnomaly as error:
            logger.error(
                "invalid anomaly record %s (partition key %r): %s",
                record.event_id,
                record.kinesis.partition_key,
                error,
            )
            self._dead_letters.handle(record, str(error))
            return "dead-letter"
        shard = shard_of(record)
        self._shard_times[shard] = max(self._shard_times.get(shard, 0), anomaly.window_end_ms)
        try:
            outcome = self._alert_once(anomaly=anomaly, shard=shard)
        except (BotoCoreError, ClientError) as error:
            logger.warning("anomaly %s failed, to be retried: %s", anomaly.anomaly_id, error)
            raise
        if outcome.get("duplicate"):
            logger.info(
                "anomaly %s: duplicate delivery, already handled (%s)",
                anomaly.anomaly_id,
                outcome["action"],
            )
            return "duplicate"
        logger.info(
            "anomaly %s: %s (%s)", anomaly.anomaly_id, outcome["action"], outcome["severity"]
        )
        return outcome["action"]

    def _alert(self, anomaly: Anomaly, shard: str) -> dict[str, Any]:
        """Decide, reserve, publish, mark published; a reservation found means a retry."""
        reservation = self._incidents.reservation(anomaly.anomaly_id)
        if reservation is None:
            severity = severity_of(anomaly.score, anomaly.grade)
            incident = self._incidents.load_open(incident_key(anomaly))
            action, incident = decide(
                incident, anomaly, severity, cooldown_ms=self.config.cooldown_seconds * 1000
            )
            if action is Action.SUPPRESS:
                self._incidents.save(incident, shard)
                return {"action": action.value, "severity": severity.label}
            reservation = Reservation(anomaly.anomaly_id, action, severity, incident)
            self._incidents.reserve(reservation, shard)
        elif reservation.message_id is not None:
            logger.info(
                "anomaly %s: its %s was published before as %s",
                anomaly.anomaly_id,
                reservation.action.value,
                reservation.message_id,
            )
            return {**reservation.outcome, "duplicate": True}
        else:
            logger.warning(
                "anomaly %s: its %s was reserved but not marked published; sending it now",
                anomaly.anomaly_id,
                reservation.action.value,
            )
        message = build_message(
            anomaly,
            reservation.severity,
            reservation.action,
            reservation.incident,
            self.config.dashboard_url,
        )
        message_id = self._publish(message)
        try:
            self._incidents.mark_published(anomaly.anomaly_id, message_id)
        except (BotoCoreError, ClientError) as error:
            # It was sent: failing the record now would send it again on the retry.
            logger.warning(
                "anomaly %s: published as %s, could not mark it published: %s",
                anomaly.anomaly_id,
                message_id,
                error,
            )
        return {**reservation.outcome, "message_id": message_id}

    def announce_ended(self) -> int:
        """Send one "ended" update per incident its shard's event time has left behind.

        A shard's event time is the latest window end in the records this invocation read from
        it; an incident has ended once that is more than the cooldown past its last window.
        Failures are logged and leave the incident open for a later invocation, never failing
        the batch. Returns how many updates were sent.
        """
        shard_times, self._shard_times = self._shard_times, {}
        cooldown_ms = self.config.cooldown_seconds * 1000
        sent = 0
        try:
            for shard, event_time_ms in shard_times.items():
                for incident in self._incidents.quiet(shard, event_time_ms - cooldown_ms):
                    sent += self._announce_end(incident)
        except (BotoCoreError, ClientError) as error:
            logger.warning("could not look for ended incidents: %s", error)
        return sent

    def _announce_end(self, incident: Incident) -> int:
        if not self._incidents.claim_end(incident):
            return 0
        try:
            self._publish(build_end_message(incident, self.config.dashboard_url))
        except (BotoCoreError, ClientError) as error:
            logger.warning("could not announce the end of %s: %s", incident.key, error)
            self._incidents.reopen(incident)
            return 0
        logger.info("incident %s ended after %d windows", incident.key, incident.windows)
        return 1

    def _publish(self, message: AlertMessage) -> str:
        return self.sns.publish(
            TopicArn=self.config.topic_arn,
            Subject=message.subject,
            Message=message.body,
            MessageAttributes=message.attributes,
        )["MessageId"]


def shard_of(record: KinesisStreamRecord) -> str:
    """Stream ARN and shard id of a record, from its ``eventID`` (``shardId-…:sequence``).

    Examples:
        >>> shard_of(KinesisStreamRecord({
        ...     "eventSourceARN": "arn:aws:kinesis:us-east-1:000000000000:stream/s",
        ...     "eventID": "shardId-000000000001:4959"}))
        'arn:aws:kinesis:us-east-1:000000000000:stream/s/shardId-000000000001'
    """
    return f"{record.event_source_arn}/{record.event_id.rsplit(':', 1)[0]}"


def _mark_duplicate(outcome: dict[str, str], _record: DataRecord) -> dict[str, Any]:
    """Idempotency response hook: the stored outcome of an anomaly that was already handled."""
    return {**outcome, "duplicate": True}
