"""Fixtures for the tests of the CDK app: the synthesised template and a moto deployment of it.

``make test`` synthesises the template first (``make infra-check`` → ``make infra``); a run of
pytest alone builds it if ``dist/cloudformation/`` has none. The deployment goes to a moto
server of this session's own, on a free port, stopped at the end: the shared one on 4566 keeps
the hand-made local stack the other tests use. ``cdk/`` holds the CDK assertion tests, which
need aws-cdk-lib and run in ``.venv-infra`` (``make infra-check``), not here.
"""

from __future__ import annotations

import json
import logging
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

ROOT = Path(__file__).resolve().parents[2]
INFRA = ROOT / "deploy" / "infra"
ASSEMBLY = ROOT / "dist" / "cloudformation"
TEMPLATE = ASSEMBLY / "Clicksentry.template.json"
if str(INFRA) not in sys.path:
    sys.path.insert(0, str(INFRA))

from clicksentry_infra import local_deploy  # noqa: E402

try:
    import aws_cdk  # noqa: F401
except ImportError:
    collect_ignore = ["cdk"]

log = logging.getLogger(__name__)
_deploy_summaries: list[str] = []


@pytest.fixture(scope="session")
def assembly() -> Path:
    """``dist/cloudformation/`` as ``make infra`` writes it (built here if missing)."""
    if not TEMPLATE.exists():
        subprocess.run(["make", "infra"], cwd=ROOT, check=True, timeout=1800)
    return ASSEMBLY


@pytest.fixture(scope="session")
def template(assembly) -> dict:
    """The synthesised CloudFormation template."""
    return json.loads((assembly / TEMPLATE.name).read_text())


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def moto_endpoint(tmp_path_factory) -> Iterator[str]:
    """A moto server of this session's own; stopped (by its PID) at the end."""
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


@pytest.fixture(scope="session")
def deployed(assembly, moto_endpoint) -> local_deploy.DeployedStack:
    """The synthesised stack, created in moto by its CloudFormation (as ``cdk deploy`` would)."""
    stack = local_deploy.deploy(assembly, moto_endpoint)
    _deploy_summaries.append(stack.summary())
    return stack


def pytest_terminal_summary(terminalreporter):
    """Print what moto created from the template."""
    for line in _deploy_summaries:
        terminalreporter.write_line(line)
