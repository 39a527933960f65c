import json

import pytest

from models.detector import WindowDetector
from models.features import FEATURE_NAMES
from models.registry import make_detector
from udfs.scored_window import SCORED_COLUMNS, scored_row
from udfs.shard import (
    EntityEntry,
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
    assert len(row) == len(SCORED_COLUMNS)
    assert json.loads(row[0])["window_end_ms"] == T0 + W
    assert (row[-2], row[-1]) == ("2026-01-05", "00")  # dt, hour partitions


def test_idle_entities_expire_from_the_shard():
    shard = ShardState()
    shard.entities["old"] = EntityEntry(None, T0)
    shard.entities["new"] = EntityEntry(None, T0 + 50 * W)
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


def test_a_snapshot_plus_its_journal_restores_the_detector_exactly():
    # GIVEN a shard whose batches are journalled after a snapshot taken at window 10
    journal, snapshot = [], None

    def record(batch):
        journal.append(batch_to_bytes(batch))

    live = ShardWindows(make_detector("rcf-level"), "page", window_ms=W, max_gap_windows=3,
                        on_batch=record)
    shard = ShardState()
    for k in range(25):
        if k == 10:
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
    copy = ShardState.restore(shard.entities_to_bytes(4), pending, 4)
    assert (copy.entities, copy.pending, copy.closed_until_ms) == (
        shard.entities, shard.pending, shard.closed_until_ms
    )


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
