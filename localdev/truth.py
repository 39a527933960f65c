"""The simulator's ground truth: which entity windows each labelled anomaly covers.

One rule, used by the run summary, the detector benchmarks and training labels: a window
*overlaps* a labelled anomaly when it ends after the anomaly starts and starts before the
anomaly's end plus :data:`GRACE_WINDOWS` windows (the window after the end still carries its
effect).

>>> label = {"kind": "k", "entities": [{"entity_type": "ad", "entity_id": "a"}],
...          "start_ms": 0, "end_ms": 20000, "expect_alert": True}
>>> [overlaps(end, label) for end in (0, 10_000, 30_000, 40_000)]
[False, True, True, False]
>>> label_entities(label)
{('ad', 'a')}
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from flink_jobs.features import WINDOW_MS

GRACE_WINDOWS = 1


def overlaps(window_end_ms: int, label: Mapping[str, Any]) -> bool:
    """Whether the window ending at ``window_end_ms`` falls in a label's span (plus grace)."""
    return (
        window_end_ms > label["start_ms"]
        and window_end_ms - WINDOW_MS < label["end_ms"] + GRACE_WINDOWS * WINDOW_MS
    )


def label_entities(label: Mapping[str, Any]) -> set[tuple[str, str]]:
    """``(entity_type, entity_id)`` of every entity a label names."""
    return {(e["entity_type"], e["entity_id"]) for e in label["entities"]}


def site_wide(label: Mapping[str, Any]) -> bool:
    """Whether a label is about the whole site (the pseudo-entity ``site``, every entity)."""
    return any(e["entity_type"] == "site" for e in label["entities"])


def covers(label: Mapping[str, Any], entity: tuple[str, str], window_end_ms: int) -> bool:
    """Whether an entity's window falls under a label (its entities, or any for the site).

    The window must be in the label's span (:func:`overlaps`).

    >>> spike = {"entities": [{"entity_type": "site", "entity_id": "all"}],
    ...          "start_ms": 0, "end_ms": 20000}
    >>> covers(spike, ("ad", "a"), 10_000), covers(spike, ("ad", "a"), 60_000)
    (True, False)
    """
    return (site_wide(label) or entity in label_entities(label)) and overlaps(
        window_end_ms, label
    )


def site_event_alerts(truth: Mapping[str, Any], alert_ends_ms: Iterable[int]) -> set[int]:
    """The site alerts a site-wide label expects: per label, the first alert in its span.

    ``alert_ends_ms`` are the window ends of the site's own alerts (:mod:`models.site`); the
    ends returned are the right ones, any other site alert is false.

    >>> spike = {"entities": [{"entity_type": "site", "entity_id": "all"}],
    ...          "start_ms": 0, "end_ms": 20000}
    >>> sorted(site_event_alerts({"anomalies": [spike]}, [30_000, 10_000, 90_000]))
    [10000]
    """
    ends = sorted(alert_ends_ms)
    firsts = (
        next((end for end in ends if overlaps(end, label)), None)
        for label in truth.get("anomalies", [])
        if site_wide(label)
    )
    return {end for end in firsts if end is not None}


def benign_events(truth: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    """The labelled benign events: real changes of a live site that should raise no alert."""
    return [a for a in truth.get("anomalies", []) if a.get("benign")]


def expected_alerts(truth: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    """The labelled anomalies that should raise an alert (not the controls)."""
    return [a for a in truth.get("anomalies", []) if a["expect_alert"]]


def ground_truth_labels(
    batches: Sequence[Sequence[tuple[tuple[str, str], Mapping[str, float]]]],
    window_ends: Sequence[int],
    truth: Mapping[str, Any],
) -> dict[tuple[tuple[str, str], int], str]:
    """``(entity, batch index) -> kind`` for windows inside a labelled anomaly that should alert.

    ``window_ends[i]`` is the ``window_end_ms`` of ``batches[i]`` (as
    :func:`models.training.archived_batches` returns them).

    >>> truth = {"anomalies": [{"kind": "flood", "expect_alert": True, "start_ms": 0,
    ...          "end_ms": 10_000, "entities": [{"entity_type": "ad", "entity_id": "a"}]}]}
    >>> ground_truth_labels([[(("ad", "a"), {})], [(("ad", "a"), {})]], [10_000, 40_000], truth)
    {(('ad', 'a'), 0): 'flood'}
    """
    labels = {}
    for i, (batch, end) in enumerate(zip(batches, window_ends, strict=True)):
        for entity, _ in batch:
            for label in expected_alerts(truth):
                if entity in label_entities(label) and overlaps(end, label):
                    labels[(entity, i)] = label["kind"]
    return labels
