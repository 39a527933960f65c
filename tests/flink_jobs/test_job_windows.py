"""The job on a real Flink minicluster, on hand-written payloads with UTC-aligned timestamps.

GIVEN tests/events/clicks_windows.jsonl — valid events in three 10 s windows from
2026-01-05T00:00:00Z (one exactly on a window boundary, one out of order within the bound, one
late), bot traffic, and one malformed line of every kind;
WHEN the job runs at parallelism 1 and 2;
THEN every entity window's features equal the pure-Python reference, every malformed or late
line is dead-lettered with its reason, and events in = events windowed + dead letters.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from flink_jobs.config import load_config
from flink_jobs.job import LocalOutputs, create_environment, define_pipeline, local_tables
from localdev.part_files import read_records
from localdev.reference_windows import reference_windows
from localdev.run_summary import run_summary
from models.features import FEATURE_NAMES

EVENTS = Path(__file__).parents[1] / "events" / "clicks_windows.jsonl"
EXPECTED = json.loads((EVENTS.parent / "clicks_windows.expected.json").read_text())
T0 = 1767571200000  # 2026-01-05T00:00:00Z

pytestmark = pytest.mark.flink


def run_job(events_file: Path, root: Path, parallelism: int) -> LocalOutputs:
    os.environ["IS_LOCAL"] = "1"
    config = load_config(
        groups={
            "job": {
                "parallelism": str(parallelism),
                "out_dir": str(root),
                "checkpoint_dir": str(root / "checkpoints"),
            }
        }
    )
    outputs = LocalOutputs(root)
    t_env = create_environment(config, local=True)
    define_pipeline(t_env, config, local_tables(events_file, outputs)).execute().wait()
    return outputs


def expected_windows(lines: list[str], late_ids: set[str]) -> dict[tuple, dict]:
    """Expected features per (entity_type, entity_id, window_end_ms), computed in Python."""
    bad = set(EXPECTED["dead_letters"])
    events = (json.loads(line) for line in lines if line not in bad)
    return reference_windows(e for e in events if e["event_id"] not in late_ids)


@pytest.fixture(scope="module", params=[1, 2], ids=["p1", "p2"])
def job_run(request, tmp_path_factory):
    root = tmp_path_factory.mktemp(f"job-p{request.param}")
    outputs = run_job(EVENTS, root, request.param)
    return {
        "outputs": outputs,
        "windows": list(read_records(outputs.scored_windows)),
        "dead": list(read_records(outputs.dead_letters)),
        "lines": EVENTS.read_text().splitlines(),
    }


def test_features_of_every_window_match_the_python_reference(job_run):
    expected = expected_windows(job_run["lines"], set(EXPECTED["late_event_ids"]))
    real = {
        (w["entity_type"], w["entity_id"], w["window_end_ms"]): w
        for w in job_run["windows"]
        if not w["synthetic"]
    }

    assert set(real) == set(expected)
    for key, features in expected.items():
        got = {name: real[key][name] for name in FEATURE_NAMES}
        assert got == pytest.approx(features), key
    # the event exactly on the 10 s boundary opens the second window, not the first
    assert real[("page", "page-a", T0 + 20_000)]["page_views"] == 1.0
    # the out-of-order (in-bound) event still counts in its own window
    assert real[("ad", "ad-1", T0 + 10_000)]["impressions"] == 3.0


def test_synthesised_windows_are_empty_and_follow_real_ones(job_run):
    seen = {(w["entity_type"], w["entity_id"]) for w in job_run["windows"] if not w["synthetic"]}
    for w in job_run["windows"]:
        if w["synthetic"]:
            assert w["events"] == 0.0
            assert (w["entity_type"], w["entity_id"]) in seen


def test_every_malformed_and_late_line_is_dead_lettered_with_its_reason(job_run):
    got = {d["payload"]: d["reason"] for d in job_run["dead"]}
    late = {
        line: "late"
        for line in job_run["lines"]
        if line not in EXPECTED["dead_letters"]
        and json.loads(line)["event_id"] in EXPECTED["late_event_ids"]
    }

    assert got == {**EXPECTED["dead_letters"], **late}
    assert len(job_run["dead"]) == len(got)  # each exactly once


def test_counts_reconcile(job_run):
    summary = run_summary(len(job_run["lines"]), job_run["dead"], job_run["windows"], None)

    assert summary["reconciled"], summary
    assert summary["dead_letters_total"] == len(EXPECTED["dead_letters"]) + 1


def test_scored_windows_are_hive_partitioned_by_window_end(job_run):
    partitions = {
        p.relative_to(job_run["outputs"].scored_windows).as_posix()
        for p in job_run["outputs"].scored_windows.glob("dt=*/hour=*")
    }

    assert partitions == {"dt=2026-01-05/hour=00"}
