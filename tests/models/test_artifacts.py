"""Nothing is deserialised unless its SHA-256 is pinned, or it is the job's own state."""

import numpy as np
import pytest

from models import artifacts
from models.registry import make_detector
from models.supervised_forest import SupervisedForestScorer


@pytest.fixture
def trained(tmp_path):
    """A small trained forest saved as an artefact, and the pin save() returned."""
    rows = np.array([[0.0], [0.1], [5.0], [5.2]] * 5)
    forest = SupervisedForestScorer(n_estimators=5, feature_names=["x"]).fit(rows, [0, 0, 1, 1] * 5)
    path = tmp_path / "rf.skops"
    return path, forest.save(path)


def test_the_right_pin_loads(trained):
    # GIVEN an artefact and the SHA-256 save() returned
    path, pin = trained
    # WHEN it is loaded with that pin (any case)
    scorer = SupervisedForestScorer.load(path, sha256=pin.upper())
    # THEN it scores
    assert pin == artifacts.file_sha256(path)
    assert scorer.readiness == 1.0
    assert scorer.score_rows(np.array([[5.1]]))[0] > 0.5


def test_a_tampered_artefact_is_refused(trained):
    # GIVEN an artefact whose bytes changed after its hash was taken
    path, pin = trained
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    tampered = artifacts.sha256_of(bytes(data))
    # WHEN it is loaded with the original pin
    # THEN it is refused before skops reads it, naming expected and actual hashes
    with pytest.raises(ValueError, match=f"SHA-256 expected {pin}, got {tampered}"):
        SupervisedForestScorer.load(path, sha256=pin)
    with pytest.raises(ValueError, match=f"expected {pin}, got {tampered}"):
        artifacts.loads(bytes(data), sha256=pin)


def test_a_wrong_pin_is_refused(trained):
    # GIVEN an intact artefact WHEN the pin names other bytes THEN it is refused
    path, pin = trained
    wrong = artifacts.sha256_of(b"another artefact")
    with pytest.raises(ValueError, match=f"expected {wrong}, got {pin}"):
        artifacts.load(path, sha256=wrong)
    # AND a pin that is not a SHA-256 at all is refused too
    with pytest.raises(ValueError, match="is not a SHA-256"):
        artifacts.load(path, sha256="latest")


def test_configuration_must_pin_the_artefact(trained):
    # GIVEN a detector configured with the artefact
    path, pin = trained
    params = {"scorer": "supervised-forest", "scorer_params": {"artifact": str(path)}}
    # WHEN the pin is missing THEN it is refused, naming the parameter
    with pytest.raises(ValueError, match="'artifact' needs 'artifact_sha256'"):
        make_detector("rcf-level", params)
    # WHEN the pin is wrong THEN it is refused
    params["scorer_params"]["artifact_sha256"] = "0" * 64
    with pytest.raises(ValueError, match=r"refused: SHA-256 expected 0{64}, got [0-9a-f]{64}"):
        make_detector("rcf-level", params)
    # WHEN the pin is right THEN the detector scores with the trained forest
    params["scorer_params"]["artifact_sha256"] = pin
    assert make_detector("rcf-level", params).scorer_.readiness == 1.0


def test_the_jobs_own_state_restores_without_a_pin(trained):
    # GIVEN a trained scorer's state bytes, as the job writes them to Flink state
    path, pin = trained
    state = SupervisedForestScorer.load(path, sha256=pin).to_bytes()
    # WHEN they are restored (no pin: the job wrote them)
    restored = SupervisedForestScorer.from_bytes(state)
    # THEN the model scores as before
    assert restored.score_rows(np.array([[5.1]]))[0] > 0.5
