"""Seeded click-stream simulator with labelled anomalies and malformed input.

The simulator writes what a real site would put on the clicks stream: page views, ad
impressions, clicks, add-to-carts and purchases from users with sessions and IPs, with
heavy-tailed (Zipf) popularity, a daily cycle with quieter weekends and a shorter traffic cycle.
On top of that it injects labelled anomalies (the ground truth the job is graded against), and
events a detector must *not* alert on, labelled ``expect_alert: false``: a slow drift (the
control) and the *benign* events of a live site (``benign: true``) — a page appearing, pages
retiring, a campaign launch and a site-wide traffic spike (:data:`BENIGN_KINDS`). Then it
adds malformed lines and late events.

Everything is derived from ``SimulationConfig.seed``: the same config gives the same lines.

>>> sim = simulate(SimulationConfig(minutes=1, events_per_second=50, anomalies=False))
>>> sim.lines == simulate(SimulationConfig(minutes=1, events_per_second=50,
...                                        anomalies=False)).lines
True
>>> sim.truth["events"] == len(sim.lines)
True
"""

from __future__ import annotations

import json
import logging
import math
import random
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from flink_jobs.features import WINDOW_MS
from models.site import SITE_ENTITY

logger = logging.getLogger(__name__)

BROWSER_AGENTS = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 Chrome/131.0 Safari/537.36",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_6) AppleWebKit/605.1.15 Version/18.1 Safari/605.1",
    "Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 Mobile/15E148",
    "Mozilla/5.0 (Linux; Android 15; Pixel 9) AppleWebKit/537.36 Chrome/131.0 Mobile Safari/537",
)
BOT_AGENT = "Mozilla/5.0 (compatible; SiteScanBot/2.1; +https://scan.example/bot)"
REFERRERS = ("https://www.google.com/", "https://news.example/", "", "https://social.example/")
#: Time after which simulated anomalies may start: the models need clean history first.
WARMUP_FRACTION = 0.3
MS = 1000
#: The benign events: real changes of a live site that must not page anyone. A site-wide spike
#: is labelled with the pseudo-entity ``site/all`` (:data:`models.site.SITE_ENTITY`): it covers
#: every entity, and the site's own alert is expected once for it.
BENIGN_KINDS = ("entity_appears", "entity_retires", "campaign_launch", "site_spike")
#: The site-wide spike: organic traffic this many times its usual rate, for this long.
SPIKE_FACTOR, SPIKE_MS = 2.5, 90 * MS
#: Share of impressions a launched campaign's ads take from the others, and how many ads it has.
LAUNCH_SHARE, LAUNCH_ADS = 0.2, 4
#: A retiring page's traffic falls linearly to nothing over this long.
RETIRE_MS = 120 * MS


@dataclass(frozen=True)
class SimulationConfig:
    """What to simulate. Defaults: a 15-minute stream of ~320k events from Monday 00:00 UTC.

    Attributes:
        seed: seed of every random choice.
        start: event time of the first event (timezone-aware).
        minutes: simulated duration.
        events_per_second: mean event rate over a weekday.
        pages, campaigns, ads, users: population sizes (popularity is Zipf-skewed).
        cycle_minutes: period of the short traffic cycle (±30 %).
        daily_amplitude: the daily cycle, ± this share of the mean (peak 18:00 UTC, low 06:00:
            at midnight UTC, where the default run starts, traffic is at its mean and falling).
        weekend_factor: traffic on Saturdays and Sundays relative to weekdays.
        malformed_fraction: share of lines that are malformed (bad JSON, missing or mistyped
            fields, unknown action, far-future timestamps).
        late_fraction: share of events delivered 60–120 s after their event time.
        max_jitter_ms: in-bound out-of-orderness of ordinary events.
        anomalies: inject the labelled anomalies and the drift control.
        benign: inject the benign events (:data:`BENIGN_KINDS`).
    """

    seed: int = 7
    start: datetime = datetime(2026, 1, 5, tzinfo=UTC)
    minutes: float = 15.0
    events_per_second: float = 300.0
    pages: int = 40
    campaigns: int = 8
    ads: int = 80
    users: int = 4000
    cycle_minutes: float = 10.0
    daily_amplitude: float = 0.5
    weekend_factor: float = 0.75
    malformed_fraction: float = 0.004
    late_fraction: float = 0.002
    max_jitter_ms: int = 2000
    anomalies: bool = True
    benign: bool = True

    def __post_init__(self) -> None:
        if self.start.tzinfo is None:
            raise ValueError("start must be timezone-aware")
        for name in ("minutes", "events_per_second", "cycle_minutes"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be > 0")
        for name in ("pages", "campaigns", "ads", "users"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1")
        for name in ("malformed_fraction", "late_fraction"):
            if not 0 <= getattr(self, name) < 0.5:
                raise ValueError(f"{name} must be in [0, 0.5)")
        if not 0 <= self.daily_amplitude < 1:
            raise ValueError("daily_amplitude must be in [0, 1)")
        if self.weekend_factor <= 0:
            raise ValueError("weekend_factor must be > 0")

    @property
    def start_ms(self) -> int:
        """Event time of the start, epoch milliseconds."""
        return int(self.start.timestamp() * MS)

    @property
    def end_ms(self) -> int:
        """Event time of the end, epoch milliseconds."""
        return self.start_ms + int(self.minutes * 60 * MS)


@dataclass
class Simulation:
    """Simulated lines in arrival order and the ground truth that goes with them."""

    lines: list[str]
    truth: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class _Anomaly:
    kind: str
    entities: tuple[tuple[str, str], ...]
    start_ms: int
    end_ms: int
    expect_alert: bool = True
    benign: bool = False

    def active(self, t_ms: int) -> bool:
        return self.start_ms <= t_ms < self.end_ms

    def label(self, lead_ms: int) -> dict[str, Any]:
        """The truth's label: its span in event time starts ``lead_ms`` before the anomaly.

        Events are stamped up to ``max_jitter_ms`` before they happen (bounded
        out-of-orderness), so the first events of an anomaly starting at ``start_ms`` carry
        event times from ``start_ms - max_jitter_ms``, in the window before it if it starts on
        a window boundary.
        """
        return {
            "kind": self.kind,
            "entities": [{"entity_type": t, "entity_id": i} for t, i in self.entities],
            "start_ms": self.start_ms - lead_ms,
            "end_ms": self.end_ms,
            "expect_alert": self.expect_alert,
            "benign": self.benign,
        }


def _zipf_weights(n: int, s: float = 1.1) -> list[float]:
    return [1.0 / (rank**s) for rank in range(1, n + 1)]


class _World:
    """The population: pages, campaigns, ads, users, and the scheduled anomalies."""

    def __init__(self, cfg: SimulationConfig, rng: random.Random) -> None:
        self.pages = [f"page-{i:03d}" for i in range(cfg.pages)]
        self.campaigns = [f"cmp-{i:02d}" for i in range(cfg.campaigns)]
        self.ads = [f"ad-{i:04d}" for i in range(cfg.ads)]
        self.ad_campaign = {ad: self.campaigns[i % cfg.campaigns] for i, ad in enumerate(self.ads)}
        self.ad_ctr = {ad: rng.uniform(0.01, 0.05) for ad in self.ads}
        self.page_weights = _zipf_weights(cfg.pages)
        self.ad_weights = _zipf_weights(cfg.ads)
        n_ips = max(1, cfg.users // 2)
        self.user_ip = [
            f"10.{(k // 65536) % 256}.{(k // 256) % 256}.{k % 256}"
            for k in (rng.randrange(n_ips) for _ in range(cfg.users))
        ]
        self.user_agent = [rng.choice(BROWSER_AGENTS) for _ in range(cfg.users)]
        self.launch_ads: list[str] = []
        self.anomalies: list[_Anomaly] = _schedule(cfg, self) if cfg.anomalies else []
        if cfg.benign:  # its own random stream: the population above stays what it was
            self.anomalies += _benign(cfg, self, random.Random(cfg.seed + 2))

    def by_kind(self, kind: str) -> _Anomaly | None:
        return next((a for a in self.anomalies if a.kind == kind), None)

    def page_weights_at(self, t_ms: int) -> tuple[list[str], list[float]]:
        """The pages with traffic at ``t_ms`` and their weights (appearing and retiring)."""
        appears, retires = self.by_kind("entity_appears"), self.by_kind("entity_retires")
        pages, weights = list(self.pages), list(self.page_weights)
        if retires is not None and t_ms >= retires.start_ms:
            left = max(0.0, 1 - (t_ms - retires.start_ms) / RETIRE_MS)
            gone = {i for _, i in retires.entities}
            weights = [w * left if p in gone else w for p, w in zip(pages, weights, strict=True)]
        if appears is not None and appears.active(t_ms):
            pages.append(appears.entities[0][1])
            weights.append(sorted(self.page_weights)[len(self.page_weights) // 2])
        return pages, weights


def _window_start(cfg: SimulationConfig, t_ms: int) -> int:
    return t_ms - (t_ms - cfg.start_ms) % WINDOW_MS


def _benign(cfg: SimulationConfig, world: _World, rng: random.Random) -> list[_Anomaly]:
    """Schedule the benign events at seeded times after the warm-up; grow the population.

    A new page appears, the two last pages no anomaly uses retire, a new campaign launches
    with its own ads, and the whole site's organic traffic spikes for a minute and a half.
    """
    first = cfg.start_ms + int((cfg.end_ms - cfg.start_ms) * WARMUP_FRACTION)

    def at(latest: int) -> int:
        return _window_start(cfg, rng.randrange(first, max(first + 1, latest)))

    quarter = (cfg.end_ms - cfg.start_ms) // 4
    used = {i for a in world.anomalies for _, i in a.entities}
    new_page = f"page-{cfg.pages:03d}"
    retiring = tuple(("page", p) for p in [p for p in world.pages if p not in used][-2:])
    campaign = f"cmp-{cfg.campaigns:02d}"
    world.launch_ads = [f"ad-{cfg.ads + k:04d}" for k in range(LAUNCH_ADS)]
    for ad in world.launch_ads:
        world.ad_campaign[ad] = campaign
        world.ad_ctr[ad] = rng.uniform(0.01, 0.05)
    spike = at(cfg.end_ms - SPIKE_MS - 60 * MS)
    return [
        _Anomaly("entity_appears", (("page", new_page),), at(cfg.end_ms - quarter), cfg.end_ms,
                 False, True),
        _Anomaly("entity_retires", retiring, at(cfg.end_ms - RETIRE_MS), cfg.end_ms,
                 False, True),
        _Anomaly("campaign_launch",
                 (("campaign", campaign), *(("ad", ad) for ad in world.launch_ads)),
                 at(cfg.end_ms - quarter), cfg.end_ms, False, True),
        _Anomaly("site_spike", (SITE_ENTITY,), spike, spike + SPIKE_MS, False, True),
    ]


def _schedule(cfg: SimulationConfig, world: _World) -> list[_Anomaly]:
    """Place the anomalies on whole 10 s windows after the warm-up, one after another."""
    span = cfg.end_ms - cfg.start_ms
    first = cfg.start_ms + int(span * WARMUP_FRACTION)
    slot = (cfg.end_ms - first) // 4

    def window(k: int, fraction: float) -> tuple[int, int]:
        start = _window_start(cfg, first + k * slot)
        length = max(WINDOW_MS * 3, int(slot * fraction) // WINDOW_MS * WINDOW_MS)
        return start, start + length

    flood_ad, broken_ad = world.ads[4], world.ads[0]
    outage_page, drift_page = world.pages[2], world.pages[5]
    crawled = tuple(world.pages[8:38])
    return [
        _Anomaly(
            "click_flood",
            (("ad", flood_ad), ("campaign", world.ad_campaign[flood_ad]), ("page", world.pages[1])),
            *window(0, 0.6),
        ),
        _Anomaly("broken_ad", (("ad", broken_ad),), *window(1, 0.7)),
        _Anomaly("page_outage", (("page", outage_page),), *window(2, 0.6)),
        _Anomaly("bot_crawl", tuple(("page", p) for p in crawled), *window(3, 0.6)),
        _Anomaly("slow_drift", (("page", drift_page),), cfg.start_ms, cfg.end_ms, False),
    ]


class _Generator:
    def __init__(self, cfg: SimulationConfig) -> None:
        self.cfg = cfg
        self.rng = random.Random(cfg.seed)
        self.world = _World(cfg, self.rng)
        self.seq = 0

    def event(self, t_ms: int, user: int, page: str, action: str, **extra: Any) -> dict:
        self.seq += 1
        w = self.world
        event = {
            "event_id": f"ev-{self.cfg.seed}-{self.seq:08d}",
            "event_time": t_ms,
            "user_id": f"u-{user:05d}",
            "session_id": f"s-{user:05d}-{t_ms // 600_000}",
            "ip": w.user_ip[user],
            "user_agent": w.user_agent[user],
            "page": page,
            "campaign": None,
            "ad_id": None,
            "action": action,
            "referrer": REFERRERS[user % len(REFERRERS)],
        }
        event.update(extra)
        return event

    def rate_factor(self, t_ms: int) -> float:
        """Organic traffic at ``t_ms`` relative to the weekday mean (all cycles, the spike)."""
        cfg = self.cfg
        moment = datetime.fromtimestamp(t_ms / MS, UTC)
        hour = moment.hour + moment.minute / 60 + moment.second / 3600
        daily = 1.0 + cfg.daily_amplitude * math.cos(2 * math.pi * (hour - 18) / 24)
        weekly = cfg.weekend_factor if moment.weekday() >= 5 else 1.0
        phase = 2 * math.pi * (t_ms - cfg.start_ms) / (cfg.cycle_minutes * 60 * MS)
        spike = self.world.by_kind("site_spike")
        burst = SPIKE_FACTOR if spike is not None and spike.active(t_ms) else 1.0
        return daily * weekly * (1.0 + 0.3 * math.sin(phase)) * burst

    def second(self, t_ms: int) -> list[dict]:
        """All events of one simulated second, in event-time order before jitter."""
        cfg, w, rng = self.cfg, self.world, self.rng
        outage, broken = w.by_kind("page_outage"), w.by_kind("broken_ad")
        drift = w.by_kind("slow_drift")
        # ~2.6 events per page view (1 view + 1.5 impressions + clicks and conversions).
        views = _poisson(rng, cfg.events_per_second / 2.6 * self.rate_factor(t_ms))
        out: list[dict] = []
        pages = rng.choices(*w.page_weights_at(t_ms), k=views)
        if drift is not None:  # the control: +60 % traffic on one page over the whole run
            progress = (t_ms - cfg.start_ms) / (cfg.end_ms - cfg.start_ms)
            drift_page = drift.entities[0][1]
            extra = _poisson(rng, cfg.events_per_second / 2.6 * 0.04 * 0.6 * progress)
            pages += [drift_page] * extra
        for page in pages:
            if outage is not None and outage.active(t_ms) and page == outage.entities[0][1]:
                continue
            ts = t_ms + rng.randrange(MS)
            user = rng.randrange(cfg.users)
            out.append(self.event(ts, user, page, "page_view"))
            for ad in self.ads(t_ms, 1 + (rng.random() < 0.5)):
                camp = w.ad_campaign[ad]
                out.append(self.event(ts + 1, user, page, "impression", ad_id=ad, campaign=camp))
                if broken is not None and broken.active(t_ms) and ad == broken.entities[0][1]:
                    continue
                if rng.random() < w.ad_ctr[ad]:
                    out.append(self.event(ts + 2, user, page, "click", ad_id=ad, campaign=camp))
                    if rng.random() < 0.15:
                        out.append(self.event(ts + 3, user, page, "add_to_cart", campaign=camp))
                        if rng.random() < 0.4:
                            out.append(self.event(ts + 4, user, page, "purchase", campaign=camp))
        out += self.injected(t_ms)
        return out

    def ads(self, t_ms: int, k: int) -> list[str]:
        """The ``k`` ads shown with a page view at ``t_ms`` (launched ads take their share)."""
        w, rng = self.world, self.rng
        ads = rng.choices(w.ads, w.ad_weights, k=k)
        launch = w.by_kind("campaign_launch")
        if launch is not None and launch.active(t_ms):
            ads = [rng.choice(w.launch_ads) if rng.random() < LAUNCH_SHARE else a for a in ads]
        return ads

    def injected(self, t_ms: int) -> list[dict]:
        """Events of the click flood and the bot crawl active at ``t_ms``."""
        w, rng, out = self.world, self.rng, []
        flood, bot = w.by_kind("click_flood"), w.by_kind("bot_crawl")
        if flood is not None and flood.active(t_ms):
            ad, camp, page = (e[1] for e in flood.entities)
            for _ in range(_poisson(rng, 6.0)):
                k = rng.randrange(3)
                ev = self.event(t_ms + rng.randrange(MS), k, page, "click", ad_id=ad, campaign=camp)
                ev.update(ip=f"203.0.113.{10 + k}", user_id=f"u-flood-{k}")
                out.append(ev)
        if bot is not None and bot.active(t_ms):
            crawled = [e[1] for e in bot.entities]
            for _ in range(_poisson(rng, 12.0)):
                ev = self.event(t_ms + rng.randrange(MS), 0, rng.choice(crawled), "page_view")
                ev.update(
                    ip="198.51.100.7",
                    user_agent=BOT_AGENT,
                    user_id=f"u-bot-{rng.randrange(10**6):06d}",
                    session_id=None,
                    referrer="",
                )
                out.append(ev)
        return out


def _poisson(rng: random.Random, lam: float) -> int:
    """Poisson sample (Knuth for small λ, normal approximation above 50)."""
    if lam <= 0:
        return 0
    if lam > 50:
        return max(0, round(rng.gauss(lam, math.sqrt(lam))))
    limit, k, p = math.exp(-lam), 0, 1.0
    while True:
        p *= rng.random()
        if p <= limit:
            return k
        k += 1


MALFORMED_KINDS = (
    "bad_json",
    "missing_field:user_id",
    "missing_field:event_time",
    "bad_type:event_time",
    "bad_type:page",
    "bad_action",
    "missing_field:ad_id",
    "event_time_out_of_range",
)


def _malform(event: dict, kind: str) -> str:
    """Turn a valid event into a malformed line whose dead-letter reason is ``kind``."""
    e = dict(event)
    if kind == "bad_json":
        return json.dumps(e)[:-7]  # truncated mid-object
    if kind.startswith("missing_field:"):
        e.pop(kind.split(":")[1])
        if kind == "missing_field:ad_id":
            e["action"] = "impression"
    elif kind == "bad_type:event_time":
        e["event_time"] = datetime.fromtimestamp(e["event_time"] / MS, UTC).isoformat()
    elif kind == "bad_type:page":
        e["page"] = {"path": e["page"]}
    elif kind == "bad_action":
        e["action"] = "hover"
    elif kind == "event_time_out_of_range":
        e["event_time"] += 100 * 365 * 86_400 * MS
    return json.dumps(e, separators=(",", ":"))


def simulate(cfg: SimulationConfig) -> Simulation:
    """Generate the stream described by ``cfg``.

    Returns the JSON lines in arrival order and the ground truth: the labelled anomalies,
    the expected dead-letter reason of every malformed or late line (by line number), and
    counts.

    >>> sim = simulate(SimulationConfig(minutes=2, events_per_second=100, seed=3))
    >>> [a["kind"] for a in sim.truth["anomalies"] if a["expect_alert"]]
    ['click_flood', 'broken_ad', 'page_outage', 'bot_crawl']
    >>> [a["kind"] for a in sim.truth["anomalies"] if a["benign"]] == list(BENIGN_KINDS)
    True
    >>> all(json.loads(sim.lines[i]) for i, r in sim.truth["dead_letters"].items() if r == "late")
    True
    """
    gen = _Generator(cfg)
    rng = random.Random(cfg.seed + 1)  # separate stream: malformed/late choices don't shift events
    lines: list[str] = []
    dead: dict[int, str] = {}
    delayed: list[tuple[int, dict]] = []  # (arrival second, event) of late events
    # Late events need a watermark ahead of them (not in the first 3 minutes) and must be
    # delivered before the stream ends (none generated in the last 121 s).
    late_from, late_until = cfg.start_ms + 180 * MS, cfg.end_ms - 121 * MS
    for t_ms in range(cfg.start_ms, cfg.end_ms, MS):
        events = gen.second(t_ms)
        for ev in events:  # bounded out-of-orderness
            ev["event_time"] -= rng.randrange(cfg.max_jitter_ms + 1)
        events.sort(key=lambda e: e["event_id"])
        due = [e for at, e in delayed if at <= t_ms]
        delayed = [(at, e) for at, e in delayed if at > t_ms]
        for ev in due:
            dead[len(lines)] = "late"
            lines.append(json.dumps(ev, separators=(",", ":")))
        for ev in events:
            roll = rng.random()
            if roll < cfg.malformed_fraction:
                kind = MALFORMED_KINDS[rng.randrange(len(MALFORMED_KINDS))]
                dead[len(lines)] = kind
                lines.append(_malform(ev, kind))
            elif (roll < cfg.malformed_fraction + cfg.late_fraction
                  and late_from <= t_ms < late_until):
                delayed.append((t_ms + rng.randrange(60, 121) * MS, ev))
            else:
                lines.append(json.dumps(ev, separators=(",", ":")))
    assert not delayed, "late events are scheduled to arrive before the end"
    reasons: dict[str, int] = {}
    for r in dead.values():
        reasons[r] = reasons.get(r, 0) + 1
    truth = {
        "config": {**asdict(cfg), "start": cfg.start.isoformat()},
        "events": len(lines),
        "valid_events": len(lines) - len(dead),
        "dead_letter_reasons": dict(sorted(reasons.items())),
        "dead_letters": dead,
        "anomalies": [a.label(lead_ms=cfg.max_jitter_ms) for a in gen.world.anomalies],
    }
    logger.info("simulated %d lines (%d dead letters expected)", len(lines), len(dead))
    return Simulation(lines, truth)


def write_simulation(sim: Simulation, out_dir: Path) -> tuple[Path, Path]:
    """Write ``events.jsonl`` and ``truth.json`` into ``out_dir``; return both paths."""
    out_dir.mkdir(parents=True, exist_ok=True)
    events, truth = out_dir / "events.jsonl", out_dir / "truth.json"
    events.write_text("\n".join(sim.lines) + "\n", encoding="utf-8")
    truth.write_text(json.dumps(sim.truth, indent=1), encoding="utf-8")
    return events, truth
