"""``clicksentry alerts``: run the alerting Lambda locally on the anomalies stream.

Polls every shard of the stream on kinesis-mock the way Lambda's Kinesis event source mapping
does and invokes ``alerting.handler.lambda_handler`` in-process. The handler is configured by
the same environment variables as in AWS (docs/alerting.md); any that are unset default to the
local stack of ``clicksentry stack up``.
"""

from __future__ import annotations

import argparse
import logging
import os
from datetime import datetime
from pathlib import Path

import boto3

from localdev import stack

DEFAULT_POSITIONS_FILE = Path("out/alerts-shard-positions.json")


def local_stack_environment() -> dict[str, str]:
    """Environment for the handler and the Kinesis client on the local stack of ``stack up``.

    Examples:
        >>> env = local_stack_environment()
        >>> env["ALERTS_TOPIC_ARN"], env["AWS_ENDPOINT_URL_KINESIS"]
        ('arn:aws:sns:us-east-1:000000000000:clicksentry-alerts', 'http://127.0.0.1:4568')
        >>> env["DEAD_LETTER_QUEUE_URL"]
        'http://127.0.0.1:4566/000000000000/clicksentry-alerts-dlq'
    """
    return {
        "AWS_DEFAULT_REGION": stack.REGION,
        "AWS_ACCESS_KEY_ID": stack.ACCESS_KEY_ID,
        "AWS_SECRET_ACCESS_KEY": stack.SECRET_ACCESS_KEY,
        "AWS_ENDPOINT_URL": stack.MOTO_ENDPOINT,
        "AWS_ENDPOINT_URL_KINESIS": stack.KINESIS_ENDPOINT,
        "ALERTS_TOPIC_ARN": f"arn:aws:sns:{stack.REGION}:{stack.ACCOUNT_ID}:{stack.ALERT_TOPIC}",
        "IDEMPOTENCY_TABLE": stack.IDEMPOTENCY_TABLE,
        "SUPPRESSION_TABLE": stack.SUPPRESSION_TABLE,
        "DEAD_LETTER_QUEUE_URL": f"{stack.MOTO_ENDPOINT}/{stack.ACCOUNT_ID}/{stack.ALERT_DLQ}",
    }


def _utc_timestamp(text: str) -> datetime:
    """Parse an ISO-8601 timestamp that carries its offset.

    Examples:
        >>> _utc_timestamp("2026-01-05T00:12:10Z").isoformat()
        '2026-01-05T00:12:10+00:00'
        >>> _utc_timestamp("2026-01-05T00:12:10")
        Traceback (most recent call last):
        ...
        argparse.ArgumentTypeError: '2026-01-05T00:12:10' has no UTC offset (add Z or +00:00)
    """
    try:
        moment = datetime.fromisoformat(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None
    if moment.tzinfo is None:
        raise argparse.ArgumentTypeError(f"{text!r} has no UTC offset (add Z or +00:00)")
    return moment


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``clicksentry alerts``."""
    parser.add_argument("--stream", default=stack.ANOMALIES_STREAM, help="Kinesis stream name")
    parser.add_argument(
        "--positions-file",
        type=Path,
        default=DEFAULT_POSITIONS_FILE,
        help="JSON file with the last handled sequence number per shard (default: %(default)s)",
    )
    parser.add_argument("--batch-size", type=int, default=100, help="records per invocation")
    parser.add_argument(
        "--starting-position",
        choices=("TRIM_HORIZON", "LATEST", "AT_TIMESTAMP"),
        default="TRIM_HORIZON",
        help="where shards without a saved position start",
    )
    parser.add_argument(
        "--starting-timestamp",
        type=_utc_timestamp,
        help="ISO-8601 time with offset, for --starting-position AT_TIMESTAMP",
    )
    parser.add_argument(
        "--poll-interval", type=float, default=1.0, help="seconds between polls of all shards"
    )
    parser.add_argument(
        "--function-timeout", type=float, default=60.0, help="the context's timeout in seconds"
    )
    parser.add_argument(
        "--once", action="store_true", help="exit once every shard is read and nothing is retried"
    )
    parser.add_argument("--max-seconds", type=float, help="exit after this many seconds")


def main(args: argparse.Namespace) -> int:
    """Run the local event source mapping; 0 when done, 1 if ``--once`` ran out of time."""
    if not 1 <= args.batch_size <= 10_000:
        print(f"--batch-size must be within 1..10000, got {args.batch_size}")
        return 2
    if (args.starting_position == "AT_TIMESTAMP") != (args.starting_timestamp is not None):
        print("--starting-timestamp goes with --starting-position AT_TIMESTAMP (and only with it)")
        return 2
    for name, value in local_stack_environment().items():
        os.environ.setdefault(name, value)
    if not args.verbose:
        logging.getLogger("botocore").setLevel(logging.WARNING)

    from alerting import handler
    from alerting.config import ConfigError
    from localdev.lambda_runner import KinesisEventSourceMapping

    try:
        handler.alerter()
    except ConfigError as error:
        print(f"configuration error: {error}")
        return 2
    mapping = KinesisEventSourceMapping(
        boto3.client("kinesis"),
        args.stream,
        handler.lambda_handler,
        args.positions_file,
        batch_size=args.batch_size,
        starting_position=args.starting_position,
        starting_timestamp=args.starting_timestamp,
        timeout_seconds=args.function_timeout,
    )
    print(f"polling {mapping.stream_arn}; shard positions in {args.positions_file}")
    try:
        summary = mapping.run(
            until_caught_up=args.once,
            max_seconds=args.max_seconds,
            poll_interval=args.poll_interval,
        )
    except KeyboardInterrupt:
        print("interrupted; shard positions are saved")
        return 130
    print(
        f"handled {summary.records} records in {summary.invocations} invocations, "
        f"{summary.failed_records} failed and retried; caught up: {summary.caught_up}"
    )
    return 1 if args.once and not summary.caught_up else 0
