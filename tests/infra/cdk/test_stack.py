"""CDK assertions on the clicksentry stack: encryption, least privilege, the job, alerting, alarms.

GIVEN the stack synthesised from deploy/infra/app.py; THEN every stream, the bucket, every
table, topic, queue and log group is encrypted with the stack's own rotated KMS key, no IAM
statement allows a wildcard action and ``Resource: "*"`` appears only in the key's own policy,
the Managed Flink application runs FLINK-1_20 with checkpoints and snapshots, the alerting
Lambda's mapping reports partial batch failures and bisects, and at least six alarms notify the
operator topic, with the dashboard built on the job's metric names.
"""

from __future__ import annotations

import json

from aws_cdk.assertions import Match

JOB_METRICS = (
    "eventsIn",
    "deadLetters",
    "windowsScored",
    "anomalies",
    "entitiesEvicted",
    "entitiesTracked",
    "modelAgeWindows",
    "watermarkLagMs",
)
ALERT_METRICS = ("AlertsSent", "AlertsSuppressed", "Duplicates", "PoisonRecords")


def key_id(template) -> str:
    [logical] = template.find_resources("AWS::KMS::Key")
    return logical


def key_arn(template) -> dict:
    return {"Fn::GetAtt": [key_id(template), "Arn"]}


def test_one_customer_managed_key_rotated(template):
    template.resource_count_is("AWS::KMS::Key", 1)
    template.has_resource_properties("AWS::KMS::Key", {"EnableKeyRotation": True})


def test_every_stream_bucket_table_topic_queue_and_log_group_uses_the_key(template):
    arn, ref = key_arn(template), {"Ref": key_id(template)}
    checks = {
        "AWS::Kinesis::Stream": (3, {"StreamEncryption": {"EncryptionType": "KMS", "KeyId": arn}}),
        "AWS::S3::Bucket": (
            1,
            {
                "BucketEncryption": {
                    "ServerSideEncryptionConfiguration": [
                        {
                            "ServerSideEncryptionByDefault": {
                                "SSEAlgorithm": "aws:kms",
                                "KMSMasterKeyID": arn,
                            },
                            "BucketKeyEnabled": True,
                        }
                    ]
                }
            },
        ),
        "AWS::DynamoDB::Table": (
            2,
            {"SSESpecification": {"SSEEnabled": True, "KMSMasterKeyId": arn, "SSEType": "KMS"}},
        ),
        "AWS::SNS::Topic": (2, {"KmsMasterKeyId": arn}),
        "AWS::SQS::Queue": (2, {"KmsMasterKeyId": arn}),
        "AWS::Logs::LogGroup": (4, {"KmsKeyId": arn}),
    }
    for kind, (count, encryption) in checks.items():
        resources = template.find_resources(kind, {"Properties": encryption})
        assert len(resources) == count == len(template.find_resources(kind)), kind
    template.has_resource_properties(
        "AWS::KinesisAnalyticsV2::Application",
        {
            "ApplicationConfiguration": Match.object_like(
                {
                    "ApplicationEncryptionConfiguration": {
                        "KeyType": "CUSTOMER_MANAGED_KEY",
                        "KeyId": arn,
                    }
                }
            ),
        },
    )
    template.has_resource_properties("AWS::Lambda::Function", {"KmsKeyArn": arn})
    assert ref  # the key is referenced by ARN everywhere


def test_bucket_blocks_public_access_requires_tls_versions_and_expires_raw_events(template):
    template.has_resource_properties(
        "AWS::S3::Bucket",
        {
            "PublicAccessBlockConfiguration": {
                "BlockPublicAcls": True,
                "BlockPublicPolicy": True,
                "IgnorePublicAcls": True,
                "RestrictPublicBuckets": True,
            },
            "VersioningConfiguration": {"Status": "Enabled"},
            "LifecycleConfiguration": {
                "Rules": Match.array_with(
                    [
                        Match.object_like(
                            {
                                "Prefix": "raw-events/",
                                "ExpirationInDays": {"Ref": "RawEventsRetentionDays"},
                            }
                        )
                    ]
                )
            },
        },
    )
    template.has_resource_properties(
        "AWS::S3::BucketPolicy",
        {
            "PolicyDocument": {
                "Statement": Match.array_with(
                    [
                        Match.object_like(
                            {
                                "Effect": "Deny",
                                "Condition": {"Bool": {"aws:SecureTransport": "false"}},
                            }
                        )
                    ]
                )
            }
        },
    )


def statements(template):
    """Every IAM statement: (resource kind, logical id, statement)."""
    for kind, path in (
        ("AWS::IAM::Policy", ("PolicyDocument",)),
        ("AWS::IAM::ManagedPolicy", ("PolicyDocument",)),
        ("AWS::IAM::Role", ("AssumeRolePolicyDocument",)),
        ("AWS::KMS::Key", ("KeyPolicy",)),
        ("AWS::S3::BucketPolicy", ("PolicyDocument",)),
        ("AWS::SNS::TopicPolicy", ("PolicyDocument",)),
        ("AWS::SQS::QueuePolicy", ("PolicyDocument",)),
    ):
        for logical, resource in template.find_resources(kind).items():
            document = resource["Properties"]
            for step in path:
                document = document[step]
            for statement in document["Statement"]:
                yield kind, logical, statement


def as_list(value):
    return value if isinstance(value, list) else [value]


def test_no_allow_statement_has_a_wildcard_action(template):
    # A Deny refusing non-TLS requests must cover every action: the only wildcards allowed.
    wildcards = [
        (logical, statement["Action"])
        for kind, logical, statement in statements(template)
        for action in as_list(statement.get("Action", []))
        if "*" in action
        and not (
            statement["Effect"] == "Deny"
            and statement.get("Condition") == {"Bool": {"aws:SecureTransport": "false"}}
        )
    ]
    assert wildcards == []
    assert not [s for _, _, s in statements(template) if "NotAction" in s]


def test_resource_star_only_in_the_key_policy(template):
    stars = [
        (kind, logical)
        for kind, logical, statement in statements(template)
        if "*" in as_list(statement.get("Resource", [])) and kind != "AWS::KMS::Key"
    ]
    assert stars == []
    template.resource_count_is("AWS::IAM::ManagedPolicy", 0)
    for role in template.find_resources("AWS::IAM::Role").values():
        assert "ManagedPolicyArns" not in role["Properties"]


def test_flink_application_on_1_20_with_checkpoints_snapshots_and_parameters(template):
    template.has_resource_properties(
        "AWS::KinesisAnalyticsV2::Application",
        {
            "RuntimeEnvironment": "FLINK-1_20",
            "ApplicationConfiguration": Match.object_like(
                {
                    "ApplicationSnapshotConfiguration": {"SnapshotsEnabled": True},
                    "FlinkApplicationConfiguration": {
                        "CheckpointConfiguration": Match.object_like(
                            {"ConfigurationType": "CUSTOM", "CheckpointingEnabled": True}
                        ),
                        "MonitoringConfiguration": Match.object_like(
                            {"ConfigurationType": "CUSTOM"}
                        ),
                        "ParallelismConfiguration": {
                            "ConfigurationType": "CUSTOM",
                            "Parallelism": {"Ref": "Parallelism"},
                            "ParallelismPerKPU": {"Ref": "ParallelismPerKpu"},
                            "AutoScalingEnabled": {"Fn::If": ["AutoScalingOn", True, False]},
                        },
                    },
                    "ApplicationCodeConfiguration": Match.object_like(
                        {"CodeContentType": "ZIPFILE"}
                    ),
                }
            ),
        },
    )
    template.resource_count_is("AWS::KinesisAnalyticsV2::ApplicationCloudWatchLoggingOption", 1)


def test_restore_keeps_every_operators_state_unless_an_update_says_otherwise(template):
    # The models live in the snapshot: an update that cannot restore all of it fails, unless
    # the AllowNonRestoredState parameter (default false) is set for that one update.
    template.has_parameter("AllowNonRestoredState", {"Default": "false",
                                                     "AllowedValues": ["false", "true"]})
    template.has_resource_properties(
        "AWS::KinesisAnalyticsV2::Application",
        {
            "RunConfiguration": {
                "ApplicationRestoreConfiguration": {
                    "ApplicationRestoreType": "RESTORE_FROM_LATEST_SNAPSHOT"
                },
                "FlinkRunConfiguration": {
                    "AllowNonRestoredState": {"Fn::If": ["NonRestoredStateAllowed", True, False]}
                },
            }
        },
    )


def test_alerting_lambda_and_its_mapping(template):
    template.has_resource_properties(
        "AWS::Lambda::Function",
        {
            "Runtime": "python3.11",
            "Handler": "alerting.handler.lambda_handler",
        },
    )
    template.has_resource_properties(
        "AWS::Lambda::EventSourceMapping",
        {
            "FunctionResponseTypes": ["ReportBatchItemFailures"],
            "BisectBatchOnFunctionError": True,
            "MaximumRetryAttempts": Match.any_value(),
            "MaximumRecordAgeInSeconds": Match.any_value(),
            "DestinationConfig": {"OnFailure": {"Destination": Match.any_value()}},
        },
    )
    for table in template.find_resources("AWS::DynamoDB::Table").values():
        props = table["Properties"]
        assert props["TimeToLiveSpecification"]["Enabled"] is True
        assert props["PointInTimeRecoverySpecification"] == {"PointInTimeRecoveryEnabled": True}


def test_ingest_api_key_usage_plan_throttling_and_access_logs(template):
    template.resource_count_is("AWS::ApiGateway::Method", 2)
    template.has_resource_properties(
        "AWS::ApiGateway::UsagePlan",
        {
            "Throttle": {
                "RateLimit": {"Ref": "IngestRateLimit"},
                "BurstLimit": {"Ref": "IngestBurstLimit"},
            },
        },
    )
    template.has_resource_properties(
        "AWS::ApiGateway::Stage",
        {
            "AccessLogSetting": Match.object_like({"DestinationArn": Match.any_value()}),
        },
    )
    template.resource_count_is("AWS::ApiGateway::ApiKey", 1)


def test_glue_catalog_has_three_projected_tables(template):
    template.resource_count_is("AWS::Glue::Database", 1)
    tables = template.find_resources("AWS::Glue::Table")
    assert sorted(t["Properties"]["TableInput"]["Name"] for t in tables.values()) == [
        "dead_letters",
        "raw_events",
        "scored_windows",
    ]
    for table in tables.values():
        assert table["Properties"]["TableInput"]["Parameters"]["projection.enabled"] == "true"


def test_at_least_six_alarms_all_notifying_the_operator_topic(template):
    alarms = template.find_resources("AWS::CloudWatch::Alarm")
    assert len(alarms) >= 6
    [topic] = [
        logical
        for logical, r in template.find_resources("AWS::SNS::Topic").items()
        if r["Properties"]["TopicName"] == "clicksentry-operators"
    ]
    for alarm in alarms.values():
        assert alarm["Properties"]["AlarmActions"] == [{"Ref": topic}]
    names = {a["Properties"]["AlarmName"] for a in alarms.values()}
    assert {
        "clicksentry-NoScoredWindows",
        "clicksentry-JobDown",
        "clicksentry-JobRestarting",
        "clicksentry-CheckpointFailures",
        "clicksentry-ConsumerLag",
        "clicksentry-DeadLetterRate",
        "clicksentry-AlertsLambdaErrors",
        "clicksentry-AlertsIteratorAge",
    } <= names
    assert any(n.startswith("clicksentry-DepthPoison") for n in names)


def test_dead_man_alarm_needs_arriving_clicks_and_no_scored_windows(template):
    [alarm] = template.find_resources(
        "AWS::CloudWatch::Alarm", {"Properties": {"AlarmName": "clicksentry-NoScoredWindows"}}
    ).values()
    queries = {q["Id"]: q for q in alarm["Properties"]["Metrics"]}
    returned = [q for q in queries.values() if q.get("ReturnData", True)]
    assert [q["Expression"] for q in returned] == ["IF(events > 0 AND scored <= 0, 1, 0)"]
    assert queries["events"]["MetricStat"]["Metric"]["MetricName"] == "IncomingRecords"
    text = json.dumps(alarm)
    assert '"MetricName": "windowsScored"' in text


def test_dashboard_shows_the_jobs_and_the_lambdas_metrics(template):
    [dashboard] = template.find_resources("AWS::CloudWatch::Dashboard").values()
    body = json.dumps(dashboard["Properties"]["DashboardBody"])
    for name in JOB_METRICS + ALERT_METRICS + ("millisBehindLatest", "lastCheckpointDuration"):
        assert f'\\"{name}\\"' in body, name
    assert dashboard["Properties"]["DashboardName"] == "clicksentry"


def test_services_that_use_the_key_or_the_operator_topic_on_their_own_are_let_in(template):
    [key] = template.find_resources("AWS::KMS::Key").values()
    services = [
        sorted(as_list(s["Principal"]["Service"]), key=json.dumps)
        for s in key["Properties"]["KeyPolicy"]["Statement"]
        if "Service" in s["Principal"]
    ]
    # Managed Flink's application storage; alarms publishing to the encrypted operator topic
    assert [
        "infrastructure.kinesisanalytics.amazonaws.com",
        "kinesisanalytics.amazonaws.com",
    ] in services
    assert ["cloudwatch.amazonaws.com"] in services
    template.has_resource_properties(
        "AWS::SNS::TopicPolicy",
        {
            "PolicyDocument": {
                "Statement": Match.array_with(
                    [
                        Match.object_like(
                            {
                                "Effect": "Allow",
                                "Action": "sns:Publish",
                                "Principal": {"Service": "cloudwatch.amazonaws.com"},
                            }
                        )
                    ]
                )
            },
        },
    )
