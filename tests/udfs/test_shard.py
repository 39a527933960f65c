import json

import msgpack
import pytest

from models.detector import WindowDetector
from models.features import FEATURE_NAMES
from models.registry import make_detector
from udfs.scored_window import EMITTED_COLUMNS, scored_row
from udfs.shard import (
    STATE_VERSION,
    UNTRAINED_JOURNAL_BYTES,
    EntityEntry,
    JournalBudget,
    ShardState,
    ShardWindows,
    WindowRow,
    batch_from_bytes,
    batch_to_bytes,
    pending_row_bytes,
    shard_key,
)

W = 10_000
T0 = 1767571200000  # 2026-01-05T00:00:00Z


def features(events: float) -> dict[str, float]:
    f = dict.fromkeys(FEATURE_NAMES, 0.0)
    f.update(events=events, page_views=events, unique_users=events, unique_ips=events)
    return f


@pytest.fixture
def shard_windows():
    return ShardWindows(make_detector("rcf-kda"), "page", window_ms=W, max_gap_windows=3)


def test_shard_keys_are_stable_and_spread():
    keys = {shard_key("page", f"page-{i}", 4) for i in range(200)}
    assert keys == {"page#0", "page#1", "page#2", "page#3"}
    assert shard_key("ad", "ad-0007", 4) == shard_key("ad", "ad-0007", 4)


def test_a_silent_entity_gets_empty_windows_for_at_most_max_gap(shard_windows):
    # GIVEN page-a seen in the first window
    entities: dict[str, EntityEntry] = {}
    shard_windows.close(T0 + W, [WindowRow("page-a", T0, features(50))], entities, final=False)
    # WHEN four more windows pass without it
    synthetic = [
        shard_windows.close(T0 + k * W, [], entities, final=False) for k in range(2, 6)
    ]
    # THEN the next three are scored as empty windows, the fourth is not
    assert [len(r) for r in synthetic] == [1, 1, 1, 0]
    assert all(r[0]["features"]["events"] == 0.0 and r[0]["synthetic"] for r in synthetic[:3])
    assert entities["page-a"].last_seen_ms == T0 + W  # synthetic windows don't count as seen
    assert not shard_windows.active(T0 + 4 * W, entities)


def test_end_of_input_synthesises_nothing(shard_windows):
    entities: dict[str, EntityEntry] = {}
    shard_windows.close(T0 + W, [WindowRow("page-a", T0, features(50))], entities, final=False)
    assert shard_windows.close(T0 + 2 * W, [], entities, final=True) == []


def test_records_follow_the_documented_schema(shard_windows):
    entities: dict[str, EntityEntry] = {}
    (record,) = shard_windows.close(T0 + W, [WindowRow("page-a", T0, features(5))], entities, False)
    documented = {
        "schema_version", "anomaly_id", "entity_type", "entity_id", "window_start",
        "window_end", "window_start_ms", "window_end_ms", "detector", "score", "raw_score",
        "threshold", "is_anomaly", "grade", "confidence", "kind", "features", "explanation",
    }
    assert set(record) - {"synthetic"} == documented
    assert record["anomaly_id"] == "page/page-a/2026-01-05T00:00:10.000Z"
    row = scored_row(dict(record))
    assert len(row) == len(EMITTED_COLUMNS)
    assert json.loads(row[0])["window_end_ms"] == T0 + W
    assert (row[-2], row[-1]) == ("2026-01-05", "00")  # dt, hour partitions


def test_idle_entities_expire_from_the_shard():
    shard = ShardState()
    shard.entities["old"] = EntityEntry(None, T0, T0)
    shard.entities["new"] = EntityEntry(None, T0 + 50 * W, T0)
    assert shard.expire(T0 + 60 * W, ttl_ms=20 * W) == 1
    assert set(shard.entities) == {"new"}


def test_the_shared_detector_round_trips_through_its_flink_state_bytes(shard_windows):
    # GIVEN a detector that has learned some windows
    entities: dict[str, EntityEntry] = {}
    for k in range(30):
        rows = [WindowRow(f"page-{i}", T0 + k * W, features(40 + i + k % 3)) for i in range(8)]
        shard_windows.close(T0 + (k + 1) * W, rows, entities, final=False)
    # WHEN it is written to state as bytes, as the operator does, and restored
    restored = WindowDetector.from_bytes(shard_windows.detector.to_bytes())
    # THEN both score the next window identically
    probe = [(entities["page-1"].state, features(400))]
    assert restored.process(list(probe))[0][0] == shard_windows.detector.process(list(probe))[0][0]


@pytest.mark.parametrize("snapshot_at", [0, 10], ids=["untrained", "at-window-10"])
def test_a_snapshot_plus_its_journal_restores_the_detector_exactly(snapshot_at):
    # GIVEN a shard whose batches are journalled after a snapshot: of the untrained detector
    # (a new shard's) or taken at window 10
    journal, snapshot = [], None

    def record(batch):
        journal.append(batch_to_bytes(batch))

    live = ShardWindows(make_detector("rcf-level"), "page", window_ms=W, max_gap_windows=3,
                        on_batch=record)
    shard = ShardState()
    for k in range(25):
        if k == snapshot_at:
            snapshot, journal[:] = live.detector.to_bytes(), []
        shard.pending[T0 + (k + 1) * W] = [
            WindowRow(f"page-{i}", T0 + k * W, features(40 + i + k % 3 + (k == 20) * 500))
            for i in range(6)
        ]
        live.close_due(shard, T0 + (k + 1) * W, final=False)
    # WHEN a restored shard loads the snapshot and replays the journal
    restored = WindowDetector.from_bytes(snapshot)
    for data in journal:
        restored.process(batch_from_bytes(data))
    # THEN it scores the next windows exactly as the live one does
    states = [entry.state for entry in shard.entities.values()]
    for k in range(25, 30):
        batch = [(state, features(40 + i + k % 3 + (k == 27) * 300)) for i, state in
                 enumerate(states)]
        live_out, restored_out = live.detector.process(batch), restored.process(batch)
        assert restored_out == live_out
        states = [state for _, state in live_out]


def test_shard_state_round_trips_through_its_versioned_bytes(shard_windows):
    shard = ShardState()
    shard.pending[T0 + W] = [WindowRow("page-a", T0, features(5))]
    shard_windows.close_due(shard, T0 + W, final=False)
    shard.pending[T0 + 2 * W] = [WindowRow("page-b", T0 + W, features(7))]
    pending = [pending_row_bytes(T0 + 2 * W, row) for row in shard.pending[T0 + 2 * W]]
    entries, _ = shard.entities.take_changes()
    copy = ShardState.restore(shard.header_to_bytes(4), entries.items(), pending, 4)
    assert (copy.entities, copy.pending, copy.closed_until_ms) == (
        shard.entities, shard.pending, shard.closed_until_ms
    )


class MapStateDouble:
    """What the operator keeps in its ``entity`` map state: the changes written window by window."""

    def __init__(self):
        self.entries: dict[str, bytes] = {}

    def write(self, shard: ShardState) -> tuple[int, int]:
        changed, removed = shard.entities.take_changes()
        self.entries.update(changed)
        for entity_id in removed:
            del self.entries[entity_id]
        return len(changed), len(removed)

    def items(self):  # a map state's iteration order is its own, not the shard's
        return sorted(self.entries.items(), reverse=True)


def varied_window(k: int) -> list[WindowRow]:
    """Window k: entities come and go (some idle past the gap, some past the TTL, then back)."""
    ids = [i for i in range(12) if (i + k) % 5 != 0 and not (i % 4 == 0 and 8 <= k < 14)]
    return [WindowRow(f"page-{i:02}", T0 + k * W, features(30 + i + (k * i) % 7)) for i in ids]


def test_a_shard_restored_from_its_changed_entries_scores_as_the_live_one():
    # GIVEN a live shard whose entities come, go silent, expire and return, written to a map
    # state only as they change, window by window
    def windows():
        return ShardWindows(make_detector("rcf-level"), "page", window_ms=W, max_gap_windows=3,
                            entity_ttl_ms=5 * W)

    live, state, shard, written = windows(), MapStateDouble(), ShardState(), []
    for k in range(20):
        shard.pending[T0 + (k + 1) * W] = varied_window(k)
        live.close_due(shard, T0 + (k + 1) * W, final=False)
        written.append(state.write(shard))
    snapshot = live.detector.to_bytes()
    # WHEN a shard is restored from the header and the map state (in the map's own order)
    restored = ShardState.restore(shard.header_to_bytes(4), state.items(), [], 4)
    twin = windows()
    twin.detector = WindowDetector.from_bytes(snapshot)
    # THEN each window wrote only the entities it scored or dropped, not the whole shard
    assert all(changed + removed <= 12 for changed, removed in written)
    assert sum(removed for _, removed in written) > 0
    # AND the restored shard has the live one's entities in the live one's order
    assert list(restored.entities) == list(shard.entities)
    assert restored.entities == shard.entities
    # AND both score the next windows, synthesised ones included, identically
    scored = []
    for k in range(20, 30):
        for s in (shard, restored):
            s.pending[T0 + (k + 1) * W] = varied_window(k)
        expected = live.close_due(shard, T0 + (k + 1) * W, final=False)
        assert twin.close_due(restored, T0 + (k + 1) * W, final=False) == expected
        scored += expected
    assert sum(r["synthetic"] for r in scored) >= 5


def test_a_shard_in_the_single_value_layout_restores_with_its_order_and_is_written_out():
    # GIVEN a shard saved before entities had map entries: one value with all of them
    shard = ShardState()
    for entity_id, seen in (("page-b", T0), ("page-a", T0 + W), ("page-c", T0 + W)):
        shard.entities[entity_id] = EntityEntry(b"s-" + entity_id.encode(), seen, seen)
    items = [[e, entry.state, entry.last_seen_ms] for e, entry in shard.entities.items()]
    single_value = msgpack.packb([STATE_VERSION, 4, T0 + W, items])
    # WHEN it is restored
    restored = ShardState.restore_single_value(single_value, [], 4)
    # THEN its entities keep their order and state, and all are to be written in the new layout
    assert list(restored.entities) == ["page-b", "page-a", "page-c"]
    assert {e: (x.state, x.last_seen_ms) for e, x in restored.entities.items()} == {
        e: (x.state, x.last_seen_ms) for e, x in shard.entities.items()
    }
    changed, removed = restored.entities.take_changes()
    assert set(changed) == {"page-a", "page-b", "page-c"} and removed == set()
    again = ShardState.restore(restored.header_to_bytes(4), changed.items(), [], 4)
    assert list(again.entities) == ["page-b", "page-a", "page-c"]
    assert again.closed_until_ms == T0 + W


def test_a_shard_keeps_its_entity_bound_and_reports_whom_it_dropped():
    # GIVEN a shard bounded to 3 entities, with 2 seen long ago
    evicted = []
    windows = ShardWindows(make_detector("rcf-kda"), "page", window_ms=W, max_gap_windows=0,
                           max_entities=3, on_evict=lambda *e: evicted.append(e))
    shard = ShardState()
    shard.pending[T0 + W] = [WindowRow(f"old-{i}", T0, features(5)) for i in range(2)]
    windows.close_due(shard, T0 + W, final=False)
    # WHEN a window brings 4 new entities
    shard.pending[T0 + 5 * W] = [WindowRow(f"new-{i}", T0 + 4 * W, features(5)) for i in range(4)]
    records = windows.close_due(shard, T0 + 5 * W, final=False)
    # THEN all 4 are scored, and the shard keeps the 3 most recently seen (ties by id)
    assert len(records) == 4
    assert sorted(shard.entities) == ["new-1", "new-2", "new-3"]
    assert evicted == [("old-0", T0 + W, T0 + 5 * W), ("old-1", T0 + W, T0 + 5 * W),
                       ("new-0", T0 + 5 * W, T0 + 5 * W)]


def journal_run(entities: int, windows: int) -> tuple[list[tuple[int, int | None]], int]:
    """Windows closed by a new shard of ``entities``, journalled under a budget of 30 windows:
    after each window the journal's bytes and the last trained snapshot's; how many snapshots."""
    budget = JournalBudget(max_windows=30)
    sizes, snapshots = [], 0

    def journal(batch):
        nonlocal snapshots
        if budget.snapshot_due(len(batch_to_bytes(batch))):
            budget.snapshot_written(len(live.detector.to_bytes()))
            snapshots += 1
        sizes.append((budget.journal_bytes, budget.model_bytes))

    live = ShardWindows(make_detector("rcf-level"), "page", window_ms=W, max_gap_windows=3,
                        on_batch=journal)
    shard = ShardState()
    for k in range(windows):
        shard.pending[T0 + (k + 1) * W] = [
            WindowRow(f"page-{i:05}", T0 + k * W, features(20 + i % 9)) for i in range(entities)
        ]
        live.close_due(shard, T0 + (k + 1) * W, final=False)
    return sizes, snapshots


def test_a_new_shard_journals_its_first_windows_and_writes_its_model_every_30():
    # GIVEN a new shard of 8 entities (its untrained detector written), 70 windows
    # WHEN its batches are journalled under a budget of 30 windows
    sizes, snapshots = journal_run(8, 70)
    # THEN it journals its first 29 windows and writes its trained model at window 30 and 60
    assert [model for _, model in sizes[:29]] == [None] * 29 and sizes[28][0] > 0, sizes
    assert snapshots == 2 and sizes[29][0] == 0 and sizes[59][0] == 0, sizes
    assert sizes[29][1] > 1_000_000, sizes


def test_a_shard_of_many_entities_writes_its_model_before_the_journal_outweighs_it():
    # GIVEN a new shard of 3,000 entities, 40 windows
    # WHEN its batches are journalled under a budget of 30 windows
    many, many_snapshots = journal_run(3_000, 40)
    # THEN it writes its model every few windows, its journal never above its last model (before
    # the first, the bound of an untrained detector's journal)
    assert many_snapshots >= 10, many
    assert all(journal <= (model or UNTRAINED_JOURNAL_BYTES) for journal, model in many), many
