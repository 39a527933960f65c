"""The entity-scale bench's checkpoint watch, on REST answers a running job really gave.

``tests/events/flink-rest-entity-scale-job.json`` holds what a minicluster's REST API answered,
path by path, during the bench's 100,000-page run with unaligned checkpoints: checkpoints 1 to 3
completed, each with rows in flight stored (3 also the scoring operator's), 4 in progress, one
declined while the Python workers started (the job's ``plan`` left out). A loopback HTTP server
serves them; a first view of the checkpoints shows only checkpoint 1, as a poll a few seconds
earlier would have.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from localdev.benchmarks.entity_scale import CheckpointWatch
from localdev.flink_cluster import HOST, FlinkRest

ANSWERS = json.loads(
    (Path(__file__).parents[1] / "events" / "flink-rest-entity-scale-job.json").read_text()
)
JOB = ANSWERS["/jobs/overview"]["jobs"][0]["jid"]
CHECKPOINTS = f"/jobs/{JOB}/checkpoints"
SCORING_VERTEX = next(v["id"] for v in ANSWERS[f"/jobs/{JOB}"]["vertices"]
                      if v["name"].startswith("score-entity-windows"))


def _earlier(answer: dict) -> dict:
    """The checkpoints answer as it stood when only checkpoint 1 had completed."""
    history = [c for c in answer["history"] if c["id"] == 1]
    counts = {**answer["counts"], "total": 2, "in_progress": 0, "completed": 1}
    return {**answer, "counts": counts, "history": history}


class _Answers(BaseHTTPRequestHandler):
    answers: dict = {}

    def do_GET(self) -> None:
        body = json.dumps(self.answers[self.path]).encode() if self.path in self.answers else b""
        self.send_response(200 if body else 404)
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def rest() -> Iterator[FlinkRest]:
    server = ThreadingHTTPServer((HOST, 0), _Answers)
    _Answers.answers = dict(ANSWERS)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield FlinkRest(f"http://{HOST}:{server.server_address[1]}")
    finally:
        server.shutdown()
        server.server_close()


def test_checkpoints_completed_between_two_polls_are_each_read_once(rest):
    # GIVEN a watch whose first poll saw checkpoint 1 only
    watch = CheckpointWatch(rest)
    _Answers.answers[CHECKPOINTS] = _earlier(ANSWERS[CHECKPOINTS])
    seen = watch._poll(0)
    # WHEN checkpoints 2 and 3 complete before the next poll, and a third poll sees no new one
    _Answers.answers[CHECKPOINTS] = ANSWERS[CHECKPOINTS]
    seen = watch._poll(seen)
    seen = watch._poll(seen)
    # THEN each of the three is noted once, in order, with the size, duration and scoring
    # operator's state its details give and the entities the operator's gauge counted
    assert seen == 3
    assert [c["id"] for c in watch.stats.checkpoints] == [1, 2, 3]
    for noted in watch.stats.checkpoints:
        details = ANSWERS[f"{CHECKPOINTS}/details/{noted['id']}"]
        assert noted["bytes"] == details["state_size"]
        assert noted["duration_ms"] == details["end_to_end_duration"]
        assert noted["in_flight_bytes"] == details["persisted_data"]
        scoring = details["tasks"][SCORING_VERTEX]
        assert noted["scoring_bytes"] == scoring["state_size"] - scoring["persisted_data"] > 0
        assert noted["entities_tracked"] == 100_000
    # (checkpoint 3 stored rows in flight to the scoring operator: not counted as its state)
    assert ANSWERS[f"{CHECKPOINTS}/details/3"]["tasks"][SCORING_VERTEX]["persisted_data"] > 0
    assert (watch.stats.completed, watch.stats.failed, watch.stats.polls) == (3, 1, 3)


def test_the_summary_is_the_checkpoint_with_the_most_scoring_state(rest):
    # GIVEN the watch has read the three completed checkpoints
    watch = CheckpointWatch(rest)
    watch._poll(0)
    # WHEN it sums them up
    summary = watch.stats.summary()
    # THEN the largest is the one whose scoring operator held the most, per tracked entity
    largest = max(watch.stats.checkpoints, key=lambda c: c["scoring_bytes"])
    assert summary["checkpoint_bytes"] == largest["bytes"]
    assert summary["scoring_state_bytes"] == largest["scoring_bytes"]
    assert summary["state_bytes_per_entity"] == round(largest["scoring_bytes"] / 100_000, 1)
    assert summary["max_checkpoint_ms"] == max(c["duration_ms"] for c in watch.stats.checkpoints)
    assert summary["checkpoints_completed"] == 3
