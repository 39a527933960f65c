"""The bench's entity-scale run on a real Flink minicluster, small.

GIVEN 60,000 page views over one simulated minute cycling through 3,000 pages, and a job bound
to 1,000 entities, checkpointing every second (unaligned: under backpressure an aligned one can
outlast this short job);
WHEN the bench's entity-scale job runs it, watched through the minicluster's REST API;
THEN the watch saw completed checkpoints with the scoring operator's state in them and the
entities it tracked (at most the bound), every page was scored, and the pages beyond the bound
were evicted. (Counts only: speed is never asserted.)
"""

from __future__ import annotations

import os

import pytest

from flink_jobs.config import load_config
from flink_jobs.job import LocalOutputs
from localdev.benchmarks.entity_scale import entity_events, entity_scale_job
from localdev.part_files import read_records

pytestmark = pytest.mark.flink

PAGES, EVENTS, BOUND = 3_000, 60_000, 1_000


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    os.environ["IS_LOCAL"] = "1"
    root = tmp_path_factory.mktemp("entity-scale")
    source = root / "in"
    source.mkdir()
    (source / "events.jsonl").write_text(
        "".join(line + "\n" for line in entity_events(PAGES, EVENTS, minutes=1))
    )
    config = load_config(groups={
        "job": {"parallelism": "1", "checkpoint_interval_ms": "1000",
                "unaligned_checkpoints": "true",
                "checkpoint_dir": str(root / "checkpoints"), "out_dir": str(root)},
        "scoring": {"max_entities": str(BOUND)},
    })
    throughput, checkpoints = entity_scale_job(config, source, root / "out", EVENTS)
    return throughput, checkpoints, LocalOutputs(root / "out")


def test_the_watch_reads_the_scoring_state_and_its_entities_from_each_checkpoint(run):
    _, checkpoints, _ = run
    assert checkpoints.completed >= 1 and checkpoints.checkpoints, checkpoints
    summary = checkpoints.summary()
    assert summary["checkpoint_bytes"] >= summary["scoring_state_bytes"] > 0
    assert 0 < summary["entities_tracked"] <= BOUND
    assert summary["state_bytes_per_entity"] > 0


def test_every_page_is_scored_and_those_beyond_the_bound_are_evicted(run):
    throughput, _, outputs = run
    scored = {w["entity_id"] for w in read_records(outputs.scored_windows)}
    evicted = {e["entity_id"] for e in read_records(outputs.entity_evictions)}
    assert throughput.events == EVENTS
    assert scored == {f"page-{i:07}" for i in range(PAGES)}
    assert len(evicted) >= PAGES - BOUND
