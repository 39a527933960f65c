"""Publish forests under a local model root as the retraining notebook publishes them on S3.

``models/<name>/<version>/model.skops`` + ``card.json``, and ``models/<name>/current.json``
(:mod:`models.model_card`). Shared by the model-watch unit tests and the job's hot-swap test.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from sklearn.ensemble import RandomForestClassifier

from models import artifacts
from models.model_card import ARTEFACT, CARD, ModelCard, pointer_json, pointer_key, version_key

NAME = "click-forest"


def forest(n_inputs: int, cut: float = 0.8, seed: int = 3) -> RandomForestClassifier:
    """A small fitted forest over ``n_inputs`` columns in [0, 1): anomalous when the first > cut."""
    rng = np.random.default_rng(seed)
    rows = rng.random((200, n_inputs))
    return RandomForestClassifier(n_estimators=4, random_state=0).fit(rows, rows[:, 0] > cut)


def publish(root: Path, version: str, inputs: tuple[str, ...], estimator=None, *,
            threshold: float = 0.5, corrupt: bool = False, point: bool = True) -> str:
    """Publish ``estimator`` (default: :func:`forest`) as ``version``; returns its SHA-256.

    ``corrupt`` appends a byte to the artefact after its card was written (a hash mismatch);
    ``point`` moves the pointer to this version.
    """
    data = artifacts.dumps(estimator if estimator is not None else forest(len(inputs)))
    card = ModelCard(name=NAME, version=version, sha256=artifacts.sha256_of(data), inputs=inputs,
                     threshold=threshold, training_range={"start": "s", "end": "e"})
    for file, body in ((ARTEFACT, data + (b"x" if corrupt else b"")),
                       (CARD, card.to_json().encode())):
        path = Path(version_key(str(root), NAME, version, file))
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(body)
    if point:
        pointer = Path(pointer_key(str(root), NAME))
        staged = pointer.with_suffix(".tmp")
        staged.write_text(pointer_json(NAME, version))
        staged.replace(pointer)  # atomic, as an S3 PUT is: a reader never sees half a pointer
    return card.sha256
