"""``clicksentry score-series INPUT_DIR --out OUT_DIR [--detector NAME] [--params JSON]``.

Scores every ``timestamp,value`` CSV below INPUT_DIR causally, one independent detector per file,
and writes OUT_DIR/<same relative path> with ``timestamp,value,anomaly_score,is_anomaly``.
``--params`` overrides the preset's parameters, as ``scoring.detector_params`` does in the job
(e.g. ``'{"threshold_params": {"floor": 0.3}}'``).
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from flink_jobs.config import json_object
from models.registry import DEFAULT_DETECTOR, DETECTOR_NAMES, detector_params
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
    parser.add_argument(
        "--params",
        type=json_object,
        default={},
        help="JSON object of detector parameters (KDA's names too), as scoring.detector_params",
    )


def main(args: argparse.Namespace) -> int:
    """Score the series; returns 2 when INPUT_DIR holds no CSV."""
    sources = sorted(args.input_dir.rglob("*.csv"))
    if not sources:
        print(f"no CSV files below {args.input_dir}")
        return 2
    try:
        params = detector_params(args.detector, args.params)
        series_detector(args.detector, params)
    except ValueError as e:
        print(f"--params: {e}")
        return 2
    for source in sources:
        relative = source.relative_to(args.input_dir)
        flagged = score_file(series_detector(args.detector, params), source, args.out / relative)
        print(f"{relative}: {flagged} rows flagged")
    print(f"scored {len(sources)} files with {args.detector} into {args.out}")
    return 0
