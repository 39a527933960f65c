"""clicksentry on Amazon Managed Service for Apache Flink: the ``python`` run option (``main.py``).

The zip holds this file at its root, the connector jar in ``lib/`` (run option ``jarfile``) and
every Python package the job needs in ``dep/`` (run option ``pyFiles``). On the service the
properties come from ``/etc/flink/application_properties.json`` and ``main()`` returns once the
job is submitted. With ``IS_LOCAL`` set (the artefact test, a laptop) the properties come from
``CLICKSENTRY_PROPERTIES``, the zip's own ``dep/`` and ``lib/`` are used, the job runs on a local
minicluster and ``main()`` waits for it; local emulator endpoints get the credentials of the
environment (``AWS_ACCESS_KEY_ID`` / ``AWS_SECRET_ACCESS_KEY``).
"""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
DEP = HERE / "dep"


def main() -> int:
    """Load the configuration and start the job; exit 2 naming the setting if it is wrong."""
    local = bool(os.environ.get("IS_LOCAL"))
    if local:
        # On the service pyFiles puts dep/ on the path of the client and of the Python workers.
        sys.path.insert(0, str(DEP))
        os.environ["PYTHONPATH"] = os.pathsep.join(
            p for p in (str(DEP), os.environ.get("PYTHONPATH", "")) if p
        )
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )

    from flink_jobs import kinesis_job, kinesis_tables
    from flink_jobs.config import ConfigError, load_config

    log = logging.getLogger("clicksentry")
    log.info("packages from %s", Path(kinesis_job.__file__).resolve().parents[1])

    try:
        config = load_config()
        if config.get("job", "source") != "kinesis":
            raise ConfigError("job.source: must be kinesis on Managed Flink")
        result = kinesis_job.start(config, local, _local_credentials() if local else None)
    except (ConfigError, kinesis_tables.SettingError) as err:
        log.error("configuration error: %s", err)
        print(f"clicksentry: configuration error: {err}", file=sys.stderr)
        return 2
    if local:
        result.wait()
    return 0


def _local_credentials() -> dict[str, str] | None:
    """Keys from the environment for local endpoints (``None``: the default chain)."""
    if "AWS_ACCESS_KEY_ID" not in os.environ:
        return None
    return {
        "aws_access_key_id": os.environ["AWS_ACCESS_KEY_ID"],
        "aws_secret_access_key": os.environ.get("AWS_SECRET_ACCESS_KEY", ""),
    }


if __name__ == "__main__":
    sys.exit(main())
