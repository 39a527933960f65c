"""``clicksentry evaluate --data DIR --labels combined_windows.json --scores DIR``.

NAB-style evaluation (see :mod:`models.nab`) of series scored by ``clicksentry score-series``:
per cost profile, the normalised score with the detector's own ``is_anomaly`` flags and with the
best single threshold on ``anomaly_score`` over all files.
"""

from __future__ import annotations

import argparse
import csv
import json
import logging
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

log = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Declare the command's arguments."""
    parser.add_argument("--data", type=Path, required=True, help="folder of the original series")
    parser.add_argument("--labels", type=Path, required=True, help="NAB combined_windows.json")
    parser.add_argument("--scores", type=Path, required=True, help="folder of scored series")
    parser.add_argument("--json", type=Path, help="also write the results as JSON here")


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


def main(args: argparse.Namespace) -> int:
    """Print the NAB table."""
    results = evaluate(args.data, args.labels, args.scores)
    print(f"{'profile':<20} {'own flags':>10} {'best thr.':>10} {'threshold':>10}")
    for name, r in results.items():
        print(
            f"{name:<20} {r['own_flags']:>10.2f} {r['best_threshold']:>10.2f}"
            f" {r['threshold']:>10.4f}"
        )
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")
    return 0
