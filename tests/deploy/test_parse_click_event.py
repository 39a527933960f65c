"""ParseClickEvent and EventTimeOf (deploy/src/main/java) against the job's SQL, on the minicluster.

GIVEN every line of tests/events/clicks_windows.jsonl plus hand-written edge cases (numbers as
strings, booleans, nested objects, nulls, top-level arrays and scalars, trailing garbage,
unicode escapes, duplicate keys, very large integers, empty and whitespace-only payloads, NULL);
WHEN one Flink job evaluates, per payload, ``fields_sql()`` + the validation part of
``reason_sql()`` next to ``parse_click(payload)`` and ``event_time_of(payload)`` from the jar;
THEN the Java functions return the same fields and reason as the SQL, except on the listed
payloads where the SQL departs from the README's "Click event schema" (there the Java follows
the README, and the SQL's answer is pinned so that a change in it is noticed).
"""

from __future__ import annotations

import json
import sys
from collections import Counter
from pathlib import Path

import pytest

from flink_jobs import aws_connectors
from flink_jobs.events import FIELDS, fields_sql, reason_sql
from flink_jobs.tables import local_file_options, with_clause

pytestmark = pytest.mark.flink

EVENTS = Path(__file__).parents[1] / "events" / "clicks_windows.jsonl"
EXPECTED = json.loads((EVENTS.parent / "clicks_windows.expected.json").read_text())
NAMES = [f.name for f in FIELDS]
T = 1767571200500


def event(**overrides) -> dict:
    base = {
        "event_id": "e-1",
        "event_time": T,
        "user_id": "u1",
        "session_id": "s1",
        "ip": "10.0.0.1",
        "user_agent": "Mozilla/5.0",
        "page": "page-a",
        "campaign": "cmp-1",
        "ad_id": "ad-1",
        "action": "click",
        "referrer": "",
    }
    base.update(overrides)
    return base


def line(**overrides) -> str:
    """A JSON line of a valid click with ``overrides`` (value ``...`` drops the key)."""
    return json.dumps({k: v for k, v in event(**overrides).items() if v is not ...})


VALID = line()
HEAD = VALID[:-1]  # the valid object without its closing brace, to splice raw JSON text onto


def raw(name: str, text: str) -> str:
    """A valid click whose field ``name`` is the raw JSON ``text`` (as json.dumps cannot write)."""
    return line(**{name: ...})[:-1] + f', "{name}": {text}}}'


# Payloads on which the SQL departs from the README schema (see SQL_DEPARTS_FROM_SCHEMA).
PADDED_TIME_STRING = line(event_time=f" {T} ")
FRACTION_TIME_STRING = line(event_time="1.5")
FRACTION_TIME = line(event_time=1.5)
EXPONENT_TIME = raw("event_time", "1e3")
TRAILING_GARBAGE = VALID + " x"
TRAILING_BRACE = VALID + "}"
TWO_OBJECTS = VALID + " " + VALID

EDGE_CASES = [
    VALID,
    line(action="impression"),
    line(action="purchase", campaign=None, ad_id=...),
    # event_time as a string, and other event_time types
    line(event_time=str(T)),
    line(event_time=f"+{T}"),
    line(event_time="-5"),
    PADDED_TIME_STRING,
    FRACTION_TIME_STRING,
    line(event_time="1e3"),
    line(event_time=""),
    line(event_time="abc"),
    line(event_time="٤٢"),  # Arabic-Indic digits
    line(event_time="9223372036854775807"),
    line(event_time="9223372036854775808"),
    FRACTION_TIME,
    line(event_time=float(T)),
    line(event_time=True),
    line(event_time={"ms": T}),
    line(event_time=[T]),
    line(event_time=9223372036854775807),
    line(event_time=-9223372036854775808),
    line(event_time=9223372036854775808),
    line(event_time=10**30),
    line(event_time=0),
    line(event_time=-1),
    EXPONENT_TIME,
    raw("event_time", "-0"),
    # string fields holding numbers, booleans, objects, arrays, nulls
    line(user_id=42),
    line(user_id=-7),
    line(user_id=12345678901234567890123),
    line(user_id=1.50),
    line(user_id=1e20),
    line(user_id=0.1),
    line(user_id=True),
    line(user_id=False),
    raw("user_id", "-0"),
    raw("user_id", "1E2"),
    raw("user_id", "2.50e-3"),
    line(session_id={"a": 1}),
    line(referrer=[]),
    line(user_agent=None),
    line(session_id=None, user_agent=..., referrer=None),
    line(page=""),
    line(page={"path": "/a"}, user_id=[1]),
    line(ad_id=7, campaign=8),
    line(action=42),
    line(action=None),
    line(action="CLICK"),
    line(event_id=None),
    line(event_id=None, page={"a": 1}),
    line(ip=..., event_time="x"),
    line(ad_id=None),
    line(ad_id=..., campaign=...),
    line(campaign=None, action="impression"),
    line(campaign=[], action="impression"),
    line(ad_id="", campaign=""),
    # top level not an object, or not JSON
    "[]",
    "[" + VALID + "]",
    '"' + "a string" + '"',
    "42",
    "true",
    "null",
    "{}",
    "{ }",
    "",
    "   ",
    "\t",
    TRAILING_GARBAGE,
    TRAILING_BRACE,
    TWO_OBJECTS,
    VALID + "   ",
    "   " + VALID,
    VALID[:-1],
    VALID[:40],
    "{event_id: 1}",
    "{'event_id': 'e'}",
    "/* c */ " + VALID,
    HEAD + ', "extra": NaN}',
    HEAD + ', "extra": 01}',
    HEAD + ', "extra": "tab\there"}',
    HEAD + ",}",
    # unicode escapes and non-ASCII text
    raw("user_id", '"\\u00e9t\\u00e9"'),
    raw("page", '"\\ud83d\\ude00 caf\\u00e9"'),
    line(page="café ☕ 😀"),
    line(page=...)[:-1] + ', "\\u0070age": "escaped-key"}',
    raw("referrer", '"a\\"b\\\\c\\/d\\n"'),
    # duplicate keys: the last one wins
    HEAD + ', "page": {"a": 1}, "page": "page-b"}',
    HEAD + ', "page": "page-b", "page": {"a": 1}}',
    HEAD + ', "event_time": "soon", "event_time": 5}',
    HEAD + ', "event_time": 5, "event_time": "soon"}',
    HEAD + ', "action": "hover", "action": "page_view"}',
    HEAD + ', "action": null}',
    HEAD + ', "ad_id": "ad-2", "ad_id": null}',
    # nested values are skipped, not mistaken for top-level fields
    line(event_id=..., meta={"event_id": "nested", "x": [1, {"event_id": "deeper"}]}),
    line(extra=[[[{"page": None, "a": [1, 2, {"b": None}]}]]], tags=["x", "y"]),
    line(Event_ID="case", EVENT_TIME=1),
]


def _time_not_an_integer(sql_time: int) -> dict:
    return {"event_time": (sql_time, None), "reason": (None, "bad_type:event_time")}


def _valid_object_then_more() -> dict:
    return {
        **{name: (value, None) for name, value in event().items()},
        "reason": (None, "bad_json"),
    }


#: Payloads on which the job's SQL departs from the README schema: column -> (the SQL's value,
#: pinned so that a change in it is noticed; the Java's, what the README says).
SQL_DEPARTS_FROM_SCHEMA = {
    # TRY_CAST trims the text and truncates a fraction: " 1767571200500 " -> 1767571200500,
    # "1.5" -> 1, and JSON_VALUE renders 1.5 as "1.5" and 1e3 as "1000.0". The README wants an
    # integer event time; the Java takes an integer number or a string of exactly an integer.
    PADDED_TIME_STRING: _time_not_an_integer(T),
    FRACTION_TIME_STRING: _time_not_an_integer(1),
    FRACTION_TIME: _time_not_an_integer(1),
    EXPONENT_TIME: _time_not_an_integer(1000),
    # IS JSON OBJECT and JSON_VALUE read the first JSON value and ignore what follows it; the
    # README wants one JSON object per record, so the Java rejects anything after it.
    TRAILING_GARBAGE: _valid_object_then_more(),
    TRAILING_BRACE: _valid_object_then_more(),
    TWO_OBJECTS: _valid_object_then_more(),
}

#: EventTimeOf stops at the first top-level event_time (and the token after it): where the full
#: parse says bad_json or a later duplicate key wins, it still gives that first value.
EVENT_TIME_OF_STOPS_EARLY = {
    VALID[:-1]: T,
    TRAILING_GARBAGE: T,
    TRAILING_BRACE: T,
    TWO_OBJECTS: T,
    HEAD + ",}": T,
    HEAD + ', "extra": NaN}': T,
    HEAD + ', "extra": 01}': T,
    HEAD + ', "extra": "tab\there"}': T,
    HEAD + ', "event_time": "soon", "event_time": 5}': T,
    HEAD + ', "event_time": 5, "event_time": "soon"}': T,
    next(p for p in EXPECTED["dead_letters"] if "fx-bad-1" in p): T,
}


def run_both(tmp_path: Path, payloads: list[str]) -> list[dict]:
    from pyflink.table import EnvironmentSettings, TableEnvironment

    source = tmp_path / "payloads.txt"
    source.write_text("".join(p + "\n" for p in payloads), encoding="utf-8")
    out = tmp_path / "out"
    t_env = TableEnvironment.create(EnvironmentSettings.in_batch_mode())
    config = t_env.get_config()
    config.set("pipeline.jars", aws_connectors.jar_url())
    config.set("python.executable", sys.executable)
    config.set("parallelism.default", "1")
    t_env.execute_sql(
        "CREATE TEMPORARY SYSTEM FUNCTION parse_click"
        " AS 'io.clicksentry.flink.ParseClickEvent' LANGUAGE JAVA"
    )
    t_env.execute_sql(
        "CREATE TEMPORARY SYSTEM FUNCTION event_time_of"
        " AS 'io.clicksentry.flink.EventTimeOf' LANGUAGE JAVA"
    )
    t_env.execute_sql(
        f"CREATE TEMPORARY TABLE src (payload STRING)"
        f" {with_clause(local_file_options(source, 'raw'))}"
    )
    columns = ["payload STRING"]
    columns += [f"sql_{f.name} {f.sql_type}" for f in FIELDS] + ["sql_reason STRING"]
    columns += [f"java_{f.name} {f.sql_type}" for f in FIELDS] + ["java_reason STRING"]
    columns += ["java_event_time_of BIGINT"]
    t_env.execute_sql(
        f"CREATE TEMPORARY TABLE dst ({', '.join(columns)})"
        f" {with_clause({**local_file_options(out, 'json'), 'sink.parallelism': '1'})}"
    )
    # The validation part of reason_sql(): the last two WHENs need the rowtime and watermark.
    cut = " WHEN ts = TO_TIMESTAMP_LTZ(0, 3)"
    reason = reason_sql("ts")
    assert cut in reason
    validation = reason[: reason.index(cut)] + " END"
    java = ", ".join(f"j.{name} AS java_{name}" for name in [*NAMES, "reason"])
    sql = ", ".join(f"{name} AS sql_{name}" for name in NAMES)
    t_env.execute_sql(
        f"INSERT INTO dst SELECT payload, {sql}, {validation} AS sql_reason, {java},"
        f" java_event_time_of FROM ("
        f" SELECT payload, {fields_sql()}, parse_click(payload) AS j,"
        f" event_time_of(payload) AS java_event_time_of"
        f" FROM (SELECT payload FROM src UNION ALL SELECT CAST(NULL AS STRING)))"
    ).wait()
    return [
        json.loads(text)
        for path in sorted(out.rglob("*"))
        if path.is_file() and not path.name.startswith((".", "_"))
        for text in path.read_text(encoding="utf-8").splitlines()
    ]


@pytest.fixture(scope="module")
def results(tmp_path_factory) -> dict:
    payloads = EVENTS.read_text(encoding="utf-8").splitlines() + EDGE_CASES
    rows = run_both(tmp_path_factory.mktemp("parse-click"), payloads)
    return {"payloads": payloads, "all_rows": rows, "rows": {row["payload"]: row for row in rows}}


def side(row: dict, prefix: str) -> dict:
    return {name: row[f"{prefix}_{name}"] for name in [*NAMES, "reason"]}


def test_every_payload_comes_out_once(results):
    # THEN each input line (and the NULL payload) gave exactly one row
    out = Counter(row["payload"] for row in results["all_rows"])
    assert out == Counter([*results["payloads"], None])


def test_java_returns_the_sql_fields_and_reason(results):
    mismatches = {}
    for payload, row in results["rows"].items():
        sql, java = side(row, "sql"), side(row, "java")
        departs = SQL_DEPARTS_FROM_SCHEMA.get(payload, {})
        for column, (sql_value, java_value) in departs.items():
            assert (sql[column], java[column]) == (sql_value, java_value), (payload, column)
            sql.pop(column)
            java.pop(column)
        if sql != java:
            mismatches[payload] = {
                c: {"sql": sql[c], "java": java[c]} for c in sql if sql[c] != java[c]
            }
    print(json.dumps(mismatches, indent=1, ensure_ascii=False))
    assert not mismatches


def test_clicks_windows_dead_letters_get_the_expected_reasons(results):
    # "late" and "event_time_out_of_range" are decided after the function, in SQL
    decided_later = {"late", "event_time_out_of_range"}
    for payload, reason in EXPECTED["dead_letters"].items():
        expected = None if reason in decided_later else reason
        assert results["rows"][payload]["java_reason"] == expected, payload


def test_bad_json_has_no_fields(results):
    for payload, row in results["rows"].items():
        if row["java_reason"] == "bad_json":
            assert all(row[f"java_{name}"] is None for name in NAMES), payload


def test_event_time_of_is_the_parsed_event_time(results):
    # THEN EventTimeOf gives ParseClickEvent's event_time (NULL on bad_json), except where it
    # stopped reading before what made the payload bad or a duplicate key replaced the value
    assert set(EVENT_TIME_OF_STOPS_EARLY) <= set(results["rows"])
    for payload, row in results["rows"].items():
        parsed = None if row["java_reason"] == "bad_json" else row["java_event_time"]
        expected = EVENT_TIME_OF_STOPS_EARLY.get(payload, parsed)
        assert row["java_event_time_of"] == expected, payload
