"""A move the whole batch shares is the site's, not each entity's.

GIVEN a shard of pages with a learned history WHEN every page's traffic rises together (a
site-wide spike) THEN no page is flagged for its counts; WHEN one page alone rises or drops
THEN it is flagged, also while the others spike.
"""

import numpy as np
import pytest

from models.common_mode import common_ratio
from models.registry import make_detector

PAGES = [f"page-{i:02d}" for i in range(12)]
USUAL = {"events": 60.0, "page_views": 30.0, "clicks": 3.0}


def windows(scale, alone=None, alone_scale=1.0):
    rng = np.random.default_rng(len(PAGES))
    return [
        {name: float(rng.poisson(mean * scale * (alone_scale if page == alone else 1.0)))
         for name, mean in USUAL.items()}
        for page in PAGES
    ]


@pytest.fixture
def warmed():
    detector, states = make_detector("rcf-level"), [None] * len(PAGES)
    rng = np.random.default_rng(7)
    for _ in range(150):
        batch = [{n: float(rng.poisson(m)) for n, m in USUAL.items()} for _ in PAGES]
        out = detector.process(list(zip(states, batch, strict=True)))
        states = [state for _, state in out]
    return detector, states


def flagged(warmed, batch):
    detector, states = warmed
    return [page for page, (verdict, _) in
            zip(PAGES, detector.process(list(zip(states, batch, strict=True))), strict=True)
            if verdict.is_anomaly]


def test_a_site_wide_spike_flags_no_page(warmed):
    assert flagged(warmed, windows(2.5)) == []


def test_without_the_common_move_the_same_spike_flags_pages():
    detector = make_detector("rcf-level", {"common_quorum": 0.0})
    states, rng = [None] * len(PAGES), np.random.default_rng(7)
    for _ in range(150):
        batch = [{n: float(rng.poisson(m)) for n, m in USUAL.items()} for _ in PAGES]
        states = [s for _, s in detector.process(list(zip(states, batch, strict=True)))]
    assert flagged((detector, states), windows(2.5))


def test_one_page_rising_alone_is_flagged(warmed):
    assert flagged(warmed, windows(1.0, alone="page-03", alone_scale=3.0)) == ["page-03"]


def test_a_page_that_goes_dark_during_a_spike_is_still_flagged(warmed):
    assert flagged(warmed, windows(2.5, alone="page-03", alone_scale=0.0)) == ["page-03"]


def test_the_common_ratio_needs_a_quorum_of_entities_with_enough_traffic():
    expected = np.full((4, 1), 100.0)
    everyone = np.array([[200.0], [210.0], [190.0], [205.0]])
    assert common_ratio(everyone, expected, np.ones(4, bool), [-1], 0.3, 0.75) == 202.5 / 100
    half = np.array([[200.0], [210.0], [100.0], [95.0]])
    assert common_ratio(half, expected, np.ones(4, bool), [-1], 0.3, 0.75) == 1.0
    # too little traffic to vote: 1 / 0.3² ≈ 11 expected counts
    small = np.full((4, 1), 5.0)
    assert common_ratio(everyone / 20, small, np.ones(4, bool), [-1], 0.3, 0.75) == 1.0
    # shares are not traffic
    assert common_ratio(everyone, expected, np.ones(4, bool), [0], 0.3, 0.75) == 1.0


def test_a_bad_quorum_is_refused():
    with pytest.raises(ValueError, match="common_quorum"):
        make_detector("rcf-level", {"common_quorum": 1.5})
