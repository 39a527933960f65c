"""The job's acceptance scenarios on a small synthetic click stream (see conftest)."""

import pytest

from models.detector import score_batches
from models.registry import DEFAULT_DETECTOR, make_detector

EXPECTED_KINDS = {
    "click_flood": {"clicks_high", "ctr_high", "top_ip_share_high", "events_high"},
    "broken_ad": {"clicks_low", "ctr_low"},
    "outage": {f"{f}_low" for f in ("events", "impressions", "page_views", "unique_users",
                                    "unique_sessions", "unique_ips", "clicks")},
    "bot_crawl": {"bot_share_high"},
}


def run_stream(detector, stream):
    return [
        (e, w, stream.labels.get((e, w)), verdict)
        for w, out in enumerate(score_batches(detector, stream.batches))
        for e, verdict in out
        if verdict.is_anomaly
    ]


#: The kinds each detector must find. rcf-kda is KDA's forest on the raw click shares (ctr,
#: top_ip_share, bot_share), shared by entities of every size: a flood and a bot crawl move the
#: shares far from every entity's; a broken ad (ctr 0) and an outage (all 0) stay within the
#: spread of small entities' shares, so KDA's function does not single them out.
DETECTS = {DEFAULT_DETECTOR: set(EXPECTED_KINDS), "rcf-kda": {"click_flood", "bot_crawl"}}


@pytest.fixture(scope="module", params=sorted(DETECTS))
def flags(request, click_stream):
    return run_stream(make_detector(request.param), click_stream)


@pytest.mark.parametrize(
    ("flags", "kind"),
    [(name, kind) for name in sorted(DETECTS) for kind in sorted(DETECTS[name])],
    indirect=["flags"],
)
def test_detects_each_injected_kind(flags, kind):
    # GIVEN the stream WHEN the detector scores it THEN each episode is flagged, explained right
    hits = [v for _, _, label, v in flags if label == kind]
    assert hits, f"{kind} not detected"
    assert hits[0].kind in EXPECTED_KINDS[kind]
    assert hits[0].grade > 0 and hits[0].confidence == 1.0


def test_stays_quiet_on_drift_and_normal_traffic(flags, click_stream):
    false_flags = [(e, w) for e, w, label, _ in flags if label is None]
    assert not [f for f in false_flags if f[0] in click_stream.drifting]
    scored = sum(len(b) for b in click_stream.batches)
    assert len(false_flags) <= 0.002 * scored


def test_default_explains_only_material_moves(click_stream):
    # GIVEN the default's flags on the stream
    flags = run_stream(make_detector(DEFAULT_DETECTOR), click_stream)
    detector = make_detector(DEFAULT_DETECTOR)
    assert flags
    for _, _, _, verdict in flags:
        # THEN each carries its significance and lists only features that moved materially,
        # each in the direction it moved
        assert verdict.p_value is not None and verdict.p_value <= detector.significance
        assert verdict.explanation
        for part in verdict.explanation.values():
            change = abs(part["value"] - part["expected"])
            assert change > 0 and change >= detector.min_relative_change * abs(part["expected"])
            assert part["DIRECTION"] == ("HIGH" if part["value"] > part["expected"] else "LOW")
