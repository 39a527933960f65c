import csv

import numpy as np

from localdev.cli import main as cli
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
