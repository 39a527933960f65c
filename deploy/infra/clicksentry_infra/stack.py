"""The clicksentry stack: streams, archive, Managed Flink job, alerting, ingest, catalog, alarms.

One customer-managed KMS key (rotation on) encrypts every stream, the bucket, the tables, the
topics, the queues, the log groups and the application's storage. Every IAM statement names its
actions one by one and the resources they act on; :mod:`clicksentry_infra.observability` adds
the dashboard and the alarms.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import aws_cdk as cdk
from aws_cdk import aws_apigateway as apigw
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_glue as glue
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kinesis as kinesis
from aws_cdk import aws_kinesisanalyticsv2 as kda
from aws_cdk import aws_kinesisfirehose as firehose
from aws_cdk import aws_kms as kms
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_s3_assets as s3_assets
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from clicksentry_infra import spec
from clicksentry_infra.observability import Observability
from clicksentry_infra.suppressions import skip_checkov

LOG_RETENTION = logs.RetentionDays.ONE_MONTH
#: The Lambda's handler and runtime (deploy/package_lambda.py builds the zip for them).
HANDLER = "alerting.handler.lambda_handler"
#: Athena queries see partitions from this day on (partition projection needs a start).
PROJECTION_START = "2026-01-01"
#: Log streams the job and the dead-letter archive write (IAM names them before they exist).
JOB_LOG_STREAM = "job"
DELIVERY_LOG_STREAM = "delivery"


class ClicksentryStack(cdk.Stack):
    """Everything clicksentry runs on, in one stack."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        contract: dict[str, Any],
        flink_zip: Path,
        lambda_zip: Path,
        dead_man_minutes: int = 10,
        **kwargs: Any,
    ) -> None:
        super().__init__(scope, construct_id, **kwargs)
        self.contract = contract
        self._parameters()
        self.key = self._key()
        self.streams = {
            "clicks": self._stream("Clicks", spec.CLICKS_STREAM, self.clicks_shards),
            "anomalies": self._stream("Anomalies", spec.ANOMALIES_STREAM, self.anomaly_shards),
            "dead_letters": self._stream(
                "DeadLetters", spec.DEAD_LETTER_STREAM, self.dead_letter_shards
            ),
        }
        self.bucket = self._archive_bucket()
        self.operator_topic = self._topic("OperatorTopic", spec.OPERATOR_TOPIC)
        # A topic policy replaces the default one: alarms must be allowed to publish.
        self.operator_topic.add_to_resource_policy(
            iam.PolicyStatement(
                sid="AlarmsOfThisStackPublish",
                principals=[iam.ServicePrincipal("cloudwatch.amazonaws.com")],
                actions=["sns:Publish"],
                resources=[self.operator_topic.topic_arn],
                conditions={
                    "ArnLike": {
                        "aws:SourceArn": f"arn:{cdk.Aws.PARTITION}:cloudwatch:{cdk.Aws.REGION}:"
                        f"{cdk.Aws.ACCOUNT_ID}:alarm:clicksentry-*"
                    }
                },
            )
        )
        sns.CfnSubscription(
            self,
            "OperatorEmailSubscription",
            topic_arn=self.operator_topic.topic_arn,
            protocol="email",
            endpoint=self.operator_email.value_as_string,
        ).cfn_options.condition = self.has_operator_email
        self.job = self._flink_application(flink_zip)
        self.function = self._alerting(lambda_zip)
        self.api = self._ingest_api()
        self._dead_letter_archive()
        self._catalog()
        self.observability = Observability(
            self,
            "Observability",
            application_name=self.job.ref,
            clicks_stream=self.streams["clicks"],
            function=self.function,
            dlqs=[self.poison_queue, self.mapping_failures],
            api=self.api,
            operator_topic=self.operator_topic,
            dead_man_minutes=dead_man_minutes,
        )
        self._outputs()

    # -- parameters -------------------------------------------------------------------------

    def _parameters(self) -> None:
        def number(name: str, default: int, description: str, minimum: int = 1):
            return cdk.CfnParameter(
                self,
                name,
                type="Number",
                default=default,
                min_value=minimum,
                description=description,
            )

        self.clicks_shards = number("ClicksShards", 2, "Shards of the clicks stream")
        self.anomaly_shards = number("AnomaliesShards", 2, "Shards of the anomalies stream")
        self.dead_letter_shards = number("DeadLetterShards", 1, "Shards of the dead-letter stream")
        self.parallelism = number(
            "Parallelism", 2, "Flink parallelism (docs/kinesis.md: equal to the clicks shards)"
        )
        def choice(name: str, options: list[str], description: str):
            return cdk.CfnParameter(
                self,
                name,
                type="String",
                default=options[0],
                allowed_values=options,
                description=description,
            )

        self.parallelism_per_kpu = number("ParallelismPerKpu", 1, "Flink parallelism per KPU")
        self.autoscaling = choice(
            "AutoScaling", ["false", "true"], "Let the service raise the parallelism under load"
        )
        self.allow_non_restored = choice(
            "AllowNonRestoredState",
            ["false", "true"],
            "true for one update whose job lacks operators of the running one (docs/deploy.md):"
            " their state is dropped, the rest restored",
        )
        self.metrics_level = choice(
            "MetricsLevel",
            ["APPLICATION", "OPERATOR", "TASK", "PARALLELISM"],
            "Granularity of the job's metrics in CloudWatch",
        )
        self.initial_position = choice(
            "InitialPosition",
            ["TRIM_HORIZON", "LATEST"],
            "Where a job without state starts reading the clicks stream",
        )
        self.raw_retention_days = number(
            "RawEventsRetentionDays", 30, "Days raw events (user ids, IPs) are kept in the archive"
        )
        self.cooldown = number("AlertCooldownSeconds", 300, "Alert suppression cooldown")
        self.ingest_rate = number("IngestRateLimit", 1000, "POST /clicks requests per second")
        self.ingest_burst = number("IngestBurstLimit", 2000, "POST /clicks burst")
        self.operator_email = cdk.CfnParameter(
            self,
            "OperatorEmail",
            type="String",
            default="",
            description="E-mail subscribed to the operator (alarm) topic; empty = none",
        )
        self.has_operator_email = cdk.CfnCondition(
            self,
            "HasOperatorEmail",
            expression=cdk.Fn.condition_not(
                cdk.Fn.condition_equals(self.operator_email.value_as_string, "")
            ),
        )
        self.non_restored_allowed = cdk.CfnCondition(
            self,
            "NonRestoredStateAllowed",
            expression=cdk.Fn.condition_equals(self.allow_non_restored.value_as_string, "true"),
        )
        self.autoscaling_on = cdk.CfnCondition(
            self,
            "AutoScalingOn",
            expression=cdk.Fn.condition_equals(self.autoscaling.value_as_string, "true"),
        )

    # -- encryption ---------------------------------------------------------------------------

    def _key(self) -> kms.Key:
        """The stack's customer-managed key, rotated yearly, with an explicit key policy.

        The account may manage and use it through IAM (no ``kms:*``); the services that write
        with it on their own behalf (CloudWatch Logs, CloudWatch alarms publishing to the
        encrypted operator topic) are allowed only the calls they make, for this account.
        """
        account_root = iam.AccountRootPrincipal()
        account = cdk.Aws.ACCOUNT_ID
        region = cdk.Aws.REGION
        policy = iam.PolicyDocument(
            statements=[
                iam.PolicyStatement(
                    sid="AccountManagesTheKeyThroughIam",
                    principals=[account_root],
                    actions=[
                        "kms:CancelKeyDeletion",
                        "kms:CreateAlias",
                        "kms:CreateGrant",
                        "kms:DeleteAlias",
                        "kms:DescribeKey",
                        "kms:DisableKey",
                        "kms:DisableKeyRotation",
                        "kms:EnableKey",
                        "kms:EnableKeyRotation",
                        "kms:GetKeyPolicy",
                        "kms:GetKeyRotationStatus",
                        "kms:ListGrants",
                        "kms:ListResourceTags",
                        "kms:PutKeyPolicy",
                        "kms:RetireGrant",
                        "kms:RevokeGrant",
                        "kms:ScheduleKeyDeletion",
                        "kms:TagResource",
                        "kms:UntagResource",
                        "kms:UpdateAlias",
                        "kms:UpdateKeyDescription",
                        "kms:Decrypt",
                        "kms:Encrypt",
                        "kms:GenerateDataKey",
                        "kms:GenerateDataKeyWithoutPlaintext",
                        "kms:ReEncryptFrom",
                        "kms:ReEncryptTo",
                    ],
                    resources=["*"],  # in a key policy, "*" is this key
                ),
                iam.PolicyStatement(
                    sid="CloudWatchLogsEncryptsThisStacksLogGroups",
                    principals=[iam.ServicePrincipal(f"logs.{region}.amazonaws.com")],
                    actions=[
                        "kms:Decrypt",
                        "kms:DescribeKey",
                        "kms:Encrypt",
                        "kms:GenerateDataKey",
                        "kms:ReEncryptFrom",
                        "kms:ReEncryptTo",
                    ],
                    resources=["*"],
                    conditions={
                        "ArnLike": {
                            "kms:EncryptionContext:aws:logs:arn": (
                                f"arn:{cdk.Aws.PARTITION}:logs:{region}:{account}:log-group:*"
                            )
                        }
                    },
                ),
                iam.PolicyStatement(
                    sid="ManagedFlinkEncryptsTheApplicationsStorage",
                    principals=[
                        iam.ServicePrincipal("kinesisanalytics.amazonaws.com"),
                        iam.ServicePrincipal("infrastructure.kinesisanalytics.amazonaws.com"),
                    ],
                    actions=[
                        "kms:CreateGrant",
                        "kms:Decrypt",
                        "kms:DescribeKey",
                        "kms:GenerateDataKey",
                    ],
                    resources=["*"],
                    conditions={"StringEquals": {"aws:SourceAccount": account}},
                ),
                iam.PolicyStatement(
                    sid="AlarmsPublishToTheEncryptedOperatorTopic",
                    principals=[iam.ServicePrincipal("cloudwatch.amazonaws.com")],
                    actions=["kms:Decrypt", "kms:GenerateDataKey"],
                    resources=["*"],
                    conditions={"StringEquals": {"aws:SourceAccount": account}},
                ),
            ]
        )
        return kms.Key(
            self,
            "Key",
            alias="alias/clicksentry",
            description="clicksentry: streams, archive, tables, topics, queues, logs",
            enable_key_rotation=True,
            policy=policy,
            removal_policy=cdk.RemovalPolicy.RETAIN,
        )

    def _log_group(self, construct_id: str, name: str) -> logs.LogGroup:
        return logs.LogGroup(
            self,
            construct_id,
            log_group_name=name,
            retention=LOG_RETENTION,
            encryption_key=self.key,
            removal_policy=cdk.RemovalPolicy.DESTROY,
        )

    def _log_stream(
        self, construct_id: str, group_name: str, stream_name: str
    ) -> tuple[logs.LogGroup, logs.LogStream]:
        """A log group (id ``<construct_id>s``) and a named stream in it (``…Stream``)."""
        log_group = self._log_group(f"{construct_id}s", group_name)
        log_stream = logs.LogStream(
            self,
            f"{construct_id}Stream",
            log_group=log_group,
            log_stream_name=stream_name,
            removal_policy=cdk.RemovalPolicy.DESTROY,
        )
        return log_group, log_stream

    def _role(
        self,
        construct_id: str,
        service: str,
        description: str | None = None,
        conditions: dict[str, Any] | None = None,
    ) -> iam.Role:
        """A role that ``service`` (``<name>.amazonaws.com``) assumes, under ``conditions``."""
        return iam.Role(
            self,
            construct_id,
            assumed_by=iam.ServicePrincipal(service, conditions=conditions),
            description=description,
        )

    # -- data ---------------------------------------------------------------------------------

    def _stream(self, construct_id: str, name: str, shards: cdk.CfnParameter) -> kinesis.Stream:
        return kinesis.Stream(
            self,
            construct_id,
            stream_name=name,
            shard_count=shards.value_as_number,
            stream_mode=kinesis.StreamMode.PROVISIONED,
            encryption=kinesis.StreamEncryption.KMS,
            encryption_key=self.key,
            retention_period=cdk.Duration.hours(24),
        )

    def _archive_bucket(self) -> s3.Bucket:
        bucket = s3.Bucket(
            self,
            "Archive",
            bucket_name=f"clicksentry-archive-{cdk.Aws.ACCOUNT_ID}-{cdk.Aws.REGION}",
            encryption=s3.BucketEncryption.KMS,
            encryption_key=self.key,
            bucket_key_enabled=True,
            block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
            enforce_ssl=True,
            versioned=True,
            object_ownership=s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
            removal_policy=cdk.RemovalPolicy.RETAIN,
            lifecycle_rules=[
                s3.LifecycleRule(
                    id="raw-events-hold-user-ids-and-ips",
                    prefix=spec.ARCHIVE_PREFIXES["raw_events"],
                    expiration=cdk.Duration.days(30),
                    noncurrent_version_expiration=cdk.Duration.days(1),
                ),
                s3.LifecycleRule(
                    id="old-versions-and-failed-uploads",
                    noncurrent_version_expiration=cdk.Duration.days(30),
                    abort_incomplete_multipart_upload_after=cdk.Duration.days(7),
                ),
            ],
        )
        # The raw-events expiry is a parameter: CDK's lifecycle rule takes a Duration.
        cfn = bucket.node.default_child
        cfn.add_property_override(
            "LifecycleConfiguration.Rules.0.ExpirationInDays",
            self.raw_retention_days.value_as_number,
        )
        skip_checkov(
            cfn,
            CKV_AWS_18="access logs would need a second bucket; CloudTrail data events are the "
            "audit trail (docs/deploy.md)",
        )
        return bucket

    def _topic(self, construct_id: str, name: str) -> sns.Topic:
        return sns.Topic(self, construct_id, topic_name=name, master_key=self.key, enforce_ssl=True)

    def _queue(self, construct_id: str, name: str) -> sqs.Queue:
        return sqs.Queue(
            self,
            construct_id,
            queue_name=name,
            encryption=sqs.QueueEncryption.KMS,
            encryption_master_key=self.key,
            enforce_ssl=True,
            retention_period=cdk.Duration.days(14),
        )

    # -- the job ------------------------------------------------------------------------------

    def _flink_application(self, flink_zip: Path) -> kda.CfnApplication:
        code = s3_assets.Asset(self, "JobCode", path=str(flink_zip))
        log_group, log_stream = self._log_stream(
            "JobLog", f"/aws/kinesis-analytics/{spec.APPLICATION}", JOB_LOG_STREAM
        )
        role = self._role(
            "JobRole",
            "kinesisanalytics.amazonaws.com",
            "clicksentry Managed Flink application",
            conditions={"StringEquals": {"aws:SourceAccount": cdk.Aws.ACCOUNT_ID}},
        )
        clicks, anomalies, dead_letters = (
            self.streams["clicks"],
            self.streams["anomalies"],
            self.streams["dead_letters"],
        )
        archive_objects = [
            self.bucket.arn_for_objects(f"{spec.ARCHIVE_PREFIXES[k]}*")
            for k in ("scored_windows", "raw_events")
        ] + [self.bucket.arn_for_objects(f"{p}/*") for p in ("entity-evictions", "model-events")]
        statements = [
            iam.PolicyStatement(
                sid="ReadTheCode",
                actions=["s3:GetObject", "s3:GetObjectVersion"],
                resources=[code.bucket.arn_for_objects(code.s3_object_key)],
            ),
            iam.PolicyStatement(
                sid="ReadClicks",
                actions=[
                    "kinesis:DescribeStream",
                    "kinesis:DescribeStreamSummary",
                    "kinesis:GetRecords",
                    "kinesis:GetShardIterator",
                    "kinesis:ListShards",
                ],
                resources=[clicks.stream_arn],
            ),
            iam.PolicyStatement(
                sid="WriteAnomaliesAndDeadLetters",
                actions=[
                    "kinesis:DescribeStream",
                    "kinesis:DescribeStreamSummary",
                    "kinesis:ListShards",
                    "kinesis:PutRecord",
                    "kinesis:PutRecords",
                ],
                resources=[anomalies.stream_arn, dead_letters.stream_arn],
            ),
            iam.PolicyStatement(
                sid="ListTheArchive",
                actions=["s3:ListBucket", "s3:ListBucketMultipartUploads", "s3:GetBucketLocation"],
                resources=[self.bucket.bucket_arn],
            ),
            iam.PolicyStatement(
                sid="WriteTheArchive",
                actions=[
                    "s3:AbortMultipartUpload",
                    "s3:DeleteObject",
                    "s3:GetObject",
                    "s3:ListMultipartUploadParts",
                    "s3:PutObject",
                ],
                resources=archive_objects,
            ),
            iam.PolicyStatement(
                # retrained forests the notebooks publish (scoring.model_uri, docs/retraining.md)
                sid="ReadPublishedModels",
                actions=["s3:GetObject"],
                resources=[self.bucket.arn_for_objects("models/*")],
            ),
            iam.PolicyStatement(
                sid="UseTheStackKey",
                actions=["kms:Decrypt", "kms:DescribeKey", "kms:GenerateDataKey"],
                resources=[self.key.key_arn],
            ),
            iam.PolicyStatement(
                sid="WriteTheJobLog",
                actions=["logs:DescribeLogStreams", "logs:PutLogEvents"],
                resources=[
                    log_group.log_group_arn,
                    f"{_log_group_base_arn(log_group)}:log-stream:{JOB_LOG_STREAM}",
                ],
            ),
        ]
        policy = iam.Policy(self, "JobPolicy", roles=[role], statements=statements)
        stream_arns = {
            "clicks_stream_arn": clicks.stream_arn,
            "anomalies_stream_arn": anomalies.stream_arn,
            "dead_letter_stream_arn": dead_letters.stream_arn,
            "initial_position": self.initial_position.value_as_string,
        }
        deployed = {
            # Python workers as processes: the mode earlier versions' snapshots restore in,
            # and the one Managed Flink's Python runtime is known to run; thread mode is not
            # verified there (docs/deploy.md, "Python execution mode").
            "job": {
                "source": "kinesis",
                "parallelism": self.parallelism.value_as_string,
                "python_execution_mode": "process",
            },
            "kinesis": stream_arns,
            "archive": {"path": f"s3://{self.bucket.bucket_name}/"},
        }
        groups = spec.property_groups(self.contract, deployed)
        interval = int(_default(self.contract, "job", "checkpoint_interval_ms"))
        application = kda.CfnApplication(
            self,
            "Job",
            application_name=spec.APPLICATION,
            application_description="clicksentry: anomaly detection on the clicks stream",
            runtime_environment="FLINK-1_20",
            service_execution_role=role.role_arn,
            application_configuration=kda.CfnApplication.ApplicationConfigurationProperty(
                application_code_configuration=kda.CfnApplication.ApplicationCodeConfigurationProperty(
                    code_content_type="ZIPFILE",
                    code_content=kda.CfnApplication.CodeContentProperty(
                        s3_content_location=kda.CfnApplication.S3ContentLocationProperty(
                            bucket_arn=code.bucket.bucket_arn, file_key=code.s3_object_key
                        )
                    ),
                ),
                application_encryption_configuration=kda.CfnApplication.ApplicationEncryptionConfigurationProperty(
                    key_type="CUSTOMER_MANAGED_KEY", key_id=self.key.key_arn
                ),
                application_snapshot_configuration=kda.CfnApplication.ApplicationSnapshotConfigurationProperty(
                    snapshots_enabled=True
                ),
                environment_properties=kda.CfnApplication.EnvironmentPropertiesProperty(
                    property_groups=[
                        kda.CfnApplication.PropertyGroupProperty(
                            property_group_id=g["PropertyGroupId"], property_map=g["PropertyMap"]
                        )
                        for g in groups
                    ]
                ),
                flink_application_configuration=kda.CfnApplication.FlinkApplicationConfigurationProperty(
                    checkpoint_configuration=kda.CfnApplication.CheckpointConfigurationProperty(
                        configuration_type="CUSTOM",
                        checkpointing_enabled=interval > 0,
                        checkpoint_interval=interval or None,
                        min_pause_between_checkpoints=interval // 2 or None,
                    ),
                    monitoring_configuration=kda.CfnApplication.MonitoringConfigurationProperty(
                        configuration_type="CUSTOM",
                        log_level="INFO",
                        metrics_level=self.metrics_level.value_as_string,
                    ),
                    parallelism_configuration=kda.CfnApplication.ParallelismConfigurationProperty(
                        configuration_type="CUSTOM",
                        parallelism=self.parallelism.value_as_number,
                        parallelism_per_kpu=self.parallelism_per_kpu.value_as_number,
                        auto_scaling_enabled=cdk.Fn.condition_if(
                            self.autoscaling_on.logical_id, True, False
                        ),
                    ),
                ),
            ),
            run_configuration=kda.CfnApplication.RunConfigurationProperty(
                application_restore_configuration=kda.CfnApplication.ApplicationRestoreConfigurationProperty(
                    application_restore_type="RESTORE_FROM_LATEST_SNAPSHOT"
                ),
                flink_run_configuration=kda.CfnApplication.FlinkRunConfigurationProperty(
                    allow_non_restored_state=cdk.Fn.condition_if(
                        self.non_restored_allowed.logical_id, True, False
                    )
                ),
            ),
        )
        application.node.add_dependency(policy)  # the service checks its access on create
        kda.CfnApplicationCloudWatchLoggingOption(
            self,
            "JobLogging",
            application_name=application.ref,
            cloud_watch_logging_option=kda.CfnApplicationCloudWatchLoggingOption.CloudWatchLoggingOptionProperty(
                log_stream_arn=(
                    f"{_log_group_base_arn(log_group)}:log-stream:{log_stream.log_stream_name}"
                )
            ),
        )
        return application

    # -- alerting -----------------------------------------------------------------------------

    def _alerting(self, lambda_zip: Path) -> lambda_.Function:
        self.alert_topic = self._topic("AlertTopic", spec.ALERT_TOPIC)
        self.poison_queue = self._queue("PoisonQueue", spec.POISON_QUEUE)
        self.mapping_failures = self._queue("MappingFailures", spec.MAPPING_FAILURE_QUEUE)
        tables = {
            name: dynamodb.Table(
                self,
                construct_id,
                table_name=name,
                partition_key=dynamodb.Attribute(
                    name=spec.TABLE_KEYS[name][0], type=dynamodb.AttributeType.STRING
                ),
                time_to_live_attribute=spec.TABLE_KEYS[name][1],
                billing_mode=dynamodb.BillingMode.PAY_PER_REQUEST,
                encryption=dynamodb.TableEncryption.CUSTOMER_MANAGED,
                encryption_key=self.key,
                point_in_time_recovery_specification=dynamodb.PointInTimeRecoverySpecification(
                    point_in_time_recovery_enabled=True
                ),
                removal_policy=cdk.RemovalPolicy.DESTROY,
            )
            for construct_id, name in (
                ("IdempotencyTable", spec.IDEMPOTENCY_TABLE),
                ("SuppressionTable", spec.SUPPRESSION_TABLE),
            )
        }
        self.tables = tables
        log_group = self._log_group("AlertsLogs", f"/aws/lambda/{spec.FUNCTION}")
        role = self._role("AlertsRole", "lambda.amazonaws.com", "clicksentry alerting Lambda")
        anomalies = self.streams["anomalies"]
        item_actions = [
            "dynamodb:ConditionCheckItem",
            "dynamodb:DeleteItem",
            "dynamodb:GetItem",
            "dynamodb:PutItem",
            "dynamodb:UpdateItem",
        ]
        policy = iam.Policy(
            self,
            "AlertsPolicy",
            roles=[role],
            statements=[
                iam.PolicyStatement(
                    sid="ReadAnomalies",
                    actions=[
                        "kinesis:DescribeStream",
                        "kinesis:DescribeStreamSummary",
                        "kinesis:GetRecords",
                        "kinesis:GetShardIterator",
                        "kinesis:ListShards",
                    ],
                    resources=[anomalies.stream_arn],
                ),
                iam.PolicyStatement(
                    sid="PublishAlerts",
                    actions=["sns:Publish"],
                    resources=[self.alert_topic.topic_arn],
                ),
                iam.PolicyStatement(
                    sid="IdempotencyRecords",
                    actions=item_actions,
                    resources=[tables[spec.IDEMPOTENCY_TABLE].table_arn],
                ),
                iam.PolicyStatement(
                    sid="IncidentsAndPoisonCounters",
                    actions=[*item_actions, "dynamodb:Scan"],
                    resources=[tables[spec.SUPPRESSION_TABLE].table_arn],
                ),
                iam.PolicyStatement(
                    sid="PoisonAndFailedBatches",
                    actions=["sqs:SendMessage"],
                    resources=[self.poison_queue.queue_arn, self.mapping_failures.queue_arn],
                ),
                iam.PolicyStatement(
                    sid="UseTheStackKey",
                    actions=["kms:Decrypt", "kms:GenerateDataKey"],
                    resources=[self.key.key_arn],
                ),
                iam.PolicyStatement(
                    sid="WriteTheFunctionLog",
                    actions=["logs:CreateLogStream", "logs:PutLogEvents"],
                    resources=[f"{_log_group_base_arn(log_group)}:log-stream:*"],
                ),
            ],
        )
        dashboard_url = (
            f"https://{cdk.Aws.REGION}.console.aws.amazon.com/cloudwatch/home?region="
            f"{cdk.Aws.REGION}#dashboards/dashboard/{spec.DASHBOARD}"
        )
        function = lambda_.Function(
            self,
            "Alerts",
            function_name=spec.FUNCTION,
            runtime=lambda_.Runtime.PYTHON_3_11,
            handler=HANDLER,
            code=lambda_.Code.from_asset(str(lambda_zip)),
            role=role.without_policy_updates(),
            memory_size=256,
            timeout=cdk.Duration.seconds(60),
            reserved_concurrent_executions=10,
            log_group=log_group,
            environment_encryption=self.key,
            environment={
                "ALERTS_TOPIC_ARN": self.alert_topic.topic_arn,
                "IDEMPOTENCY_TABLE": tables[spec.IDEMPOTENCY_TABLE].table_name,
                "SUPPRESSION_TABLE": tables[spec.SUPPRESSION_TABLE].table_name,
                "DEAD_LETTER_QUEUE_URL": self.poison_queue.queue_url,
                "COOLDOWN_SECONDS": self.cooldown.value_as_string,
                "POISON_MAX_ATTEMPTS": "3",
                "DASHBOARD_URL_TEMPLATE": dashboard_url,
                "POWERTOOLS_SERVICE_NAME": spec.FUNCTION,
                "POWERTOOLS_METRICS_NAMESPACE": spec.ALERTS_NAMESPACE,
            },
        )
        # Created after its policy (it reads the stream at once); CDK's own dependency on the
        # role is implied by the role's ARN in its properties (cfn-lint W3005).
        function.node.default_child.add_override(
            "DependsOn", [self.get_logical_id(policy.node.default_child)]
        )
        skip_checkov(
            function.node.default_child,
            CKV_AWS_116="invoked synchronously by the Kinesis event source mapping, whose "
            "on-failure destination is the mapping-failures queue; an async DLQ would never fire",
            CKV_AWS_117="talks only to regional AWS APIs; a VPC would add NAT or endpoints and "
            "protect nothing",
        )
        lambda_.CfnEventSourceMapping(
            self,
            "AnomaliesToAlerts",
            function_name=function.function_name,
            event_source_arn=anomalies.stream_arn,
            starting_position="LATEST",
            batch_size=100,
            maximum_batching_window_in_seconds=1,
            bisect_batch_on_function_error=True,
            maximum_retry_attempts=10,  # > POISON_MAX_ATTEMPTS: poison reaches our DLQ
            maximum_record_age_in_seconds=86_400,  # the stream's retention
            function_response_types=["ReportBatchItemFailures"],
            destination_config=lambda_.CfnEventSourceMapping.DestinationConfigProperty(
                on_failure=lambda_.CfnEventSourceMapping.OnFailureProperty(
                    destination=self.mapping_failures.queue_arn
                )
            ),
        ).node.add_dependency(policy)  # the mapping checks its access to the stream on create
        return function

    # -- ingest -------------------------------------------------------------------------------

    def _ingest_api(self) -> apigw.RestApi:
        """``POST /clicks`` → PutRecord, ``POST /clicks/batch`` → PutRecords, no Lambda between."""
        clicks = self.streams["clicks"]
        access_logs = self._log_group("IngestAccessLogs", f"/aws/apigateway/{spec.API}")
        role = self._role(
            "IngestRole",
            "apigateway.amazonaws.com",
            "clicksentry ingest API: puts clicks on the clicks stream",
        )
        iam.Policy(
            self,
            "IngestPolicy",
            roles=[role],
            statements=[
                iam.PolicyStatement(
                    sid="PutClicks",
                    actions=["kinesis:PutRecord", "kinesis:PutRecords"],
                    resources=[clicks.stream_arn],
                ),
                iam.PolicyStatement(
                    sid="EncryptClicks",
                    actions=["kms:GenerateDataKey"],
                    resources=[self.key.key_arn],
                ),
            ],
        )
        api = apigw.RestApi(
            self,
            "Ingest",
            rest_api_name=spec.API,
            description="clicksentry click ingest: POST /clicks, POST /clicks/batch",
            cloud_watch_role=False,
            endpoint_types=[apigw.EndpointType.REGIONAL],
            deploy_options=apigw.StageOptions(
                stage_name="v1",
                access_log_destination=apigw.LogGroupLogDestination(access_logs),
                access_log_format=apigw.AccessLogFormat.json_with_standard_fields(
                    caller=False,
                    http_method=True,
                    ip=True,
                    protocol=True,
                    request_time=True,
                    resource_path=True,
                    response_length=True,
                    status=True,
                    user=False,
                ),
                metrics_enabled=True,
                tracing_enabled=True,
                throttling_rate_limit=self.ingest_rate.value_as_number,
                throttling_burst_limit=self.ingest_burst.value_as_number,
            ),
        )
        validator = api.add_request_validator(
            "ValidateBody", request_validator_name="body", validate_request_body=True
        )
        one = apigw.CfnModel(
            self,
            "ClickModel",
            rest_api_id=api.rest_api_id,
            content_type="application/json",
            name="ClickEvent",
            schema=spec.click_schema(self.contract),
        )
        batch = apigw.CfnModel(
            self,
            "ClickBatchModel",
            rest_api_id=api.rest_api_id,
            content_type="application/json",
            name="ClickBatch",
            schema=spec.batch_schema(self.contract),
        )
        resource = api.root.add_resource("clicks")
        for target, model, action, template in (
            (resource, one, "PutRecord", _put_record_template(clicks.stream_name)),
            (
                resource.add_resource("batch"),
                batch,
                "PutRecords",
                _put_records_template(clicks.stream_name),
            ),
        ):
            target.add_method(
                "POST",
                apigw.AwsIntegration(
                    service="kinesis",
                    action=action,
                    options=apigw.IntegrationOptions(
                        credentials_role=role,
                        passthrough_behavior=apigw.PassthroughBehavior.NEVER,
                        request_parameters={
                            "integration.request.header.Content-Type": (
                                "'application/x-amz-json-1.1'"
                            )
                        },
                        request_templates={"application/json": template},
                        integration_responses=[
                            apigw.IntegrationResponse(status_code="200"),
                            apigw.IntegrationResponse(
                                status_code="400", selection_pattern="4\\d{2}"
                            ),
                            apigw.IntegrationResponse(
                                status_code="500", selection_pattern="5\\d{2}"
                            ),
                        ],
                    ),
                ),
                api_key_required=True,
                request_validator=validator,
                request_models={
                    "application/json": apigw.Model.from_model_name(
                        self, f"{model.node.id}Ref", model.ref
                    )
                },
                method_responses=[
                    apigw.MethodResponse(status_code=code) for code in ("200", "400", "500")
                ],
            )
        plan = api.add_usage_plan(
            "IngestPlan",
            name=f"{spec.API}-producers",
            throttle=apigw.ThrottleSettings(
                rate_limit=self.ingest_rate.value_as_number,
                burst_limit=self.ingest_burst.value_as_number,
            ),
            api_stages=[apigw.UsagePlanPerApiStage(api=api, stage=api.deployment_stage)],
        )
        plan.add_api_key(api.add_api_key("ProducerKey", api_key_name=f"{spec.API}-producer"))
        skip_checkov(
            api.deployment_stage.node.default_child,
            CKV_AWS_120="clicks are writes; a response cache would serve nothing",
        )
        return api

    # -- archive of dead letters and the catalog -----------------------------------------------

    def _dead_letter_archive(self) -> None:
        """Firehose copies the dead-letter stream to ``dead-letters/dt=…/hour=…/`` (JSON lines)."""
        dead_letters = self.streams["dead_letters"]
        log_group, log_stream = self._log_stream(
            "DeadLetterArchiveLog",
            "/aws/kinesisfirehose/clicksentry-dead-letters",
            DELIVERY_LOG_STREAM,
        )
        role = self._role(
            "DeadLetterArchiveRole",
            "firehose.amazonaws.com",
            conditions={"StringEquals": {"sts:ExternalId": cdk.Aws.ACCOUNT_ID}},
        )
        policy = iam.Policy(
            self,
            "DeadLetterArchivePolicy",
            roles=[role],
            statements=[
                iam.PolicyStatement(
                    sid="ReadDeadLetters",
                    actions=[
                        "kinesis:DescribeStream",
                        "kinesis:DescribeStreamSummary",
                        "kinesis:GetRecords",
                        "kinesis:GetShardIterator",
                        "kinesis:ListShards",
                    ],
                    resources=[dead_letters.stream_arn],
                ),
                iam.PolicyStatement(
                    sid="ListTheArchive",
                    actions=[
                        "s3:GetBucketLocation",
                        "s3:ListBucket",
                        "s3:ListBucketMultipartUploads",
                    ],
                    resources=[self.bucket.bucket_arn],
                ),
                iam.PolicyStatement(
                    sid="WriteDeadLetters",
                    actions=["s3:AbortMultipartUpload", "s3:GetObject", "s3:PutObject"],
                    resources=[
                        self.bucket.arn_for_objects(f"{spec.ARCHIVE_PREFIXES['dead_letters']}*"),
                        self.bucket.arn_for_objects("dead-letters-errors/*"),
                    ],
                ),
                iam.PolicyStatement(
                    sid="UseTheStackKey",
                    actions=["kms:Decrypt", "kms:GenerateDataKey"],
                    resources=[self.key.key_arn],
                ),
                iam.PolicyStatement(
                    sid="WriteTheDeliveryLog",
                    actions=["logs:PutLogEvents"],
                    resources=[
                        f"{_log_group_base_arn(log_group)}:log-stream:{DELIVERY_LOG_STREAM}"
                    ],
                ),
            ],
        )
        prefix = spec.ARCHIVE_PREFIXES["dead_letters"]
        delivery = firehose.CfnDeliveryStream(
            self,
            "DeadLetterArchive",
            delivery_stream_name="clicksentry-dead-letters-archive",
            delivery_stream_type="KinesisStreamAsSource",
            kinesis_stream_source_configuration=firehose.CfnDeliveryStream.KinesisStreamSourceConfigurationProperty(
                kinesis_stream_arn=dead_letters.stream_arn, role_arn=role.role_arn
            ),
            extended_s3_destination_configuration=firehose.CfnDeliveryStream.ExtendedS3DestinationConfigurationProperty(
                bucket_arn=self.bucket.bucket_arn,
                role_arn=role.role_arn,
                prefix=prefix + "dt=!{timestamp:yyyy-MM-dd}/hour=!{timestamp:HH}/",
                error_output_prefix="dead-letters-errors/!{firehose:error-output-type}/"
                "dt=!{timestamp:yyyy-MM-dd}/",
                buffering_hints=firehose.CfnDeliveryStream.BufferingHintsProperty(
                    interval_in_seconds=300, size_in_m_bs=64
                ),
                compression_format="GZIP",
                encryption_configuration=firehose.CfnDeliveryStream.EncryptionConfigurationProperty(
                    kms_encryption_config=firehose.CfnDeliveryStream.KMSEncryptionConfigProperty(
                        awskms_key_arn=self.key.key_arn
                    )
                ),
                processing_configuration=firehose.CfnDeliveryStream.ProcessingConfigurationProperty(
                    enabled=True,
                    processors=[
                        firehose.CfnDeliveryStream.ProcessorProperty(type="AppendDelimiterToRecord")
                    ],
                ),
                cloud_watch_logging_options=firehose.CfnDeliveryStream.CloudWatchLoggingOptionsProperty(
                    enabled=True,
                    log_group_name=log_group.log_group_name,
                    log_stream_name=log_stream.log_stream_name,
                ),
            ),
        )
        delivery.node.add_dependency(policy)

    def _catalog(self) -> None:
        """Glue database and tables over the archive, partitions projected (no crawler)."""
        database = glue.CfnDatabase(
            self,
            "Catalog",
            catalog_id=cdk.Aws.ACCOUNT_ID,
            database_input=glue.CfnDatabase.DatabaseInputProperty(
                name=spec.GLUE_DATABASE,
                description="clicksentry archive: scored windows, raw events, dead letters",
            ),
        )
        archive = self.contract["archive"]
        parquet = spec.parquet_storage(archive["parquet_codec"])
        tables = {
            "scored_windows": (spec.glue_columns(archive["scored_columns"]), parquet),
            "raw_events": (spec.glue_columns(archive["raw_event_columns"]), parquet),
            "dead_letters": (spec.glue_columns(archive["dead_letter_columns"]), spec.JSON_LINES),
        }
        for name, (columns, storage) in tables.items():
            location = f"s3://{self.bucket.bucket_name}/{spec.ARCHIVE_PREFIXES[name]}"
            table = glue.CfnTable(
                self,
                "".join(part.title() for part in name.split("_")) + "Table",
                catalog_id=cdk.Aws.ACCOUNT_ID,
                database_name=spec.GLUE_DATABASE,
                table_input=glue.CfnTable.TableInputProperty(
                    name=name,
                    table_type="EXTERNAL_TABLE",
                    parameters={
                        **storage.table_parameters,
                        **spec.partition_projection(location, PROJECTION_START),
                    },
                    partition_keys=[
                        glue.CfnTable.ColumnProperty(name=c, type=t.lower())
                        for c, t in archive["partition_columns"]
                    ],
                    storage_descriptor=glue.CfnTable.StorageDescriptorProperty(
                        location=location,
                        input_format=storage.input_format,
                        output_format=storage.output_format,
                        serde_info=glue.CfnTable.SerdeInfoProperty(
                            serialization_library=storage.serde
                        ),
                        columns=[glue.CfnTable.ColumnProperty(**c) for c in columns],
                    ),
                ),
            )
            table.node.add_dependency(database)

    def _outputs(self) -> None:
        outputs = {
            "ClicksStreamArn": self.streams["clicks"].stream_arn,
            "AnomaliesStreamArn": self.streams["anomalies"].stream_arn,
            "DeadLetterStreamArn": self.streams["dead_letters"].stream_arn,
            "ArchiveBucket": self.bucket.bucket_name,
            "AlertTopicArn": self.alert_topic.topic_arn,
            "OperatorTopicArn": self.operator_topic.topic_arn,
            "PoisonQueueUrl": self.poison_queue.queue_url,
            "MappingFailureQueueUrl": self.mapping_failures.queue_url,
            "IdempotencyTableName": self.tables[spec.IDEMPOTENCY_TABLE].table_name,
            "SuppressionTableName": self.tables[spec.SUPPRESSION_TABLE].table_name,
            "AlertFunctionName": self.function.function_name,
            "ApplicationName": self.job.ref,
            "IngestUrl": self.api.url_for_path("/clicks"),
            "IngestApiKeyId": self.api.node.find_child("ProducerKey").key_id,
            "KeyArn": self.key.key_arn,
        }
        for name, value in outputs.items():
            cdk.CfnOutput(self, name, value=value)


def _log_group_base_arn(log_group: logs.LogGroup) -> str:
    """``arn:…:log-group:NAME`` (a log group's ``Arn`` attribute ends in ``:*``)."""
    return (
        f"arn:{cdk.Aws.PARTITION}:logs:{cdk.Aws.REGION}:{cdk.Aws.ACCOUNT_ID}:log-group:"
        f"{log_group.log_group_name}"
    )


def _default(contract: dict[str, Any], group: str, key: str) -> str:
    return next(
        s["default"] for s in contract["settings"] if (s["group"], s["key"]) == (group, key)
    )


def _put_record_template(stream_name: str) -> str:
    """VTL for ``PutRecord``: the body as sent, partition key = the event's ``event_id``."""
    return (
        "{\n"
        f'  "StreamName": "{stream_name}",\n'
        '  "Data": "$util.base64Encode($input.body)",\n'
        '  "PartitionKey": "$util.escapeJavaScript($input.path(\'$.event_id\'))"\n'
        "}"
    )


def _put_records_template(stream_name: str) -> str:
    """VTL for ``PutRecords``: one record per event, each keyed by its ``event_id``."""
    return (
        "#set($events = $input.path('$.events'))\n"
        "{\n"
        f'  "StreamName": "{stream_name}",\n'
        '  "Records": [\n'
        "#foreach($event in $events)\n"
        '    {"Data": "$util.base64Encode($input.json("$.events[$foreach.index]"))",'
        ' "PartitionKey": "$util.escapeJavaScript($event.event_id)"}'
        "#if($foreach.hasNext),#end\n"
        "#end\n"
        "  ]\n"
        "}"
    )
