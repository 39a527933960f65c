"""CDK app: ``python deploy/infra/app.py`` synthesises the clicksentry stack.

Reads the job's contract (settings table, click schema, archive columns) through
:mod:`clicksentry_infra.contract`, the zips ``make package`` built, and writes the cloud assembly
— ``Clicksentry.template.json`` with its assets — to ``dist/cloudformation/`` (``--outdir``).
``cdk deploy --app dist/cloudformation`` deploys exactly that (docs/deploy.md).

Context (``-c key=value`` with the CDK CLI, or ``--context key=value`` here): ``deadManMinutes``
(default 10), the minutes without a scored window, while clicks arrive, that page the operator.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path

import aws_cdk as cdk

sys.path.insert(0, str(Path(__file__).resolve().parent))

from clicksentry_infra import contract
from clicksentry_infra.stack import ClicksentryStack

ROOT = Path(__file__).resolve().parents[2]
DIST = ROOT / "dist"
FLINK_ZIP = DIST / "clicksentry-managed-flink.zip"
LAMBDA_ZIP = DIST / "clicksentry-alerts-lambda.zip"
STACK = "Clicksentry"

log = logging.getLogger("infra")


def build_app(
    outdir: str | None = None,
    flink_zip: Path = FLINK_ZIP,
    lambda_zip: Path = LAMBDA_ZIP,
    context: dict[str, str] | None = None,
) -> tuple[cdk.App, ClicksentryStack]:
    """The CDK app with the clicksentry stack (not yet synthesised)."""
    for zip_file in (flink_zip, lambda_zip):
        if not zip_file.exists():
            raise SystemExit(f"{zip_file} is missing: run `make package` first")
    app = cdk.App(outdir=outdir, context=context or None)
    dead_man = int(app.node.try_get_context("deadManMinutes") or 10)
    stack = ClicksentryStack(
        app,
        STACK,
        contract=contract.load(),
        flink_zip=flink_zip,
        lambda_zip=lambda_zip,
        dead_man_minutes=dead_man,
        description="clicksentry: click-stream anomaly detection (docs/deploy.md)",
        synthesizer=cdk.DefaultStackSynthesizer(generate_bootstrap_version_rule=True),
        env=cdk.Environment(
            account=os.environ.get("CDK_DEFAULT_ACCOUNT"),
            region=os.environ.get("CDK_DEFAULT_REGION"),
        ),
    )
    return app, stack


def main() -> None:
    """Synthesise into ``--outdir`` (the CDK CLI passes it as ``CDK_OUTDIR``)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--outdir", default=os.environ.get("CDK_OUTDIR"))
    parser.add_argument("--context", action="append", default=[], metavar="KEY=VALUE")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    context = dict(item.split("=", 1) for item in args.context)
    app, _ = build_app(outdir=args.outdir, context=context)
    assembly = app.synth()
    for stack in assembly.stacks:
        log.info("synthesised %s", Path(assembly.directory) / stack.template_file)


if __name__ == "__main__":
    main()
