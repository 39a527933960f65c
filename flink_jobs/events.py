"""The click event schema, declared once, and the SQL that validates raw payloads against it.

The source delivers each payload as one ``STRING`` (format ``raw``). Parsing and validation run
in Java, once per event: ``parse_click(payload)`` (``io.clicksentry.flink.ParseClickEvent`` in
the project's jar) returns every typed field and the first thing wrong with the payload, and
``event_time_of(payload)`` the event time for the rowtime. What needs the rowtime and the
watermark — out-of-range timestamps and late events — is decided in SQL
(:func:`dead_letter_reason_sql`). :func:`fields_sql` and :func:`reason_sql` state the same rules
in Flink SQL; they are the reference the Java function is held to
(``tests/deploy/test_parse_click_event.py``), too slow for the job itself (every ``JSON_VALUE``
parses the whole payload again).

>>> [f.name for f in FIELDS if f.required]
['event_id', 'event_time', 'user_id', 'ip', 'page', 'action']
>>> sorted(AD_ACTIONS)
['click', 'impression']
"""

from __future__ import annotations

from dataclasses import dataclass

ACTIONS = ("impression", "click", "page_view", "add_to_cart", "purchase")
#: Actions that must name the ad and its campaign.
AD_ACTIONS = ("impression", "click")
#: Java scalar functions of the project's jar, by their SQL name.
JAVA_FUNCTIONS = {
    "parse_click": "io.clicksentry.flink.ParseClickEvent",
    "event_time_of": "io.clicksentry.flink.EventTimeOf",
}
#: User agents matching this (case-insensitive) count as bot-like.
BOT_AGENT_PATTERN = "bot|crawl|spider|slurp|headless|python-requests|curl/|wget|scrapy"


@dataclass(frozen=True)
class EventField:
    """One field of a click event as it appears in the JSON payload."""

    name: str
    sql_type: str  # STRING or BIGINT
    required: bool
    doc: str


FIELDS: tuple[EventField, ...] = (
    EventField("event_id", "STRING", True, "unique id of the event"),
    EventField("event_time", "BIGINT", True, "event time, epoch milliseconds (UTC)"),
    EventField("user_id", "STRING", True, "user (or cookie) id"),
    EventField("session_id", "STRING", False, "session id"),
    EventField("ip", "STRING", True, "client IP address"),
    EventField("user_agent", "STRING", False, "HTTP user agent"),
    EventField("page", "STRING", True, "page the event happened on"),
    EventField("campaign", "STRING", False, "campaign id; required for impression and click"),
    EventField("ad_id", "STRING", False, "ad id; required for impression and click"),
    EventField("action", "STRING", True, "one of " + ", ".join(ACTIONS)),
    EventField("referrer", "STRING", False, "referring URL"),
)


def sql_string(value: str) -> str:
    """Quote ``value`` as a SQL string literal.

    >>> sql_string("it's")
    "'it''s'"
    """
    return "'" + value.replace("'", "''") + "'"


def json_value_sql(field: EventField, column: str = "payload") -> str:
    """SQL that extracts ``field`` from the JSON payload with its type, ``NULL`` on error.

    >>> json_value_sql(FIELDS[1])
    "TRY_CAST(JSON_VALUE(payload, '$.event_time' NULL ON EMPTY NULL ON ERROR) AS BIGINT)"
    """
    # JSON_VALUE cannot return BIGINT: take the text and TRY_CAST it (NULL unless an integer).
    sql = f"JSON_VALUE({column}, {sql_string('$.' + field.name)} NULL ON EMPTY NULL ON ERROR)"
    return f"TRY_CAST({sql} AS {field.sql_type})" if field.sql_type != "STRING" else sql


def _present_sql(field: EventField, column: str = "payload") -> str:
    # Present = a non-null scalar, or an object/array (which is present but mistyped).
    path = sql_string("$." + field.name)
    return (
        f"(JSON_VALUE({column}, {path}) IS NOT NULL"
        f" OR JSON_QUERY({column}, {path} NULL ON EMPTY NULL ON ERROR) IS NOT NULL)"
    )


def register_functions_sql() -> list[str]:
    """``CREATE FUNCTION`` statements for :data:`JAVA_FUNCTIONS`.

    >>> register_functions_sql()[0]
    "CREATE TEMPORARY SYSTEM FUNCTION IF NOT EXISTS parse_click AS 'io.clicksentry.flink.ParseClickEvent' LANGUAGE JAVA"
    """  # noqa: E501
    return [
        f"CREATE TEMPORARY SYSTEM FUNCTION IF NOT EXISTS {name} AS {sql_string(cls)} LANGUAGE JAVA"
        for name, cls in JAVA_FUNCTIONS.items()
    ]


def rowtime_sql(max_future_ms: int, column: str = "payload") -> str:
    """SQL for the rowtime: the event time, or epoch 0 when missing, negative or too far ahead.

    A rowtime must never be ``NULL``, and a far-future timestamp must not drag the watermark
    ahead (every later event would look late), so those become epoch 0 and are dead-lettered.
    """
    if not isinstance(max_future_ms, int):
        raise TypeError("max_future_ms must be an int")
    et = f"event_time_of({column})"
    return (
        f"TO_TIMESTAMP_LTZ(CASE WHEN {et} BETWEEN 1 AND UNIX_TIMESTAMP() * 1000 + {max_future_ms}"
        f" THEN {et} ELSE 0 END, 3)"
    )


def dead_letter_reason_sql(parse_reason: str, rowtime: str = "ts") -> str:
    """SQL for the final dead-letter reason: the parser's, else the rowtime's, else ``NULL``.

    >>> print(dead_letter_reason_sql("e.reason"))
    COALESCE(e.reason, CASE WHEN ts = TO_TIMESTAMP_LTZ(0, 3) THEN 'event_time_out_of_range' WHEN ts <= CURRENT_WATERMARK(ts) THEN 'late' END)
    """  # noqa: E501
    return f"COALESCE({parse_reason}, CASE {' '.join(_rowtime_whens(rowtime))} END)"


def _rowtime_whens(rowtime: str) -> list[str]:
    return [
        f"WHEN {rowtime} = TO_TIMESTAMP_LTZ(0, 3) THEN 'event_time_out_of_range'",
        f"WHEN {rowtime} <= CURRENT_WATERMARK({rowtime}) THEN 'late'",
    ]


def fields_sql(column: str = "payload") -> str:
    """SQL select-list extracting every field once, typed, ``NULL`` when absent or mistyped.

    >>> "JSON_VALUE(payload, '$.user_id' NULL ON EMPTY NULL ON ERROR) AS user_id" in fields_sql()
    True
    """
    return ", ".join(f"{json_value_sql(f, column)} AS {f.name}" for f in FIELDS)


def reason_sql(rowtime: str = "ts", column: str = "payload") -> str:
    """SQL ``CASE`` naming why a payload is a dead letter, ``NULL`` for a valid, on-time event.

    The reference for ``parse_click`` (plus the rowtime checks). It reads the typed field
    columns of :func:`fields_sql` (each field parsed once); the
    payload is parsed again only for a field that came out ``NULL``, to tell a missing field
    from a mistyped one. Reasons, first match wins: ``bad_json``, ``missing_field:<name>``,
    ``bad_type:<name>``, ``bad_action``, ``event_time_out_of_range``, ``late``.

    >>> sql = reason_sql()
    >>> sql.startswith("CASE WHEN (payload IS JSON OBJECT) IS NOT TRUE THEN 'bad_json'")
    True
    >>> "WHEN ts <= CURRENT_WATERMARK(ts) THEN 'late'" in sql
    True
    """
    whens = [f"WHEN ({column} IS JSON OBJECT) IS NOT TRUE THEN 'bad_json'"]
    whens += [
        f"WHEN {f.name} IS NULL AND NOT {_present_sql(f, column)}"
        f" THEN {sql_string('missing_field:' + f.name)}"
        for f in FIELDS
        if f.required
    ]
    whens += [
        f"WHEN {f.name} IS NULL AND {_present_sql(f, column)}"
        f" THEN {sql_string('bad_type:' + f.name)}"
        for f in FIELDS
    ]
    whens.append(f"WHEN action NOT IN ({', '.join(map(sql_string, ACTIONS))}) THEN 'bad_action'")
    ad_actions = ", ".join(map(sql_string, AD_ACTIONS))
    whens += [
        f"WHEN action IN ({ad_actions}) AND {name} IS NULL"
        f" THEN {sql_string('missing_field:' + name)}"
        for name in ("ad_id", "campaign")
    ]
    whens += _rowtime_whens(rowtime)
    return "CASE " + " ".join(whens) + " END"


def is_bot_sql(column: str = "user_agent") -> str:
    """SQL that is 1 for a bot-like user agent, else 0."""
    return (
        f"CASE WHEN REGEXP(LOWER(COALESCE({column}, '')), {sql_string(BOT_AGENT_PATTERN)})"
        " THEN 1 ELSE 0 END"
    )
