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
    "rowtime_of": "io.clicksentry.flink.RowtimeOf",
    "count_dead_letter": "io.clicksentry.flink.CountDeadLetter",
    "window_stats": "io.clicksentry.flink.WindowStats",
    "is_bot_agent": "io.clicksentry.flink.IsBotAgent",
}
#: Longest payload parsed, in characters; a longer one is ``payload_too_large`` (JsonLimits.java).
MAX_PAYLOAD_CHARS = 65_536
#: Most objects/arrays open at once, the payload's own included; deeper is ``too_deep``. Java
#: only: SQL cannot count nesting (see :func:`reason_sql`).
MAX_DEPTH = 32
#: Longest id or action, and longest free text, in characters; longer is ``too_long:<field>``.
MAX_ID_CHARS = 256
MAX_TEXT_CHARS = 4096
#: Fields that name an entity (keyed state, alerts): a control character or U+FFFD (what the
#: source's UTF-8 decoding puts for invalid bytes) in one is ``bad_value:<field>``.
ENTITY_ID_FIELDS = ("page", "campaign", "ad_id")
#: Java regular expression (REGEXP) for the characters an entity id must not hold.
FORBIDDEN_ID_CHARS = r"[\u0000-\u001f\u007f-\u009f\ufffd]"
#: User agents containing one of these (case-insensitive) count as bot-like.
BOT_AGENT_WORDS = (
    "bot", "crawl", "spider", "slurp", "headless", "python-requests", "curl/", "wget", "scrapy",
)


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
#: The most characters each string field may hold: free text (user agent, referrer) is longer.
MAX_CHARS = {
    f.name: MAX_TEXT_CHARS if f.name in ("user_agent", "referrer") else MAX_ID_CHARS
    for f in FIELDS
    if f.sql_type == "STRING"
}


def sql_string(value: str) -> str:
    """Quote ``value`` as a SQL string literal.

    >>> sql_string("it's")
    "'it''s'"
    """
    return "'" + value.replace("'", "''") + "'"


def json_value_sql(field: EventField, column: str = "payload") -> str:
    """SQL that extracts ``field`` from the JSON payload with its type, ``NULL`` on error.

    ``NULL`` as well for a payload over :data:`MAX_PAYLOAD_CHARS`, which is not parsed.

    >>> print(json_value_sql(FIELDS[1]))
    CASE WHEN CHAR_LENGTH(payload) <= 65536 THEN TRY_CAST(JSON_VALUE(payload, '$.event_time' NULL ON EMPTY NULL ON ERROR) AS BIGINT) END
    """  # noqa: E501
    # JSON_VALUE cannot return BIGINT: take the text and TRY_CAST it (NULL unless an integer).
    sql = f"JSON_VALUE({column}, {sql_string('$.' + field.name)} NULL ON EMPTY NULL ON ERROR)"
    sql = f"TRY_CAST({sql} AS {field.sql_type})" if field.sql_type != "STRING" else sql
    return f"CASE WHEN CHAR_LENGTH({column}) <= {MAX_PAYLOAD_CHARS} THEN {sql} END"


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


def rowtime_sql(max_future_ms: int, max_ahead_ms: int, column: str = "payload") -> str:
    """SQL for the rowtime: the event time, or epoch 0 when it is not plausible.

    A rowtime must never be ``NULL``, and one far-ahead timestamp must not drag the watermark
    forward (every later event would look late): a missing or negative event time, one more than
    ``max_future_ms`` ahead of wall-clock time, or one more than ``max_ahead_ms`` ahead of the
    stream's latest accepted event time becomes epoch 0 and is dead-lettered
    (``rowtime_of``, ``deploy/src/.../RowtimeOf.java``, which also follows a stream that
    really moves ahead).

    >>> print(rowtime_sql(3_600_000, 300_000))
    TO_TIMESTAMP_LTZ(rowtime_of(event_time_of(payload), UNIX_TIMESTAMP() * 1000 + 3600000, 300000), 3)
    """  # noqa: E501
    for name, value in (("max_future_ms", max_future_ms), ("max_ahead_ms", max_ahead_ms)):
        if not isinstance(value, int):
            raise TypeError(f"{name} must be an int")
    return (
        f"TO_TIMESTAMP_LTZ(rowtime_of(event_time_of({column}),"
        f" UNIX_TIMESTAMP() * 1000 + {max_future_ms}, {max_ahead_ms}), 3)"
    )


def late_sql(rowtime: str = "ts") -> str:
    """SQL that is TRUE when the row is at or behind the watermark of the operator evaluating it.

    >>> late_sql()
    'COALESCE(ts <= CURRENT_WATERMARK(ts), FALSE)'
    """
    return f"COALESCE({rowtime} <= CURRENT_WATERMARK({rowtime}), FALSE)"


def dead_letter_reason_sql(
    parse_reason: str, late_at_source: str | None = None, rowtime: str = "ts"
) -> str:
    """SQL for the final dead-letter reason: the parser's, else the rowtime's, else ``NULL``.

    ``late_at_source`` names a column that says the row was late where it was read (see
    :func:`flink_jobs.job.define_pipeline`); the row is also late at or behind the watermark
    where this SQL runs.

    >>> print(dead_letter_reason_sql("e.reason"))
    COALESCE(e.reason, CASE WHEN ts = TO_TIMESTAMP_LTZ(0, 3) THEN 'event_time_out_of_range' WHEN ts <= CURRENT_WATERMARK(ts) THEN 'late' END)
    >>> print(dead_letter_reason_sql("e.reason", "late_at_source"))
    COALESCE(e.reason, CASE WHEN ts = TO_TIMESTAMP_LTZ(0, 3) THEN 'event_time_out_of_range' WHEN late_at_source THEN 'late' WHEN ts <= CURRENT_WATERMARK(ts) THEN 'late' END)
    """  # noqa: E501
    whens = _rowtime_whens(rowtime)
    if late_at_source is not None:
        whens.insert(1, f"WHEN {late_at_source} THEN 'late'")
    return f"COALESCE({parse_reason}, CASE {' '.join(whens)} END)"


def _rowtime_whens(rowtime: str) -> list[str]:
    return [
        f"WHEN {rowtime} = TO_TIMESTAMP_LTZ(0, 3) THEN 'event_time_out_of_range'",
        f"WHEN {rowtime} <= CURRENT_WATERMARK({rowtime}) THEN 'late'",
    ]


def fields_sql(column: str = "payload") -> str:
    """SQL select-list extracting every field once, typed, ``NULL`` when absent or mistyped.

    >>> "'$.user_id' NULL ON EMPTY NULL ON ERROR) END AS user_id" in fields_sql()
    True
    """
    return ", ".join(f"{json_value_sql(f, column)} AS {f.name}" for f in FIELDS)


def reason_sql(rowtime: str = "ts", column: str = "payload") -> str:
    """SQL ``CASE`` naming why a payload is a dead letter, ``NULL`` for a valid, on-time event.

    The reference for ``parse_click`` (plus the rowtime checks). It reads the typed field
    columns of :func:`fields_sql` (each field parsed once); the
    payload is parsed again only for a field that came out ``NULL``, to tell a missing field
    from a mistyped one. Reasons, first match wins: ``payload_too_large``, ``bad_json``,
    ``missing_field:<name>``, ``bad_type:<name>``, ``too_long:<name>``, ``bad_value:<name>``,
    ``bad_action``, ``event_time_out_of_range``, ``late``.

    ``too_deep`` (nesting beyond :data:`MAX_DEPTH`, after ``bad_json``) is the Java's alone:
    SQL has no way to count nesting. The SQL is a reference, not a guard: its JSON functions
    take over a minute on a 10,000-deep payload, and parse every number in full (a BigInteger's
    cost grows with the square of its digits).

    >>> sql = reason_sql()
    >>> sql.startswith("CASE WHEN CHAR_LENGTH(payload) > 65536 THEN 'payload_too_large'"
    ...                " WHEN (payload IS JSON OBJECT) IS NOT TRUE THEN 'bad_json'")
    True
    >>> "WHEN CHAR_LENGTH(page) > 256 THEN 'too_long:page'" in sql
    True
    >>> "WHEN ts <= CURRENT_WATERMARK(ts) THEN 'late'" in sql
    True
    """
    whens = [
        f"WHEN CHAR_LENGTH({column}) > {MAX_PAYLOAD_CHARS} THEN 'payload_too_large'",
        f"WHEN ({column} IS JSON OBJECT) IS NOT TRUE THEN 'bad_json'",
    ]
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
    whens += [
        f"WHEN CHAR_LENGTH({name}) > {limit} THEN {sql_string('too_long:' + name)}"
        for name, limit in MAX_CHARS.items()
    ]
    whens += [
        f"WHEN REGEXP({name}, {sql_string(FORBIDDEN_ID_CHARS)})"
        f" THEN {sql_string('bad_value:' + name)}"
        for name in ENTITY_ID_FIELDS
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
    """SQL that is 1 for a bot-like user agent (one of :data:`BOT_AGENT_WORDS`), else 0.

    ``is_bot_agent`` (``deploy/src/.../IsBotAgent.java``) looks for the words as plain
    substrings: a regular expression of them cost a quarter of the thread that classifies
    every event.

    >>> is_bot_sql()
    "is_bot_agent(user_agent, 'bot|crawl|spider|slurp|headless|python-requests|curl/|wget|scrapy')"
    """
    return f"is_bot_agent({column}, {sql_string('|'.join(BOT_AGENT_WORDS))})"


def is_bot_agent(user_agent: str | None) -> int:
    """1 for a bot-like user agent, else 0: what :func:`is_bot_sql` computes in the job.

    >>> is_bot_agent("Mozilla/5.0 (compatible; Googlebot/2.1)"), is_bot_agent(None)
    (1, 0)
    """
    lower = (user_agent or "").lower()
    return int(any(word in lower for word in BOT_AGENT_WORDS))
