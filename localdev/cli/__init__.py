"""The ``clicksentry`` console command.

Each sub-command lives in its own module under :mod:`localdev.cli` with two functions,
``add_arguments(parser)`` and ``main(args) -> int``. Modules are imported only when their
command runs, so ``clicksentry alerts`` never imports PyFlink.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from typing import NamedTuple


class Command(NamedTuple):
    """One sub-command: its name, the module that implements it, and a one-line help."""

    name: str
    module: str
    help: str


COMMANDS: tuple[Command, ...] = (
    Command("run", "localdev.cli.run", "run the anomaly job (embedded or Kinesis source)"),
    Command("simulate", "localdev.cli.simulate", "write simulated click events + ground truth"),
    Command("bench", "localdev.cli.bench", "measure the job against a pure-SQL baseline"),
    Command("stack", "localdev.cli.stack", "start/stop local kinesis-mock and moto server"),
    Command("produce", "localdev.cli.produce", "send simulated events to a Kinesis stream"),
    Command("alerts", "localdev.cli.alerts", "run the alerting Lambda locally on a stream"),
    Command("score-series", "localdev.cli.score_series", "score NAB-style CSV series"),
    Command("evaluate", "localdev.cli.evaluate", "NAB-style evaluation of scored series"),
    Command("replay", "localdev.cli.replay", "run the job over archived raw events (backfill)"),
    Command("train", "localdev.cli.train", "fit the supervised forest on the archive + labels"),
    Command("labels", "localdev.cli.labels", "write the simulator's truth as a labels file"),
)


def main(argv: list[str] | None = None) -> int:
    """Dispatch ``clicksentry COMMAND ...`` to the command's module."""
    argv = sys.argv[1:] if argv is None else argv
    top = argparse.ArgumentParser(prog="clicksentry", description=__doc__.splitlines()[0])
    top.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = top.add_subparsers(dest="command", metavar="COMMAND", required=True)
    parsers = {c.name: sub.add_parser(c.name, help=c.help, description=c.help) for c in COMMANDS}
    name = next((a for a in argv if a in parsers), None)
    if name is not None:
        module = importlib.import_module(next(c.module for c in COMMANDS if c.name == name))
        module.add_arguments(parsers[name])
    args = top.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    return int(module.main(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
