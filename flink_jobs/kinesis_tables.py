"""The job's tables on Kinesis and S3 (``job.source = kinesis``), built from stream ARNs.

The connector jar (see :mod:`flink_jobs.aws_connectors`) registers ``'connector' = 'kinesis'``:
a source reading a stream by name and region, and a sink writing with ``PutRecords``. Settings
(property groups ``kinesis`` and ``archive``) carry stream ARNs and an ``s3://`` root; they are
validated here, and :func:`check_reachable` asks the services whether the streams and the bucket
exist, so a bad value fails at start-up naming the setting. Every value reaches SQL quoted.

Where each output goes:

* clicks ← ``kinesis.clicks_stream_arn`` (raw payloads, as the local file source);
* anomalies → ``kinesis.anomalies_stream_arn``, one record per anomaly, partition key
  ``entity_type/entity_id``;
* dead letters → ``kinesis.dead_letter_stream_arn`` (JSON), or ``<archive>/dead-letters/`` if
  that setting is empty;
* scored windows and raw events → ``<archive>/scored-windows/`` and ``<archive>/raw-events/``,
  Parquet (Snappy), Hive-partitioned ``dt=/hour=``, files committed on checkpoints
  (``docs/archive.md``);
* entities dropped to keep each shard within ``scoring.max_entities`` →
  ``<archive>/entity-evictions/``;
* published model versions loaded or rejected (``scoring.model_uri``) →
  ``<archive>/model-events/``.
"""

from __future__ import annotations

import ipaddress
import logging
import re
import socket
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlparse

from flink_jobs.job import JobTables
from flink_jobs.tables import archive_options

log = logging.getLogger(__name__)

STREAM_ARN = re.compile(
    r"^arn:(?P<partition>aws[a-z-]*):kinesis:(?P<region>[a-z]{2}(-[a-z]+)+-\d):"
    r"(?P<account>\d{12}):stream/(?P<name>[A-Za-z0-9_.-]{1,128})$"
)
INITIAL_POSITIONS = ("TRIM_HORIZON", "LATEST", "AT_TIMESTAMP")
#: Partitioner class in the connector jar (deploy/src): key = ``entity_type/entity_id`` of the
#: JSON record in the table's single ``raw`` column.
ENTITY_PARTITIONER = "io.clicksentry.flink.EntityPartitionKeyGenerator"


class SettingError(ValueError):
    """A configuration value that cannot work; the message names the setting."""

    def __init__(self, setting: str, problem: str):
        super().__init__(f"{setting}: {problem}")
        self.setting = setting


@dataclass(frozen=True)
class StreamRef:
    """A Kinesis stream identified by its ARN."""

    arn: str
    region: str
    account: str
    name: str


def parse_stream_arn(arn: str, setting: str) -> StreamRef:
    """Validate a stream ARN; errors name ``setting``.

    >>> parse_stream_arn("arn:aws:kinesis:us-east-1:000000000000:stream/clicks", "x").name
    'clicks'
    >>> parse_stream_arn("clicks", "kinesis.clicks.stream.arn")
    Traceback (most recent call last):
    ...
    flink_jobs.kinesis_tables.SettingError: kinesis.clicks.stream.arn: 'clicks' is not a \
Kinesis stream ARN (arn:aws:kinesis:REGION:ACCOUNT:stream/NAME)
    """
    if not arn:
        group = setting.split(".")[0]
        raise SettingError(setting, f"required (is the property group {group!r} missing?)")
    match = STREAM_ARN.match(arn)
    if match is None:
        raise SettingError(
            setting,
            f"{arn!r} is not a Kinesis stream ARN (arn:aws:kinesis:REGION:ACCOUNT:stream/NAME)",
        )
    return StreamRef(arn, match["region"], match["account"], match["name"])


def _client_options(stream: StreamRef, endpoint: str | None) -> dict[str, str]:
    options = {"connector": "kinesis", "stream": stream.name, "aws.region": stream.region}
    if endpoint:
        options["aws.endpoint"] = endpoint
    return options


def source_options(
    stream: StreamRef,
    endpoint: str | None = None,
    initial_position: str = "TRIM_HORIZON",
    fmt: Mapping[str, str] | None = None,
    records_per_fetch: int = 1000,
) -> dict[str, str]:
    """Options of a table reading ``stream`` (polling ``GetRecords``; uniform shard assignment).

    >>> ref = parse_stream_arn("arn:aws:kinesis:us-east-1:000000000000:stream/c", "s")
    >>> opts = source_options(ref, "http://127.0.0.1:4568")
    >>> opts["stream"], opts["aws.endpoint"], opts["scan.stream.initpos"], opts["format"]
    ('c', 'http://127.0.0.1:4568', 'TRIM_HORIZON', 'raw')
    """
    if initial_position not in INITIAL_POSITIONS:
        raise SettingError(
            "kinesis.initial_position",
            f"{initial_position!r} is not one of {', '.join(INITIAL_POSITIONS)}",
        )
    return {
        **_client_options(stream, endpoint),
        "scan.stream.initpos": initial_position,
        # each source subtask reads its share of shards (job parallelism = shard count gives one
        # shard a subtask, so each shard keeps its own watermark)
        "scan.shard-assigner": "uniform",
        "scan.shard.getrecords.maxrecordcount": str(records_per_fetch),
        **(fmt or {"format": "raw"}),
    }


def is_loopback_http(endpoint: str | None) -> bool:
    """Whether ``endpoint`` is plain ``http://`` on loopback (127.0.0.0/8, ``localhost``, ::1).

    >>> is_loopback_http("http://127.0.0.1:4568"), is_loopback_http("http://[::1]:4568")
    (True, True)
    >>> is_loopback_http("https://127.0.0.1:4567"), is_loopback_http("http://10.0.0.5:4568")
    (False, False)
    """
    if not endpoint:
        return False
    parsed = urlparse(endpoint)
    if parsed.scheme != "http" or not parsed.hostname:
        return False
    if parsed.hostname.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(parsed.hostname).is_loopback
    except ValueError:
        return False


#: ``PutRecords`` takes at most 5 MiB per call (and 500 records, 1 MiB per record).
PUT_RECORDS_MAX_BYTES = 5 * 1024 * 1024
#: Bounded buffering per sink subtask (the async sink's options). A full buffer blocks the
#: writer, so a throttled stream slows the job down (backpressure) instead of growing memory or
#: checkpoint state without bound; every buffered record is in the checkpoint and is drained
#: before the checkpoint completes. See docs/kinesis.md.
ANOMALY_SINK_BUFFERING = {"batch": 500, "buffered": 2000, "inflight": 16, "timeout_ms": 1000}
#: Dead letters carry a raw payload (capped by the job so that one record stays under 1 MiB),
#: so fewer are buffered: at most 100 records, whatever their size.
DEAD_LETTER_SINK_BUFFERING = {"batch": 50, "buffered": 100, "inflight": 8, "timeout_ms": 1000}


def sink_options(
    stream: StreamRef,
    endpoint: str | None = None,
    fmt: Mapping[str, str] | None = None,
    partitioner: str | None = None,
    buffering: Mapping[str, int] | None = None,
) -> dict[str, str]:
    """Options of a table writing to ``stream`` with ``PutRecords``.

    Partition keys come from ``PARTITIONED BY`` columns, or from ``partitioner`` (``"random"``,
    or a class such as :data:`ENTITY_PARTITIONER` for a single ``raw`` JSON column).

    Failed entries are retried, not fatal (``sink.fail-on-error`` off: the sink requeues the
    entries a ``PutRecords`` reply reports as throttled), and the buffer is bounded
    (``buffering``, default :data:`ANOMALY_SINK_BUFFERING`), so throttling becomes
    backpressure rather than a restart loop.

    >>> ref = parse_stream_arn("arn:aws:kinesis:us-east-1:000000000000:stream/a", "s")
    >>> opts = sink_options(ref)
    >>> opts["sink.fail-on-error"], opts["sink.batch.max-size"], opts["sink.flush-buffer.size"]
    ('false', '500', '5242880')
    >>> opts["sink.requests.max-buffered"], opts["sink.requests.max-inflight"]
    ('2000', '16')
    >>> "aws.endpoint" in opts, "aws.trust.all.certificates" in opts
    (False, False)

    Certificates are trusted blindly only for the local emulators: plain ``http://`` on
    loopback, where the SDK v2 client is also told to speak HTTP/1.1 (no HTTP/2 without TLS).
    Any ``https://`` endpoint — a VPC or FIPS endpoint, even one on loopback — is verified:

    >>> local = sink_options(ref, "http://127.0.0.1:4568")
    >>> local["aws.trust.all.certificates"], local["aws.http.protocol.version"]
    ('true', 'HTTP1_1')
    >>> tls_local = sink_options(ref, "https://127.0.0.1:4567")
    >>> "aws.trust.all.certificates" in tls_local, "aws.http.protocol.version" in tls_local
    (False, False)
    >>> vpc = sink_options(ref, "https://vpce-0a1b.kinesis.us-east-1.vpce.amazonaws.com")
    >>> vpc["aws.endpoint"], "aws.trust.all.certificates" in vpc
    ('https://vpce-0a1b.kinesis.us-east-1.vpce.amazonaws.com', False)
    """
    buffer = {**ANOMALY_SINK_BUFFERING, **(buffering or {})}
    options = {**_client_options(stream, endpoint), **(fmt or {"format": "json"})}
    if partitioner:
        options["sink.partitioner"] = partitioner
    if endpoint and urlparse(endpoint).scheme == "http":
        options["aws.http.protocol.version"] = "HTTP1_1"
    if is_loopback_http(endpoint):
        options["aws.trust.all.certificates"] = "true"
    options.update(
        {
            "sink.fail-on-error": "false",
            "sink.batch.max-size": str(buffer["batch"]),
            "sink.flush-buffer.size": str(PUT_RECORDS_MAX_BYTES),
            "sink.requests.max-buffered": str(buffer["buffered"]),
            "sink.requests.max-inflight": str(buffer["inflight"]),
            "sink.flush-buffer.timeout": str(buffer["timeout_ms"]),
        }
    )
    return options


def s3_archive_options(path: str, setting: str, roll_every: str = "10 s") -> dict[str, str]:
    """Options of a JSON-lines file sink on ``s3://``; files roll often so checkpoints commit them.

    >>> s3_archive_options("s3://bucket/archive/", "x")["path"]
    's3://bucket/archive/'
    >>> s3_archive_options("/tmp/out", "archive.path")
    Traceback (most recent call last):
    ...
    flink_jobs.kinesis_tables.SettingError: archive.path: '/tmp/out' is not an s3:// path
    """
    if not re.match(r"^s3a?://[a-z0-9][a-z0-9.-]{1,61}[a-z0-9](/|$)", path or ""):
        raise SettingError(setting, f"{path!r} is not an s3:// path")
    return {
        "connector": "filesystem",
        "path": path,
        "format": "json",
        "sink.rolling-policy.rollover-interval": roll_every,
        "sink.rolling-policy.inactivity-interval": roll_every,
        "sink.rolling-policy.check-interval": "1 s",
    }


@dataclass(frozen=True)
class KinesisSettings:
    """The validated ``kinesis`` and ``archive`` property groups."""

    clicks: StreamRef
    anomalies: StreamRef
    dead_letters: StreamRef | None
    endpoint: str | None
    initial_position: str
    archive: str
    s3_endpoint: str | None
    #: Writers of each Parquet archive (``archive.writers``).
    writers: int = 1

    @property
    def region(self) -> str:
        """The clicks stream's region (every stream and the bucket are expected in it)."""
        return self.clicks.region


def _endpoint(value: str, setting: str) -> str | None:
    if not value:
        return None
    parsed = urlparse(value)
    if parsed.scheme not in {"http", "https"} or not parsed.hostname:
        raise SettingError(setting, f"{value!r} is not an http(s):// URL")
    return value.rstrip("/")


def settings_from(groups: Mapping[str, Mapping[str, Any]]) -> KinesisSettings:
    """Validate the ``kinesis`` and ``archive`` groups (parsed values by group and key).

    >>> arn = "arn:aws:kinesis:us-east-1:000000000000:stream/"
    >>> s = settings_from({"kinesis": {"clicks_stream_arn": arn + "c",
    ...     "anomalies_stream_arn": arn + "a", "dead_letter_stream_arn": "",
    ...     "endpoint": "http://127.0.0.1:4568", "initial_position": "TRIM_HORIZON"},
    ...     "archive": {"path": "s3://bucket/x", "s3_endpoint": ""}})
    >>> s.clicks.name, s.dead_letters, s.archive
    ('c', None, 's3://bucket/x/')
    >>> settings_from({"archive": {}})
    Traceback (most recent call last):
    ...
    flink_jobs.kinesis_tables.SettingError: kinesis.clicks_stream_arn: required (is the \
property group 'kinesis' missing?)
    """
    kinesis, archive = groups.get("kinesis", {}), groups.get("archive", {})
    clicks = parse_stream_arn(kinesis.get("clicks_stream_arn", ""), "kinesis.clicks_stream_arn")
    anomalies = parse_stream_arn(
        kinesis.get("anomalies_stream_arn", ""), "kinesis.anomalies_stream_arn"
    )
    dead = kinesis.get("dead_letter_stream_arn", "")
    path = archive.get("path", "")
    s3_archive_options(path, "archive.path")
    position = kinesis.get("initial_position", "TRIM_HORIZON")
    if position not in INITIAL_POSITIONS[:2]:
        raise SettingError(
            "kinesis.initial_position", f"{position!r} is not TRIM_HORIZON or LATEST"
        )
    return KinesisSettings(
        clicks=clicks,
        anomalies=anomalies,
        dead_letters=parse_stream_arn(dead, "kinesis.dead_letter_stream_arn") if dead else None,
        endpoint=_endpoint(kinesis.get("endpoint", ""), "kinesis.endpoint"),
        initial_position=position,
        archive=path.rstrip("/") + "/",
        s3_endpoint=_endpoint(archive.get("s3_endpoint", ""), "archive.s3_endpoint"),
        writers=int(archive.get("writers", 1)),
    )


def job_tables(settings: KinesisSettings) -> JobTables:
    """The :class:`~flink_jobs.job.JobTables` of the job on Kinesis and S3."""
    json_lines = {"format": "json"}
    if settings.dead_letters is not None:
        dead_letters = sink_options(
            settings.dead_letters,
            settings.endpoint,
            json_lines,
            "random",
            DEAD_LETTER_SINK_BUFFERING,
        )
    else:
        dead_letters = s3_archive_options(settings.archive + "dead-letters/", "archive.path")
    return JobTables(
        source=source_options(settings.clicks, settings.endpoint, settings.initial_position),
        dead_letters=dead_letters,
        anomalies=sink_options(
            settings.anomalies, settings.endpoint, {"format": "raw"}, ENTITY_PARTITIONER
        ),
        scored_windows=archive_options(settings.archive + "scored-windows/", settings.writers),
        raw_events=archive_options(settings.archive + "raw-events/", settings.writers),
        entity_evictions=s3_archive_options(
            settings.archive + "entity-evictions/", "archive.path"
        ),
        model_events=s3_archive_options(settings.archive + "model-events/", "archive.path"),
    )


def _reach(endpoint: str, setting: str, timeout_s: float = 3.0) -> None:
    parsed = urlparse(endpoint)
    port = parsed.port or (443 if parsed.scheme == "https" else 80)
    try:
        socket.create_connection((parsed.hostname, port), timeout=timeout_s).close()
    except OSError as err:
        raise SettingError(setting, f"cannot connect to {endpoint} ({err})") from None


def check_reachable(
    settings: KinesisSettings, credentials: Mapping[str, str] | None = None
) -> None:
    """Ask the services whether every configured stream and the archive bucket exist.

    Raises :class:`SettingError` naming the first setting that cannot work: an endpoint that
    does not answer, a stream ARN that names no stream, a bucket that does not exist.
    """
    import boto3
    from botocore.config import Config
    from botocore.exceptions import BotoCoreError, ClientError

    for endpoint, setting in (
        (settings.endpoint, "kinesis.endpoint"),
        (settings.s3_endpoint, "archive.s3_endpoint"),
    ):
        if endpoint:
            _reach(endpoint, setting)
    config = Config(
        connect_timeout=5,
        read_timeout=10,
        retries={"max_attempts": 2},
        s3={"addressing_style": "path"},
    )
    kinesis = boto3.client(
        "kinesis",
        region_name=settings.region,
        endpoint_url=settings.endpoint,
        config=config,
        **(credentials or {}),
    )
    streams = [
        ("kinesis.clicks_stream_arn", settings.clicks),
        ("kinesis.anomalies_stream_arn", settings.anomalies),
    ]
    if settings.dead_letters is not None:
        streams.append(("kinesis.dead_letter_stream_arn", settings.dead_letters))
    for setting, stream in streams:
        try:
            kinesis.describe_stream_summary(StreamARN=stream.arn)
        except ClientError as err:
            raise SettingError(
                setting,
                f"stream {stream.arn}: {err.response['Error']['Code']}: "
                f"{err.response['Error'].get('Message', '')}",
            ) from None
        except BotoCoreError as err:
            raise SettingError(setting, f"stream {stream.arn}: {err}") from None
    bucket = urlparse(settings.archive).netloc
    s3 = boto3.client(
        "s3",
        region_name=settings.region,
        endpoint_url=settings.s3_endpoint,
        config=config,
        **(credentials or {}),
    )
    try:
        s3.head_bucket(Bucket=bucket)
    except ClientError as err:
        code = err.response["Error"]["Code"]
        raise SettingError("archive.path", f"bucket {bucket!r}: {code}") from None
    except BotoCoreError as err:
        raise SettingError("archive.path", f"bucket {bucket!r}: {err}") from None
    log.info("kinesis streams and archive bucket %s answer", bucket)
