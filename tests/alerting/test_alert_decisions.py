"""Severity and suppression decisions for a flood of anomalous windows (pure logic)."""

import json

from alert_payloads import load

from alerting.anomaly import parse_anomaly
from alerting.severity import Severity, severity_of
from alerting.suppression import Action, decide

COOLDOWN_MS = 300_000


def flood():
    return [
        parse_anomaly(json.dumps(w).encode()) for w in load("flood-ad-clicks-high-ten-windows.json")
    ]


def run(anomalies):
    incident, actions = None, []
    for anomaly in anomalies:
        action, incident = decide(
            incident, anomaly, severity_of(anomaly.score, anomaly.grade), COOLDOWN_MS
        )
        actions.append(action)
    return actions, incident


def test_flood_that_worsens_alerts_once_and_updates_once():
    # GIVEN ten consecutive windows, medium for five and critical for five
    windows = flood()
    assert [severity_of(w.score, w.grade) for w in windows] == [Severity.MEDIUM] * 5 + [
        Severity.CRITICAL
    ] * 5

    # WHEN each window is decided in order
    actions, incident = run(windows)

    # THEN the first alerts, the first critical one updates, the rest are suppressed
    assert (
        actions == [Action.ALERT] + [Action.SUPPRESS] * 4 + [Action.UPDATE] + [Action.SUPPRESS] * 4
    )
    assert (incident.windows, incident.alerted_severity, incident.peak_score) == (
        10,
        Severity.CRITICAL,
        0.86,
    )


def test_windows_further_apart_than_the_cooldown_are_separate_incidents():
    # GIVEN two windows of the same flood 310 s apart
    first, second = flood()[0], flood()[1]
    later = parse_anomaly(
        json.dumps(
            {
                **second.payload,
                "window_start_ms": first.window_start_ms + 310_000,
                "window_end_ms": first.window_end_ms + 310_000,
                "window_start": "2026-01-05T00:17:10.000Z",
                "window_end": "2026-01-05T00:17:20.000Z",
                "anomaly_id": "ad/ad-0007/2026-01-05T00:17:20.000Z",
            }
        ).encode()
    )

    # WHEN both are decided
    actions, incident = run([first, later])

    # THEN both alert, and the incident restarted at the second
    assert actions == [Action.ALERT, Action.ALERT]
    assert incident.windows == 1


def test_late_window_inside_the_incident_does_not_move_it_back():
    # GIVEN a flood whose third window arrives after the fifth
    windows = flood()[:5]
    reordered = [windows[0], windows[1], windows[3], windows[4], windows[2]]

    # WHEN decided in arrival order
    actions, incident = run(reordered)

    # THEN it is one incident ending at the latest window
    assert actions == [Action.ALERT] + [Action.SUPPRESS] * 4
    assert incident.last_window_end_ms == windows[4].window_end_ms
