"""Build ``dist/clicksentry-managed-flink.zip``: the job for Managed Service for Apache Flink.

Layout, as the service's run options expect (see docs/kinesis.md)::

    main.py                        # run option  python  = main.py
    lib/pyflink-dependencies.jar   # run option  jarfile = lib/pyflink-dependencies.jar
    dep/                           # run option  pyFiles = dep/
        flink_jobs/ models/ udfs/  #   the project's packages
        krcf/ river/ sklearn/ ...  #   third-party packages the Flink runtime lacks
    application_properties.json    # sample runtime properties (every group the job reads)

The service installs nothing with pip at run time, and every native extension in ``dep/`` must
load on the oldest glibc its images may run: ``manylinux2014``, glibc 2.17 (``glibc_floor.py``
says why). Third-party packages are the dependency closure of the project's runtime requirements
minus the closure of ``apache-flink``, which the runtime brings (numpy, pandas, pyarrow, …), at
the versions pinned in ``constraints.txt``, without their dependencies. Each is PyPI's wheel for
x86_64 ``manylinux2014`` / CPython 3.11 (downloaded once into a per-machine wheelhouse) or,
where that version publishes no such wheel (krcf ships ``manylinux_2_28`` only), a wheel built
from its sdist for glibc 2.17 by ``build_wheels.py`` (cached per machine; the first build takes
minutes). pip installs them from those two places only, and every ELF file
installed is checked against the floor before it is zipped. Entries are sorted and dated
1980-01-01: same inputs, same bytes.

Usage: ``python deploy/package_flink.py [--output PATH]`` (``make package`` runs it).
"""

from __future__ import annotations

import argparse
import logging
import os
import re
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from importlib import metadata
from pathlib import Path

import build_wheels
from glibc_floor import MANYLINUX2014, problems_under
from packaging.markers import default_environment
from packaging.requirements import Requirement
from reproducible_zip import is_build_clutter, write_zip

log = logging.getLogger("package_flink")

ROOT = Path(__file__).resolve().parents[1]
DEPLOY = ROOT / "deploy"
JAR = DEPLOY / "target" / "pyflink-dependencies.jar"
MAIN = DEPLOY / "managed_flink" / "main.py"
PROPERTIES = DEPLOY / "managed_flink" / "application_properties.json"
PROJECT_PACKAGES = ("flink_jobs", "models", "udfs")
#: What the job imports beyond PyFlink (the alerting Lambda's packages are packaged separately).
JOB_REQUIREMENTS = ("krcf", "river", "scikit-learn", "skops", "msgpack", "boto3")
RUNTIME = "apache-flink"
DEP_DIR = "dep"
#: The service's platform; pip also accepts the older manylinux tags for it (2010, 1).
PLATFORM = "manylinux2014_x86_64"
PIP_PLATFORM = (
    "--platform",
    PLATFORM,
    "--implementation",
    "cp",
    "--python-version",
    "3.11",
    "--only-binary=:all:",
)
TARGET_ENVIRONMENT = {
    **default_environment(),
    "python_version": "3.11",
    "python_full_version": "3.11.0",
    "sys_platform": "linux",
    "platform_system": "Linux",
    "platform_machine": "x86_64",
    "implementation_name": "cpython",
    "platform_python_implementation": "CPython",
    "extra": "",
}


def _canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def closure(names: tuple[str, ...]) -> dict[str, str]:
    """Installed distributions reachable from ``names`` for the target platform, with versions."""
    found: dict[str, str] = {}
    pending = [_canonical(n) for n in names]
    while pending:
        name = pending.pop()
        if name in found:
            continue
        distribution = metadata.distribution(name)
        found[name] = distribution.version
        for text in distribution.requires or []:
            requirement = Requirement(text)
            if requirement.marker is None or requirement.marker.evaluate(TARGET_ENVIRONMENT):
                pending.append(_canonical(requirement.name))
    return found


def third_party() -> dict[str, str]:
    """What the job needs that the Flink runtime does not bring: ``{name: version}``."""
    provided = closure((RUNTIME,))
    return {n: v for n, v in sorted(closure(JOB_REQUIREMENTS).items()) if n not in provided}


def wheelhouse() -> Path:
    """Per-machine store of the PyPI wheels downloaded for :data:`PLATFORM`."""
    return build_wheels.cache_dir() / "wheelhouse" / PLATFORM


def _download(name: str, version: str, into: Path) -> bool:
    """Fetch PyPI's wheel of ``name==version`` for the platform; False if it publishes none."""
    done = subprocess.run(
        [
            sys.executable, "-m", "pip", "download", "--quiet", "--no-deps",
            "--dest", str(into), *PIP_PLATFORM, f"{name}=={version}",
        ],
        capture_output=True,
        text=True,
    )
    if done.returncode != 0 and "No matching distribution" not in done.stderr:
        raise SystemExit(f"pip download {name}=={version} failed:\n{done.stderr}")
    return done.returncode == 0


def wheels(packages: dict[str, str]) -> list[Path]:
    """One wheel per pinned package for the service's platform: PyPI's, or built from the sdist.

    Cached per machine: a pin already in the wheelhouse or built before asks no registry.
    """
    store = wheelhouse()
    store.mkdir(parents=True, exist_ok=True)
    found: dict[str, Path] = {}
    wanted: list[tuple[str, str]] = []
    for name, version in packages.items():
        path = build_wheels.wheel_in(store, name, version) or build_wheels.cached(name, version)
        if path is None:
            wanted.append((name, version))
        else:
            found[name] = path
    with ThreadPoolExecutor(max_workers=4) as pool:
        published = list(pool.map(lambda pin: _download(*pin, store), wanted))
    for (name, version), on_pypi in zip(wanted, published, strict=True):
        if on_pypi:
            found[name] = build_wheels.wheel_in(store, name, version)
        else:
            log.info("%s==%s has no %s wheel: building it from its sdist", name, version, PLATFORM)
            found[name] = build_wheels.build(name, version)
    return [found[name] for name in packages]


def install(packages: dict[str, str], target: Path) -> None:
    """pip-install the pinned ``packages`` for the service's platform into ``target``.

    From the wheels of :func:`wheels` only, found by name (a wheel given by path would leave
    its local path in the installed ``direct_url.json``).
    """
    places = sorted({str(wheel.parent) for wheel in wheels(packages)})
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--quiet",
            "--no-compile",
            "--no-deps",
            "--no-index",
            *(f"--find-links={place}" for place in places),
            "--target",
            str(target),
            *PIP_PLATFORM,
            *(f"{name}=={version}" for name, version in packages.items()),
        ],
        check=True,
        env={k: v for k, v in os.environ.items() if k != "PIP_FIND_LINKS"},
    )


def package_files(staging: Path) -> list[tuple[Path, str]]:
    """(source file, name in the zip) for everything the zip holds, sorted by name."""
    if not JAR.is_file():
        raise SystemExit(f"{JAR} is missing; run `make jar` first")
    files = [
        (MAIN, "main.py"),
        (JAR, "lib/pyflink-dependencies.jar"),
        (PROPERTIES, PROPERTIES.name),
    ]
    for package in PROJECT_PACKAGES:
        for path in (ROOT / package).rglob("*"):
            relative = path.relative_to(ROOT)
            if path.is_file() and not is_build_clutter(relative):
                files.append((path, f"{DEP_DIR}/{relative.as_posix()}"))
    for path in staging.rglob("*"):
        relative = path.relative_to(staging)
        if path.is_file() and not is_build_clutter(relative):
            files.append((path, f"{DEP_DIR}/{relative.as_posix()}"))
    return sorted(files, key=lambda item: item[1])


def main(argv: list[str] | None = None) -> int:
    """Build the zip; print what went in."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--output", type=Path, default=ROOT / "dist" / "clicksentry-managed-flink.zip"
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    packages = third_party()
    log.info(
        "third-party packages for %s/: %s",
        DEP_DIR,
        ", ".join(f"{n}=={v}" for n, v in packages.items()),
    )
    with tempfile.TemporaryDirectory(prefix="clicksentry-flink-") as staging:
        install(packages, Path(staging))
        problems = problems_under(Path(staging), MANYLINUX2014)
        if problems:
            raise SystemExit(f"native code in {DEP_DIR}/ needs more than {MANYLINUX2014.name}: "
                             f"{problems}")
        files = package_files(Path(staging))
        write_zip(files, args.output)
    size_mb = args.output.stat().st_size / 1e6
    log.info("wrote %s (%d files, %.1f MB)", args.output, len(files), size_mb)
    return 0


if __name__ == "__main__":
    sys.exit(main())
