r"""Read back what the job's file sinks committed: JSON lines, or the archive's Parquet files.

The job writes scored windows and raw events as Parquet (``docs/archive.md``) and its other
local outputs as JSON lines; a reader here takes either, by content: a Parquet file starts with
``PAR1``. Flink keeps what is not committed yet in hidden ``.part-*.inprogress.*`` files, which
are skipped. Partition values (``dt``, ``hour``) live in the path, not in the records.

>>> list(records_in(b'{"a": 1}\n\n{"a": 2}\n'))
[{'a': 1}, {'a': 2}]
"""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from pathlib import Path, PurePosixPath

PARQUET_MAGIC = b"PAR1"


def is_committed_part(path: PurePosixPath) -> bool:
    """A committed part file (not an in-progress one, not a checkpoint or summary).

    >>> is_committed_part(Path("dt=2026-01-05/hour=00/part-1a-0-3"))
    True
    >>> is_committed_part(Path("dt=2026-01-05/hour=00/.part-1a-0-4.inprogress.9f"))
    False
    """
    return path.name.startswith("part-")


def records_in(data: bytes) -> Iterator[dict]:
    """The records of one part file's bytes: Parquet rows, or JSON lines."""
    if data.startswith(PARQUET_MAGIC):
        import pyarrow.parquet as pq

        yield from pq.read_table(io.BytesIO(data)).to_pylist()
        return
    for line in data.decode("utf-8").splitlines():
        if line.strip():
            yield json.loads(line)


def read_records(directory: Path) -> Iterator[dict]:
    """Every record of the committed part files below ``directory``, in path order."""
    if not directory.exists():
        return
    for path in sorted(directory.rglob("*")):
        if path.is_file() and is_committed_part(path):
            yield from records_in(path.read_bytes())


def s3_records(s3, bucket: str, prefix: str) -> Iterator[dict]:
    """Every record of the committed part files below ``s3://bucket/prefix``, in key order."""
    pages = s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
    for key in sorted(o["Key"] for page in pages for o in page.get("Contents", [])):
        if is_committed_part(PurePosixPath(key)):
            yield from records_in(s3.get_object(Bucket=bucket, Key=key)["Body"].read())
