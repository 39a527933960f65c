"""What an alert says: subject limits, the readable body, the attributes."""

import json

from alert_payloads import load

from alerting.anomaly import parse_anomaly
from alerting.config import DEFAULT_DASHBOARD_URL
from alerting.event_text import record_json
from alerting.message import BODY_LIMIT_BYTES, build_message
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


HOSTILE = load("anomaly-hostile-text.json")


def hostile_record(entity_id: str) -> dict:
    record = {**load("anomaly-clicks-high.json"), **HOSTILE}
    del record["comment"], record["entity_id_suffix"]
    record.update(entity_id=entity_id, anomaly_id=f"ad/{entity_id}/{record['window_end']}")
    return record


def test_text_from_events_is_one_line_escaped_and_never_a_link():
    # GIVEN an anomaly whose entity id, kind, detector and feature name carry newlines, control
    # and bidi characters, an address and links
    entity_id = "ad-7" + HOSTILE["entity_id_suffix"]
    record = hostile_record(entity_id)

    # WHEN its alert is built
    message = alert_for(record)

    # THEN every value shows escaped and defanged, in subject, body lines and attributes
    shown_id = "ad-7\\x0d\\x0aBcc: ops[@]evil[.]example http[:]//evil[.]example/login \\u202e<b>"
    kind = "clicks high\\x0ahttp[:]//kind[.]example"
    full_subject = f"[clicksentry CRITICAL] {kind} on ad {shown_id} at 2026-01-05 00:12:10Z"
    assert message.subject == full_subject[:96] + "..."
    assert message.attributes["entity_id"]["StringValue"] == shown_id
    lines = message.body.splitlines()
    assert lines[0] == f"CRITICAL: {kind} on ad {shown_id}"
    assert lines[2] == (
        "What:  clicks_high\\x0ahttp[:]//kind[.]example anomaly, score 0.71 (threshold 0.50, "
        "grade 0.80, confidence 0.90), detector rcf-kda\\x07www[.]detector[.]example"
    )
    assert lines[3] == f"Where: ad {shown_id}"
    assert lines[6] == (
        "  - clicks\\x09visit www[.]evil[.]example HIGH: 340 vs expected 12 (28.3x normal), "
        "strength 0.93"
    )
    # AND the only link is the dashboard's, the entity id percent-encoded inside it
    assert lines[7] == (
        "Dashboard: https://dashboard.clicksentry.invalid/entities/ad/ad-7%0D%0ABcc%3A%20ops%40"
        "evil.example%20http%3A%2F%2Fevil.example%2Flogin%20%E2%80%AE%3Cb%3E"
        "?from=1767571920000&to=1767571930000"
    )
    # AND nothing else in the message is clickable or breaks a line, yet the record is exact
    body = message.body.replace(lines[7], "")
    for text in [message.subject, body, *map(str, message.attributes.values())]:
        assert "://" not in text and "evil.example" not in text and "@evil" not in text
        assert all(line.isprintable() for line in text.splitlines())
    assert "\r" not in message.body and "\u202e" not in message.body
    assert json.loads(message.body.split("Anomaly record (JSON):\n", 1)[1]) == record


def test_oversized_record_is_cut_below_the_body_limit_with_a_note():
    # GIVEN an anomaly whose features carry 600 000 bytes and whose explanation has 50 features
    record = load("anomaly-clicks-high.json")
    record["features"]["padding"] = "x" * 600_000
    record["explanation"] = {
        f"feature_{n:02d}": {"DIRECTION": "HIGH", "STRENGTH": n / 100, "value": 2, "expected": 1}
        for n in range(50)
    }

    # WHEN its alert is built
    message = alert_for(record)

    # THEN the body stays within the documented cap and says the record was cut
    body = message.body.encode("utf-8")
    assert len(body) <= BODY_LIMIT_BYTES == 200_000
    full = len(record_json(record))
    heading = next(line for line in message.body.splitlines() if line.startswith("Anomaly record"))
    assert heading == (
        f"Anomaly record (JSON, TRUNCATED: the first {heading.split()[6]} of {full} bytes; "
        "the complete record is on the anomalies stream):"
    )
    assert int(heading.split()[6]) > 150_000
    assert message.body.endswith("\n[... truncated]")
    # AND the readable part lists the 20 strongest features, then how many more there are
    assert "  - feature_49 HIGH: 2 vs expected 1 (2.0x normal), strength 0.49" in message.body
    assert "  - feature_29 HIGH" not in message.body
    assert "  - ... and 30 weaker features" in message.body


def test_body_names_the_forest_that_decided_and_what_the_online_detector_said():
    # GIVEN a window a retrained forest escalated (scoring.model_uri set in the job)
    record = load("anomaly-decided-by-forest.json")

    # WHEN its alert is built
    lines = alert_for(record).body.splitlines()

    # THEN the line after "What" names the version, its probability and threshold, and that the
    # online detector alone would not have flagged the window
    assert lines[3] == (
        "Decided by: forest click-forest/20261130T123033Z, probability 0.93 (threshold 0.37); "
        "the online detector alone would not have flagged it"
    )
    assert lines[4] == "Where: ad ad-0007"
    # AND without a model the line is absent
    plain = alert_for(load("anomaly-clicks-high.json")).body
    assert "Decided by" not in plain


def test_body_names_only_the_material_moves_and_their_significance():
    # GIVEN the default detector's record of a broken ad (the job's output on seed 41): flagged on
    # a run of windows without clicks, explained by the one feature that moved materially
    record = load("anomaly-broken-ad-run.json")
    assert list(record["explanation"]) == ["ctr"]

    # WHEN its alert is built
    body = alert_for(record).body.split("Anomaly record")[0]

    # THEN the body gives the significance and lists ctr alone, no feature that did not move
    assert "Significance: p = 1.2e-06 (chance of a move this large at this volume" in body
    movements = [line for line in body.splitlines() if line.startswith("  - ")]
    assert movements == ["  - ctr LOW: 0 vs expected 0.0238 (0.0x normal), strength 1.00"]


def test_the_sites_own_alert_reads_as_the_site():
    # GIVEN the site's alert for a site-wide spike, as `clicksentry run` wrote it (seed 7)
    record = load("anomaly-site-events-high.json")

    # WHEN its alert is built
    message = alert_for(record)

    # THEN it names the site and the pages' events against their usual
    lines = message.body.splitlines()
    assert lines[0] == "CRITICAL: events high on site all"
    assert lines[4] == "Where: site all"
    assert lines[7] == "  - events HIGH: 7.93e+03 vs expected 3.44e+03 (2.3x normal), strength 1.00"
