"""Configuration from environment variables, validated once, naming the bad variable."""

import pytest

from alerting.alerter import Alerter
from alerting.config import AlertingConfig, ConfigError

VALID = {
    "ALERTS_TOPIC_ARN": "arn:aws:sns:eu-west-1:123456789012:clicksentry-alerts",
    "IDEMPOTENCY_TABLE": "clicksentry-alert-idempotency",
    "SUPPRESSION_TABLE": "clicksentry-alert-suppression",
    "DEAD_LETTER_QUEUE_URL": "https://sqs.eu-west-1.amazonaws.com/123456789012/clicksentry-alerts-dlq",
}


def test_defaults_apply_when_only_the_required_variables_are_set():
    # GIVEN only the four required variables
    # WHEN the configuration is read
    config = AlertingConfig.from_environ(VALID)
    # THEN the documented defaults apply
    assert (
        config.cooldown_seconds,
        config.poison_max_attempts,
        config.idempotency_ttl_seconds,
    ) == (
        300,
        3,
        172_800,
    )


@pytest.mark.parametrize("name", sorted(VALID))
def test_missing_required_variable_is_named(name):
    # GIVEN the environment without one required variable
    environ = {k: v for k, v in VALID.items() if k != name}
    # WHEN the configuration is read
    with pytest.raises(ConfigError) as error:
        AlertingConfig.from_environ(environ)
    # THEN the error names it
    assert str(error.value).startswith(f"{name} is required")


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("ALERTS_TOPIC_ARN", "clicksentry-alerts"),
        ("DEAD_LETTER_QUEUE_URL", "clicksentry-alerts-dlq"),
        ("SUPPRESSION_TABLE", "x"),
        ("COOLDOWN_SECONDS", "0"),
        ("POISON_MAX_ATTEMPTS", "-1"),
        ("IDEMPOTENCY_TTL_SECONDS", "59"),
        ("DASHBOARD_URL_TEMPLATE", "https://dash.invalid/{entity}"),
        ("DASHBOARD_URL_TEMPLATE", "dash.invalid/{entity_id}"),
    ],
)
def test_invalid_value_is_named_with_the_value(name, value):
    # GIVEN one variable set to something unusable
    # WHEN the configuration is read
    with pytest.raises(ConfigError) as error:
        AlertingConfig.from_environ({**VALID, name: value})
    # THEN the error names the variable and shows the value
    assert str(error.value).startswith(name)
    assert repr(value) in str(error.value)


def test_cold_start_fails_before_creating_clients_when_a_variable_is_bad():
    # GIVEN a Lambda environment with a mistyped cooldown
    environ = {**VALID, "COOLDOWN_SECONDS": "5m"}
    # WHEN the handler's execution environment starts
    with pytest.raises(ConfigError, match="COOLDOWN_SECONDS must be a whole number"):
        Alerter.from_environment(environ)
