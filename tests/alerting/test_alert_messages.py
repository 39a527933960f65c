"""What an alert says: subject limits, the readable body, the attributes."""

import json

from alert_payloads import load

from alerting.anomaly import parse_anomaly
from alerting.config import DEFAULT_DASHBOARD_URL
from alerting.message import build_message
from alerting.severity import Severity, severity_of
from alerting.suppression import Action, decide


def alert_for(record):
    anomaly = parse_anomaly(json.dumps(record).encode())
    severity = severity_of(anomaly.score, anomaly.grade)
    action, incident = decide(None, anomaly, severity, cooldown_ms=300_000)
    return build_message(anomaly, severity, action, incident, DEFAULT_DASHBOARD_URL)


def test_subject_stays_printable_ascii_under_100_characters_for_any_entity_id():
    # GIVEN a page whose id is long and not ASCII
    record = load("anomaly-purchases-low.json")
    entity_id = "checkout-\u00fcberweisung-" + "x" * 150
    record.update(entity_id=entity_id, anomaly_id=f"page/{entity_id}/{record['window_end']}")

    # WHEN its alert is built
    message = alert_for(record)

    # THEN the subject is cut below 100 printable ASCII characters; the body keeps the real id
    assert len(message.subject) < 100
    assert message.subject.isascii() and message.subject.isprintable()
    assert message.subject.endswith("...")
    assert f"Where: page {entity_id}" in message.body
    assert message.attributes["entity_id"]["StringValue"] == entity_id


def test_body_reads_what_where_when_how_far_and_links_the_dashboard():
    # GIVEN the documented click flood
    record = load("anomaly-clicks-high.json")

    # WHEN its alert is built
    message = alert_for(record)

    # THEN a person reads it at a glance, and the full record follows as JSON
    lines = message.body.splitlines()
    assert lines[0] == "CRITICAL: clicks high on ad ad-0007"
    assert lines[2].startswith("What:  clicks_high anomaly, score 0.71 (threshold 0.50")
    assert lines[3] == "Where: ad ad-0007"
    assert (
        lines[4] == "When:  2026-01-05T00:12:00.000Z to 2026-01-05T00:12:10.000Z (UTC, 10 s window)"
    )
    assert lines[5:8] == [
        "How far from normal:",
        "  - clicks HIGH: 340 vs expected 12 (28.3x normal), strength 0.93",
        "  - ctr HIGH: 0.386 vs expected 0.021 (18.4x normal), strength 0.88",
    ]
    assert lines[8] == (
        "Dashboard: https://dashboard.clicksentry.invalid/entities/ad/ad-0007"
        "?from=1767571920000&to=1767571930000"
    )
    assert json.loads(message.body.split("Anomaly record (JSON):\n", 1)[1]) == record
    assert message.attributes["severity"]["StringValue"] == Severity.CRITICAL.label
    assert message.attributes["alert_type"]["StringValue"] == Action.ALERT.value
