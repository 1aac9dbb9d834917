"""Multi-objective and constrained search as a Ray Tune searcher (random, MOTPE or ParEGO GP-EI).

A thin adapter on :class:`search_algs.base.SpaceSearcher`: it reads several objectives and the
constraint metrics from each result, keeps them on the observations, and asks the core
(:mod:`search_algs.core.motpe`, split documented there, or :mod:`search_algs.core.mo_gp`,
ParEGO scalarisations with a probability-of-feasibility GP per constraint; dominance and
hypervolume in :mod:`search_algs.core.pareto`) for the next unit vector. The orchestrator builds
it for ``search="tpe"``, ``"gp-ei"`` or ``"random"`` whenever ``metric`` is a list or
``constraints`` are given.

How outcomes are recorded (on top of the base's contract):

* ``obs.objectives``: ``(m,)`` tuple of losses (each objective sign-flipped for ``mode="max"``),
  ``None`` for a failed trial (error, or an objective missing/NaN/inf); ``obs.loss`` is the first
  of them, so the base's bookkeeping (failed, censored, budgets) applies unchanged.
* ``obs.violation``: total constraint violation (0 = feasible; see
  :func:`search_algs.core.pareto.total_violation`).
* ``obs.constraint_values``: ``(k,)`` tuple, each constraint's slack (value minus bound once
  oriented as ``<=``, :func:`search_algs.core.mo_gp.oriented_slack`; NaN when missing): what the
  GP core models per constraint.
* A constraint metric missing from a trial's first result is a :class:`ConstraintMetricError`
  naming it and the keys the trial reported (a misspelt name would otherwise make every trial
  infeasible without a word).
"""

from __future__ import annotations

import contextlib
import logging
import math
from typing import Any, Mapping, Sequence

import numpy as np

from search_algs.base import SpaceSearcher, metric_value
from search_algs.core.motpe import MOTPE
from search_algs.core.pareto import (Constraint, feasibility_order, knee_point, non_dominated_sort,
                                     parse_constraint, total_violation)
from search_algs.core.tpe import TPEOptions
from search_algs.errors import TuneorchError

logger = logging.getLogger(__name__)

__all__ = ["MultiObjectiveSearch", "ConstraintMetricError"]

ALGORITHMS = ("tpe", "random", "gp-ei")
GP_KEYWORDS = ("rho", "noise", "options", "startup_design")  # what algorithm="gp-ei" takes besides n_startup
STARTUP_DESIGNS = ("random", "sobol")
_TUNE_KEYS = {"training_iteration", "time_total_s", "time_this_iter_s", "timestamp", "done", "trial_id",
              "date", "pid", "hostname", "node_ip", "time_since_restore", "iterations_since_restore",
              "checkpoint_dir_name", "should_checkpoint", "experiment_tag", "config"}


class ConstraintMetricError(TuneorchError, ValueError):
    """A trial reported no value for a metric a constraint names."""


def as_list(value: Any) -> list:
    return list(value) if isinstance(value, (list, tuple)) else [value]


def _blas_single_thread():
    """One BLAS thread while the GP core works (scipy's L-BFGS-B calls BLAS on tiny vectors; on a
    busy machine OpenBLAS's threads wait for each other: measured 0.25 vs 0.05 CPU s per
    suggestion on 3-d ZDT1 at n = 10-30 with a reduced acquisition search). threadpoolctl comes
    with scikit-learn."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # pragma: no cover - scikit-learn brings it
        return contextlib.nullcontext()
    return threadpool_limits(limits=1, user_api="blas")


def _gp_options(n_startup: int, given: Mapping[str, Any]) -> Any:
    """:class:`~search_algs.core.mo_gp.MOGPOptions` from the keywords of ``algorithm="gp-ei"``:
    ``rho``, ``noise`` and ``options`` (a ``GPEIOptions`` or a mapping of some of its fields,
    nested parts as mappings, as :class:`search_algs.gp_ei.GPEISearch` takes it); ``startup_design``
    is checked here and kept by the searcher."""
    from search_algs.core.gp_ei import GPEIOptions
    from search_algs.core.mo_gp import MOGPOptions

    me = "MultiObjectiveSearch(algorithm='gp-ei')"
    unknown = [k for k in given if k not in GP_KEYWORDS]
    design = given.get("startup_design", "random")
    if design not in STARTUP_DESIGNS:
        raise ValueError(f"{me}: 'startup_design' must be one of {STARTUP_DESIGNS}, got {design!r}; use "
                         f"'random' (the default) or 'sobol' (even coverage)")
    if unknown:
        raise TypeError(f"{me} got an unexpected keyword argument '{unknown[0]}'; it takes n_startup, "
                        f"{', '.join(GP_KEYWORDS)} (the GP's settings go in options={{...}})")
    options = given.get("options")
    if options is None:
        gp = GPEIOptions()
    elif isinstance(options, GPEIOptions):
        gp = options
    elif isinstance(options, Mapping):
        merged = GPEIOptions().as_dict()
        bad = sorted(set(options) - set(merged))
        if bad:
            raise ValueError(f"{me}: unknown 'options' field(s) {bad}; known: {sorted(merged)}")
        for key, value in options.items():
            if isinstance(merged[key], dict):
                if not isinstance(value, Mapping) or set(value) - set(merged[key]):
                    raise ValueError(f"{me}: 'options.{key}' must be a mapping of some of "
                                     f"{sorted(merged[key])}, got {value!r}")
                merged[key] = {**merged[key], **value}
            else:
                merged[key] = value
        try:
            gp = GPEIOptions.from_dict(merged)
        except TypeError as exc:
            raise ValueError(f"{me}: 'options' {dict(options)!r} is not valid ({exc})") from None
    else:
        raise ValueError(f"{me}: 'options' must be a GPEIOptions or a mapping of its fields, got "
                         f"{type(options).__name__} {options!r}; e.g. {{'noisy_acqf': 'nei'}}")
    if "noise" in given:
        gp = GPEIOptions.from_dict({**gp.as_dict(), "noise": given["noise"]})
    rho = given.get("rho", 0.05)
    if isinstance(rho, bool) or not isinstance(rho, (int, float)) or not (math.isfinite(rho) and rho >= 0):
        raise ValueError(f"{me}: 'rho' must be a finite number >= 0, got {rho!r}; use e.g. 0.05 (Knowles "
                         f"2006: the augmentation of the Chebyshev scalarisation)")
    result = MOGPOptions(rho=float(rho), n_startup=n_startup, gp=gp)
    try:
        result.validate()
    except ValueError as exc:
        raise ValueError(f"{me}: {exc}") from None
    return result


class MultiObjectiveSearch(SpaceSearcher):
    """Random search, MOTPE or ParEGO GP-EI over several objectives, with constraints.

    Args:
        space, points_to_evaluate, seed: see :class:`SpaceSearcher`.
        metric: the objectives, a list of result keys (one key is allowed: constrained
            single-objective search).
        mode: ``"min"``/``"max"`` per objective (one string: the same for all).
        constraints: strings ``"METRIC OP BOUND"`` (OP: ``<=``, ``>=``, ``<``, ``>``) or
            :class:`~search_algs.core.pareto.Constraint` values.
        algorithm: ``"tpe"`` (MOTPE), ``"gp-ei"`` (ParEGO: a random augmented-Chebyshev
            scalarisation per suggestion, GP-EI on it, times the probability of feasibility from
            one GP per constraint; :mod:`search_algs.core.mo_gp`) or ``"random"``.
        n_startup: random suggestions before the model is used (default 10).
        With ``algorithm="tpe"``, the TPE options (``n_ei_candidates``, ``gamma_fraction``, ...):
            as in :class:`search_algs.tpe.TPESearch`.
        With ``algorithm="gp-ei"``: ``rho`` (augmentation of the scalarisation, default 0.05),
            ``startup_design`` (``"random"`` or ``"sobol"``), ``noise`` and ``options`` (a
            :class:`~search_algs.core.gp_ei.GPEIOptions` or a mapping of some of its fields) as
            in :class:`search_algs.gp_ei.GPEISearch`.
    """

    def __init__(self, space: Any = None, metric: Sequence[str] | str | None = None,
                 mode: Sequence[str] | str | None = None, points_to_evaluate: Sequence[Mapping] | None = None,
                 seed: int | None = None, *, constraints: Sequence[str | Constraint] = (),
                 algorithm: str = "tpe", n_startup: int = 10, **tpe_options: Any):
        if algorithm not in ALGORITHMS:
            raise ValueError(f"MultiObjectiveSearch: 'algorithm' must be one of {ALGORITHMS}, got "
                             f"{algorithm!r}; use 'tpe' (MOTPE), 'gp-ei' (ParEGO GP-EI) or 'random'")
        if algorithm == "random" and tpe_options:
            raise TypeError(f"MultiObjectiveSearch(algorithm='random') got an unexpected keyword argument "
                            f"'{next(iter(tpe_options))}'")
        if isinstance(n_startup, bool) or not isinstance(n_startup, (int, np.integer)) or n_startup < 0:
            raise ValueError(f"MultiObjectiveSearch: 'n_startup' must be an int >= 0, got {n_startup!r}; "
                             f"use e.g. 10 (the default)")
        self.startup_design = "random"
        self._design_seed: int | None = None  # drawn from the searcher's generator at first use
        if algorithm == "gp-ei":
            self.options: Any = _gp_options(int(n_startup), tpe_options)
            self.startup_design = tpe_options.get("startup_design", "random")
        else:
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
        self._core: Any = None
        self._core_state: dict | None = None  # a restored GP core's state, loaded into the next core built
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
            self.curves.setdefault(trial_id, {})[int(step)] = (vector, self._violation(result), self._slacks(result))

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
        self._add(flat, vector, violation, (result or {}).get("training_iteration"),
                  slacks=None if error else self._slacks(result))

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
        self._add(flat, vector, violation, budget, censored=pruned, slacks=None if error else self._slacks(result))

    # ---- reading results -----------------------------------------------------------------------

    def _vector(self, result: Mapping | None) -> tuple | None:
        values = [metric_value(result, m) for m in self._metric]
        if any(v is None for v in values):
            return None
        return tuple(v if mode == "min" else -v for v, mode in zip(values, self._mode))

    def _violation(self, result: Mapping | None) -> float:
        return total_violation(self.constraints, result or {})

    def _slacks(self, result: Mapping | None) -> tuple:
        from search_algs.core.mo_gp import oriented_slack

        return tuple(oriented_slack(c, (result or {}).get(c.metric)) for c in self.constraints)

    def _add(self, flat, vector, violation, budget, censored: bool = False, slacks: tuple | None = None) -> None:
        self._record(flat, None if vector is None else vector[0], budget, {}, censored=censored)
        obs = self.history[-1]
        obs.objectives, obs.violation = vector, float(violation)
        obs.constraint_values = (math.nan,) * len(self.constraints) if slacks is None else tuple(slacks)

    # ---- proposing --------------------------------------------------------------------------------

    def propose(self) -> dict[str, Any]:
        history = self.history
        if self.algorithm == "random" or len(history) < self.n_startup or all(o.failed for o in history):
            return self._startup_point(len(history))
        space, m = self.space, len(self._metric)
        X = space.encode_flats([o.flat for o in history])  # (n, d)
        Y = np.array([o.objectives if o.objectives is not None else (np.nan,) * m for o in history],
                     dtype=float).reshape(len(history), m)  # (n, m)
        pending = np.array([space.encode_flat(f) for f in self.pending.values()]).reshape(-1, space.dim)
        if self.algorithm == "gp-ei":
            return self._propose_gp(X, Y, pending)
        if self._core is None:
            self._core = MOTPE(space.dims(), self.options)
        u = self._core.suggest(X, Y, self.rng, violation=[o.violation for o in history],
                               budgets=[o.budget for o in history], censored=[o.censored for o in history],
                               pending=pending)
        return space.decode_unit(u)

    def _startup_point(self, k: int) -> dict[str, Any]:
        """Flat values of the ``k``-th start-up point: a uniform draw, or with
        ``startup_design="sobol"`` the ``k``-th point of a scrambled Sobol design of ``n_startup``
        points (rounded up to a power of two) seeded from the searcher's generator."""
        if self.startup_design != "sobol" or k >= max(2, self.n_startup):
            return self.space.sample_flat(self.rng)
        from scipy.stats import qmc

        if self._design_seed is None:
            self._design_seed = int(self.rng.integers(2**31 - 1))
        design = qmc.Sobol(d=self.space.dim, scramble=True, seed=self._design_seed).random_base2(
            math.ceil(math.log2(max(2, self.n_startup))))  # (2^j, d)
        return self.space.decode_unit(design[k])

    def _propose_gp(self, X: np.ndarray, Y: np.ndarray, pending: np.ndarray) -> dict[str, Any]:
        from search_algs.core.gp import GPNumericalError
        from search_algs.core.mo_gp import MOGP

        space, history, k = self.space, self.history, len(self.constraints)
        if self._core is None:
            self._core = MOGP(space.dims(), self.options)
            if self._core_state is not None:
                self._core.load_state(self._core_state)
                self._core_state = None
        C = np.array([getattr(o, "constraint_values", None) or (math.nan,) * k for o in history],
                     dtype=float).reshape(len(history), k)  # (n, k)
        try:
            with _blas_single_thread():
                u = self._core.suggest(X, Y, self.rng, violation=[o.violation for o in history] if k else None,
                                       constraint_values=C if k else None, pending=pending)
        except GPNumericalError as exc:
            logger.warning("MultiObjectiveSearch(gp-ei): the model broke down (%s); proposing a random point", exc)
            return space.sample_flat(self.rng)
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
        core = self._core.state() if self._core is not None and self.algorithm == "gp-ei" else self._core_state
        return {"options": self.options.as_dict(), "n_startup": self.n_startup, "algorithm": self.algorithm,
                "constraints": [(c.metric, c.operator, c.bound) for c in self.constraints], "core": core,
                "startup_design": self.startup_design, "design_seed": self._design_seed}

    def set_extra_state(self, extra: Any) -> None:
        self.n_startup, self.algorithm = int(extra["n_startup"]), extra["algorithm"]
        if self.algorithm == "gp-ei":
            from search_algs.core.mo_gp import MOGPOptions

            self.options = MOGPOptions.from_dict(extra["options"])
        else:
            self.options = TPEOptions(**extra["options"])
        self.constraints = tuple(Constraint(*c) for c in extra["constraints"])
        self._core, self._core_state = None, extra.get("core")  # snapshots before gp-ei have no "core"
        self.startup_design = extra.get("startup_design", "random")
        self._design_seed = extra.get("design_seed")
        self._checked_results = set()
