"""``clicksentry labels``: the simulator's ground truth as a labels file for retraining."""

from __future__ import annotations

import argparse
import json
from collections import Counter
from pathlib import Path

from localdev.labels import labels_csv, labels_from_truth


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``clicksentry labels``."""
    parser.add_argument("--truth", type=Path, default=Path("out/sim/truth.json"),
                        help="the simulator's ground truth")
    parser.add_argument("--out", type=Path, default=Path("out/labels.csv"),
                        help="the labels file to write (docs/retraining.md)")


def main(args: argparse.Namespace) -> int:
    """Convert and write; print what was written."""
    if not args.truth.exists():
        print(f"no ground truth at {args.truth}; run `clicksentry simulate` or `make run` first")
        return 2
    rows = labels_from_truth(json.loads(args.truth.read_text(encoding="utf-8")))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(labels_csv(rows), encoding="utf-8")
    counts = Counter(row["label"] for row in rows)
    print(f"{len(rows)} labelled spans ({dict(sorted(counts.items()))}) -> {args.out}")
    return 0
