"""Job configuration: one declared table of settings, read once and validated at start-up.

On Amazon Managed Service for Apache Flink the runtime properties live in
``/etc/flink/application_properties.json`` as a list of property groups::

    [{"PropertyGroupId": "job", "PropertyMap": {"source": "kinesis", "parallelism": "2"}}]

Elsewhere the same format is read from the file named by ``CLICKSENTRY_PROPERTIES`` — or,
locally (``IS_LOCAL`` set) without it, nothing, and every setting keeps its default. Property
values are strings on Managed Flink; each setting parses its own. Every problem names the setting:

>>> import os; os.environ["IS_LOCAL"] = "1"  # no properties file: defaults
>>> load_config(groups={"job": {"parallelism": "zero"}})
Traceback (most recent call last):
...
flink_jobs.config.ConfigError: job.parallelism: expected an integer, got 'zero'
>>> load_config(groups={"job": {"paralelism": "2"}})
Traceback (most recent call last):
...
flink_jobs.config.ConfigError: job.paralelism: unknown setting (known in job: ...)
>>> load_config(groups={"job": {"source": "embedded"}}).get("job", "parallelism")
1
>>> load_config(groups={"scoring": {"detector": "rcf-kda",
...                                 "detector_params": '{"numberOfTrees": 0}'}})
Traceback (most recent call last):
...
flink_jobs.config.ConfigError: scoring.detector_params: numberOfTrees: ... >= 1, got 0
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from models.features import FEATURE_NAMES
from models.registry import DEFAULT_DETECTOR, DETECTOR_NAMES, detector_params

logger = logging.getLogger(__name__)

MANAGED_FLINK_PROPERTIES = Path("/etc/flink/application_properties.json")
#: Managed Flink's own group in the same file (python, jarfile, pyFiles): not the job's settings.
RUN_OPTIONS_GROUP = "kinesis.analytics.flink.run.options"


class ConfigError(ValueError):
    """A configuration problem, its message starting with ``group.key``."""


def _integer(minimum: int) -> Callable[[str], int]:
    def parse(raw: str) -> int:
        try:
            value = int(raw)
        except ValueError:
            raise ValueError(f"expected an integer, got {raw!r}") from None
        if value < minimum:
            raise ValueError(f"must be >= {minimum}, got {value}")
        return value

    return parse


def _number(minimum: float) -> Callable[[str], float]:
    def parse(raw: str) -> float:
        try:
            value = float(raw)
        except ValueError:
            raise ValueError(f"expected a number, got {raw!r}") from None
        if not value >= minimum:
            raise ValueError(f"must be >= {minimum}, got {value}")
        return value

    return parse


def _choice(*options: str) -> Callable[[str], str]:
    def parse(raw: str) -> str:
        if raw not in options:
            raise ValueError(f"must be one of {', '.join(options)}; got {raw!r}")
        return raw

    return parse


def _text(raw: str) -> str:
    if not raw.strip():
        raise ValueError("must not be empty")
    return raw


def _optional_text(raw: str) -> str:
    return raw.strip()


def json_object(raw: str) -> dict[str, Any]:
    """Parse a JSON object (blank: empty); anything else raises ``ValueError``.

    >>> json_object('{"numberOfTrees": 50}'), json_object(" ")
    ({'numberOfTrees': 50}, {})
    >>> json_object("[1]")
    Traceback (most recent call last):
    ...
    ValueError: expected a JSON object, got '[1]'
    """
    try:
        value = json.loads(raw) if raw.strip() else {}
    except json.JSONDecodeError as exc:
        raise ValueError(f"expected a JSON object, got {raw!r} ({exc})") from None
    if not isinstance(value, dict):
        raise ValueError(f"expected a JSON object, got {raw!r}")
    return value


def _sha256_or_empty(raw: str) -> str:
    pin = raw.strip().lower()
    if pin and (len(pin) != 64 or any(c not in "0123456789abcdef" for c in pin)):
        raise ValueError(f"expected empty or a SHA-256 (64 hex digits), got {raw!r}")
    return pin


def _flag(raw: str) -> bool:
    lowered = raw.strip().lower()
    if lowered not in {"true", "false"}:
        raise ValueError(f"expected true or false, got {raw!r}")
    return lowered == "true"


@dataclass(frozen=True)
class Setting:
    """One configurable value: where it lives, how it parses, its default (as text)."""

    group: str
    key: str
    parse: Callable[[str], Any]
    default: str | None
    help: str


#: Every setting the job reads. ``default=None`` means required.
SETTINGS: tuple[Setting, ...] = (
    Setting("job", "source", _choice("embedded", "kinesis"), "embedded",
            "where click events come from"),
    Setting("job", "out_dir", _text, "out", "local output root (embedded sinks)"),
    Setting("job", "parallelism", _integer(1), "1", "job parallelism"),
    Setting("job", "watermark_delay_ms", _integer(0), "5000", "bounded out-of-orderness"),
    Setting("job", "max_future_ms", _integer(0), "3600000",
            "events further ahead of wall-clock time are dead-lettered"),
    Setting("job", "max_ahead_ms", _integer(0), "300000",
            "events further ahead of the stream's latest accepted event time are dead-lettered"
            " (until 100 in a row are: the stream moved); 0 = no such bound"),
    Setting("job", "idle_timeout_ms", _integer(0), "2000",
            "a source split idle this long stops holding the watermark back (0 = never)"),
    Setting("job", "checkpoint_interval_ms", _integer(0), "60000",
            "checkpoint interval (Managed Flink's default); 0 disables checkpoints. The archive"
            " commits its Parquet files at each checkpoint: a longer interval, fewer and larger"
            " objects"),
    Setting("job", "unaligned_checkpoints", _flag, "false",
            "checkpoint barriers overtake the rows queued between operators, so a checkpoint"
            " under backpressure (a backlog, a replay) does not wait for them; the rows in"
            " flight are stored in it"),
    Setting("job", "checkpoint_dir", _text, "out/checkpoints", "where checkpoints are kept"),
    Setting("job", "python_bundle_time_ms", _integer(1), "20",
            "process mode: the Python operator's bundle is finished at least this often; PyFlink"
            " holds the watermark until it is, so this bounds the delay before a window is"
            " scored"),
    Setting("job", "python_bundle_size", _integer(1), "1000",
            "process mode: elements in one Python bundle at most"),
    Setting("job", "python_execution_mode", _choice("thread", "process"), "thread",
            "where the Python operators run: 'thread' (PyFlink's thread mode: an interpreter"
            " embedded in the task manager's JVM, no Beam bundle between it and the Java"
            " operators) or 'process' (Python worker processes reached through Beam, PyFlink's"
            " default); the outputs are the same, and a snapshot restores only in the mode"
            " that took it"),
    Setting("scoring", "detector", _choice(*DETECTOR_NAMES), DEFAULT_DETECTOR,
            "registry name of the detector (models/registry.py)"),
    Setting("scoring", "detector_params", json_object, "{}",
            "JSON object overriding the detector's parameters: KDA's numberOfTrees,"
            " subSampleSize, timeDecay, shingleSize, or its own (columns, threshold_params, ...;"
            " see docs/detectors.md); read as models.registry.detector_params for the detector"),
    Setting("scoring", "model_uri", _optional_text, "",
            "a retrained forest that decides which windows are anomalies: its pointer"
            " …/models/<name>/current.json (followed) or one version …/models/<name>/<version>/,"
            " a local path or s3:// (docs/retraining.md); empty = the online detector decides"),
    Setting("scoring", "model_sha256", _sha256_or_empty, "",
            "pin: load only a model artefact with this SHA-256 (besides its card's)"),
    Setting("scoring", "model_poll_seconds", _integer(1), "60",
            "how often the model pointer is read again (processing time); a new version takes"
            " over without a restart"),
    Setting("scoring", "shards_per_entity_type", _integer(1), "4",
            "keyed-state shards per entity type; each holds one shared model"),
    Setting("scoring", "max_gap_windows", _integer(0), "6",
            "empty windows synthesised for an entity that went silent (outage detection)"),
    Setting("scoring", "max_entities", _integer(1), "100000",
            "entities kept per entity type; beyond, the least recently seen are dropped"),
    Setting("scoring", "entity_ttl_minutes", _integer(1), "1440",
            "an entity unseen this long (event time) is dropped from state"),
    Setting("scoring", "model_snapshot_windows", _integer(1), "30",
            "the shared model is written to Flink state every this many windows per shard, or"
            " sooner once the batches journalled since outweigh it"),
    Setting("simulator", "seed", _integer(0), "7", "embedded source: random seed"),
    Setting("simulator", "minutes", _number(0.1), "15", "embedded source: simulated minutes"),
    Setting("simulator", "events_per_second", _number(1), "300",
            "embedded source: mean simulated event rate"),
    Setting("simulator", "malformed_fraction", _number(0), "0.004",
            "embedded source: share of malformed lines"),
    Setting("simulator", "late_fraction", _number(0), "0.002",
            "embedded source: share of late events"),
    Setting("simulator", "anomalies", _flag, "true", "embedded source: inject anomalies"),
    Setting("simulator", "benign", _flag, "true",
            "embedded source: inject the benign events (a page appearing, pages retiring, a"
            " campaign launch, a site-wide spike)"),
    # job.source = kinesis (validated by flink_jobs.kinesis_tables.settings_from)
    Setting("kinesis", "clicks_stream_arn", _optional_text, "", "ARN of the clicks stream"),
    Setting("kinesis", "anomalies_stream_arn", _optional_text, "",
            "ARN of the anomalies stream (partition key entity_type/entity_id)"),
    Setting("kinesis", "dead_letter_stream_arn", _optional_text, "",
            "ARN of the dead-letter stream; empty = dead letters under archive.path"),
    Setting("kinesis", "initial_position", _choice("TRIM_HORIZON", "LATEST"), "TRIM_HORIZON",
            "where a job without state starts reading the clicks stream"),
    Setting("kinesis", "endpoint", _optional_text, "",
            "Kinesis endpoint override (local kinesis-mock); empty = AWS"),
    Setting("archive", "path", _optional_text, "",
            "s3:// root of scored windows, raw events (and dead letters without a stream)"),
    Setting("archive", "s3_endpoint", _optional_text, "",
            "S3 endpoint override (local moto server, path-style); empty = AWS"),
    Setting("archive", "writers", _integer(1), "1",
            "writers of each Parquet archive (scored windows, raw events); each commits one"
            " object per dt/hour partition per checkpoint"),
)


@dataclass(frozen=True)
class Config:
    """Validated settings by group; read with :meth:`get`."""

    values: Mapping[str, Mapping[str, Any]]
    source_path: str | None = None

    def get(self, group: str, key: str) -> Any:
        """The parsed value of ``group.key``.

        >>> load_config().get("scoring", "max_gap_windows")
        6
        """
        return self.values[group][key]

    def group(self, group: str) -> Mapping[str, Any]:
        """All parsed values of one group."""
        return self.values[group]


def read_property_groups(path: Path) -> dict[str, dict[str, str]]:
    """Read Managed Flink's ``application_properties.json`` format into ``{group: {k: v}}``."""
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read property groups: {exc}") from exc
    if not isinstance(document, list):
        raise ConfigError(f"{path}: expected a list of property groups")
    groups: dict[str, dict[str, str]] = {}
    for entry in document:
        try:
            groups[str(entry["PropertyGroupId"])] = {
                str(k): str(v) for k, v in entry["PropertyMap"].items()
            }
        except (KeyError, TypeError, AttributeError) as exc:
            raise ConfigError(f"{path}: malformed property group {entry!r}") from exc
    return groups


def properties_path() -> Path | None:
    """The properties file for this environment.

    ``CLICKSENTRY_PROPERTIES`` when set (a laptop, a self-managed Flink cluster); else, with
    ``IS_LOCAL``, none (every default); else Managed Flink's own file.
    """
    named = os.environ.get("CLICKSENTRY_PROPERTIES")
    if named:
        return Path(named)
    return None if os.environ.get("IS_LOCAL") else MANAGED_FLINK_PROPERTIES


def load_config(
    path: Path | None = None,
    groups: Mapping[str, Mapping[str, str]] | None = None,
) -> Config:
    """Read, parse and validate every setting; raise :class:`ConfigError` naming the key.

    Args:
        path: a properties file; by default :func:`properties_path` (Managed Flink's file, or
            ``CLICKSENTRY_PROPERTIES`` when ``IS_LOCAL`` is set).
        groups: values that override the file (``{group: {key: text}}``), e.g. CLI options.
    """
    path = path if path is not None else properties_path()
    raw: dict[str, dict[str, str]] = {}
    if path is not None:
        if not path.exists():
            raise ConfigError(f"{path}: properties file not found (set IS_LOCAL for local runs)")
        raw = read_property_groups(path)
    for group, values in (groups or {}).items():
        raw.setdefault(group, {}).update(values)
    known: dict[str, dict[str, Setting]] = {}
    for s in SETTINGS:
        known.setdefault(s.group, {})[s.key] = s
    for group, values in raw.items():
        if group == RUN_OPTIONS_GROUP:
            continue
        if group not in known:
            raise ConfigError(f"{group}: unknown property group (known: {', '.join(known)})")
        for key in values:
            if key not in known[group]:
                names = ", ".join(known[group])
                raise ConfigError(f"{group}.{key}: unknown setting (known in {group}: {names})")
    parsed: dict[str, dict[str, Any]] = {}
    for s in SETTINGS:
        text = raw.get(s.group, {}).get(s.key, s.default)
        if text is None:
            raise ConfigError(f"{s.group}.{s.key}: required setting is missing ({s.help})")
        try:
            parsed.setdefault(s.group, {})[s.key] = s.parse(text)
        except ValueError as exc:
            raise ConfigError(f"{s.group}.{s.key}: {exc}") from None
    # The one setting read against another: the detector's parameters, for the chosen detector.
    scoring = parsed["scoring"]
    try:
        scoring["detector_params"] = detector_params(
            scoring["detector"], scoring["detector_params"], FEATURE_NAMES
        )
    except ValueError as exc:
        raise ConfigError(f"scoring.detector_params: {exc}") from None
    logger.info("configuration loaded from %s", path or "defaults")
    return Config(parsed, str(path) if path else None)
