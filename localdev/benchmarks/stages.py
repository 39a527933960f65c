"""What ``clicksentry bench`` measures, without Flink: the stages, the split input, comparisons.

The stages are cumulative cuts of the job's own graph (:func:`flink_jobs.job.define_features`):
each writes one of the job's views to a blackhole sink, the last is the whole job.

>>> [stage.key for stage in STAGES]
['s1_parse_classify', 's2_windows', 's3_sql_features', 's4_full_job']
>>> [stage.view for stage in STAGES]
['classified', 'window_counts', 'window_features', None]
"""

from __future__ import annotations

import json
import os
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from flink_jobs.features import WINDOW_SECONDS
from udfs.latency import percentile


@dataclass(frozen=True)
class Stage:
    """One stage: the job's graph up to ``view`` written to a blackhole (``None``: the job)."""

    key: str
    label: str
    view: str | None


STAGES = (
    Stage("s1_parse_classify", "source + Java parse + classify", "classified"),
    Stage("s2_windows", "+ fan-out to page/ad/campaign + "
          f"{WINDOW_SECONDS} s windows (one aggregate: every count)", "window_counts"),
    Stage("s3_sql_features", "+ feature rows: shares, epoch ms (all SQL features, no Python)",
          "window_features"),
    Stage("s4_full_job", "+ Python scoring + file sinks (the full job)", None),
)


def write_split(events_file: Path, directory: Path, parts: int) -> list[Path]:
    """Deal the lines of ``events_file`` round-robin into ``parts`` files in ``directory``.

    Each file keeps the arrival order and spans the whole stream, like one shard of it: the
    filesystem source reads each file as one split, so at parallelism ``parts`` every source
    subtask reads one file, all of them at once, each watermark following its own file. One part
    is the file itself (hard-linked where the filesystem allows).

    >>> import tempfile
    >>> root = Path(tempfile.mkdtemp())
    >>> _ = (root / "events.jsonl").write_text("a\\nb\\nc\\n")
    >>> [p.read_text() for p in write_split(root / "events.jsonl", root / "split", 2)]
    ['a\\nc\\n', 'b\\n']
    """
    if parts < 1:
        raise ValueError("parts must be >= 1")
    directory.mkdir(parents=True, exist_ok=True)
    paths = [directory / f"events-{i}.jsonl" for i in range(parts)]
    if parts == 1:
        try:
            os.link(events_file, paths[0])
            return paths
        except OSError:
            pass  # another filesystem: copy below
    files = [path.open("w", encoding="utf-8") for path in paths]
    try:
        with events_file.open(encoding="utf-8") as lines:
            for i, line in enumerate(lines):
                files[i % parts].write(line)
    finally:
        for f in files:
            f.close()
    return paths


def write_prefix(events_file: Path, path: Path, lines: int) -> int:
    """Write the first ``lines`` lines of ``events_file`` to ``path``; return how many it had.

    The bench's warm-up input: the start of the same stream.

    >>> import tempfile
    >>> root = Path(tempfile.mkdtemp())
    >>> _ = (root / "events.jsonl").write_text("a\\nb\\nc\\n")
    >>> write_prefix(root / "events.jsonl", root / "warmup" / "events.jsonl", 2)
    2
    >>> (root / "warmup" / "events.jsonl").read_text()
    'a\\nb\\n'
    """
    if lines < 1:
        raise ValueError("lines must be >= 1")
    path.parent.mkdir(parents=True, exist_ok=True)
    written = 0
    with events_file.open(encoding="utf-8") as source, path.open("w", encoding="utf-8") as out:
        for line in source:
            if written == lines:
                break
            out.write(line)
            written += 1
    return written


def differing_records(first: Iterable[Mapping[str, Any]],
                      second: Iterable[Mapping[str, Any]]) -> int:
    """Records in one list and not the other, order aside (0: the same records).

    >>> differing_records([{"a": 1}, {"a": 2}], [{"a": 2}, {"a": 1}])
    0
    >>> differing_records([{"a": 1}, {"a": 1}], [{"a": 1}, {"a": 3}])
    2
    """
    def canonical(records):
        return Counter(json.dumps(r, sort_keys=True) for r in records)

    a, b = canonical(first), canonical(second)
    return sum(((a - b) + (b - a)).values())


def latency_summary(samples: Iterable[Mapping[str, Any]]) -> dict[str, int | None]:
    """Scored windows timed, and the median and 99th percentile of their ``latency_ms``.

    >>> latency_summary([{"latency_ms": ms} for ms in range(1, 101)])
    {'windows': 100, 'p50_ms': 50, 'p99_ms': 99}
    >>> latency_summary([])
    {'windows': 0, 'p50_ms': None, 'p99_ms': None}
    """
    values = [int(s["latency_ms"]) for s in samples]
    return {"windows": len(values), "p50_ms": percentile(values, 0.5),
            "p99_ms": percentile(values, 0.99)}
