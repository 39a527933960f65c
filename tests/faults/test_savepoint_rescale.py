"""Stop with a savepoint, restore at parallelism 2, stop with a savepoint again, restore at 1:
the job ends with the failure-free run's anomalies."""

import pytest
from fault_runs import simulation

pytestmark = [pytest.mark.faults, pytest.mark.integration, pytest.mark.timeout(1800)]

#: At parallelism 1 one source subtask reads both shards; a steady pace keeps their reads
#: interleaved within the watermark delay.
LAST_THIRD_RATE = 200


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
    run.flush()
    result = run.result(run.wait_consumed(third))
    outputs, expected = result.outputs, failure_free.outputs
    # THEN the anomalies, the archived windows and the counts are the failure-free run's
    checkpoints = flink_cluster.checkpoints(third)
    assert checkpoints["latest"]["restored"] is not None, result.message("nothing restored")
    assert result.restarts == 0, result.message("a job restarted")
    assert outputs.anomaly_ids == expected.anomaly_ids, result.message(
        f"anomaly ids only here: {sorted(outputs.anomaly_ids - expected.anomaly_ids)}; "
        f"only in the failure-free run: {sorted(expected.anomaly_ids - outputs.anomaly_ids)}"
    )
    assert outputs.inexact_duplicates() == [], result.message("repeats that differ")
    twice = {w: n for w, n in outputs.window_counts.items() if n > 1}
    assert twice == {}, result.message(f"{len(twice)} windows archived more than once")
    assert set(outputs.window_counts) == set(expected.window_counts), result.message(
        f"windows only here: {len(set(outputs.window_counts) - set(expected.window_counts))}, "
        f"only in the failure-free run: "
        f"{len(set(expected.window_counts) - set(outputs.window_counts))}"
    )
    dead = len(outputs.distinct_dead_letters)
    assert outputs.windowed + dead == result.produced - result.flushes, result.message(
        "events in != windowed + dead letters"
    )
