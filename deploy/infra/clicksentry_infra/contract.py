"""What the stack takes from the job and the alerting code: one source of truth, never copied.

The CDK app runs in its own virtualenv (``.venv-infra``: aws-cdk-lib, cfn-lint and checkov pin
versions PyFlink's cannot share). The job's settings table (``flink_jobs.config.SETTINGS``), its
click schema (``flink_jobs.events``) and its archive columns (``udfs.scored_window`` and
``flink_jobs.tables``) import PyFlink and the detectors, which live in the project's virtualenv.
So :func:`load` imports them where it can, and otherwise runs this file with the project's
interpreter (``CLICKSENTRY_PYTHON``, default ``.venv/bin/python``), which prints the same
contract as JSON: the values are read from the modules on every synth, never written down here.

Run directly (``.venv/bin/python deploy/infra/clicksentry_infra/contract.py``) it prints the
contract.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

ROOT = Path(__file__).resolve().parents[3]
PROJECT_PYTHON = ROOT / ".venv" / "bin" / "python"
RUN_OPTIONS_FILE = ROOT / "deploy" / "managed_flink" / "application_properties.json"


def build() -> dict[str, Any]:
    """Import the job's modules and return the contract (needs the project's virtualenv)."""
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    from flink_jobs import config, events, tables
    from udfs import operator_metrics, scored_window

    groups = json.loads(RUN_OPTIONS_FILE.read_text(encoding="utf-8"))
    run_options = next(
        g["PropertyMap"] for g in groups if g["PropertyGroupId"] == config.RUN_OPTIONS_GROUP
    )
    return {
        "run_options_group": config.RUN_OPTIONS_GROUP,
        "run_options": run_options,
        "settings": [
            {"group": s.group, "key": s.key, "default": s.default, "help": s.help}
            for s in config.SETTINGS
        ],
        "click": {
            "fields": [
                {"name": f.name, "sql_type": f.sql_type, "required": f.required, "doc": f.doc}
                for f in events.FIELDS
            ],
            "actions": list(events.ACTIONS),
            "ad_actions": list(events.AD_ACTIONS),
            "max_chars": dict(events.MAX_CHARS),
            "entity_id_fields": list(events.ENTITY_ID_FIELDS),
            "forbidden_id_chars": events.FORBIDDEN_ID_CHARS,
            "max_payload_chars": events.MAX_PAYLOAD_CHARS,
        },
        "metrics": {
            "counters": list(operator_metrics.JOB_COUNTERS),
            "gauges": list(operator_metrics.JOB_GAUGES),
        },
        "archive": {
            "scored_columns": [
                [name, sql_type] for name, _, sql_type in scored_window.SCORED_COLUMNS
            ],
            "raw_event_columns": [list(c) for c in tables.RAW_EVENT_COLUMNS],
            "parquet_codec": tables.ARCHIVE_CODEC,
            "dead_letter_columns": [list(c) for c in tables.DEAD_LETTER_COLUMNS],
            "partition_columns": [list(c) for c in tables.PARTITION_COLUMNS],
        },
    }


def load(python: str | os.PathLike[str] | None = None) -> dict[str, Any]:
    """The contract: built here if the job's modules import, else by the project's interpreter."""
    try:
        import flink_jobs.config  # noqa: F401
        import udfs.scored_window  # noqa: F401
    except ImportError:
        pass
    else:
        return build()
    interpreter = python or os.environ.get("CLICKSENTRY_PYTHON") or PROJECT_PYTHON
    log.info("reading the job's contract with %s", interpreter)
    result = subprocess.run(
        [str(interpreter), __file__],
        check=True,
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={**os.environ, "IS_LOCAL": "1"},
        timeout=300,
    )
    return json.loads(result.stdout)


if __name__ == "__main__":
    json.dump(build(), sys.stdout, indent=1)
    sys.stdout.write("\n")
