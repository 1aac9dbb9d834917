"""Multi-objective and constrained search as a Ray Tune searcher (random or MOTPE).

A thin adapter on :class:`search_algs.base.SpaceSearcher`: it reads several objectives and the
constraint metrics from each result, keeps them on the observations, and asks the core
(:mod:`search_algs.core.motpe`, split documented there; dominance and hypervolume in
:mod:`search_algs.core.pareto`) for the next unit vector. The orchestrator builds it for
``search="tpe"`` or ``"random"`` whenever ``metric`` is a list or ``constraints`` are given.

How outcomes are recorded (on top of the base's contract):

* ``obs.objectives``: ``(m,)`` tuple of losses (each objective sign-flipped for ``mode="max"``),
  ``None`` for a failed trial (error, or an objective missing/NaN/inf); ``obs.loss`` is the first
  of them, so the base's bookkeeping (failed, censored, budgets) applies unchanged.
* ``obs.violation``: total constraint violation (0 = feasible; see
  :func:`search_algs.core.pareto.total_violation`).
* A constraint metric missing from a trial's first result is a :class:`ConstraintMetricError`
  naming it and the keys the trial reported (a misspelt name would otherwise make every trial
  infeasible without a word).
"""

from __future__ import annotations

import math
from typing import Any, Mapping, Sequence

import numpy as np

from search_algs.base import SpaceSearcher, metric_value
from search_algs.core.motpe import MOTPE
from search_algs.core.pareto import (Constraint, feasibility_order, knee_point, non_dominated_sort,
                                     parse_constraint, total_violation)
from search_algs.core.tpe import TPEOptions
from search_algs.errors import TuneorchError

__all__ = ["MultiObjectiveSearch", "ConstraintMetricError"]

ALGORITHMS = ("tpe", "random")
_TUNE_KEYS = {"training_iteration", "time_total_s", "time_this_iter_s", "timestamp", "done", "trial_id",
              "date", "pid", "hostname", "node_ip", "time_since_restore", "iterations_since_restore",
              "checkpoint_dir_name", "should_checkpoint", "experiment_tag", "config"}


class ConstraintMetricError(TuneorchError, ValueError):
    """A trial reported no value for a metric a constraint names."""


def as_list(value: Any) -> list:
    return list(value) if isinstance(value, (list, tuple)) else [value]


class MultiObjectiveSearch(SpaceSearcher):
    """Random search or MOTPE over several objectives, with constraints.

    Args:
        space, points_to_evaluate, seed: see :class:`SpaceSearcher`.
        metric: the objectives, a list of result keys (one key is allowed: constrained
            single-objective search).
        mode: ``"min"``/``"max"`` per objective (one string: the same for all).
        constraints: strings ``"METRIC OP BOUND"`` (OP: ``<=``, ``>=``, ``<``, ``>``) or
            :class:`~search_algs.core.pareto.Constraint` values.
        algorithm: ``"tpe"`` (MOTPE) or ``"random"``.
        n_startup, and the TPE options (``n_ei_candidates``, ``gamma_fraction``, ...): as in
            :class:`search_algs.tpe.TPESearch`; only with ``algorithm="tpe"``.
    """

    def __init__(self, space: Any = None, metric: Sequence[str] | str | None = None,
                 mode: Sequence[str] | str | None = None, points_to_evaluate: Sequence[Mapping] | None = None,
                 seed: int | None = None, *, constraints: Sequence[str | Constraint] = (),
                 algorithm: str = "tpe", n_startup: int = 10, **tpe_options: Any):
        if algorithm not in ALGORITHMS:
            raise ValueError(f"MultiObjectiveSearch: algorithm must be one of {ALGORITHMS}, got {algorithm!r}")
        if algorithm == "random" and tpe_options:
            raise TypeError(f"MultiObjectiveSearch(algorithm='random') got an unexpected keyword argument "
                            f"'{next(iter(tpe_options))}'")
        if isinstance(n_startup, bool) or not isinstance(n_startup, (int, np.integer)) or n_startup < 0:
            raise ValueError(f"MultiObjectiveSearch: 'n_startup' must be an int >= 0, got {n_startup!r}; "
                             f"use e.g. 10 (the default)")
        self.options = TPEOptions(**tpe_options)  # TypeError names an unknown option
        self.algorithm, self.n_startup = algorithm, int(n_startup)
        self.constraints = tuple(parse_constraint(c) for c in constraints)
        super().__init__(space=space, points_to_evaluate=points_to_evaluate, seed=seed)
        metrics = None if metric is None else as_list(metric)
        modes = None if mode is None else as_list(mode)
        if metrics is not None and modes is not None:
            if len(modes) == 1 and len(metrics) > 1:
                modes = modes * len(metrics)
            if len(modes) != len(metrics) or any(m not in ("min", "max") for m in modes):
                raise ValueError(f"MultiObjectiveSearch: mode must be 'min'/'max' per metric ({len(metrics)}), "
                                 f"got {mode!r}")
        self._metric, self._mode = metrics, modes
        self._core: MOTPE | None = None
        self._checked_results: set[str] = set()

    # ---- Tune contract ----------------------------------------------------------------------

    def set_search_properties(self, metric, mode, config: dict, **spec) -> bool:
        if self.space is not None and config:
            return False
        if metric and self._metric is None:
            self._metric, self._mode = as_list(metric), as_list(mode)
        if config:
            from search_algs.space import Space

            self.space = Space.of(config)
        return True

    def on_trial_result(self, trial_id: str, result: dict) -> None:
        if trial_id not in self._checked_results:
            self._checked_results.add(trial_id)
            missing = [c.metric for c in self.constraints if c.metric not in result]
            if missing:
                reported = sorted(k for k in result if k not in _TUNE_KEYS and not str(k).startswith("config"))
                raise ConstraintMetricError(
                    f"constraints: trial {trial_id} reported no {missing[0]!r}, which the constraint "
                    f"'{next(str(c) for c in self.constraints if c.metric == missing[0])}' names (it reported "
                    f"{reported}); report it with tune.report({{{missing[0]!r}: value, ...}}) or fix the "
                    f"constraint's metric name")
        step = result.get("training_iteration")
        vector = self._vector(result)
        if vector is not None and step is not None:
            self.curves.setdefault(trial_id, {})[int(step)] = (vector, self._violation(result))

    def on_trial_complete(self, trial_id: str, result: dict | None = None, error: bool = False) -> None:
        self._checked_results.discard(trial_id)
        flat = self.pending.pop(trial_id, None)
        curve = self.curves.pop(trial_id, {})
        if flat is None:
            return
        if result is None and not error:
            if curve:  # stopped while paused: censored at its last result
                last = max(curve)
                self._add(flat, *curve[last], last, censored=True)
            return
        vector = None if error else self._vector(result)
        violation = math.inf if vector is None else self._violation(result)
        self._add(flat, vector, violation, (result or {}).get("training_iteration"))

    def add_evaluated_point(self, parameters: dict, value: Any, error: bool = False, pruned: bool = False,
                            intermediate_values: list | None = None,
                            constraint_values: Mapping[str, float] | None = None) -> None:
        """Warm start: ``value`` is a mapping ``{metric: value}`` or one value per objective
        (in the user's modes); ``constraint_values`` ``{metric: value}`` (missing: infeasible)."""
        flat = self.space.to_flat(parameters)
        result = dict(value) if isinstance(value, Mapping) else dict(zip(self._metric, as_list(value)))
        result.update(constraint_values or {})
        vector = None if error else self._vector(result)
        violation = math.inf if vector is None else self._violation(result)
        budget = len(intermediate_values) if intermediate_values else None
        self._add(flat, vector, violation, budget, censored=pruned)

    # ---- reading results -----------------------------------------------------------------------

    def _vector(self, result: Mapping | None) -> tuple | None:
        values = [metric_value(result, m) for m in self._metric]
        if any(v is None for v in values):
            return None
        return tuple(v if mode == "min" else -v for v, mode in zip(values, self._mode))

    def _violation(self, result: Mapping | None) -> float:
        return total_violation(self.constraints, result or {})

    def _add(self, flat, vector, violation, budget, censored: bool = False) -> None:
        self._record(flat, None if vector is None else vector[0], budget, {}, censored=censored)
        obs = self.history[-1]
        obs.objectives, obs.violation = vector, float(violation)

    # ---- proposing --------------------------------------------------------------------------------

    def propose(self) -> dict[str, Any]:
        history = self.history
        if self.algorithm == "random" or len(history) < self.n_startup or all(o.failed for o in history):
            return self.space.sample_flat(self.rng)
        space, m = self.space, len(self._metric)
        if self._core is None:
            self._core = MOTPE(space.dims(), self.options)
        X = space.encode_flats([o.flat for o in history])  # (n, d)
        Y = np.array([o.objectives if o.objectives is not None else (np.nan,) * m for o in history],
                     dtype=float).reshape(len(history), m)  # (n, m)
        pending = np.array([space.encode_flat(f) for f in self.pending.values()]).reshape(-1, space.dim)
        u = self._core.suggest(X, Y, self.rng, violation=[o.violation for o in history],
                               budgets=[o.budget for o in history], censored=[o.censored for o in history],
                               pending=pending)
        return space.decode_unit(u)

    def recommend_flat(self) -> dict[str, Any] | None:
        """The knee point (:func:`search_algs.core.pareto.knee_point`) of the feasible,
        non-dominated completed trials (censored ones only when none completed); with no feasible
        trial, the least violating one."""
        done = [o for o in self.history if not o.failed]
        if not done:
            return None
        feasible = [o for o in done if o.violation == 0]
        if not feasible:
            return dict(min(done, key=lambda o: o.violation).flat)
        pool = [o for o in feasible if not o.censored] or feasible
        Y = np.array([o.objectives for o in pool], dtype=float)
        front = [pool[i] for i in np.flatnonzero(non_dominated_sort(Y) == 0)]
        return dict(front[knee_point(np.array([o.objectives for o in front]))].flat)

    def ranking(self) -> list[int]:
        """History indices best first (:func:`search_algs.core.pareto.feasibility_order`)."""
        m = len(self._metric)
        Y = np.array([o.objectives if o.objectives is not None else (np.nan,) * m for o in self.history],
                     dtype=float).reshape(-1, m)
        return feasibility_order(Y, [o.violation for o in self.history]).tolist()

    # ---- persistence -------------------------------------------------------------------------------

    def extra_state(self) -> Any:
        return {"options": self.options.as_dict(), "n_startup": self.n_startup, "algorithm": self.algorithm,
                "constraints": [(c.metric, c.operator, c.bound) for c in self.constraints]}

    def set_extra_state(self, extra: Any) -> None:
        self.options = TPEOptions(**extra["options"])
        self.n_startup, self.algorithm = int(extra["n_startup"]), extra["algorithm"]
        self.constraints = tuple(Constraint(*c) for c in extra["constraints"])
        self._core = None
        self._checked_results = set()
