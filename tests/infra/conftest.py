"""Fixtures for the tests of the CDK app: the synthesised template and a moto deployment of it.

``make test`` synthesises the template first (``make infra-check`` → ``make infra``); a run of
pytest alone builds it if ``dist/cloudformation/`` has none. The deployment goes to a moto
server of this session's own, on a free port, stopped at the end (``moto_endpoint``, in
``tests/conftest.py``): the shared one on 4566 keeps the hand-made local stack the other tests
use. ``cdk/`` holds the CDK assertion tests, which need aws-cdk-lib and run in ``.venv-infra``
(``make infra-check``), not here.
"""

from __future__ import annotations

import json
import logging
import subprocess
import sys
from pathlib import Path

import pytest

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
