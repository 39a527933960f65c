"""A savepoint restores in the Python execution mode that took it, and fails loudly in the other.

GIVEN a simulated stream with injected anomalies, and the outputs of the job run over it in one
go (thread mode, the default);
WHEN the job in thread mode is stopped with a savepoint once it has committed scored windows,
and a new submission resumes from it in thread mode;
THEN the two parts' outputs together are the uninterrupted run's, record for record.
And WHEN a savepoint taken in process mode is resumed in thread mode, THEN the restore fails on
the shard key's serializer (the modes key the scoring operator differently) instead of running
on without the operator's state.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
from embedded_job import OUTPUTS, canonical, run_embedded

from flink_jobs.job import LocalOutputs
from localdev.part_files import read_records
from localdev.simulator import SimulationConfig, simulate, write_simulation

pytestmark = pytest.mark.flink

STREAM = SimulationConfig(minutes=6, events_per_second=300, seed=7)
HELPER = Path(__file__).parents[1] / "savepoint_job.py"


def savepoint_job(env, *args: str) -> str:
    """Run one phase of ``tests/savepoint_job.py`` in a process of its own; what it printed
    (the job's log lines among it)."""
    done = subprocess.run([sys.executable, str(HELPER), *args], env=env, capture_output=True,
                          text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout.strip()


def savepoint_of(printed: str) -> str:
    [path] = re.findall(r"^SAVEPOINT (\S+)$", printed, re.MULTILINE)
    return path


@pytest.fixture(scope="module")
def events(tmp_path_factory) -> Path:
    events_file, _ = write_simulation(simulate(STREAM), tmp_path_factory.mktemp("restore"))
    return events_file


def test_a_thread_mode_savepoint_resumes_to_the_uninterrupted_runs_outputs(
    events, tmp_path, subprocess_env
):
    whole = run_embedded(events, tmp_path / "whole", 1)
    first, second = tmp_path / "first", tmp_path / "second"
    savepoint = savepoint_of(savepoint_job(subprocess_env, "stop", str(events), str(first),
                                           "thread"))
    outcome = savepoint_job(subprocess_env, "resume", str(events), str(second), "thread",
                            savepoint)
    assert "FAILED:" not in outcome, outcome
    parts = LocalOutputs(first), LocalOutputs(second)
    for name in OUTPUTS:
        records = [r for part in parts for r in read_records(getattr(part, name))]
        assert canonical(records) == canonical(whole[name]), name
    assert whole["anomalies"]
    # the savepoint was taken mid-stream: both parts scored windows
    assert all(list(read_records(part.scored_windows)) for part in parts)


def test_a_process_mode_savepoint_does_not_restore_in_thread_mode(
    events, tmp_path, subprocess_env
):
    savepoint = savepoint_of(savepoint_job(subprocess_env, "stop", str(events),
                                           str(tmp_path / "p"), "process"))
    outcome = savepoint_job(subprocess_env, "resume", str(events), str(tmp_path / "t"),
                            "thread", savepoint)
    assert "FAILED:" in outcome, outcome
    assert "StateMigrationException: The new key serializer" in outcome
