import json
from collections import Counter
from datetime import UTC, datetime

import pytest

from localdev.simulator import (
    BENIGN_KINDS,
    LAUNCH_SHARE,
    MALFORMED_KINDS,
    RETIRE_MS,
    SPIKE_FACTOR,
    SimulationConfig,
    simulate,
)

SMALL = SimulationConfig(minutes=6, events_per_second=120, seed=11)
#: A label starts this long before its anomaly: the jitter stamps its first events that early.
JITTER = SMALL.max_jitter_ms


@pytest.fixture(scope="module")
def sim():
    return simulate(SMALL)


def test_same_seed_gives_the_same_stream_and_another_seed_does_not(sim):
    assert simulate(SMALL).lines == sim.lines
    assert simulate(SimulationConfig(minutes=6, events_per_second=120, seed=12)).lines != sim.lines


def test_valid_events_follow_the_documented_schema(sim):
    dead = sim.truth["dead_letters"]
    for i, line in enumerate(sim.lines):
        if i in dead:
            continue
        event = json.loads(line)
        assert isinstance(event["event_time"], int)
        assert event["action"] in {"impression", "click", "page_view", "add_to_cart", "purchase"}
        for field in ("event_id", "user_id", "ip", "page"):
            assert isinstance(event[field], str)
        if event["action"] in {"impression", "click"}:
            assert event["ad_id"] and event["campaign"]


def test_popularity_is_skewed_and_ctr_is_a_few_percent(sim):
    events = [json.loads(x) for i, x in enumerate(sim.lines) if i not in sim.truth["dead_letters"]]
    pages = Counter(e["page"] for e in events if e["action"] == "page_view").most_common()
    assert pages[0][1] > 5 * pages[-1][1]
    actions = Counter(e["action"] for e in events)
    assert 0.01 < actions["click"] / actions["impression"] < 0.06


def test_every_malformed_kind_and_late_events_are_labelled(sim):
    reasons = Counter(sim.truth["dead_letters"].values())
    assert set(reasons) == {*MALFORMED_KINDS, "late"}
    assert sum(reasons.values()) == len(sim.truth["dead_letters"])


def test_late_events_are_a_minute_or_more_behind_what_came_before(sim):
    newest = 0
    for i, line in enumerate(sim.lines):
        if sim.truth["dead_letters"].get(i) == "late":
            assert json.loads(line)["event_time"] <= newest - 57_000
        elif i not in sim.truth["dead_letters"]:
            newest = max(newest, json.loads(line)["event_time"])


def test_ordinary_events_are_out_of_order_by_less_than_the_watermark_delay(sim):
    newest = 0
    for i, line in enumerate(sim.lines):
        if i in sim.truth["dead_letters"]:
            continue
        t = json.loads(line)["event_time"]
        assert t > newest - 5_000
        newest = max(newest, t)


def test_anomalies_start_after_the_warm_up_on_window_boundaries(sim):
    # GIVEN labels in event time, WHEN an anomaly starts on a window boundary,
    # THEN its label starts the jitter before it
    start = SMALL.start_ms
    for a in sim.truth["anomalies"]:
        if a["expect_alert"]:
            begins = a["start_ms"] + JITTER
            assert begins >= start + 0.3 * (SMALL.end_ms - start) - 10_000
            assert (begins - start) % 10_000 == 0 and a["end_ms"] > begins
    controls = [a["kind"] for a in sim.truth["anomalies"]
                if not a["expect_alert"] and not a["benign"]]
    assert controls == ["slow_drift"]


def test_click_flood_comes_from_a_few_ips(sim):
    flood = next(a for a in sim.truth["anomalies"] if a["kind"] == "click_flood")
    ad = flood["entities"][0]["entity_id"]
    ips = Counter(
        e["ip"] for e in map(json.loads, (x for i, x in enumerate(sim.lines)
                                          if i not in sim.truth["dead_letters"]))
        if e["ad_id"] == ad and e["action"] == "click"
        and flood["start_ms"] <= e["event_time"] < flood["end_ms"]
    )
    top3 = sum(n for _, n in ips.most_common(3))
    assert top3 / sum(ips.values()) > 0.7


def test_start_must_be_timezone_aware():
    with pytest.raises(ValueError, match="timezone-aware"):
        SimulationConfig(start=datetime(2026, 1, 5))  # noqa: DTZ001
    assert SimulationConfig(start=datetime(2026, 1, 5, tzinfo=UTC)).start_ms == 1767571200000


def valid_events(sim):
    dead = sim.truth["dead_letters"]
    return [json.loads(x) for i, x in enumerate(sim.lines) if i not in dead]


def benign(sim, kind):
    return next(a for a in sim.truth["anomalies"] if a["kind"] == kind)


def test_benign_events_are_labelled_to_raise_no_alert(sim):
    labels = [a for a in sim.truth["anomalies"] if a["benign"]]
    assert [a["kind"] for a in labels] == list(BENIGN_KINDS)
    assert not any(a["expect_alert"] for a in labels)
    assert benign(sim, "site_spike")["entities"] == [{"entity_type": "site", "entity_id": "all"}]
    assert simulate(SimulationConfig(minutes=2, events_per_second=50, benign=False)).truth[
        "anomalies"][-1]["kind"] == "slow_drift"


def test_traffic_follows_the_day_and_is_lower_at_the_weekend():
    def views(start):
        cfg = SimulationConfig(minutes=3, events_per_second=200, start=start, anomalies=False,
                               benign=False, malformed_fraction=0, late_fraction=0)
        return sum(e["action"] == "page_view" for e in valid_events(simulate(cfg)))

    monday_morning, monday_evening = (datetime(2026, 1, 5, h, tzinfo=UTC) for h in (6, 18))
    saturday_evening = datetime(2026, 1, 10, 18, tzinfo=UTC)
    # the daily cycle is ±50 %: 0.5 against 1.5 of the mean
    assert 0.25 < views(monday_morning) / views(monday_evening) < 0.45
    assert 0.65 < views(saturday_evening) / views(monday_evening) < 0.85


def test_a_page_appears_and_pages_retire(sim):
    events = valid_events(sim)
    appears, retires = benign(sim, "entity_appears"), benign(sim, "entity_retires")
    new_page = appears["entities"][0]["entity_id"]
    times = [e["event_time"] for e in events if e["page"] == new_page]
    assert times and appears["start_ms"] <= min(times) < appears["start_ms"] + 2 * JITTER
    for entity in retires["entities"]:
        before = [e for e in events if e["page"] == entity["entity_id"]
                  and e["event_time"] < retires["start_ms"]]
        after = [e for e in events if e["page"] == entity["entity_id"]
                 and e["event_time"] >= retires["start_ms"] + JITTER + RETIRE_MS]
        assert before and not after


def test_a_launched_campaign_takes_its_share_of_impressions_from_launch_on(sim):
    launch = benign(sim, "campaign_launch")
    campaign = launch["entities"][0]["entity_id"]
    impressions = [e for e in valid_events(sim) if e["action"] == "impression"]
    launched = [e for e in impressions if e["campaign"] == campaign]
    assert min(e["event_time"] for e in launched) >= launch["start_ms"]
    after = [e for e in impressions if e["event_time"] >= launch["start_ms"] + 2 * JITTER]
    share = sum(e["campaign"] == campaign for e in after) / len(after)
    assert abs(share - LAUNCH_SHARE) < 0.03


def test_the_site_wide_spike_lifts_every_kind_of_traffic(sim):
    spike = benign(sim, "site_spike")
    events = valid_events(sim)

    def per_second(start, end, action):
        return sum(start <= e["event_time"] < end and e["action"] == action
                   for e in events) / ((end - start) / 1000)

    span = spike["end_ms"] - spike["start_ms"]
    for action in ("page_view", "impression"):
        during = per_second(spike["start_ms"] + 2 * JITTER, spike["end_ms"] - JITTER, action)
        before = per_second(spike["start_ms"] - span, spike["start_ms"], action)
        assert 0.8 * SPIKE_FACTOR < during / before < 1.2 * SPIKE_FACTOR
