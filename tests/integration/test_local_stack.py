import json

import pytest

from localdev import stack

pytestmark = pytest.mark.integration


def test_streams_exist_with_their_shard_counts(aws_stack):
    # GIVEN the stack is up
    kinesis = aws_stack.client("kinesis")
    # WHEN the streams are described by ARN
    shards = {
        name: kinesis.describe_stream_summary(StreamARN=stack.stream_arn(name))[
            "StreamDescriptionSummary"
        ]["OpenShardCount"]
        for name in stack.STREAM_SHARDS
    }
    # THEN each is active with its shard count
    assert shards == {
        aws_stack.clicks_stream: 2,
        aws_stack.anomalies_stream: 2,
        aws_stack.dead_letter_stream: 1,
    }


def test_up_is_idempotent_and_starts_nothing_twice(aws_stack):
    # GIVEN the stack is up
    # WHEN up() runs again
    again = stack.up()
    # THEN it starts nothing and reports the same resources
    assert again.started == ()
    assert again.alert_topic_arn == aws_stack.alert_topic_arn
    assert len(aws_stack.client("sns").list_subscriptions()["Subscriptions"]) == 1


def test_topic_delivers_subject_and_attributes_to_the_subscriber_queue(aws_stack):
    # GIVEN the alert topic and its SQS subscription (raw delivery off)
    sns, sqs = aws_stack.client("sns"), aws_stack.client("sqs")
    # WHEN a message with a subject and attributes is published
    sns.publish(
        TopicArn=aws_stack.alert_topic_arn,
        Subject="stack test",
        Message="hello",
        MessageAttributes={"severity": {"DataType": "String", "StringValue": "high"}},
    )
    received = sqs.receive_message(
        QueueUrl=aws_stack.alert_subscriber_queue_url, WaitTimeSeconds=5, MaxNumberOfMessages=10
    )["Messages"]
    for message in received:
        sqs.delete_message(
            QueueUrl=aws_stack.alert_subscriber_queue_url, ReceiptHandle=message["ReceiptHandle"]
        )
    # THEN the subscriber sees the SNS envelope with Subject and MessageAttributes
    envelopes = [json.loads(m["Body"]) for m in received]
    mine = [e for e in envelopes if e.get("Subject") == "stack test"]
    assert mine and mine[0]["Message"] == "hello"
    assert mine[0]["MessageAttributes"]["severity"]["Value"] == "high"


def test_archive_bucket_and_ttl_tables_exist(aws_stack):
    # GIVEN the stack is up
    s3, dynamodb = aws_stack.client("s3"), aws_stack.client("dynamodb")
    # WHEN the bucket and tables are inspected
    buckets = [b["Name"] for b in s3.list_buckets()["Buckets"]]
    ttl = {
        table: dynamodb.describe_time_to_live(TableName=table)["TimeToLiveDescription"]
        for table in (aws_stack.idempotency_table, aws_stack.suppression_table)
    }
    # THEN the archive bucket exists and both tables have TTL on their attribute
    assert aws_stack.archive_bucket in buckets
    assert ttl[aws_stack.idempotency_table]["AttributeName"] == "expiration"
    assert ttl[aws_stack.suppression_table]["AttributeName"] == "expires_at"
    assert {t["TimeToLiveStatus"] for t in ttl.values()} == {"ENABLED"}
