"""Offline training of the supervised scorer from labelled windows.

The supervised forest learns on the same inputs the shared scorer of a detector sees (for
``rcf-level``: each entity's levels), produced by running the detector over a labelled stream, so
the trained artefact slots into that detector as its scorer.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable, Iterator, Mapping, Sequence
from pathlib import Path

import numpy as np

from models.detector import WindowDetector, score_batches
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

    >>> from models.registry import make_detector
    >>> det = make_detector("rcf-kda", {"warmup": 2, "columns": ["clicks"]})
    >>> batches = [[("a", {"clicks": float(c)})] for c in (3, 4, 3, 50)]
    >>> rows, ys = labelled_inputs(det, batches, {("a", 3): "click_flood"})
    >>> rows.shape, ys.tolist()
    ((2, 1), [0, 1])
    """
    states: dict[Hashable, bytes] = {}
    rows: list[np.ndarray] = []
    ys: list[int] = []

    def recorded(
        batches: Iterable[Sequence[tuple[Hashable, Mapping[str, float]]]],
    ) -> Iterator[Sequence[tuple[Hashable, Mapping[str, float]]]]:
        """Each batch, once its warmed-up entities' inputs are recorded (before it is scored)."""
        for w, batch in enumerate(batches):
            items = [(states.get(entity), features) for entity, features in batch]
            points = detector.scorer_inputs(items)
            counts = detector.entity_states([state for state, _ in items]).baseline.count
            for (entity, _), point, count in zip(batch, points, counts, strict=True):
                if count >= detector.warmup:
                    rows.append(point)
                    ys.append(int((entity, w) in labels))
            yield batch

    for _ in score_batches(detector, recorded(batches), states):
        pass
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


def archived_batches(
    windows: Iterable[Mapping[str, object]], feature_names: Sequence[str]
) -> tuple[list[list[tuple[tuple[str, str], dict[str, float]]]], list[int]]:
    """Scored windows from the job's archive as batches, oldest first, and each batch's end.

    A batch holds ``((entity_type, entity_id), features)`` of every real (not synthesised)
    window of one entity type ending at the same time — what the job's detector saw.

    >>> w = {"entity_type": "ad", "entity_id": "a", "window_end_ms": 10, "synthetic": False,
    ...      "clicks": 3.0}
    >>> archived_batches([w, {**w, "window_end_ms": 20}], ["clicks"])
    ([[(('ad', 'a'), {'clicks': 3.0})], [(('ad', 'a'), {'clicks': 3.0})]], [10, 20])
    """
    by_end: dict[tuple[int, str], list] = {}
    for w in windows:
        if w.get("synthetic"):
            continue
        key = (int(w["window_end_ms"]), str(w["entity_type"]))
        features = {name: float(w[name]) for name in feature_names}
        by_end.setdefault(key, []).append(((w["entity_type"], w["entity_id"]), features))
    keys = sorted(by_end)
    return [sorted(by_end[k], key=lambda item: item[0]) for k in keys], [k[0] for k in keys]
