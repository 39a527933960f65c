"""``clicksentry stack up|down|status``: the local AWS stack (kinesis-mock + moto server)."""

from __future__ import annotations

import argparse
import json

from localdev import stack


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Declare ``up``, ``down`` and ``status``."""
    parser.add_argument(
        "action",
        choices=("up", "down", "status"),
        help="up: start what is not running and create resources (idempotent); "
        "down: stop the processes `up` started; status: what answers and what exists",
    )


def main(args: argparse.Namespace) -> int:
    """Run the chosen action and print what it did."""
    if args.action == "up":
        local = stack.up()
        started = ", ".join(local.started) or "nothing (both already running)"
        print(f"started: {started}")
        print(f"kinesis-mock  {local.kinesis_endpoint}")
        print(f"moto server   {local.moto_endpoint}")
        print(f"clicks        {local.clicks_stream_arn}")
        print(f"anomalies     {local.anomalies_stream_arn}")
        print(f"dead letters  {local.dead_letter_stream_arn}")
        print(f"archive       s3://{local.archive_bucket}/")
        print(f"alerts topic  {local.alert_topic_arn}")
        print(f"subscriber    {local.alert_subscriber_queue_url}")
        print(f"alerts DLQ    {local.alert_dlq_url}")
        print(f"tables        {local.idempotency_table}, {local.suppression_table}")
        return 0
    if args.action == "down":
        stopped = stack.down()
        print(f"stopped: {', '.join(stopped) or 'nothing (no process started by `stack up`)'}")
        return 0
    report = stack.status()
    print(json.dumps(report, indent=2))
    services = (stack.KINESIS_MOCK.name, stack.MOTO.name)
    return 0 if all(report[name]["answers"] for name in services) else 1
