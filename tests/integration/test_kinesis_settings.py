"""A wrong Kinesis/S3 setting stops `clicksentry run` at start-up, naming the setting."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from localdev import stack

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
