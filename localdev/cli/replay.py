"""``clicksentry replay``: the job over archived raw events, local or on S3, in bounded mode.

Reads ``<archive>/raw-events/dt=…/hour=…/`` for an hour range, orders the payloads by event time
(:mod:`localdev.replay`), runs the same job graph as ``clicksentry run`` over them with the
settings given (a new detector, say) and writes scored windows, anomalies and the run summary
under ``--out``, apart from the archive; ``--out-s3`` copies them to an S3 prefix of their own
as well. Examples::

    clicksentry replay --archive out --out out/replay --truth out/sim/truth.json
    clicksentry replay --archive s3://my-archive/clicksentry/ --from 2026-01-05T00
                       --to 2026-01-05T06 --detector rcf-kda --out out/replay-kda
                       --out-s3 s3://my-archive/replays/rcf-kda-2026-01-05/
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

import boto3

from flink_jobs.config import ConfigError, load_config
from flink_jobs.job import LocalOutputs
from localdev.cli.run import clear_outputs, run_job
from localdev.replay import (
    HourRange,
    local_payloads,
    s3_payloads,
    upload_outputs,
    write_events,
)
from udfs.s3_uri import split_s3_uri


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``clicksentry replay``."""
    parser.add_argument("--archive", required=True,
                        help="archive root holding raw-events/: a directory or s3://bucket/prefix")
    parser.add_argument("--s3-endpoint", help="S3 endpoint URL (moto server); default AWS")
    parser.add_argument("--from", dest="start", help="first hour, UTC: YYYY-MM-DD[THH]")
    parser.add_argument("--to", dest="end", help="end hour (excluded), UTC: YYYY-MM-DD[THH]")
    parser.add_argument("--out", type=Path, default=Path("out/replay"),
                        help="output root for the replay's records (default out/replay)")
    parser.add_argument("--out-s3",
                        help="also copy the replay's records to this s3://bucket/prefix (one "
                             "of its own: not the archive's)")
    parser.add_argument("--properties", type=Path,
                        help="application_properties.json with the settings to replay with")
    parser.add_argument("--parallelism", help="job.parallelism")
    parser.add_argument("--detector", help="scoring.detector")
    parser.add_argument("--truth", type=Path,
                        help="the simulator's truth.json: the summary then scores detection")


def main(args: argparse.Namespace) -> int:
    """Collect the archived events of the range, then run the job over them."""
    os.environ.setdefault("IS_LOCAL", "1")
    job = {"source": "embedded", "out_dir": str(args.out)}
    if args.parallelism:
        job["parallelism"] = args.parallelism
    scoring = {"detector": args.detector} if args.detector else {}
    try:
        hours = HourRange.parse(args.start, args.end)
        config = load_config(args.properties, {"job": job, "scoring": scoring})
    except (ConfigError, ValueError) as exc:
        print(f"configuration error: {exc}")
        return 2
    s3 = boto3.client("s3", endpoint_url=args.s3_endpoint)
    if args.out_s3 and not _separate(args.out_s3, args.archive):
        print("--out-s3 must be an s3:// prefix apart from --archive and its raw-events/")
        return 2
    if args.archive.startswith("s3://"):
        bucket, prefix = split_s3_uri(args.archive)
        payloads = s3_payloads(s3, bucket, prefix, hours)
    else:
        if Path(args.archive).resolve() == args.out.resolve():
            print("--out must differ from --archive: the replay writes its own records")
            return 2
        payloads = local_payloads(Path(args.archive), hours)
    outputs = LocalOutputs(args.out)
    clear_outputs(outputs)
    events_file = args.out / "replay-input" / "events.jsonl"
    try:
        count = write_events(payloads, events_file)
    except FileNotFoundError as exc:
        print(f"nothing to replay: {exc}")
        return 2
    if count == 0:
        print(f"nothing to replay: no archived events in {args.archive} for that range")
        return 2
    print(f"replaying {count} archived events from {args.archive}", flush=True)
    truth = json.loads(args.truth.read_text(encoding="utf-8")) if args.truth else None
    status = run_job(config, outputs, events_file, truth)
    if args.out_s3:
        bucket, prefix = split_s3_uri(args.out_s3)
        copied = upload_outputs(s3, outputs, bucket, prefix)
        print(f"copied {copied} objects to {args.out_s3}")
    return status


def _separate(out: str, archive: str) -> bool:
    """``out`` is an S3 prefix that neither holds nor lies inside the archive's.

    >>> _separate("s3://b/replays/x/", "s3://b/archive/"), _separate("s3://b/", "s3://b/a/")
    (True, False)
    >>> _separate("s3://b/archive/replay/", "s3://b/archive"), _separate("out/x", "out")
    (False, False)
    """
    if not out.startswith("s3://"):
        return False
    out_root, archive_root = out.rstrip("/") + "/", archive.rstrip("/") + "/"
    return not (out_root.startswith(archive_root) or archive_root.startswith(out_root))
