"""The labels file the retraining notebook reads, and the simulator's truth written as one.

A labels file is CSV with the header ``entity_type,entity_id,start,end,label``: one labelled span
of one entity per line, ``start``/``end`` ISO-8601 UTC (``2026-01-05T00:03:00Z``), ``label``
``anomaly`` or ``normal`` (``docs/retraining.md``). A scored window is labelled by the spans of
its entity it overlaps (``window_start < end`` and ``window_end > start``): ``anomaly`` if any
``anomaly`` span overlaps it, else ``normal``. On-call feedback writes such lines by hand; for a
simulated run, :func:`labels_from_truth` writes them from the simulator's ground truth
(``clicksentry labels --truth out/sim/truth.json --out out/labels.csv``), so that the notebook
labels exactly the windows :func:`localdev.truth.overlaps` does: an anomaly's span is extended
by :data:`~localdev.truth.GRACE_WINDOWS` windows past its end (the window after the end still
carries its effect), and the controls (``expect_alert`` false, the slow drift) become ``normal``
spans.

>>> truth = {"anomalies": [
...     {"kind": "broken_ad", "expect_alert": True, "start_ms": 1767571380000,
...      "end_ms": 1767571410000, "entities": [{"entity_type": "ad", "entity_id": "ad-0000"}]},
...     {"kind": "slow_drift", "expect_alert": False, "start_ms": 1767571200000,
...      "end_ms": 1767571680000, "entities": [{"entity_type": "page", "entity_id": "page-005"}]}]}
>>> print(labels_csv(labels_from_truth(truth)), end="")
entity_type,entity_id,start,end,label
ad,ad-0000,2026-01-05T00:03:00Z,2026-01-05T00:03:40Z,anomaly
page,page-005,2026-01-05T00:00:00Z,2026-01-05T00:08:00Z,normal
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

from flink_jobs.features import WINDOW_MS
from localdev.truth import GRACE_WINDOWS, label_entities, site_wide

#: The header of a labels file, in this order.
LABEL_COLUMNS: tuple[str, ...] = ("entity_type", "entity_id", "start", "end", "label")
#: The values of its ``label`` column.
LABELS: tuple[str, ...] = ("anomaly", "normal")


def iso_utc_seconds(epoch_ms: int) -> str:
    """Epoch milliseconds as ISO-8601 UTC, ``Z`` suffix, milliseconds only when not whole.

    >>> iso_utc_seconds(0), iso_utc_seconds(1500)
    ('1970-01-01T00:00:00Z', '1970-01-01T00:00:01.500Z')
    """
    moment = datetime.fromtimestamp(epoch_ms / 1000, UTC)
    spec = "seconds" if epoch_ms % 1000 == 0 else "milliseconds"
    return moment.isoformat(timespec=spec).replace("+00:00", "Z")


def labels_from_truth(truth: Mapping[str, Any]) -> list[dict[str, str]]:
    """The labels-file rows of a simulation's ground truth (``truth.json``).

    Every entity of an anomaly that should alert gets an ``anomaly`` span (its end extended by
    the grace windows); every entity of a control or a benign event gets a ``normal`` span. A
    site-wide event names no entity of its own (every window outside an anomaly span is normal
    anyway), so it gets none.
    """
    rows = []
    for label in truth.get("anomalies", []):
        if site_wide(label):
            continue
        alert = bool(label["expect_alert"])
        end_ms = label["end_ms"] + (GRACE_WINDOWS * WINDOW_MS if alert else 0)
        for entity_type, entity_id in sorted(label_entities(label)):
            rows.append({
                "entity_type": entity_type,
                "entity_id": entity_id,
                "start": iso_utc_seconds(label["start_ms"]),
                "end": iso_utc_seconds(end_ms),
                "label": "anomaly" if alert else "normal",
            })
    return rows


def labels_csv(rows: Iterable[Mapping[str, str]]) -> str:
    """Rows as the text of a labels file: the header first, Unix line ends."""
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=LABEL_COLUMNS, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        if row["label"] not in LABELS:
            raise ValueError(f"label {row['label']!r} is not one of {LABELS}")
        writer.writerow({k: row[k] for k in LABEL_COLUMNS})
    return out.getvalue()
