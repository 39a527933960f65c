"""``clicksentry evaluate --data DIR --labels combined_windows.json --scores DIR [DIR ...]``.

NAB-style evaluation (:mod:`localdev.nab_evaluation`) of series scored by
``clicksentry score-series``: per cost profile, the normalised score with the detector's own
``is_anomaly`` flags and with the best single threshold on ``anomaly_score`` over all files.
Given several scored folders (one per candidate setting), it also prints what choosing among
them is worth on data the choice did not see: leave-one-category-out, by own flags.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from localdev.nab_evaluation import cross_validate, evaluate


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Declare the command's arguments."""
    parser.add_argument("--data", type=Path, required=True, help="folder of the original series")
    parser.add_argument("--labels", type=Path, required=True, help="NAB combined_windows.json")
    parser.add_argument(
        "--scores",
        type=Path,
        nargs="+",
        required=True,
        help="folder of scored series; several: candidates, cross-validated by category",
    )
    parser.add_argument("--json", type=Path, help="also write the results as JSON here")


def main(args: argparse.Namespace) -> int:
    """Print the NAB table of each scored folder, then the cross-validation of several."""
    results = {}
    for scores in args.scores:
        results[str(scores)] = evaluate(args.data, args.labels, scores)
        if len(args.scores) > 1:
            print(scores)
        print(f"{'profile':<20} {'own flags':>10} {'best thr.':>10} {'threshold':>10}")
        for name, r in results[str(scores)].items():
            print(
                f"{name:<20} {r['own_flags']:>10.2f} {r['best_threshold']:>10.2f}"
                f" {r['threshold']:>10.4f}"
            )
    if len(args.scores) == 1:
        report: dict = results[str(args.scores[0])]
    else:
        validated = cross_validate(args.data, args.labels, args.scores)
        print("leave one category out, own flags (the candidate chosen without each category)")
        for name, r in validated.items():
            chosen = ", ".join(f"{c}: {path}" for c, path in r["chosen"].items())
            print(f"{name:<20} {r['own_flags']:>10.2f}  {chosen}")
        report = {"candidates": results, "cross_validation": validated}
    if args.json:
        args.json.write_text(json.dumps(report, indent=2) + "\n")
    return 0
