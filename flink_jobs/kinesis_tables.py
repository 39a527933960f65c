"""SQL connector options for Kinesis streams and the S3 archive, built from stream ARNs.

The connector jar (see :mod:`flink_jobs.aws_connectors`) registers ``'connector' = 'kinesis'``:
a source reading a stream by name and region, and a sink writing with ``PutRecords``. Settings
carry stream ARNs, which are validated here and turned into those options, so a bad value fails
at start-up naming the setting. Every value reaches SQL through :func:`with_clause`, quoted.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

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
    match = STREAM_ARN.match(arn or "")
    if match is None:
        raise SettingError(
            setting,
            f"{arn!r} is not a Kinesis stream ARN (arn:aws:kinesis:REGION:ACCOUNT:stream/NAME)",
        )
    return StreamRef(arn, match["region"], match["account"], match["name"])


def quote(value: str) -> str:
    """A SQL string literal.

    >>> quote("it's")
    "'it''s'"
    """
    return "'" + str(value).replace("'", "''") + "'"


def with_clause(options: Mapping[str, str]) -> str:
    """``WITH (...)`` for a CREATE TABLE, every key and value quoted.

    >>> print(with_clause({"connector": "kinesis", "format": "raw"}))
    WITH (
      'connector' = 'kinesis',
      'format' = 'raw'
    )
    """
    body = ",\n".join(f"  {quote(k)} = {quote(v)}" for k, v in options.items())
    return f"WITH (\n{body}\n)"


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
    """Options of a table reading ``stream`` (polling; small fetches keep shards interleaved).

    >>> ref = parse_stream_arn("arn:aws:kinesis:us-east-1:000000000000:stream/c", "s")
    >>> opts = source_options(ref, "http://127.0.0.1:4568")
    >>> opts["stream"], opts["aws.endpoint"], opts["scan.stream.initpos"], opts["format"]
    ('c', 'http://127.0.0.1:4568', 'TRIM_HORIZON', 'raw')
    """
    if initial_position not in INITIAL_POSITIONS:
        raise SettingError(
            "kinesis.source.initial.position",
            f"{initial_position!r} is not one of {', '.join(INITIAL_POSITIONS)}",
        )
    return {
        **_client_options(stream, endpoint),
        "scan.stream.initpos": initial_position,
        "scan.shard.getrecords.maxrecordcount": str(records_per_fetch),
        **(fmt or {"format": "raw"}),
    }


def sink_options(
    stream: StreamRef,
    endpoint: str | None = None,
    fmt: Mapping[str, str] | None = None,
    partitioner: str | None = None,
) -> dict[str, str]:
    """Options of a table writing to ``stream``.

    Partition keys come from ``PARTITIONED BY`` columns, or from ``partitioner`` (``"random"``,
    or a class such as :data:`ENTITY_PARTITIONER` for a single ``raw`` JSON column).

    Against a local endpoint the SDK v2 client is told to speak HTTP/1.1 (plain HTTP has no
    HTTP/2) and to trust the emulator's certificate, as the connector's own tests do.

    >>> ref = parse_stream_arn("arn:aws:kinesis:us-east-1:000000000000:stream/a", "s")
    >>> sink_options(ref, "http://127.0.0.1:4568")["aws.http.protocol.version"]
    'HTTP1_1'
    >>> "aws.endpoint" in sink_options(ref)
    False
    """
    options = {**_client_options(stream, endpoint), **(fmt or {"format": "json"})}
    if partitioner:
        options["sink.partitioner"] = partitioner
    if endpoint:
        options["aws.http.protocol.version"] = "HTTP1_1"
        options["aws.trust.all.certificates"] = "true"
    options["sink.fail-on-error"] = "true"
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
