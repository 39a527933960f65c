"""Start the job graph on Kinesis and S3: locally against emulators, or on Managed Flink.

The graph is :func:`flink_jobs.job.define_pipeline`; only the tables differ
(:func:`flink_jobs.kinesis_tables.job_tables`). Before any Flink environment exists the settings
are validated and the services asked (:func:`~flink_jobs.kinesis_tables.check_reachable`), so a
wrong ARN, endpoint or bucket fails naming its setting instead of as a restarting job.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

from flink_jobs import aws_connectors, kinesis_tables
from flink_jobs.job import create_environment, define_pipeline

log = logging.getLogger(__name__)


def start(config, local: bool, credentials: Mapping[str, str] | None = None):
    """Validate, check the services, build the environment and submit the job.

    Args:
        config: the loaded :class:`~flink_jobs.config.Config` (``job.source = kinesis``).
        local: running on this machine (minicluster, this virtualenv's Python, the connector
            jar from :mod:`flink_jobs.aws_connectors`); on Managed Flink the ``jarfile`` run
            option provides the jar.
        credentials: ``aws_access_key_id`` and ``aws_secret_access_key`` for local emulator
            endpoints (the caller's, e.g. the local stack's dummy keys); ``None`` = the default
            credential chain, as on Managed Flink.

    Returns the ``TableResult`` of the submitted statement set; on Managed Flink ``main()`` returns
    right after, locally the caller waits on it or cancels its job.
    """
    settings = kinesis_tables.settings_from(config.values)
    credentials = dict(credentials or {})
    kinesis_tables.check_reachable(settings, credentials)
    if local and credentials:
        aws_connectors.prepare_local_jvm(
            credentials["aws_access_key_id"], credentials["aws_secret_access_key"]
        )
    t_env = create_environment(config, local)
    if local:
        options = {}
        if settings.s3_endpoint:
            options = aws_connectors.s3_options(
                settings.s3_endpoint,
                credentials["aws_access_key_id"],
                credentials["aws_secret_access_key"],
            )
        aws_connectors.initialize_filesystems(options)
    statements = define_pipeline(t_env, config, kinesis_tables.job_tables(settings))
    log.info(
        "submitting: %s -> %s, archive %s",
        settings.clicks.arn,
        settings.anomalies.arn,
        settings.archive,
    )
    return statements.execute()
