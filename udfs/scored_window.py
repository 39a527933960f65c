"""What the scoring operator emits: the anomaly record and its sink row, and entity evictions.

Every entity window gets an anomaly record (``docs/anomaly-record.md``), flagged or not; the
sinks receive it as one row of :data:`SCORED_COLUMNS` — the record's JSON plus flat, queryable
columns (the scored-window archive's schema, one home). An entity dropped to keep a shard within
``scoring.max_entities`` is reported as one row of :data:`EVICTION_COLUMNS` (a side output), a
published model version loaded or rejected as one row of :data:`MODEL_EVENT_COLUMNS` (another).

>>> from models.detector import Verdict
>>> v = Verdict(score=0.7, raw_score=5.6, threshold=0.5, is_anomaly=True, grade=0.4,
...             confidence=1.0, kind="clicks_high")
>>> r = build_record("ad", "ad-0007", 1767571920000, 1767571930000, {"clicks": 340.0}, v,
...                  "rcf-kda")
>>> r["anomaly_id"], r["window_end"]
('ad/ad-0007/2026-01-05T00:12:10.000Z', '2026-01-05T00:12:10.000Z')
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

from pyflink.common import Row, Types

from models.detector import Verdict
from models.features import FEATURE_NAMES

SCHEMA_VERSION = 1


def _row_type(columns: tuple[tuple[str, Any, str], ...]):
    """The PyFlink row type of ``(name, PyFlink type, SQL type)`` columns."""
    return Types.ROW_NAMED([c[0] for c in columns], [c[1] for c in columns])


#: One feature of an explanation as the archive stores it (name, PyFlink type, SQL type), in the
#: record's order (largest attribution first): the record's ``explanation`` entry of ``feature``,
#: its keys lower-cased.
EXPLANATION_FIELDS: tuple[tuple[str, Any, str], ...] = (
    ("feature", Types.STRING(), "STRING"),
    ("direction", Types.STRING(), "STRING"),
    ("strength", Types.DOUBLE(), "DOUBLE"),
    ("attribution_score", Types.DOUBLE(), "DOUBLE"),
    ("value", Types.DOUBLE(), "DOUBLE"),
    ("expected", Types.DOUBLE(), "DOUBLE"),
)
EXPLANATION_TYPE = Types.OBJECT_ARRAY(_row_type(EXPLANATION_FIELDS))
#: ``value`` is reserved in Flink SQL, hence the back-quotes.
EXPLANATION_SQL_TYPE = (
    "ARRAY<ROW<" + ", ".join(f"`{name}` {sql}" for name, _, sql in EXPLANATION_FIELDS) + ">>"
)

#: Columns of a scored window, as emitted to the sinks (name, PyFlink type, SQL type).
SCORED_COLUMNS: tuple[tuple[str, Any, str], ...] = (
    ("record", Types.STRING(), "STRING"),
    ("is_anomaly", Types.BOOLEAN(), "BOOLEAN"),
    ("entity_type", Types.STRING(), "STRING"),
    ("entity_id", Types.STRING(), "STRING"),
    ("window_start", Types.STRING(), "STRING"),
    ("window_end", Types.STRING(), "STRING"),
    ("window_end_ms", Types.LONG(), "BIGINT"),
    ("detector", Types.STRING(), "STRING"),
    ("score", Types.DOUBLE(), "DOUBLE"),
    ("raw_score", Types.DOUBLE(), "DOUBLE"),
    ("threshold", Types.DOUBLE(), "DOUBLE"),
    ("grade", Types.DOUBLE(), "DOUBLE"),
    ("confidence", Types.DOUBLE(), "DOUBLE"),
    ("kind", Types.STRING(), "STRING"),
    ("synthetic", Types.BOOLEAN(), "BOOLEAN"),
    *((name, Types.DOUBLE(), "DOUBLE") for name in FEATURE_NAMES),
    ("explanation", EXPLANATION_TYPE, EXPLANATION_SQL_TYPE),
    ("dt", Types.STRING(), "STRING"),
    ("hour", Types.STRING(), "STRING"),
)
#: Columns the scoring operator emits: every scored column but the explanation, which
#: ``ExplanationColumn`` (the project's jar) reads from the record's JSON and inserts at
#: :data:`EXPLANATION_POSITION` (PyFlink 1.20's thread mode cannot hand an array of rows to
#: Java intact, FLINK-35180).
EMITTED_COLUMNS = tuple(c for c in SCORED_COLUMNS if c[0] != "explanation")
EMITTED_ROW_TYPE = _row_type(EMITTED_COLUMNS)
SCORED_ROW_TYPE = _row_type(SCORED_COLUMNS)
EXPLANATION_POSITION = [c[0] for c in SCORED_COLUMNS].index("explanation")
RECORD_POSITION = [c[0] for c in EMITTED_COLUMNS].index("record")
#: Columns of an entity eviction (name, PyFlink type, SQL type).
EVICTION_COLUMNS: tuple[tuple[str, Any, str], ...] = (
    ("entity_type", Types.STRING(), "STRING"),
    ("entity_id", Types.STRING(), "STRING"),
    ("last_seen_ms", Types.LONG(), "BIGINT"),
    ("evicted_at_ms", Types.LONG(), "BIGINT"),
)
EVICTION_ROW_TYPE = _row_type(EVICTION_COLUMNS)
#: Columns of a model event: a published version taking over or turned away
#: (:class:`udfs.model_watch.ModelEvent`), at the end of the windows being scored then.
MODEL_EVENT_COLUMNS: tuple[tuple[str, Any, str], ...] = (
    ("name", Types.STRING(), "STRING"),
    ("version", Types.STRING(), "STRING"),
    ("event", Types.STRING(), "STRING"),
    ("reason", Types.STRING(), "STRING"),
    ("window_end_ms", Types.LONG(), "BIGINT"),
)
MODEL_EVENT_ROW_TYPE = _row_type(MODEL_EVENT_COLUMNS)
#: Columns copied from the record as they are.
_RECORD_COLUMNS = (
    "is_anomaly", "entity_type", "entity_id", "window_start", "window_end", "window_end_ms",
    "detector", "score", "raw_score", "threshold", "grade", "confidence", "kind",
)


@lru_cache(maxsize=1024)
def iso_utc(epoch_ms: int) -> str:
    """Epoch milliseconds as ISO-8601 UTC with millisecond precision and a ``Z``.

    Cached: every entity of a window shares its start and end.

    >>> iso_utc(0)
    '1970-01-01T00:00:00.000Z'
    """
    moment = datetime.fromtimestamp(epoch_ms / 1000, UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def build_record(
    entity_type: str,
    entity_id: str,
    window_start_ms: int,
    window_end_ms: int,
    features: Mapping[str, float],
    verdict: Verdict,
    detector: str,
) -> dict[str, Any]:
    """The anomaly record of one scored entity window (every window gets one).

    ``p_value`` is there for a flagged window of a detector with a significance test.
    """
    record = {
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
    if verdict.p_value is not None:
        record["p_value"] = float(f"{verdict.p_value:.3g}")
    return record


def scored_row(record: Mapping[str, Any]) -> Row:
    """The row the scoring operator emits for a scored window (:data:`EMITTED_COLUMNS`).

    The record's JSON plus flat, queryable columns; the job adds the explanation column.

    ``record["synthetic"]`` (set by the operator for a synthesised empty window) becomes a
    column; the JSON record leaves it out.

    >>> from models.detector import Verdict
    >>> v = Verdict(score=0.1, raw_score=0.8, threshold=0.5, is_anomaly=False, grade=0.0,
    ...             confidence=1.0)
    >>> feats = dict.fromkeys(FEATURE_NAMES, 1.0)
    >>> row = scored_row(build_record("page", "p", 0, 10_000, feats, v, "rcf-kda"))
    >>> row.dt, row.hour, row.clicks, row.synthetic
    ('1970-01-01', '00', 1.0, False)
    """
    end = record["window_end"]
    document = {k: v for k, v in record.items() if k != "synthetic"}
    values = {
        "record": json.dumps(document, separators=(",", ":")),
        "synthetic": record.get("synthetic", False),
        "dt": end[:10],
        "hour": end[11:13],
        **{k: record[k] for k in _RECORD_COLUMNS},
        **{name: float(record["features"][name]) for name in FEATURE_NAMES},
    }
    return Row(**{name: values[name] for name, _, _ in EMITTED_COLUMNS})
