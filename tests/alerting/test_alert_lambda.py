"""The Lambda handler against moto server: SNS -> SQS subscription, DynamoDB tables, SQS DLQ."""

import base64
import contextlib
import hashlib
import json
import time
from collections.abc import Callable, Iterator

import pytest
from alert_payloads import (
    QueueReader,
    SimulatedCrash,
    about,
    dynamodb_fault_response,
    encode,
    failed_sequence_numbers,
    for_entity,
    handler_environment,
    kinesis_event,
    load,
    malformed_cases,
    new_shard_id,
    sequence_numbers,
    sns_fault_response,
    unique_entity,
)

from alerting.dead_letter import BODY_LIMIT_BYTES as DLQ_BODY_LIMIT
from alerting.event_text import record_json, shown
from alerting.message import BODY_LIMIT_BYTES as SNS_BODY_LIMIT
from localdev.lambda_runner import LocalLambdaContext

SQS_LIMIT_BYTES = 262_144
SHORT_TIMEOUT_SECONDS = 1.0

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


def short_context() -> LocalLambdaContext:
    """An invocation with one second to live: a crash in it leaves an idempotency record in
    progress that expires a second later, as the real one expires with the Lambda timeout."""
    return LocalLambdaContext(
        "clicksentry-alerts",
        "arn:aws:lambda:us-east-1:000000000000:function:clicksentry-alerts",
        SHORT_TIMEOUT_SECONDS,
    )


def wait_for_the_crashed_invocation_to_time_out() -> None:
    time.sleep(SHORT_TIMEOUT_SECONDS + 0.5)


def body_of(request) -> str:
    return request.body.decode() if isinstance(request.body, bytes) else (request.body or "")


@contextlib.contextmanager
def on_send(client, event_name: str, hook: Callable) -> Iterator[None]:
    """Run ``hook(request)`` at botocore's send step of ``client`` (a non-None return answers)."""
    client.meta.events.register(event_name, hook, unique_id="clicksentry-test-hook")
    try:
        yield
    finally:
        client.meta.events.unregister(event_name, unique_id="clicksentry-test-hook")


@pytest.fixture
def reservation_of(aws_stack) -> Callable[[str], dict | None]:
    """The suppression table's ``alert#<anomaly_id>`` item, if any."""
    dynamodb = aws_stack.client("dynamodb")

    def read(anomaly_id: str) -> dict | None:
        return dynamodb.get_item(
            TableName=aws_stack.suppression_table,
            Key={"pk": {"S": f"alert#{anomaly_id}"}},
            ConsistentRead=True,
        ).get("Item")

    return read


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


def test_crash_between_reserve_and_publish_sends_the_alert_once_on_the_retry(
    handler, subscriber, reservation_of
):
    # GIVEN an anomaly, and an execution environment that dies as it calls SNS Publish for it
    anomaly = for_entity(load("anomaly-clicks-high.json"), unique_entity("crash-before"))
    event = kinesis_event([encode(anomaly)], new_shard_id())

    def crash(request, **_):
        if anomaly["entity_id"] in body_of(request):
            raise SimulatedCrash

    # WHEN the invocation crashes there
    with (
        on_send(handler.alerter().sns, "before-send.sns.Publish", crash),
        pytest.raises(SimulatedCrash),
    ):
        handler.lambda_handler(event, short_context())

    # THEN nothing was sent, and the alert was reserved before the publish
    assert subscriber.take(about(anomaly["entity_id"])) == []
    reserved = reservation_of(anomaly["anomaly_id"])
    assert (reserved["action"]["S"], reserved["severity"]["S"]) == ("alert", "critical")
    assert "message_id" not in reserved

    # WHEN the mapping retries the record once the crashed invocation has timed out
    wait_for_the_crashed_invocation_to_time_out()
    retry = handler.lambda_handler(event, short_context())

    # THEN the alert is sent exactly once and its reservation marked published
    assert retry == {"batchItemFailures": []}
    [alert] = subscriber.take(about(anomaly["entity_id"]))
    assert alert["MessageAttributes"]["alert_type"]["Value"] == "alert"
    assert reservation_of(anomaly["anomaly_id"])["message_id"]["S"] == alert["MessageId"]

    # WHEN the record is delivered yet again
    again = handler.lambda_handler(event, short_context())

    # THEN nothing more is sent
    assert again == {"batchItemFailures": []}
    assert subscriber.take(about(anomaly["entity_id"])) == []


def test_crash_after_publish_before_marking_it_sends_the_alert_again_at_least_once(
    handler, subscriber, reservation_of
):
    # GIVEN an anomaly, and an execution environment that dies right after SNS accepted its alert
    # (as it marks the reservation published)
    anomaly = for_entity(load("anomaly-clicks-high.json"), unique_entity("crash-after"))
    event = kinesis_event([encode(anomaly)], new_shard_id())

    def crash(request, **_):
        body = body_of(request)
        if "alert#" in body and anomaly["entity_id"] in body:
            raise SimulatedCrash

    # WHEN the invocation crashes there and the mapping retries after its timeout
    with (
        on_send(handler.alerter().dynamodb, "before-send.dynamodb.UpdateItem", crash),
        pytest.raises(SimulatedCrash),
    ):
        handler.lambda_handler(event, short_context())
    [first] = subscriber.take(about(anomaly["entity_id"]))
    wait_for_the_crashed_invocation_to_time_out()
    retry = handler.lambda_handler(event, short_context())

    # THEN, as documented (at-least-once for this window), the retry sends the same alert again:
    # it cannot know that SNS took the first one
    assert retry == {"batchItemFailures": []}
    [second] = subscriber.take(about(anomaly["entity_id"]))
    assert (second["Subject"], second["Message"]) == (first["Subject"], first["Message"])
    assert reservation_of(anomaly["anomaly_id"])["message_id"]["S"] == second["MessageId"]

    # AND once marked, a further delivery sends nothing
    assert handler.lambda_handler(event, short_context()) == {"batchItemFailures": []}
    assert subscriber.take(about(anomaly["entity_id"])) == []


def test_dynamodb_failing_after_the_publish_does_not_send_the_alert_twice(
    handler, context, subscriber
):
    # GIVEN an anomaly, and DynamoDB throttling every write about it once its alert is published
    anomaly = for_entity(load("anomaly-clicks-high.json"), unique_entity("ddb-after"))
    event = kinesis_event([encode(anomaly)], new_shard_id())
    published, refused = [], []

    def note_publish(request, **_):
        if anomaly["entity_id"] in body_of(request):
            published.append(request)

    def throttle(request, **_):
        if published and anomaly["entity_id"] in body_of(request):
            refused.append(request)
            return dynamodb_fault_response(request)
        return None

    # WHEN the record is handled, and delivered again
    alerter = handler.alerter()
    with (
        on_send(alerter.sns, "before-send.sns.Publish", note_publish),
        on_send(alerter.dynamodb, "before-send.dynamodb", throttle),
    ):
        first = handler.lambda_handler(event, context)
    again = handler.lambda_handler(event, context)

    # THEN the published alert is not failed for the storage error, and it is sent exactly once
    assert len(refused) == 3, "botocore made its three attempts to mark it published"
    assert first == again == {"batchItemFailures": []}
    assert len(subscriber.take(about(anomaly["entity_id"]))) == 1


def test_every_malformed_kind_of_record_is_dead_lettered_never_crashing_the_batch(
    handler, context, subscriber, dead_letters
):
    # GIVEN one batch: a valid anomaly, then one record of each malformed kind
    # (tests/events/malformed-anomaly-records.json)
    cases = malformed_cases()
    good = for_entity(load("anomaly-clicks-high.json"), unique_entity("good"))
    shard = new_shard_id()
    records = kinesis_event([encode(good)], shard)["Records"]
    keys = [f"ad/{unique_entity('malformed')}" for _ in cases]
    for case, key in zip(cases, keys, strict=True):
        [record] = kinesis_event([b""], shard, partition_key=key)["Records"]
        record["kinesis"]["data"] = case["kinesis_data"]
        records.append(record)
    event = {"Records": records}
    malformed_sequences = sequence_numbers(event)[1:]

    # WHEN the mapping delivers it and retries the failed records (POISON_MAX_ATTEMPTS=3)
    first = handler.lambda_handler(event, context)
    retry = {"Records": records[1:]}
    second = handler.lambda_handler(retry, context)
    third = handler.lambda_handler(retry, context)

    # THEN every malformed record fails twice, then goes to the DLQ with its reason and data
    assert failed_sequence_numbers(first) == malformed_sequences
    assert failed_sequence_numbers(second) == malformed_sequences
    assert third == {"batchItemFailures": []}
    parked = dead_letters.take(lambda body: body["record"]["partition_key"] in keys)
    by_key = {body["record"]["partition_key"]: body for body in parked}
    assert sorted(by_key) == sorted(keys) and len(parked) == len(keys)
    for case, key in zip(cases, keys, strict=True):
        assert case["error"] in by_key[key]["error"], case["case"]
        assert by_key[key]["attempts"] == 3
        assert by_key[key]["record"]["data"] == case["kinesis_data"], case["case"]
    # AND the valid anomaly was alerted exactly once
    assert len(subscriber.take(about(good["entity_id"]))) == 1


def test_oversized_anomaly_is_alerted_with_its_record_cut_below_the_sns_limit(
    handler, context, subscriber
):
    # GIVEN a valid anomaly of 700 000 bytes (a huge feature value)
    anomaly = for_entity(load("anomaly-clicks-high.json"), unique_entity("huge"))
    anomaly["features"]["padding"] = "x" * 700_000

    # WHEN it is handled
    response = handler.lambda_handler(kinesis_event([encode(anomaly)], new_shard_id()), context)

    # THEN the subscriber gets one alert whose body is within the 200 000-byte cap, saying so
    assert response == {"batchItemFailures": []}
    [alert] = subscriber.take(about(anomaly["entity_id"]))
    body = alert["Message"]
    assert len(body.encode("utf-8")) <= SNS_BODY_LIMIT == 200_000
    assert f"Where: ad {anomaly['entity_id']}" in body
    assert f"of {len(record_json(anomaly))} bytes; the complete record is on the anomalies" in body
    assert body.endswith("\n[... truncated]")


def test_oversized_poison_record_reaches_the_dlq_below_the_sqs_limit(
    handler, context, dead_letters
):
    # GIVEN a record of 700 001 bytes that is not JSON
    data = b"{" + b"x" * 700_000
    key = f"ad/{unique_entity('huge-poison')}"
    event = kinesis_event([data], new_shard_id(), partition_key=key)

    # WHEN it is delivered three times (POISON_MAX_ATTEMPTS=3)
    responses = [handler.lambda_handler(event, context) for _ in range(3)]

    # THEN it is dead-lettered in a message under SQS's 256 KiB, its data cut but identified
    assert [len(r["batchItemFailures"]) for r in responses] == [1, 1, 0]
    [parked] = dead_letters.take(lambda body: body["record"]["partition_key"] == key)
    assert len(json.dumps(parked).encode()) <= DLQ_BODY_LIMIT < SQS_LIMIT_BYTES
    kept = parked["record"]
    assert (kept["data_truncated"], kept["data_bytes"]) == (True, len(data))
    assert kept["data_sha256"] == hashlib.sha256(data).hexdigest()
    prefix = base64.b64decode(kept["data"])
    assert len(prefix) > 100_000 and data.startswith(prefix)


def test_hostile_entity_id_reaches_the_subscriber_escaped_and_defanged(
    handler, context, subscriber
):
    # GIVEN an anomaly whose entity id carries CR/LF, an address, a link and a bidi override
    hostile = load("anomaly-hostile-text.json")
    entity_id = unique_entity("hostile") + hostile["entity_id_suffix"]
    anomaly = for_entity(load("anomaly-clicks-high.json"), entity_id)

    # WHEN it is handled
    response = handler.lambda_handler(kinesis_event([encode(anomaly)], new_shard_id()), context)

    # THEN subject, attributes and body lines show it on one line, escaped, with no link
    assert response == {"batchItemFailures": []}
    shown_id = shown(entity_id)
    assert shown_id == (
        entity_id.split("\r")[0]
        + "\\x0d\\x0aBcc: ops[@]evil[.]example http[:]//evil[.]example/login \\u202e<b>"
    )
    [alert] = subscriber.take(about(shown_id))
    subject = f"[clicksentry CRITICAL] clicks high on ad {shown_id} at 2026-01-05 00:12:10Z"
    assert alert["Subject"] == subject[:96] + "..."
    assert {k: v["Value"] for k, v in alert["MessageAttributes"].items()} == {
        "severity": "critical",
        "entity_type": "ad",
        "entity_id": shown_id,
        "alert_type": "alert",
    }
    lines = alert["Message"].splitlines()
    assert lines[0] == f"CRITICAL: clicks high on ad {shown_id}"
    assert lines[3] == f"Where: ad {shown_id}"
    readable = [line for line in lines if not line.startswith("Dashboard: ")]
    assert not [line for line in readable if "://" in line or "evil.example" in line]
    assert all(line.isprintable() for line in lines)
    # AND the record in the body still holds the exact entity id
    assert json.loads(alert["Message"].split("Anomaly record (JSON):\n", 1)[1]) == anomaly
