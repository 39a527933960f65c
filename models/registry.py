"""Named detector presets and the factory the job and the CLI use.

``rcf-kda`` is Kinesis Data Analytics' ``RANDOM_CUT_FOREST`` at its defaults (100 trees, sub-sample
256, time decay 100000, no shingling) on the raw values of its ``columns`` (default: the click
shares ``ctr``, ``top_ip_share``, ``bot_share``), shared by the entities of a shard: row by row,
each window scored before it is added (``raw_score`` = KDA's ``ANOMALY_SCORE``, 0 while the forest
warms up; ``score`` = that / log2(sub-sample)), every window learned; its ``threshold_params``
are its flag rule (KDA only scores). :func:`detector_params` reads KDA's parameter names
(``scoring.detector_params``); docs/detectors.md has the migration table.

The others see each entity's *level* (its features on a per-entity scale frozen after 12 windows,
so the shared model learns which values are usual), scaled down unless the window also deviates
from the entity's running baseline (``gate_z``), with one flag per episode (``hold_off``). A
window is flagged only when a feature moved *materially*: by at least 30 % of its expected value
and unlikely given the entity's volume (p-value at most ``significance``, 1e-4; counting noise
with a learned dispersion, :mod:`models.significance`); a proportion that stays off its usual
value for several windows (a broken ad's click-through rate) is flagged on the evidence of the
whole run (:mod:`models.runs`), whatever the score. A count must also have moved against the
batch's common move when most of its entities moved together (``common_quorum``,
:mod:`models.common_mode`): a site-wide spike flags no entity. Their explanations list the
material features only.

* ``rcf-level`` — a 50-tree random cut forest (the default; see docs/detectors.md);
* ``ensemble-level`` — the mean of that forest's and river's Half-Space Trees' scores.

Thresholds (``threshold_params.floor``) are per detector, fixed across all data. Half-Space
Trees and the isolation forest remain scorers (``scorer``: ``hst``, ``iforest``) without a
preset: on the simulator neither found every kind of anomaly (docs/detectors.md).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from models.baseline import DEFAULT_ALPHA, memory_windows
from models.detector import WindowDetector
from models.features import SHARE_FEATURES
from models.params import param_names
from models.rcf import KDA_DEFAULTS

#: Flag floor of a forest scoring raw values, ungated (``ANOMALY_SCORE > 2.8`` at sub-sample 256):
#: ``rcf-kda``'s, and any forest preset's on a single series (:mod:`models.series`). Chosen on
#: NAB's dev split (docs/detectors.md, "NAB-style evaluation").
RAW_FOREST_FLOOR: float = 0.35

#: Hold-off of the ``-level`` presets, in windows: as long as an entity's baseline remembers a
#: flagged episode (:func:`~models.baseline.memory_windows`, 39 at its alpha 0.05). The baseline
#: learns the episode's windows (with clipped updates) and forgets them over that time; until
#: then the entity's way back to its usual values is the episode fading, not a new one.
EPISODE_WINDOWS: int = round(memory_windows(DEFAULT_ALPHA))

PRESETS: dict[str, dict[str, Any]] = {
    "rcf-kda": {
        "scorer": "rcf",
        "scorer_params": {**KDA_DEFAULTS, "random_seed": 42},
        "inputs": "raw",
        "columns": list(SHARE_FEATURES),
        "sequential": True,
        "threshold_params": {"z": 4.0, "floor": RAW_FOREST_FLOOR, "alpha": 0.01, "settle": 100},
        "warmup": 1,
        "learn_flagged": True,
    },
    "rcf-level": {
        "scorer": "rcf",
        "scorer_params": {**KDA_DEFAULTS, "num_trees": 50, "random_seed": 42},
        "inputs": "level",
        "baseline_params": {"level_after": 12},
        "gate_z": 3.0,
        "threshold_params": {"z": 4.0, "floor": 0.28, "alpha": 0.01, "settle": 100},
        "warmup": 12,
        "z_clip": 100.0,
        "hold_off": EPISODE_WINDOWS,
        "learn_per_batch": 32,
        "learn_flagged": True,
        "significance": 1e-4,
        "min_relative_change": 0.3,
        "common_quorum": 0.75,
    },
    "ensemble-level": {
        "scorer": "ensemble",
        "scorer_params": {
            "members": [
                {"kind": "rcf", "params": {**KDA_DEFAULTS, "num_trees": 50, "random_seed": 42}},
                {"kind": "hst", "params": {"n_trees": 25, "height": 8, "window_size": 250,
                                           "limit": 10.0}},
            ],
            "combine": "mean",
        },
        "inputs": "level",
        "baseline_params": {"level_after": 12},
        "gate_z": 3.0,
        "threshold_params": {"z": 4.0, "floor": 0.6, "alpha": 0.01, "settle": 100},
        "warmup": 12,
        "z_clip": 30.0,
        "hold_off": EPISODE_WINDOWS,
        "learn_per_batch": 32,
        "significance": 1e-4,
        "min_relative_change": 0.3,
        "common_quorum": 0.75,
    },
}
DETECTOR_NAMES: tuple[str, ...] = tuple(PRESETS)
DEFAULT_DETECTOR: str = "rcf-level"

_NESTED = ("scorer_params", "baseline_params", "threshold_params")
_PARAMS = frozenset(param_names(WindowDetector)) - {"name"}

#: KDA's ``RANDOM_CUT_FOREST`` parameters (after ``inputStream``, in their order) → the random
#: cut forest's own names (``scorer_params``).
KDA_PARAMS: dict[str, str] = {
    "numberOfTrees": "num_trees",
    "subSampleSize": "sample_size",
    "timeDecay": "time_decay",
    "shingleSize": "shingle_size",
}


def make_detector(name: str, params: Mapping[str, Any] | None = None) -> WindowDetector:
    """Build the detector preset ``name``, with ``params`` overriding the preset's.

    Nested parameter groups (``scorer_params``, ``baseline_params``, ``threshold_params``) are
    merged key by key (the preset's ``scorer_params`` are dropped when ``scorer`` changes).
    An unknown name, an unknown parameter or a bad value raises ``ValueError``.

    >>> make_detector("rcf-kda").scorer_.num_trees
    100
    >>> make_detector("rcf-kda", {"scorer_params": {"num_trees": 30}}).scorer_.sample_size
    256
    >>> make_detector("rcf-kdb")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ValueError: unknown detector 'rcf-kdb'; known: rcf-kda, ...
    >>> make_detector("rcf-kda", {"warmpu": 3})
    Traceback (most recent call last):
    ...
    ValueError: detector 'rcf-kda': unknown parameter 'warmpu'
    """
    if name not in PRESETS:
        raise ValueError(f"unknown detector {name!r}; known: {', '.join(DETECTOR_NAMES)}")
    merged: dict[str, Any] = {k: (dict(v) if k in _NESTED else v) for k, v in PRESETS[name].items()}
    if (params or {}).get("scorer", merged["scorer"]) != merged["scorer"]:
        merged["scorer_params"] = {}  # another backend: the preset's scorer settings do not apply
    for key, value in (params or {}).items():
        if key not in _PARAMS:
            raise ValueError(f"detector {name!r}: unknown parameter {key!r}")
        if key in _NESTED:
            if not isinstance(value, Mapping):
                raise ValueError(f"detector {name!r}: {key} must be a mapping, got {value!r}")
            merged[key] = {**merged.get(key, {}), **value}
        else:
            merged[key] = value
    try:
        return WindowDetector(name=name, **merged)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"detector {name!r}: {exc}") from exc


def detector_params(
    name: str, settings: Mapping[str, Any], features: Sequence[str] | None = None
) -> dict[str, Any]:
    """Translate ``scoring.detector_params`` into :func:`make_detector` parameters for ``name``.

    Keys are KDA's ``RANDOM_CUT_FOREST`` names (:data:`KDA_PARAMS`: the forest's
    ``scorer_params``) or the detector's own parameters (``columns``, ``threshold_params``, ...).
    Each key is checked against the preset on its own, then all together; with ``features``
    (the windows' features), ``columns`` must be among them. A bad key or value raises
    ``ValueError`` naming the key.

    >>> detector_params("rcf-kda", {"numberOfTrees": 50, "columns": ["ctr", "bot_share"]})
    {'scorer_params': {'num_trees': 50}, 'columns': ['ctr', 'bot_share']}
    >>> detector_params("rcf-kda", {"subSampleSize": 1})
    Traceback (most recent call last):
    ...
    ValueError: subSampleSize: detector 'rcf-kda': sample_size must be an integer >= 2, got 1
    >>> detector_params("rcf-kda", {"numTrees": 5})  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ValueError: numTrees: unknown key; known: numberOfTrees, subSampleSize, timeDecay, ...
    >>> detector_params("rcf-kda", {"columns": ["ctrr"]}, ["clicks", "ctr"])
    Traceback (most recent call last):
    ...
    ValueError: columns: columns ['ctrr'] are not features of the windows (clicks, ctr)
    """
    params: dict[str, Any] = {}
    for key, value in settings.items():
        if key in KDA_PARAMS:
            part: dict[str, Any] = {"scorer_params": {KDA_PARAMS[key]: value}}
        elif key in _PARAMS:
            part = {key: value}
        else:
            known = ", ".join([*KDA_PARAMS, *sorted(_PARAMS)])
            raise ValueError(f"{key}: unknown key; known: {known}")
        try:
            detector = make_detector(name, part)
            if features is not None:
                detector.fix_features(features)
        except ValueError as exc:
            raise ValueError(f"{key}: {exc}") from None
        for group, given in part.items():
            if group not in _NESTED:
                params[group] = given
                continue
            twice = sorted(set(given) & set(params.get(group, {})))
            if twice:
                raise ValueError(f"{key}: sets {group}.{twice[0]} a second time")
            params.setdefault(group, {}).update(given)
    make_detector(name, params)  # the keys together (e.g. a combination the scorer refuses)
    return params
