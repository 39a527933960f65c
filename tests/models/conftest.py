"""Small labelled fixtures: a synthetic click stream with injected anomalies."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pytest

from models.features import FEATURE_NAMES

KINDS = ("click_flood", "broken_ad", "outage", "bot_crawl")


@dataclass
class ClickStream:
    """Batches of (entity, features) per 10-second window, with the injected anomalies."""

    batches: list[list[tuple[str, dict[str, float]]]]
    labels: dict[tuple[str, int], str] = field(default_factory=dict)  # (entity, window) -> kind
    drifting: tuple[str, ...] = ()


def _window(rng, volume, ctr, bot):
    impressions = rng.poisson(volume)
    clicks = rng.binomial(impressions, ctr)
    page_views = rng.poisson(volume * 0.3)
    carts = rng.binomial(page_views, 0.05)
    purchases = rng.binomial(carts, 0.3)
    events = impressions + clicks + page_views + carts + purchases
    users = rng.binomial(events, 0.6) if events else 0
    ips = max(1, int(users * 0.9)) if users else 0
    return {
        "events": events, "impressions": impressions, "clicks": clicks,
        "ctr": clicks / impressions if impressions else 0.0, "page_views": page_views,
        "add_to_carts": carts, "purchases": purchases, "unique_users": users,
        "unique_sessions": int(users * 1.1), "unique_ips": ips,
        "top_ip_share": min(1.0, 2.0 / max(ips, 1) + rng.uniform(0, 0.02)) if events else 0.0,
        "bot_share": float(np.clip(rng.normal(bot, 0.01), 0, 1)) if events else 0.0,
    }


def make_click_stream(n_entities=60, windows=90, start=40, length=6, seed=0) -> ClickStream:
    """Normal traffic for ``n_entities``; from window ``start`` for ``length`` windows: one ad
    floods, one ad breaks, one entity goes dark, a sixth of the entities are crawled by bots; five
    entities drift slowly (+0.5 % volume a window, +56 % over the run) the whole time."""
    rng = np.random.default_rng(seed)
    ids = [f"e{i:03d}" for i in range(n_entities)]
    volume = dict(zip(ids, np.exp(rng.uniform(np.log(20), np.log(2000), n_entities)), strict=True))
    ctr = dict(zip(ids, rng.uniform(0.01, 0.05, n_entities), strict=True))
    flood, broken, outage = ids[1], ids[2], ids[3]
    volume.update({flood: 300.0, broken: 800.0, outage: 100.0})
    ctr[broken] = 0.03
    crawled = set(ids[10 : 10 + n_entities // 6])
    drifting = tuple(ids[-5:])
    stream = ClickStream(batches=[], drifting=drifting)
    for w in range(windows):
        hit = start <= w < start + length
        batch = []
        for e in ids:
            vol = volume[e] * (1.005**w if e in drifting else 1.0)
            features = _window(rng, vol, ctr[e], 0.02)
            if hit and e == flood:
                features["clicks"] *= 15
                features["events"] += features["clicks"]
                features["ctr"] = features["clicks"] / max(features["impressions"], 1)
                features["top_ip_share"] = 0.6
                stream.labels[(e, w)] = "click_flood"
            elif hit and e == broken:
                features["events"] -= features["clicks"]
                features["clicks"], features["ctr"] = 0, 0.0
                stream.labels[(e, w)] = "broken_ad"
            elif hit and e == outage:
                features = dict.fromkeys(FEATURE_NAMES, 0.0)
                stream.labels[(e, w)] = "outage"
            elif hit and e in crawled:
                features["bot_share"] = 0.45
                stream.labels[(e, w)] = "bot_crawl"
            batch.append((e, {k: float(features[k]) for k in FEATURE_NAMES}))
        stream.batches.append(batch)
    return stream


@pytest.fixture(scope="session")
def click_stream() -> ClickStream:
    return make_click_stream()
