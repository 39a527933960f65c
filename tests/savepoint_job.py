"""Run the embedded job until it has committed output, stop it with a savepoint, or resume one.

Each phase runs in a process of its own, as a new submission of the job does: the planner numbers
the plan's nodes (and so the SQL operators' uids) from a counter of its JVM, so a second job
built in the same process would not find its operators in the savepoint.

    python tests/savepoint_job.py stop EVENTS ROOT MODE     # prints SAVEPOINT <path>
    python tests/savepoint_job.py resume EVENTS ROOT MODE SAVEPOINT

``MODE`` is ``job.python_execution_mode``; outputs go to ``ROOT``. A resumed job that fails
prints ``FAILED:`` and the exception's text (no restarts: a failed restore ends the job).
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

from embedded_job import submit_embedded

from localdev.part_files import read_records

#: Checkpoints this often, so the first scored windows are committed early in the run.
CHECKPOINT_INTERVAL_MS = 1000


def submit(events: Path, root: Path, mode: str, savepoint: str | None = None):
    """Submit the job over ``events`` (outputs under ``root``); returns its result and outputs."""
    job = {"python_execution_mode": mode, "checkpoint_interval_ms": str(CHECKPOINT_INTERVAL_MS)}
    options = {"restart-strategy.type": "none"}
    if savepoint:
        options["execution.savepoint.path"] = savepoint
    return submit_embedded(events, root, 1, {"job": job}, options)


def stop_once_scoring(events: Path, root: Path, mode: str) -> str:
    """Run until some scored windows are committed, then stop with a savepoint; its path."""
    result, outputs = submit(events, root, mode)
    client = result.get_job_client()
    while next(iter(read_records(outputs.scored_windows)), None) is None:
        if client.get_job_status().result().is_globally_terminal_state():
            raise RuntimeError("the job ended before it committed a scored window")
        time.sleep(0.5)
    return client.stop_with_savepoint(False, (root / "savepoints").resolve().as_uri()).result()


def main(argv: list[str]) -> int:
    phase, events, root, mode = argv[0], Path(argv[1]), Path(argv[2]), argv[3]
    if phase == "stop":
        print(f"SAVEPOINT {stop_once_scoring(events, root, mode)}")
        return 0
    result, _ = submit(events, root, mode, savepoint=argv[4])
    try:
        result.wait()
    except Exception as exc:  # the job's failure, as the client reports it
        print(f"FAILED: {exc}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
