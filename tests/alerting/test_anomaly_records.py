"""Decoding and validating anomaly records (docs/anomaly-record.md)."""

import json

import pytest
from alert_payloads import load

from alerting.anomaly import InvalidAnomaly, parse_anomaly

INVALID = load("invalid-anomaly-records.json")


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
