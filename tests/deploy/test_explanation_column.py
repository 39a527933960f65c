"""ExplanationColumn (deploy/src/main/java) against the anomaly records it reads.

GIVEN anomaly records whose explanations name one to several features (the alert payloads of
``tests/events``, as the scoring operator writes them: compact JSON), a record with none, and
one with numbers Python writes as ``NaN`` and integers;
WHEN the job's Java map reads each record from a row the scoring operator emits;
THEN the row gains the explanation column at its place, one row per feature in the record's
order, with the same strings and doubles the record holds.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from flink_jobs import aws_connectors
from udfs.scored_window import (
    EMITTED_COLUMNS,
    EXPLANATION_FIELDS,
    EXPLANATION_POSITION,
    RECORD_POSITION,
)

pytestmark = pytest.mark.flink

EVENTS = Path(__file__).resolve().parents[1] / "events"
RECORDS = [
    "anomaly-clicks-high.json", "anomaly-purchases-low.json", "anomaly-hostile-text.json",
    "anomaly-broken-ad-run.json",
]


@pytest.fixture(scope="module")
def jvm():
    from pyflink.java_gateway import get_gateway

    aws_connectors.add_jar_to_planner(aws_connectors.jar_url())
    return get_gateway().jvm


def expected_rows(record: dict) -> list[tuple]:
    """The explanation as the archive stores it (``EXPLANATION_FIELDS``), from the record."""
    return [
        (feature, part["DIRECTION"], float(part["STRENGTH"]),
         float(part["ATTRIBUTION_SCORE"]), float(part["value"]), float(part["expected"]))
        for feature, part in record["explanation"].items()
    ]


def explain(jvm, record: dict) -> list[tuple]:
    """One emitted row (the record's JSON at its place, other columns numbered) through the
    map; returns the explanation column and checks every other column kept its value."""
    emitted = jvm.org.apache.flink.types.Row.withPositions(len(EMITTED_COLUMNS))
    for i, (name, _, _) in enumerate(EMITTED_COLUMNS):
        emitted.setField(i, json.dumps(record, separators=(",", ":")) if name == "record" else i)
    explanation = jvm.io.clicksentry.flink.ExplanationColumn(RECORD_POSITION, EXPLANATION_POSITION)
    out = explanation.map(emitted)
    assert out.getArity() == len(EMITTED_COLUMNS) + 1
    others = [out.getField(i) for i in range(out.getArity()) if i != EXPLANATION_POSITION]
    assert others == [emitted.getField(i) for i in range(emitted.getArity())]
    return [
        tuple(row.getField(j) for j in range(len(EXPLANATION_FIELDS)))
        for row in out.getField(EXPLANATION_POSITION)
    ]


@pytest.mark.parametrize("name", RECORDS)
def test_the_explanation_column_holds_the_records_explanation(jvm, name):
    record = json.loads((EVENTS / name).read_text())
    assert explain(jvm, record) == expected_rows(record)


def test_several_features_keep_their_order_and_a_record_without_any_gives_none(jvm):
    record = json.loads((EVENTS / "anomaly-clicks-high.json").read_text())
    swapped = {**record, "explanation": dict(reversed(record["explanation"].items()))}
    assert [r[0] for r in explain(jvm, swapped)] == ["ctr", "clicks"]
    assert explain(jvm, {**record, "explanation": {}}) == []


def test_numbers_are_the_doubles_python_wrote(jvm):
    record = json.loads((EVENTS / "anomaly-clicks-high.json").read_text())
    part = {"DIRECTION": "LOW", "STRENGTH": 1 / 3, "ATTRIBUTION_SCORE": 0.1 + 0.2,
            "value": 7, "expected": float("nan")}
    [row] = explain(jvm, {**record, "explanation": {"ctr": part}})
    assert row[:5] == ("ctr", "LOW", 1 / 3, 0.1 + 0.2, 7.0)
    assert math.isnan(row[5])
