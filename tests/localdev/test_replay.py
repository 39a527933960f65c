"""Replaying the archive gives the original run's scored windows and anomalies.

GIVEN one simulated stream with injected anomalies, malformed lines and late events, run by the
embedded job at parallelism 2, which archives its valid payloads under ``raw-events/``;
WHEN ``clicksentry replay`` runs the job over that archive at parallelism 1;
THEN its scored windows and anomalies equal the original run's, record for record, and every
archived event is windowed (nothing is late or malformed in a replay).

AND the same archive copied to S3 (moto server) gives the same replay input as the local one,
an hour range with no partitions replays nothing, and a replay's records copied to an S3 prefix
of their own (``--out-s3``) read back as they are on disk.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from embedded_job import canonical, run_embedded

from flink_jobs.job import LocalOutputs
from localdev import stack
from localdev.cli import main as clicksentry
from localdev.part_files import read_records, s3_records
from localdev.replay import HourRange, local_payloads, s3_payloads, upload_outputs, write_events
from localdev.simulator import SimulationConfig, simulate, write_simulation

#: The determinism test's stream: six minutes from 2026-01-05T00:00Z, all four anomaly kinds.
STREAM = SimulationConfig(minutes=6, events_per_second=300, seed=7)


@pytest.fixture(scope="module")
def original(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("replay")
    events_file, _ = write_simulation(simulate(STREAM), root / "sim")
    run_embedded(events_file, root / "original", parallelism=2)
    return root / "original"


@pytest.mark.flink
def test_replay_of_the_archive_equals_the_original_run(original, tmp_path):
    # GIVEN the original run's outputs, late and malformed events among its dead letters
    dead = list(read_records(original / "dead-letters"))
    assert {"late", "bad_json"} <= {d["reason"] for d in dead}
    # WHEN the archive is replayed through the CLI
    out = tmp_path / "replay"
    status = clicksentry(["replay", "--archive", str(original), "--out", str(out),
                          "--parallelism", "1"])
    # THEN the replay reconciles, windows every archived event and dead-letters none
    assert status == 0
    summary = json.loads((out / "run-summary.json").read_text())
    archived = sum(1 for _ in local_payloads(original, HourRange()))
    assert summary["events_in"] == summary["events_windowed"] == archived
    assert summary["dead_letters_total"] == 0
    # AND its scored windows and anomalies are the original's
    for name in ("scored-windows", "anomalies"):
        first = canonical(list(read_records(original / name)))
        again = canonical(list(read_records(out / name)))
        assert len(first) > 0 and first == again, name


@pytest.mark.flink
@pytest.mark.integration
def test_an_archive_on_s3_replays_the_same_events_as_on_disk(
    original, aws_stack, tmp_path, monkeypatch
):
    # GIVEN the original archive's raw events copied to the local S3 under a prefix
    s3 = aws_stack.client("s3")
    bucket = stack.ARCHIVE_BUCKET
    prefix = f"replay-test-{tmp_path.name}/"
    for path in (original / "raw-events").rglob("part-*"):
        key = prefix + path.relative_to(original).as_posix()
        s3.put_object(Bucket=bucket, Key=key, Body=path.read_bytes())
    hours = HourRange.parse("2026-01-05T00", "2026-01-05T01")
    # WHEN the replay input is collected from S3 and from disk
    from_s3 = write_events(s3_payloads(s3, bucket, prefix, hours), tmp_path / "s3.jsonl")
    from_disk = write_events(local_payloads(original, hours), tmp_path / "disk.jsonl")
    # THEN both are the same events in the same order
    assert from_s3 == from_disk > 100_000
    assert (tmp_path / "s3.jsonl").read_bytes() == (tmp_path / "disk.jsonl").read_bytes()
    # AND an hour range past the stream has nothing to replay
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", stack.ACCESS_KEY_ID)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", stack.SECRET_ACCESS_KEY)
    monkeypatch.setenv("AWS_DEFAULT_REGION", stack.REGION)
    later = HourRange.parse("2026-01-05T01", None)
    assert list(s3_payloads(s3, bucket, prefix, later)) == []
    status = clicksentry(["replay", "--archive", f"s3://{bucket}/{prefix}",
                          "--s3-endpoint", stack.MOTO_ENDPOINT, "--from", "2026-01-05T01",
                          "--out", str(tmp_path / "none")])
    assert status == 2
    # AND a replay's records copied to a prefix of their own read back as they are on disk
    outputs = LocalOutputs(original)
    copied = upload_outputs(s3, outputs, bucket, f"replays/{tmp_path.name}")
    scored = list(s3_records(s3, bucket, f"replays/{tmp_path.name}/scored-windows/"))
    assert canonical(scored) == canonical(list(read_records(outputs.scored_windows)))
    assert copied > len({p.parent for p in outputs.scored_windows.rglob("part-*")})
    # AND a copy into the archive's own prefix is refused before anything runs
    status = clicksentry(["replay", "--archive", f"s3://{bucket}/{prefix}",
                          "--s3-endpoint", stack.MOTO_ENDPOINT, "--out", str(tmp_path / "in"),
                          "--out-s3", f"s3://{bucket}/{prefix}replays/"])
    assert status == 2 and not (tmp_path / "in").exists()
