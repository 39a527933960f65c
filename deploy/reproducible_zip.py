"""Reproducible zip files for the deployment artefacts: the same inputs give the same bytes."""

from __future__ import annotations

import shutil
import zipfile
from pathlib import Path

FIXED_DATE = (1980, 1, 1, 0, 0, 0)


def is_build_clutter(relative: Path) -> bool:
    """Byte-code caches, which the runtimes rebuild.

    >>> is_build_clutter(Path("a/__pycache__/b.pyc")), is_build_clutter(Path("a/b.py"))
    (True, False)
    """
    return "__pycache__" in relative.parts or relative.suffix == ".pyc"


def write_zip(files: list[tuple[Path, str]], output: Path) -> None:
    """Write ``(source, name)`` pairs to ``output``: fixed dates, given order, modes kept."""
    output.parent.mkdir(parents=True, exist_ok=True)
    partial = output.with_suffix(".partial")
    with zipfile.ZipFile(partial, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for source, name in files:
            info = zipfile.ZipInfo(name, date_time=FIXED_DATE)
            info.external_attr = (source.stat().st_mode & 0o777 | 0o100000) << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            with source.open("rb") as data, archive.open(info, "w") as entry:
                shutil.copyfileobj(data, entry)
    partial.replace(output)
