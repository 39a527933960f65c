"""Window-to-anomaly latency: from a window's end being passed to its record leaving scoring.

A window ``[start, end)`` is complete once the watermark reaches ``end - 1``; the job's SQL
window operators then emit its rows. The job stamps every feature row with the processing time
at which the window aggregation emitted it (:data:`FIRED_AT_COLUMN`, ``PROCTIME()``
in :func:`flink_jobs.job.define_pipeline`): that is when the watermark passed the window's end
in the job. The scoring operator keeps, per window end, the earliest stamp of the rows it
received (:meth:`WindowLatency.row_fired`) and, for a window it only synthesises (no rows
reached this subtask), the time it first saw its own watermark at or past the end
(:meth:`WindowLatency.watermark_seen`). When a record of that window leaves the operator, the
time since then is its latency (:meth:`WindowLatency.scored`).

The stamp is taken before the Python operator, so the latency includes the rows' way to the
Python operator and, in process mode, PyFlink holding the watermark until its bundle is
finished (up to ``python.fn-execution.bundle.time``); it ends when the operator hands the
record on (the conversion back to Java comes after). Nothing the job outputs depends on it.

>>> latency = WindowLatency(recent=4)
>>> latency.row_fired(10_000, fired_at_ms=1_000_050)
>>> latency.row_fired(10_000, fired_at_ms=1_000_020)   # the earliest row of the window counts
>>> latency.scored(10_000, now_ms=1_000_320)
300
>>> latency.watermark_seen(19_999, now_ms=1_000_900)  # a window with no rows here: watermark
>>> latency.scored(20_000, now_ms=1_001_000)
100
>>> latency.scored(30_000, now_ms=1_001_000) is None  # its end not passed yet: not measured
True
>>> latency.percentile(0.5), latency.percentile(0.99)
(100, 300)
"""

from __future__ import annotations

import math
from bisect import bisect_left
from collections import deque
from collections.abc import Iterable

from pyflink.common import Types

#: Column of the feature rows handed to scoring: when the job emitted the row (``PROCTIME()``).
FIRED_AT_COLUMN = "fired_at"
#: One latency sample: the window, and milliseconds from its end being passed to its record
#: leaving the scoring operator (name, Flink type, SQL type).
LATENCY_COLUMNS = (
    ("window_end_ms", Types.LONG(), "BIGINT"),
    ("latency_ms", Types.LONG(), "BIGINT"),
)
LATENCY_ROW_TYPE = Types.ROW_NAMED(
    [name for name, _, _ in LATENCY_COLUMNS], [t for _, t, _ in LATENCY_COLUMNS]
)


def epoch_milli(instant) -> int:
    """Epoch milliseconds of a ``TIMESTAMP_LTZ`` value as the Python operator receives it.

    PyFlink's own ``Instant`` in process mode; in thread mode, the Java ``Instant`` itself.

    >>> from pyflink.common.time import Instant
    >>> epoch_milli(Instant(1, 500_000_000))
    1500
    """
    to_epoch_milli = getattr(instant, "to_epoch_milli", None)
    return to_epoch_milli() if to_epoch_milli is not None else instant.toEpochMilli()


def percentile(values: Iterable[float], q: float) -> float | None:
    """The nearest-rank ``q``-quantile (``0 < q <= 1``) of ``values``; ``None`` when empty.

    >>> percentile([5, 1, 4, 2, 3], 0.5), percentile(range(1, 101), 0.99), percentile([], 0.5)
    (3, 99, None)
    """
    if not 0 < q <= 1:
        raise ValueError("q must be in (0, 1]")
    ordered = sorted(values)
    if not ordered:
        return None
    return ordered[max(1, math.ceil(q * len(ordered))) - 1]


class WindowLatency:
    """When each window's end was passed, and the latency of every record scored since.

    Memory stays bounded: the stamps of the last ``max_ends`` window ends, the last
    ``max_marks`` watermark advances, and the last ``recent`` latencies (what the gauges read).

    Args:
        recent: latencies kept for :meth:`percentile`.
        max_ends: window ends whose earliest row stamp is kept.
        max_marks: watermark advances (and when they were seen) kept.
    """

    def __init__(self, recent: int = 1024, max_ends: int = 4096, max_marks: int = 4096) -> None:
        self.recent: deque[int] = deque(maxlen=recent)
        self.max_ends = max_ends
        self.max_marks = max_marks
        self._fired: dict[int, int] = {}
        self._marks: list[int] = []
        self._mark_times: list[int] = []
        self._dropped_until: int | None = None  # the last watermark no longer kept

    def row_fired(self, window_end_ms: int, fired_at_ms: int) -> None:
        """A row of the window ending at ``window_end_ms`` was emitted at ``fired_at_ms``."""
        held = self._fired.get(window_end_ms)
        if held is None:
            if len(self._fired) >= self.max_ends:
                del self._fired[min(self._fired)]
            self._fired[window_end_ms] = fired_at_ms
        elif fired_at_ms < held:
            self._fired[window_end_ms] = fired_at_ms

    def watermark_seen(self, watermark_ms: int, now_ms: int) -> None:
        """The operator saw its watermark at ``watermark_ms`` at processing time ``now_ms``."""
        if self._marks and watermark_ms <= self._marks[-1]:
            return
        if len(self._marks) >= self.max_marks:
            half = max(1, self.max_marks // 2)
            self._dropped_until = self._marks[half - 1]
            del self._marks[:half], self._mark_times[:half]
        self._marks.append(watermark_ms)
        self._mark_times.append(now_ms)

    def passed_at(self, window_end_ms: int) -> int | None:
        """When the window's end was passed (processing time), ``None`` if not known.

        That is its earliest row stamp, else when the first watermark at or past
        ``window_end_ms - 1`` was seen.

        >>> latency = WindowLatency()
        >>> latency.watermark_seen(9_999, now_ms=500); latency.watermark_seen(19_999, now_ms=900)
        >>> latency.passed_at(10_000), latency.passed_at(20_000), latency.passed_at(20_001)
        (500, 900, None)
        """
        candidates = []
        if (fired := self._fired.get(window_end_ms)) is not None:
            candidates.append(fired)
        # The first advance at or past the end, unless it may have been dropped already.
        at = bisect_left(self._marks, window_end_ms - 1)
        forgotten = self._dropped_until is not None and self._dropped_until >= window_end_ms - 1
        if at < len(self._marks) and not (at == 0 and forgotten):
            candidates.append(self._mark_times[at])
        return min(candidates, default=None)

    def scored(self, window_end_ms: int, now_ms: int) -> int | None:
        """A record of the window leaves the operator at ``now_ms``: its latency (ms).

        The latency is kept for :meth:`percentile`; ``None`` when the end is not known passed.
        """
        passed = self.passed_at(window_end_ms)
        if passed is None:
            return None
        latency = max(0, now_ms - passed)
        self.recent.append(latency)
        return latency

    def percentile(self, q: float) -> int | None:
        """Nearest-rank ``q``-quantile of the recent latencies (:func:`percentile`)."""
        return percentile(self.recent, q)
