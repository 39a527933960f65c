"""Detector measurements behind ``clicksentry bench``: speed, state size and NAB scores.

Speed is entity-window scorings per second through :meth:`WindowDetector.process`, in batches of
``n_entities`` windows sharing a ``window_end`` (as the job calls it), after a warm-up; state size
is the bytes of one entity's state and of the shared (per-shard) detector state.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from models.registry import DETECTOR_NAMES, make_detector

log = logging.getLogger(__name__)

FEATURES = (
    "events", "impressions", "clicks", "ctr", "page_views", "add_to_carts", "purchases",
    "unique_users", "unique_sessions", "unique_ips", "top_ip_share", "bot_share",
)


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
            [{k: float(columns[k][i]) for k in FEATURES} for i in range(n_entities)]
        )
    return batches


def measure_detector(
    name: str, n_entities: int = 500, windows: int = 30, warmup_windows: int = 40
) -> dict[str, float]:
    """Scorings/s, bytes per entity state and bytes of the shared state of one detector."""
    detector = make_detector(name)
    batches = synthetic_batches(n_entities, warmup_windows + windows)
    states: list[bytes | None] = [None] * n_entities
    elapsed = 0.0
    for w, batch in enumerate(batches):
        start = time.perf_counter()
        out = detector.process(list(zip(states, batch, strict=True)))
        if w >= warmup_windows:
            elapsed += time.perf_counter() - start
        states = [state for _, state in out]
    return {
        "scorings_per_s": n_entities * windows / elapsed,
        "entity_state_bytes": float(np.mean([len(s) for s in states])),
        "shared_state_bytes": float(len(detector.to_bytes())),
    }


def measure_detectors(
    names: Sequence[str] | None = None,
    n_entities: int = 500,
    windows: int = 30,
) -> dict[str, float]:
    """Flat ``{"<detector>.<metric>": value}`` for each detector (all registered by default).

    Metrics: ``scorings_per_s`` (entity windows through ``process``), ``entity_state_bytes``,
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
    from flink_jobs.cli.evaluate import evaluate
    from models.series import score_file

    results = {}
    for label, (name, params) in variants.items():
        for source in sorted(data.rglob("*.csv")):
            score_file(make_detector(name, params), source, out / label / source.relative_to(data))
        results[label] = evaluate(data, labels, out / label)
    return results


def format_table(rows: Iterable[tuple[str, dict[str, float]]]) -> str:
    """Plain text table of ``measure_detectors``-style numbers."""
    return "\n".join(f"{k:<45} {v:>14,.1f}" for _, r in rows for k, v in r.items())
