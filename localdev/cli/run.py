"""``clicksentry run``: the job on a local Flink minicluster, with progress and a summary."""

from __future__ import annotations

import argparse
import json
import os
import shutil
import threading
import time
from pathlib import Path

from flink_jobs.config import Config, ConfigError, load_config
from flink_jobs.job import LocalOutputs, create_environment, define_pipeline, local_tables
from localdev.part_files import read_records
from localdev.run_summary import run_summary
from localdev.simulator import SimulationConfig, simulate, write_simulation
from models.site import SITE_ENTITY


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``clicksentry run``."""
    parser.add_argument("--properties", type=Path,
                        help="application_properties.json (Managed Flink format)")
    parser.add_argument("--out", help="output root (job.out_dir)")
    parser.add_argument("--parallelism", help="job.parallelism")
    parser.add_argument("--detector", help="scoring.detector")
    parser.add_argument("--minutes", help="simulator.minutes (embedded source)")
    parser.add_argument("--events-per-second", help="simulator.events_per_second")
    parser.add_argument("--seed", help="simulator.seed")
    parser.add_argument("--events", type=Path,
                        help="replay this JSON-lines file instead of simulating")
    parser.add_argument("--model",
                        help="scoring.model_uri: a published forest (…/models/<name>/current.json"
                             " or …/models/<name>/<version>/) decides the windows")


def _overrides(args: argparse.Namespace) -> dict[str, dict[str, str]]:
    pairs = {
        ("job", "out_dir"): args.out,
        ("job", "parallelism"): args.parallelism,
        ("scoring", "detector"): args.detector,
        ("simulator", "minutes"): args.minutes,
        ("simulator", "events_per_second"): args.events_per_second,
        ("simulator", "seed"): args.seed,
        ("scoring", "model_uri"): args.model,
    }
    groups: dict[str, dict[str, str]] = {}
    for (group, key), value in pairs.items():
        if value is not None:
            groups.setdefault(group, {})[key] = str(value)
    return groups


def _simulation_config(sim: dict) -> SimulationConfig:
    return SimulationConfig(
        seed=sim["seed"],
        minutes=sim["minutes"],
        events_per_second=sim["events_per_second"],
        malformed_fraction=sim["malformed_fraction"],
        late_fraction=sim["late_fraction"],
        anomalies=sim["anomalies"],
        benign=sim["benign"],
    )


def _lines_below(directory: Path) -> int:
    """Lines written so far below ``directory``, in-progress part files included."""
    if not directory.exists():
        return 0
    return sum(p.read_bytes().count(b"\n") for p in directory.rglob("*part-*") if p.is_file())


def _progress(outputs: LocalOutputs, started: float, done: threading.Event) -> None:
    while not done.wait(10):
        # JSON lines, counted in-progress files included (the Parquet archive is readable only
        # once committed)
        anomalies = _lines_below(outputs.anomalies)
        dead = _lines_below(outputs.dead_letters)
        print(f"  … {time.monotonic() - started:5.0f} s: {anomalies} anomalies,"
              f" {dead} dead letters so far", flush=True)


def main(args: argparse.Namespace) -> int:
    """Simulate (or take) events, run the job to the end, print and write the summary."""
    os.environ.setdefault("IS_LOCAL", "1")
    try:
        config = load_config(args.properties, _overrides(args))
    except ConfigError as exc:
        print(f"configuration error: {exc}")
        return 2
    if config.get("job", "source") == "kinesis":
        from localdev.cli import run_kinesis

        return run_kinesis.main(config)
    outputs = LocalOutputs(Path(config.get("job", "out_dir")))
    clear_outputs(outputs)
    truth = None
    if args.events:
        events_file = args.events
    else:
        sim_cfg = _simulation_config(dict(config.group("simulator")))
        print(f"simulating {sim_cfg.minutes:g} minutes at ~{sim_cfg.events_per_second:g} events/s"
              f" (seed {sim_cfg.seed}) …", flush=True)
        simulation = simulate(sim_cfg)
        events_file, _ = write_simulation(simulation, outputs.root / "sim")
        truth = simulation.truth
    return run_job(config, outputs, events_file, truth)


def clear_outputs(outputs: LocalOutputs) -> None:
    """Remove a previous run's outputs below ``outputs.root`` (nothing else there)."""
    for stale in (outputs.anomalies, outputs.scored_windows, outputs.dead_letters,
                  outputs.raw_events, outputs.entity_evictions, outputs.model_events,
                  outputs.window_latencies):
        shutil.rmtree(stale, ignore_errors=True)


def run_job(config: Config, outputs: LocalOutputs, events_file: Path, truth: dict | None) -> int:
    """Run the job over ``events_file`` to its end; print and write the run summary.

    Exit status 0 when every event was windowed or dead-lettered (reconciled), else 1.
    """
    with events_file.open("rb") as lines:
        events_in = sum(1 for _ in lines)
    print(f"running the job on {events_in} events from {events_file} "
          f"(parallelism {config.get('job', 'parallelism')}, "
          f"detector {config.get('scoring', 'detector')}) …", flush=True)

    t_env = create_environment(config, local=True)
    statements = define_pipeline(
        t_env, config, local_tables(events_file, outputs, config.get("archive", "writers"))
    )
    started, done = time.monotonic(), threading.Event()
    reporter = threading.Thread(target=_progress, args=(outputs, started, done), daemon=True)
    reporter.start()
    try:
        statements.execute().wait()
    finally:
        done.set()
    elapsed = time.monotonic() - started

    summary = run_summary(
        events_in,
        read_records(outputs.dead_letters),
        read_records(outputs.scored_windows),
        truth,
        read_records(outputs.entity_evictions),
        read_records(outputs.model_events),
        site_alerts=[
            r for r in read_records(outputs.anomalies)
            if (r["entity_type"], r["entity_id"]) == SITE_ENTITY
        ],
    )
    summary["job_seconds"] = round(elapsed, 1)
    (outputs.root / "run-summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    _print_summary(summary, outputs)
    return 0 if summary["reconciled"] else 1


def _print_summary(s: dict, outputs: LocalOutputs) -> None:
    print(f"\njob finished in {s['job_seconds']} s")
    print(f"  events in        {s['events_in']:>9}")
    print(f"  events windowed  {s['events_windowed']:>9}")
    print(f"  dead letters     {s['dead_letters_total']:>9}  {s['dead_letters']}")
    ok = "yes" if s["reconciled"] else "NO — events were lost"
    print(f"  reconciled       {ok:>9}  (in = windowed + dead letters)")
    print(f"  windows scored   {s['windows_scored']:>9}  {s['windows_by_entity_type']}")
    print(f"  anomalies        {s['anomalies']:>9}  (entity windows; the site's own alerts:"
          f" {s['site_alerts']})")
    evicted = sum(s["entity_evictions"].values())
    print(f"  entities evicted {evicted:>9}  {s['entity_evictions'] or ''} (scoring.max_entities)")
    if "model_events" in s:
        events = s["model_events"]
        print(f"  models loaded    {len(events['loaded']):>9}  {events['loaded']}"
              f"  rejected {events['rejected']} (scoring.model_uri)")
    if "labelled_anomalies" in s:
        print(f"  labelled         {s['labelled_detected']}/{s['labelled_anomalies']} detected, "
              f"{s['false_alerts']} false alerts, {s['control_alerts']} on the drift control")
        for kind, k in s["by_kind"].items():
            mark = "detected" if k["detected"] else "MISSED"
            first = k["first_alert_delay_s"]
            delay = "" if first is None else f", first after {first:g} s"
            print(f"    {kind:<12} {mark}: {k['flagged_windows']}/{k['labelled_windows']} windows"
                  f"{delay}")
        if s["site_events"]:
            print(f"  site-wide events {s['site_events_alerted']}/{s['site_events']} alerted"
                  " by the site's own alert")
        if s["benign_alerts"]:
            print(f"  benign events    {sum(s['benign_alerts'].values()):>9} false alerts"
                  f"  {s['benign_alerts']}")
    print(f"\noutputs under {outputs.root}/: anomalies/, scored-windows/dt=…/hour=…/, "
          f"dead-letters/, raw-events/, run-summary.json")
