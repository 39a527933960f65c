"""A published model version: where it lives, and the card that says what it is.

A retrained forest is published under a model root (a directory or ``s3://bucket/prefix``)::

    models/<name>/<version>/model.skops   # the skops artefact
    models/<name>/<version>/card.json     # this card: inputs, threshold, metrics, SHA-256, …
    models/<name>/current.json            # the pointer: {"name": …, "version": …}

The job loads a version only if the artefact's SHA-256 equals the card's (and the pin in
``scoring.model_sha256`` when one is set). The card's ``inputs`` are columns of the scored-window
record, in the order the forest reads them: window features (:data:`FEATURE_NAMES`) and the
online detector's outputs (:data:`VERDICT_INPUTS`); ``threshold`` is the forest probability at or
above which it calls a window anomalous.

>>> card = ModelCard(name="click-forest", version="20260105T0015", sha256="ab" * 32,
...                  inputs=("clicks", "ctr", "score"), threshold=0.62,
...                  training_range={"start": "2026-01-05T00:00:00Z",
...                                  "end": "2026-01-05T00:12:00Z"})
>>> ModelCard.from_json(card.to_json()) == card
True
>>> version_key("s3://archive/clicksentry", "click-forest", "20260105T0015", ARTEFACT)
's3://archive/clicksentry/models/click-forest/20260105T0015/model.skops'
>>> pointer_key("", "click-forest")
'models/click-forest/current.json'
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from models.features import FEATURE_NAMES

ARTEFACT = "model.skops"
CARD = "card.json"
POINTER = "current.json"
#: The online detector's outputs a forest may read besides the features (anomaly record fields).
VERDICT_INPUTS: tuple[str, ...] = ("score", "raw_score", "grade", "confidence")
#: Every column a card may name as an input.
KNOWN_INPUTS: tuple[str, ...] = (*FEATURE_NAMES, *VERDICT_INPUTS)
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
_SHA256_HEX = re.compile(r"^[0-9a-f]{64}$")


@dataclass(frozen=True)
class ModelCard:
    """What a published version is: validated on construction (ValueError names the field)."""

    name: str
    version: str
    sha256: str
    inputs: tuple[str, ...]
    threshold: float
    training_range: Mapping[str, str]
    metrics: Mapping[str, Any] = field(default_factory=dict)
    library_versions: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for name in ("name", "version"):
            if not isinstance(getattr(self, name), str) or not _NAME.match(getattr(self, name)):
                raise ValueError(f"model card {name}: {getattr(self, name)!r} is not a name "
                                 "(letters, digits, '.', '_', '-'; at most 128)")
        if not isinstance(self.sha256, str) or not _SHA256_HEX.match(self.sha256):
            raise ValueError("model card sha256: not 64 lower-case hex digits")
        object.__setattr__(self, "inputs", tuple(self.inputs))
        unknown = [i for i in self.inputs if i not in KNOWN_INPUTS]
        if not self.inputs or unknown or len(set(self.inputs)) != len(self.inputs):
            raise ValueError(f"model card inputs: {list(self.inputs)} must be distinct columns "
                             f"of {list(KNOWN_INPUTS)} (unknown: {unknown})")
        threshold = self.threshold
        if isinstance(threshold, bool) or not isinstance(threshold, int | float) \
                or not 0.0 <= threshold <= 1.0:
            raise ValueError(f"model card threshold: {threshold!r} is not a probability")
        if set(self.training_range) != {"start", "end"}:
            raise ValueError("model card training_range: needs exactly 'start' and 'end'")

    def to_json(self) -> str:
        """The card as JSON (sorted keys, as published)."""
        record = asdict(self)
        record["inputs"] = list(self.inputs)
        return json.dumps(record, sort_keys=True, indent=2) + "\n"

    @classmethod
    def from_json(cls, text: str | bytes) -> ModelCard:
        """Read a published card; ValueError names what is missing or wrong."""
        try:
            record = json.loads(text)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"model card: not JSON ({exc})") from None
        if not isinstance(record, dict):
            raise ValueError("model card: not a JSON object")
        wanted = {"name", "version", "sha256", "inputs", "threshold", "training_range"}
        missing = sorted(wanted - set(record))
        if missing:
            raise ValueError(f"model card: missing {missing}")
        known = wanted | {"metrics", "library_versions"}
        return cls(**{k: v for k, v in record.items() if k in known})


def pointer_json(name: str, version: str) -> str:
    """The body of ``models/<name>/current.json`` naming the current version.

    >>> pointer_json("click-forest", "v2").strip()
    '{"name": "click-forest", "version": "v2"}'
    """
    return json.dumps({"name": name, "version": version}) + "\n"


def read_pointer(text: str | bytes) -> tuple[str, str]:
    """``(name, version)`` from a pointer's body; ValueError if it is not one.

    >>> read_pointer('{"name": "click-forest", "version": "v2"}')
    ('click-forest', 'v2')
    """
    try:
        record = json.loads(text)
        name, version = record["name"], record["version"]
    except (TypeError, ValueError, KeyError) as exc:
        raise ValueError(f"model pointer: not {{name, version}} JSON ({exc!r})") from None
    for value in (name, version):
        if not isinstance(value, str) or not _NAME.match(value):
            raise ValueError(f"model pointer: {value!r} is not a name")
    return name, version


def version_key(root: str, name: str, version: str, file: str) -> str:
    """Path (below a model root) of ``file`` of one published version."""
    return f"{_prefix(root)}models/{name}/{version}/{file}"


def pointer_key(root: str, name: str) -> str:
    """Path (below a model root) of a model's current-version pointer."""
    return f"{_prefix(root)}models/{name}/{POINTER}"


def _prefix(root: str) -> str:
    return root if not root or root.endswith("/") else root + "/"
