"""The archive the job writes: Parquet with Snappy, a structured explanation, few objects.

GIVEN six simulated minutes with all four anomaly kinds (seed 7);
WHEN the job runs at parallelism 2 with one archive writer and a checkpoint every 5 s;
THEN scored windows and raw events are Snappy-compressed Parquet files; each scored window's
explanation lists the features of its record's explanation, in order, as structured entries;
each raw event holds its payload and the payload's fields as columns; one writer wrote every
file, at most one per partition per checkpoint.
"""

from __future__ import annotations

import json
import re
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from embedded_job import run_embedded

from flink_jobs.events import FIELDS
from flink_jobs.job import LocalOutputs
from localdev.part_files import read_records
from localdev.simulator import SimulationConfig, simulate, write_simulation

pytestmark = pytest.mark.flink

STREAM = SimulationConfig(minutes=6, events_per_second=300, seed=7,
                          start=datetime(2026, 1, 5, tzinfo=UTC))
CHECKPOINT_MS = 5000
#: part-<uuid>-<subtask>-<count>, Flink's name for a committed part file.
PART_FILE = re.compile(r"^part-[0-9a-f-]{36}-(?P<subtask>\d+)-(?P<count>\d+)$")


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    root = tmp_path_factory.mktemp("archive")
    events_file, _ = write_simulation(simulate(STREAM), root / "sim")
    started = time.monotonic()
    run_embedded(events_file, root, parallelism=2, groups={
        "job": {"checkpoint_interval_ms": str(CHECKPOINT_MS)},
        "archive": {"writers": "1"},
    })
    return {"outputs": LocalOutputs(root), "seconds": time.monotonic() - started}


def part_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("part-*") if p.is_file())


@pytest.mark.parametrize("folder", ["scored_windows", "raw_events"])
def test_the_archive_is_snappy_parquet(run, folder):
    files = part_files(getattr(run["outputs"], folder))
    assert files
    for path in files:
        meta = pq.ParquetFile(path).metadata
        columns = [meta.row_group(g).column(c) for g in range(meta.num_row_groups)
                   for c in range(meta.num_columns)]
        assert {c.compression for c in columns} == {"SNAPPY"}, path


def test_the_explanation_is_structured_and_is_the_records(run):
    windows = list(read_records(run["outputs"].scored_windows))
    flagged = [w for w in windows if w["is_anomaly"]]
    assert len(flagged) >= 4
    for window in windows:
        record = json.loads(window["record"])
        assert window["explanation"] == [
            {"feature": name, "direction": part["DIRECTION"], "strength": part["STRENGTH"],
             "attribution_score": part["ATTRIBUTION_SCORE"], "value": part["value"],
             "expected": part["expected"]}
            for name, part in record["explanation"].items()
        ]
    assert all(w["explanation"] for w in flagged)


def test_raw_events_hold_the_payload_and_its_fields(run):
    events = list(read_records(run["outputs"].raw_events))
    assert len(events) > 100_000
    for event in events:
        payload = json.loads(event["payload"])
        assert {f.name: event[f.name] for f in FIELDS} == {
            f.name: payload.get(f.name) for f in FIELDS
        }


@pytest.mark.parametrize("folder", ["scored_windows", "raw_events"])
def test_one_writer_commits_at_most_one_object_per_partition_per_checkpoint(run, folder):
    files = part_files(getattr(run["outputs"], folder))
    names = [PART_FILE.match(p.name) for p in files]
    assert all(names), [p.name for p in files]
    # the job ran at parallelism 2; the archive had one writer, subtask 0
    assert {m["subtask"] for m in names} == {"0"}
    checkpoints = run["seconds"] * 1000 / CHECKPOINT_MS + 1  # the last, at the end of input
    per_partition = Counter(p.parent for p in files)
    assert max(per_partition.values()) <= checkpoints
    assert len(files) > len(per_partition)  # files did roll at checkpoints
