"""``clicksentry simulate``: write simulated click events and their ground truth."""

from __future__ import annotations

import argparse
from datetime import datetime
from pathlib import Path

from localdev.simulator import SimulationConfig, simulate, write_simulation


def _utc(text: str) -> datetime:
    moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    if moment.tzinfo is None:
        raise argparse.ArgumentTypeError("--start needs a time zone, e.g. 2026-01-05T00:00:00Z")
    return moment


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``clicksentry simulate``."""
    d = SimulationConfig()
    parser.add_argument("--out", type=Path, default=Path("out/sim"), help="output folder")
    parser.add_argument("--seed", type=int, default=d.seed)
    parser.add_argument("--start", type=_utc, default=d.start, help="ISO time with zone")
    parser.add_argument("--minutes", type=float, default=d.minutes)
    parser.add_argument("--events-per-second", type=float, default=d.events_per_second)
    parser.add_argument("--malformed-fraction", type=float, default=d.malformed_fraction)
    parser.add_argument("--late-fraction", type=float, default=d.late_fraction)
    parser.add_argument("--no-anomalies", action="store_true", help="no injected anomalies")
    parser.add_argument("--no-benign", action="store_true",
                        help="no benign events (appearing and retiring pages, a campaign"
                             " launch, a site-wide spike)")


def main(args: argparse.Namespace) -> int:
    """Simulate and write ``events.jsonl`` and ``truth.json``."""
    config = SimulationConfig(
        seed=args.seed,
        start=args.start,
        minutes=args.minutes,
        events_per_second=args.events_per_second,
        malformed_fraction=args.malformed_fraction,
        late_fraction=args.late_fraction,
        anomalies=not args.no_anomalies,
        benign=not args.no_benign,
    )
    simulation = simulate(config)
    events, truth = write_simulation(simulation, args.out)
    t = simulation.truth
    print(f"{t['events']} events ({t['valid_events']} valid) -> {events}")
    print(f"dead letters expected: {t['dead_letter_reasons']}")
    for a in t["anomalies"]:
        alert = ("alert" if a["expect_alert"]
                 else "no alert (benign)" if a["benign"] else "no alert (control)")
        print(f"  {a['kind']:<12} {len(a['entities']):>3} entities "
              f"{a['start_ms']}..{a['end_ms']} -> {alert}")
    print(f"ground truth -> {truth}")
    return 0
