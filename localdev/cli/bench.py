"""``clicksentry bench``: the job against a pure-SQL baseline, and the detectors alone.

Prints events/s of (a) a pure-SQL 10 s window count and (b) the full job over the same
simulated events, one after the other in this run, their ratio, and entity-window scorings/s
of every detector in isolation. The last line is one JSON object with every number.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
from pathlib import Path

from flink_jobs.config import ConfigError, load_config
from localdev.benchmarks.detectors import measure_detectors
from localdev.benchmarks.pipeline import full_job, sql_baseline
from localdev.simulator import SimulationConfig, simulate, write_simulation
from models.registry import DETECTOR_NAMES


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``clicksentry bench``."""
    parser.add_argument("--minutes", type=float, default=15.0, help="simulated minutes")
    parser.add_argument("--events-per-second", type=float, default=1000.0,
                        help="simulated event rate (events = minutes × 60 × rate)")
    parser.add_argument("--parallelism", default="1", help="job.parallelism of both jobs")
    parser.add_argument("--detector", help="scoring.detector of the full job")
    parser.add_argument("--detectors", nargs="*", default=None,
                        help=f"detectors to time in isolation (default: all: {DETECTOR_NAMES})")
    parser.add_argument("--entities", type=int, default=500,
                        help="entity windows per batch when timing detectors")


def main(args: argparse.Namespace) -> int:
    """Run both jobs and the detector timings; print a table and a JSON line."""
    os.environ.setdefault("IS_LOCAL", "1")
    work = Path(tempfile.mkdtemp(prefix="clicksentry-bench-"))
    scoring = {"detector": args.detector} if args.detector else {}
    try:
        config = load_config(groups={
            "job": {"parallelism": args.parallelism, "checkpoint_interval_ms": "0",
                    "out_dir": str(work)},
            "scoring": scoring,
        })
    except ConfigError as exc:
        print(f"configuration error: {exc}")
        return 2
    simulation = simulate(SimulationConfig(minutes=args.minutes,
                                           events_per_second=args.events_per_second))
    events_file, _ = write_simulation(simulation, work / "sim")
    events = len(simulation.lines)
    del simulation
    print(f"{events} simulated events in {events_file}; parallelism {args.parallelism}; "
          f"{os.cpu_count()} cores ({platform.processor() or platform.machine()})", flush=True)

    print("(a) pure-SQL 10 s window count …", flush=True)
    baseline = sql_baseline(config, events_file, events)
    print(f"    {baseline.events_per_s:12,.0f} events/s  (net {baseline.net_seconds:.1f} s, "
          f"wall {baseline.wall_seconds:.1f} s)", flush=True)
    print(f"(b) full job, detector {config.get('scoring', 'detector')} …", flush=True)
    job = full_job(config, events_file, work / "job", events)
    print(f"    {job.events_per_s:12,.0f} events/s  (net {job.net_seconds:.1f} s, "
          f"wall {job.wall_seconds:.1f} s)", flush=True)
    ratio = job.events_per_s / baseline.events_per_s
    print(f"    ratio job / SQL baseline: {ratio:.2f}", flush=True)

    print(f"(c) detectors alone, batches of {args.entities} entity windows …", flush=True)
    detectors = measure_detectors(args.detectors, n_entities=args.entities)
    names = args.detectors or DETECTOR_NAMES
    for name in names:
        print(f"    {name:<16} {detectors[f'{name}.scorings_per_s']:10,.0f} scorings/s  "
              f"entity state {detectors[f'{name}.entity_state_bytes']:8,.0f} B  "
              f"shared state {detectors[f'{name}.shared_state_bytes']:12,.0f} B")
    job_detector = config.get("scoring", "detector")
    if f"{job_detector}.scorings_per_s" not in detectors:
        detectors.update(measure_detectors([job_detector], n_entities=args.entities))
    print(json.dumps({
        "events": events,
        "parallelism": int(args.parallelism),
        "sql_baseline_events_per_s": round(baseline.events_per_s),
        "job_events_per_s": round(job.events_per_s),
        "ratio": round(ratio, 3),
        "detector": job_detector,
        "scorings_per_s": round(detectors[f"{job_detector}.scorings_per_s"]),
        "detectors": {k: round(v, 1) for k, v in detectors.items()},
    }))
    return 0
