"""The shipped zips hold the runtime only: no CLI, simulator, emulator stack, producer,
benchmarks or local Lambda runner; and the Managed Flink zip's native code loads on glibc 2.17.

GIVEN the Managed Flink zip and the alerting Lambda's zip, built as ``make package`` builds them;
THEN each holds its runtime packages file for file as in the checkout, and nothing of the local
tooling (``localdev/``);
AND every ELF file in the Flink zip's ``dep/`` needs no symbol version newer than manylinux2014's
(glibc 2.17) and no library it neither ships nor may expect (``deploy/glibc_floor.py``, read in
pure Python and checked against ``objdump``, and shown to flag PyPI's manylinux_2_28 krcf);
AND the krcf it ships (built from its sdist) scores seeded data exactly as PyPI's wheel does.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import subprocess
import sys
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


# --- native code: every ELF file in dep/ loads on the service's oldest glibc ----------------------

def _load(name: str):
    spec = importlib.util.spec_from_file_location(name, ROOT / "deploy" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


glibc_floor = _load("glibc_floor")
#: Packages whose PyPI wheels for the pinned versions need glibc 2.28: dep/ has them built from
#: their sdists (deploy/build_wheels.py).
BUILT_FROM_SDIST = ("krcf",)


def native_files(zip_path: Path, into: Path, prefix: str = "dep/") -> list[Path]:
    """Extract every ELF file under ``prefix`` of the zip into ``into``; return their paths."""
    with zipfile.ZipFile(zip_path) as archive:
        for name in archive.namelist():
            if name.startswith(prefix) and not name.endswith("/"):
                with archive.open(name) as member:
                    if member.read(4) == b"\x7fELF":
                        archive.extract(name, into)
    return sorted(p for p in (into / prefix).rglob("*") if p.is_file())


def pypi_krcf_library() -> Path:
    """The project venv's krcf extension: PyPI's manylinux_2_28 wheel (constraints.txt's pin)."""
    package = Path(importlib.util.find_spec("krcf").origin).parent
    return next(package.glob("*.so"))


def objdump_needs(path: Path) -> tuple[set[str], set[tuple[str, str]]]:
    """DT_NEEDED and version references as binutils' ``objdump -p`` prints them."""
    out = subprocess.run(["objdump", "-p", path], capture_output=True, text=True, check=True)
    libraries, versions, library = set(), set(), None
    for line in out.stdout.splitlines():
        words = line.split()
        if words[:1] == ["NEEDED"]:
            libraries.add(words[1])
        elif line.strip().startswith("required from "):
            library = line.strip().removeprefix("required from ").rstrip(":")
        elif library and len(words) == 4 and words[0].startswith("0x"):
            versions.add((library, words[3]))
        elif not line.startswith(" "):
            library = None
    return libraries, versions


def test_every_native_file_in_dep_loads_on_glibc_2_17(managed_flink_zip, tmp_path):
    # GIVEN every ELF file (extensions and the libraries wheels bring) in the zip's dep/
    elves = native_files(managed_flink_zip, tmp_path)
    shipped = {p.name for p in elves}
    assert len(elves) > 50
    for package in BUILT_FROM_SDIST:
        assert any(p.suffix == ".so" for p in (tmp_path / "dep" / package).rglob("*"))
    # WHEN each one's DT_NEEDED and .gnu.version_r are read
    problems = {
        p.relative_to(tmp_path).as_posix(): found
        for p in elves
        if (found := glibc_floor.violations(p, shipped, glibc_floor.MANYLINUX2014))
    }
    # THEN none needs a glibc (or libstdc++, libgcc_s) symbol version newer than manylinux2014's,
    # nor a library that is neither a manylinux2014 system library nor shipped beside it
    assert problems == {}
    newest = {glibc_floor.needs(p).newest() for p in elves} - {None}
    assert max(glibc_floor.parse_version(v)[1] for v in newest) <= (2, 17)


def test_the_check_flags_pypis_manylinux_2_28_krcf():
    # GIVEN krcf's extension from PyPI's manylinux_2_28 wheel (the one pip installs here)
    library = pypi_krcf_library()
    # THEN the check names the versions of glibc it needs beyond 2.17, up to 2.28 (statx)
    found = glibc_floor.violations(library, (), glibc_floor.MANYLINUX2014)
    assert glibc_floor.needs(library).newest() == "GLIBC_2.28"
    assert any("GLIBC_2.28 from libc.so.6" in problem for problem in found)
    # AND a library that is neither a system library nor shipped is named
    assert glibc_floor.violations(library, (), glibc_floor.Policy("none", {}, frozenset()))


def test_the_elf_reader_agrees_with_objdump(managed_flink_zip, tmp_path):
    # GIVEN the zip's native files and PyPI's krcf, WHEN read by glibc_floor and by objdump
    for path in [*native_files(managed_flink_zip, tmp_path), pypi_krcf_library()]:
        needs = glibc_floor.needs(path)
        # THEN both read the same needed libraries and version references
        assert (set(needs.libraries), set(needs.versions)) == objdump_needs(path), path


SCORES = """
import json, sys
import krcf, numpy as np

rng = np.random.default_rng(7)
train, probe = rng.normal(size=(400, 3)), np.array([[0.0, 0.0, 0.0], [5.0, 5.0, 5.0], [-3, 0, 9]])
forest = krcf.RandomCutForest({"dimensions": 3, "shingle_size": 1, "num_trees": 50,
    "sample_size": 64, "output_after": 16, "random_seed": 42, "lambda": 1e-5})
for row in train:
    forest.update(row)
json.dump({
    "from": krcf.__file__.rsplit("/", 2)[0],
    "rcf": [forest.score(p) for p in probe],
    "rcf_attribution": [forest.attribution(p) for p in probe],
    "rcf_state": forest.to_msgpack().hex(),
}, sys.stdout)
"""


def test_the_built_krcf_scores_as_pypis_wheel(managed_flink_zip, tmp_path):
    # GIVEN krcf as the zip ships it (built from its sdist)
    with zipfile.ZipFile(managed_flink_zip) as archive:
        archive.extractall(tmp_path, [
            n for n in archive.namelist()
            if n.startswith("dep/krcf/") or re.match(r"dep/krcf-[^/]*\.dist-info/", n)
        ])
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}

    def scores(**extra):
        out = subprocess.run([sys.executable, "-c", SCORES], env={**env, **extra},
                             capture_output=True, text=True, check=True, timeout=300)
        return json.loads(out.stdout)

    # WHEN the same seeded forest code runs on it and on PyPI's wheel (the project venv's)
    built, pypi = scores(PYTHONPATH=str(tmp_path / "dep")), scores()
    # THEN the zip's copy was the one imported, and every score, attribution and state is the same
    assert built.pop("from") == str(tmp_path / "dep")
    assert pypi.pop("from") != str(tmp_path / "dep")
    assert built == pypi
