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
from models.rcf import KDA_DEFAULTS
from models.registry import RAW_FOREST_FLOOR, make_detector

OUTPUT_COLUMNS = ("timestamp", "value", "anomaly_score", "is_anomaly")
#: The one feature of a series' windows.
VALUE = "value"
#: What scoring one series changes in every preset (see :func:`series_detector`).
SERIES_PARAMS: dict[str, Any] = {
    "significance": 0.0,
    "min_relative_change": 0.0,
    "gate_z": 0.0,
    "inputs": "raw",
}


def series_detector(name: str, params: Mapping[str, Any] | None = None) -> WindowDetector:
    """The detector preset ``name`` (with ``params``) for one series' ``{"value": v}`` windows.

    A series' value counts nothing known and is one entity, so :data:`SERIES_PARAMS` apply: no
    count-aware significance test, minimum effect or gate (they need a count's or a share's noise
    model), and the scorer sees the raw value (levels put a shard's entities on one scale; for a
    single value a forest is blind to that affine map but not to the levels' clip). A forest
    then flags above :data:`~models.registry.RAW_FOREST_FLOOR` and has KDA's 100 trees: every
    flag of a series rests on its one forest's score, whose noise from the trees' random cuts
    falls with the square root of their number (with 50 trees, five seeds gave NAB scores up to
    4.8 points apart on the same series; with 100, 0.3; docs/detectors.md). A preset that
    names the features its scorer sees (``columns``, e.g. ``rcf-kda``'s click shares) scores
    ``value`` instead. ``params`` override all of these, nested groups key by key.

    >>> det = series_detector("rcf-level")
    >>> det.columns, det.inputs, det.gate_z, det.significance, det.threshold_params["floor"]
    (None, 'raw', 0.0, 0.0, 0.35)
    >>> det.scorer_params["num_trees"], det.scorer_params["sample_size"]
    (100, 256)
    >>> series_detector("rcf-kda").columns
    ['value']
    >>> series_detector("rcf-level", {"threshold_params": {"z": 3.0}}).threshold_params["floor"]
    0.35
    >>> series_detector("rcf-level", {"scorer_params": {"time_decay": 1000}}).scorer_params
    {'num_trees': 100, 'sample_size': 256, 'time_decay': 1000, 'shingle_size': 1, 'random_seed': 42}
    """
    params = dict(params or {})
    preset = make_detector(name)
    series: dict[str, Any] = dict(SERIES_PARAMS)
    if params.get("scorer", preset.scorer) == "rcf":
        series["scorer_params"] = {"num_trees": KDA_DEFAULTS["num_trees"]}
        series["threshold_params"] = {"floor": RAW_FOREST_FLOOR}
    if preset.columns is not None:
        series["columns"] = [VALUE]
    merged = {**series, **params}
    for group in ("scorer_params", "threshold_params"):
        if group in series and isinstance(params.get(group), Mapping):
            merged[group] = {**series[group], **params[group]}
    return make_detector(name, merged)


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
