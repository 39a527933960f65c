"""NAB scoring checked against a hand-worked example.

The file: 20 rows one minute apart, one window over rows 8..11 (width 4); probation = floor(0.15 *
20) = 3 rows. Detections at rows 1 (probation), 5 (before any window), 9 (in the window) and 15
(after the window).

* maxTP = 2 * sigmoid(5) - 1 = 0.986614
* row 9: position -(11 - 9 + 1) / 4 = -0.75 -> 2 * sigmoid(3.75) - 1 = 0.954044; / maxTP = 0.966988
* row 5: no window before it -> -1 * fp weight
* row 15: |11 - 15| / (4 - 1) = 1.3333 past the window -> 2 * sigmoid(-6.6667) - 1 = -0.997458
* row 1: probation, ignored

standard (tp 1, fp 0.11, fn 1): 0.966988 - 0.11 - 0.11 * 0.997458 = 0.747268;
null = -1, perfect = 1 -> normalised 100 * (0.747268 + 1) / 2 = 87.3634.
reward_low_FP_rate (fp 0.22): 0.966988 - 0.22 - 0.219441 = 0.527547 -> 76.3774.
reward_low_FN_rate (fn 2): raw 0.747268; null -2, perfect 1 -> 100 * 2.747268 / 3 = 91.5756.
"""

import json

import numpy as np
import pytest

from localdev.cli import main as cli
from models.nab import (
    PROFILES,
    best_threshold,
    label_series,
    normalise,
    null_score,
    perfect_score,
    raw_score,
)

TIMESTAMPS = [f"2026-01-05 00:{m:02d}:00" for m in range(20)]
WINDOWS = [["2026-01-05 00:08:00.000000", "2026-01-05 00:11:00.000000"]]
FLAGS = np.isin(np.arange(20), [1, 5, 9, 15])
EXPECTED = {"standard": 87.3634, "reward_low_FP_rate": 76.3774, "reward_low_FN_rate": 91.5756}


@pytest.mark.parametrize("profile", sorted(EXPECTED))
def test_hand_worked_example(profile):
    series = label_series(TIMESTAMPS, WINDOWS)
    p = PROFILES[profile]
    raw = raw_score(series, FLAGS, p)
    assert normalise(raw, null_score(series, p), perfect_score(series, p)) == pytest.approx(
        EXPECTED[profile], abs=1e-3
    )


def test_only_the_best_detection_of_a_window_counts_and_misses_cost_fn():
    series = label_series(TIMESTAMPS, WINDOWS)
    p = PROFILES["standard"]
    both = np.isin(np.arange(20), [8, 10])
    assert raw_score(series, both, p) == pytest.approx(1.0)
    assert raw_score(series, np.zeros(20, dtype=bool), p) == -1.0


def test_best_threshold_picks_the_score_that_catches_the_window_early():
    # GIVEN scores high at rows 9 (window) and 15 (after it), and a small bump at row 5
    series = label_series(TIMESTAMPS, WINDOWS)
    scores = np.zeros(20)
    scores[[5, 9, 15]] = [0.3, 0.8, 0.9]
    # WHEN the best threshold is searched THEN it takes rows 9 and 15, not row 5
    threshold, raw = best_threshold({"f": (series, scores)}, PROFILES["standard"])
    assert threshold == 0.8
    assert raw == pytest.approx(0.966988 - 0.11 * 0.997458, abs=1e-5)


def test_evaluate_command_on_the_example(tmp_path, capsys):
    # GIVEN the example as NAB files and a scored copy
    data, scored = tmp_path / "data" / "demo", tmp_path / "scores" / "demo"
    data.mkdir(parents=True)
    scored.mkdir(parents=True)
    (data / "a.csv").write_text(
        "timestamp,value\n" + "".join(f"{t},1.0\n" for t in TIMESTAMPS)
    )
    (scored / "a.csv").write_text(
        "timestamp,value,anomaly_score,is_anomaly\n"
        + "".join(
            f"{t},1.0,{0.9 if f else 0.1},{int(f)}\n"
            for t, f in zip(TIMESTAMPS, FLAGS, strict=True)
        )
    )
    labels = tmp_path / "combined_windows.json"
    labels.write_text(json.dumps({"demo/a.csv": WINDOWS}))
    out = tmp_path / "result.json"
    # WHEN evaluate runs
    code = cli(["evaluate", "--data", str(tmp_path / "data"), "--labels", str(labels),
                "--scores", str(tmp_path / "scores"), "--json", str(out)])
    # THEN it reports the hand-worked scores
    assert code == 0
    result = json.loads(out.read_text())
    for profile, expected in EXPECTED.items():
        assert result[profile]["own_flags"] == pytest.approx(expected, abs=1e-3)
    assert "standard" in capsys.readouterr().out


def _scored(folder, flagged_rows):
    folder.parent.mkdir(parents=True, exist_ok=True)
    folder.write_text(
        "timestamp,value,anomaly_score,is_anomaly\n"
        + "".join(f"{t},1.0,{0.9 if i in flagged_rows else 0.1},{int(i in flagged_rows)}\n"
                  for i, t in enumerate(TIMESTAMPS))
    )


def test_cross_validation_scores_a_choice_on_the_category_it_never_saw(tmp_path, capsys):
    # GIVEN two categories with one file each, the example's window in both
    data = tmp_path / "data"
    for name in ("catA/a.csv", "catB/b.csv"):
        (data / name).parent.mkdir(parents=True)
        (data / name).write_text("timestamp,value\n" + "".join(f"{t},1.0\n" for t in TIMESTAMPS))
    labels = tmp_path / "combined_windows.json"
    labels.write_text(json.dumps({"catA/a.csv": WINDOWS, "catB/b.csv": WINDOWS}))
    # AND candidate x that finds the window in catA only, y in catB only, z in both at its start
    for candidate, rows in {"x": ({9}, set()), "y": (set(), {9}), "z": ({8}, {8})}.items():
        _scored(tmp_path / candidate / "catA" / "a.csv", rows[0])
        _scored(tmp_path / candidate / "catB" / "b.csv", rows[1])
    out = tmp_path / "cv.json"
    # WHEN evaluate cross-validates x and y
    code = cli(["evaluate", "--data", str(data), "--labels", str(labels), "--scores",
                str(tmp_path / "x"), str(tmp_path / "y"), "--json", str(out)])
    # THEN each scores about half in-sample (one window found at row 9, one missed; null -2,
    # perfect 2), but the choice made without a category misses it: 0
    assert code == 0
    result = json.loads(out.read_text())
    assert result["candidates"][str(tmp_path / "x")]["standard"]["own_flags"] == pytest.approx(
        100 * (0.966988 - 1 + 2) / 4, abs=1e-3
    )
    standard = result["cross_validation"]["standard"]
    assert standard["chosen"] == {"catA": str(tmp_path / "y"), "catB": str(tmp_path / "x")}
    assert standard["own_flags"] == pytest.approx(0.0)
    assert "leave one category out" in capsys.readouterr().out
    # AND a candidate that is best on both is chosen every time and keeps its score
    cli(["evaluate", "--data", str(data), "--labels", str(labels), "--scores",
         str(tmp_path / "x"), str(tmp_path / "z"), str(tmp_path / "y"), "--json", str(out)])
    standard = json.loads(out.read_text())["cross_validation"]["standard"]
    assert set(standard["chosen"].values()) == {str(tmp_path / "z")}
    assert standard["own_flags"] == pytest.approx(100.0)


def test_cross_validation_needs_two_categories(tmp_path):
    from localdev.nab_evaluation import cross_validate

    data = tmp_path / "data" / "demo"
    data.mkdir(parents=True)
    (data / "a.csv").write_text("timestamp,value\n" + "".join(f"{t},1.0\n" for t in TIMESTAMPS))
    _scored(tmp_path / "x" / "demo" / "a.csv", {9})
    labels = tmp_path / "combined_windows.json"
    labels.write_text(json.dumps({"demo/a.csv": WINDOWS}))
    with pytest.raises(ValueError, match="two categories or more"):
        cross_validate(tmp_path / "data", labels, [tmp_path / "x"])
