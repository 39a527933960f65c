"""The alerting Lambda's configuration: environment variables, validated once at cold start.

AWS endpoints are not configuration of ours: boto3 reads ``AWS_ENDPOINT_URL_SNS``,
``AWS_ENDPOINT_URL_SQS`` and ``AWS_ENDPOINT_URL_DYNAMODB`` itself, which is how the local runner
points the same code at moto server.
"""

from __future__ import annotations

import re
import string
from collections.abc import Mapping
from dataclasses import dataclass

DEFAULT_DASHBOARD_URL = (
    "https://dashboard.clicksentry.invalid/entities/{entity_type}/{entity_id}"
    "?from={window_start_ms}&to={window_end_ms}"
)
DASHBOARD_FIELDS = frozenset({"entity_type", "entity_id", "window_start_ms", "window_end_ms"})
_TOPIC_ARN = re.compile(r"^arn:aws[a-z-]*:sns:[a-z0-9-]+:\d{12}:[A-Za-z0-9_-]{1,256}$")
_QUEUE_URL = re.compile(r"^https?://\S+/\d{12}/[A-Za-z0-9_-]{1,80}$")
_TABLE_NAME = re.compile(r"^[A-Za-z0-9_.-]{3,255}$")


class ConfigError(ValueError):
    """An environment variable is missing or invalid; the message names it."""


@dataclass(frozen=True)
class AlertingConfig:
    """Everything the handler needs besides AWS credentials and endpoints."""

    topic_arn: str
    idempotency_table: str
    suppression_table: str
    dead_letter_queue_url: str
    cooldown_seconds: int = 300
    poison_max_attempts: int = 3
    idempotency_ttl_seconds: int = 172_800
    dashboard_url: str = DEFAULT_DASHBOARD_URL

    @classmethod
    def from_environ(cls, environ: Mapping[str, str]) -> AlertingConfig:
        """Read and validate the configuration; raise :class:`ConfigError` naming the variable.

        Examples:
            >>> env = {
            ...     "ALERTS_TOPIC_ARN": "arn:aws:sns:us-east-1:123456789012:clicksentry-alerts",
            ...     "IDEMPOTENCY_TABLE": "clicksentry-alert-idempotency",
            ...     "SUPPRESSION_TABLE": "clicksentry-alert-suppression",
            ...     "DEAD_LETTER_QUEUE_URL":
            ...         "https://sqs.us-east-1.amazonaws.com/123456789012/clicksentry-alerts-dlq",
            ... }
            >>> AlertingConfig.from_environ(env).cooldown_seconds
            300
            >>> AlertingConfig.from_environ({**env, "COOLDOWN_SECONDS": "ten"})
            Traceback (most recent call last):
            ...
            alerting.config.ConfigError: COOLDOWN_SECONDS must be a whole number >= 1, got 'ten'
            >>> AlertingConfig.from_environ({**env, "ALERTS_TOPIC_ARN": ""})
            Traceback (most recent call last):
            ...
            alerting.config.ConfigError: ALERTS_TOPIC_ARN is required (the SNS topic ARN)
        """
        return cls(
            topic_arn=_matching(environ, "ALERTS_TOPIC_ARN", _TOPIC_ARN, "the SNS topic ARN"),
            idempotency_table=_matching(
                environ, "IDEMPOTENCY_TABLE", _TABLE_NAME, "a DynamoDB table name"
            ),
            suppression_table=_matching(
                environ, "SUPPRESSION_TABLE", _TABLE_NAME, "a DynamoDB table name"
            ),
            dead_letter_queue_url=_matching(
                environ, "DEAD_LETTER_QUEUE_URL", _QUEUE_URL, "an SQS queue URL"
            ),
            cooldown_seconds=_whole_number(environ, "COOLDOWN_SECONDS", 300, minimum=1),
            poison_max_attempts=_whole_number(environ, "POISON_MAX_ATTEMPTS", 3, minimum=1),
            idempotency_ttl_seconds=_whole_number(
                environ, "IDEMPOTENCY_TTL_SECONDS", 172_800, minimum=60
            ),
            dashboard_url=_dashboard_url(environ),
        )


def _matching(environ: Mapping[str, str], name: str, pattern: re.Pattern[str], what: str) -> str:
    value = environ.get(name, "").strip()
    if not value:
        raise ConfigError(f"{name} is required ({what})")
    if not pattern.match(value):
        raise ConfigError(f"{name} must be {what}, got {value!r}")
    return value


def _whole_number(environ: Mapping[str, str], name: str, default: int, minimum: int) -> int:
    raw = environ.get(name, "").strip()
    if not raw:
        return default
    if not raw.isdigit() or int(raw) < minimum:
        raise ConfigError(f"{name} must be a whole number >= {minimum}, got {raw!r}")
    return int(raw)


def _dashboard_url(environ: Mapping[str, str]) -> str:
    template = environ.get("DASHBOARD_URL_TEMPLATE", "").strip() or DEFAULT_DASHBOARD_URL
    try:
        fields = {f for _, f, _, _ in string.Formatter().parse(template) if f is not None}
    except ValueError as error:
        raise ConfigError(f"DASHBOARD_URL_TEMPLATE is not a format string: {error}") from None
    unknown = fields - DASHBOARD_FIELDS
    if unknown or not template.startswith(("https://", "http://")):
        raise ConfigError(
            f"DASHBOARD_URL_TEMPLATE must be an http(s) URL using only "
            f"{sorted(DASHBOARD_FIELDS)} placeholders, got {template!r}"
        )
    return template
