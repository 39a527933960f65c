"""The shipped zips hold the runtime only: no CLI, simulator, emulator stack, producer,
benchmarks or local Lambda runner.

GIVEN the Managed Flink zip and the alerting Lambda's zip, built as ``make package`` builds them;
THEN each holds its runtime packages file for file as in the checkout, and nothing of the local
tooling (``localdev/``).
"""

from __future__ import annotations

import zipfile
from pathlib import Path

ROOT = Path(__file__).parents[2]
TOOLING = ROOT / "localdev"
#: Module file names that exist only in the tooling (stack.py, simulator.py, cli/, …).
TOOLING_NAMES = {p.name for p in TOOLING.rglob("*.py") if p.name != "__init__.py"} | {"cli"}
PROJECT_PACKAGES = {"flink_jobs", "udfs", "models", "alerting", "localdev"}


def project_files(package: str) -> set[str]:
    return {
        p.relative_to(ROOT).as_posix()
        for p in (ROOT / package).rglob("*.py")
        if "__pycache__" not in p.parts
    }


def zipped_python(zip_path: Path, prefix: str = "") -> set[str]:
    with zipfile.ZipFile(zip_path) as archive:
        return {
            name.removeprefix(prefix)
            for name in archive.namelist()
            if name.startswith(prefix) and name.endswith(".py")
        }


def ours(names: set[str]) -> set[str]:
    return {name for name in names if name.split("/")[0] in PROJECT_PACKAGES}


def tooling_in(names: set[str]) -> set[str]:
    return {
        name for name in ours(names)
        if name.startswith("localdev/") or TOOLING_NAMES & set(name.split("/"))
    }


def test_the_tooling_names_are_the_ones_the_issue_lists():
    assert {"stack.py", "simulator.py", "producer.py", "run_summary.py", "lambda_runner.py",
            "cli"} <= TOOLING_NAMES
    assert (TOOLING / "benchmarks").is_dir()


def test_the_managed_flink_zip_ships_the_runtime_packages_and_no_tooling(managed_flink_zip):
    # WHEN the zip's dep/ is listed
    shipped = zipped_python(managed_flink_zip, "dep/")
    # THEN the three runtime packages are there exactly, and no tooling module
    runtime = project_files("flink_jobs") | project_files("udfs") | project_files("models")
    assert ours(shipped) == runtime
    assert not tooling_in(shipped)
    assert "main.py" in zipped_python(managed_flink_zip)


def test_the_lambda_zip_ships_the_alerting_package_and_no_tooling(lambda_zip):
    shipped = zipped_python(lambda_zip)
    assert ours(shipped) == project_files("alerting")
    assert "alerting/handler.py" in shipped
    assert not tooling_in(shipped)
