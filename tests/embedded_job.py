"""Run the job on the embedded minicluster over a file of payloads and read back its records.

Shared by the tests that compare runs: the determinism test (run to run, parallelism 1 and 2) and
the Kinesis end-to-end test (the same input through Kinesis and S3 gives what it gives here).
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path

from flink_jobs.config import load_config
from flink_jobs.job import LocalOutputs, create_environment, define_pipeline, local_tables
from localdev.part_files import read_records

#: The outputs compared, by name.
OUTPUTS = ("scored_windows", "anomalies", "dead_letters")


def submit_embedded(
    events_file: Path,
    root: Path,
    parallelism: int,
    groups: Mapping[str, Mapping[str, str]] | None = None,
    cluster_options: Mapping[str, str] | None = None,
):
    """Submit the job over ``events_file`` (``groups`` override settings, ``cluster_options``
    configure the minicluster) with outputs under ``root``; returns its ``TableResult`` and
    its :class:`LocalOutputs`."""
    os.environ["IS_LOCAL"] = "1"
    settings = {group: dict(values) for group, values in (groups or {}).items()}
    settings["job"] = {**settings.get("job", {}), "source": "embedded",
                       "parallelism": str(parallelism), "out_dir": str(root),
                       "checkpoint_dir": str(root / "checkpoints")}
    config = load_config(groups=settings)
    outputs = LocalOutputs(root)
    t_env = create_environment(config, local=True, cluster_options=cluster_options)
    return define_pipeline(t_env, config, local_tables(events_file, outputs)).execute(), outputs


def run_embedded(
    events_file: Path,
    root: Path,
    parallelism: int,
    groups: Mapping[str, Mapping[str, str]] | None = None,
) -> dict[str, list[dict]]:
    """Run the job over ``events_file`` (``groups`` override settings) with outputs under
    ``root``; returns each of :data:`OUTPUTS`, and the ``entity_evictions``, as a list of
    records."""
    result, outputs = submit_embedded(events_file, root, parallelism, groups)
    result.wait()
    return {
        name: list(read_records(getattr(outputs, name)))
        for name in (*OUTPUTS, "entity_evictions")
    }


def canonical(records: list[dict]) -> list[str]:
    """Records as sorted canonical JSON: equal lists mean equal outputs, order aside."""
    return sorted(json.dumps(r, sort_keys=True) for r in records)
