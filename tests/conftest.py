"""Shared fixtures: ``aws_stack``, the local AWS emulators (kinesis-mock + moto server)."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from flink_jobs import stack


@pytest.fixture(scope="session")
def aws_stack() -> Iterator[stack.LocalStack]:
    """The local stack with every resource created; reused if already up, and only what this
    session started is stopped at its end.

    Yields a :class:`flink_jobs.stack.LocalStack`: endpoints, region, dummy credentials, stream
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
