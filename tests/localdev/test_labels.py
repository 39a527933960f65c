"""``clicksentry labels``: the simulator's truth as a labels file that labels what the truth does.

GIVEN a simulation's ground truth;
WHEN ``clicksentry labels`` writes it as a labels file;
THEN the file has the documented header and labels, and a window overlapping an ``anomaly`` span
of its entity (``window_start < end`` and ``window_end > start``, the notebook's rule) is
exactly a window :func:`localdev.truth.overlaps` puts in a labelled anomaly, for every entity and
window of the run; the drift control is a ``normal`` span.
"""

from __future__ import annotations

import csv
import json
from datetime import datetime

from flink_jobs.features import WINDOW_MS
from localdev.cli import main as clicksentry
from localdev.labels import LABEL_COLUMNS
from localdev.simulator import BENIGN_KINDS, SimulationConfig, simulate, write_simulation
from localdev.truth import expected_alerts, label_entities, overlaps, site_wide


def epoch_ms(text: str) -> int:
    return int(datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp() * 1000)


def test_the_labels_file_labels_the_windows_the_truth_does(tmp_path):
    # GIVEN a simulation's ground truth
    config = SimulationConfig(minutes=4, events_per_second=20, seed=5)
    _, truth_file = write_simulation(simulate(config), tmp_path / "sim")
    truth = json.loads(truth_file.read_text())
    # WHEN it is written as a labels file
    out = tmp_path / "labels.csv"
    assert clicksentry(["labels", "--truth", str(truth_file), "--out", str(out)]) == 0
    with out.open(newline="") as f:
        reader = csv.DictReader(f)
        assert tuple(reader.fieldnames) == LABEL_COLUMNS
        rows = list(reader)
    # THEN every label is anomaly or normal; the drift control and the benign events' entities
    # are normal spans, and the site-wide spike names no entity
    assert {r["label"] for r in rows} == {"anomaly", "normal"}
    quiet = [a for a in truth["anomalies"] if not a["expect_alert"] and not site_wide(a)]
    assert [a["kind"] for a in quiet] == ["slow_drift", *BENIGN_KINDS[:-1]]
    assert {(r["entity_type"], r["entity_id"]) for r in rows if r["label"] == "normal"} \
        == set().union(*map(label_entities, quiet))
    # AND the span rule labels exactly the windows the truth's overlap rule labels
    entities = {(r["entity_type"], r["entity_id"]) for r in rows}
    for end in range(config.start_ms, config.end_ms + 3 * WINDOW_MS, WINDOW_MS):
        for entity in entities:
            by_truth = any(entity in label_entities(a) and overlaps(end, a)
                           for a in expected_alerts(truth))
            by_file = any(
                (r["entity_type"], r["entity_id"]) == entity and r["label"] == "anomaly"
                and end - WINDOW_MS < epoch_ms(r["end"]) and end > epoch_ms(r["start"])
                for r in rows
            )
            assert by_file == by_truth, (entity, end)
