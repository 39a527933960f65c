"""Stop with a savepoint, restore at parallelism 2, stop with a savepoint again, restore at 1:
the job ends with the failure-free run's anomalies."""

import pytest
from fault_runs import simulation

pytestmark = [pytest.mark.faults, pytest.mark.integration, pytest.mark.timeout(1800)]

#: At parallelism 1 one source subtask reads both shards, so an event is late once the other
#: shard's reads run more than the watermark delay (5 s) of event time ahead (docs/kinesis.md).
#: The simulation's ordinary events are up to 2.8 s out of order, which leaves 2.2 s. At 200
#: events/s (ten times the simulated pace) that was 0.22 s of wall time, about one of the
#: consumer's 200 ms polls: a loaded CI machine once dead-lettered two more events than the
#: failure-free run. At 40/s it is 1.1 s, five polls.
LAST_THIRD_RATE = 40


def test_savepoint_restores_at_parallelism_2_then_1_keep_the_failure_free_anomalies(
    flink_cluster, case_run, failure_free
):
    # GIVEN the job at parallelism 2 has consumed the first third of the stream
    run = case_run("rescale")
    lines = simulation().lines
    thirds = [lines[: len(lines) // 3], lines[len(lines) // 3 : 2 * len(lines) // 3],
              lines[2 * len(lines) // 3 :]]
    producing = run.produce(thirds[0])
    first = run.submit()
    producing.result()
    run.wait_until(first, lambda o: o.records_out >= len(thirds[0]))
    # WHEN it stops with a savepoint and is restored at parallelism 2 for the second third,
    # stops with a savepoint again and is restored at parallelism 1 for the rest
    second = run.submit(savepoint=run.stop_with_savepoint(first))
    run.produce(thirds[1]).result()
    run.wait_until(second, lambda o: o.records_out >= len(thirds[0]) + len(thirds[1]))
    third = run.submit(savepoint=run.stop_with_savepoint(second), parallelism="1")
    run.produce(thirds[2], rate=LAST_THIRD_RATE).result()
    # Every event read before the flush: one subtask reads both shards, and a flush event read
    # on one shard before the other's last events makes them late (a CI run once
    # dead-lettered the stream's last two events so).
    run.wait_until(third, lambda o: o.records_out >= len(lines))
    run.flush()
    result = run.result(run.wait_consumed(third))
    # THEN the dead letters, the anomalies, the archived windows and the counts are the
    # failure-free run's
    checkpoints = flink_cluster.checkpoints(third)
    assert checkpoints["latest"]["restored"] is not None, result.message("nothing restored")
    assert result.restarts == 0, result.message("a job restarted")
    assert result.outputs.dead_letter_reasons == failure_free.outputs.dead_letter_reasons, (
        result.message("dead letters differ from the failure-free run's")
    )
    result.assert_matches(failure_free)
