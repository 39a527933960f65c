"""Fixtures for the alerting tests: the handler configured for the local stack, queue readers."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from alert_payloads import TEST_ENTITY_PREFIX
from botocore.awsrequest import AWSResponse

from alerting.event_source import LocalLambdaContext
from flink_jobs.cli.alerts import local_stack_environment


@pytest.fixture
def alerting_env(aws_stack, monkeypatch) -> dict[str, str]:
    """The handler's environment on the local stack (as the Lambda function would have it)."""
    env = {
        **local_stack_environment(),
        **aws_stack.env,
        "ALERTS_TOPIC_ARN": aws_stack.alert_topic_arn,
        "IDEMPOTENCY_TABLE": aws_stack.idempotency_table,
        "SUPPRESSION_TABLE": aws_stack.suppression_table,
        "DEAD_LETTER_QUEUE_URL": aws_stack.alert_dlq_url,
        "COOLDOWN_SECONDS": "300",
        "POISON_MAX_ATTEMPTS": "3",
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return env


@pytest.fixture
def handler(alerting_env):
    """The Lambda handler module, its execution environment started on the local stack."""
    from alerting import handler

    handler.alerter()
    return handler


@pytest.fixture
def context() -> LocalLambdaContext:
    return LocalLambdaContext(
        function_name="clicksentry-alerts",
        invoked_function_arn="arn:aws:lambda:us-east-1:000000000000:function:clicksentry-alerts",
    )


class QueueReader:
    """Reads a queue shared with other tests: receives and deletes only test messages.

    Test messages are kept until a ``take`` claims them; other messages are left in the queue.
    """

    def __init__(self, sqs, url: str) -> None:
        self.sqs = sqs
        self.url = url
        self.unclaimed: list[dict[str, Any]] = []

    def take(self, wanted: Callable[[dict[str, Any]], bool]) -> list[dict[str, Any]]:
        """Every message body (parsed) matching ``wanted`` that is in the queue now, in order.

        moto delivers SNS to SQS within the Publish call, so nothing is still on its way.
        """
        seen = set()
        while True:
            messages = self.sqs.receive_message(
                QueueUrl=self.url, MaxNumberOfMessages=10, WaitTimeSeconds=0, VisibilityTimeout=5
            ).get("Messages", [])
            new = [m for m in messages if m["MessageId"] not in seen]
            if not new:
                break
            for message in new:
                seen.add(message["MessageId"])
                if TEST_ENTITY_PREFIX in message["Body"]:
                    self.unclaimed.append(json.loads(message["Body"]))
                    self.sqs.delete_message(
                        QueueUrl=self.url, ReceiptHandle=message["ReceiptHandle"]
                    )
        found = [body for body in self.unclaimed if wanted(body)]
        self.unclaimed = [body for body in self.unclaimed if not wanted(body)]
        return found


@pytest.fixture
def subscriber(aws_stack) -> QueueReader:
    """The SQS queue subscribed to the alert topic (raw delivery off: SNS envelopes)."""
    return QueueReader(aws_stack.client("sqs"), aws_stack.alert_subscriber_queue_url)


@pytest.fixture
def dead_letters(aws_stack) -> QueueReader:
    return QueueReader(aws_stack.client("sqs"), aws_stack.alert_dlq_url)


class _ThrottledBody:
    def __init__(self, content: bytes) -> None:
        self._content = content

    def stream(self, **_kwargs) -> Iterator[bytes]:
        yield self._content


THROTTLED = (
    b'<ErrorResponse xmlns="http://sns.amazonaws.com/doc/2010-03-31/"><Error><Type>Sender</Type>'
    b"<Code>Throttling</Code><Message>Rate exceeded</Message></Error>"
    b"<RequestId>throttled</RequestId></ErrorResponse>"
)


@pytest.fixture
def sns_throttled_for(handler):
    """Make SNS answer ``Throttling`` (HTTP 400) to every Publish about one entity.

    The fault is injected at botocore's send step of the handler's own SNS client: every other
    request still goes to moto server.
    """

    @contextlib.contextmanager
    def throttled(entity_id: str) -> Iterator[list[str]]:
        refused: list[str] = []

        def refuse(request, **_kwargs):
            body = request.body.decode() if isinstance(request.body, bytes) else request.body
            if entity_id in (body or ""):
                refused.append(entity_id)
                return AWSResponse(request.url, 400, {}, _ThrottledBody(THROTTLED))
            return None

        events = handler.alerter().sns.meta.events
        events.register("before-send.sns.Publish", refuse, unique_id="clicksentry-throttle")
        try:
            yield refused
        finally:
            events.unregister("before-send.sns.Publish", unique_id="clicksentry-throttle")

    return throttled
