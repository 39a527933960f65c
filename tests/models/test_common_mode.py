"""A move the whole batch shares is the site's, not each entity's.

GIVEN a shard of pages with a learned history WHEN every page's traffic rises together (a
site-wide spike) THEN no page is flagged for its counts, nor for a few of what its history never
saw; WHEN one page alone rises or drops THEN it is flagged, also while the others spike.
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


def warm(detector, usual=USUAL):
    """The detector and the pages' states after 150 ordinary windows of ``usual`` traffic."""
    states, rng = [None] * len(PAGES), np.random.default_rng(7)
    for _ in range(150):
        batch = [{n: float(rng.poisson(m)) for n, m in usual.items()} for _ in PAGES]
        states = [state for _, state in detector.process(list(zip(states, batch, strict=True)))]
    return detector, states


@pytest.fixture
def warmed():
    return warm(make_detector("rcf-level"))


def flagged(warmed, batch):
    detector, states = warmed
    return [page for page, (verdict, _) in
            zip(PAGES, detector.process(list(zip(states, batch, strict=True))), strict=True)
            if verdict.is_anomaly]


def test_a_site_wide_spike_flags_no_page(warmed):
    assert flagged(warmed, windows(2.5)) == []


def test_without_the_common_move_the_same_spike_flags_pages():
    assert flagged(warm(make_detector("rcf-level", {"common_quorum": 0.0})), windows(2.5))


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



@pytest.fixture
def warmed_without_carts():
    # pages whose history saw no add-to-cart: its expected value is the floor of what that
    # history could have missed (0.05 a window)
    return warm(make_detector("rcf-level"), {**USUAL, "add_to_carts": 0.0})


@pytest.mark.parametrize(("carts", "alerted"), [(3.0, []), (8.0, ["page-03"])])
def test_what_the_history_never_saw_is_judged_at_the_sites_traffic(
    warmed_without_carts, carts, alerted
):
    # GIVEN pages whose history saw no add-to-cart WHEN every page's traffic rises 2.5 times
    # and one page has `carts` of them
    batch = [{**window, "add_to_carts": 0.0} for window in windows(2.5)]
    batch[3]["add_to_carts"] = carts
    # THEN the floor rises with the site's traffic: 3 are ordinary at 2.5 times the traffic
    # (p ~ 6e-4), 8 are not
    assert flagged(warmed_without_carts, batch) == alerted
