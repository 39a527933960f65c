"""The same input gives the same output: run to run, and at parallelism 1 and 2.

GIVEN one simulated stream with injected anomalies, malformed lines and late events;
WHEN the embedded job runs on it twice at parallelism 1, once at parallelism 2 and once with its
Python operators in process mode instead of thread mode;
THEN the scored windows, the anomalies and the dead letters are identical, record for record
(no field of them is volatile: every value derives from event time and the input).

And one timestamp cannot blind the job: the same stream with one copy of an event moved 30
minutes ahead gives the same windows and anomalies, and one more dead letter.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from embedded_job import OUTPUTS, canonical, run_embedded

from localdev.simulator import SimulationConfig, simulate, write_simulation

pytestmark = pytest.mark.flink

STREAM = SimulationConfig(minutes=6, events_per_second=300, seed=7)
FUTURE_AT_LINE = 20_000


def run_job(
    events_file: Path, root: Path, parallelism: int, mode: str = "thread"
) -> dict[str, list[str]]:
    outputs = run_embedded(events_file, root, parallelism, {"job": {"python_execution_mode": mode}})
    return {name: canonical(outputs[name]) for name in OUTPUTS}


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("determinism")
    events_file, _ = write_simulation(simulate(STREAM), root / "sim")
    lines = events_file.read_text().splitlines()
    event = json.loads(lines[FUTURE_AT_LINE])
    future = json.dumps({**event, "event_time": event["event_time"] + 30 * 60_000})
    future_file = root / "future.jsonl"
    future_file.write_text("\n".join([*lines[:FUTURE_AT_LINE], future,
                                      *lines[FUTURE_AT_LINE:]]) + "\n")
    runs = {
        label: run_job(events_file, root / label, parallelism, mode)
        for label, parallelism, mode in (
            ("p1-first", 1, "thread"), ("p1-second", 1, "thread"), ("p2", 2, "thread"),
            ("p1-process", 1, "process"),
        )
    }
    runs["future"] = run_job(future_file, root / "future", 1)
    runs["future"]["inserted"] = [future]
    return runs


def test_the_runs_produced_work_to_compare(runs):
    first = runs["p1-first"]
    assert len(first["scored_windows"]) > 1000
    assert first["anomalies"] and first["dead_letters"]
    assert any('"synthetic": true' in w for w in first["scored_windows"])
    assert any('"reason": "late"' in d for d in first["dead_letters"])
    assert any(json.loads(w)["explanation"] for w in first["scored_windows"])


@pytest.mark.parametrize("output", ["scored_windows", "anomalies", "dead_letters"])
@pytest.mark.parametrize("other", ["p1-second", "p2", "p1-process"])
def test_outputs_are_identical_run_to_run_across_parallelism_and_execution_mode(
    runs, output, other
):
    first, second = runs["p1-first"][output], runs[other][output]
    assert len(first) == len(second)
    assert first == second, next(
        (a, b) for a, b in zip(first, second, strict=True) if a != b
    )


def test_one_event_thirty_minutes_ahead_changes_nothing_but_its_own_dead_letter(runs):
    base, future = runs["p1-first"], runs["future"]
    assert future["scored_windows"] == base["scored_windows"]
    assert future["anomalies"] == base["anomalies"]
    extra = [json.loads(d) for d in future["dead_letters"] if d not in base["dead_letters"]]
    assert [(d["payload"], d["reason"]) for d in extra] == [
        (future["inserted"][0], "event_time_out_of_range")
    ]
    assert len(future["dead_letters"]) == len(base["dead_letters"]) + 1
