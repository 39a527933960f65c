"""The site's alert operator: every page window of the job, one site detector.

:class:`SiteAlerts` is keyed by one constant (:data:`SITE_KEY`), so it sees the page windows of
every shard. It buffers each window end's pages' human events until the watermark passes the
end. The scoring operator emits a window's rows before it forwards that watermark, so every page
has arrived by then. It then hands them to :class:`models.site.SiteDetector`. The first window of
a site move leaves as an anomaly record of the pseudo-entity ``site/all`` (:func:`site_record`).
It goes to the anomalies sink only, since the site has no scored window of its own.

Keyed state, versioned bytes: ``detector`` (the :class:`~models.site.SiteDetector`, msgpack) and
``pending`` (``MapState``: ``"<window end>/<page>"`` → the page's human events).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from typing import Any

from pyflink.common import Row, Types
from pyflink.datastream import KeyedProcessFunction, RuntimeContext
from pyflink.datastream.functions import FilterFunction, KeySelector
from pyflink.datastream.state import MapStateDescriptor, ValueStateDescriptor

from models.detector import Verdict
from models.features import FEATURE_NAMES
from models.site import SITE_ENTITY, SITE_PARTS, SiteDetector, SiteVerdict, page_traffic
from udfs.byte_state import BYTES, byte_state
from udfs.scored_window import build_record

logger = logging.getLogger(__name__)

#: The one key of the site's operator.
SITE_KEY = "/".join(SITE_ENTITY)
#: What the operator emits: an anomaly record (JSON), as the anomalies sink takes it.
SITE_ALERT_ROW_TYPE = Types.ROW_NAMED(["record"], [Types.STRING()])
#: Name of the site's detector in its records.
SITE_DETECTOR = "site-common-move"


def site_record(window_end_ms: int, window_ms: int, verdict: SiteVerdict, threshold: float) -> dict:
    """The anomaly record of a site window: the voting pages' events against their usual.

    ``score`` is the relative move (at most 1), ``threshold`` the least move that counts; the
    explanation names ``events`` with its direction, value and expected value.

    >>> v = SiteVerdict(True, "HIGH", 3600.0, 2000.0, 38, 33, 1e-20)
    >>> r = site_record(1767571680000, 10_000, v, 0.3)
    >>> r["anomaly_id"], r["kind"], r["score"], r["explanation"]["events"]["DIRECTION"]
    ('site/all/2026-01-05T00:08:00.000Z', 'events_high', 0.8, 'HIGH')
    >>> r["features"]
    {'events': 3600.0, 'pages_voting': 38.0, 'pages_moved': 33.0}
    """
    change = verdict.relative_change
    score = min(1.0, abs(change))
    direction = verdict.direction or ("HIGH" if change >= 0 else "LOW")
    explanation = {
        "events": {
            "ATTRIBUTION_SCORE": round(score, 6),
            "STRENGTH": 1.0,
            "DIRECTION": direction,
            "value": verdict.observed,
            "expected": round(verdict.expected, 3),
        }
    }
    scored = Verdict(
        score=score,
        raw_score=change,
        threshold=threshold,
        is_anomaly=verdict.is_anomaly,
        grade=min(1.0, max(0.0, (score - threshold) / threshold)),
        confidence=1.0,
        kind=f"events_{direction.lower()}",
        explanation=explanation,
        p_value=verdict.p_value,
    )
    features = {
        "events": verdict.observed,
        "pages_voting": float(verdict.pages_voting),
        "pages_moved": float(verdict.pages_moved),
    }
    return build_record(
        *SITE_ENTITY, window_end_ms - window_ms, window_end_ms, features, scored, SITE_DETECTOR
    )


class PageWindows(FilterFunction):
    """Keeps the scored windows of pages, the site's parts."""

    def filter(self, value: Row) -> bool:
        """Whether the row is a page's."""
        return value.entity_type == SITE_PARTS


class SiteKey(KeySelector):
    """The one key of the site's operator."""

    def get_key(self, value: Row) -> str:
        """The same key for every row."""
        return SITE_KEY


class SiteAlerts(KeyedProcessFunction):
    """Flink wiring around :class:`models.site.SiteDetector`: buffers page windows, closes ends.

    Args:
        window_ms: the windows' length (the job's tumbling window).
    """

    def __init__(self, window_ms: int) -> None:
        self.window_ms = window_ms

    def open(self, runtime_context: RuntimeContext) -> None:
        """Declare the keyed state."""
        self.detector_state = byte_state(
            runtime_context.get_state(ValueStateDescriptor("detector", BYTES))
        )
        self.pending_state = runtime_context.get_map_state(
            MapStateDescriptor("pending", Types.STRING(), Types.DOUBLE())
        )
        self.detector: SiteDetector | None = None  # live; Flink state is the source of truth
        self.timer_ends: set[int] = set()

    def process_element(self, value: Row, ctx: KeyedProcessFunction.Context) -> None:
        """Buffer a page window's human events under its window end."""
        end = int(value.window_end_ms)
        features = {name: float(value[name]) for name in FEATURE_NAMES}
        self.pending_state.put(f"{end}/{value.entity_id}", page_traffic(features))
        if end not in self.timer_ends:
            self.timer_ends.add(end)
            ctx.timer_service().register_event_time_timer(end - 1)

    def on_timer(self, timestamp: int, ctx: KeyedProcessFunction.OnTimerContext) -> Iterator[Row]:
        """Judge the window end ``timestamp + 1`` from its pages."""
        end = timestamp + 1
        self.timer_ends.discard(end)
        prefix = f"{end}/"
        pages = {
            key[len(prefix):]: traffic
            for key, traffic in self.pending_state.items()
            if key.startswith(prefix)
        }
        for page in pages:
            self.pending_state.remove(prefix + page)
        if not pages:
            return
        detector = self._detector()
        verdict = detector.process(pages)
        self.detector_state.update(detector.to_bytes())
        if verdict.is_anomaly:
            record = site_record(end, self.window_ms, verdict, detector.min_relative_change)
            logger.info("site alert %s %s %.2f (%d of %d pages)", record["anomaly_id"],
                        verdict.direction, verdict.relative_change, verdict.pages_moved,
                        verdict.pages_voting)
            yield Row(json.dumps(record, separators=(",", ":")))

    def _detector(self) -> SiteDetector:
        if self.detector is None:
            held: Any = self.detector_state.value()
            self.detector = SiteDetector.from_bytes(held) if held is not None else SiteDetector()
        return self.detector
