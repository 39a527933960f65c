"""What a finished run did: counts that must reconcile, and detection against the labels.

``events_in = events_windowed + dead_letters`` must hold exactly: every payload read is either
counted in its page window or dead-lettered with a reason.

A labelled anomaly is *detected* when at least one flagged window of one of its entities
overlaps its time span (:func:`localdev.truth.overlaps`). Flagged windows that match no labelled
anomaly are false alerts; flagged windows of the drift control's entities are control alerts,
and those a benign event covers benign alerts (both also false alerts). The site's own alerts
(:mod:`models.site`) are expected once per site-wide label (a site spike): the first under each
is a true alert, any other a false one.

>>> truth = {"anomalies": [{"kind": "k", "entities": [{"entity_type": "ad", "entity_id": "a"}],
...          "start_ms": 0, "end_ms": 20000, "expect_alert": True}]}
>>> w = {"entity_type": "ad", "entity_id": "a", "window_end_ms": 10000, "is_anomaly": True,
...      "events": 5.0}
>>> s = detection_summary([w], truth)
>>> s["labelled_detected"], s["false_alerts"], s["by_kind"]["k"]["recall"]
(1, 0, 1.0)
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from typing import Any

from localdev.truth import (
    benign_events,
    covers,
    expected_alerts,
    label_entities,
    overlaps,
    site_event_alerts,
    site_wide,
)


def detection_summary(
    windows: Iterable[Mapping[str, Any]],
    truth: Mapping[str, Any],
    site_alerts: Iterable[Mapping[str, Any]] = (),
) -> dict:
    """Detection of the labelled anomalies by the flagged windows and the site's alerts.

    Per kind: ``detected``, ``flagged_windows``, ``labelled_windows`` (the kind's entity
    windows in its span), ``recall`` (their flagged share) and ``first_alert_delay_s``.
    ``benign_alerts``: per benign event (:func:`localdev.truth.benign_events`), the false alerts
    it covers (:func:`localdev.truth.covers`); they count in ``false_alerts`` too.
    ``site_alerts``: the site's alert records; ``site_events_alerted`` counts the site-wide
    labels with one, out of ``site_events``.
    """
    windows = list(windows)
    site_alerts = list(site_alerts)
    site_events = [a for a in truth.get("anomalies", []) if site_wide(a)]
    expected_site = site_event_alerts(truth, (a["window_end_ms"] for a in site_alerts))
    false_site = [a for a in site_alerts if a["window_end_ms"] not in expected_site]
    expected = expected_alerts(truth)
    controls = [
        a for a in truth.get("anomalies", []) if not a["expect_alert"] and not a.get("benign")
    ]
    flagged = [w for w in windows if w["is_anomaly"]]

    def key(w: Mapping[str, Any]) -> tuple[str, str]:
        return (w["entity_type"], w["entity_id"])

    by_kind: dict[str, dict[str, Any]] = {}
    matched: set[int] = set()
    for label in expected:
        ents = label_entities(label)
        in_span = [
            w for w in windows if key(w) in ents and overlaps(w["window_end_ms"], label)
        ]
        hits = [w for w in in_span if w["is_anomaly"]]
        matched.update(id(w) for w in hits)
        first = min((w["window_end_ms"] for w in hits), default=None)
        by_kind[label["kind"]] = {
            "detected": bool(hits),
            "flagged_windows": len(hits),
            "labelled_windows": len(in_span),
            "recall": round(len(hits) / len(in_span), 3) if in_span else 0.0,
            "first_alert_delay_s": (first - label["start_ms"]) / 1000 if first else None,
        }
    control_entities = set().union(*(label_entities(c) for c in controls)) if controls else set()
    false_flags = [w for w in flagged if id(w) not in matched] + false_site
    alerts = len(flagged) + len(site_alerts)
    return {
        "labelled_anomalies": len(expected),
        "labelled_detected": sum(k["detected"] for k in by_kind.values()),
        "false_alerts": len(false_flags),
        "site_alerts": len(site_alerts),
        "site_events": len(site_events),
        "site_events_alerted": len(expected_site),
        "control_alerts": sum(1 for w in flagged if key(w) in control_entities),
        "benign_alerts": {
            b["kind"]: sum(covers(b, key(w), w["window_end_ms"]) for w in false_flags)
            for b in benign_events(truth)
        },
        "alert_precision": (
            round((len(matched) + len(expected_site)) / alerts, 3) if alerts else None
        ),
        "by_kind": by_kind,
    }


def run_summary(
    events_in: int,
    dead_letters: Iterable[Mapping[str, Any]],
    windows: Iterable[Mapping[str, Any]],
    truth: Mapping[str, Any] | None,
    evictions: Iterable[Mapping[str, Any]] = (),
    model_events: Iterable[Mapping[str, Any]] = (),
    site_alerts: Iterable[Mapping[str, Any]] = (),
) -> dict[str, Any]:
    """The ``run-summary.json`` document of a finished run.

    ``site_alerts`` are the site's own alert records (``anomalies/`` records of the entity
    ``site/all``); ``anomalies`` counts the flagged entity windows.

    ``evictions`` are the entities the job dropped to stay within ``scoring.max_entities``;
    ``model_events`` the published model versions it loaded or rejected (``scoring.model_uri``),
    summarised as the distinct versions of each event in the order they happened.

    >>> s = run_summary(3, [{"reason": "late"}], [{"entity_type": "page", "entity_id": "p",
    ...     "window_end_ms": 10000, "is_anomaly": False, "events": 2.0}], None)
    >>> s["events_in"], s["events_windowed"], s["dead_letters"], s["reconciled"]
    (3, 2, {'late': 1}, True)
    """
    windows, site_alerts = list(windows), list(site_alerts)
    reasons = Counter(d["reason"] for d in dead_letters)
    windowed = int(sum(w["events"] for w in windows if w["entity_type"] == "page"))
    summary: dict[str, Any] = {
        "events_in": events_in,
        "events_windowed": windowed,
        "dead_letters": dict(sorted(reasons.items())),
        "dead_letters_total": sum(reasons.values()),
        "reconciled": events_in == windowed + sum(reasons.values()),
        "windows_scored": len(windows),
        "windows_by_entity_type": dict(sorted(Counter(w["entity_type"] for w in windows).items())),
        "anomalies": sum(1 for w in windows if w["is_anomaly"]),
        "entity_evictions": dict(sorted(Counter(e["entity_type"] for e in evictions).items())),
    }
    events = sorted(model_events, key=lambda e: (e["window_end_ms"], e["event"] != "loaded"))
    if events:
        summary["model_events"] = {
            kind: list(dict.fromkeys(e["version"] for e in events if e["event"] == kind))
            for kind in ("loaded", "rejected")
        }
    if truth is not None:
        summary.update(detection_summary(windows, truth, site_alerts))
    else:
        summary["site_alerts"] = len(site_alerts)
    return summary
