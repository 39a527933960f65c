"""Count-aware significance: calibrated on counting noise, quiet on small entities' chance moves."""

import json
from pathlib import Path

import numpy as np
import pytest

from models.detector import moved
from models.features import FEATURE_NAMES
from models.registry import PRESETS
from models.significance import (
    COUNT,
    UNTESTED,
    Dispersion,
    estimation_factor,
    share_tail,
    significance_plan,
    tail_pvalues,
    with_unseen_floor,
)

EVENTS = Path(__file__).resolve().parents[1] / "events"
DEFAULT = PRESETS["rcf-level"]
DEFAULT_ALPHA = 0.05  # the baseline's weight (models.baseline.EwmaBaseline's default)


@pytest.mark.parametrize("mu", [0.5, 3.0, 8.0, 40.0, 400.0])
def test_count_pvalues_are_never_smaller_than_the_chance_they_claim(mu):
    # GIVEN ordinary Poisson counts at their expected value
    counts = np.random.default_rng(1).poisson(mu, 200_000).astype(float)[:, None]
    # WHEN each gets its p-value THEN p <= a happens at most a of the time (plus sampling)
    p = tail_pvalues(counts, np.full(counts.shape, mu), np.ones(1))
    for level in (0.05, 0.01, 0.001):
        assert np.mean(p <= level) <= level * 1.15 + 1e-4


def test_share_tail_matches_the_binomial_and_is_calibrated():
    rng = np.random.default_rng(2)
    n = rng.integers(1, 400, 100_000).astype(float)
    k = rng.binomial(n.astype(int), 0.03).astype(float)
    p = tail_pvalues(np.stack([n, k / n], axis=1), np.stack([n, np.full(len(n), 0.03)], axis=1),
                     np.ones(2), [COUNT, 0])[:, 1]
    assert np.mean(p <= 0.01) <= 0.0115
    assert share_tail(np.array([0.0]), np.array([100.0]), np.array([0.03]))[0] == pytest.approx(
        0.97**100
    )


def test_the_same_move_is_noise_when_small_and_significant_when_large():
    # GIVEN a drop to an eighth of the expected count, at two volumes
    p = tail_pvalues(np.array([[1.0], [100.0]]), np.array([[8.0], [800.0]]), np.ones(1))
    # THEN only the large entity's drop is significant at the default level
    assert p[0, 0] > DEFAULT["significance"] > p[1, 0]


def test_overdispersion_is_learned_and_widens_the_test():
    # GIVEN counts that come in bursts of three (variance three times the mean)
    rng = np.random.default_rng(3)
    dispersion = Dispersion([COUNT])
    for _ in range(200):
        mu = rng.uniform(5, 50, (64, 1))
        dispersion.learn(3.0 * rng.poisson(mu / 3.0), mu)
    # THEN the dispersion is about 3, and a drop that Poisson calls rare is ordinary
    x, mu = np.array([[15.0]]), np.array([[40.0]])
    phi = dispersion.factors(x)
    assert phi[0, 0] == pytest.approx(3.0, rel=0.15)
    assert tail_pvalues(x, mu, np.ones(1))[0, 0] < 1e-4 < tail_pvalues(x, mu, phi)[0, 0]
    # AND it round-trips through its state bytes
    assert Dispersion.from_bytes(dispersion.to_bytes()).factors(x) == pytest.approx(phi)


def test_clustered_proportions_widen_with_their_count():
    # GIVEN bot shares that wobble by 0.01 around 2 % at any volume (bots come in clusters)
    rng = np.random.default_rng(4)
    dispersion = Dispersion([COUNT, 0])
    for _ in range(200):
        events = rng.integers(20, 2000, (64, 1)).astype(float)
        share = np.clip(rng.normal(0.02, 0.01, (64, 1)), 0, 1)
        dispersion.learn(np.hstack([events, share]), np.hstack([events, np.full((64, 1), 0.02)]))
    # WHEN a small and a large page show a bot share of 0.5 %
    windows = np.array([[40.0, 0.005], [2000.0, 0.005]])
    p = tail_pvalues(windows, np.array([[40.0, 0.02]] * 2), dispersion.factors(windows),
                     [COUNT, 0])[:, 1]
    # THEN neither is significant: the large page's share varies more than a binomial's
    binomial = tail_pvalues(windows, np.array([[40.0, 0.02]] * 2), np.ones(2), [COUNT, 0])[:, 1]
    assert binomial[1] < 1e-4
    assert (p > 1e-2).all()


def test_plan_tests_counts_and_proportions_but_not_the_busiest_ip_share():
    plan = significance_plan(FEATURE_NAMES)
    index = FEATURE_NAMES.index
    assert plan[index("ctr")] == index("impressions")
    assert plan[index("bot_share")] == index("events")
    assert plan[index("top_ip_share")] == UNTESTED
    assert plan[index("clicks")] == COUNT


def test_low_volume_ads_old_false_alerts_have_no_material_move():
    # GIVEN the old rule's false alerts on ads with at most 3 impressions and a click (real records)
    records = json.loads((EVENTS / "low-volume-ad-alerts.json").read_text())["records"]
    assert any(r["features"]["impressions"] == 3 and r["features"]["clicks"] == 1 for r in records)
    for record in records:
        assert len(record["explanation"]) == len(FEATURE_NAMES)
        raw = np.array([[record["features"][f] for f in FEATURE_NAMES]])
        expected = np.array([[record["explanation"][f]["expected"] for f in FEATURE_NAMES]])
        # WHEN tested at their volume, even without overdispersion
        p = tail_pvalues(raw, expected, np.ones(len(FEATURE_NAMES)),
                         significance_plan(FEATURE_NAMES))
        material = (p <= DEFAULT["significance"]) & moved(
            raw, expected, DEFAULT["min_relative_change"]
        )
        # THEN no feature moved materially, so the default cannot flag or list any of them
        assert not material.any(), record["anomaly_id"]


def test_a_first_purchase_is_ordinary_and_a_burst_is_not():
    # GIVEN an entity whose baseline has seen no purchase and no click (expected 0), with 40
    # impressions a window
    plan = [COUNT, COUNT, 1]  # purchases, impressions, ctr of the impressions
    expected = with_unseen_floor(np.array([[0.0, 40.0, 0.0]]), plan, DEFAULT_ALPHA)

    def p(purchases, clicks):
        raw = np.array([[purchases, 40.0, clicks / 40]])
        return tail_pvalues(raw, expected, np.ones(3), plan)[0]

    # WHEN one purchase and one click arrive THEN neither is significant at the preset's level
    assert (p(1, 1) > DEFAULT["significance"]).all()
    # WHEN a burst arrives THEN it is
    assert (p(4, 5)[[0, 2]] <= DEFAULT["significance"]).all()
    # AND without the floor the first purchase was infinitely unlikely
    bare = tail_pvalues(np.array([[1.0]]), np.array([[0.0]]), np.ones(1), [COUNT])
    assert bare[0, 0] <= DEFAULT["significance"]


def test_a_rate_measured_on_a_short_history_keeps_its_p_values_calibrated():
    # GIVEN entities with a click-through rate of 4 %, each rate measured on eight windows of
    # 60 impressions (the entity's history), and a run of ten such windows tested against it
    rng = np.random.default_rng(4)
    rate, history, tested, entities = 0.04, 8 * 60, 10 * 60, 200_000
    measured = np.maximum(rng.binomial(history, rate, entities) / history, 1e-3)
    clicks = rng.binomial(tested, rate, entities)
    raw = np.stack([np.full(entities, float(tested)), clicks / tested], axis=1)
    expected = np.stack([np.full(entities, float(tested)), measured], axis=1)

    def chance(dispersion):
        p = tail_pvalues(raw, expected, dispersion, [COUNT, 0])[:, 1]
        return {level: float(np.mean(p <= level)) for level in (0.01, 0.001)}

    # WHEN the test allows for the rate being measured (estimation_factor)
    factor = estimation_factor(measured * tested, measured * history)
    widened = chance(np.stack([np.ones(entities), factor], axis=1))
    # THEN p <= a happens about a of the time
    assert widened[0.01] <= 0.0115 and widened[0.001] <= 0.0015, widened
    # AND taking the measured rate for the true one claims far more than chance
    plain = chance(np.ones((entities, 2)))
    assert plain[0.01] > 5 * 0.01 and plain[0.001] > 10 * 0.001, plain
