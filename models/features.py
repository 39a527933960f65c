"""The click window features: their names and order, which are counts and which are shares.

>>> FEATURE_NAMES[:3]
('events', 'impressions', 'clicks')
>>> SHARE_FEATURES
('ctr', 'top_ip_share', 'bot_share')
>>> len(COUNT_FEATURES) + len(SHARE_FEATURES) == len(FEATURE_NAMES)
True
"""

from __future__ import annotations

#: The features of an entity window, in the order the job hands them to the detector.
FEATURE_NAMES: tuple[str, ...] = (
    "events",
    "impressions",
    "clicks",
    "ctr",
    "page_views",
    "add_to_carts",
    "purchases",
    "unique_users",
    "unique_sessions",
    "unique_ips",
    "top_ip_share",
    "bot_share",
)
#: Each share (a fraction 0..1) and the count it is a fraction of: its sampling noise shrinks as
#: that count grows.
SHARE_DENOMINATORS: dict[str, str] = {
    "ctr": "impressions",
    "top_ip_share": "events",
    "bot_share": "events",
}
SHARE_FEATURES: tuple[str, ...] = tuple(SHARE_DENOMINATORS)
#: Shares that are not a proportion of independent trials: the busiest IP's share of the events
#: is the largest of many shares, whose usual value depends on the volume.
MAXIMUM_SHARES: tuple[str, ...] = ("top_ip_share",)
#: Every other feature counts something.
COUNT_FEATURES: tuple[str, ...] = tuple(n for n in FEATURE_NAMES if n not in SHARE_DENOMINATORS)
