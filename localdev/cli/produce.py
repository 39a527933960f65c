"""``clicksentry produce``: send click events to the clicks stream (kinesis-mock by default)."""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import boto3

from localdev import producer, stack

BAR_WIDTH = 30


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Declare the source of events, the target stream and the pace."""
    parser.add_argument(
        "--events",
        type=Path,
        help="JSON-lines file to send as is (default: generate with the simulator)",
    )
    parser.add_argument("--seed", type=int, help="simulator seed (when generating)")
    parser.add_argument("--minutes", type=float, help="simulated minutes (when generating)")
    parser.add_argument(
        "--events-per-second", type=float, help="simulated event rate (when generating)"
    )
    parser.add_argument(
        "--stream-arn",
        default=stack.stream_arn(stack.CLICKS_STREAM),
        help="target stream ARN (default: %(default)s)",
    )
    parser.add_argument(
        "--endpoint",
        default=stack.KINESIS_ENDPOINT,
        help="Kinesis endpoint; 'aws' for the real service with your AWS credentials "
        "(default: %(default)s, the local kinesis-mock)",
    )
    parser.add_argument("--rate", type=float, help="events per second (default: as fast as taken)")


def _lines(args: argparse.Namespace) -> tuple[list[str], str]:
    if args.events is not None:
        text = args.events.read_text(encoding="utf-8")
        return [line for line in text.splitlines() if line], str(args.events)
    from localdev.simulator import SimulationConfig, simulate

    chosen = {
        name: getattr(args, name)
        for name in ("seed", "minutes", "events_per_second")
        if getattr(args, name) is not None
    }
    return list(simulate(SimulationConfig(**chosen)).lines), "the simulator"


def _client(args: argparse.Namespace):
    if args.endpoint == "aws":
        region = args.stream_arn.split(":")[3]
        return boto3.client("kinesis", region_name=region)
    return (
        stack.client("kinesis")
        if args.endpoint == stack.KINESIS_ENDPOINT
        else boto3.client(
            "kinesis",
            endpoint_url=args.endpoint,
            region_name=args.stream_arn.split(":")[3],
            aws_access_key_id=stack.ACCESS_KEY_ID,
            aws_secret_access_key=stack.SECRET_ACCESS_KEY,
        )
    )


def _progress(total: int) -> Iterator[None]:
    """A generator whose ``send(result)`` redraws a one-line bar on stderr."""
    started = time.monotonic()
    while True:
        result = yield
        done = result.sent + result.failed
        filled = BAR_WIDTH * done // max(total, 1)
        rate = done / max(time.monotonic() - started, 1e-9)
        print(
            f"\r[{'#' * filled}{'.' * (BAR_WIDTH - filled)}] {done}/{total} "
            f"{rate:,.0f} ev/s, {result.retried_records} retried",
            end="",
            file=sys.stderr,
            flush=True,
        )


def main(args: argparse.Namespace) -> int:
    """Send the events; print the final sent/failed count; non-zero exit if any failed."""
    lines, origin = _lines(args)
    print(f"sending {len(lines)} events from {origin} to {args.stream_arn}")
    bar = _progress(len(lines))
    next(bar)
    started = time.monotonic()
    result = producer.produce(
        lines, _client(args), args.stream_arn, rate=args.rate, on_batch=bar.send
    )
    print(file=sys.stderr)
    elapsed = time.monotonic() - started
    print(
        f"sent {result.sent}, failed {result.failed} in {elapsed:.1f}s "
        f"({result.calls} PutRecords calls, {result.retried_records} records retried)"
    )
    return 0 if result.failed == 0 else 1
