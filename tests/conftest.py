"""Shared fixtures: ``aws_stack``, the local AWS emulators (kinesis-mock + moto server), and
``moto_endpoint``, a moto server of the session's own on a free port."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest
from botocore.exceptions import BotoCoreError, ClientError

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


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def moto_endpoint(tmp_path_factory) -> Iterator[str]:
    """A moto server of this session's own on a free loopback port; stopped (by its PID) at the
    end. The shared one on 4566 keeps the hand-made local stack the other tests use."""
    port = _free_port()
    endpoint = f"http://127.0.0.1:{port}"
    log_file = tmp_path_factory.mktemp("moto") / "moto.log"
    with log_file.open("wb") as out:
        proc = subprocess.Popen(
            [
                str(Path(sys.executable).with_name("moto_server")),
                "-H",
                "127.0.0.1",
                "-p",
                str(port),
            ],
            env={**os.environ, "MOTO_ACCOUNT_ID": "000000000000"},
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    s3 = boto3.client(
        "s3",
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id="clicksentry",
        aws_secret_access_key="clicksentry",
    )
    deadline = time.monotonic() + 60
    while True:
        try:
            s3.list_buckets()
            break
        except (BotoCoreError, ClientError) as error:
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(
                    f"moto server did not start: {log_file.read_text()[-2000:]}"
                ) from error
            time.sleep(0.2)
    try:
        yield endpoint
    finally:
        os.kill(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()


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
