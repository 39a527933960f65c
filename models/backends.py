"""The scorer backends a detector can be built on, by kind."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from models.base import Scorer
from models.ensemble import MEMBER_TYPES, EnsembleScorer

#: Every backend a detector can use: the ones an ensemble combines, and the ensemble.
SCORER_TYPES: dict[str, type[Scorer]] = {**MEMBER_TYPES, EnsembleScorer.kind: EnsembleScorer}


def make_scorer(kind: str, params: Mapping[str, Any] | None = None) -> Scorer:
    """Build a scorer of ``kind`` with ``params``; unknown kind or parameter → ``ValueError``.

    A ``supervised-forest`` also takes ``artifact``, the path of a trained forest to load, and
    ``artifact_sha256``, its pinned SHA-256 (nothing loads without it).

    >>> type(make_scorer("rcf", {"num_trees": 10})).__name__
    'RandomCutForestScorer'
    >>> make_scorer("rcf", {"trees": 10})
    Traceback (most recent call last):
    ...
    ValueError: scorer 'rcf': unknown parameter 'trees'
    """
    if kind not in SCORER_TYPES:
        raise ValueError(f"unknown scorer {kind!r}; known: {sorted(SCORER_TYPES)}")
    return SCORER_TYPES[kind].from_params(params)
