"""What the Flink job calls: a detector that scores batches of entity windows.

One :class:`WindowDetector` lives per shard of the job's keyed state and holds the *shared* model
(for example one random cut forest for every entity of the shard). Each entity carries only a
small state of its own — its :class:`~models.baseline.EwmaBaseline` — which the job keeps in
Flink keyed state and passes in and out as bytes.

Per batch (windows of distinct entities sharing one ``window_end``) the detector:

1. turns each window into the scorer's inputs: standardised deviations from its entity's
   running baseline (``inputs="deviation"``), its *level* on a per-entity scale frozen after a
   warm-up (``"level"``: which values are usual for this entity), or the raw features
   (``"raw"``, as KDA did);
2. scores every window with the shared scorer **before** learning any of them (causal); with
   ``gate_z`` the 0..1 score is scaled down unless the window also deviates from the running
   baseline (``min(1, max |deviation| / gate_z)``) — rare levels that the entity drifted into
   slowly are not anomalies;
3. compares the 0..1 score with an :class:`~models.threshold.AdaptiveThreshold`; a window is
   flagged only once its entity has ``warmup`` windows of history, the scorer and the threshold
   are warmed up, and some feature moved by at least ``min_relative_change`` of its expected value;
4. explains flagged windows in KDA's ``ANOMALY_EXPLANATION`` shape (scorer attribution, or the
   deviations themselves for scorers without attribution);
5. learns the windows: every entity baseline (with clipped updates); the shared scorer all of
   them, or only the unflagged ones with ``learn_flagged=False``.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import msgpack
import numpy as np

from models.base import feature_names_of, to_matrix
from models.baseline import NEVER, BaselineBatch, EwmaBaseline
from models.scorers import make_scorer
from models.threshold import AdaptiveThreshold

log = logging.getLogger(__name__)

_STATE_VERSION = 1
INPUTS = ("deviation", "level", "raw")


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
    explanation: dict[str, dict[str, Any]] = field(default_factory=dict)


class WindowDetector:
    """Scores batches of entity windows against per-entity baselines and a shared scorer.

    Args:
        name: registry name, reported in every anomaly record.
        scorer: scorer kind (see :data:`models.scorers.SCORER_TYPES`).
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
            value by at least this fraction of it (0 = no suppression).

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
    ) -> None:
        if inputs not in INPUTS:
            raise ValueError(f"inputs must be one of {INPUTS}, got {inputs!r}")
        if not (isinstance(warmup, int) and warmup >= 1):
            raise ValueError(f"warmup must be an integer >= 1, got {warmup!r}")
        if not z_clip > 0:
            raise ValueError(f"z_clip must be > 0, got {z_clip!r}")
        if not 0 <= z_deadzone < z_clip:
            raise ValueError(f"z_deadzone must be in [0, z_clip), got {z_deadzone!r}")
        if not gate_z >= 0:
            raise ValueError(f"gate_z must be >= 0, got {gate_z!r}")
        if not (isinstance(learn_per_batch, int) and learn_per_batch >= 0):
            raise ValueError(f"learn_per_batch must be an integer >= 0, got {learn_per_batch!r}")
        if not (isinstance(hold_off, int) and hold_off >= 0):
            raise ValueError(f"hold_off must be an integer >= 0, got {hold_off!r}")
        if not min_relative_change >= 0:
            raise ValueError(f"min_relative_change must be >= 0, got {min_relative_change!r}")
        if "feature_names" in (baseline_params or {}):
            raise ValueError("baseline_params: feature_names come from the windows")
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
        self.batches_ = 0
        self.learn_flagged = learn_flagged
        self.min_relative_change = min_relative_change
        self.scorer_ = make_scorer(scorer, self.scorer_params)
        self.threshold_ = AdaptiveThreshold(**self.threshold_params)
        EwmaBaseline(["_"], **self.baseline_params)  # validate now, not at the first batch
        self.feature_names_: tuple[str, ...] | None = None
        self.baseline_: EwmaBaseline | None = None

    def params(self) -> dict[str, Any]:
        """The parameters as given."""
        return {
            "name": self.name,
            "scorer": self.scorer,
            "scorer_params": self.scorer_params,
            "inputs": self.inputs,
            "baseline_params": self.baseline_params,
            "threshold_params": self.threshold_params,
            "warmup": self.warmup,
            "z_clip": self.z_clip,
            "z_deadzone": self.z_deadzone,
            "gate_z": self.gate_z,
            "learn_per_batch": self.learn_per_batch,
            "random_seed": self.random_seed,
            "hold_off": self.hold_off,
            "learn_flagged": self.learn_flagged,
            "min_relative_change": self.min_relative_change,
        }

    def _fix_features(self, names: tuple[str, ...]) -> EwmaBaseline:
        if self.baseline_ is None:
            self.feature_names_ = names
            self.scorer_.feature_names_ = names
            self.baseline_ = EwmaBaseline(names, **self.baseline_params)
        return self.baseline_

    def _inputs(
        self, batch: Sequence[tuple[bytes | None, Mapping[str, float]]]
    ) -> tuple[np.ndarray, np.ndarray, BaselineBatch, np.ndarray, np.ndarray]:
        """Raw rows, transformed rows, entity history, deviations and the scorer's inputs."""
        baseline = self._fix_features(self.feature_names_ or feature_names_of(batch[0][1]))
        raw = to_matrix([features for _, features in batch], self.feature_names_)
        history = baseline.decode([state for state, _ in batch])
        transformed = baseline.transform(raw)
        z = np.clip(baseline.deviations(transformed, history), -self.z_clip, self.z_clip)
        if self.inputs == "deviation":
            points = np.sign(z) * np.maximum(np.abs(z) - self.z_deadzone, 0.0)
        elif self.inputs == "raw":
            points = raw
        else:
            level = np.clip(baseline.levels(transformed, history), -self.z_clip, self.z_clip)
            points = np.sign(level) * np.maximum(np.abs(level) - self.z_deadzone, 0.0)
        return raw, transformed, history, z, points

    def scorer_inputs(
        self, batch: Sequence[tuple[bytes | None, Mapping[str, float]]]
    ) -> np.ndarray:
        """The rows the shared scorer would see for ``batch`` (training data for a scorer)."""
        return self._inputs(batch)[4] if batch else np.empty((0, 0))

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
        baseline = self._fix_features(self.feature_names_ or feature_names_of(batch[0][1]))
        raw, transformed, history, z, points = self._inputs(batch)
        raw_scores = self.scorer_.score_rows(points)
        scores = self.scorer_.unit_score(raw_scores)
        if self.gate_z > 0:
            scores = scores * np.minimum(1.0, np.abs(z).max(axis=1) / self.gate_z)
        threshold = self.threshold_.value
        scorer_ready = self.scorer_.readiness >= 1.0
        model_ready = scorer_ready and self.threshold_.confidence >= 1.0
        warmed = history.count >= self.warmup
        expected = np.where((history.count > 0)[:, None], baseline.expected(history), raw)
        flagged = warmed & (scores > threshold) & model_ready
        if self.min_relative_change > 0 and flagged.any():
            change = np.abs(raw - expected) / np.maximum(np.abs(expected), 1e-9)
            flagged &= change.max(axis=1) >= self.min_relative_change
        if self.hold_off:
            held = history.since_flag < self.hold_off
            flagged &= ~held | (scores > history.flag_score)
        grades = np.where(flagged, self.threshold_.grade(scores), 0.0)
        confidence = (
            np.minimum(1.0, history.count / self.warmup)
            * self.scorer_.readiness
            * self.threshold_.confidence
        )
        explanations = self._explain(points, raw, expected, flagged)

        learn = np.ones(len(batch), dtype=bool) if self.learn_flagged else ~flagged
        if self.inputs == "deviation":
            learn &= warmed
        elif self.inputs != "raw":
            learn &= history.count >= baseline.level_after
        feed = np.flatnonzero(learn)
        if self.learn_per_batch and len(feed) > self.learn_per_batch:
            rng = np.random.default_rng([self.random_seed, self.batches_])
            feed = np.sort(rng.choice(feed, self.learn_per_batch, replace=False))
        if len(feed):
            self.scorer_.learn_rows(points[feed])
        self.batches_ += 1
        eligible = warmed & ~flagged & scorer_ready
        self.threshold_.learn(scores[eligible])
        updated = baseline.update(transformed, history)
        updated = replace(
            updated,
            since_flag=np.where(flagged, 0, np.minimum(history.since_flag + 1, NEVER)),
            flag_score=np.where(flagged, scores, history.flag_score),
        )
        new_states = baseline.encode(updated)

        out = []
        for i, state in enumerate(new_states):
            kind, explanation = explanations.get(i, ("", {}))
            verdict = Verdict(
                score=float(scores[i]),
                raw_score=float(raw_scores[i]),
                threshold=float(threshold),
                is_anomaly=bool(flagged[i]),
                grade=float(grades[i]),
                confidence=float(confidence[i]),
                kind=kind,
                explanation=explanation,
            )
            out.append((verdict, state))
        return out

    def _explain(
        self, points: np.ndarray, raw: np.ndarray, expected: np.ndarray, flagged: np.ndarray
    ) -> dict[int, tuple[str, dict[str, dict[str, Any]]]]:
        """KDA-shaped explanations of the flagged rows, keyed by row index."""
        rows = np.flatnonzero(flagged)
        if not len(rows):
            return {}
        attribution = getattr(self.scorer_, "attribution_rows", None)
        if attribution is not None:
            high, low = attribution(points[rows])
        else:
            deviation = points[rows] if self.inputs == "deviation" else raw[rows] - expected[rows]
            high, low = np.maximum(deviation, 0.0), np.maximum(-deviation, 0.0)
        out = {}
        for k, i in enumerate(rows):
            total = high[k] + low[k]
            strength = np.abs(high[k] - low[k]) / np.maximum(total, 1e-12)
            order = np.argsort(-total, kind="stable")
            explanation = {
                self.feature_names_[j]: {
                    "DIRECTION": "HIGH" if high[k, j] >= low[k, j] else "LOW",
                    "STRENGTH": float(strength[j]),
                    "ATTRIBUTION_SCORE": float(total[j]),
                    "value": float(raw[i, j]),
                    "expected": float(expected[i, j]),
                }
                for j in order
            }
            top = self.feature_names_[order[0]]
            kind = f"{top}_{explanation[top]['DIRECTION'].lower()}" if total.max() > 0 else ""
            out[int(i)] = (kind, explanation)
        return out

    def to_bytes(self) -> bytes:
        """The shared learned state: parameters, feature order, scorer and threshold."""
        return msgpack.packb(
            {
                "version": _STATE_VERSION,
                "params": self.params(),
                "feature_names_": list(self.feature_names_) if self.feature_names_ else None,
                "scorer_": self.scorer_.to_bytes(),
                "threshold_": self.threshold_.state(),
                "batches_": self.batches_,
            }
        )

    @classmethod
    def from_bytes(cls, data: bytes) -> WindowDetector:
        """Rebuild a detector from :meth:`to_bytes`."""
        state = msgpack.unpackb(data)
        if state.get("version") != _STATE_VERSION:
            raise ValueError(f"detector state version {state.get('version')} is not supported")
        detector = cls(**state["params"])
        detector.scorer_ = type(detector.scorer_).from_bytes(state["scorer_"])
        detector.threshold_ = AdaptiveThreshold.restore(
            detector.threshold_params, state["threshold_"]
        )
        detector.batches_ = state["batches_"]
        if state["feature_names_"] is not None:
            detector._fix_features(tuple(state["feature_names_"]))
        return detector

