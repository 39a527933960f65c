"""Replay archived raw events: pick the ``dt``/``hour`` partitions, read them, order them.

The job archives every valid payload it windowed under ``<archive>/raw-events/dt=YYYY-MM-DD/
hour=HH/`` (UTC, by event time), locally or on S3. ``clicksentry replay`` feeds those payloads
back through the same job graph in bounded mode (the batch layer over the archive). The part
files hold the events in the order the sink's subtasks received them, not the stream's, so the
replay orders them by event time first: nothing is late in the replay, and a window's events are
the same set as in the original run, whose late payloads went to the dead letters, not the
archive. With the job's deterministic window closing and scoring, the replay's scored windows
are then the original run's.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from flink_jobs.job import LocalOutputs
from localdev.part_files import records_in

log = logging.getLogger(__name__)

#: The archive's folder of raw payloads (the job's name for it).
RAW_EVENTS = LocalOutputs(Path()).raw_events.name


@dataclass(frozen=True)
class HourRange:
    """UTC hours ``[start, end)``; ``None`` ends are open.

    >>> r = HourRange.parse("2026-01-05T23", "2026-01-06T01")
    >>> r.covers("2026-01-05", "23"), r.covers("2026-01-06", "00"), r.covers("2026-01-06", "01")
    (True, True, False)
    >>> HourRange.parse(None, None).covers("1999-12-31", "23")
    True
    """

    start: datetime | None = None
    end: datetime | None = None

    @staticmethod
    def parse(start: str | None, end: str | None) -> HourRange:
        """From ``YYYY-MM-DD`` or ``YYYY-MM-DDTHH`` strings (UTC); ValueError names the bad one."""
        return HourRange(_hour(start, "--from"), _hour(end, "--to"))

    def covers(self, dt: str, hour: str) -> bool:
        """Whether the partition ``dt=…/hour=…`` lies in the range."""
        at = datetime.strptime(f"{dt}T{hour}", "%Y-%m-%dT%H").replace(tzinfo=UTC)
        return (self.start is None or at >= self.start) and (self.end is None or at < self.end)


def _hour(text: str | None, option: str) -> datetime | None:
    if text is None:
        return None
    for layout in ("%Y-%m-%dT%H", "%Y-%m-%d"):
        try:
            return datetime.strptime(text, layout).replace(tzinfo=UTC)
        except ValueError:
            continue
    raise ValueError(f"{option}: {text!r} is not YYYY-MM-DD or YYYY-MM-DDTHH (UTC)")


def partition_of(relative: str) -> tuple[str, str] | None:
    """``(dt, hour)`` of a part file's path below ``raw-events/``; None for anything else.

    Flink's in-progress files are hidden (a leading dot) and are not part of the archive.

    >>> partition_of("dt=2026-01-05/hour=07/part-1a2b-0-3")
    ('2026-01-05', '07')
    >>> partition_of("dt=2026-01-05/hour=07/.part-1a2b-0-4.inprogress.9f"), partition_of("x")
    (None, None)
    """
    parts = relative.split("/")
    if len(parts) != 3 or parts[2].startswith(".") or not parts[2].startswith("part-"):
        return None
    dt, hour = parts[0].removeprefix("dt="), parts[1].removeprefix("hour=")
    if dt == parts[0] or hour == parts[1]:
        return None
    return dt, hour


def ordered_by_event_time(payloads: Iterable[str]) -> list[str]:
    """The archived payloads in event-time order (ties in payload order: the same every time).

    The archive holds only payloads the job parsed, so ``event_time`` is there as epoch ms (a
    number or a string of one).

    >>> ordered_by_event_time(['{"event_time": 2000, "a": 1}', '{"event_time": "1000"}'])
    ['{"event_time": "1000"}', '{"event_time": 2000, "a": 1}']
    """
    return sorted(payloads, key=lambda p: (int(json.loads(p)["event_time"]), p))


def local_payloads(archive: Path, hours: HourRange) -> Iterator[str]:
    """Every payload of the partitions in ``hours`` below ``archive/raw-events/``."""
    root = archive / RAW_EVENTS
    if not root.is_dir():
        raise FileNotFoundError(f"no {RAW_EVENTS}/ below {archive}")
    for path in sorted(root.rglob("*")):
        partition = partition_of(path.relative_to(root).as_posix())
        if path.is_file() and partition is not None and hours.covers(*partition):
            yield from (r["payload"] for r in records_in(path.read_bytes()))


def s3_payloads(s3, bucket: str, prefix: str, hours: HourRange) -> Iterator[str]:
    """Every payload of the partitions in ``hours`` below ``s3://bucket/prefix/raw-events/``."""
    root = f"{prefix.strip('/')}/{RAW_EVENTS}/".lstrip("/")
    pages = s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=root)
    keys = sorted(o["Key"] for page in pages for o in page.get("Contents", []))
    for key in keys:
        partition = partition_of(key.removeprefix(root))
        if partition is not None and hours.covers(*partition):
            body = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
            yield from (r["payload"] for r in records_in(body))


def upload_outputs(s3, outputs: LocalOutputs, bucket: str, prefix: str) -> int:
    """Copy a replay's records to ``s3://bucket/prefix/``, laid out as on disk.

    Copies the committed part files of ``scored-windows/`` (``dt=/hour=`` kept) and
    ``anomalies/``, and ``run-summary.json``; returns how many objects.
    """
    root = prefix.strip("/")
    count = 0
    for folder in (outputs.scored_windows, outputs.anomalies):
        for path in sorted(folder.rglob("part-*")) if folder.is_dir() else ():
            relative = path.relative_to(outputs.root).as_posix()
            s3.put_object(Bucket=bucket, Key=f"{root}/{relative}".lstrip("/"),
                          Body=path.read_bytes())
            count += 1
    summary = outputs.root / "run-summary.json"
    if summary.is_file():
        s3.put_object(Bucket=bucket, Key=f"{root}/{summary.name}".lstrip("/"),
                      Body=summary.read_bytes(), ContentType="application/json")
        count += 1
    return count


def write_events(payloads: Iterable[str], path: Path) -> int:
    """Write ``payloads`` in event-time order as a JSON-lines file; return how many."""
    ordered = ordered_by_event_time(payloads)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(f"{p}\n" for p in ordered), encoding="utf-8")
    log.info("%d archived events, %s .. %s", len(ordered), *_span(ordered))
    return len(ordered)


def _span(ordered: list[str]) -> tuple[str, str]:
    if not ordered:
        return "-", "-"
    first, last = (int(json.loads(p)["event_time"]) for p in (ordered[0], ordered[-1]))
    at = datetime(1970, 1, 1, tzinfo=UTC)
    return tuple((at + timedelta(milliseconds=ms)).isoformat() for ms in (first, last))
