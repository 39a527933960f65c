"""The CDK app, synthesised once for the assertion tests (in ``.venv-infra``)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
sys.path.insert(0, str(ROOT / "deploy" / "infra"))

import app as infra_app  # noqa: E402
from aws_cdk import assertions  # noqa: E402


@pytest.fixture(scope="session")
def stack(tmp_path_factory):
    """The clicksentry stack as ``make infra`` builds it (zips from ``make package``)."""
    _, stack = infra_app.build_app(outdir=str(tmp_path_factory.mktemp("cdk.out")))
    return stack


@pytest.fixture(scope="session")
def template(stack) -> assertions.Template:
    """CDK's assertion view of the synthesised template."""
    return assertions.Template.from_stack(stack)
