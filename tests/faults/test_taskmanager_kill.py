"""``kill -9`` of a TaskManager mid-stream: the job restarts from its last checkpoint and ends
with what the failure-free run wrote."""

import time

import pytest
from fault_runs import simulation

from localdev.flink_cluster import TaskManagerPorts

pytestmark = [pytest.mark.faults, pytest.mark.integration, pytest.mark.timeout(1800)]

#: The second half goes out at this pace, so the kill lands while it is being read.
SECOND_HALF_RATE = 300
KILL_AFTER_S = 4


def test_taskmanager_killed_mid_stream_recovers_the_failure_free_output(
    flink_cluster, case_run, failure_free
):
    # GIVEN the job on two TaskManagers has consumed and checkpointed the first half of the stream
    run = case_run("tm-kill")
    lines = simulation().lines
    half = len(lines) // 2
    producing = run.produce(lines[:half])
    job_id = run.submit()
    producing.result()
    run.wait_until(job_id, lambda o: o.records_out >= half)
    victim = sorted(set().union(*flink_cluster.subtask_hosts(job_id).values()))[0]
    # WHEN the second half is being produced and a TaskManager running the job is killed -9
    producing = run.produce(lines[half:], rate=SECOND_HALF_RATE)
    time.sleep(KILL_AFTER_S)
    flink_cluster.kill_taskmanager(victim)
    flink_cluster.start_taskmanager(TaskManagerPorts.free())
    producing.result()
    run.flush()
    result = run.result(run.wait_consumed(job_id))
    outputs = result.outputs
    # THEN the job restarted, and ended with the failure-free run's anomalies (a repeat only
    # as an exact copy), every scored window archived exactly once, and every event accounted for
    assert result.restarts >= 1, result.message(f"killing {victim} did not restart the job")
    assert result.state == "RUNNING", result.message("the job did not recover")
    result.assert_matches(failure_free)
    assert outputs.records_out == result.produced, result.message(
        "events in != archived raw + dead letters"
    )
