"""NAB-style evaluation of scored series: the corpus score per cost profile.

Reads series scored by ``clicksentry score-series`` (``timestamp,value,anomaly_score,
is_anomaly``) next to the originals and NAB's ``combined_windows.json``, and applies the rules
of :mod:`models.nab`: per profile, the normalised score with the detector's own ``is_anomaly``
flags and with the best single threshold on ``anomaly_score`` over all files. With several
scored folders (say one per setting), :func:`cross_validate` scores choosing among them by
leaving one category out.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from models.nab import (
    PROFILES,
    LabelledSeries,
    Profile,
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


Corpus = dict[str, tuple[LabelledSeries, np.ndarray, np.ndarray]]


def load_corpus(data: Path, labels: Path, scores: Path) -> Corpus:
    """Per labelled file (``category/file.csv``): its scoring terms, anomaly scores and flags."""
    windows = json.loads(labels.read_text())
    corpus: Corpus = {}
    for name in sorted(windows):
        source = data / name
        if not source.exists():
            raise ValueError(f"labelled file {name} is missing below {data}")
        scored = scores / name
        if not scored.exists():
            raise ValueError(f"no scores for {name} below {scores}")
        timestamps, _ = read_series(source)
        corpus[name] = (label_series(timestamps, windows[name]), *_read_scores(scored, timestamps))
    return corpus


def _bounds(corpus: Corpus, names: Sequence[str], profile: Profile) -> tuple[float, float]:
    return (
        sum(null_score(corpus[n][0], profile) for n in names),
        sum(perfect_score(corpus[n][0], profile) for n in names),
    )


def _own(corpus: Corpus, names: Sequence[str], profile: Profile) -> float:
    return sum(raw_score(corpus[n][0], corpus[n][2], profile) for n in names)


def evaluate(data: Path, labels: Path, scores: Path) -> dict[str, dict[str, float]]:
    """Normalised NAB scores per profile: with own flags and with the best threshold."""
    corpus = load_corpus(data, labels, scores)
    results = {}
    for profile_name, profile in PROFILES.items():
        null, perfect = _bounds(corpus, list(corpus), profile)
        threshold, best = best_threshold({n: (s, sc) for n, (s, sc, _) in corpus.items()}, profile)
        results[profile_name] = {
            "own_flags": normalise(_own(corpus, list(corpus), profile), null, perfect),
            "best_threshold": normalise(best, null, perfect),
            "threshold": threshold,
        }
    return results


def category(name: str) -> str:
    """A labelled file's NAB category: the first folder of its name.

    >>> category("realTraffic/speed_6005.csv")
    'realTraffic'
    """
    return name.split("/", 1)[0]


def cross_validate(
    data: Path, labels: Path, candidates: Sequence[Path]
) -> dict[str, dict[str, Any]]:
    """Leave-one-category-out validation of a choice among scored candidates, by own flags.

    For each category in turn, the candidate (a ``score-series`` output folder, e.g. one per
    setting) with the highest raw score on the *other* categories is chosen and scored on the
    held-out one (ties go to the earlier candidate). The held-out raw scores add up to the
    validated score, normalised over the whole corpus as :func:`evaluate` does — what choosing
    among the candidates is worth on a category the choice never saw.

    Returns:
        Per profile: ``own_flags`` (the validated score) and ``chosen`` (held-out category →
        the candidate chosen without it).
    """
    if not candidates:
        raise ValueError("cross-validation needs at least one scored folder")
    corpora = [load_corpus(data, labels, c) for c in candidates]
    names = list(corpora[0])
    categories = sorted({category(n) for n in names})
    if len(categories) < 2:
        raise ValueError(f"cross-validation needs two categories or more, got {categories}")
    results: dict[str, dict[str, Any]] = {}
    for profile_name, profile in PROFILES.items():
        total, chosen = 0.0, {}
        for held_out in categories:
            train = [n for n in names if category(n) != held_out]
            test = [n for n in names if category(n) == held_out]
            pick = max(range(len(corpora)), key=lambda i: _own(corpora[i], train, profile))
            chosen[held_out] = str(candidates[pick])
            total += _own(corpora[pick], test, profile)
        results[profile_name] = {
            "own_flags": normalise(total, *_bounds(corpora[0], names, profile)),
            "chosen": chosen,
        }
    return results
