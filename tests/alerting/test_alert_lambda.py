"""The Lambda handler against moto server: SNS -> SQS subscription, DynamoDB tables, SQS DLQ."""

import base64
import contextlib
import json
from collections.abc import Iterator

import pytest
from alert_payloads import (
    QueueReader,
    about,
    encode,
    failed_sequence_numbers,
    for_entity,
    handler_environment,
    kinesis_event,
    load,
    new_shard_id,
    sequence_numbers,
    sns_fault_response,
    unique_entity,
)

from localdev.lambda_runner import LocalLambdaContext

pytestmark = pytest.mark.integration


@pytest.fixture
def handler(aws_stack, monkeypatch):
    """The Lambda handler module, its execution environment started on the local stack."""
    for name, value in handler_environment(aws_stack).items():
        monkeypatch.setenv(name, value)
    from alerting import handler

    handler.alerter()
    return handler


@pytest.fixture
def context() -> LocalLambdaContext:
    return LocalLambdaContext(
        function_name="clicksentry-alerts",
        invoked_function_arn="arn:aws:lambda:us-east-1:000000000000:function:clicksentry-alerts",
    )


@pytest.fixture
def subscriber(aws_stack) -> QueueReader:
    """The SQS queue subscribed to the alert topic (raw delivery off: SNS envelopes)."""
    return QueueReader(aws_stack.client("sqs"), aws_stack.alert_subscriber_queue_url)


@pytest.fixture
def dead_letters(aws_stack) -> QueueReader:
    return QueueReader(aws_stack.client("sqs"), aws_stack.alert_dlq_url)


@pytest.fixture
def sns_failing_for(handler):
    """Make SNS answer a fault (``throttling`` or ``outage``) to every Publish about one entity.

    The fault is injected at botocore's send step of the handler's own SNS client: every other
    request still goes to moto server.
    """

    @contextlib.contextmanager
    def failing(entity_id: str, fault: str) -> Iterator[list[str]]:
        refused: list[str] = []

        def refuse(request, **_kwargs):
            body = request.body.decode() if isinstance(request.body, bytes) else request.body
            if entity_id in (body or ""):
                refused.append(entity_id)
                return sns_fault_response(request, fault)
            return None

        events = handler.alerter().sns.meta.events
        events.register("before-send.sns.Publish", refuse, unique_id="clicksentry-throttle")
        try:
            yield refused
        finally:
            events.unregister("before-send.sns.Publish", unique_id="clicksentry-throttle")

    return failing


def test_subscriber_receives_subject_readable_body_and_attributes(handler, context, subscriber):
    # GIVEN an ad with a click flood and a checkout page whose purchases collapsed
    ad = for_entity(load("anomaly-clicks-high.json"), unique_entity("ad"))
    page = for_entity(load("anomaly-purchases-low.json"), unique_entity("page"))
    event = kinesis_event([encode(ad), encode(page)], new_shard_id())

    # WHEN the Kinesis event reaches the handler
    response = handler.lambda_handler(event, context)

    # THEN nothing failed and the subscriber gets one SNS envelope per anomaly
    assert response == {"batchItemFailures": []}
    [ad_alert] = subscriber.take(about(ad["entity_id"]))
    [page_alert] = subscriber.take(about(page["entity_id"]))
    # subject: severity, what, where, when; under 100 characters
    assert ad_alert["Subject"] == (
        f"[clicksentry CRITICAL] clicks high on ad {ad['entity_id']} at 2026-01-05 00:12:10Z"
    )
    assert len(page_alert["Subject"]) < 100
    assert page_alert["Subject"].startswith("[clicksentry LOW] purchases low on page ")
    # attributes subscribers can filter on
    assert {k: v["Value"] for k, v in ad_alert["MessageAttributes"].items()} == {
        "severity": "critical",
        "entity_type": "ad",
        "entity_id": ad["entity_id"],
        "alert_type": "alert",
    }
    # body: what, where, when, how far from normal and which way, dashboard, the full record
    body = page_alert["Message"]
    assert f"Where: page {page['entity_id']}" in body
    assert "When:  2026-01-05T00:12:10.000Z to 2026-01-05T00:12:20.000Z" in body
    assert "purchases LOW: 0 vs expected 9.5" in body
    assert "add_to_carts LOW: 2 vs expected 21 (0.1x normal)" in body
    assert (
        f"Dashboard: https://dashboard.clicksentry.invalid/entities/page/{page['entity_id']}"
        in (body)
    )
    assert json.loads(body.split("Anomaly record (JSON):\n", 1)[1]) == page


def test_same_anomaly_twice_sends_one_message(handler, context, subscriber):
    # GIVEN one anomaly delivered twice in a batch and replayed in a later batch
    anomaly = encode(for_entity(load("anomaly-clicks-high.json"), unique_entity("replay")))
    shard = new_shard_id()

    # WHEN both batches are handled
    first = handler.lambda_handler(kinesis_event([anomaly, anomaly], shard), context)
    replay = handler.lambda_handler(kinesis_event([anomaly], shard), context)

    # THEN both succeed and the subscriber gets exactly one message
    assert first == replay == {"batchItemFailures": []}
    entity_id = json.loads(anomaly)["entity_id"]
    assert len(subscriber.take(about(entity_id))) == 1


def test_ten_flood_windows_send_one_alert_and_one_update_when_it_worsens(
    handler, context, subscriber
):
    # GIVEN ten consecutive windows of one click flood, medium for five, then critical
    entity_id = unique_entity("flood")
    windows = [for_entity(w, entity_id) for w in load("flood-ad-clicks-high-ten-windows.json")]
    shard = new_shard_id()

    # WHEN each window arrives in its own invocation, as the windows close
    responses = [
        handler.lambda_handler(kinesis_event([encode(w)], shard), context) for w in windows
    ]

    # THEN one alert for the first window and one update when the flood worsened
    assert all(r == {"batchItemFailures": []} for r in responses)
    messages = subscriber.take(about(entity_id))
    assert [
        (m["MessageAttributes"]["alert_type"]["Value"], m["MessageAttributes"]["severity"]["Value"])
        for m in messages
    ] == [("alert", "medium"), ("update", "critical")]
    assert "at 2026-01-05 00:13:00Z" in messages[1]["Subject"]
    assert "the incident has lasted 6 windows" in messages[1]["Message"]


def test_flood_that_ends_sends_one_alert_and_one_ended_update(handler, context, subscriber):
    # GIVEN ten flood windows at one severity on a shard
    entity_id = unique_entity("flood-ends")
    windows = [for_entity(w, entity_id) for w in load("flood-ad-clicks-high-ten-windows.json")]
    steady = [{**w, "grade": 0.3, "score": 0.62} for w in windows]
    shard = new_shard_id()
    for window in steady:
        handler.lambda_handler(kinesis_event([encode(window)], shard), context)
    # AND another entity's anomaly on that shard, more than the cooldown (300 s) later
    later = for_entity(load("anomaly-clicks-high.json"), unique_entity("later"))
    end_ms = windows[-1]["window_end_ms"] + 310_000
    later.update(window_start_ms=end_ms - 10_000, window_end_ms=end_ms)
    later.update(window_start="2026-01-05T00:18:40.000Z", window_end="2026-01-05T00:18:50.000Z")
    later = for_entity(later, later["entity_id"])

    # WHEN that later anomaly is handled
    response = handler.lambda_handler(kinesis_event([encode(later)], shard), context)

    # THEN the flood got one alert and, now, one "ended" update
    assert response == {"batchItemFailures": []}
    messages = subscriber.take(about(entity_id))
    assert [m["MessageAttributes"]["alert_type"]["Value"] for m in messages] == ["alert", "ended"]
    assert messages[1]["Subject"].startswith("[clicksentry MEDIUM ended] clicks high on ad")
    assert "lasted 10 anomalous windows" in messages[1]["Message"]
    assert len(subscriber.take(about(later["entity_id"]))) == 1


@pytest.mark.parametrize("fault", ["throttling", "outage"])
def test_sns_failure_fails_only_the_affected_record(
    fault, handler, context, subscriber, sns_failing_for
):
    # GIVEN three anomalies of three ads in one batch
    ads = [for_entity(load("anomaly-clicks-high.json"), unique_entity(f"ad{i}")) for i in range(3)]
    event = kinesis_event([encode(ad) for ad in ads], new_shard_id())

    # WHEN SNS throttles, or is down for, every publish about the second ad
    with sns_failing_for(ads[1]["entity_id"], fault) as refused:
        response = handler.lambda_handler(event, context)

    # THEN only that record is reported failed, and the other two were alerted
    assert len(refused) == 3, "botocore made its three attempts"
    assert failed_sequence_numbers(response) == [sequence_numbers(event)[1]]
    assert [len(subscriber.take(about(ad["entity_id"]))) for ad in ads] == [1, 0, 1]

    # WHEN the event source mapping retries from the failed record, SNS healthy again
    retry = {"Records": event["Records"][1:]}
    assert handler.lambda_handler(retry, context) == {"batchItemFailures": []}

    # THEN the second ad is alerted once and the third is not alerted again
    assert [len(subscriber.take(about(ad["entity_id"]))) for ad in ads] == [0, 1, 0]


def test_poison_record_goes_to_the_dead_letter_queue_after_three_attempts(
    handler, context, subscriber, dead_letters
):
    # GIVEN a batch with a valid anomaly followed by a record that is not JSON
    good = for_entity(load("anomaly-clicks-high.json"), unique_entity("good"))
    poison_case = load("invalid-anomaly-records.json")[1]  # truncated JSON
    shard = new_shard_id()
    poison_key = f"ad/{unique_entity('poison')}"
    good_event = kinesis_event([encode(good)], shard)
    poison_event = kinesis_event([poison_case["data"].encode()], shard, partition_key=poison_key)
    event = {"Records": good_event["Records"] + poison_event["Records"]}
    poison_sequence = sequence_numbers(event)[1]

    # WHEN the mapping delivers the batch and retries the failed record (POISON_MAX_ATTEMPTS=3)
    first = handler.lambda_handler(event, context)
    retry = {"Records": event["Records"][1:]}
    second = handler.lambda_handler(retry, context)
    third = handler.lambda_handler(retry, context)

    # THEN the poison record fails twice, then is parked in the DLQ and stops blocking the shard
    assert failed_sequence_numbers(first) == [poison_sequence]
    assert failed_sequence_numbers(second) == [poison_sequence]
    assert third == {"batchItemFailures": []}
    [parked] = dead_letters.take(lambda body: body["record"]["partition_key"] == poison_key)
    assert parked["attempts"] == 3
    assert parked["error"].startswith("record is not UTF-8 JSON")
    assert parked["record"]["sequence_number"] == poison_sequence
    assert base64.b64decode(parked["record"]["data"]).decode() == poison_case["data"]
    # AND the valid anomaly before it was alerted exactly once
    assert len(subscriber.take(about(good["entity_id"]))) == 1

    # WHEN the parked record is delivered once more (an older batch replayed)
    again = handler.lambda_handler(retry, context)

    # THEN it is not parked twice
    assert again == {"batchItemFailures": []}
    assert dead_letters.take(lambda body: body["record"]["partition_key"] == poison_key) == []


def test_anomaly_with_no_standout_feature_is_alerted_as_unattributed(handler, context, subscriber):
    # GIVEN an anomalous window where no single feature stands out (kind "", no explanation)
    anomaly = for_entity(load("anomaly-clicks-high.json"), unique_entity("plain"))
    anomaly.update(kind="", explanation={})

    # WHEN it is handled
    response = handler.lambda_handler(kinesis_event([encode(anomaly)], new_shard_id()), context)

    # THEN the alert says so instead of naming a feature
    assert response == {"batchItemFailures": []}
    [alert] = subscriber.take(about(anomaly["entity_id"]))
    assert alert["Subject"] == (
        f"[clicksentry CRITICAL] anomaly on ad {anomaly['entity_id']} at 2026-01-05 00:12:10Z"
    )
    assert "What:  unattributed anomaly, score 0.71" in alert["Message"]
    assert "  (no feature attribution)" in alert["Message"]
