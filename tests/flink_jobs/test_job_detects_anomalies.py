"""The job on a real Flink minicluster over a simulated stream with injected anomalies.

GIVEN a seeded 10-minute simulated click stream with a click flood, a broken ad, a page outage,
a bot crawl, a slow drift (the control), malformed lines of every kind and late events;
WHEN the job runs at parallelism 2 with the default detector;
THEN each injected anomaly is flagged in its windows, at least 80 % of the alerts are right, the
drift raises nothing, the benign events (a page appearing, pages retiring, a campaign launch, the
site-wide spike) raise no false alert, the spike one alert for the site, every malformed or late
line is dead-lettered with the reason the simulator recorded, and the counts reconcile.
"""

from __future__ import annotations

import argparse
import json as jsonlib
from collections import Counter

import pytest
from embedded_job import run_embedded

from localdev.cli import train
from localdev.run_summary import run_summary
from localdev.simulator import SimulationConfig, simulate, write_simulation
from localdev.truth import overlaps
from models import artifacts
from models.features import FEATURE_NAMES
from models.site import SITE_ENTITY
from models.supervised_forest import SupervisedForestScorer

pytestmark = pytest.mark.flink

STREAM = SimulationConfig(minutes=10, events_per_second=300, seed=7)


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    root = tmp_path_factory.mktemp("simulated")
    simulation = simulate(STREAM)
    events_file, _ = write_simulation(simulation, root / "sim")
    outputs = run_embedded(events_file, root, 2)
    dead, windows, anomalies = (
        outputs[name] for name in ("dead_letters", "scored_windows", "anomalies")
    )
    site = [a for a in anomalies if (a["entity_type"], a["entity_id"]) == SITE_ENTITY]
    return {
        "root": root,
        "simulation": simulation,
        "dead": dead,
        "windows": windows,
        "anomalies": anomalies,
        "site_alerts": site,
        "summary": run_summary(len(simulation.lines), dead, windows, simulation.truth,
                               site_alerts=site),
    }


@pytest.mark.parametrize("kind", ["click_flood", "broken_ad", "page_outage", "bot_crawl"])
def test_each_injected_anomaly_is_flagged_in_its_windows(run, kind):
    assert run["summary"]["by_kind"][kind]["detected"], run["summary"]["by_kind"][kind]


def test_the_slow_drift_raises_nothing(run):
    assert run["summary"]["control_alerts"] == 0


def test_benign_events_raise_no_false_alert(run):
    assert set(run["summary"]["benign_alerts"].values()) == {0}, run["summary"]["benign_alerts"]


def test_alerts_are_mostly_right(run):
    # the simulator goal (issue 12): alert precision >= 0.8 with every kind found
    assert run["summary"]["alert_precision"] >= 0.8, run["summary"]


def test_every_dead_letter_carries_the_reason_the_simulator_recorded(run):
    sim = run["simulation"]
    expected = Counter((sim.lines[i], r) for i, r in sim.truth["dead_letters"].items())
    got = Counter((d["payload"], d["reason"]) for d in run["dead"])
    assert got == expected


def test_counts_reconcile(run):
    s = run["summary"]
    assert s["events_in"] == s["events_windowed"] + s["dead_letters_total"]


def test_the_anomaly_sink_holds_exactly_the_flagged_windows_and_the_site_alerts(run):
    flagged = {
        (w["entity_type"], w["entity_id"], w["window_end_ms"])
        for w in run["windows"] if w["is_anomaly"]
    }
    entities = [a for a in run["anomalies"] if a not in run["site_alerts"]]
    sunk = {(a["entity_type"], a["entity_id"], a["window_end_ms"]) for a in entities}
    assert sunk == flagged and len(entities) == len(flagged)
    assert all(a["explanation"] and a["kind"] for a in run["anomalies"])


def test_the_site_wide_spike_raises_one_alert_for_the_site(run):
    # GIVEN the stream's site-wide spike (organic traffic x2.5 for 90 s, a benign event)
    [spike] = [a for a in run["simulation"].truth["anomalies"] if a["kind"] == "site_spike"]
    # THEN one anomaly record names the site, in the spike, its events HIGH against the pages'
    [alert] = run["site_alerts"]
    assert overlaps(alert["window_end_ms"], spike)
    assert alert["kind"] == "events_high" and alert["is_anomaly"]
    events = alert["explanation"]["events"]
    assert events["DIRECTION"] == "HIGH" and events["value"] > 1.3 * events["expected"]
    # AND the run summary counts it as the site-wide event's alert, not a false one
    summary = run["summary"]
    assert (summary["site_alerts"], summary["site_events_alerted"]) == (1, 1)


def test_the_supervised_forest_trains_from_the_archive_and_the_ground_truth(run, tmp_path):
    # GIVEN the job's scored-window archive and the simulator's ground truth
    truth = tmp_path / "truth.json"
    truth.write_text(jsonlib.dumps(run["simulation"].truth))
    artifact = tmp_path / "forest.skops"
    # WHEN `clicksentry train` fits the forest
    code = train.main(argparse.Namespace(
        windows=run["root"] / "scored-windows", truth=truth, artifact=artifact,
        detector="rcf-level",
    ))
    # THEN the artefact loads through the trusted-type check and scores windows 0..1
    assert code == 0
    scorer = SupervisedForestScorer.load(artifact, sha256=artifacts.file_sha256(artifact))
    scores = scorer.score_many([dict.fromkeys(FEATURE_NAMES, 0.0)])
    assert 0.0 <= float(scores[0]) <= 1.0
