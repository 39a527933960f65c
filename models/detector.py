"""What the Flink job calls: a detector that scores batches of entity windows.

One :class:`WindowDetector` lives per shard of the job's keyed state and holds the *shared* model
(for example one random cut forest for every entity of the shard). Each entity carries only a
small state of its own — its :class:`~models.baseline.EwmaBaseline`, its
:class:`~models.holdoff.HoldOff` and its :class:`~models.runs.Runs` parts in one versioned
msgpack envelope — which the job keeps in
Flink keyed state and passes in and out as bytes (:func:`score_batches` does it for a stream).

Per batch (windows of distinct entities sharing one ``window_end``) :meth:`WindowDetector.process`
runs these steps:

1. turns each window into the scorer's inputs: standardised deviations from its entity's
   running baseline (``inputs="deviation"``), its *level* on a per-entity scale frozen after a
   warm-up (``"level"``: which values are usual for this entity), or the raw features
   (``"raw"``, as KDA's ``RANDOM_CUT_FOREST`` sees its columns) — of every feature, or of the
   ``columns`` chosen;
2. scores every window with the shared scorer **before** learning any of them (causal); with
   ``gate_z`` the 0..1 score is scaled down unless the window also deviates from the running
   baseline (``min(1, max |deviation| / gate_z)``) — rare levels that the entity drifted into
   slowly are not anomalies;
3. compares the 0..1 score with an :class:`~models.threshold.AdaptiveThreshold`; a window is
   flagged only once its entity has ``warmup`` windows of history, the scorer and the threshold
   are warmed up, some feature moved by at least ``min_relative_change`` of its expected value,
   and the hold-off allows it; with ``significance``, the feature must also be unlikely by
   chance at the entity's volume (:mod:`models.significance`; the expected value is itself an
   estimate from the entity's history, which widens the test), and a proportion off its usual
   value over a run of windows (:mod:`models.runs`) flags the window whatever its score;
4. explains flagged windows in KDA's ``ANOMALY_EXPLANATION`` shape (scorer attribution, or the
   deviations themselves for scorers without attribution; with ``significance``, of the
   features that moved materially only);
5. learns the windows: every entity baseline (with clipped updates), hold-off and runs; the
   shared scorer all of them, or only the unflagged ones with ``learn_flagged=False``; the
   threshold the scores, and the dispersion the residuals, of unflagged, warmed-up windows.

With ``sequential=True`` the windows of a batch go through these steps one after the other, so
each window is scored against a scorer that has learned every window before it — KDA's
``RANDOM_CUT_FOREST`` semantics, where a row's score is computed just before the row is added.
"""

from __future__ import annotations

import logging
from collections.abc import Hashable, Iterable, Iterator, Mapping, MutableMapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

import msgpack
import numpy as np

from models.backends import make_scorer
from models.base import Stateful, feature_names_of, to_matrix
from models.baseline import BaselineBatch, EwmaBaseline
from models.common_mode import common_ratio
from models.holdoff import HoldOff, HoldOffBatch
from models.params import boolean, in_range, integer, name_list, non_negative, one_of, positive
from models.runs import Runs, RunsBatch
from models.significance import (
    COUNT,
    UNTESTED,
    Dispersion,
    estimation_factor,
    expected_events,
    significance_plan,
    tail_pvalues,
    trials,
    with_unseen_floor,
)
from models.threshold import AdaptiveThreshold

log = logging.getLogger(__name__)

INPUTS = ("deviation", "level", "raw")
#: Version of the per-entity state envelope ``[version, baseline, hold-off, runs parts]``.
#: Version 6 leaves out the baseline's level arrays until they are frozen; 5 always held them
#: and is read too, so a snapshot of a version-5 job restores.
ENTITY_STATE_VERSION = 6
READABLE_ENTITY_STATE_VERSIONS = (5, ENTITY_STATE_VERSION)

Entity = TypeVar("Entity", bound=Hashable)
Explanation = dict[str, dict[str, Any]]


@dataclass(frozen=True)
class Verdict:
    """The outcome for one entity window (fields of the anomaly record)."""

    score: float
    raw_score: float
    threshold: float
    is_anomaly: bool
    grade: float
    confidence: float
    kind: str = ""
    explanation: Explanation = field(default_factory=dict)
    p_value: float | None = None


@dataclass(frozen=True)
class EntityStates:
    """Decoded per-entity state of a batch: the baseline, hold-off and runs parts."""

    baseline: BaselineBatch
    holdoff: HoldOffBatch
    runs: RunsBatch


@dataclass(frozen=True)
class Windows:
    """A batch as the detector sees it, one row per entity.

    Attributes:
        raw: the features.
        transformed: the features on the baseline's modelling scale.
        history: the entities' states before this batch.
        deviations: standardised deviations from the running baselines, clipped to ``±z_clip``.
        points: the shared scorer's inputs (its ``columns`` only).
        expected: each entity's expected features (its raw features if it has no history).
        runs: with ``significance``, each entity's runs after this window
            (:mod:`models.runs`; else its runs unchanged).
        run_p: with ``significance``, per feature, the p-value of its run (else ``None``).
        run_on: with ``significance``, per feature, whether its run spans earlier windows.
        measured_on: with ``significance``, per feature, the expected count (of a proportion:
            of its successes) that its expected value was measured on: the windows the
            entity's baseline remembers (:meth:`~models.baseline.EwmaBaseline.memory`) times
            one window's.
    """

    raw: np.ndarray
    transformed: np.ndarray
    history: EntityStates
    deviations: np.ndarray
    points: np.ndarray
    expected: np.ndarray
    runs: RunsBatch
    run_p: np.ndarray | None = None
    run_on: np.ndarray | None = None
    measured_on: np.ndarray | None = None


@dataclass(frozen=True)
class Flags:
    """The judgement of a batch's scores, before anything is learned.

    Attributes:
        threshold: the threshold in force.
        flagged: per window, whether it is an anomaly.
        grades: per window, how far past the threshold (0 unless flagged).
        confidence: per window, 0..1: entity history, scorer and threshold warm-up.
        material: per window and scored feature, whether it moved materially (with
            ``significance``; ``None`` without).
        p_values: per window, the smallest p-value of its material features (NaN if none).
    """

    threshold: float
    flagged: np.ndarray
    grades: np.ndarray
    confidence: np.ndarray
    material: np.ndarray | None = None
    p_values: np.ndarray | None = None


def shrink(values: np.ndarray, deadzone: float) -> np.ndarray:
    """Move values towards 0 by ``deadzone``; those within it become 0.

    >>> shrink(np.array([-3.0, 0.5, 2.0]), 1.0)
    array([-2.,  0.,  1.])
    """
    return np.sign(values) * np.maximum(np.abs(values) - deadzone, 0.0)


def gate(scores: np.ndarray, deviations: np.ndarray, gate_z: float) -> np.ndarray:
    """Scale scores by ``min(1, max |deviation| / gate_z)`` (``gate_z`` 0: unchanged).

    >>> gate(np.array([0.8, 0.8]), np.array([[1.5, 0.0], [-4.0, 1.0]]), 3.0)
    array([0.4, 0.8])
    """
    if not gate_z > 0:
        return scores
    return scores * np.minimum(1.0, np.abs(deviations).max(axis=1) / gate_z)


def moved(raw: np.ndarray, expected: np.ndarray, min_relative_change: float) -> np.ndarray:
    """Per feature: it differs from its expected value, by at least ``min_relative_change``.

    >>> moved(np.array([[103.0, 0.0, 0.2]]), np.array([[100.0, 0.0, 0.0]]), 0.05)
    array([[False, False,  True]])
    """
    change = np.abs(raw - expected)
    return (change > 0) & (change >= min_relative_change * np.abs(expected))


def explain(
    names: Sequence[str], high: np.ndarray, low: np.ndarray, value: np.ndarray,
    expected: np.ndarray, keep: np.ndarray | None = None,
) -> tuple[str, Explanation]:
    """KDA's ``ANOMALY_EXPLANATION`` of one window and its kind (``"<top feature>_<direction>"``).

    ``high`` / ``low`` are the per-feature parts of its score pushing up / down; features are
    listed by attribution, largest first. With ``keep`` (the features that moved materially),
    only the features it marks, each in the direction it moved from its expected value: the
    attribution's direction says where the point lies among the scorer's samples, which for a
    flag on the evidence of a run (:mod:`models.runs`) need not be the way the feature moved.

    >>> kind, e = explain(["clicks", "ctr"], np.array([3.0, 0.0]), np.array([1.0, 0.5]),
    ...                   np.array([90.0, 0.01]), np.array([10.0, 0.02]))
    >>> kind, e["clicks"]["DIRECTION"], e["clicks"]["STRENGTH"], list(e)
    ('clicks_high', 'HIGH', 0.5, ['clicks', 'ctr'])
    >>> explain(["clicks", "ctr"], np.array([3.0, 0.0]), np.array([1.0, 0.5]),
    ...         np.array([90.0, 0.01]), np.array([10.0, 0.02]), np.array([False, True]))[0]
    'ctr_low'
    >>> explain(["ctr"], np.array([0.02]), np.array([0.01]), np.array([0.016]),
    ...         np.array([0.09]), np.array([True]))  # doctest: +NORMALIZE_WHITESPACE
    ('ctr_low', {'ctr': {'DIRECTION': 'LOW', 'STRENGTH': 0.333..., 'ATTRIBUTION_SCORE': 0.03,
                         'value': 0.016, 'expected': 0.09}})
    """
    total = high + low
    strength = np.abs(high - low) / np.maximum(total, 1e-12)
    order = np.argsort(-total, kind="stable")
    if keep is not None:
        order = order[keep[order]]
        if not len(order):
            return "", {}
    up = high >= low if keep is None else value > expected
    explanation = {
        names[j]: {
            "DIRECTION": "HIGH" if up[j] else "LOW",
            "STRENGTH": float(strength[j]),
            "ATTRIBUTION_SCORE": float(total[j]),
            "value": float(value[j]),
            "expected": float(expected[j]),
        }
        for j in order
    }
    top = names[order[0]]
    kind = f"{top}_{explanation[top]['DIRECTION'].lower()}" if total[order].max() > 0 else ""
    return kind, explanation


def sample_rows(rows: np.ndarray, limit: int, seed: Sequence[int]) -> np.ndarray:
    """At most ``limit`` of ``rows`` (indices), a seeded random choice kept in order; 0 = all.

    >>> sample_rows(np.arange(10), 3, [42, 0])
    array([0, 6, 9])
    >>> sample_rows(np.arange(3), 0, [42, 0])
    array([0, 1, 2])
    """
    if limit and len(rows) > limit:
        rng = np.random.default_rng(list(seed))
        rows = np.sort(rng.choice(rows, limit, replace=False))
    return rows


class WindowDetector(Stateful):
    """Scores batches of entity windows against per-entity baselines and a shared scorer.

    Args:
        name: registry name, reported in every anomaly record.
        scorer: scorer kind (see :data:`models.backends.SCORER_TYPES`).
        scorer_params: the scorer's parameters.
        inputs: ``"deviation"``, ``"level"`` or ``"raw"`` (see above).
        baseline_params: :class:`~models.baseline.EwmaBaseline` parameters (not feature names).
        threshold_params: :class:`~models.threshold.AdaptiveThreshold` parameters.
        warmup: windows of an entity's own history before it can be flagged.
        z_clip: deviations are clipped to ``±z_clip`` before scoring.
        z_deadzone: deviations and levels are shrunk towards 0 by this much (those within it
            become 0), so ordinary noise occupies little of the scorer's space and real departures
            stand out.
        gate_z: deviation (in standard deviations) at which the score is no longer scaled down;
            0 = no gate.
        learn_per_batch: the shared scorer learns at most this many windows of a batch (a
            seeded random choice; 0 = all): with hundreds of entities per batch, a 256-point
            sample stays representative while scoring, not learning, sets the cost.
        random_seed: seed of that choice.
        hold_off: after a flag, the entity's next ``hold_off`` windows are flagged only if they
            score higher than that flag (one alert per episode, unless it worsens); 0 = off.
        learn_flagged: whether the shared scorer learns flagged windows (KDA learns everything).
            Entity baselines always learn, with clipped updates, so a lasting change becomes
            the entity's new normal instead of an alert that never ends.
        min_relative_change: a window is flagged only if some feature differs from its expected
            value by at least this fraction of it (0 = no suppression); with ``significance``,
            some scored feature must do both: move this much and be significant.
        significance: a feature moved *materially* when its tail p-value given the entity's
            volume (:mod:`models.significance`) is at most this and it moved by
            ``min_relative_change``; only windows with a material move are flagged, and their
            explanations list only the material features (0 = off: every scored feature).
        common_quorum: with ``significance``, when at least this share of a batch's entities
            moved their traffic the same way (:mod:`models.common_mode`), a count is material
            only if it also moved against its expected value scaled by the batch's common move:
            a site-wide spike is not an anomaly of every entity (0 = off).
        columns: the features the shared scorer sees, in this order (``None``: every feature of
            the windows); the other features still feed the baselines.
        sequential: score, flag, explain and learn the windows of a batch one after the other
            (each scored after the ones before it were learned, as KDA scores rows), instead of
            scoring the whole batch before learning any of it.

    >>> det = WindowDetector(
    ...     scorer_params={"num_trees": 20, "sample_size": 32}, threshold_params={"settle": 5}
    ... )
    >>> state = None
    >>> for i in range(30):
    ...     [(verdict, state)] = det.process([(state, {"clicks": 10.0 + i % 3})])
    >>> [(verdict, state)] = det.process([(state, {"clicks": 400.0})])
    >>> verdict.is_anomaly, verdict.kind
    (True, 'clicks_high')
    """

    STATE_VERSION = 3
    CHECKS = (
        one_of("inputs", INPUTS),
        integer("warmup", 1),
        positive("z_clip"),
        non_negative("gate_z"),
        integer("learn_per_batch", 0),
        non_negative("min_relative_change"),
        in_range("significance", 0, 1),
        in_range("common_quorum", 0, 1),
        name_list("columns", optional=True),
        boolean("sequential"),
    )

    def __init__(
        self,
        name: str = "custom",
        scorer: str = "rcf",
        scorer_params: Mapping[str, Any] | None = None,
        inputs: str = "deviation",
        baseline_params: Mapping[str, Any] | None = None,
        threshold_params: Mapping[str, Any] | None = None,
        warmup: int = 12,
        z_clip: float = 10.0,
        z_deadzone: float = 0.0,
        gate_z: float = 0.0,
        learn_per_batch: int = 0,
        random_seed: int = 42,
        hold_off: int = 0,
        learn_flagged: bool = True,
        min_relative_change: float = 0.0,
        significance: float = 0.0,
        common_quorum: float = 0.0,
        columns: Sequence[str] | None = None,
        sequential: bool = False,
    ) -> None:
        self.name = name
        self.scorer = scorer
        self.scorer_params = dict(scorer_params or {})
        self.inputs = inputs
        self.baseline_params = dict(baseline_params or {})
        self.threshold_params = dict(threshold_params or {})
        self.warmup = warmup
        self.z_clip = z_clip
        self.z_deadzone = z_deadzone
        self.gate_z = gate_z
        self.learn_per_batch = learn_per_batch
        self.random_seed = random_seed
        self.hold_off = hold_off
        self.learn_flagged = learn_flagged
        self.min_relative_change = min_relative_change
        self.significance = significance
        self.common_quorum = common_quorum
        self.columns = columns
        self.sequential = sequential
        self.check_params()
        if not 0 <= z_deadzone < z_clip:
            raise ValueError(f"z_deadzone must be in [0, z_clip), got {z_deadzone!r}")
        if "feature_names" in self.baseline_params:
            raise ValueError("baseline_params: feature_names come from the windows")
        self.holdoff_ = HoldOff(hold_off)
        self.runs_ = Runs()
        self.scorer_ = make_scorer(scorer, self.scorer_params)
        self.threshold_ = AdaptiveThreshold(**self.threshold_params)
        EwmaBaseline(["_"], **self.baseline_params)  # validate now, not at the first batch
        self.batches_ = 0
        self.feature_names_: tuple[str, ...] | None = None
        self.column_index_: np.ndarray | None = None
        self.baseline_: EwmaBaseline | None = None
        self.dispersion_: Dispersion | None = None

    def fix_features(self, names: Sequence[str]) -> EwmaBaseline:
        """Fix the windows' features (at the first window, or from a snapshot); their baseline.

        ``ValueError`` if ``columns`` names a feature the windows do not have.

        >>> WindowDetector(columns=["ctr"]).fix_features(["clicks", "crt"])
        Traceback (most recent call last):
        ...
        ValueError: columns ['ctr'] are not features of the windows (clicks, crt)
        """
        names = tuple(names)
        if self.baseline_ is None:
            scored = tuple(self.columns) if self.columns is not None else names
            unknown = [c for c in scored if c not in names]
            if unknown:
                raise ValueError(
                    f"columns {unknown} are not features of the windows ({', '.join(names)})"
                )
            self.feature_names_ = names
            self.column_index_ = np.array([names.index(c) for c in scored])
            self.scorer_.feature_names_ = scored
            self.baseline_ = EwmaBaseline(names, **self.baseline_params)
            self.dispersion_ = Dispersion(significance_plan(names))
            if self.significance > 0 and all(
                self.dispersion_.plan[j] == UNTESTED for j in self.column_index_
            ):
                raise ValueError(
                    f"significance needs a count or a proportion among the scored features "
                    f"({', '.join(scored)}); set it to 0 for other features"
                )
        return self.baseline_

    @property
    def scored_names(self) -> tuple[str, ...]:
        """The features the shared scorer sees (``columns``, or all once the features are known).

        >>> det = WindowDetector(columns=["ctr"], scorer_params={"num_trees": 5, "sample_size": 8})
        >>> _ = det.process([(None, {"clicks": 3.0, "ctr": 0.1})])
        >>> det.scored_names
        ('ctr',)
        """
        if self.column_index_ is None:
            return tuple(self.columns or ())
        return tuple(self.feature_names_[j] for j in self.column_index_)

    # -- per-entity state ---------------------------------------------------------------------
    def entity_states(self, states: Sequence[bytes | None]) -> EntityStates:
        """Decode per-entity state bytes (``None`` = new entity); the features must be known.

        >>> det = WindowDetector(scorer_params={"num_trees": 5, "sample_size": 8})
        >>> [(_, state)] = det.process([(None, {"clicks": 3.0})])
        >>> det.entity_states([state, None]).baseline.count
        array([1, 0])
        """
        baseline_parts: list[Any] = [None] * len(states)
        holdoff_parts: list[Any] = [None] * len(states)
        runs_parts: list[Any] = [None] * len(states)
        for i, data in enumerate(states):
            if data is None:
                continue
            unpacked = msgpack.unpackb(data)
            if not (isinstance(unpacked, list) and unpacked):
                raise ValueError("entity state is not a [version, baseline, hold-off, runs] list")
            if unpacked[0] not in READABLE_ENTITY_STATE_VERSIONS or len(unpacked) != 4:
                raise ValueError(
                    f"entity state version {unpacked[0]} is not {ENTITY_STATE_VERSION} (or 5)"
                )
            version, baseline_parts[i], holdoff_parts[i], runs_parts[i] = unpacked
            if version == 5:
                baseline_parts[i] = EwmaBaseline.part_of_version_5(baseline_parts[i])
        return EntityStates(
            self.baseline_.decode(baseline_parts),
            self.holdoff_.decode(holdoff_parts),
            self.runs_.decode(runs_parts, len(self.feature_names_)),
        )

    def _encode_states(self, entities: EntityStates) -> list[bytes]:
        return [
            msgpack.packb([ENTITY_STATE_VERSION, baseline, holdoff, runs])
            for baseline, holdoff, runs in zip(
                self.baseline_.encode(entities.baseline),
                self.holdoff_.encode(entities.holdoff),
                self.runs_.encode(entities.runs),
                strict=True,
            )
        ]

    # -- the steps ----------------------------------------------------------------------------
    def windows(self, batch: Sequence[tuple[bytes | None, Mapping[str, float]]]) -> Windows:
        """Step 1: a batch's features, its entities' history and the shared scorer's inputs.

        >>> det = WindowDetector(scorer_params={"num_trees": 5, "sample_size": 8}, z_clip=3.0)
        >>> w = det.windows([(None, {"clicks": 3.0})])
        >>> w.points.tolist(), w.expected.tolist()
        ([[0.0]], [[3.0]])
        """
        baseline = self.fix_features(self.feature_names_ or feature_names_of(batch[0][1]))
        raw = to_matrix([features for _, features in batch], self.feature_names_)
        history = self.entity_states([state for state, _ in batch])
        past = history.baseline
        transformed = baseline.transform(raw)
        z = np.clip(baseline.deviations(transformed, past), -self.z_clip, self.z_clip)
        if self.inputs == "deviation":
            points = shrink(z, self.z_deadzone)
        elif self.inputs == "raw":
            points = raw
        else:
            level = np.clip(baseline.levels(transformed, past), -self.z_clip, self.z_clip)
            points = shrink(level, self.z_deadzone)
        expected = np.where((past.count > 0)[:, None], baseline.expected(past), raw)
        runs, run_p, run_on, measured_on = history.runs, None, None, None
        if self.significance > 0:
            proportion = np.asarray(self.dispersion_.plan) >= 0  # counts follow daily cycles
            n = trials(raw, self.dispersion_.plan)
            tested = self.tested(expected)
            per_window = expected_events(tested, expected, self.dispersion_.plan)
            measured_on = self.baseline_.memory(past)[:, None] * per_window
            runs, run_p, run_on = self.runs_.update(
                np.where(proportion, raw * n, 0.0),
                np.where(proportion, tested * n, 0.0),
                self.dispersion_.factors(raw),
                history.runs,
                history=np.where(proportion, measured_on, 0.0),
            )
        return Windows(
            raw, transformed, history, z, points[:, self.column_index_], expected,
            runs, run_p, run_on, measured_on,
        )

    def scorer_inputs(
        self, batch: Sequence[tuple[bytes | None, Mapping[str, float]]]
    ) -> np.ndarray:
        """The rows the shared scorer would see for ``batch`` (training data for a scorer)."""
        return self.windows(batch).points if batch else np.empty((0, 0))

    def score(self, windows: Windows) -> tuple[np.ndarray, np.ndarray]:
        """Step 2: the scorer's raw scores and the (gated) 0..1 scores, nothing learned.

        >>> det = WindowDetector(scorer_params={"num_trees": 5, "sample_size": 8})
        >>> det.score(det.windows([(None, {"clicks": 3.0})]))
        (array([0.]), array([0.]))
        """
        raw_scores = self.scorer_.score_rows(windows.points)
        scores = gate(self.scorer_.unit_score(raw_scores), windows.deviations, self.gate_z)
        return raw_scores, scores

    def flag(self, windows: Windows, scores: np.ndarray) -> Flags:
        """Step 3: which windows are anomalies: above the threshold, warmed up, changed, not held.

        >>> det = WindowDetector(scorer_params={"num_trees": 5, "sample_size": 8})
        >>> flags = det.flag(det.windows([(None, {"clicks": 3.0})]), np.array([0.9]))
        >>> flags.flagged, flags.confidence
        (array([False]), array([0.]))
        """
        past = windows.history.baseline
        threshold = self.threshold_.value
        model_ready = self.scorer_.readiness >= 1.0 and self.threshold_.confidence >= 1.0
        warmed = past.count >= self.warmup
        flagged = warmed & (scores > threshold) & model_ready
        material = p_values = None
        if self.significance > 0:
            run_due = (windows.run_on & (windows.run_p <= self.significance)).any(axis=1)
            candidates = flagged | (run_due & warmed & model_ready)
            material, p_values, sustained = self.material(windows, candidates)
            flagged = (flagged | sustained) & material.any(axis=1)
        elif self.min_relative_change > 0 and flagged.any():
            flagged &= moved(windows.raw, windows.expected, self.min_relative_change).any(axis=1)
        flagged &= self.holdoff_.allows(scores, windows.history.holdoff)
        grades = np.where(flagged, self.threshold_.grade(scores), 0.0)
        confidence = (
            np.minimum(1.0, past.count / self.warmup)
            * self.scorer_.readiness
            * self.threshold_.confidence
        )
        return Flags(threshold, flagged, grades, confidence, material, p_values)

    def material(
        self, windows: Windows, candidates: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Which scored features of the ``candidates`` rows moved materially.

        Also per row: the smallest p-value among them (NaN for a row with none or not a
        candidate), and whether a run over several windows is material (a sustained move).

        A feature moved materially when the window, or the run it continues, is significant
        and the window moved by ``min_relative_change`` — a count also against its expected
        value scaled by the batch's common move, if it has one (``common_quorum``); the floor of
        what its history could have missed (:meth:`tested`) is scaled with it.

        >>> det = WindowDetector(significance=1e-3, scorer_params={"num_trees": 5,
        ...                      "sample_size": 8})
        >>> w = det.windows([(None, {"clicks": 3.0})])
        >>> det.material(w, np.array([True]))
        (array([[False]]), array([nan]), array([False]))
        """
        rows = np.flatnonzero(candidates)
        cols = self.column_index_
        material = np.zeros((len(candidates), len(cols)), dtype=bool)
        p_values = np.full(len(candidates), np.nan)
        sustained = np.zeros(len(candidates), dtype=bool)
        if not len(rows):
            return material, p_values, sustained
        raw, expected = windows.raw[rows], windows.expected[rows]
        tested = self.tested(expected)
        noise = self.noise(raw, tested, windows.measured_on[rows])
        p_window = tail_pvalues(raw, tested, noise, self.dispersion_.plan)
        run_p = windows.run_p[rows]
        p = np.minimum(p_window, run_p)[:, cols]
        changed = moved(raw[:, cols], expected[:, cols], self.min_relative_change)
        moves = (p <= self.significance) & changed
        plan = self.dispersion_.plan
        ratio = common_ratio(
            windows.raw, windows.expected, windows.history.baseline.count >= self.warmup,
            plan, self.min_relative_change, self.common_quorum,
        )
        if ratio != 1.0:
            # The floor of what the history could have missed moves with the site too.
            counts = np.asarray(plan) == COUNT
            shifted = np.where(counts, expected * ratio, expected)
            p_shifted = tail_pvalues(raw, np.where(counts, tested * ratio, tested), noise, plan)
            moves &= (
                (np.minimum(p_shifted, run_p) <= self.significance)
                & moved(raw, shifted, self.min_relative_change)
            )[:, cols]
        material[rows] = moves
        sustained[rows] = (
            (run_p[:, cols] <= self.significance) & windows.run_on[rows][:, cols] & changed
        ).any(axis=1)
        least = np.where(moves, np.maximum(p, np.finfo(float).tiny), np.inf).min(axis=1)
        p_values[rows] = np.where(np.isfinite(least), least, np.nan)
        return material, p_values, sustained

    def noise(self, raw: np.ndarray, tested: np.ndarray, measured_on: np.ndarray) -> np.ndarray:
        """Per window and feature, how much more than counting noise its test allows for.

        The learned dispersion (:class:`~models.significance.Dispersion`), times the
        uncertainty of the expected value itself, which was measured on ``measured_on``
        expected events (:func:`~models.significance.estimation_factor`).
        """
        now = expected_events(tested, raw, self.dispersion_.plan)
        return self.dispersion_.factors(raw) * estimation_factor(now, measured_on)

    def tested(self, expected: np.ndarray) -> np.ndarray:
        """Expected values as the significance test sees them (floored: what history missed).

        See :func:`~models.significance.with_unseen_floor`.
        """
        return with_unseen_floor(expected, self.dispersion_.plan, self.baseline_.alpha)

    def explanations(
        self, windows: Windows, flagged: np.ndarray, material: np.ndarray | None = None
    ) -> dict[int, tuple[str, Explanation]]:
        """Step 4: kind and explanation of each flagged row, by row index.

        The scorer's attribution if it has one, else the deviations (or, for level and raw
        inputs, the differences from the expected values); of the scored ``columns`` only, and
        with ``material`` (:meth:`material`) only of the features that moved materially.

        >>> det = WindowDetector(scorer_params={"num_trees": 5, "sample_size": 8})
        >>> det.explanations(det.windows([(None, {"clicks": 3.0})]), np.array([False]))
        {}
        """
        rows = np.flatnonzero(flagged)
        if not len(rows):
            return {}
        cols = self.column_index_
        raw, expected = windows.raw[:, cols], windows.expected[:, cols]
        if self.scorer_.attributes:
            high, low = self.scorer_.attribution_rows(windows.points[rows])
        else:
            deviation = (
                windows.points[rows]
                if self.inputs == "deviation"
                else raw[rows] - expected[rows]
            )
            high, low = np.maximum(deviation, 0.0), np.maximum(-deviation, 0.0)
        return {
            int(i): explain(
                self.scored_names, high[k], low[k], raw[i], expected[i],
                None if material is None else material[i],
            )
            for k, i in enumerate(rows)
        }

    def learn(self, windows: Windows, scores: np.ndarray, flagged: np.ndarray) -> list[bytes]:
        """Step 5: learn the batch; returns the entities' new state bytes.

        The shared scorer learns (a sample of) the windows it should, the threshold the scores
        and the dispersion the residuals of warmed-up unflagged windows, every entity its
        baseline and hold-off.

        >>> det = WindowDetector(scorer_params={"num_trees": 5, "sample_size": 8})
        >>> w = det.windows([(None, {"clicks": 3.0})])
        >>> [state] = det.learn(w, np.array([0.0]), np.array([False]))
        >>> det.entity_states([state]).baseline.count, det.batches_
        (array([1]), 1)
        """
        past = windows.history.baseline
        baseline = self.baseline_
        warmed = past.count >= self.warmup
        scorer_ready = self.scorer_.readiness >= 1.0
        learn = np.ones(len(flagged), dtype=bool) if self.learn_flagged else ~flagged
        if self.inputs == "deviation":
            learn &= warmed
        elif self.inputs != "raw":
            learn &= past.count >= baseline.level_after
        feed = sample_rows(
            np.flatnonzero(learn), self.learn_per_batch, [self.random_seed, self.batches_]
        )
        if len(feed):
            self.scorer_.learn_rows(windows.points[feed])
        self.batches_ += 1
        self.threshold_.learn(scores[warmed & ~flagged & scorer_ready])
        ordinary = warmed & ~flagged
        self.dispersion_.learn(windows.raw[ordinary], windows.expected[ordinary])
        return self._encode_states(
            EntityStates(
                baseline.update(windows.transformed, past),
                self.holdoff_.update(flagged, scores, windows.history.holdoff),
                windows.runs,
            )
        )

    def process(
        self, batch: Sequence[tuple[bytes | None, Mapping[str, float]]]
    ) -> list[tuple[Verdict, bytes]]:
        """Score, then learn, windows of distinct entities sharing one ``window_end``.

        Args:
            batch: per entity, its state bytes (``None`` for a new entity) and its features.

        Returns:
            Per entity, in order: the verdict and the entity's new state bytes.

        Raises:
            ValueError: a window has NaN / infinite / non-numeric values, missing or extra
                features, or an entity state that does not fit this detector.
        """
        if not batch:
            return []
        if self.sequential and len(batch) > 1:
            return [out for window in batch for out in self.process([window])]
        windows = self.windows(batch)
        raw_scores, scores = self.score(windows)
        flags = self.flag(windows, scores)
        explanations = self.explanations(windows, flags.flagged, flags.material)
        new_states = self.learn(windows, scores, flags.flagged)
        threshold = float(flags.threshold)
        p_values = flags.p_values.tolist() if flags.p_values is not None else None
        out = []
        for i, (state, score, raw_score, flagged, grade, confidence) in enumerate(zip(
            new_states, scores.tolist(), raw_scores.tolist(), flags.flagged.tolist(),
            flags.grades.tolist(), flags.confidence.tolist(), strict=True,
        )):
            kind, explanation = explanations.get(i, ("", {}))
            verdict = Verdict(
                score=score,
                raw_score=raw_score,
                threshold=threshold,
                is_anomaly=flagged,
                grade=grade,
                confidence=confidence,
                kind=kind,
                explanation=explanation,
                p_value=p_values[i] if flagged and p_values is not None else None,
            )
            out.append((verdict, state))
        return out

    # -- the shared state ---------------------------------------------------------------------
    def _get_state(self) -> dict[str, Any]:
        """Feature order, scorer, threshold, dispersion and batch counter."""
        return {
            "feature_names_": list(self.feature_names_) if self.feature_names_ else None,
            "scorer_": self.scorer_.to_bytes(),
            "threshold_": self.threshold_.to_bytes(),
            "dispersion_": self.dispersion_.to_bytes() if self.dispersion_ else None,
            "batches_": self.batches_,
        }

    def _set_state(self, state: Mapping[str, Any]) -> None:
        self.scorer_ = type(self.scorer_).from_bytes(state["scorer_"])
        self.threshold_ = AdaptiveThreshold.from_bytes(state["threshold_"])
        self.batches_ = state["batches_"]
        if state["feature_names_"] is not None:
            self.fix_features(tuple(state["feature_names_"]))
            self.dispersion_ = Dispersion.from_bytes(state["dispersion_"])


def score_batches(
    detector: WindowDetector,
    batches: Iterable[Sequence[tuple[Entity, Mapping[str, float]]]],
    states: MutableMapping[Entity, bytes] | None = None,
) -> Iterator[list[tuple[Entity, Verdict]]]:
    """Run ``detector`` over a stream of batches, keeping each entity's state.

    Args:
        detector: the detector (it learns the stream as it goes).
        batches: per window, ``(entity, features)`` of distinct entities.
        states: entity → state bytes to start from; updated in place after each batch.

    Yields:
        Per batch, ``(entity, verdict)`` in the batch's order.

    >>> det = WindowDetector(scorer_params={"num_trees": 5, "sample_size": 8})
    >>> states = {}
    >>> batches = [[("a", {"clicks": 3.0}), ("b", {"clicks": 9.0})], [("a", {"clicks": 4.0})]]
    >>> [[(e, v.is_anomaly) for e, v in out] for out in score_batches(det, batches, states)]
    [[('a', False), ('b', False)], [('a', False)]]
    >>> sorted(states)
    ['a', 'b']
    """
    states = {} if states is None else states
    for batch in batches:
        out = detector.process([(states.get(entity), features) for entity, features in batch])
        verdicts = []
        for (entity, _), (verdict, state) in zip(batch, out, strict=True):
            states[entity] = state
            verdicts.append((entity, verdict))
        yield verdicts
