"""``clicksentry evaluate --data DIR --labels combined_windows.json --scores DIR``.

NAB-style evaluation (:mod:`localdev.nab_evaluation`) of series scored by
``clicksentry score-series``: per cost profile, the normalised score with the detector's own
``is_anomaly`` flags and with the best single threshold on ``anomaly_score`` over all files.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from localdev.nab_evaluation import evaluate


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Declare the command's arguments."""
    parser.add_argument("--data", type=Path, required=True, help="folder of the original series")
    parser.add_argument("--labels", type=Path, required=True, help="NAB combined_windows.json")
    parser.add_argument("--scores", type=Path, required=True, help="folder of scored series")
    parser.add_argument("--json", type=Path, help="also write the results as JSON here")


def main(args: argparse.Namespace) -> int:
    """Print the NAB table."""
    results = evaluate(args.data, args.labels, args.scores)
    print(f"{'profile':<20} {'own flags':>10} {'best thr.':>10} {'threshold':>10}")
    for name, r in results.items():
        print(
            f"{name:<20} {r['own_flags']:>10.2f} {r['best_threshold']:>10.2f}"
            f" {r['threshold']:>10.4f}"
        )
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")
    return 0
