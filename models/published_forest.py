"""A retrained forest in the job: verified on load, then it decides which windows are anomalies.

The online detector scores every window first (and learns, as without a forest); the forest
reads the card's inputs — window features and the online detector's ``score``/``grade``/… — and
its probability decides: a window is an anomaly when ``probability >= card.threshold``. So it
both **vetoes** an online flag it does not believe and **escalates** a window the online
detector left under its threshold. The record keeps what the online detector said and names the
version that decided::

    "is_anomaly": <the forest's verdict>,
    "model": {"name": …, "version": …, "probability": 0.91, "threshold": 0.62,
              "online_is_anomaly": false}

The online detector's state never depends on the forest, so a new version swaps in between two
windows without touching Flink state.

>>> import numpy as np
>>> from sklearn.ensemble import RandomForestClassifier
>>> from models import artifacts
>>> from models.model_card import ModelCard
>>> rows = np.array([[float(c), s] for c in range(40) for s in (0.1, 0.9)])
>>> forest = RandomForestClassifier(n_estimators=5, random_state=0).fit(rows, rows[:, 0] > 30)
>>> data = artifacts.dumps(forest)
>>> card = ModelCard(name="f", version="v1", sha256=artifacts.sha256_of(data),
...                  inputs=("clicks", "score"), threshold=0.5,
...                  training_range={"start": "a", "end": "b"})
>>> model = load_published(card.to_json(), data)
>>> record = {"is_anomaly": False, "score": 0.2, "features": {"clicks": 39.0}}
>>> [decided] = model.decide([record])
>>> decided["is_anomaly"], decided["model"]["version"], decided["model"]["online_is_anomaly"]
(True, 'v1', False)
"""

from __future__ import annotations

import hmac
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from models import artifacts
from models.features import FEATURE_NAMES
from models.model_card import ModelCard


@dataclass(frozen=True)
class PublishedForest:
    """A verified published version: its card and the fitted classifier."""

    card: ModelCard
    estimator: Any

    def probabilities(self, records: Sequence[dict[str, Any]]) -> np.ndarray:
        """P(anomaly) per anomaly record, from the card's inputs in the card's order."""
        rows = np.array(
            [[_input(record, name) for name in self.card.inputs] for record in records],
            dtype=float,
        ).reshape(len(records), len(self.card.inputs))
        return self.estimator.predict_proba(rows)[:, self._positive]

    @property
    def _positive(self) -> int:
        return list(self.estimator.classes_).index(True)

    def decide(self, records: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
        """The records with the forest's verdict in ``is_anomaly`` and the deciding ``model``."""
        if not records:
            return []
        card = self.card
        decided = []
        for record, probability in zip(records, self.probabilities(records), strict=True):
            p = round(float(probability), 6)
            decided.append({
                **record,
                "is_anomaly": p >= card.threshold,
                "model": {"name": card.name, "version": card.version, "probability": p,
                          "threshold": card.threshold,
                          "online_is_anomaly": bool(record["is_anomaly"])},
            })
        return decided


def _input(record: dict[str, Any], name: str) -> float:
    return float(record["features"][name] if name in FEATURE_NAMES else record[name])


def load_published(card_json: str | bytes, artefact: bytes, pin: str = "") -> PublishedForest:
    """Verify and load a published version; ValueError says what is wrong.

    The artefact's SHA-256 must equal the card's and, when ``pin`` (``scoring.model_sha256``)
    is set, the pin; skops loads only trusted types; the classifier must read exactly the card's
    inputs and answer P(anomaly).
    """
    card = ModelCard.from_json(card_json)
    if pin and not hmac.compare_digest(pin.strip().lower(), card.sha256):
        raise ValueError(f"model {card.name}/{card.version} refused: its SHA-256 {card.sha256} "
                         f"is not the pin scoring.model_sha256 {pin}")
    estimator = artifacts.loads(artefact, card.sha256)
    if not hasattr(estimator, "predict_proba") or not hasattr(estimator, "classes_"):
        raise ValueError(f"model {card.name}/{card.version} refused: "
                         f"{type(estimator).__name__} is not a fitted classifier")
    if getattr(estimator, "n_features_in_", None) != len(card.inputs):
        raise ValueError(f"model {card.name}/{card.version} refused: it reads "
                         f"{getattr(estimator, 'n_features_in_', '?')} inputs, its card names "
                         f"{len(card.inputs)}")
    if True not in list(estimator.classes_):
        raise ValueError(f"model {card.name}/{card.version} refused: no anomaly class among "
                         f"{list(estimator.classes_)}")
    return PublishedForest(card, estimator)
