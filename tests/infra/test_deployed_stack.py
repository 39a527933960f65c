"""The synthesised template deploys: moto's CloudFormation creates its resources from it.

GIVEN dist/cloudformation/ (template and assets) deployed into a moto server of this session's
own, as ``cdk deploy`` would (assets to the bootstrap bucket, then CreateStack); THEN the
streams, bucket, tables, topics, queues, key, roles and the Lambda with its event source mapping
exist as the template describes them, and what moto cannot create is only what its
CloudFormation lacks. (moto applies neither stream encryption nor table SSE/TTL from a
template: those are checked on the template itself, in tests/infra/cdk/.)
"""

from __future__ import annotations

import boto3
import pytest

from alerting.config import AlertingConfig

#: Resource types moto's CloudFormation does not implement (and what needs them).
NOT_IN_MOTO = {
    "AWS::KinesisAnalyticsV2::Application",
    "AWS::KinesisAnalyticsV2::ApplicationCloudWatchLoggingOption",
    "AWS::Glue::Database",
    "AWS::Glue::Table",
    "AWS::CloudWatch::Alarm",
    "AWS::CloudWatch::Dashboard",
    "AWS::KinesisFirehose::DeliveryStream",
    "AWS::Logs::LogStream",
    "AWS::S3::BucketPolicy",
    "AWS::SNS::TopicPolicy",
    "AWS::SNS::Subscription",
    "AWS::SQS::QueuePolicy",
    "AWS::ApiGateway::ApiKey",
    "AWS::ApiGateway::Deployment",
    "AWS::ApiGateway::Method",
    "AWS::ApiGateway::Model",
    "AWS::ApiGateway::RequestValidator",
    "AWS::ApiGateway::Stage",
    "AWS::ApiGateway::UsagePlan",
    "AWS::ApiGateway::UsagePlanKey",
}


@pytest.fixture(scope="module")
def aws(moto_endpoint):
    def client(service: str):
        return boto3.client(
            service,
            endpoint_url=moto_endpoint,
            region_name="us-east-1",
            aws_access_key_id="clicksentry",
            aws_secret_access_key="clicksentry",
        )

    return client


def test_moto_creates_every_resource_type_it_implements(deployed, template):
    # WHEN the template is deployed
    created = {kind for kind, _ in deployed.resources.values()}
    # THEN it created the data plane, alerting and IAM, and skipped only what moto lacks
    assert {
        "AWS::Kinesis::Stream",
        "AWS::S3::Bucket",
        "AWS::DynamoDB::Table",
        "AWS::SNS::Topic",
        "AWS::SQS::Queue",
        "AWS::KMS::Key",
        "AWS::IAM::Role",
        "AWS::IAM::Policy",
        "AWS::Lambda::Function",
        "AWS::Lambda::EventSourceMapping",
        "AWS::Logs::LogGroup",
    } <= created
    assert set(deployed.skipped.values()) <= NOT_IN_MOTO
    assert len(deployed.resources) + len(deployed.skipped) == len(template["Resources"])


def test_streams_tables_topics_and_queues_carry_the_stacks_names_and_key(deployed, aws):
    key_arn = deployed.outputs["KeyArn"]
    streams = aws("kinesis").list_streams()["StreamNames"]
    assert sorted(streams) == [
        "clicksentry-anomalies",
        "clicksentry-clicks",
        "clicksentry-dead-letters",
    ]
    assert aws("kms").get_key_rotation_status(KeyId=key_arn)["KeyRotationEnabled"] is True
    sns, sqs = aws("sns"), aws("sqs")
    for topic in ("AlertTopicArn", "OperatorTopicArn"):
        attributes = sns.get_topic_attributes(TopicArn=deployed.outputs[topic])["Attributes"]
        assert attributes["KmsMasterKeyId"] == key_arn
    for queue in ("PoisonQueueUrl", "MappingFailureQueueUrl"):
        attributes = sqs.get_queue_attributes(
            QueueUrl=deployed.outputs[queue], AttributeNames=["All"]
        )["Attributes"]
        assert attributes["KmsMasterKeyId"] == key_arn
    encryption = aws("s3").get_bucket_encryption(Bucket=deployed.outputs["ArchiveBucket"])
    [rule] = encryption["ServerSideEncryptionConfiguration"]["Rules"]
    assert rule["ApplyServerSideEncryptionByDefault"] == {
        "SSEAlgorithm": "aws:kms",
        "KMSMasterKeyID": key_arn,
    }
    tables = aws("dynamodb").list_tables()["TableNames"]
    assert sorted(tables) == ["clicksentry-alert-idempotency", "clicksentry-alert-suppression"]


def test_lambda_reads_the_anomalies_stream_with_partial_batch_responses(deployed, aws):
    lambda_ = aws("lambda")
    function = lambda_.get_function_configuration(FunctionName="clicksentry-alerts")
    assert (function["Runtime"], function["Handler"]) == (
        "python3.11",
        "alerting.handler.lambda_handler",
    )
    [mapping] = lambda_.list_event_source_mappings(FunctionName="clicksentry-alerts")[
        "EventSourceMappings"
    ]
    assert mapping["EventSourceArn"] == deployed.outputs["AnomaliesStreamArn"]
    assert mapping["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    assert mapping["BisectBatchOnFunctionError"] is True
    assert mapping["MaximumRetryAttempts"] == 10
    assert mapping["MaximumRecordAgeInSeconds"] == 86_400
    assert mapping["StartingPosition"] == "LATEST"
    assert mapping["DestinationConfig"]["OnFailure"]["Destination"].endswith(
        ":clicksentry-alerts-mapping-failures"
    )


def test_lambda_environment_is_a_valid_alerting_configuration_linking_the_dashboard(deployed, aws):
    # GIVEN the deployed function's environment (moto hands numbers back unquoted)
    variables = aws("lambda").get_function_configuration(FunctionName="clicksentry-alerts")[
        "Environment"
    ]["Variables"]
    environ = {name: str(value) for name, value in variables.items()}
    # WHEN the handler's cold start validates it
    config = AlertingConfig.from_environ(environ)
    # THEN it names the stack's topic, tables and poison queue, and links to its dashboard
    assert config.topic_arn == deployed.outputs["AlertTopicArn"]
    assert (config.idempotency_table, config.suppression_table) == (
        "clicksentry-alert-idempotency",
        "clicksentry-alert-suppression",
    )
    assert config.dead_letter_queue_url == deployed.outputs["PoisonQueueUrl"]
    assert config.dashboard_url == (
        "https://us-east-1.console.aws.amazon.com/cloudwatch/home?region=us-east-1"
        "#dashboards/dashboard/clicksentry"
    )
    assert environ["POWERTOOLS_METRICS_NAMESPACE"] == "clicksentry/alerts"
