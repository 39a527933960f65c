"""``clicksentry train``: fit the supervised forest on the job's archive and the ground truth."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from localdev.part_files import read_records
from localdev.truth import ground_truth_labels
from models import artifacts
from models.features import FEATURE_NAMES
from models.registry import DEFAULT_DETECTOR, DETECTOR_NAMES, make_detector
from models.training import archived_batches, labelled_inputs, train_supervised_forest


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``clicksentry train``."""
    parser.add_argument("--windows", type=Path, default=Path("out/scored-windows"),
                        help="the job's scored-window archive (dt=…/hour=… JSON lines)")
    parser.add_argument("--truth", type=Path, default=Path("out/sim/truth.json"),
                        help="the simulator's ground truth")
    parser.add_argument("--artifact", type=Path,
                        default=Path("out/models/supervised-forest.skops"),
                        help="where to write the skops artefact")
    parser.add_argument("--detector", default=DEFAULT_DETECTOR, choices=DETECTOR_NAMES,
                        help="the detector whose scorer inputs the forest learns")


def main(args: argparse.Namespace) -> int:
    """Rebuild the detector's inputs from the archive, label them, fit, save, report."""
    windows = list(read_records(args.windows))
    if not windows:
        print(f"no scored windows under {args.windows}; run `clicksentry run` first")
        return 2
    truth = json.loads(args.truth.read_text(encoding="utf-8"))
    batches, ends = archived_batches(windows, FEATURE_NAMES)
    labels = ground_truth_labels(batches, ends, truth)
    rows, ys = labelled_inputs(make_detector(args.detector), batches, labels)
    args.artifact.parent.mkdir(parents=True, exist_ok=True)
    scorer = train_supervised_forest(rows, ys, FEATURE_NAMES, artifact=args.artifact)
    scores = scorer.score_many([dict(zip(FEATURE_NAMES, r, strict=True)) for r in rows])
    flagged = scores >= 0.5
    tp = int(np.sum(flagged & (ys == 1)))
    print(f"{len(windows)} archived windows, {len(set(ends))} window ends, "
          f"{len(rows)} training rows ({int(ys.sum())} labelled anomalous)")
    print(f"fit on the training rows: precision {tp / max(1, flagged.sum()):.2f}, "
          f"recall {tp / max(1, ys.sum()):.2f} at probability 0.5")
    print(f"artefact -> {args.artifact}")
    print(f"sha256      {artifacts.file_sha256(args.artifact)}"
          "  (pin it as scorer_params.artifact_sha256)")
    return 0
