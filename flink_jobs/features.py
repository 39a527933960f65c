"""Window features per entity: the window, the Flink SQL that computes them, a Python twin.

Every valid event counts towards the window of its page, and of its ad and campaign when it
names them (:data:`ENTITY_KEYS`). All counting runs in Flink SQL (10-second event-time tumbling
windows, one aggregate of the project's jar counting everything in one pass); Python only sees
one row per entity window. :func:`window_features` computes the same numbers in plain Python:
tests hold the SQL to it. The feature names live with the models that
read them (:data:`models.features.FEATURE_NAMES`).

>>> events = [
...     {"action": "impression", "user_id": "u1", "session_id": "s1", "ip": "a", "is_bot": 0},
...     {"action": "click", "user_id": "u1", "session_id": "s1", "ip": "a", "is_bot": 0},
...     {"action": "impression", "user_id": "u2", "session_id": None, "ip": "b", "is_bot": 1},
... ]
>>> f = window_features(events)
>>> f["clicks"], f["ctr"], f["unique_users"], f["unique_sessions"], round(f["top_ip_share"], 3)
(1.0, 0.5, 2.0, 1.0, 0.667)
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping

from flink_jobs.events import sql_string
from models.features import FEATURE_NAMES

#: Length of the event-time tumbling window.
WINDOW_SECONDS = 10
WINDOW_MS = WINDOW_SECONDS * 1000
#: Entity type → the event field that names the entity (an event without it has none).
ENTITY_KEYS = {"page": "page", "ad": "ad_id", "campaign": "campaign"}
#: Columns of ``window_counts_sql``: what ``window_stats`` returns (WindowStats.java).
WINDOW_COUNTS = (
    "events", "impressions", "clicks", "page_views", "add_to_carts", "purchases",
    "unique_users", "unique_sessions", "unique_ips", "top_ip_events", "bot_events",
)
_ACTION_COUNTS = {
    "impressions": "impression",
    "clicks": "click",
    "page_views": "page_view",
    "add_to_carts": "add_to_cart",
    "purchases": "purchase",
}


def window_features(events: Iterable[Mapping]) -> dict[str, float]:
    """Features of one entity window from its events (the reference the SQL must match).

    >>> window_features([])["events"]
    0.0
    """
    events = list(events)
    n = len(events)
    actions = Counter(e["action"] for e in events)
    ips = Counter(e["ip"] for e in events)
    out = {"events": float(n)}
    out.update({name: float(actions[a]) for name, a in _ACTION_COUNTS.items()})
    out["ctr"] = out["clicks"] / out["impressions"] if out["impressions"] else 0.0
    out["unique_users"] = float(len({e["user_id"] for e in events}))
    out["unique_sessions"] = float(len({e["session_id"] for e in events} - {None}))
    out["unique_ips"] = float(len(ips))
    out["top_ip_share"] = max(ips.values()) / n if n else 0.0
    out["bot_share"] = sum(e["is_bot"] for e in events) / n if n else 0.0
    return {name: out[name] for name in FEATURE_NAMES}


def entity_events_sql(valid_events_view: str) -> str:
    """SQL fanning each valid event out to its page, ad and campaign entities.

    One operator emits an event's entity rows (``UNNEST``): a ``UNION ALL`` of one ``SELECT``
    per entity type gives the window aggregation three inputs, which Flink cannot chain to
    them, so every entity row would be serialised across a task boundary.

    >>> print(entity_events_sql("v").split(" FROM ")[1])
    v CROSS JOIN UNNEST(ARRAY[ROW(CAST('page' AS STRING), page), ROW(CAST('ad' AS STRING), ad_id), ROW(CAST('campaign' AS STRING), campaign)]) AS fan_out (entity_type, entity_id) WHERE entity_id IS NOT NULL
    """  # noqa: E501
    entities = ", ".join(
        f"ROW(CAST({sql_string(entity_type)} AS STRING), {key})"
        for entity_type, key in ENTITY_KEYS.items()
    )
    return (
        "SELECT entity_type, entity_id, ts, action, user_id, session_id, ip, is_bot"
        f" FROM {valid_events_view} CROSS JOIN UNNEST(ARRAY[{entities}])"
        " AS fan_out (entity_type, entity_id) WHERE entity_id IS NOT NULL"
    )


def _tumble(view: str, rowtime: str) -> str:
    return (
        f"TABLE(TUMBLE(TABLE {view}, DESCRIPTOR({rowtime}),"
        f" INTERVAL '{WINDOW_SECONDS}' SECOND))"
    )


def window_counts_sql(entity_events_view: str) -> str:
    """SQL: one row per entity window with every count, from one aggregate.

    ``window_stats`` (``deploy/src/.../WindowStats.java``) counts each action, the distinct
    users, sessions and IPs, the busiest IP's events and the bot events in one pass: one window
    aggregation per event and entity instead of a count, a per-IP count cascaded into its
    maximum, and a join of the two.

    >>> print(window_counts_sql("v").split(" FROM ")[0])
    SELECT window_start, window_end, entity_type, entity_id, s.events AS events, s.impressions AS impressions, s.clicks AS clicks, s.page_views AS page_views, s.add_to_carts AS add_to_carts, s.purchases AS purchases, s.unique_users AS unique_users, s.unique_sessions AS unique_sessions, s.unique_ips AS unique_ips, s.top_ip_events AS top_ip_events, s.bot_events AS bot_events
    """  # noqa: E501
    counts = ", ".join(f"s.{name} AS {name}" for name in WINDOW_COUNTS)
    return (
        f"SELECT window_start, window_end, entity_type, entity_id, {counts} FROM ("
        "SELECT window_start, window_end, entity_type, entity_id, "
        "window_stats(action, user_id, session_id, ip, is_bot) AS s "
        f"FROM {_tumble(entity_events_view, 'ts')} "
        "GROUP BY window_start, window_end, entity_type, entity_id)"
    )


def features_sql(counts_view: str) -> str:
    """SQL: the feature row handed to scoring, from an entity window's counts.

    Window bounds become epoch milliseconds (the session time zone is UTC).
    """
    counts = ", ".join(f"CAST({name} AS DOUBLE) AS {name}" for name in _ACTION_COUNTS)
    return (
        "SELECT entity_type, entity_id, "
        "UNIX_TIMESTAMP(CAST(window_start AS STRING)) * 1000 AS window_start_ms, "
        "UNIX_TIMESTAMP(CAST(window_end AS STRING)) * 1000 AS window_end_ms, "
        f"CAST(events AS DOUBLE) AS events, {counts}, "
        "CASE WHEN impressions > 0 THEN CAST(clicks AS DOUBLE) / impressions"
        " ELSE 0.0 END AS ctr, "
        "CAST(unique_users AS DOUBLE) AS unique_users, "
        "CAST(unique_sessions AS DOUBLE) AS unique_sessions, "
        "CAST(unique_ips AS DOUBLE) AS unique_ips, "
        "CAST(top_ip_events AS DOUBLE) / events AS top_ip_share, "
        "CAST(bot_events AS DOUBLE) / events AS bot_share "
        f"FROM {counts_view}"
    )
