"""ParseClickEvent and EventTimeOf (deploy/src/main/java) against the job's SQL, on the minicluster.

GIVEN every line of tests/events/clicks_windows.jsonl plus hand-written edge cases (numbers as
strings, booleans, nested objects, nulls, top-level arrays and scalars, trailing garbage,
unicode escapes, duplicate keys, very large integers, empty and whitespace-only payloads, NULL)
and payloads at and over every limit (payload size, field lengths, control characters in entity
ids, invalid UTF-8 bytes); WHEN one Flink job evaluates, per payload, ``fields_sql()`` + the
validation part of ``reason_sql()`` next to ``parse_click(payload)`` and
``event_time_of(payload)`` from the jar; THEN the Java functions return the same fields and
reason as the SQL, except on the listed payloads where the SQL departs from the README's "Click
event schema" (there the Java follows the README, and the SQL's answer is pinned so that a
change in it is noticed), and the limit cases get exactly their expected reasons.

Payloads the SQL cannot take — nesting deeper than the limit (SQL cannot count it; 10,000 deep
takes its JSON functions over a minute) and 65,000- to 1,000,000-digit numbers (which it parses in
full) — run through the Java functions alone, in a second job, against expected reasons.
"""

from __future__ import annotations

import json
import sys
from collections import Counter
from pathlib import Path

import pytest

from flink_jobs import aws_connectors
from flink_jobs.events import (
    FIELDS,
    MAX_DEPTH,
    MAX_ID_CHARS,
    MAX_PAYLOAD_CHARS,
    MAX_TEXT_CHARS,
    fields_sql,
    reason_sql,
)
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




def padded(chars: int, pad: str = "x") -> str:
    """A valid click of exactly ``chars`` characters (code points), padded with ``pad``."""
    short = raw("pad", '""')
    return raw("pad", '"' + pad * (chars - len(short)) + '"')


def with_raw_bytes(name: str, value: bytes) -> bytes:
    """A valid click whose field ``name`` is the string of ``value``, bytes as they are."""
    return line(**{name: ...})[:-1].encode() + f', "{name}": "'.encode() + value + b'"}'


GARBAGE = b"\xff\xfe\xfd\x80\xbf"  # bytes that are never valid UTF-8
CUT_INSIDE_A_CHARACTER = VALID[:-12].encode() + b"\xc3"
DEEP = 10_000


def nested(depth: int) -> str:
    """JSON arrays nested ``depth`` deep: inside the payload's object, ``depth + 1`` open."""
    return "[" * depth + "]" * depth


#: The limits (flink_jobs/events.py, JsonLimits.java) on payloads the SQL twin also reads:
#: payload -> the reason both must give.
LIMIT_CASES = {
    # payload size, in characters (code points), decided before parsing
    padded(MAX_PAYLOAD_CHARS): None,
    padded(MAX_PAYLOAD_CHARS + 1): "payload_too_large",
    padded(MAX_PAYLOAD_CHARS, "\U0001f600"): None,  # more UTF-16 units than the limit
    "x" * 2**20: "payload_too_large",  # 1 MiB, not JSON
    GARBAGE * (2**20 // len(GARBAGE)): "payload_too_large",  # 1 MiB of invalid UTF-8
    # invalid UTF-8 arrives decoded, each bad byte as U+FFFD
    GARBAGE: "bad_json",
    b"\xc3(" + VALID.encode(): "bad_json",
    CUT_INSIDE_A_CHARACTER: "bad_json",
    with_raw_bytes("page", b"caf" + GARBAGE): "bad_value:page",
    with_raw_bytes("ad_id", b"\xc3"): "bad_value:ad_id",
    with_raw_bytes("user_agent", GARBAGE): None,  # only entity ids are checked
    HEAD.encode() + b', "' + GARBAGE + b'": 1}': None,  # an unknown key
    with_raw_bytes("page", "café ☕".encode()): None,
    # field lengths: ids and action 256 characters, user agent and referrer 4096
    line(page="p" * MAX_ID_CHARS): None,
    line(page="p" * (MAX_ID_CHARS + 1)): "too_long:page",
    line(page="\U0001f600" * MAX_ID_CHARS): None,  # 512 UTF-16 units, 256 characters
    line(ad_id="a" * (MAX_ID_CHARS + 1)): "too_long:ad_id",
    line(campaign="c" * 100_000): "payload_too_large",
    line(campaign="c" * 60_000): "too_long:campaign",
    line(event_id="e" * (MAX_ID_CHARS + 1)): "too_long:event_id",
    line(user_id="u" * (MAX_ID_CHARS + 1)): "too_long:user_id",
    line(session_id="s" * (MAX_ID_CHARS + 1)): "too_long:session_id",
    line(ip="1" * (MAX_ID_CHARS + 1)): "too_long:ip",
    line(action="click" * 100): "too_long:action",
    line(user_agent="m" * MAX_TEXT_CHARS, referrer="r" * MAX_TEXT_CHARS): None,
    line(user_agent="m" * (MAX_TEXT_CHARS + 1)): "too_long:user_agent",
    line(referrer="r" * (MAX_TEXT_CHARS + 1)): "too_long:referrer",
    line(page="p" * 300, user_id={"a": 1}): "bad_type:user_id",
    line(page="p" * 300, action="hover"): "too_long:page",
    # numbers: an integer's text is its value; a float is a double
    raw("user_id", "9" * MAX_ID_CHARS): None,
    raw("user_id", "-" + "9" * MAX_ID_CHARS): "too_long:user_id",
    raw("user_id", "9" * 5_000): "too_long:user_id",
    raw("event_time", "9" * 5_000): "bad_type:event_time",
    raw("event_time", json.dumps("9" * 5_000)): "bad_type:event_time",
    raw("event_time", json.dumps("0" * 5_000 + str(T))): None,
    raw("extra", "9" * 5_000): None,
    raw("extra", "-0." + "9" * 5_000 + "e-99999999999"): None,
    raw("user_id", "0." + "3" * 5_000): None,
    raw("user_id", "1e999999999"): None,  # Infinity
    # control characters and U+FFFD in entity ids (json.dumps escapes all but DEL)
    line(page="a\x00b"): "bad_value:page",
    line(page="line\nbreak"): "bad_value:page",
    line(ad_id="a\x1fb"): "bad_value:ad_id",
    line(campaign="a\x7fb"): "bad_value:campaign",
    line(page="a\x85b"): "bad_value:page",
    line(page="a\ufffdb"): "bad_value:page",
    line(page="a\u2028b\u00a0c"): None,  # line separator, no-break space: not controls
    line(user_id="a\x00b", ip="\t", user_agent="\x7f", referrer="\n"): None,
    line(page="\x00" * (MAX_ID_CHARS + 1)): "too_long:page",
    line(page="\x00", action="hover"): "bad_value:page",
    # nesting within the limit: the payload's object and 31 arrays
    raw("extra", nested(MAX_DEPTH - 1)): None,
}
EDGE_CASES += list(LIMIT_CASES)

#: Payloads the SQL twin cannot take (nesting it cannot count, numbers it parses with a cost
#: that grows with the square of their digits): payload -> (parse_click's reason,
#: event_time_of). ``raw`` puts its field after event_time, where event_time_of stops.
JAVA_ONLY_CASES = {
    raw("extra", nested(MAX_DEPTH)): ("too_deep", T),
    raw("extra", nested(DEEP)): ("too_deep", T),
    raw("extra", '{"a":' * DEEP + "1" + "}" * DEEP): ("too_deep", T),
    raw("extra", "[" * DEEP): ("too_deep", T),  # never closed: stops at the limit
    raw("event_time", nested(DEEP)): ("too_deep", None),
    HEAD.replace(f'"event_time": {T}, ', "") + f', "x": {nested(DEEP)}, "event_time": {T}}}': (
        "too_deep",
        None,
    ),
    nested(DEEP): ("bad_json", None),
    raw("event_time", "9" * 1_000_000): ("payload_too_large", None),
    raw("user_id", "9" * 1_000_000): ("payload_too_large", None),
    raw("event_time", "9" * 65_000): ("bad_type:event_time", None),
    raw("user_id", "9" * 65_000): ("too_long:user_id", T),
    raw("extra", "9" * 65_000): (None, T),
    raw("user_id", "0." + "3" * 65_000): (None, T),
}


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
    CUT_INSIDE_A_CHARACTER.decode("utf-8", "replace"): T,
}


def as_bytes(payload: str | bytes) -> bytes:
    return payload if isinstance(payload, bytes) else payload.encode("utf-8")


def as_text(payload: str | bytes) -> str:
    """A payload as the job sees it: the raw format decodes bytes, U+FFFD for invalid ones."""
    return payload.decode("utf-8", "replace") if isinstance(payload, bytes) else payload


def evaluate(tmp_path: Path, payloads: list[str | bytes], with_sql: bool = True) -> list[dict]:
    """One Flink job: the jar's functions (and the SQL twin) on each payload line and NULL."""
    from pyflink.table import EnvironmentSettings, TableEnvironment

    source = tmp_path / "payloads.txt"
    source.write_bytes(b"".join(as_bytes(p) + b"\n" for p in payloads))
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
    if with_sql:
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
    sql_columns = f" {sql}, {validation} AS sql_reason," if with_sql else ""
    sql_fields = f" {fields_sql()}," if with_sql else ""
    t_env.execute_sql(
        f"INSERT INTO dst SELECT payload,{sql_columns} {java},"
        f" java_event_time_of FROM ("
        f" SELECT payload,{sql_fields} parse_click(payload) AS j,"
        f" event_time_of(payload) AS java_event_time_of"
        f" FROM (SELECT payload FROM src UNION ALL SELECT CAST(NULL AS STRING)))"
    ).wait()
    return [
        json.loads(text)
        for path in sorted(out.rglob("*"))
        if path.is_file() and not path.name.startswith((".", "_"))
        # not splitlines(): an id may hold U+0085 or U+2028, which JSON leaves unescaped
        for text in path.read_text(encoding="utf-8").split("\n")
        if text
    ]


def by_payload(rows: list[dict]) -> dict:
    return {row["payload"]: row for row in rows}


@pytest.fixture(scope="module")
def results(tmp_path_factory) -> dict:
    inputs = EVENTS.read_text(encoding="utf-8").splitlines() + EDGE_CASES
    rows = evaluate(tmp_path_factory.mktemp("parse-click"), inputs)
    payloads = [as_text(p) for p in inputs]
    return {"payloads": payloads, "all_rows": rows, "rows": by_payload(rows)}


@pytest.fixture(scope="module")
def java_only_rows(tmp_path_factory) -> dict:
    return by_payload(evaluate(tmp_path_factory.mktemp("java-only"), [*JAVA_ONLY_CASES], False))


#: Reasons given before any field is read (or when reading stopped): every field NULL.
UNPARSED = {"payload_too_large", "bad_json", "too_deep"}


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
            mismatches[payload[:200]] = {
                c: {"sql": sql[c], "java": java[c]} for c in sql if sql[c] != java[c]
            }
    print(json.dumps(mismatches, indent=1, ensure_ascii=False)[:20_000])
    assert not mismatches


def test_limits_give_the_expected_reasons(results):
    # THEN every payload at or over a limit gets exactly its reason (the SQL agrees, above)
    got = {p: results["rows"][as_text(p)]["java_reason"] for p in LIMIT_CASES}
    wrong = {as_text(p)[:80]: (got[p], want) for p, want in LIMIT_CASES.items() if got[p] != want}
    assert not wrong


def test_java_alone_bounds_depth_and_numbers(java_only_rows):
    # GIVEN payloads the SQL twin cannot take (10,000-deep nesting, 65,000- and 1,000,000-digit
    # numbers); THEN parse_click and event_time_of give exactly the expected answers
    assert len(java_only_rows) == len(JAVA_ONLY_CASES) + 1
    assert java_only_rows[None]["java_reason"] == "bad_json"
    for payload, (reason, event_time_of) in JAVA_ONLY_CASES.items():
        row = java_only_rows[payload]
        got = (row["java_reason"], row["java_event_time_of"])
        assert got == (reason, event_time_of), payload[:80]
        if reason in UNPARSED:
            assert all(row[f"java_{name}"] is None for name in NAMES), payload[:80]


def test_clicks_windows_dead_letters_get_the_expected_reasons(results):
    # "late" and "event_time_out_of_range" are decided after the function, in SQL
    decided_later = {"late", "event_time_out_of_range"}
    for payload, reason in EXPECTED["dead_letters"].items():
        expected = None if reason in decided_later else reason
        assert results["rows"][payload]["java_reason"] == expected, payload


def test_unparsed_payloads_have_no_fields(results):
    for payload, row in results["rows"].items():
        if row["java_reason"] in UNPARSED:
            assert all(row[f"java_{name}"] is None for name in NAMES), payload[:80]


def test_event_time_of_is_the_parsed_event_time(results):
    # THEN EventTimeOf gives ParseClickEvent's event_time (NULL on bad_json), except where it
    # stopped reading before what made the payload bad or a duplicate key replaced the value
    assert set(EVENT_TIME_OF_STOPS_EARLY) <= set(results["rows"])
    for payload, row in results["rows"].items():
        parsed = None if row["java_reason"] in UNPARSED else row["java_event_time"]
        expected = EVENT_TIME_OF_STOPS_EARLY.get(payload, parsed)
        assert row["java_event_time_of"] == expected, (payload[:80], row["java_reason"])
