"""Oversized and adversarial records on the clicks stream: the job keeps running, dead-letters
each bad record with a reason, is not thrown off by an event 30 minutes in the future, and keeps
its state bounded under a flood of distinct page ids (5,000, ten times the bound)."""

import json
import random
from collections import Counter

import pytest
from fault_runs import simulation

from localdev.producer import MAX_BYTES_PER_RECORD, partition_key

pytestmark = [pytest.mark.faults, pytest.mark.integration, pytest.mark.timeout(1800)]

FUTURE_MS = 30 * 60 * 1000
#: The bad records go in at this share of the stream, the future event at the next.
BAD_AT, FUTURE_AT = 0.35, 0.5
FLOOD_PAGES = 5_000
MAX_ENTITIES = 500
FLOOD_AT = 0.6


def _fits_one_record(prefix: bytes, filler: bytes, suffix: bytes = b"") -> bytes:
    """``prefix + filler… + suffix`` as long as one Kinesis record can be (1 MiB with its key)."""
    room = MAX_BYTES_PER_RECORD - len(partition_key(b"")) - len(prefix) - len(suffix)
    return prefix + (filler * room)[:room] + suffix


def bad_records(neighbour: str) -> dict[str, bytes]:
    """Each adversarial record by what it is; every one starts with its own ASCII marker.

    The invalid UTF-8 one is the valid event ``neighbour`` (so not late) with bytes in its page
    that are no UTF-8.
    """
    nested_depth = 100_000
    event = {"event_id": "adversarial-utf8",
             **{k: v for k, v in json.loads(neighbour).items() if k != "event_id"},
             "page": "PAGE"}
    bad_utf8 = json.dumps(event, separators=(",", ":")).encode().replace(
        b'"PAGE"', b'"p\xc3\x28\xa0\xff"'
    )
    return {
        "1 MiB of non-JSON": _fits_one_record(b"adversarial-oversized ", b"<not json> "),
        "a 1M-digit number": b'{"event_id":"adversarial-bignum","event_time":'
        + b"9" * 1_000_000
        + b',"action":"click"}',
        "deeply nested JSON": b'{"event_id":"adversarial-nested","x":'
        + b"[" * nested_depth
        + b"]" * nested_depth
        + b"}",
        "invalid UTF-8": bad_utf8,
    }


def marker(record: bytes) -> str:
    """The ASCII start that identifies a record's dead letter, whatever became of the rest."""
    return record[:32].decode("ascii")


def future_event(line: str) -> str:
    """A copy of the valid event ``line``, 30 minutes ahead of it (its event_id first)."""
    event = json.loads(line)
    rest = {k: v for k, v in event.items() if k != "event_id"}
    return json.dumps(
        {"event_id": "adversarial-future", **rest, "event_time": event["event_time"] + FUTURE_MS},
        separators=(",", ":"),
    )


def test_bad_records_and_a_future_event_are_dead_lettered_and_change_nothing(
    case_run, failure_free
):
    # GIVEN the simulated stream with four adversarial records and, later, one valid-looking
    # event 30 minutes ahead of the stream
    sim = simulation()
    dead = {int(i) for i in sim.truth["dead_letters"]}
    lines: list[str | bytes] = list(sim.lines)
    bad_at = next(i for i in range(int(len(lines) * BAD_AT), len(lines)) if i not in dead)
    bad = bad_records(lines[bad_at])
    future_at = next(i for i in range(int(len(lines) * FUTURE_AT), len(lines)) if i not in dead)
    future = future_event(lines[future_at])
    later = set(lines[future_at + 1 :])
    lines = [*lines[:bad_at], *bad.values(), *lines[bad_at : future_at + 1], future,
             *lines[future_at + 1 :]]
    markers = [marker(r) for r in bad.values()] + [future[:32]]
    # WHEN it goes through the job
    run = case_run("adversarial")
    producing = run.produce(lines)
    job_id = run.submit()
    producing.result()
    run.flush()
    result = run.result(run.wait_consumed(job_id))
    outputs = result.outputs
    # THEN the job kept running, each bad record has exactly one dead letter with a reason,
    # fewer than 1 % of the events after the future one are late, and the anomalies are the
    # failure-free run's
    assert result.restarts == 0, result.message("the job restarted")
    assert result.state == "RUNNING", result.message("the job stopped")
    found = Counter(
        m for d in outputs.dead_letters for m in markers if (d["payload"] or "").startswith(m)
    )
    assert found == Counter(markers), result.message(f"dead letters per bad record: {found}")
    reasons = {
        m: d["reason"] for d in outputs.dead_letters for m in markers
        if (d["payload"] or "").startswith(m)
    }
    assert all(reasons.values()), result.message(f"reasons: {reasons}")
    late = sum(1 for d in outputs.distinct_dead_letters
               if d["reason"] == "late" and d["payload"] in later)
    assert late < 0.01 * len(later), result.message(
        f"{late} of the {len(later)} events after the future one are late"
    )
    expected = failure_free.outputs
    assert outputs.anomaly_ids == expected.anomaly_ids, result.message(
        f"anomaly ids only here: {sorted(outputs.anomaly_ids - expected.anomaly_ids)}; "
        f"only in the failure-free run: {sorted(expected.anomaly_ids - outputs.anomaly_ids)}"
    )


def flood(at_line: str, count: int) -> list[str]:
    """``count`` page views, each on its own random page, at the event time of ``at_line``."""
    template = json.loads(at_line)
    rng = random.Random(11)
    return [
        json.dumps({**template, "event_id": f"flood-{i}", "action": "page_view",
                    "page": f"flood-{rng.getrandbits(48):012x}"}, separators=(",", ":"))
        for i in range(count)
    ]


def test_a_flood_of_random_page_ids_keeps_the_entity_state_bounded(case_run):
    # GIVEN the job with at most 500 entities per type in its state, and the simulated stream
    # with 5,000 page views on 5,000 random page ids in one window
    sim = simulation()
    dead = {int(i) for i in sim.truth["dead_letters"]}
    at = next(i for i in range(int(len(sim.lines) * FLOOD_AT), len(sim.lines)) if i not in dead)
    flood_time = json.loads(sim.lines[at])["event_time"]
    flooding = flood(sim.lines[at], FLOOD_PAGES)
    lines = [*sim.lines[:at], *flooding, *sim.lines[at:]]
    run = case_run("page-flood", settings={"scoring": {"max_entities": str(MAX_ENTITIES)}})
    # WHEN it goes through the job
    job_id = run.submit()
    run.produce(lines).result()
    run.flush()
    result = run.result(run.wait_consumed(job_id))
    outputs = result.outputs
    # THEN the job kept running and accounted for every event, after the flood's window the
    # state held at most the bound (empty windows are synthesised only for entities in state),
    # and every page no longer in state was evicted and archived as such
    assert result.restarts == 0, result.message("the job restarted")
    assert result.state == "RUNNING", result.message("the job stopped")
    assert outputs.consumed(result.produced, result.flushes), result.message("events lost")
    pages_per_window = Counter(
        w["window_end_ms"] for w in outputs.scored_windows
        if w["entity_type"] == "page" and w["synthetic"]
        and w["window_end_ms"] > flood_time + 10_000
    )
    crowded = {end: n for end, n in pages_per_window.items() if n > MAX_ENTITIES}
    assert crowded == {}, result.message(
        f"windows after the flood with more than {MAX_ENTITIES} pages in state: {crowded}"
    )
    assert pages_per_window, result.message("no page window after the flood's")
    pages_seen = {json.loads(line).get("page") for i, line in enumerate(sim.lines)
                  if i not in dead} - {None} | {json.loads(line)["page"] for line in flooding}
    evicted = {e["entity_id"] for e in outputs.evictions if e["entity_type"] == "page"}
    assert evicted <= pages_seen, result.message("evicted pages that were never seen")
    assert len(evicted) >= len(pages_seen) - MAX_ENTITIES, result.message(
        f"{len(evicted)} pages evicted of {len(pages_seen)} seen, with at most {MAX_ENTITIES} kept"
    )
