"""``clicksentry score-series INPUT_DIR --out OUT_DIR [--detector NAME]``.

Scores every ``timestamp,value`` CSV below INPUT_DIR causally, one independent detector per file,
and writes OUT_DIR/<same relative path> with ``timestamp,value,anomaly_score,is_anomaly``.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from models.registry import DEFAULT_DETECTOR, DETECTOR_NAMES
from models.series import score_file, series_detector

log = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Declare the command's arguments."""
    parser.add_argument("input_dir", type=Path, metavar="INPUT_DIR", help="folder of CSV series")
    parser.add_argument("--out", type=Path, required=True, help="folder for the scored CSVs")
    parser.add_argument(
        "--detector",
        default=DEFAULT_DETECTOR,
        choices=DETECTOR_NAMES,
        help=f"detector preset (default: {DEFAULT_DETECTOR}, the job's default)",
    )


def main(args: argparse.Namespace) -> int:
    """Score the series; returns 2 when INPUT_DIR holds no CSV."""
    sources = sorted(args.input_dir.rglob("*.csv"))
    if not sources:
        print(f"no CSV files below {args.input_dir}")
        return 2
    for source in sources:
        relative = source.relative_to(args.input_dir)
        flagged = score_file(series_detector(args.detector), source, args.out / relative)
        print(f"{relative}: {flagged} rows flagged")
    print(f"scored {len(sources)} files with {args.detector} into {args.out}")
    return 0
