"""The records of a multi-objective or constrained run: Pareto ranks, the front, its hypervolume,
the chosen config (:func:`pareto_outcome`, called by ``orchestrator.api`` when
``ExperimentSpec.pareto``).

Definitions (numerics in :mod:`search_algs.core.pareto`):

* a trial counts when it ended without error and its last result holds a finite value of every
  objective; it is *feasible* when its last result satisfies every constraint;
* ``pareto_rank``: the non-dominated rank (0 = on the front) among the feasible trials that count;
  ``None`` for the others (infeasible, failed);
* the front: the rank-0 trials, with their configs and objective values;
* ``hypervolume``: of the front, in the objectives' own units with maximised objectives negated,
  against ``reference_point`` (given, in the users' units) or by default the worst value of each
  objective over the counted trials plus 10% of its range;
* ``hypervolume_history``: the hypervolume of the feasible front of the trials ended so far,
  against the same reference point, as trials end (ordered by their last result's
  ``timestamp``): ``(trials ended, timestamp in ms or None, hypervolume)`` at each trial that
  changed it, and at the last trial;
* ``best_config``: the knee point of the front (closest to the ideal point once each objective is
  scaled to the front's range), or with ``select: {metric, mode}`` the front trial best by that
  objective.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from orchestrator.outcome import FINISHED
from search_algs.core.pareto import (default_reference_point, hypervolume, knee_point, non_dominated_sort,
                                     total_violation)


@dataclass
class ParetoOutcome:
    front: Any  # pandas DataFrame: trial_id, objectives, config/... columns
    hypervolume: float | None
    reference_point: list | None  # users' units
    best_trial_id: str | None
    best_config: dict | None
    best_values: dict | None  # {objective: value} of the chosen trial
    hypervolume_history: list = field(default_factory=list)  # [(trials ended, ts ms | None, hypervolume)]


def pareto_outcome(frame: Any, configs: dict, spec: Any) -> ParetoOutcome:
    """Add ``pareto_rank`` and ``feasible`` columns to ``frame`` (``TuningResult.trials``, in
    place) and return the front, hypervolume and chosen trial. ``configs``: ``{trial_id: config}``."""
    import pandas as pd

    objectives, modes, constraints = spec.objectives, spec.modes, spec.parsed_constraints()
    sign = np.array([1.0 if m == "min" else -1.0 for m in modes])
    n = len(frame)
    Y = np.full((n, len(objectives)), np.nan)  # (n, m) users' units
    for j, name in enumerate(objectives):
        if name in frame:
            Y[:, j] = pd.to_numeric(frame[name], errors="coerce").to_numpy(dtype=float)
    ok = np.all(np.isfinite(Y), axis=1) & (frame["status"] == FINISHED).to_numpy() if n else np.zeros(0, bool)
    records = frame.to_dict("records")
    feasible = np.array([bool(ok[i]) and total_violation(constraints, records[i]) == 0 for i in range(n)], bool)
    rank = np.full(n, -1)
    if feasible.any():
        rank[feasible] = non_dominated_sort(Y[feasible] * sign)
    frame["feasible"] = [bool(f) if ok[i] else False for i, f in enumerate(feasible)]
    frame["pareto_rank"] = pd.array([int(r) if r >= 0 else None for r in rank], dtype="Int64")
    on_front = np.flatnonzero(rank == 0)
    config_cols = [c for c in frame.columns if str(c).startswith("config/")]
    front = frame.iloc[on_front][["trial_id", *objectives, *config_cols]].reset_index(drop=True)
    if not on_front.size:
        return ParetoOutcome(front, None, None, None, None, None)
    L = Y * sign  # losses
    if spec.reference_point is not None:
        ref = np.asarray(spec.reference_point, dtype=float) * sign
    else:
        ref = default_reference_point(L[ok])
    hv = hypervolume(L[on_front], ref)
    if spec.select:
        j = objectives.index(spec.select["metric"])
        values = Y[on_front, j] * (1.0 if spec.select.get("mode", "min") == "min" else -1.0)
        chosen = int(on_front[int(np.argmin(values))])
    else:
        chosen = int(on_front[knee_point(L[on_front])])
    order = np.argsort(Y[on_front, 0] * sign[0], kind="stable")  # the front by the first objective
    front = front.iloc[order].reset_index(drop=True)
    trial_id = records[chosen]["trial_id"]
    history = hypervolume_history(L, feasible, ref, _end_times(frame))
    return ParetoOutcome(front, float(hv), [float(v) for v in ref * sign], trial_id,
                         configs.get(trial_id), {name: float(Y[chosen, j]) for j, name in enumerate(objectives)},
                         history)


def hypervolume_history(L: np.ndarray, feasible: np.ndarray, ref: np.ndarray,
                        ends: list) -> list[tuple[int, int | None, float]]:
    """``(k, end time, hypervolume)`` of the feasible points among the first ``k`` rows of ``L``
    (losses) in the order of ``ends`` (seconds or None; ties and None keep the rows' order), at
    each ``k`` where it changed and at the last. The front is kept as trials arrive, so the
    hypervolume is recomputed only when a trial enters it."""
    order = sorted(range(len(ends)), key=lambda i: (ends[i] is None, ends[i] or 0.0, i))
    front = np.zeros((0, L.shape[1]))
    history: list[tuple[int, int | None, float]] = []
    value = 0.0
    for k, i in enumerate(order, start=1):
        ts = int(ends[i] * 1000) if ends[i] is not None else None
        point = L[i]
        if feasible[i] and not np.any(np.all(front <= point, axis=1)):  # not weakly dominated: enters
            front = np.vstack([front[~np.all(point <= front, axis=1)], point])
            value = float(hypervolume(front, ref))
            history.append((k, ts, value))
        elif k == len(order):
            history.append((k, ts, value))
    return history


def _end_times(frame: Any) -> list:
    """Each trial's last result time (Tune's ``timestamp``, seconds), None where unknown."""
    import pandas as pd

    if "timestamp" not in frame:
        return [None] * len(frame)
    values = pd.to_numeric(frame["timestamp"], errors="coerce").to_numpy(dtype=float)
    return [float(v) if np.isfinite(v) else None for v in values]


def summary_rows(front: Any, hypervolume_value: float | None, reference_point: list | None,
                 objectives: list, first: int = 5) -> list[tuple]:
    """Rows for ``TuningResult.summary``: the front's size, hypervolume and first rows."""
    if front is None or not len(front):
        return [("pareto front", "empty: no feasible trial reported every objective")]
    ref = ", ".join(f"{v:.4g}" for v in reference_point or [])
    rows = [("pareto front", f"{len(front)} trials; hypervolume {hypervolume_value:.6g} (reference point {ref})")]
    for _, row in front.head(first).iterrows():
        values = ", ".join(f"{name}={_num(row[name])}" for name in objectives)
        rows.append((f"  {row['trial_id']}", values))
    if len(front) > first:
        rows.append(("  ...", f"{len(front) - first} more (TuningResult.pareto_front)"))
    return rows


def _num(value: Any) -> str:
    try:
        value = float(value)
    except (TypeError, ValueError):
        return str(value)
    return f"{value:.4g}" if math.isfinite(value) else str(value)
