"""A wrong Kinesis/S3 setting stops `clicksentry run` at start-up, naming the setting."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from flink_jobs import kinesis_tables
from flink_jobs.config import load_config
from localdev import stack
from models.registry import DEFAULT_DETECTOR

pytestmark = pytest.mark.integration

CLICKSENTRY = str(Path(sys.executable).with_name("clicksentry"))


def properties(tmp_path, **groups):
    path = tmp_path / "application_properties.json"
    path.write_text(
        json.dumps([{"PropertyGroupId": g, "PropertyMap": m} for g, m in groups.items()])
    )
    return path


def good_groups(aws_stack):
    return {
        "job": {"source": "kinesis"},
        "kinesis": {
            "clicks_stream_arn": aws_stack.clicks_stream_arn,
            "anomalies_stream_arn": aws_stack.anomalies_stream_arn,
            "endpoint": aws_stack.kinesis_endpoint,
        },
        "archive": {
            "path": f"s3://{aws_stack.archive_bucket}/",
            "s3_endpoint": aws_stack.moto_endpoint,
        },
    }


def run(path, env):
    return subprocess.run(
        [CLICKSENTRY, "run", "--properties", str(path)],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            {"kinesis": {"clicks_stream_arn": stack.stream_arn("no-such-stream")}},
            "kinesis.clicks_stream_arn: stream arn:aws:kinesis:us-east-1:000000000000:"
            "stream/no-such-stream: ResourceNotFoundException",
        ),
        ({"kinesis": {"endpoint": "http://127.0.0.1:9"}}, "kinesis.endpoint: cannot connect"),
        ({"kinesis": None}, "kinesis.clicks_stream_arn: required (is the property group"),
        ({"archive": {"path": "s3://no-such-bucket/"}}, "archive.path: bucket 'no-such-bucket'"),
        ({"kinesis": {"anomalies_stream_arn": "clicksentry-anomalies"}}, "is not a Kinesis"),
    ],
    ids=["unknown-stream", "unreachable-endpoint", "missing-group", "unknown-bucket", "not-an-arn"],
)
def test_bad_setting_fails_at_start_up_naming_it(
    aws_stack, tmp_path, subprocess_env, change, message
):
    # GIVEN otherwise good properties with one wrong setting
    groups = good_groups(aws_stack)
    for group, values in change.items():
        if values is None:
            del groups[group]
        else:
            groups[group] = {**groups[group], **values}
    # WHEN the job is started
    result = run(properties(tmp_path, **groups), subprocess_env)
    # THEN it stops before any Flink job, naming the setting
    assert result.returncode == 2, result.stdout + result.stderr
    assert "configuration error: " in result.stdout
    assert message in result.stdout, result.stdout
    assert "job " not in result.stdout.split("configuration error")[0]


ROOT = Path(__file__).resolve().parents[2]
SHIPPED = ROOT / "deploy" / "managed_flink" / "application_properties.json"
LOCAL = ROOT / "localdev" / "application_properties.local.json"
ARN = stack.stream_arn("clicksentry-anomalies")


def sample_groups(path):
    return {g["PropertyGroupId"]: g["PropertyMap"] for g in json.loads(path.read_text())}


@pytest.mark.parametrize(
    ("endpoint", "trust_all", "http1"),
    [
        ("http://127.0.0.1:4568", True, True),
        ("http://localhost:4568", True, True),
        ("http://[::1]:4568", True, True),
        ("https://127.0.0.1:4567", False, False),
        ("https://vpce-0abc-12345678.kinesis.us-east-1.vpce.amazonaws.com", False, False),
        ("https://kinesis-fips.us-east-1.amazonaws.com", False, False),
        ("http://10.0.0.7:4568", False, True),
        (None, False, False),
    ],
)
def test_certificates_are_trusted_blindly_only_on_plain_http_loopback(endpoint, trust_all, http1):
    # GIVEN a sink on an endpoint WHEN its options are built
    options = kinesis_tables.sink_options(kinesis_tables.parse_stream_arn(ARN, "s"), endpoint)
    # THEN trust-all is set only for http:// on loopback; https:// keeps verification
    assert ("aws.trust.all.certificates" in options) is trust_all
    assert (options.get("aws.http.protocol.version") == "HTTP1_1") is http1


def test_sinks_retry_failed_entries_with_bounded_buffers():
    # GIVEN the job's tables on Kinesis WHEN their options are built
    settings = kinesis_tables.settings_from(load_config(SHIPPED).values)
    tables = kinesis_tables.job_tables(settings)
    for sink in (tables.anomalies, tables.dead_letters):
        # THEN a throttled entry is retried by the sink, never fatal (no restart loop)
        assert sink["sink.fail-on-error"] == "false"
        # AND PutRecords calls stay within 500 records / 5 MiB, buffers are bounded
        assert 1 <= int(sink["sink.batch.max-size"]) <= 500
        assert int(sink["sink.flush-buffer.size"]) == 5 * 1024 * 1024
        assert int(sink["sink.batch.max-size"]) < int(sink["sink.requests.max-buffered"])
    # AND dead letters (each up to ~1 MiB) buffer at most 100 records
    assert int(tables.dead_letters["sink.requests.max-buffered"]) <= 100


def test_the_shipped_sample_is_production_shaped():
    # GIVEN the properties shipped in the Managed Flink zip
    groups = sample_groups(SHIPPED)
    config = load_config(SHIPPED)
    settings = kinesis_tables.settings_from(config.values)
    # THEN they name no emulator endpoint and no local-only setting
    assert settings.endpoint is None and settings.s3_endpoint is None
    assert "127.0.0.1" not in SHIPPED.read_text() and "localhost" not in SHIPPED.read_text()
    # AND placeholder ARNs with an obvious account to replace, in one region
    streams = [settings.clicks, settings.anomalies, settings.dead_letters]
    assert {(s.account, s.region) for s in streams} == {("123456789012", "us-east-1")}
    # AND the default detector, and an idle timeout as documented (a quiet shard cannot hold
    # every window back)
    assert "detector" not in groups["scoring"]
    assert config.get("scoring", "detector") == DEFAULT_DETECTOR
    assert config.get("job", "idle_timeout_ms") > 0


def test_the_local_sample_is_the_shipped_one_on_the_emulators():
    # GIVEN the local sample WHEN compared with the shipped one
    local, shipped = sample_groups(LOCAL), sample_groups(SHIPPED)
    # THEN it has the same groups, pointed at the emulators on loopback
    assert local.keys() == shipped.keys()
    assert kinesis_tables.is_loopback_http(local["kinesis"]["endpoint"])
    assert kinesis_tables.is_loopback_http(local["archive"]["s3_endpoint"])
    assert local["kinesis"]["clicks_stream_arn"] == stack.stream_arn(stack.CLICKS_STREAM)
