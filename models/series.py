"""Scoring one NAB-layout series (``timestamp,value`` CSV) through a window detector.

Each row becomes one window ``{"value": v}`` of a single entity, scored before it is learned —
the same :class:`~models.detector.WindowDetector` code path the Flink job uses.
:func:`series_detector` builds a preset for such windows.
"""

from __future__ import annotations

import csv
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from models.detector import Verdict, WindowDetector, score_batches
from models.registry import make_detector

OUTPUT_COLUMNS = ("timestamp", "value", "anomaly_score", "is_anomaly")
#: The one feature of a series' windows.
VALUE = "value"


def series_detector(name: str, params: Mapping[str, Any] | None = None) -> WindowDetector:
    """The detector preset ``name`` (with ``params``) for one series' ``{"value": v}`` windows.

    A preset that names the features its scorer sees (``columns``, e.g. ``rcf-kda``'s click
    shares) scores ``value`` instead, unless ``params`` names columns itself. A series' value
    counts nothing known, so the count-aware significance test (and the minimum effect that
    goes with it) is off unless ``params`` sets it.

    >>> series_detector("rcf-kda").columns, series_detector("rcf-level").columns
    (['value'], None)
    >>> series_detector("rcf-level").significance
    0.0
    """
    params = {"significance": 0.0, "min_relative_change": 0.0, **(params or {})}
    detector = make_detector(name, params)
    if detector.columns is None or "columns" in params:
        return detector
    return make_detector(name, {**params, "columns": [VALUE]})


def read_series(path: Path) -> tuple[list[str], list[float]]:
    """Read a ``timestamp,value`` CSV; raises ``ValueError`` naming the file on a bad layout."""
    with open(path, newline="") as f:
        reader = csv.DictReader(f)
        if reader.fieldnames is None or not {"timestamp", "value"} <= set(reader.fieldnames):
            raise ValueError(f"{path}: expected columns timestamp,value, got {reader.fieldnames}")
        timestamps, values = [], []
        for line, row in enumerate(reader, start=2):
            try:
                values.append(float(row["value"]))
            except (TypeError, ValueError):
                raise ValueError(f"{path}:{line}: value {row['value']!r} is not a number") from None
            timestamps.append(row["timestamp"])
    return timestamps, values


def score_values(detector: WindowDetector, values: list[float]) -> Iterator[Verdict]:
    """Verdicts of one entity's windows, each scored before it is learned.

    >>> det = series_detector("rcf-kda", {"scorer_params": {"num_trees": 10, "sample_size": 16}})
    >>> [round(v.score, 3) for v in score_values(det, [1.0, 2.0, 3.0])]
    [0.0, 0.0, 0.0]
    """
    for [(_, verdict)] in score_batches(detector, ([(0, {VALUE: v})] for v in values)):
        yield verdict


def score_file(detector: WindowDetector, source: Path, target: Path) -> int:
    """Score ``source`` into ``target`` (``timestamp,value,anomaly_score,is_anomaly``).

    Returns:
        The number of rows flagged.
    """
    timestamps, values = read_series(source)
    target.parent.mkdir(parents=True, exist_ok=True)
    flagged = 0
    with open(target, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(OUTPUT_COLUMNS)
        for ts, value, verdict in zip(
            timestamps, values, score_values(detector, values), strict=True
        ):
            flagged += verdict.is_anomaly
            writer.writerow([ts, repr(value), f"{verdict.score:.6f}", int(verdict.is_anomaly)])
    return flagged
