"""A published forest decides: it vetoes online flags and escalates sub-threshold windows.

GIVEN a forest trained to call windows with many clicks anomalous, published with its card;
WHEN anomaly records of the online detector pass through it;
THEN ``is_anomaly`` is the forest's ``probability >= threshold``, the online verdict is kept under
``model.online_is_anomaly`` with the deciding name and version, and nothing else changes;
AND an artefact that is no fitted anomaly classifier is refused at load.
"""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.ensemble import RandomForestClassifier
from sklearn.preprocessing import StandardScaler

from models import artifacts
from models.model_card import ModelCard
from models.published_forest import load_published

INPUTS = ("clicks", "score")


def card_for(data: bytes, threshold: float = 0.5, inputs=INPUTS) -> str:
    return ModelCard(name="f", version="v7", sha256=artifacts.sha256_of(data), inputs=inputs,
                     threshold=threshold, training_range={"start": "s", "end": "e"}).to_json()


@pytest.fixture(scope="module")
def published():
    clicks = np.arange(0.0, 100.0)
    rows = np.column_stack([clicks, np.full_like(clicks, 0.5)])
    forest = RandomForestClassifier(n_estimators=10, random_state=0).fit(rows, clicks >= 50)
    data = artifacts.dumps(forest)
    return load_published(card_for(data), data)


def record(clicks: float, online: bool) -> dict:
    return {"anomaly_id": f"ad/a/{clicks}", "is_anomaly": online, "score": 0.5,
            "features": {"clicks": clicks, "ctr": 0.1}}


def test_the_forest_vetoes_and_escalates_and_names_itself(published):
    # GIVEN an online flag on a quiet window and no flag on a busy one
    quiet_flagged, busy_unflagged = record(3.0, True), record(97.0, False)
    # WHEN the forest decides
    vetoed, escalated = published.decide([quiet_flagged, busy_unflagged])
    # THEN it vetoes the first and escalates the second
    assert (vetoed["is_anomaly"], escalated["is_anomaly"]) == (False, True)
    assert vetoed["model"]["online_is_anomaly"] is True
    assert escalated["model"]["online_is_anomaly"] is False
    assert escalated["model"]["version"] == "v7" and escalated["model"]["threshold"] == 0.5
    assert escalated["model"]["probability"] >= 0.5 > vetoed["model"]["probability"]
    # AND every other field is the online record's
    assert {k: v for k, v in escalated.items() if k not in ("is_anomaly", "model")} == {
        k: v for k, v in busy_unflagged.items() if k != "is_anomaly"}


def test_the_same_records_get_the_same_probabilities(published):
    records = [record(float(c), False) for c in range(0, 100, 7)]
    assert published.decide(records) == published.decide(records)
    assert published.decide([]) == []


@pytest.mark.parametrize(
    ("estimator", "reason"),
    [
        (StandardScaler().fit(np.ones((3, 2))), "not a fitted classifier"),
        (RandomForestClassifier(n_estimators=2).fit(np.ones((4, 3)), [0, 1, 0, 1]),
         "reads 3 inputs, its card names 2"),
        (RandomForestClassifier(n_estimators=2).fit(np.ones((4, 2)), [2, 3, 2, 3]),
         "no anomaly class"),
    ],
)
def test_an_artefact_that_cannot_decide_is_refused(estimator, reason):
    data = artifacts.dumps(estimator)
    with pytest.raises(ValueError, match=reason):
        load_published(card_for(data), data)


def test_an_artefact_other_than_the_card_s_is_refused():
    data = artifacts.dumps(RandomForestClassifier(n_estimators=2).fit(np.ones((4, 2)), [0, 1] * 2))
    with pytest.raises(ValueError, match="SHA-256"):
        load_published(card_for(data), data + b"tampered")
