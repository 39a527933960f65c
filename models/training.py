"""Offline training of the supervised scorer from labelled windows.

The supervised forest learns on the same inputs the shared scorer of a detector sees (for
``rcf-level``: each entity's levels), produced by running the detector over a labelled stream, so
the trained artefact slots into that detector as its scorer.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable, Mapping, Sequence
from pathlib import Path

import numpy as np

from models.detector import WindowDetector
from models.supervised_forest import SupervisedForestScorer


def labelled_inputs(
    detector: WindowDetector,
    batches: Iterable[Sequence[tuple[Hashable, Mapping[str, float]]]],
    labels: Mapping[tuple[Hashable, int], object],
) -> tuple[np.ndarray, np.ndarray]:
    """Scorer inputs and 0/1 labels of every entity window of a stream.

    Args:
        detector: the detector whose inputs to reproduce (it learns the stream as it goes).
        batches: per window index, ``(entity, features)`` of the entities in that window.
        labels: ``(entity, window index)`` of the anomalous windows (any value: its kind).

    Returns:
        ``(rows, labels)``, windows of entities still warming up left out.
    """
    states: dict[Hashable, bytes | None] = {}
    rows, ys = [], []
    for w, batch in enumerate(batches):
        items = [(states.get(entity), features) for entity, features in batch]
        points = detector.scorer_inputs(items)
        for (entity, _), (_, state), point in zip(
            batch, detector.process(items), points, strict=True
        ):
            if states.get(entity) is not None and detector.baseline_.decode(
                [states[entity]]
            ).count[0] >= detector.warmup:
                rows.append(point)
                ys.append(int((entity, w) in labels))
            states[entity] = state
    return np.array(rows), np.array(ys)


def train_supervised_forest(
    rows: np.ndarray,
    labels: np.ndarray,
    feature_names: Sequence[str],
    artifact: Path | None = None,
    **params: object,
) -> SupervisedForestScorer:
    """Fit a :class:`SupervisedForestScorer`; also save it as a skops artefact if asked."""
    scorer = SupervisedForestScorer(feature_names=feature_names, **params)
    scorer.fit(rows, labels)
    if artifact is not None:
        scorer.save(artifact)
    return scorer
