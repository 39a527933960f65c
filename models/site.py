"""The site's own alert: most pages moving their traffic the same way at once.

A site-wide spike flags no page (:mod:`models.common_mode`: each page is judged against the
common move). The site itself is alerted instead, once per episode, by :class:`SiteDetector`,
which sees the human events (:func:`page_traffic`) of every page window of a window end — from
all shards together, so it runs once per job, not per shard. Every event has a page, so the
pages' events add up to the site's.

A window end is a **site move** when

* at least ``quorum`` of the pages with enough history and traffic (``1 / min_relative_change²``
  expected events, where counting noise is below the change that matters) moved their events
  the same way by ``min_relative_change`` (the common move's rule,
  :func:`models.common_mode.votes`);
* the voting pages' total moved by ``min_relative_change`` too;
* and that many pages moving that way is unlikely by chance: the binomial tail of the pages
  that moved, each moving with the probability learned from the site's ordinary windows (the
  share of voting pages that moved that way), is at most ``significance``. A page's count can
  move by 30 % on its own often; 33 of 38 pages doing so in one window is not chance, while
  3 pages of 4 can be.

The first window of a move is alerted; the following windows of the same move are not (one alert
per episode). The move lasts while the total stays off by ``min_relative_change`` its way,
however many pages still vote for it. Meanwhile the pages' baselines do not learn it, so the
return to normal is not a second, opposite move; after ``max_episode`` windows the move is the
new normal and they learn again. For ``warmup`` windows after a move no new one starts: the site
has other cycles, and a baseline frozen through a spike is behind them when it ends.

>>> det = SiteDetector(warmup=3)
>>> pages = {f"p{i}": 40.0 + i for i in range(8)}
>>> any(det.process(pages).is_anomaly for _ in range(40))
False
>>> spike = det.process({p: 2.5 * v for p, v in pages.items()})
>>> spike.is_anomaly, spike.direction, spike.pages_moved, spike.pages_voting
(True, 'HIGH', 8, 8)
>>> det.process({p: 2.5 * v for p, v in pages.items()}).is_anomaly  # the same episode
False
>>> det.process(pages).is_anomaly  # back to normal: the baselines did not learn the spike
False
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
from scipy import special

from models.base import Stateful
from models.common_mode import votes
from models.params import in_range, integer

#: The pseudo-entity of the site's own alert.
SITE_ENTITY: tuple[str, str] = ("site", "all")
#: The entity type whose windows make up the site (every event has a page).
SITE_PARTS = "page"


def page_traffic(features: Mapping[str, float]) -> float:
    """A page window's human events: its events less its bots' (``bot_share`` of them).

    Bots have their own feature and alerts; a crawl of most pages is not the site's audience
    moving.

    >>> page_traffic({"events": 40.0, "bot_share": 0.25})
    30.0
    """
    return float(round(features["events"] * (1.0 - features["bot_share"])))


@dataclass(frozen=True)
class SiteVerdict:
    """One window end of the site.

    Attributes:
        is_anomaly: the first window of a site move.
        direction: ``HIGH`` or ``LOW`` while a site move lasts, else ``None``.
        observed: events of the voting pages.
        expected: their expected events.
        pages_voting: pages with enough history and traffic to vote.
        pages_moved: voting pages that moved the way of the majority.
        p_value: how likely ``pages_moved`` of ``pages_voting`` pages move the same way by chance
            (binomial tail at the learned share of pages moving that way).
    """

    is_anomaly: bool
    direction: str | None
    observed: float
    expected: float
    pages_voting: int
    pages_moved: int
    p_value: float

    @property
    def relative_change(self) -> float:
        """``observed / expected - 1`` (0 without expected events)."""
        return self.observed / self.expected - 1.0 if self.expected > 0 else 0.0


class SiteDetector(Stateful):
    """Alerts the site, once per episode, when most of its pages move together.

    Args:
        min_relative_change: the least move of a page, and of the total, that counts.
        quorum: the least share of the voting pages that must move the same way.
        significance: the largest p-value of the pages moving together that counts.
        warmup: windows of a page's history before it votes.
        alpha: weight of a new window in a page's baseline (early windows get 1/n: a plain mean),
            and in the learned shares of moving pages.
        max_episode: windows of one move after which the baselines learn it (the new normal).
        forget_after: windows a page may be unseen before its baseline is dropped.
    """

    CHECKS = (
        in_range("min_relative_change", 0, 1, open_low=True),
        in_range("quorum", 0.5, 1),
        in_range("significance", 0, 1, open_low=True),
        integer("warmup", 1),
        in_range("alpha", 0, 1, open_low=True),
        integer("max_episode", 1),
        integer("forget_after", 1),
    )

    def __init__(
        self,
        min_relative_change: float = 0.3,
        quorum: float = 0.75,
        significance: float = 1e-4,
        warmup: int = 12,
        alpha: float = 0.05,
        max_episode: int = 30,
        forget_after: int = 60,
    ) -> None:
        self.min_relative_change = min_relative_change
        self.quorum = quorum
        self.significance = significance
        self.warmup = warmup
        self.alpha = alpha
        self.max_episode = max_episode
        self.forget_after = forget_after
        self.check_params()
        self.pages_: dict[str, list[float]] = {}  # page -> [mean, windows seen, last window]
        self.moving_share_ = [0.5, 0.5]  # share of voting pages moving up, down by chance
        self.windows_ = 0
        self.episode_ = 0  # +1 a move up, -1 a move down, 0 none
        self.episode_windows_ = 0
        self.settling_ = 0  # windows after a move in which no new one starts

    def process(self, pages: Mapping[str, float]) -> SiteVerdict:
        """Judge one window end from its pages' events, then learn it.

        Raises:
            ValueError: an event count that is negative or not finite.
        """
        names = sorted(pages)
        observed = np.array([pages[n] for n in names], dtype=np.float64)
        if not np.isfinite(observed).all() or (observed < 0).any():
            raise ValueError(f"page events must be finite and >= 0, got {dict(pages)!r}")
        verdict, shares = self._judge(names, observed)
        direction = {"HIGH": 1, "LOW": -1}.get(verdict.direction or "", 0)
        if self.episode_ and not self._still_moving(verdict):
            self.episode_, self.episode_windows_, self.settling_ = 0, 0, self.warmup
        alert = direction != 0 and not self.episode_ and not self.settling_
        if alert:
            self.episode_, self.episode_windows_ = direction, 0
        elif not self.episode_:
            self.settling_ = max(0, self.settling_ - 1)
        if self.episode_:
            self.episode_windows_ += 1
            verdict = replace(verdict, direction="HIGH" if self.episode_ > 0 else "LOW")
        if not self.episode_ or self.episode_windows_ > self.max_episode:
            self._learn(names, observed, shares if verdict.direction is None else None)
        self._forget(names)
        self.windows_ += 1
        return replace(verdict, is_anomaly=alert)

    def _still_moving(self, verdict: SiteVerdict) -> bool:
        """Whether the total is still off by ``min_relative_change`` the episode's way."""
        return self.episode_ * verdict.relative_change >= self.min_relative_change

    def _judge(
        self, names: list[str], observed: np.ndarray
    ) -> tuple[SiteVerdict, tuple[float, float] | None]:
        """The window's verdict, and the shares of voting pages that moved up and down."""
        known = [self.pages_.get(n) for n in names]
        expected = np.array([k[0] if k else 0.0 for k in known])
        warm = np.array([bool(k) and k[1] >= self.warmup for k in known])
        m = self.min_relative_change
        voters, _, ups, downs = votes(observed, expected, warm, m)
        total, usual = float(observed[voters].sum()), float(expected[voters].sum())
        n = int(voters.sum())
        if n == 0:
            return SiteVerdict(False, None, total, usual, 0, 0, 1.0), None
        moved_up, moved_down = int(ups.sum()), int(downs.sum())
        up = total >= usual
        moved = moved_up if up else moved_down
        chance = self.moving_share_[0 if up else 1]
        p_value = float(special.betainc(moved, n - moved + 1, chance)) if moved else 1.0
        site_move = (
            moved >= self.quorum * n
            and abs(total / usual - 1.0) >= m
            and p_value <= self.significance
        )
        direction = ("HIGH" if up else "LOW") if site_move else None
        verdict = SiteVerdict(False, direction, total, usual, n, moved, p_value)
        return verdict, (moved_up / n, moved_down / n)

    def _learn(
        self, names: list[str], observed: np.ndarray, shares: tuple[float, float] | None
    ) -> None:
        """Learn the pages' baselines, and (in an ordinary window) the shares of moving pages."""
        if shares is not None:
            for side, share in enumerate(shares):
                self.moving_share_[side] += self.alpha * (share - self.moving_share_[side])
        for name, x in zip(names, observed.tolist(), strict=True):
            page = self.pages_.setdefault(name, [0.0, 0, self.windows_])
            mean, seen = page[0], int(page[1])
            weight = max(self.alpha, 1.0 / (seen + 1))  # as models.baseline: a plain mean first
            page[0] = mean + weight * (x - mean)
            page[1] = seen + 1

    def _forget(self, names: list[str]) -> None:
        for name in names:
            if name in self.pages_:
                self.pages_[name][2] = self.windows_
        stale = [n for n, p in self.pages_.items() if self.windows_ - p[2] >= self.forget_after]
        for name in stale:
            del self.pages_[name]

    def _get_state(self) -> dict[str, Any]:
        return {
            "pages": {n: [float(p[0]), int(p[1]), int(p[2])] for n, p in self.pages_.items()},
            "moving_share": list(self.moving_share_),
            "windows": self.windows_,
            "episode": [self.episode_, self.episode_windows_, self.settling_],
        }

    def _set_state(self, state: Mapping[str, Any]) -> None:
        self.pages_ = {n: list(p) for n, p in state["pages"].items()}
        self.moving_share_ = [float(v) for v in state["moving_share"]]
        self.windows_ = int(state["windows"])
        self.episode_, self.episode_windows_, self.settling_ = (int(v) for v in state["episode"])

