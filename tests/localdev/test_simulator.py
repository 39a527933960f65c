import json
from collections import Counter
from datetime import UTC, datetime

import pytest

from localdev.simulator import MALFORMED_KINDS, SimulationConfig, simulate

SMALL = SimulationConfig(minutes=6, events_per_second=120, seed=11)


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
    start = SMALL.start_ms
    for a in sim.truth["anomalies"]:
        if a["expect_alert"]:
            assert a["start_ms"] >= start + 0.3 * (SMALL.end_ms - start) - 10_000
            assert (a["start_ms"] - start) % 10_000 == 0 and a["end_ms"] > a["start_ms"]
    assert [a["kind"] for a in sim.truth["anomalies"] if not a["expect_alert"]] == ["slow_drift"]


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
