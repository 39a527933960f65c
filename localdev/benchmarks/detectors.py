"""Detector measurements behind ``clicksentry bench``: speed, state size and NAB scores.

Speed is entity-window scorings per second through :meth:`WindowDetector.process`, in batches of
``n_entities`` windows sharing a ``window_end`` (as the job calls it), after a warm-up; state size
is the bytes of one entity's state and of the shared (per-shard) detector state.
"""

from __future__ import annotations

import json
import logging
import time
from collections import defaultdict
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from river import anomaly, time_series

from flink_jobs.features import WINDOW_MS
from localdev.nab_evaluation import evaluate
from localdev.reference_windows import reference_windows
from localdev.simulator import SimulationConfig, simulate
from localdev.truth import (
    covers,
    expected_alerts,
    label_entities,
    overlaps,
    site_event_alerts,
    site_wide,
)
from models.detector import score_batches
from models.features import FEATURE_NAMES
from models.nab import PROFILES, best_threshold, label_series, normalise, null_score, perfect_score
from models.registry import DETECTOR_NAMES, make_detector
from models.series import read_series, score_file, series_detector
from models.site import SITE_ENTITY, SITE_PARTS, SiteDetector, page_traffic
from udfs.shard import ShardState, ShardWindows, WindowRow, shard_key

log = logging.getLogger(__name__)


def synthetic_batches(n_entities: int, windows: int, seed: int = 0) -> list[list[dict]]:
    """Ordinary click traffic: ``windows`` batches of ``n_entities`` feature dicts."""
    rng = np.random.default_rng(seed)
    volume = np.exp(rng.uniform(np.log(20), np.log(2000), n_entities))
    ctr = rng.uniform(0.01, 0.05, n_entities)
    batches = []
    for _ in range(windows):
        impressions = rng.poisson(volume)
        clicks = rng.binomial(impressions, ctr)
        views = rng.poisson(volume * 0.3)
        carts = rng.binomial(views, 0.05)
        purchases = rng.binomial(carts, 0.3)
        events = impressions + clicks + views + carts + purchases
        users = rng.binomial(events, 0.6)
        columns = {
            "events": events, "impressions": impressions, "clicks": clicks,
            "ctr": np.where(impressions > 0, clicks / np.maximum(impressions, 1), 0.0),
            "page_views": views, "add_to_carts": carts, "purchases": purchases,
            "unique_users": users, "unique_sessions": (users * 1.1).astype(int),
            "unique_ips": (users * 0.9).astype(int),
            "top_ip_share": np.minimum(1.0, 2.0 / np.maximum(users, 1)),
            "bot_share": np.clip(rng.normal(0.02, 0.01, n_entities), 0, 1),
        }
        batches.append(
            [{k: float(columns[k][i]) for k in FEATURE_NAMES} for i in range(n_entities)]
        )
    return batches


def measure_detector(
    name: str, n_entities: int = 500, windows: int = 30, warmup_windows: int = 40
) -> dict[str, float]:
    """Scorings/s (wall clock, and per CPU second of this process, i.e. per core: the machine
    is shared, so the wall-clock rate depends on what else runs), bytes per entity state and
    bytes of the shared state of one detector."""
    detector = make_detector(name)
    batches = [list(enumerate(b)) for b in synthetic_batches(n_entities, warmup_windows + windows)]
    states: dict[int, bytes] = {}
    run = score_batches(detector, batches, states)
    for _ in range(warmup_windows):
        next(run)
    start, start_cpu = time.perf_counter(), time.process_time()
    for _ in run:
        pass
    wall = time.perf_counter() - start
    cpu = time.process_time() - start_cpu
    return {
        "scorings_per_s": n_entities * windows / wall,
        "scorings_per_cpu_s": n_entities * windows / cpu,
        "entity_state_bytes": float(np.mean([len(s) for s in states.values()])),
        "shared_state_bytes": float(len(detector.to_bytes())),
    }


def measure_detectors(
    names: Sequence[str] | None = None,
    n_entities: int = 500,
    windows: int = 30,
) -> dict[str, float]:
    """Flat ``{"<detector>.<metric>": value}`` for each detector (all registered by default).

    Metrics: ``scorings_per_s`` (entity windows through ``process``, wall clock),
    ``scorings_per_cpu_s`` (the same per CPU second: per core), ``entity_state_bytes``,
    ``shared_state_bytes``.
    """
    results: dict[str, float] = {}
    for name in names or DETECTOR_NAMES:
        for metric, value in measure_detector(name, n_entities, windows).items():
            results[f"{name}.{metric}"] = value
        log.info("measured %s", name)
    return results


def nab_scores(
    data: Path,
    labels: Path,
    out: Path,
    variants: Mapping[str, tuple[str, Mapping[str, Any] | None]],
) -> dict[str, dict[str, dict[str, float]]]:
    """Score NAB with each variant ``label -> (detector name, params)`` and evaluate it."""
    results = {}
    for label, (name, params) in variants.items():
        for source in sorted(data.rglob("*.csv")):
            target = out / label / source.relative_to(data)
            score_file(series_detector(name, params), source, target)
        results[label] = evaluate(data, labels, out / label)
    return results


def simulated_windows(seed: int = 7, minutes: float = 15.0):
    """Entity windows of the job's simulator, grouped per entity type and window end.

    Returns:
        ``(windows, truth)``: ``windows[entity_type][window_end_ms]`` = ``{entity_id:
        features}`` of the valid, on-time events (:mod:`localdev.reference_windows`);
        ``truth`` the simulator's ground truth.
    """
    sim = simulate(SimulationConfig(seed=seed, minutes=minutes))
    dead = set(sim.truth["dead_letters"])
    events = (json.loads(line) for i, line in enumerate(sim.lines) if i not in dead)
    windows: dict[str, dict[int, dict[str, dict[str, float]]]] = defaultdict(
        lambda: defaultdict(dict)
    )
    for (entity_type, entity_id, end), features in reference_windows(events).items():
        windows[entity_type][end][entity_id] = features
    return windows, sim.truth


def simulator_detection(
    name: str,
    params: Mapping[str, Any] | None = None,
    seed: int = 7,
    minutes: float = 15.0,
    shards: int = 4,
    max_gap_windows: int = 6,
) -> dict[str, dict[str, float]]:
    """Recall and precision of a detector on the job's simulated stream, per anomaly kind.

    The windows go through the job's own :class:`udfs.shard.ShardWindows` as the job closes them
    (shards, windows closed in order with rows in entity order, synthesised empty windows for
    silent entities). An anomaly is *detected* when any of its entities is
    flagged in a window that overlaps it (:func:`localdev.truth.overlaps`, the rule of the run
    summary); ``flags`` counts the flagged windows matched to it, and ``false_flags`` the flags
    matching no anomaly. For the labels that should raise nothing (the ``slow_drift`` control
    and the benign events), ``false_flags`` counts the false flags they cover
    (:func:`localdev.truth.covers`). The site's own alerts (:class:`models.site.SiteDetector` over
    the pages' windows, as the job's site operator) are flags of ``site/all``: the first under
    each site-wide label matches it (``site``: ``alerts``, ``site_events``,
    ``site_events_alerted``), any other is false.
    """
    windows, truth = simulated_windows(seed, minutes)
    flags: list[tuple[str, str, int]] = []
    page_traffic_by_end: dict[int, dict[str, float]] = defaultdict(dict)
    for entity_type, ends in windows.items():
        shard_windows: dict[str, tuple[ShardWindows, ShardState]] = {}
        for end in sorted(ends):
            for entity_id, features in ends[end].items():
                key = shard_key(entity_type, entity_id, shards)
                if key not in shard_windows:
                    detector = make_detector(name, params)
                    closer = ShardWindows(detector, entity_type, WINDOW_MS, max_gap_windows)
                    shard_windows[key] = (closer, ShardState())
                rows = shard_windows[key][1].pending.setdefault(end, [])
                rows.append(WindowRow(entity_id, end - WINDOW_MS, features))
            for closer, shard in shard_windows.values():
                for record in closer.close_due(shard, end, final=False):
                    if record["is_anomaly"]:
                        flags.append((entity_type, record["entity_id"], record["window_end_ms"]))
                    if entity_type == SITE_PARTS:
                        by_page = page_traffic_by_end[record["window_end_ms"]]
                        by_page[record["entity_id"]] = page_traffic(record["features"])
    site = SiteDetector()
    site_alerts = [
        (*SITE_ENTITY, end)
        for end in sorted(page_traffic_by_end)
        if site.process(page_traffic_by_end[end]).is_anomaly
    ]
    flags += site_alerts
    out: dict[str, dict[str, float]] = {}
    site_events = sum(site_wide(label) for label in truth["anomalies"])
    matched = {(*SITE_ENTITY, end) for end in site_event_alerts(truth, (a[2] for a in site_alerts))}
    out["site"] = {"alerts": float(len(site_alerts)), "site_events": float(site_events),
                   "site_events_alerted": float(len(matched))}
    for label in expected_alerts(truth):
        members = label_entities(label)
        hits = [f for f in flags if (f[0], f[1]) in members and overlaps(f[2], label)]
        matched.update(hits)
        out[label["kind"]] = {"detected": float(bool(hits)), "flags": float(len(hits)),
                              "entities_flagged": float(len({(f[0], f[1]) for f in hits})),
                              "entities": float(len(members))}
    false = [f for f in flags if f not in matched]
    for label in truth["anomalies"]:
        if not label["expect_alert"]:
            out[label["kind"]] = {
                "false_flags": float(sum(covers(label, (f[0], f[1]), f[2]) for f in false))
            }
    out["all"] = {
        "flags": float(len(flags)),
        "false_flags": float(len(false)),
        "precision": (len(flags) - len(false)) / len(flags) if flags else 0.0,
    }
    return out


def river_univariate_nab(data: Path, labels: Path) -> dict[str, dict[str, float]]:
    """NAB scores (best threshold) of river's predictive and statistical detectors, measured
    on the raw values of each series, causally (score, then learn).

    These detectors are univariate, so they are measured here rather than wrapped as scorers:
    ``GaussianScorer`` (running Gaussian tail), ``StandardAbsoluteDeviation`` (distance from the
    running mean in running standard deviations) and ``PredictiveAnomalyDetection`` with a
    SNARIMAX forecaster (error of a one-step forecast).
    """
    makers = {
        "river-gaussian": lambda: anomaly.GaussianScorer(grace_period=100),
        "river-sad": lambda: anomaly.StandardAbsoluteDeviation(),
        "river-predictive-snarimax": lambda: anomaly.PredictiveAnomalyDetection(
            time_series.SNARIMAX(p=3, d=0, q=0), horizon=1, n_std=3.0, warmup_period=100
        ),
    }
    windows = json.loads(Path(labels).read_text())
    series = {name: read_series(Path(data) / name) for name in sorted(windows)}
    results: dict[str, dict[str, float]] = {}
    for label, make in makers.items():
        corpus = {}
        for name, (timestamps, values) in series.items():
            model, scores = make(), []
            for v in values:
                x = {} if label != "river-predictive-snarimax" else None
                scores.append(float(model.score_one(x, v)))
                model.learn_one(x, v)
            corpus[name] = (label_series(timestamps, windows[name]), np.nan_to_num(scores))
        results[label] = {}
        for profile_name, profile in PROFILES.items():
            _, raw = best_threshold(corpus, profile)
            null = sum(null_score(s, profile) for s, _ in corpus.values())
            perfect = sum(perfect_score(s, profile) for s, _ in corpus.values())
            results[label][profile_name] = normalise(raw, null, perfect)
    return results
