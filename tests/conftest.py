"""Shared fixtures: ``aws_stack``, the local AWS emulators (kinesis-mock + moto server)."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from localdev import stack

ROOT = Path(__file__).parents[1]


@pytest.fixture(scope="session")
def aws_stack() -> Iterator[stack.LocalStack]:
    """The local stack with every resource created; reused if already up, and only what this
    session started is stopped at its end.

    Yields a :class:`localdev.stack.LocalStack`: endpoints, region, dummy credentials, stream
    names and ARNs, bucket, topic ARN, queue URLs/ARNs, table names, and ``client(service)``.
    """
    local = stack.up()
    try:
        yield local
    finally:
        stack.down(local.started)


def pytest_configure(config):
    """Ready the PyFlink JVM (started later, once per process) for the local emulators."""
    from flink_jobs import aws_connectors

    aws_connectors.prepare_local_jvm(stack.ACCESS_KEY_ID, stack.SECRET_ACCESS_KEY)


@pytest.fixture
def subprocess_env():
    """Environment for a child ``clicksentry`` or job process.

    After a Flink job has run a Python worker inside this process (PyFlink's loopback mode),
    PyFlink leaves ``PYFLINK_GATEWAY_DISABLED`` set here; a child that inherited it could not
    start its own Flink gateway.
    """
    return {k: v for k, v in os.environ.items() if k != "PYFLINK_GATEWAY_DISABLED"}


def _build(script: str, output: Path) -> Path:
    subprocess.run(
        [sys.executable, ROOT / "deploy" / script, "--output", output], check=True, timeout=900
    )
    return output


@pytest.fixture(scope="session")
def managed_flink_zip(tmp_path_factory) -> Path:
    """``dist/clicksentry-managed-flink.zip`` as ``make package`` builds it (once a session), or
    the zip ``CLICKSENTRY_TEST_MANAGED_FLINK_ZIP`` names (one built before, e.g. by
    ``make package``: the session then tests that artefact as it is)."""
    prebuilt = os.environ.get("CLICKSENTRY_TEST_MANAGED_FLINK_ZIP")
    if prebuilt:
        return Path(prebuilt)
    return _build("package_flink.py", tmp_path_factory.mktemp("dist") / "managed-flink.zip")


@pytest.fixture(scope="session")
def lambda_zip(tmp_path_factory) -> Path:
    """``dist/clicksentry-alerts-lambda.zip`` as ``make package`` builds it (once a session)."""
    return _build("package_lambda.py", tmp_path_factory.mktemp("dist") / "alerts-lambda.zip")
