"""What the bench measures, without Flink: its stages, the split input, output comparison.

GIVEN the stage definitions, an events file and the outputs of two runs;
THEN the stages are cumulative cuts of the job's graph ending with the job itself, the split
deals every line exactly once and keeps each file in arrival order, the warm-up input is the
stream's first lines, two runs compare equal exactly when they hold the same records, and a
job's CPU time includes its reaped children.
"""

from __future__ import annotations

import inspect
import os
import subprocess
import sys

from flink_jobs import job
from localdev.benchmarks.pipeline import process_cpu_seconds
from localdev.benchmarks.stages import (
    STAGES,
    differing_records,
    latency_summary,
    write_prefix,
    write_split,
)


def test_stages_cut_the_job_graph_in_pipeline_order_and_end_with_the_full_job():
    # GIVEN the views define_features registers, in the order it registers them
    source = inspect.getsource(job.define_features)
    views = [stage.view for stage in STAGES[:-1]]
    # THEN every stage but the last names one of them, in pipeline order; the last is the job
    positions = [source.index(f'"{view}"') for view in views]
    assert positions == sorted(positions)
    assert STAGES[-1].view is None
    assert len({stage.key for stage in STAGES}) == len(STAGES)
    assert [stage.key[:2] for stage in STAGES] == ["s1", "s2", "s3", "s4"]


def test_the_split_deals_every_line_once_and_keeps_arrival_order(tmp_path):
    # GIVEN seven lines
    lines = [f'{{"n": {i}}}\n' for i in range(7)]
    events = tmp_path / "events.jsonl"
    events.write_text("".join(lines))
    # WHEN they are split three ways
    paths = write_split(events, tmp_path / "split", 3)
    # THEN each file holds every third line, in order, and together they hold them all
    parts = [p.read_text().splitlines(keepends=True) for p in paths]
    assert parts == [lines[0::3], lines[1::3], lines[2::3]]
    assert sorted(line for part in parts for line in part) == sorted(lines)
    # and a one-way split is the file itself
    [single] = write_split(events, tmp_path / "single", 1)
    assert single.read_text() == events.read_text()


def test_the_warm_up_input_is_the_start_of_the_stream(tmp_path):
    # GIVEN five lines
    lines = [f'{{"n": {i}}}\n' for i in range(5)]
    events = tmp_path / "events.jsonl"
    events.write_text("".join(lines))
    # WHEN the first three, then more than there are, are written as the warm-up input
    written = write_prefix(events, tmp_path / "warmup" / "events.jsonl", 3)
    # THEN the warm-up holds the first three lines in order
    assert written == 3
    assert (tmp_path / "warmup" / "events.jsonl").read_text() == "".join(lines[:3])
    assert write_prefix(events, tmp_path / "all.jsonl", 10) == 5
    assert (tmp_path / "all.jsonl").read_text() == events.read_text()


def test_runs_compare_equal_only_with_the_same_records():
    a = [{"entity_id": "p1", "score": 0.5}, {"entity_id": "p2", "score": 0.1}]
    assert differing_records(a, list(reversed(a))) == 0
    assert differing_records(a, a[:1]) == 1
    assert differing_records(a, [a[0], {"entity_id": "p2", "score": 0.2}]) == 2
    assert differing_records(a + a[:1], a + a[1:]) == 2  # duplicates count


def test_latency_summary_over_samples():
    samples = [{"window_end_ms": 10_000, "latency_ms": ms} for ms in (900, 100, 300, 200)]
    assert latency_summary(samples) == {"windows": 4, "p50_ms": 200, "p99_ms": 900}


def test_cpu_seconds_count_the_children_a_process_has_reaped():
    # GIVEN this process's CPU seconds
    before = process_cpu_seconds(os.getpid())
    # WHEN a child spins for about 0.4 CPU seconds and is waited for (as the JVM reaps its
    # Python workers)
    spin = "import time\nt = time.process_time()\nwhile time.process_time() - t < 0.4: pass"
    subprocess.run([sys.executable, "-c", spin], check=True)
    # THEN the count grows by at least the child's time
    assert process_cpu_seconds(os.getpid()) - before >= 0.4
    # and a process that does not exist has none
    assert process_cpu_seconds(2**22 + 1) is None
