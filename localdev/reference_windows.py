"""The job's windowing in plain Python: the reference the Flink job's windows are held to.

Each valid, on-time event counts towards the window of every entity it names
(:data:`flink_jobs.features.ENTITY_KEYS`), bot-like user agents are classified with the job's
pattern, and each window's features come from :func:`flink_jobs.features.window_features`.
Used by the minicluster window tests and by the detector benchmarks, which score the
simulator's windows without Flink.

>>> events = [{"event_time": 1_500, "page": "p", "ad_id": None, "campaign": None,
...            "action": "page_view", "user_id": "u", "session_id": None, "ip": "a",
...            "user_agent": "curl/8.0"}]
>>> windows = reference_windows(events)
>>> list(windows), windows["page", "p", 10_000]["bot_share"]
([('page', 'p', 10000)], 1.0)
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from typing import Any

from flink_jobs.events import is_bot_agent
from flink_jobs.features import ENTITY_KEYS, WINDOW_MS, window_features


def reference_windows(
    events: Iterable[Mapping[str, Any]],
) -> dict[tuple[str, str, int], dict[str, float]]:
    """Features per ``(entity_type, entity_id, window_end_ms)`` of valid, on-time events."""
    groups: dict[tuple[str, str, int], list[dict]] = defaultdict(list)
    for event in events:
        event = {**event, "is_bot": is_bot_agent(event.get("user_agent"))}
        end = event["event_time"] - event["event_time"] % WINDOW_MS + WINDOW_MS
        for entity_type, key in ENTITY_KEYS.items():
            if event.get(key) is not None:
                groups[(entity_type, event[key], end)].append(event)
    return {k: window_features(v) for k, v in groups.items()}
