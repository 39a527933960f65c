"""The anomaly record (``docs/anomaly-record.md``) built from a window and its verdict.

>>> from models.detector import Verdict
>>> v = Verdict(score=0.7, raw_score=5.6, threshold=0.5, is_anomaly=True, grade=0.4,
...             confidence=1.0, kind="clicks_high")
>>> r = build_record("ad", "ad-0007", 1767571920000, {"clicks": 340.0}, v, "rcf-kda")
>>> r["anomaly_id"], r["window_end"]
('ad/ad-0007/2026-01-05T00:12:10.000Z', '2026-01-05T00:12:10.000Z')
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from flink_jobs.features import WINDOW_SECONDS
from models.detector import Verdict

SCHEMA_VERSION = 1
WINDOW_MS = WINDOW_SECONDS * 1000


def iso_utc(epoch_ms: int) -> str:
    """Epoch milliseconds as ISO-8601 UTC with millisecond precision and a ``Z``.

    >>> iso_utc(0)
    '1970-01-01T00:00:00.000Z'
    """
    moment = datetime.fromtimestamp(epoch_ms / 1000, UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def build_record(
    entity_type: str,
    entity_id: str,
    window_start_ms: int,
    features: Mapping[str, float],
    verdict: Verdict,
    detector: str,
) -> dict[str, Any]:
    """The anomaly record of one scored entity window (every window gets one)."""
    window_end_ms = window_start_ms + WINDOW_MS
    return {
        "schema_version": SCHEMA_VERSION,
        "anomaly_id": f"{entity_type}/{entity_id}/{iso_utc(window_end_ms)}",
        "entity_type": entity_type,
        "entity_id": entity_id,
        "window_start": iso_utc(window_start_ms),
        "window_end": iso_utc(window_end_ms),
        "window_start_ms": window_start_ms,
        "window_end_ms": window_end_ms,
        "detector": detector,
        "score": round(verdict.score, 6),
        "raw_score": round(verdict.raw_score, 6),
        "threshold": round(verdict.threshold, 6),
        "is_anomaly": bool(verdict.is_anomaly),
        "grade": round(verdict.grade, 6),
        "confidence": round(verdict.confidence, 6),
        "kind": verdict.kind,
        "features": dict(features),
        "explanation": verdict.explanation,
    }
