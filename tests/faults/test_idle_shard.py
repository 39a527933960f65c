"""A silent shard: the job makes progress without it, and its events, when it resumes behind the
watermark, are dead-lettered as late — counted, never dropped by windows that already fired.

Every other case runs without idleness (``job.idle_timeout_ms = 0``) and closes the stream with a
flush event on each shard. Here the job runs with the default idle timeout, the whole stream goes
to one shard of two and only that shard gets a flush event: the other source subtask reads
nothing for the whole run.
"""

import json

import pytest
from fault_runs import simulation

from flink_jobs.config import SETTINGS

pytestmark = [pytest.mark.faults, pytest.mark.integration, pytest.mark.timeout(1800)]

BUSY, SILENT = 0, 1
#: How many events of the stream's first minutes the silent shard resumes with.
RESUMED = 25
#: The setting's default.
IDLE_TIMEOUT_MS = next(
    s.default for s in SETTINGS if (s.group, s.key) == ("job", "idle_timeout_ms")
)


def old_events(count: int) -> list[str]:
    """Copies of the stream's first valid events (new ids): minutes behind its end."""
    sim = simulation()
    dead = {int(i) for i in sim.truth["dead_letters"]}
    first = [json.loads(line) for i, line in enumerate(sim.lines) if i not in dead][:count]
    return [json.dumps({**e, "event_id": f"resumed-{n}"}) for n, e in enumerate(first)]


def test_a_silent_shard_stalls_nothing_and_its_late_events_are_dead_lettered(
    case_run, failure_free
):
    # GIVEN the job with the default idle timeout, and the simulated stream on one shard of two
    # closed by a flush event on that shard alone
    assert int(IDLE_TIMEOUT_MS) > 0
    run = case_run("idle-shard")
    producing = run.produce(simulation().lines, shard=BUSY)
    job_id = run.submit(idle_timeout_ms=IDLE_TIMEOUT_MS)
    producing.result()
    run.flush(only_shard=BUSY)
    # WHEN the job runs while the other shard stays silent
    result = run.result(run.wait_consumed(job_id))
    # THEN every window fired: the failure-free run's windows and anomalies (both shards busy,
    # a flush event on each), every event windowed or dead-lettered, the job never restarted
    assert result.restarts == 0, result.message("the job restarted")
    result.assert_matches(failure_free)
    assert result.outputs.dead_letter_reasons == failure_free.outputs.dead_letter_reasons, (
        result.message("the dead letters differ")
    )

    # AND WHEN the silent shard resumes with events from the stream's first minutes
    resumed = old_events(RESUMED)
    run.produce(resumed, shard=SILENT).result()
    outputs = run.wait_until(
        job_id, lambda o: sum(d["payload"] in resumed for d in o.distinct_dead_letters) == RESUMED
    )
    result = run.result(outputs)
    # THEN each is dead-lettered as late, and in = windowed + dead letters still holds
    reasons = [d["reason"] for d in outputs.distinct_dead_letters if d["payload"] in resumed]
    assert reasons == ["late"] * RESUMED, result.message(f"the resumed events: {reasons}")
    assert outputs.windowed + len(outputs.distinct_dead_letters) == (
        result.produced - result.flushes
    ), result.message("events in != windowed + dead letters")
