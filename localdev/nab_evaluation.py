"""NAB-style evaluation of scored series: the corpus score per cost profile.

Reads series scored by ``clicksentry score-series`` (``timestamp,value,anomaly_score,
is_anomaly``) next to the originals and NAB's ``combined_windows.json``, and applies the rules
of :mod:`models.nab`: per profile, the normalised score with the detector's own ``is_anomaly``
flags and with the best single threshold on ``anomaly_score`` over all files.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np

from models.nab import (
    PROFILES,
    LabelledSeries,
    best_threshold,
    label_series,
    normalise,
    null_score,
    perfect_score,
    raw_score,
)
from models.series import read_series


def _read_scores(path: Path, timestamps: list[str]) -> tuple[np.ndarray, np.ndarray]:
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    if [r["timestamp"] for r in rows] != timestamps:
        raise ValueError(f"{path}: timestamps differ from the data file")
    scores = np.array([float(r["anomaly_score"]) for r in rows])
    flags = np.array([int(r["is_anomaly"]) == 1 for r in rows])
    return scores, flags


def evaluate(data: Path, labels: Path, scores: Path) -> dict[str, dict[str, float]]:
    """Normalised NAB scores per profile: with own flags and with the best threshold."""
    windows = json.loads(labels.read_text())
    corpus: dict[str, tuple[LabelledSeries, np.ndarray, np.ndarray]] = {}
    for name in sorted(windows):
        source = data / name
        if not source.exists():
            raise ValueError(f"labelled file {name} is missing below {data}")
        scored = scores / name
        if not scored.exists():
            raise ValueError(f"no scores for {name} below {scores}")
        timestamps, _ = read_series(source)
        corpus[name] = (label_series(timestamps, windows[name]), *_read_scores(scored, timestamps))
    results = {}
    for profile_name, profile in PROFILES.items():
        null = sum(null_score(s, profile) for s, _, _ in corpus.values())
        perfect = sum(perfect_score(s, profile) for s, _, _ in corpus.values())
        own = sum(raw_score(s, flags, profile) for s, _, flags in corpus.values())
        threshold, best = best_threshold({n: (s, sc) for n, (s, sc, _) in corpus.items()}, profile)
        results[profile_name] = {
            "own_flags": normalise(own, null, perfect),
            "best_threshold": normalise(best, null, perfect),
            "threshold": threshold,
        }
    return results
