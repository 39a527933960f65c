"""Evidence that builds up over consecutive windows moving the same way.

A broken ad with 5 expected clicks a window that gets none is unremarkable in one window
(two-sided ``p ~ 0.013``) and certain after three (``p ~ 6e-7``). Per entity and feature, a
*run* sums the observed and the expected counts of the consecutive windows in which the feature
stayed on the same side of its expected value; its p-value is the counting tail of those sums
(:func:`models.significance.count_tail`, scaled by the window's dispersion and, when the
detector says what the expected value was measured on, by
:func:`models.significance.estimation_factor`: a longer run leans more on that estimate, so it
needs more evidence the longer it gets next to a short history). The detector keeps
runs of proportions only (``ctr``: clicks against their expected number), which keep their usual
value through the day; counts follow the traffic's cycles, which a baseline lags behind, so their
runs would build up on every rise of traffic.

Only runs with some evidence are kept (the one-sided tail of their side at most ``keep_p``), so
an ordinary entity stores none: the state is an empty part, and a run costs three numbers. A run
of windows without a single success is kept too. At 2 expected clicks a window and a dispersion
of 1.4, a window without clicks has a tail of 0.25, so no such window could start a run; ten in
a row are significant at the detector's 1e-4, even against a rate measured on 39 windows. It is
kept only where its history could make it evidence: measured against ``history`` expected
successes, its tail never falls below ``exp(-history / phi)``. The
tail is one-sided because a run lies on one side by construction: a window with no clicks where
2.4 were expected (tail 0.09) starts a run, although its two-sided p-value (0.18) would not.

>>> runs = Runs(keep_p=0.1)
>>> state = runs.decode([None])
>>> for _ in range(3):
...     state, p, _ = runs.update(np.array([[0.0]]), np.array([[5.0]]), np.ones(1), state)
>>> f"{p[0, 0]:.0e}", runs.encode(state)
('6e-07', [[[0, 0.0, 15.0]]])
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from models.params import Parameterised, in_range
from models.significance import count_tail, estimation_factor, two_sided


@dataclass(frozen=True)
class RunsBatch:
    """Decoded runs of a batch of entities.

    Per entity and feature, the observed and expected sums of its current run (both 0: no run).
    """

    observed: np.ndarray
    expected: np.ndarray


class Runs(Parameterised):
    """Per entity and feature, the run of windows on one side of the expected value.

    Args:
        keep_p: a run whose one-sided tail is above this is dropped (the next window starts
            afresh), unless it has no success at all.
    """

    CHECKS = (in_range("keep_p", 0, 1, open_low=True, label="runs keep_p"),)

    def __init__(self, keep_p: float = 0.1) -> None:
        self.keep_p = keep_p
        self.check_params()

    def update(
        self,
        observed: np.ndarray,
        expected: np.ndarray,
        dispersion: np.ndarray,
        batch: RunsBatch,
        history: np.ndarray | None = None,
    ) -> tuple[RunsBatch, np.ndarray, np.ndarray]:
        """Add a window to each run (or start one).

        Returns the new runs, their p-values, and where a run went on (spans earlier windows).
        ``history`` is, per entity and feature, the expected count its expected value was
        measured on; ``None`` takes the expected value as known.

        A window on the other side of the expected value (or on it) ends the run; the window
        starts the next one.
        """
        side = np.sign(observed - expected)
        running = np.sign(batch.observed - batch.expected)
        go_on = (side != 0) & (side == running)
        obs = np.where(go_on, batch.observed + observed, observed)
        exp = np.where(go_on, batch.expected + expected, expected)
        counting = np.broadcast_to(np.maximum(dispersion, 1.0), obs.shape)
        phi = counting if history is None else counting * estimation_factor(exp, history)
        tail = np.ones(obs.shape)
        moving = side != 0
        tail[moving] = count_tail(obs[moving] / phi[moving], exp[moving] / phi[moving])
        keep = tail <= self.keep_p  # a run lies on one side: its own tail is the evidence
        # A run without a single success is kept whatever its tail: where fewer than about
        # -ln(keep_p) successes are expected a window, no window alone can start a run, yet
        # window after window of none (a broken ad) becomes certain. Its tail never falls below
        # exp(-history / phi), though: a run that could never reach keep_p is not kept (a bot
        # share whose history saw no bot).
        none = (side < 0) & (obs == 0)
        if history is not None:
            none &= history > -np.log(self.keep_p) * counting
        keep |= none
        runs = RunsBatch(np.where(keep, obs, 0.0), np.where(keep, exp, 0.0))
        return runs, np.where(moving, two_sided(tail), 1.0), go_on

    def decode(self, parts: Sequence[Sequence[Any] | None], width: int = 1) -> RunsBatch:
        """Decode per-entity :meth:`encode` parts (``None`` = no run) into ``width`` features."""
        observed = np.zeros((len(parts), width))
        expected = np.zeros((len(parts), width))
        for i, part in enumerate(parts):
            for j, obs, exp in part or ():
                if not 0 <= j < width:
                    raise ValueError(f"run of feature {j} in an entity state of {width} features")
                observed[i, j], expected[i, j] = obs, exp
        return RunsBatch(observed, expected)

    def encode(self, batch: RunsBatch) -> list[list[list[Any]] | None]:
        """Per entity, ``None`` without runs, else ``[feature, observed, expected]`` per run."""
        out: list[list[list[Any]] | None] = [None] * len(batch.observed)
        rows, cols = np.nonzero((batch.observed != 0) | (batch.expected != 0))
        observed = batch.observed[rows, cols].tolist()  # Python numbers, in one call each
        expected = batch.expected[rows, cols].tolist()
        for i, j, obs, exp in zip(rows.tolist(), cols.tolist(), observed, expected, strict=True):
            if out[i] is None:
                out[i] = []
            out[i].append([j, obs, exp])
        return out
