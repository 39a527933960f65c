import csv
import math

import numpy as np
import pytest

from localdev.cli import main as cli
from models.rcf import KDA_DEFAULTS, RandomCutForestScorer
from models.registry import DEFAULT_DETECTOR, RAW_FOREST_FLOOR, make_detector
from models.series import score_values, series_detector


def _write(path, values):
    path.parent.mkdir(parents=True, exist_ok=True)
    rows = [f"2026-01-05 {h:02d}:{m:02d}:00,{v}" for (h, m), v in
            zip(((i // 60, i % 60) for i in range(len(values))), values, strict=True)]
    path.write_text("timestamp,value\n" + "\n".join(rows) + "\n")


def test_score_series_writes_same_layout_causally(tmp_path):
    # GIVEN two series in nested folders, one with a late spike
    rng = np.random.default_rng(0)
    values = list(np.round(50 + rng.normal(0, 1, 300), 3))
    spiked = [*values[:250], 500.0, *values[251:]]
    _write(tmp_path / "in" / "a" / "flat.csv", values)
    _write(tmp_path / "in" / "b" / "spiked.csv", spiked)
    # WHEN score-series runs with the KDA baseline
    code = cli(["score-series", str(tmp_path / "in"), "--out", str(tmp_path / "out"),
                "--detector", "rcf-kda"])
    # THEN each file has its scored twin with scores in [0, 1] and 0/1 flags
    assert code == 0
    with open(tmp_path / "out" / "b" / "spiked.csv") as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0]) == ["timestamp", "value", "anomaly_score", "is_anomaly"]
    assert len(rows) == 300
    scores = [float(r["anomaly_score"]) for r in rows]
    assert all(0 <= s <= 1 for s in scores)
    assert {r["is_anomaly"] for r in rows} <= {"0", "1"}
    assert rows[250]["is_anomaly"] == "1"
    # AND the scores before the spike do not depend on it (no look-ahead)
    with open(tmp_path / "out" / "a" / "flat.csv") as f:
        flat = [float(r["anomaly_score"]) for r in csv.DictReader(f)]
    assert flat[:250] == scores[:250]
    # AND they equal the library's scores, file by file with a fresh model
    lib = [round(v.score, 6) for v in score_values(series_detector("rcf-kda"), spiked)]
    assert scores == lib


def test_score_series_without_csv_files(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    assert cli(["score-series", str(tmp_path / "empty"), "--out", str(tmp_path / "o")]) == 2


def test_default_detector_scores_a_series_as_the_forest_on_its_raw_values():
    # GIVEN a series whose level jumps 500-fold (far past the levels' clip) and then spikes
    rng = np.random.default_rng(3)
    values = [float(v) for v in np.round(10 + rng.normal(0, 1, 200), 3)]
    values += [float(v) for v in np.round(5000 + rng.normal(0, 100, 100), 1)]
    values[260] = 50_000.0
    # WHEN the default detector scores it as a series
    detector = series_detector(DEFAULT_DETECTOR)
    scores = [v.score for v in score_values(detector, values)]
    # THEN every score is its forest's own on the raw value, scored before it is learned:
    # no per-entity levels, no gate; the forest is the preset's with KDA's 100 trees
    params = {**make_detector(DEFAULT_DETECTOR).scorer_params, "num_trees": 100}
    assert params == {**KDA_DEFAULTS, "random_seed": 42}
    forest = RandomCutForestScorer(**params)
    expected = []
    for v in values:
        expected.append(forest.score_one({"value": v}) / math.log2(forest.sample_size))
        forest.learn_one({"value": v})
    assert scores == pytest.approx(expected, abs=1e-12)
    # AND the spike on the new level is flagged, at KDA's floor for raw forests
    assert detector.threshold_params["floor"] == RAW_FOREST_FLOOR
    assert [v.is_anomaly for v in score_values(series_detector(DEFAULT_DETECTOR), values)][260]


def test_score_series_params_override_the_preset_and_a_bad_key_is_named(tmp_path, capsys):
    # GIVEN a series with a spike
    rng = np.random.default_rng(0)
    values = [*np.round(50 + rng.normal(0, 1, 300), 3)]
    values[250] = 500.0
    _write(tmp_path / "in" / "s.csv", values)
    # WHEN it is scored with a floor no score reaches
    code = cli(["score-series", str(tmp_path / "in"), "--out", str(tmp_path / "out"),
                "--params", '{"threshold_params": {"floor": 1.0}}'])
    # THEN nothing is flagged
    assert code == 0
    with open(tmp_path / "out" / "s.csv") as f:
        assert {r["is_anomaly"] for r in csv.DictReader(f)} == {"0"}
    # AND an unknown parameter fails before scoring, naming it
    capsys.readouterr()
    code = cli(["score-series", str(tmp_path / "in"), "--out", str(tmp_path / "bad"),
                "--params", '{"numTrees": 5}'])
    assert code == 2
    assert "--params: numTrees: unknown key" in capsys.readouterr().out
    assert not (tmp_path / "bad").exists()
