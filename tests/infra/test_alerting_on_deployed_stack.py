"""The alerting end-to-end tests, unchanged, against the resources the template created in moto.

Every test of tests/alerting/test_alert_lambda.py runs here a second time. Its ``aws_stack`` is
the stack moto's CloudFormation created from dist/cloudformation/ (``deployed``), and the
handler's environment is the deployed function's own environment variables, pointed at this
session's moto server — the topic, tables and poison queue the stack wired, not the hand-made
ones of ``clicksentry stack up``. Two things are test scaffolding, as for the local stack: an
SQS queue subscribed to the alert topic (the tests read alerts from it), and the dashboard link,
left at its placeholder because the tests assert its text (the deployed link to the CloudWatch
dashboard is checked in test_deployed_stack.py).
"""

from __future__ import annotations

import importlib.util
import json
from dataclasses import dataclass
from pathlib import Path

import boto3
import pytest
from botocore.config import Config

from localdev.stack import LocalStack

SOURCE = Path(__file__).parents[1] / "alerting" / "test_alert_lambda.py"
_spec = importlib.util.spec_from_file_location("alert_lambda_on_deployed_stack", SOURCE)
e2e = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(e2e)

# The tests and their fixtures, collected here with this module's ``aws_stack``.
globals().update({name: value for name, value in vars(e2e).items() if name.startswith("test_")})
handler = e2e.handler
context = e2e.context
reservation_of = e2e.reservation_of
subscriber = e2e.subscriber
dead_letters = e2e.dead_letters
sns_failing_for = e2e.sns_failing_for
pytestmark = e2e.pytestmark


@dataclass(frozen=True)
class DeployedLocalStack(LocalStack):
    """``LocalStack`` whose clients go to this session's moto server."""

    def client(self, service: str):
        """A boto3 client for ``service`` on the moto server the stack was deployed to."""
        return boto3.client(
            service,
            endpoint_url=self.moto_endpoint,
            region_name=self.region,
            aws_access_key_id=self.access_key_id,
            aws_secret_access_key=self.secret_access_key,
            config=Config(retries={"max_attempts": 2, "mode": "standard"}),
        )


@pytest.fixture(scope="module")
def aws_stack(deployed, moto_endpoint) -> DeployedLocalStack:
    """The deployed stack's alerting resources, plus a test queue subscribed to the topic."""
    outputs = deployed.outputs
    probe = DeployedLocalStack(
        started=(),
        alert_topic_arn=outputs["AlertTopicArn"],
        alert_subscriber_queue_url="",
        alert_subscriber_queue_arn="",
        alert_dlq_url=outputs["PoisonQueueUrl"],
        alert_dlq_arn="",
        moto_endpoint=moto_endpoint,
        kinesis_endpoint=moto_endpoint,
    )
    sqs, sns = probe.client("sqs"), probe.client("sns")
    url = sqs.create_queue(QueueName="clicksentry-alerts-test-subscriber")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    sns.subscribe(TopicArn=outputs["AlertTopicArn"], Protocol="sqs", Endpoint=arn)
    dlq_arn = sqs.get_queue_attributes(
        QueueUrl=outputs["PoisonQueueUrl"], AttributeNames=["QueueArn"]
    )["Attributes"]["QueueArn"]
    return DeployedLocalStack(
        started=(),
        alert_topic_arn=outputs["AlertTopicArn"],
        alert_subscriber_queue_url=url,
        alert_subscriber_queue_arn=arn,
        alert_dlq_url=outputs["PoisonQueueUrl"],
        alert_dlq_arn=dlq_arn,
        moto_endpoint=moto_endpoint,
        kinesis_endpoint=moto_endpoint,
        idempotency_table=outputs["IdempotencyTableName"],
        suppression_table=outputs["SuppressionTableName"],
    )


def deployed_environment(aws_stack: DeployedLocalStack) -> dict[str, str]:
    """The deployed function's environment, pointed at the moto server it was deployed to."""
    variables = aws_stack.client("lambda").get_function_configuration(
        FunctionName="clicksentry-alerts"
    )["Environment"]["Variables"]
    environ = {name: str(value) for name, value in variables.items()}  # moto: numbers unquoted
    environ.pop("DASHBOARD_URL_TEMPLATE")  # the tests assert the placeholder link's text
    return {**environ, **aws_stack.env}


e2e.handler_environment = deployed_environment


@pytest.fixture(autouse=True)
def fresh_alerter():
    """The handler's cached alerter belongs to the stack it was first built for: rebuild it for
    this module's stack, and drop it after, for the tests on the local stack."""
    from alerting import handler as handler_module

    handler_module.alerter.cache_clear()
    yield
    handler_module.alerter.cache_clear()


def test_the_handler_environment_is_the_deployed_functions(aws_stack):
    environ = deployed_environment(aws_stack)
    assert environ["ALERTS_TOPIC_ARN"] == aws_stack.alert_topic_arn
    assert environ["DEAD_LETTER_QUEUE_URL"] == aws_stack.alert_dlq_url
    assert environ["AWS_ENDPOINT_URL"] == aws_stack.moto_endpoint
    assert json.loads(json.dumps(environ))  # every value a string, as Lambda passes them
