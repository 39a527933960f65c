"""The alerting Lambda's EMF metrics: one line per invocation, every outcome counted.

GIVEN the Lambda handler on the local stack (moto server); WHEN batches with new, repeated,
suppressed and poison anomalies go through it; THEN each invocation writes one CloudWatch EMF
line (namespace ``clicksentry/alerts``, dimension ``service``) whose ``AlertsSent``,
``AlertsSuppressed``, ``Duplicates`` and ``PoisonRecords`` count what happened in it, zeros
included.
"""

import json

import pytest
import test_alert_lambda
from alert_payloads import (
    encode,
    for_entity,
    kinesis_event,
    load,
    new_shard_id,
    unique_entity,
)

from alerting.metrics import METRIC_NAMES

pytestmark = pytest.mark.integration

# the Lambda handler on the local stack, and its context: the end-to-end tests' fixtures
handler = test_alert_lambda.handler
context = test_alert_lambda.context


def emf_counts(capsys) -> list[dict[str, float]]:
    """The metric values of every EMF line written since the last call."""
    lines = [
        json.loads(line)
        for line in capsys.readouterr().out.splitlines()
        if line.startswith("{") and '"_aws"' in line
    ]
    counts = []
    for line in lines:
        [directive] = line["_aws"]["CloudWatchMetrics"]
        assert directive["Namespace"] == "clicksentry/alerts"
        assert directive["Dimensions"] == [["service"]]
        assert line["service"] == "clicksentry-alerts"
        values = {m["Name"]: line[m["Name"]] for m in directive["Metrics"]}
        counts.append({n: sum(v) if isinstance(v, list) else v for n, v in values.items()})
    return counts


def test_new_and_repeated_anomalies_count_as_sent_and_duplicates(handler, context, capsys):
    # GIVEN one anomaly delivered twice in a batch, then replayed in a later batch
    anomaly = encode(for_entity(load("anomaly-clicks-high.json"), unique_entity("metrics")))
    shard = new_shard_id()
    capsys.readouterr()

    # WHEN both batches are handled
    handler.lambda_handler(kinesis_event([anomaly, anomaly], shard), context)
    handler.lambda_handler(kinesis_event([anomaly], shard), context)

    # THEN one EMF line per invocation: one alert sent and one duplicate, then one duplicate
    assert emf_counts(capsys) == [
        {"AlertsSent": 1, "AlertsSuppressed": 0, "Duplicates": 1, "PoisonRecords": 0},
        {"AlertsSent": 0, "AlertsSuppressed": 0, "Duplicates": 1, "PoisonRecords": 0},
    ]


def test_a_flood_counts_its_suppressed_windows(handler, context, capsys):
    # GIVEN ten windows of one click flood (one alert, one update, eight within the cooldown)
    entity_id = unique_entity("metrics-flood")
    windows = [for_entity(w, entity_id) for w in load("flood-ad-clicks-high-ten-windows.json")]
    capsys.readouterr()

    # WHEN they arrive in one batch
    handler.lambda_handler(kinesis_event([encode(w) for w in windows], new_shard_id()), context)

    # THEN the invocation counts two messages sent and eight suppressed
    assert emf_counts(capsys) == [
        {"AlertsSent": 2, "AlertsSuppressed": 8, "Duplicates": 0, "PoisonRecords": 0}
    ]


def test_a_poison_record_counts_once_when_it_is_dead_lettered(handler, context, capsys):
    # GIVEN a record that is not JSON, delivered until its attempts run out (3)
    poison = load("invalid-anomaly-records.json")[1]["data"].encode()
    event = kinesis_event([poison], new_shard_id(), partition_key=f"ad/{unique_entity('p')}")
    capsys.readouterr()

    # WHEN the mapping delivers it three times
    for _ in range(3):
        handler.lambda_handler(event, context)

    # THEN only the last invocation, which parked it in the DLQ, counts it
    assert [c["PoisonRecords"] for c in emf_counts(capsys)] == [0, 0, 1]


def test_every_metric_is_on_the_stacks_dashboard():
    # GIVEN the names the CDK app graphs (deploy/infra/clicksentry_infra/spec.py)
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).parents[2] / "deploy" / "infra"))
    from clicksentry_infra import spec

    # THEN they are the metrics the Lambda publishes, in the namespace it publishes them to
    assert spec.ALERT_METRICS == METRIC_NAMES
    assert spec.ALERTS_NAMESPACE == "clicksentry/alerts"
