"""The failure-free run every fault case is compared with: exact on its own."""

import pytest

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
