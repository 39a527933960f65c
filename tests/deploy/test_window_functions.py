"""WindowStats and IsBotAgent (deploy/src/main/java) against Flink SQL's own functions.

GIVEN entity events with repeated and NULL users, sessions and IPs over three UTC-aligned 10 s
windows, and user agents in every case and a few unicode traps;
WHEN a streaming job (parallelism 1 and 2) computes ``window_counts_sql`` — one
``window_stats`` aggregate — next to what it replaced (COUNT, COUNT(DISTINCT ...), a per-IP count
cascaded into its MAX, and a window join of the two), and a job evaluates ``is_bot_agent``
next to ``REGEXP(LOWER(COALESCE(user_agent, '')), words)``;
THEN every entity window has the same counts both ways, and every agent the same verdict, also
from the Python twin.
"""

from __future__ import annotations

import json
import random
import sys
from pathlib import Path

import pytest

from flink_jobs import aws_connectors
from flink_jobs.events import (
    BOT_AGENT_WORDS,
    is_bot_agent,
    is_bot_sql,
    register_functions_sql,
    sql_string,
)
from flink_jobs.features import WINDOW_COUNTS, window_counts_sql
from flink_jobs.tables import local_file_options, with_clause
from localdev.part_files import read_records

pytestmark = pytest.mark.flink

T0 = 1767571200000  # 2026-01-05T00:00:00Z
AGENTS = [
    None, "", "Mozilla/5.0 (X11; Linux x86_64) Firefox/133.0", "Googlebot/2.1", "GOOGLEBOT",
    "Mozilla/5.0 (compatible; bingbot/2.0)", "robot", "a Crawler", "SPIDER-man", "Yahoo! Slurp",
    "HeadlessChrome/120", "python-requests/2.31", "Python-Requests", "python requests",
    "curl/8.4", "curl", "CURL/", "Wget/1.21", "Scrapy/2.11", "bo t", "\u0130stanbul",
    "sp\u0130der", "\u212arawl", "B\u00d6T", "bot\u0000", "the best of bots",
]


def _environment(streaming: bool, parallelism: int):
    from pyflink.table import EnvironmentSettings, TableEnvironment

    settings = EnvironmentSettings.in_streaming_mode() if streaming \
        else EnvironmentSettings.in_batch_mode()
    t_env = TableEnvironment.create(settings)
    config = t_env.get_config()
    config.set("pipeline.jars", aws_connectors.jar_url())
    config.set("python.executable", sys.executable)
    config.set("parallelism.default", str(parallelism))
    config.set("table.local-time-zone", "UTC")
    for statement in register_functions_sql():
        t_env.execute_sql(statement)
    return t_env


def entity_events(n: int = 3000, seed: int = 5) -> list[dict]:
    """Events of four entities over three windows, out of order (the watermark waits 30 s),
    drawn from alphabets small enough to repeat."""
    rng = random.Random(seed)
    actions = ["impression", "click", "page_view", "add_to_cart", "purchase", "other"]
    return [
        {
            "entity_type": rng.choice(["page", "ad"]),
            "entity_id": rng.choice(["e-1", "e-2"]),
            "event_time": T0 + rng.randrange(30_000),
            "action": rng.choice(actions),
            "user_id": rng.choice([None, *(f"u{i}" for i in range(200))]),
            "session_id": rng.choice([None, None, *(f"s{i}" for i in range(300))]),
            "ip": rng.choice([None, *(f"10.0.0.{i}" for i in range(60))]),
            "is_bot": rng.choice([0, 0, 0, 1]),
        }
        for _ in range(n)
    ]


#: Events per entity window and IP: cascaded into the busiest IP's count in REFERENCE_SQL.
IP_COUNTS_SQL = """
SELECT window_time AS ip_time, entity_type, entity_id, ip, COUNT(*) AS ip_events
FROM TABLE(TUMBLE(TABLE ev, DESCRIPTOR(ts), INTERVAL '10' SECOND))
GROUP BY window_start, window_end, window_time, entity_type, entity_id, ip
"""
#: What ``window_stats`` replaced: Flink's own aggregates, a cascade and a window join.
REFERENCE_SQL = """
SELECT c.window_start, c.window_end, c.entity_type, c.entity_id, c.events, c.impressions,
       c.clicks, c.page_views, c.add_to_carts, c.purchases, c.unique_users, c.unique_sessions,
       c.unique_ips, t.top_ip_events, c.bot_events
FROM (
  SELECT window_start, window_end, entity_type, entity_id, COUNT(*) AS events,
         COUNT(*) FILTER (WHERE action = 'impression') AS impressions,
         COUNT(*) FILTER (WHERE action = 'click') AS clicks,
         COUNT(*) FILTER (WHERE action = 'page_view') AS page_views,
         COUNT(*) FILTER (WHERE action = 'add_to_cart') AS add_to_carts,
         COUNT(*) FILTER (WHERE action = 'purchase') AS purchases,
         COUNT(DISTINCT user_id) AS unique_users, COUNT(DISTINCT session_id) AS unique_sessions,
         COUNT(DISTINCT ip) AS unique_ips, SUM(is_bot) AS bot_events
  FROM TABLE(TUMBLE(TABLE ev, DESCRIPTOR(ts), INTERVAL '10' SECOND))
  GROUP BY window_start, window_end, entity_type, entity_id) c
JOIN (
  SELECT window_start, window_end, entity_type, entity_id, MAX(ip_events) AS top_ip_events
  FROM TABLE(TUMBLE(TABLE ip_counts, DESCRIPTOR(ip_time), INTERVAL '10' SECOND))
  GROUP BY window_start, window_end, entity_type, entity_id) t
ON c.window_start = t.window_start AND c.window_end = t.window_end
  AND c.entity_type = t.entity_type AND c.entity_id = t.entity_id
"""


def window_counts(tmp_path: Path, events: list[dict], parallelism: int) -> dict[str, list]:
    """``window_stats`` and the reference SQL over ``events``, each entity window's counts."""
    source = tmp_path / "events.jsonl"
    source.write_text("".join(json.dumps(e) + "\n" for e in events))
    t_env = _environment(streaming=True, parallelism=parallelism)
    t_env.execute_sql(
        "CREATE TEMPORARY TABLE ev (entity_type STRING, entity_id STRING, event_time BIGINT,"
        " action STRING, user_id STRING, session_id STRING, ip STRING, is_bot INT,"
        " ts AS TO_TIMESTAMP_LTZ(event_time, 3), WATERMARK FOR ts AS ts - INTERVAL '30' SECOND)"
        f" {with_clause(local_file_options(source, 'json'))}"
    )
    t_env.create_temporary_view("ip_counts", t_env.sql_query(IP_COUNTS_SQL))
    columns = ", ".join(f"{name} BIGINT" for name in WINDOW_COUNTS)
    statements = t_env.create_statement_set()
    for name, sql in (("java", window_counts_sql("ev")), ("sql", REFERENCE_SQL)):
        t_env.execute_sql(
            f"CREATE TEMPORARY TABLE {name}_rows (window_start TIMESTAMP(3),"
            f" window_end TIMESTAMP(3), entity_type STRING, entity_id STRING, {columns})"
            f" {with_clause(local_file_options(tmp_path / name, 'json'))}"
        )
        statements.add_insert_sql(f"INSERT INTO {name}_rows {sql}")
    statements.execute().wait()
    return {name: list(read_records(tmp_path / name)) for name in ("java", "sql")}


@pytest.mark.parametrize("parallelism", [1, 2], ids=["p1", "p2"])
def test_window_stats_counts_as_the_sql_aggregates_it_replaced(tmp_path, parallelism):
    # GIVEN 3,000 events with repeated and NULL users, sessions and IPs
    events = entity_events()
    # WHEN both queries run over them
    rows = window_counts(tmp_path, events, parallelism)
    # THEN they give the same rows: every entity window of the input, each counted the same way
    key = lambda r: (r["window_start"], r["entity_type"], r["entity_id"])  # noqa: E731
    java = sorted(rows["java"], key=key)
    assert java == sorted(rows["sql"], key=key)
    assert len(java) == 3 * 2 * 2
    # and the counts are not trivial: repeats and NULLs made distinct counts differ from events
    assert sum(r["events"] for r in java) == len(events)
    for r in java:
        assert 1 < r["unique_sessions"] < r["events"] and 1 < r["unique_users"] < r["events"]
        assert 1 < r["top_ip_events"] < r["events"] and 1 < r["unique_ips"] < r["events"]


def test_is_bot_agent_is_the_regular_expression_it_replaced(tmp_path):
    # GIVEN user agents in every case, NULL, near misses and unicode whose lower case is tricky
    source = tmp_path / "agents.jsonl"
    source.write_text("".join(json.dumps({"n": i, "ua": a}) + "\n" for i, a in enumerate(AGENTS)))
    t_env = _environment(streaming=False, parallelism=1)
    t_env.execute_sql(
        f"CREATE TEMPORARY TABLE agents (n INT, ua STRING)"
        f" {with_clause(local_file_options(source, 'json'))}"
    )
    t_env.execute_sql(
        "CREATE TEMPORARY TABLE verdicts (n INT, java INT, regex INT)"
        f" {with_clause(local_file_options(tmp_path / 'out', 'json'))}"
    )
    pattern = "|".join(BOT_AGENT_WORDS)
    # WHEN the job's SQL and the regular expression judge each
    t_env.execute_sql(
        f"INSERT INTO verdicts SELECT n, {is_bot_sql('ua')},"
        f" CASE WHEN REGEXP(LOWER(COALESCE(ua, '')), {sql_string(pattern)}) THEN 1 ELSE 0 END"
        " FROM agents"
    ).wait()
    verdicts = {row["n"]: row for row in read_records(tmp_path / "out")}
    # THEN they agree on every agent, and so does the Python twin
    assert len(verdicts) == len(AGENTS)
    for n, agent in enumerate(AGENTS):
        assert verdicts[n]["java"] == verdicts[n]["regex"] == is_bot_agent(agent), agent
    assert sum(v["java"] for v in verdicts.values()) == 16
