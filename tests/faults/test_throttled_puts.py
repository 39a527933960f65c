"""Throttled PutRecords on the anomalies and dead-letter streams: the job's sinks retry the
rejected entries, the job never restarts, and nothing is lost."""

import pytest
from fault_runs import run_through, simulation
from throttling_proxy import ThrottlingProxy

pytestmark = [pytest.mark.faults, pytest.mark.integration, pytest.mark.timeout(1800)]

THROTTLED_SHARE = 0.3


def test_throttled_puts_are_retried_without_restart_or_loss(aws_stack, case_run, failure_free):
    # GIVEN the job talks to Kinesis through a proxy that throttles 30 % of PutRecords entries
    with ThrottlingProxy(aws_stack.kinesis_endpoint, THROTTLED_SHARE, seed=9) as proxy:
        run = case_run("throttled", kinesis_endpoint=proxy.url)
        # WHEN the simulated stream goes through the job
        result = run_through(run, simulation().lines)
    outputs, expected = result.outputs, failure_free.outputs
    # THEN entries were throttled, the job never restarted, and its output is the failure-free
    # run's: the same anomalies, the same dead letters, the same archived windows
    assert proxy.throttled > 0, result.message(f"nothing throttled ({proxy.entries} entries)")
    assert result.restarts == 0, result.message("the job restarted")
    assert result.failures == {}, result.message("the job failed")
    assert result.state == "RUNNING", result.message("the job stopped")
    assert outputs.anomaly_ids == expected.anomaly_ids, result.message(
        f"anomaly ids only here: {sorted(outputs.anomaly_ids - expected.anomaly_ids)}; "
        f"only in the failure-free run: {sorted(expected.anomaly_ids - outputs.anomaly_ids)}"
    )
    assert outputs.inexact_duplicates() == [], result.message("repeats that differ")
    assert outputs.dead_letter_reasons == expected.dead_letter_reasons, result.message(
        "the dead letters differ"
    )
    assert outputs.window_counts == expected.window_counts, result.message(
        "the archived windows differ"
    )
