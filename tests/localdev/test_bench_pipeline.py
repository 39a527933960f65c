"""The bench's stage pipelines on a real Flink minicluster, on a small simulated stream.

GIVEN six simulated minutes (malformed lines and late events included), as one file and dealt
into two files;
WHEN the bench's stages s1–s3 write the job's views to JSON files instead of blackholes, and the
full job runs at parallelism 1 on the one file and at parallelism 2 on the two;
THEN the row counts agree from stage to stage: s1 has one row per input line, the valid ones
among them are the events in s2's page windows, s2 and s3 have the same entity windows, and
those are exactly the job's scored windows that are not synthesised; every scored window has a
latency sample; and the split source at parallelism 2 gives the same outputs as parallelism 1.
(Row counts only: speed is never asserted.)
"""

from __future__ import annotations

import os
from collections import Counter

import pytest

from flink_jobs.config import load_config
from flink_jobs.job import LocalOutputs
from localdev.benchmarks.pipeline import full_job, stage_job
from localdev.benchmarks.stages import STAGES, differing_records, write_split
from localdev.part_files import read_records
from localdev.simulator import SimulationConfig, simulate, write_simulation

pytestmark = pytest.mark.flink

STREAM = SimulationConfig(minutes=6, events_per_second=20, seed=7)  # six of them late


def config(parallelism: int, root):
    return load_config(groups={"job": {"parallelism": str(parallelism),
                                       "checkpoint_interval_ms": "0", "out_dir": str(root)}})


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    os.environ["IS_LOCAL"] = "1"
    root = tmp_path_factory.mktemp("bench")
    simulation = simulate(STREAM)
    events_file, _ = write_simulation(simulation, root / "sim")
    single, split = root / "split-1", root / "split-2"
    write_split(events_file, single, 1)
    write_split(events_file, split, 2)
    events = len(simulation.lines)
    rows = {}
    for stage in STAGES[:-1]:
        stage_job(config(1, root), single, stage, events, sink_path=root / stage.key)
        rows[stage.key] = list(read_records(root / stage.key))
    p1, p2 = LocalOutputs(root / "job-p1"), LocalOutputs(root / "job-p2")
    full_job(config(1, root), single, p1.root, events)
    full_job(config(2, root), split, p2.root, events)
    return {"events": events, "truth": simulation.truth, "rows": rows, "p1": p1, "p2": p2}


def test_s1_has_one_row_per_line_and_its_valid_rows_are_the_windowed_events(runs):
    s1, s2 = runs["rows"]["s1_parse_classify"], runs["rows"]["s2_windows"]
    assert len(s1) == runs["events"]
    valid = sum(1 for row in s1 if row["reason"] is None)
    assert valid == runs["truth"]["valid_events"]
    assert valid == sum(row["events"] for row in s2 if row["entity_type"] == "page")
    reasons = Counter(row["reason"] for row in s1 if row["reason"])
    assert reasons == runs["truth"]["dead_letter_reasons"] and reasons["late"] >= 1


def test_s2_and_s3_hold_the_same_entity_windows(runs):
    s2, s3 = runs["rows"]["s2_windows"], runs["rows"]["s3_sql_features"]
    assert len(s2) == len(s3) > 0
    assert Counter(r["entity_type"] for r in s2) == Counter(r["entity_type"] for r in s3)
    assert sum(r["events"] for r in s2) == sum(r["events"] for r in s3)


def test_s3_windows_are_the_jobs_scored_windows_that_are_not_synthesised(runs):
    s3 = runs["rows"]["s3_sql_features"]
    scored = list(read_records(runs["p1"].scored_windows))
    key = ("entity_type", "entity_id", "window_end_ms")
    assert sorted(tuple(r[k] for k in key) for r in s3) == sorted(
        tuple(r[k] for k in key) for r in scored if not r["synthetic"])


def test_every_scored_window_has_one_latency_sample(runs):
    scored = list(read_records(runs["p1"].scored_windows))
    samples = list(read_records(runs["p1"].window_latencies))
    assert Counter(s["window_end_ms"] for s in samples) == Counter(
        w["window_end_ms"] for w in scored)
    assert all(s["latency_ms"] >= 0 for s in samples)


@pytest.mark.parametrize("output", ["scored_windows", "anomalies", "dead_letters"])
def test_the_split_source_at_parallelism_2_gives_the_same_outputs(runs, output):
    first = list(read_records(getattr(runs["p1"], output)))
    assert first or output == "anomalies"
    assert differing_records(first, read_records(getattr(runs["p2"], output))) == 0
