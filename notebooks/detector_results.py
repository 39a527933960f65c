"""Reproduce the numbers in docs/detectors.md (run from the repo root with the venv's python).

    .venv/bin/python notebooks/detector_results.py [nab|speed|simulator|river] ...

nab: NAB-dev scores per detector and profile (own flags, best threshold); speed: scorings/s and
state bytes through WindowDetector.process; simulator: detections on the job's simulated stream;
river: river's univariate detectors on NAB-dev (best threshold).
"""

import sys
from pathlib import Path

from localdev.benchmarks.detectors import (
    measure_detectors,
    nab_scores,
    river_univariate_nab,
    simulator_detection,
)
from models.registry import DEFAULT_DETECTOR, DETECTOR_NAMES

#: The labelled NAB subset, in shared/ beside the project folder.
NAB = Path(__file__).resolve().parents[2] / "shared" / "data" / "nab-dev"
PROFILES = ("standard", "reward_low_FP_rate", "reward_low_FN_rate")


def nab():
    variants = {name: (name, None) for name in DETECTOR_NAMES}
    results = nab_scores(NAB / "data", NAB / "combined_windows.json", Path("out/nab"), variants)
    print("| detector | " + " | ".join(f"{p} own / best" for p in PROFILES) + " |")
    print("|---|" + "---|" * len(PROFILES))
    for label, r in results.items():
        cells = [f"{r[p]['own_flags']:.1f} / {r[p]['best_threshold']:.1f}" for p in PROFILES]
        print(f"| {label} | " + " | ".join(cells) + " |")


def speed():
    results = measure_detectors(DETECTOR_NAMES, n_entities=500, windows=30)
    print("| detector | scorings/s per core (CPU time) | scorings/s wall clock |"
          " bytes per entity | shared bytes |")
    print("|---|---|---|---|---|")
    for name in DETECTOR_NAMES:
        print(f"| {name} | {results[name + '.scorings_per_cpu_s']:,.0f} | "
              f"{results[name + '.scorings_per_s']:,.0f} | "
              f"{results[name + '.entity_state_bytes']:,.0f} | "
              f"{results[name + '.shared_state_bytes']:,.0f} |")


def simulator():
    print("| detector | click_flood | broken_ad | page_outage | bot_crawl | slow_drift flags |"
          " all flags | false flags | precision |")
    print("|---|---|---|---|---|---|---|---|---|")
    for name in DETECTOR_NAMES:
        r = simulator_detection(name)
        kinds = [f"{'yes' if r[k]['detected'] else 'no'}: {r[k]['flags']:.0f} flags, "
                 f"{r[k]['entities_flagged']:.0f}/{r[k]['entities']:.0f} entities"
                 for k in ("click_flood", "broken_ad", "page_outage", "bot_crawl")]
        print(f"| {name}{' (default)' if name == DEFAULT_DETECTOR else ''} | " + " | ".join(kinds)
              + f" | {r['slow_drift']['false_flags']:.0f} | {r['all']['flags']:.0f} | "
              f"{r['all']['false_flags']:.0f} | {r['all']['precision']:.2f} |")


def river():
    results = river_univariate_nab(NAB / "data", NAB / "combined_windows.json")
    print("| river detector | " + " | ".join(PROFILES) + " |")
    print("|---|" + "---|" * len(PROFILES))
    for label, r in results.items():
        print(f"| {label} | " + " | ".join(f"{r[p]:.1f}" for p in PROFILES) + " |")


if __name__ == "__main__":
    for command in sys.argv[1:] or ["nab", "speed", "simulator", "river"]:
        {"nab": nab, "speed": speed, "simulator": simulator, "river": river}[command]()
