"""A flood of entity ids cannot grow the job's state without bound.

GIVEN a page that is always there and, in one 10 s window, 20,000 page ids seen once each;
WHEN the job runs with ``scoring.max_entities = 1000`` (2 shards per entity type: 500 per shard);
THEN every window is still scored, the least recently seen entities are dropped and reported,
the run summary counts them, and at most 1,000 pages are kept.
"""

from __future__ import annotations

import json

import pytest
from embedded_job import run_embedded

from localdev.run_summary import run_summary

pytestmark = pytest.mark.flink

T0 = 1767571200000  # 2026-01-05T00:00:00Z
W = 10_000
FLOOD = 20_000
MAX_ENTITIES = 1_000


def click(n: int, page: str, at_ms: int) -> str:
    return json.dumps({"event_id": f"e{n}", "event_time": at_ms, "user_id": f"u{n % 7}",
                       "ip": f"10.0.0.{n % 5}", "page": page, "action": "page_view"})


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    root = tmp_path_factory.mktemp("bound")
    lines = [click(k, "page-main", T0 + k * 1000) for k in range(60)]  # six windows
    lines[10:10] = [click(1000 + i, f"flood-{i:06d}", T0 + 12_000 + i % 5000)
                    for i in range(FLOOD)]
    events = root / "events.jsonl"
    events.write_text("\n".join(lines) + "\n")
    outputs = run_embedded(events, root, 1, {
        "scoring": {"max_entities": str(MAX_ENTITIES), "shards_per_entity_type": "2"},
    })
    windows, evictions = outputs["scored_windows"], outputs["entity_evictions"]
    return {
        "lines": lines,
        "windows": windows,
        "evictions": evictions,
        "summary": run_summary(len(lines), outputs["dead_letters"], windows, None,
                               evictions),
    }


def test_every_window_is_still_scored(run):
    real = {(w["entity_id"], w["window_end_ms"]) for w in run["windows"] if not w["synthetic"]}
    assert {(f"flood-{i:06d}", T0 + 2 * W) for i in range(FLOOD)} <= real
    assert {("page-main", T0 + k * W) for k in range(1, 7)} <= real
    assert run["summary"]["reconciled"]


def test_the_least_recently_seen_are_dropped_and_counted(run):
    dropped = [e["entity_id"] for e in run["evictions"]]
    kept = MAX_ENTITIES  # each of the 2 shards holds more than its 500 pages
    assert len(dropped) == len(set(dropped)) == FLOOD + 1 - kept
    assert "page-main" not in dropped
    assert all(e["entity_type"] == "page" and e["last_seen_ms"] == T0 + 2 * W
               for e in run["evictions"])
    assert run["summary"]["entity_evictions"] == {"page": FLOOD + 1 - kept}


def test_at_most_the_bound_is_kept_after_the_flood(run):
    # synthesised (empty) windows go to the entities in state, and only to them
    after = [w for w in run["windows"] if w["window_end_ms"] > T0 + 2 * W
             and w["entity_type"] == "page"]
    per_window: dict[int, int] = {}
    for w in after:
        per_window[w["window_end_ms"]] = per_window.get(w["window_end_ms"], 0) + 1
    assert per_window and max(per_window.values()) <= MAX_ENTITIES
