"""Following ``scoring.model_uri``: the version named is loaded, new ones take over, bad ones are
turned away and the last good one keeps deciding.

GIVEN forests published under a local model root as the retraining notebook publishes them
(``models/<name>/<version>/model.skops`` + ``card.json``, ``models/<name>/current.json``);
WHEN the pointer moves and the poll interval passes (a fake clock);
THEN the watch swaps to the new version, or, for a corrupted or mismatched one, reports it
rejected once and keeps the previous version.
"""

from __future__ import annotations

from pathlib import Path

import published_models
import pytest
from published_models import NAME, forest

from models.model_card import pointer_key, version_key
from udfs.model_watch import ModelEvent, ModelWatch, parse_model_uri

INPUTS = ("clicks", "ctr", "score")


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def publish(root: Path, version: str, **kwargs) -> str:
    return published_models.publish(root, version, INPUTS, **kwargs)


@pytest.fixture
def root(tmp_path) -> Path:
    return tmp_path / "ml"


def watch_of(root: Path, clock: Clock, **kwargs) -> ModelWatch:
    return ModelWatch(pointer_key(str(root), NAME), poll_seconds=30, clock=clock, **kwargs)


def test_the_pointer_s_version_loads_and_a_new_one_takes_over_after_the_interval(root):
    # GIVEN version 1 published and pointed at
    clock = Clock()
    publish(root, "v1")
    watch = watch_of(root, clock)
    # WHEN the watch starts
    assert watch.start().card.version == "v1"
    # AND version 2 is published, but the poll interval has not passed
    publish(root, "v2")
    clock.now = 29.0
    assert watch.current().card.version == "v1"
    # THEN once it has, version 2 decides
    clock.now = 30.0
    assert watch.current().card.version == "v2"
    assert watch.take_events() == [ModelEvent("loaded", NAME, "v1"),
                                   ModelEvent("loaded", NAME, "v2")]


@pytest.mark.parametrize(
    ("bad", "reason"),
    [
        (dict(corrupt=True), "SHA-256"),
        (dict(estimator=forest(n_inputs=2)), "reads 2 inputs, its card names 3"),
    ],
)
def test_a_bad_version_is_rejected_once_and_the_last_good_one_keeps_deciding(root, bad, reason):
    # GIVEN version 1 deciding
    clock = Clock()
    publish(root, "v1")
    watch = watch_of(root, clock)
    watch.start()
    watch.take_events()
    # WHEN the pointer moves to a version that cannot be used, and the watch polls twice
    publish(root, "v2", **bad)
    for now in (30.0, 60.0):
        clock.now = now
        # THEN version 1 keeps deciding
        assert watch.current().card.version == "v1"
    # AND the bad version is reported once, with why
    [event] = watch.take_events()
    assert (event.event, event.version) == ("rejected", "v2")
    assert reason in event.reason
    # AND a good version published after it still takes over
    publish(root, "v3")
    clock.now = 90.0
    assert watch.current().card.version == "v3"


def test_a_pin_other_than_the_card_s_hash_fails_the_start_naming_the_setting(root):
    publish(root, "v1")
    watch = ModelWatch(pointer_key(str(root), NAME), pin="0" * 64)
    with pytest.raises(ValueError, match=r"scoring.model_uri: click-forest/v1: .*model_sha256"):
        watch.start()


def test_a_pin_equal_to_the_card_s_hash_loads(root):
    pin = publish(root, "v1")
    assert ModelWatch(pointer_key(str(root), NAME), pin=pin.upper()).start().card.version == "v1"


def test_a_missing_model_fails_the_start_naming_the_setting(root):
    with pytest.raises(ValueError, match=r"scoring.model_uri: the pointer of click-forest"):
        ModelWatch(pointer_key(str(root), NAME)).start()
    publish(root, "v1", point=False)
    with pytest.raises(ValueError, match=r"scoring.model_uri: click-forest/v2"):
        ModelWatch(version_key(str(root), NAME, "v2", "")).start()


def test_a_fixed_version_is_never_swapped(root):
    # GIVEN the URI of version 1 itself
    clock = Clock()
    publish(root, "v1")
    watch = ModelWatch(version_key(str(root), NAME, "v1", ""), poll_seconds=1, clock=clock)
    watch.start()
    # WHEN the pointer moves on
    publish(root, "v2")
    clock.now = 100.0
    # THEN version 1 stays
    assert watch.current().card.version == "v1"


@pytest.mark.parametrize("uri", ["s3://bucket/model.skops", "/srv/models/current.json", ""])
def test_a_uri_of_neither_form_is_refused_naming_the_setting(uri):
    with pytest.raises(ValueError, match=r"scoring\.model_uri"):
        parse_model_uri(uri)
