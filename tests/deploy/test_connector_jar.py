"""The connector uber-jar on the Flink minicluster against kinesis-mock and moto's S3."""

import json
import time
import uuid

import pytest

from flink_jobs import aws_connectors, kinesis_tables
from flink_jobs.tables import with_clause
from localdev import stack

pytestmark = [pytest.mark.integration, pytest.mark.flink]

RECORDS = 300


@pytest.fixture
def streams(aws_stack):
    kinesis = aws_stack.client("kinesis")
    names = {role: f"jar-test-{role}-{uuid.uuid4().hex[:8]}" for role in ("in", "out")}
    for name in names.values():
        kinesis.create_stream(StreamName=name, ShardCount=2)
    for name in names.values():
        kinesis.get_waiter("stream_exists").wait(
            StreamName=name, WaiterConfig={"Delay": 0.2, "MaxAttempts": 100}
        )
    yield {role: stack.stream_arn(name) for role, name in names.items()}
    for name in names.values():
        kinesis.delete_stream(StreamName=name, EnforceConsumerDeletion=True)


def committed_s3_lines(s3, bucket, prefix):
    keys = [
        o["Key"]
        for o in s3.list_objects_v2(Bucket=bucket, Prefix=prefix).get("Contents", [])
        if not o["Key"].rsplit("/", 1)[-1].startswith(("_", "."))
    ]
    return [
        json.loads(line)
        for key in keys
        for line in s3.get_object(Bucket=bucket, Key=key)["Body"].read().decode().splitlines()
    ]


def test_jar_reads_and_writes_kinesis_by_arn_and_archives_to_s3_on_checkpoints(aws_stack, streams):
    from pyflink.datastream import StreamExecutionEnvironment
    from pyflink.table import StreamTableEnvironment

    # GIVEN records on a 2-shard input stream
    kinesis, s3 = aws_stack.client("kinesis"), aws_stack.client("s3")
    kinesis.put_records(
        StreamARN=streams["in"],
        Records=[
            {
                "Data": json.dumps(
                    {"n": i, "entity_type": "ad", "entity_id": f"ad-{i % 7}"}
                ).encode(),
                "PartitionKey": str(i),
            }
            for i in range(RECORDS)
        ],
    )
    prefix = f"jar-test/{uuid.uuid4().hex[:8]}/"
    s3_options = aws_connectors.s3_options(
        aws_stack.moto_endpoint, aws_stack.access_key_id, aws_stack.secret_access_key
    )
    env = StreamExecutionEnvironment.get_execution_environment()
    env.set_parallelism(1)
    env.enable_checkpointing(1000)
    env.add_jars(aws_connectors.jar_url())
    tables = StreamTableEnvironment.create(env)
    aws_connectors.initialize_filesystems(s3_options)
    source = kinesis_tables.source_options(
        kinesis_tables.parse_stream_arn(streams["in"], "in"),
        aws_stack.kinesis_endpoint,
    )
    sink = kinesis_tables.sink_options(
        kinesis_tables.parse_stream_arn(streams["out"], "out"),
        aws_stack.kinesis_endpoint,
        fmt={"format": "raw"},
        partitioner=kinesis_tables.ENTITY_PARTITIONER,
    )
    archive = kinesis_tables.s3_archive_options(
        f"s3://{aws_stack.archive_bucket}/{prefix}", "archive", roll_every="2 s"
    )
    tables.execute_sql(f"CREATE TABLE src (payload STRING) {with_clause(source)}")
    tables.execute_sql(f"CREATE TABLE dst (record STRING) {with_clause(sink)}")
    tables.execute_sql(
        f"CREATE TABLE arc (n INT, entity_id STRING) {with_clause(archive)}"
    )

    # WHEN a job copies the input stream to the output stream and to the S3 archive
    statements = tables.create_statement_set()
    statements.add_insert_sql("INSERT INTO dst SELECT payload FROM src")
    statements.add_insert_sql(
        "INSERT INTO arc SELECT CAST(JSON_VALUE(payload, '$.n') AS INT), "
        "JSON_VALUE(payload, '$.entity_id') FROM src"
    )
    job = statements.execute().get_job_client()
    deadline = time.monotonic() + 120
    try:
        while time.monotonic() < deadline:
            out = [(k, json.loads(d)) for k, d in stack.read_stream(kinesis, streams["out"])]
            archived = committed_s3_lines(s3, aws_stack.archive_bucket, prefix)
            if len(out) >= RECORDS and len(archived) >= RECORDS:
                break
            time.sleep(2)
    finally:
        job.cancel().result()

    # THEN every record reached the output stream whole, keyed entity_type/entity_id,
    # and the archive's committed S3 files hold every record
    assert sorted(r["n"] for _, r in out) == list(range(RECORDS))
    assert all(key == f"ad/{record['entity_id']}" for key, record in out)
    assert sorted(r["n"] for r in archived) == list(range(RECORDS))
