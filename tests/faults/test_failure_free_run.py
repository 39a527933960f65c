"""The failure-free run every fault case is compared with: exact on its own, and its metrics
count what it wrote."""

import re

import pytest
from fault_runs import simulation

from localdev.run_summary import run_summary

pytestmark = [pytest.mark.faults, pytest.mark.integration, pytest.mark.timeout(1800)]


def test_failure_free_run_archives_each_window_once_and_repeats_no_anomaly(failure_free):
    # GIVEN the simulated stream through the job on the cluster, without faults
    outputs = failure_free.outputs
    # WHEN its outputs are read back (the fixture)
    # THEN no window is archived twice, no anomaly record is repeated, every event is accounted for
    twice = {w: n for w, n in outputs.window_counts.items() if n > 1}
    assert twice == {}, failure_free.message(f"{len(twice)} windows archived more than once")
    assert len(outputs.anomalies) == len(outputs.anomaly_ids), failure_free.message(
        "anomaly records repeated"
    )
    assert outputs.windowed + len(outputs.dead_letters) == (
        failure_free.produced - failure_free.flushes
    ), failure_free.message("events in != windowed + dead letters")


def test_the_jobs_metrics_count_what_it_wrote(failure_free):
    # GIVEN the failure-free run's job, still running after it consumed its input
    outputs = failure_free.outputs
    summary = run_summary(failure_free.produced - failure_free.flushes, outputs.dead_letters,
                          outputs.scored_windows, simulation().truth, outputs.evictions)
    # WHEN its own metrics are read through Flink's REST API, summed over the subtasks
    metrics = failure_free.metrics
    # THEN they equal the run summary's counts of what it wrote (the flush events are read too)
    message = failure_free.message(f"metrics {metrics}\nsummary {summary}")
    assert metrics.get("eventsIn") == summary["events_in"] + failure_free.flushes, message
    assert metrics.get("deadLetters") == summary["dead_letters_total"], message
    by_reason = {
        reason: metrics.get("deadLetters_" + re.sub("[^A-Za-z0-9]", "_", reason))
        for reason in summary["dead_letters"]
    }
    assert by_reason == summary["dead_letters"], message
    assert metrics.get("windowsScored") == summary["windows_scored"], message
    assert metrics.get("anomalies") == summary["anomalies"], message
    assert metrics.get("entitiesEvicted") == sum(summary["entity_evictions"].values()), message
    # AND the gauges report: entities in state, models that learned, the watermark's lag
    assert metrics.get("entitiesTracked", 0) > 0, message
    assert metrics.get("modelAgeWindows", 0) > 0, message
    assert metrics.get("watermarkLagMs", 0) > 0, message
