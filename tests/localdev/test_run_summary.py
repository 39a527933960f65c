from localdev.run_summary import detection_summary, run_summary

T0 = 1767571200000
LABELS = {
    "anomalies": [
        {"kind": "click_flood", "entities": [{"entity_type": "ad", "entity_id": "ad-1"}],
         "start_ms": T0 + 60_000, "end_ms": T0 + 90_000, "expect_alert": True},
        {"kind": "page_outage", "entities": [{"entity_type": "page", "entity_id": "p-2"}],
         "start_ms": T0 + 200_000, "end_ms": T0 + 230_000, "expect_alert": True},
        {"kind": "slow_drift", "entities": [{"entity_type": "page", "entity_id": "p-5"}],
         "start_ms": T0, "end_ms": T0 + 300_000, "expect_alert": False},
    ]
}


def window(entity_type, entity_id, end_s, flagged, events=10.0):
    return {"entity_type": entity_type, "entity_id": entity_id,
            "window_end_ms": T0 + end_s * 1000, "is_anomaly": flagged, "events": events}


def test_a_flag_inside_a_labelled_span_detects_it_and_others_are_false_alerts():
    windows = [
        window("ad", "ad-1", 70, True),     # inside the flood
        window("ad", "ad-1", 80, False),
        window("ad", "ad-1", 200, True),    # the same ad, long after: false alert
        window("page", "p-5", 150, True),   # the drift control
        window("page", "p-2", 210, False),  # the outage, missed
    ]
    s = detection_summary(windows, LABELS)
    assert (s["labelled_anomalies"], s["labelled_detected"]) == (2, 1)
    assert s["by_kind"]["click_flood"]["detected"]
    assert not s["by_kind"]["page_outage"]["detected"]
    assert (s["false_alerts"], s["control_alerts"]) == (2, 1)
    assert s["by_kind"]["click_flood"]["first_alert_delay_s"] == 10.0


def test_the_window_right_after_the_span_still_counts():
    s = detection_summary([window("ad", "ad-1", 100, True)], LABELS)
    assert s["labelled_detected"] == 1 and s["false_alerts"] == 0


def test_counts_reconcile_only_when_nothing_is_lost():
    windows = [window("page", "p", 10, False, events=7), window("ad", "a", 10, False, events=3)]
    ok = run_summary(9, [{"reason": "late"}, {"reason": "bad_json"}], windows, None)
    lost = run_summary(10, [{"reason": "late"}, {"reason": "bad_json"}], windows, None)
    assert ok["reconciled"] and ok["events_windowed"] == 7
    assert not lost["reconciled"]


def test_false_alerts_under_a_benign_event_are_counted_for_it():
    # GIVEN a site-wide spike (it covers every entity) and a launched campaign, both benign
    labels = {"anomalies": [
        *LABELS["anomalies"],
        {"kind": "site_spike", "entities": [{"entity_type": "site", "entity_id": "all"}],
         "start_ms": T0 + 100_000, "end_ms": T0 + 130_000, "expect_alert": False,
         "benign": True},
        {"kind": "campaign_launch", "entities": [{"entity_type": "campaign", "entity_id": "c-9"}],
         "start_ms": T0 + 250_000, "end_ms": T0 + 300_000, "expect_alert": False,
         "benign": True},
    ]}
    # WHEN two entities are flagged in the spike, the launched campaign once, the flood once
    windows = [
        window("ad", "ad-1", 70, True),
        window("page", "p-7", 110, True),
        window("ad", "ad-3", 120, True),
        window("campaign", "c-9", 260, True),
        window("campaign", "c-1", 260, True),  # under no label
    ]
    s = detection_summary(windows, labels)
    # THEN each benign event counts the false alerts it covers; all of them are false alerts
    assert s["benign_alerts"] == {"site_spike": 2, "campaign_launch": 1}
    assert (s["false_alerts"], s["control_alerts"], s["alert_precision"]) == (4, 0, 0.2)


def test_the_sites_first_alert_under_a_site_wide_event_is_expected_and_others_are_false():
    # GIVEN a site-wide spike
    spike = {"kind": "site_spike", "entities": [{"entity_type": "site", "entity_id": "all"}],
             "start_ms": T0 + 100_000, "end_ms": T0 + 130_000, "expect_alert": False,
             "benign": True}
    labels = {"anomalies": [*LABELS["anomalies"], spike]}
    # WHEN the site is alerted twice in it and once long after, and the flood once
    site = [{**window("site", "all", end_s, True), "anomaly_id": f"site/all/{end_s}"}
            for end_s in (110, 120, 250)]
    s = detection_summary([window("ad", "ad-1", 70, True)], labels, site)
    # THEN the spike's first site alert is right; the other two are false alerts, one under it
    assert (s["site_alerts"], s["site_events"], s["site_events_alerted"]) == (3, 1, 1)
    assert s["false_alerts"] == 2 and s["benign_alerts"] == {"site_spike": 1}
    assert s["alert_precision"] == 0.5
    # AND without site alerts the site-wide event is not alerted
    assert detection_summary([], labels)["site_events_alerted"] == 0
