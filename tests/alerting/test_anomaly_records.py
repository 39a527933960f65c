"""Decoding and validating anomaly records (docs/anomaly-record.md)."""

import json

import pytest
from alert_payloads import load, malformed_cases

from alerting.anomaly import MAX_DEPTH, InvalidAnomaly, decode_anomaly, parse_anomaly

INVALID = load("invalid-anomaly-records.json")
MALFORMED = malformed_cases()


def test_documented_record_decodes_with_its_movements_strongest_first():
    # GIVEN the example record of the schema document
    raw = json.dumps(load("anomaly-clicks-high.json")).encode()

    # WHEN it is decoded
    anomaly = parse_anomaly(raw)

    # THEN identity, window and movements are read, and the record is kept as received
    assert (anomaly.entity_type, anomaly.entity_id, anomaly.kind) == (
        "ad",
        "ad-0007",
        "clicks_high",
    )
    assert (anomaly.window_start_ms, anomaly.window_end_ms) == (1767571920000, 1767571930000)
    assert [(m.feature, m.direction, m.value, m.expected) for m in anomaly.movements] == [
        ("clicks", "HIGH", 340, 12.0),
        ("ctr", "HIGH", 0.386, 0.021),
    ]
    assert anomaly.payload == load("anomaly-clicks-high.json")


@pytest.mark.parametrize("case", INVALID, ids=[case["case"] for case in INVALID])
def test_invalid_record_is_rejected_with_a_clear_reason(case):
    # GIVEN a record that breaks the schema
    raw = case["data"].encode()

    # WHEN it is decoded
    with pytest.raises(InvalidAnomaly) as rejected:
        parse_anomaly(raw)

    # THEN the error says what is wrong
    assert case["error"] in str(rejected.value)


@pytest.mark.parametrize("case", MALFORMED, ids=[case["case"] for case in MALFORMED])
def test_adversarial_record_is_rejected_as_invalid_never_crashing(case):
    # GIVEN a record built to break decoders: deep nesting, huge or non-finite numbers,
    # timestamps no datetime holds, lone surrogates, bytes that are not UTF-8 or not base64
    data = case["kinesis_data"]

    # WHEN its Kinesis data is decoded
    with pytest.raises(InvalidAnomaly) as rejected:
        decode_anomaly(data)

    # THEN it is an invalid anomaly (nothing else escapes) with a short, clear reason
    assert case["error"] in str(rejected.value)
    assert len(str(rejected.value)) < 300


def test_record_at_the_nesting_limit_is_still_accepted():
    # GIVEN the documented record with a feature nested to exactly the allowed depth
    record = load("anomaly-clicks-high.json")
    nested = 1
    for _ in range(MAX_DEPTH - 2):
        nested = {"a": nested}
    record["features"]["nested"] = nested

    # WHEN it is decoded
    anomaly = parse_anomaly(json.dumps(record).encode())

    # THEN it is valid and kept as received
    assert anomaly.payload == record
