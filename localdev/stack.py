"""The local AWS stack: kinesis-mock and moto server on loopback, and every resource we use.

``up()`` starts what is not already answering, waits until both answer and creates the resources
(idempotent); ``down()`` stops exactly the processes that ``up()`` started, by the PID files it
wrote under ``.stack/``; ``status()`` says what answers and what exists. Endpoints and names are
module constants so tests, the producer, the job and the alerting runner all agree on them.

>>> KINESIS_ENDPOINT, MOTO_ENDPOINT
('http://127.0.0.1:4568', 'http://127.0.0.1:4566')
>>> stream_arn(CLICKS_STREAM)
'arn:aws:kinesis:us-east-1:000000000000:stream/clicksentry-clicks'
"""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

log = logging.getLogger(__name__)

REGION = "us-east-1"
ACCOUNT_ID = "000000000000"
ACCESS_KEY_ID = "clicksentry"
SECRET_ACCESS_KEY = "clicksentry"  # dummy: the emulators accept any

HOST = "127.0.0.1"
KINESIS_PORT = 4568
MOTO_PORT = 4566
KINESIS_ENDPOINT = f"http://{HOST}:{KINESIS_PORT}"
MOTO_ENDPOINT = f"http://{HOST}:{MOTO_PORT}"

CLICKS_STREAM = "clicksentry-clicks"
ANOMALIES_STREAM = "clicksentry-anomalies"
DEAD_LETTER_STREAM = "clicksentry-dead-letters"
STREAM_SHARDS = {CLICKS_STREAM: 2, ANOMALIES_STREAM: 2, DEAD_LETTER_STREAM: 1}
ARCHIVE_BUCKET = "clicksentry-archive"
ALERT_TOPIC = "clicksentry-alerts"
ALERT_SUBSCRIBER_QUEUE = "clicksentry-alerts-subscriber"
ALERT_DLQ = "clicksentry-alerts-dlq"
IDEMPOTENCY_TABLE = "clicksentry-alert-idempotency"
SUPPRESSION_TABLE = "clicksentry-alert-suppression"
TABLE_KEYS = {IDEMPOTENCY_TABLE: ("id", "expiration"), SUPPRESSION_TABLE: ("pk", "expires_at")}

ROOT = Path(__file__).resolve().parents[1]
EMULATORS_DIR = ROOT / ".emulators"
KINESIS_MOCK_DIR = EMULATORS_DIR / "node_modules" / "kinesis-local"
STATE_DIR = ROOT / ".stack"

READY_TIMEOUT_S = 90.0
STOP_TIMEOUT_S = 15.0


def stream_arn(name: str) -> str:
    """ARN of a stream on the local kinesis-mock.

    >>> stream_arn("s")
    'arn:aws:kinesis:us-east-1:000000000000:stream/s'
    """
    return f"arn:aws:kinesis:{REGION}:{ACCOUNT_ID}:stream/{name}"


def read_stream(kinesis, arn: str) -> list[tuple[str, bytes]]:
    """``(partition key, data)`` of every record on a stream, shard by shard, oldest first.

    Reads each shard from ``TRIM_HORIZON`` until a page comes back empty: for checking what a
    job wrote to a stream on the local stack, not for consuming a live stream.
    """
    records: list[tuple[str, bytes]] = []
    for shard in kinesis.list_shards(StreamARN=arn)["Shards"]:
        iterator = kinesis.get_shard_iterator(
            StreamARN=arn, ShardId=shard["ShardId"], ShardIteratorType="TRIM_HORIZON"
        )["ShardIterator"]
        while iterator:
            page = kinesis.get_records(StreamARN=arn, ShardIterator=iterator, Limit=10_000)
            records += [(r["PartitionKey"], r["Data"]) for r in page["Records"]]
            iterator = page.get("NextShardIterator") if page["Records"] else None
    return records


def credentials() -> dict[str, str]:
    """The emulators' dummy keys, in boto3's keyword form.

    >>> sorted(credentials())
    ['aws_access_key_id', 'aws_secret_access_key']
    """
    return {"aws_access_key_id": ACCESS_KEY_ID, "aws_secret_access_key": SECRET_ACCESS_KEY}


def client(service: str):
    """A boto3 client for ``service`` on the local stack (kinesis-mock or moto server).

    >>> client("kinesis").meta.endpoint_url
    'http://127.0.0.1:4568'
    >>> client("s3").meta.endpoint_url
    'http://127.0.0.1:4566'
    """
    return boto3.client(
        service,
        endpoint_url=KINESIS_ENDPOINT if service == "kinesis" else MOTO_ENDPOINT,
        region_name=REGION,
        **credentials(),
        config=Config(
            retries={"max_attempts": 2, "mode": "standard"},
            connect_timeout=2,
            read_timeout=30,
            s3={"addressing_style": "path"},
        ),
    )


@dataclass(frozen=True)
class Service:
    """One emulator process: how to start it, where it keeps its PID and log, how to probe it."""

    name: str
    port: int
    cwd: Path
    argv: tuple[str, ...]
    env: dict[str, str] = field(default_factory=dict)

    @property
    def pid_file(self) -> Path:
        """Where ``up()`` records the PID of the process it started."""
        return STATE_DIR / f"{self.name}.pid"

    @property
    def log_file(self) -> Path:
        """The process's stdout and stderr."""
        return STATE_DIR / f"{self.name}.log"


KINESIS_MOCK = Service(
    name="kinesis-mock",
    port=KINESIS_PORT,
    cwd=KINESIS_MOCK_DIR,
    argv=("node", "main.js"),
    env={
        "KINESIS_MOCK_PLAIN_PORT": str(KINESIS_PORT),
        "KINESIS_MOCK_TLS_PORT": "4567",
        "AWS_REGION": REGION,
        "AWS_ACCOUNT_ID": ACCOUNT_ID,
        "LOG_LEVEL": "WARN",
        "SHOULD_PERSIST_DATA": "false",
        "CREATE_STREAM_DURATION": "100ms",
    },
)
MOTO = Service(
    name="moto-server",
    port=MOTO_PORT,
    cwd=ROOT,
    argv=(str(Path(sys.executable).with_name("moto_server")), "-H", HOST, "-p", str(MOTO_PORT)),
    env={"MOTO_ACCOUNT_ID": ACCOUNT_ID},
)
SERVICES = (KINESIS_MOCK, MOTO)


@dataclass(frozen=True)
class LocalStack:
    """What a caller needs to talk to the running stack: endpoints, names, ARNs, URLs.

    ARNs and URLs are the ones the emulators returned, so they hold even for a moto server that
    someone else started under another account.
    """

    started: tuple[str, ...]
    alert_topic_arn: str
    alert_subscriber_queue_url: str
    alert_subscriber_queue_arn: str
    alert_dlq_url: str
    alert_dlq_arn: str
    region: str = REGION
    access_key_id: str = ACCESS_KEY_ID
    secret_access_key: str = SECRET_ACCESS_KEY
    kinesis_endpoint: str = KINESIS_ENDPOINT
    moto_endpoint: str = MOTO_ENDPOINT
    clicks_stream: str = CLICKS_STREAM
    anomalies_stream: str = ANOMALIES_STREAM
    dead_letter_stream: str = DEAD_LETTER_STREAM
    archive_bucket: str = ARCHIVE_BUCKET
    idempotency_table: str = IDEMPOTENCY_TABLE
    suppression_table: str = SUPPRESSION_TABLE

    @property
    def clicks_stream_arn(self) -> str:
        """ARN of the clicks stream."""
        return stream_arn(self.clicks_stream)

    @property
    def anomalies_stream_arn(self) -> str:
        """ARN of the anomalies stream."""
        return stream_arn(self.anomalies_stream)

    @property
    def dead_letter_stream_arn(self) -> str:
        """ARN of the dead-letter stream."""
        return stream_arn(self.dead_letter_stream)

    @property
    def env(self) -> dict[str, str]:
        """Environment variables that point an AWS SDK at this stack (moto's endpoint)."""
        return {
            "AWS_DEFAULT_REGION": self.region,
            "AWS_REGION": self.region,
            "AWS_ACCESS_KEY_ID": self.access_key_id,
            "AWS_SECRET_ACCESS_KEY": self.secret_access_key,
            "AWS_ENDPOINT_URL": self.moto_endpoint,
            "AWS_ENDPOINT_URL_KINESIS": self.kinesis_endpoint,
        }

    def client(self, service: str):
        """A boto3 client for ``service`` on this stack."""
        return client(service)


def _answers(service: Service) -> bool:
    """True when the service answers a real API call."""
    try:
        if service is KINESIS_MOCK:
            client("kinesis").list_streams(Limit=1)
        else:
            client("s3").list_buckets()
    except (BotoCoreError, ClientError):
        return False
    return True


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return Path(f"/proc/{pid}").exists() and not _is_zombie(pid)


def _is_zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(") ")[1].startswith("Z")
    except (OSError, IndexError):
        return False


def _recorded_pid(service: Service) -> int | None:
    """PID from the service's PID file if that process still runs our command, else None."""
    try:
        pid = int(service.pid_file.read_text().strip())
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except (OSError, ValueError):
        return None
    if not _pid_alive(pid) or Path(service.argv[-1]).name.encode() not in b" ".join(cmdline):
        return None
    return pid


def _start(service: Service) -> int:
    if service is KINESIS_MOCK and not (service.cwd / "main.js").exists():
        raise RuntimeError(
            f"kinesis-mock is not installed at {service.cwd}; run `make emulators` first"
        )
    STATE_DIR.mkdir(parents=True, exist_ok=True)
    with service.log_file.open("ab") as out:
        proc = subprocess.Popen(
            service.argv,
            cwd=service.cwd,
            env={**os.environ, **service.env},
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    service.pid_file.write_text(f"{proc.pid}\n")
    log.info("started %s (pid %d, log %s)", service.name, proc.pid, service.log_file)
    return proc.pid


def _wait_ready(service: Service, pid: int | None) -> None:
    deadline = time.monotonic() + READY_TIMEOUT_S
    while time.monotonic() < deadline:
        if _answers(service):
            return
        if pid is not None and not _pid_alive(pid):
            raise RuntimeError(
                f"{service.name} exited during start-up; see {service.log_file}:\n"
                + _tail(service.log_file)
            )
        time.sleep(0.3)
    raise RuntimeError(
        f"{service.name} did not answer on port {service.port} within {READY_TIMEOUT_S:.0f}s"
    )


def _tail(path: Path, lines: int = 20) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


def up() -> LocalStack:
    """Start kinesis-mock and moto server unless they already answer, then create all resources.

    Returns the stack description; ``started`` names the services this call started (so a caller
    can stop only those with ``down(stack.started)``).
    """
    started: list[str] = []
    for service in SERVICES:
        if _answers(service):
            log.info("%s already answers on port %d", service.name, service.port)
            continue
        pid = _recorded_pid(service)
        if pid is None:
            pid = _start(service)
            started.append(service.name)
        _wait_ready(service, pid)
    return LocalStack(started=tuple(started), **create_resources())


def down(names: Iterable[str] | None = None) -> list[str]:
    """Stop the processes ``up()`` started (all with a PID file, or only ``names``).

    Returns the names of the services it stopped. Processes it did not start are never touched.
    """
    wanted = {s.name for s in SERVICES} if names is None else set(names)
    stopped = []
    for service in SERVICES:
        if service.name not in wanted:
            continue
        pid = _recorded_pid(service)
        if pid is not None:
            _terminate(pid)
            stopped.append(service.name)
            log.info("stopped %s (pid %d)", service.name, pid)
        service.pid_file.unlink(missing_ok=True)
    return stopped


def _terminate(pid: int) -> None:
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + STOP_TIMEOUT_S
    while time.monotonic() < deadline:
        if not _pid_alive(pid):
            return
        time.sleep(0.1)
    os.kill(pid, signal.SIGKILL)


def create_resources() -> dict[str, str]:
    """Create the streams, bucket, topic + subscription, queues and tables (idempotent).

    Returns the alerting ARNs and queue URLs as the emulator reported them.
    """
    _create_streams()
    _create_bucket()
    alerting = _create_alerting()
    _create_tables()
    return alerting


def _create_streams() -> None:
    kinesis = client("kinesis")
    existing = set(kinesis.list_streams()["StreamNames"])
    for name, shards in STREAM_SHARDS.items():
        if name not in existing:
            kinesis.create_stream(StreamName=name, ShardCount=shards)
    for name in STREAM_SHARDS:
        kinesis.get_waiter("stream_exists").wait(
            StreamName=name, WaiterConfig={"Delay": 0.2, "MaxAttempts": 150}
        )


def _create_bucket() -> None:
    s3 = client("s3")
    try:
        s3.create_bucket(Bucket=ARCHIVE_BUCKET)
    except ClientError as err:
        if err.response["Error"]["Code"] not in {"BucketAlreadyOwnedByYou", "BucketAlreadyExists"}:
            raise


def _queue(sqs, name: str) -> tuple[str, str]:
    url = sqs.create_queue(QueueName=name)["QueueUrl"]
    attributes = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])
    return url, attributes["Attributes"]["QueueArn"]


def _create_alerting() -> dict[str, str]:
    sns, sqs = client("sns"), client("sqs")
    topic_arn = sns.create_topic(Name=ALERT_TOPIC)["TopicArn"]
    dlq_url, dlq_arn = _queue(sqs, ALERT_DLQ)
    queue_url, queue_arn = _queue(sqs, ALERT_SUBSCRIBER_QUEUE)
    policy = {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": {"Service": "sns.amazonaws.com"},
                "Action": "sqs:SendMessage",
                "Resource": queue_arn,
                "Condition": {"ArnEquals": {"aws:SourceArn": topic_arn}},
            }
        ],
    }
    sqs.set_queue_attributes(QueueUrl=queue_url, Attributes={"Policy": json.dumps(policy)})
    subscriptions = sns.list_subscriptions_by_topic(TopicArn=topic_arn)["Subscriptions"]
    if not any(s["Endpoint"] == queue_arn for s in subscriptions):
        sns.subscribe(
            TopicArn=topic_arn,
            Protocol="sqs",
            Endpoint=queue_arn,
            Attributes={"RawMessageDelivery": "false"},
        )
    return {
        "alert_topic_arn": topic_arn,
        "alert_subscriber_queue_url": queue_url,
        "alert_subscriber_queue_arn": queue_arn,
        "alert_dlq_url": dlq_url,
        "alert_dlq_arn": dlq_arn,
    }


def _create_tables() -> None:
    dynamodb = client("dynamodb")
    existing = set(dynamodb.list_tables()["TableNames"])
    for table, (key, ttl_attribute) in TABLE_KEYS.items():
        if table not in existing:
            dynamodb.create_table(
                TableName=table,
                AttributeDefinitions=[{"AttributeName": key, "AttributeType": "S"}],
                KeySchema=[{"AttributeName": key, "KeyType": "HASH"}],
                BillingMode="PAY_PER_REQUEST",
            )
            dynamodb.get_waiter("table_exists").wait(TableName=table)
        ttl = dynamodb.describe_time_to_live(TableName=table)["TimeToLiveDescription"]
        if ttl.get("TimeToLiveStatus") != "ENABLED":
            dynamodb.update_time_to_live(
                TableName=table,
                TimeToLiveSpecification={"Enabled": True, "AttributeName": ttl_attribute},
            )


def status() -> dict[str, object]:
    """What answers, which processes ``up()`` started, and which resources exist."""
    report: dict[str, object] = {}
    for service in SERVICES:
        report[service.name] = {
            "endpoint": f"http://{HOST}:{service.port}",
            "answers": _answers(service),
            "pid": _recorded_pid(service),
        }
    if report[KINESIS_MOCK.name]["answers"]:  # type: ignore[index]
        kinesis = client("kinesis")
        report["streams"] = {
            name: kinesis.describe_stream_summary(StreamName=name)["StreamDescriptionSummary"][
                "OpenShardCount"
            ]
            for name in kinesis.list_streams()["StreamNames"]
        }
    if report[MOTO.name]["answers"]:  # type: ignore[index]
        report["buckets"] = [b["Name"] for b in client("s3").list_buckets()["Buckets"]]
        report["topics"] = [t["TopicArn"] for t in client("sns").list_topics()["Topics"]]
        report["queues"] = client("sqs").list_queues().get("QueueUrls", [])
        report["tables"] = client("dynamodb").list_tables()["TableNames"]
    return report
