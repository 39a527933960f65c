"""``scoring.model_uri``: load the published forest, notice new versions, keep the last good one.

``scoring.model_uri`` names, locally or on S3 (layout in :mod:`models.model_card`):

* a model's pointer, ``<root>/models/<name>/current.json``: the version it names is loaded, and
  the pointer is read again every ``scoring.model_poll_seconds`` (processing time, checked as
  windows are scored); a new version takes over between two batches of windows — no restart,
  no state touched;
* one version, ``<root>/models/<name>/<version>/`` (or its ``card.json``): that version only.

A new version that cannot be used — card or artefact missing, SHA-256 not the card's or not the
pin ``scoring.model_sha256``, untrusted types, inputs that do not match — is logged, reported
once as a ``rejected`` :class:`ModelEvent` and ignored: the previous version keeps deciding.
At start there is no previous version: :meth:`ModelWatch.start` raises, naming the setting.

>>> parse_model_uri("s3://archive/ml/models/click-forest/current.json")
ModelLocation(root='s3://archive/ml/', name='click-forest', version=None)
>>> parse_model_uri("/srv/models/click-forest/20260105T0015/")
ModelLocation(root='/srv/', name='click-forest', version='20260105T0015')
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from models.model_card import ARTEFACT, CARD, POINTER, pointer_key, read_pointer, version_key
from models.published_forest import PublishedForest, load_published
from udfs.s3_uri import split_s3_uri

log = logging.getLogger(__name__)

SETTING = "scoring.model_uri"


@dataclass(frozen=True)
class ModelLocation:
    """A model root, the model's name and, for a fixed version, the version."""

    root: str
    name: str
    version: str | None


@dataclass(frozen=True)
class ModelEvent:
    """A version taking over (``loaded``) or turned away (``rejected``, with the reason)."""

    event: str
    name: str
    version: str
    reason: str = ""


def parse_model_uri(uri: str) -> ModelLocation:
    """Split ``scoring.model_uri``; ValueError names the setting when it is neither form."""
    parts = uri.rstrip("/").split("/")
    if parts and parts[-1] == CARD:
        parts = parts[:-1]
    if len(parts) >= 3 and parts[-1] == POINTER and parts[-3] == "models":
        return ModelLocation("/".join(parts[:-3]) + "/", parts[-2], None)
    if len(parts) >= 4 and parts[-3] == "models":
        return ModelLocation("/".join(parts[:-3]) + "/", parts[-2], parts[-1])
    raise ValueError(f"{SETTING}: {uri!r} is neither …/models/<name>/{POINTER} nor "
                     f"…/models/<name>/<version>/")


def read_uri(uri: str, s3_endpoint: str | None = None) -> bytes:
    """The bytes at a local path or an ``s3://bucket/key`` URI."""
    if not uri.startswith("s3://"):
        return Path(uri).read_bytes()
    import boto3  # only where a model lives on S3

    bucket, key = split_s3_uri(uri)
    s3 = boto3.client("s3", endpoint_url=s3_endpoint or None)
    return s3.get_object(Bucket=bucket, Key=key)["Body"].read()


class ModelWatch:
    """The forest ``scoring.model_uri`` names now, re-read every ``poll_seconds``."""

    def __init__(
        self,
        uri: str,
        pin: str = "",
        poll_seconds: float = 60.0,
        read: Callable[[str], bytes] = read_uri,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.location = parse_model_uri(uri)
        self.pin = pin
        self.poll_seconds = poll_seconds
        self.read = read
        self.clock = clock
        self.model: PublishedForest | None = None
        self.rejected: set[str] = set()
        self.events: list[ModelEvent] = []
        self.polled_at = clock()

    def start(self) -> PublishedForest:
        """Load the version named now; ValueError naming the setting if it cannot be used."""
        try:
            version = self._named_version()
        except (OSError, ValueError, KeyError) as exc:
            raise ValueError(f"{SETTING}: the pointer of {self.location.name}: {exc}") from exc
        try:
            self.model = self._load(version)
        except (OSError, ValueError, KeyError) as exc:
            raise ValueError(f"{SETTING}: {self.location.name}/{version}: {exc}") from exc
        self.events.append(ModelEvent("loaded", self.location.name, version))
        log.info("model %s/%s loaded", self.location.name, version)
        return self.model

    def current(self) -> PublishedForest | None:
        """The deciding version, after reading the pointer again if it is due."""
        if self.location.version is None and self.clock() - self.polled_at >= self.poll_seconds:
            self.polled_at = self.clock()
            self._poll()
        return self.model

    def take_events(self) -> list[ModelEvent]:
        """Events since the last call (for the operator to emit and count)."""
        events, self.events = self.events, []
        return events

    def _named_version(self) -> str:
        if self.location.version is not None:
            return self.location.version
        name, version = read_pointer(self.read(pointer_key(self.location.root,
                                                           self.location.name)))
        if name != self.location.name:
            raise ValueError(f"{SETTING}: the pointer of {self.location.name} names {name}")
        return version

    def _load(self, version: str) -> PublishedForest:
        root, name = self.location.root, self.location.name
        card = self.read(version_key(root, name, version, CARD))
        artefact = self.read(version_key(root, name, version, ARTEFACT))
        model = load_published(card, artefact, self.pin)
        if (model.card.name, model.card.version) != (name, version):
            raise ValueError(f"its card is {model.card.name}/{model.card.version}")
        return model

    def _poll(self) -> None:
        try:
            version = self._named_version()
        except (OSError, ValueError, KeyError) as exc:
            log.warning("model pointer of %s unreadable, keeping %s: %s", self.location.name,
                        self._current_version(), exc)
            return
        if version == self._current_version() or version in self.rejected:
            return
        try:
            model = self._load(version)
        except Exception as exc:  # any failure to load keeps the last good model
            self.rejected.add(version)
            self.events.append(ModelEvent("rejected", self.location.name, version, str(exc)))
            log.error("model %s/%s rejected, keeping %s: %s", self.location.name, version,
                      self._current_version(), exc)
            return
        self.model = model
        self.events.append(ModelEvent("loaded", self.location.name, version))
        log.info("model %s/%s took over", self.location.name, version)

    def _current_version(self) -> str | None:
        return None if self.model is None else self.model.card.version
