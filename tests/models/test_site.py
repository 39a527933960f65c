"""The site's own alert: one per site-wide move, none for a few pages or the site's cycles."""

import math

import numpy as np
import pytest

from models.site import SiteDetector, page_traffic

PAGES = 40


def _traffic(rng, window, factor=1.0, pages=PAGES):
    """Poisson page events: Zipf-like sizes, a slow ±20 % cycle, times ``factor``."""
    cycle = 1.0 + 0.2 * math.sin(2 * math.pi * window / 60)
    sizes = 400.0 / np.arange(1, pages + 1)
    return {f"page-{i:03d}": float(rng.poisson(s * cycle * factor)) for i, s in enumerate(sizes)}


def _run(detector, rng, factors):
    return [detector.process(_traffic(rng, w, f)) for w, f in enumerate(factors)]


def test_a_site_wide_spike_raises_one_alert_and_its_end_none():
    # GIVEN 60 ordinary windows, a 9-window spike of every page x2.5, then 60 ordinary ones
    rng = np.random.default_rng(1)
    factors = [1.0] * 60 + [2.5] * 9 + [1.0] * 60
    # WHEN the site detector sees each window end's pages
    verdicts = _run(SiteDetector(), rng, factors)
    # THEN the spike's first window is the one alert, HIGH, with most pages moved
    alerts = [w for w, v in enumerate(verdicts) if v.is_anomaly]
    assert alerts == [60]
    first = verdicts[60]
    assert first.direction == "HIGH" and first.relative_change > 1.0
    assert first.pages_moved >= 0.75 * first.pages_voting and first.p_value < 1e-4
    # AND the whole spike is one move, and the return to normal is none
    assert all(v.direction == "HIGH" for v in verdicts[60:69])
    assert all(v.direction is None for v in verdicts[69:])


def test_a_site_wide_drop_is_alerted_low():
    rng = np.random.default_rng(2)
    verdicts = _run(SiteDetector(), rng, [1.0] * 60 + [0.3] * 5 + [1.0] * 30)
    assert [(w, v.direction) for w, v in enumerate(verdicts) if v.is_anomaly] == [(60, "LOW")]


def test_the_sites_cycle_and_counting_noise_raise_nothing():
    # GIVEN two simulated hours of ordinary traffic with its cycle
    rng = np.random.default_rng(3)
    # THEN no window end is a site move
    assert not any(v.is_anomaly for v in _run(SiteDetector(), rng, [1.0] * 720))


def test_a_few_pages_moving_together_are_not_the_site():
    # GIVEN a site of 4 pages, 3 of which jump by half at once
    det, rng = SiteDetector(), np.random.default_rng(4)
    for w in range(60):
        det.process(_traffic(rng, w, pages=4))
    jumped = {p: x * (1.5 if i < 3 else 1.0) for i, (p, x) in
              enumerate(_traffic(rng, 60, pages=4).items())}
    # WHEN they are judged
    verdict = det.process(jumped)
    # THEN 3 of 4 pages is a quorum but not unlikely enough to be the site's move
    assert verdict.pages_moved == 3 and not verdict.is_anomaly
    assert verdict.p_value > 1e-4


def test_a_lasting_move_becomes_the_new_normal():
    # GIVEN a site whose traffic doubles for good
    rng = np.random.default_rng(5)
    det = SiteDetector(max_episode=10)
    verdicts = _run(det, rng, [1.0] * 60 + [2.0] * 300)
    # THEN it is alerted once; the baselines then learn it and the move ends
    assert [w for w, v in enumerate(verdicts) if v.is_anomaly] == [60]
    assert verdicts[-1].direction is None
    assert abs(verdicts[-1].relative_change) < 0.3


def test_state_round_trip_mid_stream_gives_the_same_verdicts():
    factors = [1.0] * 40 + [2.5] * 5 + [1.0] * 20
    whole = _run(SiteDetector(), np.random.default_rng(6), factors)
    rng, det = np.random.default_rng(6), SiteDetector()
    first = _run(det, rng, factors[:42])
    restored = SiteDetector.from_bytes(det.to_bytes())
    rest = [restored.process(_traffic(rng, w, f)) for w, f in enumerate(factors[42:], start=42)]
    assert first + rest == whole


@pytest.mark.parametrize("events", [float("nan"), -1.0, float("inf")])
def test_bad_page_events_are_refused(events):
    with pytest.raises(ValueError, match="page events must be finite and >= 0"):
        SiteDetector().process({"page-000": 10.0, "page-001": events})


def test_bad_settings_are_refused_naming_them():
    with pytest.raises(ValueError, match="quorum must be in"):
        SiteDetector(quorum=0.2)
    with pytest.raises(ValueError, match="warmup must be an integer"):
        SiteDetector(warmup=0)


def test_bots_are_not_the_sites_audience():
    # a crawl of most pages raises their events, not their human events
    assert page_traffic({"events": 100.0, "bot_share": 0.6}) == 40.0
