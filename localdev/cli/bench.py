"""``clicksentry bench``: the job stage by stage, at two parallelisms, its latency, the detectors.

On one simulated input, one job after the other in this run, all in one JVM. First, untimed, the
pure-SQL count and the full job over the input's first events (``--warmup-events``): no timed job
then pays for compiling the code paths it shares with the others, or for the first import of the
Python operators' modules. Then a pure-SQL 10 s window count (the baseline), the stages of the
job's own graph at parallelism 1 (:data:`STAGES`: source + parse + classify, + windows, + all
SQL features, the full job), the full job again at parallelism 2 on the same events dealt into
two files (a source that really splits), and at parallelism 1 with its Python operators in
process mode (``job.python_execution_mode``, as deployed); the outputs of both must equal the
first full run's. The full job's window-to-anomaly latency comes from the job itself
(:mod:`udfs.latency`). Then entity-window scorings/s of every detector in isolation, and the full
job over 1,000 to 1,000,000 distinct pages with aligned and with unaligned checkpoints
(:mod:`localdev.benchmarks.entity_scale`). Prints a table; the last line is one JSON object
with every number.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import tempfile
from pathlib import Path

from flink_jobs.config import Config, ConfigError, load_config
from flink_jobs.job import LocalOutputs
from localdev.benchmarks.detectors import measure_detectors
from localdev.benchmarks.entity_scale import entity_events, entity_scale_job
from localdev.benchmarks.pipeline import Throughput, full_job, sql_baseline, stage_job
from localdev.benchmarks.stages import (
    STAGES,
    differing_records,
    latency_summary,
    write_prefix,
    write_split,
)
from localdev.part_files import read_records
from localdev.simulator import SimulationConfig, simulate, write_simulation
from models.registry import DETECTOR_NAMES

#: Outputs the two parallelisms must agree on, record for record.
COMPARED = ("scored_windows", "anomalies", "dead_letters")
#: Checkpoint interval of the entity-scale runs.
ENTITY_SCALE_CHECKPOINT_MS = 10_000
#: The entity-scale runs' checkpoint barriers: ``job.unaligned_checkpoints`` false / true.
CHECKPOINT_MODES = ("aligned", "unaligned")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``clicksentry bench``."""
    parser.add_argument("--minutes", type=float, default=15.0, help="simulated minutes")
    parser.add_argument("--events-per-second", type=float, default=1000.0,
                        help="simulated event rate (events = minutes × 60 × rate)")
    parser.add_argument("--warmup-events", type=int, default=200_000,
                        help="events of the untimed warm-up runs before the timed ones (0: none)")
    parser.add_argument("--scale-parallelism", type=int, default=2,
                        help="parallelism of the second full-job run (source split into as many"
                             " files); the stages run at parallelism 1")
    parser.add_argument("--detector", help="scoring.detector of the full job")
    parser.add_argument("--detectors", nargs="*", default=None,
                        help=f"detectors to time in isolation (default: all: {DETECTOR_NAMES})")
    parser.add_argument("--entities", type=int, default=500,
                        help="entity windows per batch when timing detectors")
    parser.add_argument("--entity-scale", type=int, nargs="*", default=[1_000, 100_000, 1_000_000],
                        metavar="ENTITIES",
                        help="distinct pages of each entity-scale run (default: 1,000, 100,000"
                             " and 1,000,000; none: skip)")
    parser.add_argument("--entity-scale-events", type=int, default=1_000_000,
                        help="page views of each entity-scale run, over one simulated minute")
    parser.add_argument("--entity-scale-checkpoints", nargs="+", choices=CHECKPOINT_MODES,
                        default=list(CHECKPOINT_MODES),
                        help="checkpoint barriers of the entity-scale runs, each count run once"
                             " per mode one after the other (job.unaligned_checkpoints;"
                             " default: both)")
    parser.add_argument("--entity-scale-only", action="store_true",
                        help="run the entity-scale runs alone")
    parser.add_argument("--keep", action="store_true",
                        help="keep the work directory (input, splits, job outputs, latencies)")


def _config(args: argparse.Namespace, parallelism: int, work: Path,
            checkpoint_interval_ms: int = 0, unaligned: bool = False,
            python_mode: str | None = None) -> Config:
    scoring = {"detector": args.detector} if args.detector else {}
    mode = {"python_execution_mode": python_mode} if python_mode else {}
    return load_config(groups={
        "job": {**mode, "parallelism": str(parallelism),
                "checkpoint_interval_ms": str(checkpoint_interval_ms),
                "unaligned_checkpoints": str(unaligned).lower(),
                "checkpoint_dir": str(work / "checkpoints"), "out_dir": str(work)},
        "scoring": scoring,
    })


def _report(label: str, run: Throughput) -> None:
    busy = "" if run.cores_busy is None else f", {run.cores_busy:.2f} cores busy"
    print(f"    {label:<78} {run.events_per_s:10,.0f} events/s  (net {run.net_seconds:.1f} s,"
          f" wall {run.wall_seconds:.1f} s{busy})", flush=True)


def main(args: argparse.Namespace) -> int:
    """Run the jobs and the detector timings; print a table and a JSON line."""
    os.environ.setdefault("IS_LOCAL", "1")
    work = Path(tempfile.mkdtemp(prefix="clicksentry-bench-"))
    try:
        return _bench(args, work)
    finally:
        if args.keep:
            print(f"work directory kept: {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)


def _bench(args: argparse.Namespace, work: Path) -> int:
    scale = args.scale_parallelism
    if scale < 2:
        print("--scale-parallelism must be at least 2")
        return 2
    if args.warmup_events < 0:
        print("--warmup-events must not be negative")
        return 2
    if any(n < 1 for n in args.entity_scale) or args.entity_scale_events < 1:
        print("--entity-scale and --entity-scale-events must be positive")
        return 2
    try:
        config, scaled_config = _config(args, 1, work), _config(args, scale, work)
        process_config = _config(args, 1, work, python_mode="process")
        scale_configs = {
            mode: _config(args, 1, work, ENTITY_SCALE_CHECKPOINT_MS, mode == "unaligned")
            for mode in dict.fromkeys(args.entity_scale_checkpoints)
        }
    except ConfigError as exc:
        print(f"configuration error: {exc}")
        return 2
    if args.entity_scale_only:
        print(json.dumps({"entity_scale": _entity_scale(args, scale_configs, work)}))
        return 0
    simulation = simulate(SimulationConfig(minutes=args.minutes,
                                           events_per_second=args.events_per_second))
    events_file, _ = write_simulation(simulation, work / "sim")
    events = len(simulation.lines)
    del simulation
    single = events_file.parent / "split-1"
    split = events_file.parent / f"split-{scale}"
    write_split(events_file, single, 1)
    write_split(events_file, split, scale)
    detector = config.get("scoring", "detector")
    print(f"{events} simulated events in {events_file}; {os.cpu_count()} cores"
          f" ({platform.processor() or platform.machine()}); detector {detector}", flush=True)

    warmup_events = 0
    if args.warmup_events:
        warmup = events_file.parent / "warmup" / "events.jsonl"
        warmup_events = write_prefix(events_file, warmup, args.warmup_events)
        print(f"(0) warm-up, untimed: the SQL count and the full job over the first"
              f" {warmup_events} events …", flush=True)
        _report("warm-up: pure-SQL 10 s window count",
                sql_baseline(config, warmup, warmup_events))
        _report("warm-up: full job",
                full_job(config, warmup, work / "job-warmup", warmup_events))
    print("(a) pure-SQL 10 s window count, parallelism 1 …", flush=True)
    baseline = sql_baseline(config, single, events)
    _report("pure-SQL 10 s window count", baseline)
    print("(b) the job's stages, parallelism 1, same input …", flush=True)
    stages: dict[str, Throughput] = {}
    p1_out = LocalOutputs(work / "job-p1")
    for stage in STAGES:
        if stage.view is None:
            stages[stage.key] = full_job(config, single, p1_out.root, events)
        else:
            stages[stage.key] = stage_job(config, single, stage, events)
        _report(f"{stage.key[:2]} {stage.label}", stages[stage.key])
    job = stages[STAGES[-1].key]
    print(f"(c) full job, parallelism {scale}, the events dealt into {scale} files …", flush=True)
    scaled_out = LocalOutputs(work / f"job-p{scale}")
    scaled = full_job(scaled_config, split, scaled_out.root, events)
    _report(f"full job, parallelism {scale}", scaled)
    mode = config.get("job", "python_execution_mode")
    print("(d) full job, parallelism 1, Python operators in process mode (as deployed) …",
          flush=True)
    process_out = LocalOutputs(work / "job-p1-process")
    process = full_job(process_config, single, process_out.root, events)
    _report("full job, parallelism 1, process mode", process)
    speedup = scaled.events_per_s / job.events_per_s
    scored = sum(1 for _ in read_records(p1_out.scored_windows))
    print(f"    parallel_speedup (p{scale} / p1): {speedup:.2f}", flush=True)
    print(f"    process mode / {mode} mode, parallelism 1:"
          f" {process.events_per_s / job.events_per_s:.2f}", flush=True)
    differences = {}
    for label, out in ((f"p{scale}", scaled_out), ("p1-process", process_out)):
        differences[label] = {
            name: differing_records(read_records(getattr(p1_out, name)),
                                    read_records(getattr(out, name)))
            for name in COMPARED
        }
        if not any(differences[label].values()):
            print(f"    outputs of {label} identical to p1: yes ({scored} scored windows,"
                  " anomalies and dead letters record for record)", flush=True)
        else:
            print(f"    outputs of {label} identical to p1: NO — records differing:"
                  f" {differences[label]}", flush=True)
    identical = not any(differences[f"p{scale}"].values())
    ratio = job.events_per_s / baseline.events_per_s
    print(f"    ratio full job / SQL baseline: {ratio:.2f}", flush=True)
    latency = {
        "p1": latency_summary(read_records(p1_out.window_latencies)),
        f"p{scale}": latency_summary(read_records(scaled_out.window_latencies)),
        "p1-process": latency_summary(read_records(process_out.window_latencies)),
    }
    for label, summary in latency.items():
        print(f"    window-to-anomaly latency, {label}: p50 {summary['p50_ms']} ms,"
              f" p99 {summary['p99_ms']} ms over {summary['windows']} scored windows",
              flush=True)

    print(f"(e) detectors alone, batches of {args.entities} entity windows …", flush=True)
    detectors = measure_detectors(args.detectors, n_entities=args.entities)
    names = args.detectors or DETECTOR_NAMES
    for name in names:
        print(f"    {name:<16} {detectors[f'{name}.scorings_per_s']:10,.0f} scorings/s  "
              f"entity state {detectors[f'{name}.entity_state_bytes']:8,.0f} B  "
              f"shared state {detectors[f'{name}.shared_state_bytes']:12,.0f} B")
    if f"{detector}.scorings_per_s" not in detectors:
        detectors.update(measure_detectors([detector], n_entities=args.entities))
    entity_scale = _entity_scale(args, scale_configs, work)
    print(json.dumps({
        "events": events,
        "warmup_events": warmup_events,
        "parallelism": 1,
        "sql_baseline_events_per_s": round(baseline.events_per_s),
        "job_events_per_s": round(job.events_per_s),
        "ratio": round(ratio, 3),
        "stages": {key: round(run.events_per_s) for key, run in stages.items()},
        "cores_busy": {
            key: None if run.cores_busy is None else round(run.cores_busy, 2)
            for key, run in {"sql_baseline": baseline, **stages, f"p{scale}": scaled,
                             "p1-process": process}.items()
        },
        "scale_parallelism": scale,
        "scaled_job_events_per_s": round(scaled.events_per_s),
        "parallel_speedup": round(speedup, 3),
        "scaled_outputs_identical": identical,
        "scaled_records_differing": differences[f"p{scale}"],
        "python_execution_mode": mode,
        "process_mode_job_events_per_s": round(process.events_per_s),
        "process_mode_outputs_identical": not any(differences["p1-process"].values()),
        "p50_window_to_anomaly_ms": latency["p1"]["p50_ms"],
        "p99_window_to_anomaly_ms": latency["p1"]["p99_ms"],
        "window_to_anomaly_ms": latency,
        "detector": detector,
        "scorings_per_s": round(detectors[f"{detector}.scorings_per_s"]),
        "detectors": {k: round(v, 1) for k, v in detectors.items()},
        "entity_scale": entity_scale,
    }))
    return 0


def _entity_scale(args: argparse.Namespace, configs: dict[str, Config],
                  work: Path) -> dict[str, dict[str, dict]]:
    """(e) The full job over ever more distinct pages, checkpointing; a table and its numbers.

    Each count runs once per checkpoint mode in ``configs``, one after the other on the same
    input; the numbers are keyed by mode, then by count.
    """
    if not args.entity_scale:
        return {}
    events = args.entity_scale_events
    bound = next(iter(configs.values())).get("scoring", "max_entities")
    print(f"(e) entity scale: {events:,} page views over one simulated minute, parallelism 1,"
          f" checkpoints every {ENTITY_SCALE_CHECKPOINT_MS // 1000} s, scoring.max_entities"
          f" {bound:,} …", flush=True)
    runs: dict[str, dict[str, dict]] = {mode: {} for mode in configs}
    for entities in args.entity_scale:
        source = work / f"entity-scale-{entities}"
        source.mkdir()
        with (source / "events.jsonl").open("w") as out:
            out.writelines(line + "\n" for line in entity_events(entities, events, minutes=1))
        for mode, config in configs.items():
            out_root = work / f"entity-scale-{entities}-{mode}-out"
            run, checkpoints = entity_scale_job(config, source, out_root, events)
            outputs = LocalOutputs(out_root)
            scored = sum(1 for _ in read_records(outputs.scored_windows))
            evicted = sum(1 for _ in read_records(outputs.entity_evictions))
            summary = checkpoints.summary()
            runs[mode][str(entities)] = {"events_per_s": round(run.events_per_s),
                                         "scored_windows": scored, "evicted": evicted, **summary}
            size = summary["checkpoint_bytes"]
            print(f"    {entities:>9,} pages, {mode:>9}: {run.events_per_s:8,.0f} events/s,"
                  f" {scored:,} scored windows, {evicted:,} evicted; checkpoints"
                  f" {summary['checkpoints_completed']} ({summary['checkpoints_failed']} failed),"
                  f" largest {size / 1e6 if size else 0:,.1f} MB in {summary['checkpoint_ms']} ms"
                  f" (slowest {summary['max_checkpoint_ms']} ms, in flight at most"
                  f" {(summary['max_in_flight_bytes'] or 0) / 1e6:,.1f} MB); scoring state"
                  f" {summary['state_bytes_per_entity']} B per tracked entity"
                  f" ({summary['entities_tracked']} tracked)", flush=True)
            if not args.keep:
                shutil.rmtree(out_root)
            shutil.rmtree(work / "checkpoints", ignore_errors=True)
        shutil.rmtree(source)
    return runs
