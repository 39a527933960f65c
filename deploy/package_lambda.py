"""Build ``dist/clicksentry-alerts-lambda.zip``: the alerting Lambda for the Python 3.11 runtime.

The zip holds the ``alerting`` package (handler ``alerting.handler.lambda_handler``) and its
dependencies, installed by pip for Lambda's platform (``manylinux2014_x86_64``, CPython 3.11,
wheels only) at the versions pinned in ``constraints.txt``. boto3 and botocore are left out: the
runtime provides them. Entries are sorted and dated 1980-01-01, so the same inputs give the same
bytes.

Usage: ``python deploy/package_lambda.py [--output PATH]`` (``make package`` runs it).
"""

from __future__ import annotations

import argparse
import logging
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from reproducible_zip import is_build_clutter, write_zip

log = logging.getLogger("package_lambda")

ROOT = Path(__file__).resolve().parents[1]
HANDLER_PACKAGE = ROOT / "alerting"
HANDLER = "alerting.handler.lambda_handler"
REQUIREMENTS = ("aws-lambda-powertools",)
RUNTIME_PROVIDED = ("boto3", "botocore", "s3transfer")
PIP_PLATFORM = (
    "--platform",
    "manylinux2014_x86_64",
    "--implementation",
    "cp",
    "--python-version",
    "3.11",
    "--only-binary=:all:",
)


def install_dependencies(staging: Path, constraints: Path) -> None:
    """Install the Lambda's dependencies for its platform into ``staging``."""
    command = [
        sys.executable,
        "-m",
        "pip",
        "install",
        "--quiet",
        "--no-compile",
        "--target",
        str(staging),
        *PIP_PLATFORM,
        "--constraint",
        str(constraints),
        *REQUIREMENTS,
    ]
    log.info("installing %s for manylinux2014_x86_64 / CPython 3.11", ", ".join(REQUIREMENTS))
    subprocess.run(command, check=True)
    for name in RUNTIME_PROVIDED:
        for path in [staging / name, *staging.glob(f"{name}-*.dist-info")]:
            if path.exists():
                log.info("leaving out %s (the Lambda runtime provides it)", path.name)
                shutil.rmtree(path)


def package_files(staging: Path) -> list[tuple[Path, str]]:
    """Every file of the zip with its name in the archive: dependencies, then the handler."""
    files = [
        (path, path.relative_to(staging).as_posix())
        for path in staging.rglob("*")
        if path.is_file() and not _is_build_clutter(path.relative_to(staging))
    ]
    files += [
        (path, path.relative_to(ROOT).as_posix())
        for path in HANDLER_PACKAGE.rglob("*.py")
        if not _is_build_clutter(path.relative_to(ROOT))
    ]
    return sorted(files, key=lambda item: item[1])


def _is_build_clutter(relative: Path) -> bool:
    """Byte code, and the console scripts of the packages (Lambda never runs them).

    >>> _is_build_clutter(Path("jmespath/__pycache__/ast.cpython-311.pyc"))
    True
    >>> _is_build_clutter(Path("bin/jp.py")), _is_build_clutter(Path("jmespath/ast.py"))
    (True, False)
    """
    return is_build_clutter(relative) or relative.parts[0] == "bin"


def main(argv: list[str] | None = None) -> int:
    """Build the zip; print its path, size and handler."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--output", type=Path, default=ROOT / "dist" / "clicksentry-alerts-lambda.zip"
    )
    parser.add_argument("--constraints", type=Path, default=ROOT / "constraints.txt")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    with tempfile.TemporaryDirectory(prefix="clicksentry-lambda-") as staging:
        install_dependencies(Path(staging), args.constraints)
        files = package_files(Path(staging))
        write_zip(files, args.output)
    size_mb = args.output.stat().st_size / 1e6
    print(f"{args.output} ({len(files)} files, {size_mb:.1f} MB), handler {HANDLER}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
