"""Window-to-anomaly latency as the scoring operator keeps it (udfs.latency), without Flink.

GIVEN the stamps of a window's rows and the watermarks the operator saw;
WHEN its records leave the operator;
THEN each is timed from the earliest moment its window's end was known passed, the gauges'
percentiles come from a bounded set of recent latencies, and what is forgotten is never
replaced by a later (smaller) guess.
"""

from __future__ import annotations

import pytest

from udfs.latency import WindowLatency, percentile

END = 1_767_571_210_000  # a window end, epoch ms
NOW = 1_800_000_000_000  # processing time, epoch ms


def test_the_earliest_row_stamp_of_a_window_starts_its_latency():
    # GIVEN three rows of one window, stamped as the job emitted them
    latency = WindowLatency()
    for fired in (NOW + 30, NOW + 10, NOW + 20):
        latency.row_fired(END, fired)
    # WHEN the watermark reaches the operator later and two records leave it
    latency.watermark_seen(END + 5_000, NOW + 900)
    first, second = latency.scored(END, NOW + 1_010), latency.scored(END, NOW + 1_060)
    # THEN both are timed from the first row's stamp, not from the watermark's arrival
    assert (first, second) == (1_000, 1_050)


def test_a_window_without_rows_here_is_timed_from_the_first_watermark_past_its_end():
    # GIVEN watermark advances seen before and at the end (end - 1: the window is complete)
    latency = WindowLatency()
    latency.watermark_seen(END - 2, NOW)
    latency.watermark_seen(END - 1, NOW + 100)
    latency.watermark_seen(END + 9_999, NOW + 200)
    # WHEN a synthesised record of that window leaves
    # THEN its latency counts from the advance that first reached end - 1
    assert latency.scored(END, NOW + 150) == 50
    # and a window whose end no watermark has reached is not measured
    assert latency.scored(END + 20_000, NOW + 300) is None


def test_watermarks_that_do_not_advance_change_nothing():
    latency = WindowLatency()
    latency.watermark_seen(END, NOW)
    latency.watermark_seen(END, NOW + 500)
    latency.watermark_seen(END - 10, NOW + 600)
    assert latency.passed_at(END) == NOW


def test_memory_is_bounded_and_a_forgotten_end_is_not_measured():
    # GIVEN bounds of 4 window ends and 4 watermark advances
    latency = WindowLatency(recent=3, max_ends=4, max_marks=4)
    for i in range(10):
        latency.row_fired(END + i * 10_000, NOW + i)
        latency.watermark_seen(END + i * 10_000, NOW + i)
    # THEN only the newest are kept ...
    assert len(latency._fired) == 4 and len(latency._marks) <= 4
    # ... an old end whose first advance was dropped is unknown, not timed from a later one
    assert latency.passed_at(END) is None
    # ... and the gauges read the last `recent` latencies only
    for ms in (5, 500, 50, 7):
        latency.scored(END + 9 * 10_000, NOW + 9 + ms)
    assert sorted(latency.recent) == [7, 50, 500]


def test_percentiles_are_nearest_rank():
    # GIVEN 1..200 ms WHEN the median and the 99th percentile are read THEN nearest rank
    values = list(range(200, 0, -1))
    assert (percentile(values, 0.5), percentile(values, 0.99), percentile(values, 1.0)) == (
        100, 198, 200)
    assert percentile([42], 0.99) == 42
    assert WindowLatency().percentile(0.99) is None
    with pytest.raises(ValueError):
        percentile(values, 0)
