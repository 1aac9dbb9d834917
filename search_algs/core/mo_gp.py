"""Multi-objective, constrained GP-EI (ParEGO with probability of feasibility): the numerical core.

torch (float64), numpy and scipy only; nothing here knows of Ray. It reuses the GP, its fit and
refit schedule (:class:`search_algs.core.gp_ei.GPEI`, by import), LogEI
(:mod:`search_algs.core.acquisition`) and the acquisition optimiser
(:func:`search_algs.core.optimizer.optimize_acqf`); this file adds the scalarisation and the
feasibility term. The adapter is ``search_algs/multi_objective.py`` (``algorithm="gp-ei"``).

References
----------
* Knowles, "ParEGO: A Hybrid Algorithm With On-Line Landscape Approximation for Expensive
  Multiobjective Optimization Problems", IEEE TEVC 10(1), 2006: a new random scalarisation per
  suggestion (augmented Chebyshev, ``rho = 0.05``) of the objectives normalised to ``[0, 1]``,
  then single-objective EI on a GP of the scalarised values.
* Gardner, Kusner, Xu, Weinberger, Cunningham, "Bayesian Optimization with Inequality
  Constraints", ICML 2014: one GP per constraint; the acquisition is EI over the best *feasible*
  value times the probability that every constraint holds; with no feasible observation yet,
  the probability of feasibility alone.

Glossary (shapes in comments use these symbols)
-----------------------------------------------
``n``        observations; ``m`` objectives; ``k`` constraints; ``D`` parameters; ``p`` running.
``X``        ``(n, D)`` unit vectors (``NaN`` where inactive), as ``Space.encode_flat`` gives them.
``Y``        ``(n, m)`` losses (every objective minimised; a row with NaN/inf is a failed trial).
``Yn``       ``(n, m)`` ``Y`` normalised per objective to ``[0, 1]`` by the least and the largest
             value among the usable rows (an objective with no spread: divided by 1).
``w``        ``(m,)`` weights, uniform on the simplex (``rng.dirichlet(1)``), drawn per suggestion.
``g_w(y)``   augmented Chebyshev scalarisation ``max_j w_j y_j + rho sum_j w_j y_j`` of a
             normalised row; smaller is better, and every minimiser of ``g_w`` is Pareto optimal.
``C``        ``(n, k)`` constraint slacks: ``c_j - bound_j`` after orienting the constraint as
             ``c_j <= bound_j`` (``>=``/``>`` flip the sign); feasible iff every slack is ``<= 0``
             (a strict bound met with equality counts as feasible here: the model cannot tell);
             NaN where the metric is missing or not finite.
``PoF(u)``   ``prod_j Phi((t_j - mu_j(u)) / sigma_j(u))``: the probability that every constraint
             holds, under independent GPs of the standardised slacks (``t_j`` is slack 0 in
             their units).

The suggestion step (:meth:`MOGP.suggest`)
------------------------------------------
1. Start-up: fewer than ``n_startup`` observations or fewer than two usable rows: a uniform
   draw from ``rng`` (made canonical).
2. Draw ``w``; scalarise the usable rows, ``s = g_w(Yn)`` ``(n,)`` (NaN where failed).
3. Without constraints: :meth:`GPEI.suggest` on ``s`` as it is (failed rows fantasised at the
   worst value, running trials by the kriging believer or fantasies, noise rules, model subset,
   refit schedule: everything documented in :mod:`search_algs.core.gp_ei`).
4. With constraints: the objective GP on ``s`` (:meth:`GPEI.fit`, same subset and schedule;
   failed rows conditioned at the worst standardised value, running trials at their posterior
   mean) and one GP per constraint on its standardised slacks (each with its own
   :class:`GPEI` for the warm start and the same model-subset rule, which keeps the least
   slacks; missing slacks conditioned at the worst one). The
   acquisition is ``log EI(u) + log PoF(u)`` with EI over the best feasible scalarised value
   (the least posterior mean among the feasible evaluated points when the model finds the
   objective noisy); with no feasible observation, ``log PoF(u)`` alone. ``noisy_acqf`` and
   ``pending="fantasies"`` apply only without constraints (here: plug-in incumbent, believer).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Sequence

import numpy as np
import torch

from search_algs.core.acquisition import LogEI, resolve_noise
from search_algs.core.dims import Dim
from search_algs.core.gp import DTYPE, GP, model_targets, standardise
from search_algs.core.gp_ei import GPEI, GPEIOptions, torch_threads
from search_algs.core.motpe import _unit_rows  # one check of unit-vector arrays for both cores
from search_algs.core.optimizer import canonical, optimize_acqf
from search_algs.core.pareto import Constraint

__all__ = ["MOGP", "MOGPOptions", "chebyshev", "normalise_objectives", "simplex_weights", "oriented_slack",
           "LogPoF", "LogEIFeasible"]


# ---- scalarisation (Knowles 2006) ---------------------------------------------------------


def normalise_objectives(Y: np.ndarray) -> np.ndarray:
    """``Y (n, m) -> Yn (n, m)``: each objective mapped to ``[0, 1]`` by the least and the largest
    value among the rows without NaN/inf (an objective with no spread is only shifted); failed
    rows stay NaN."""
    Y = np.asarray(Y, dtype=float)
    ok = np.all(np.isfinite(Y), axis=1)
    out = np.full(Y.shape, np.nan)
    if not ok.any():
        return out
    low, high = Y[ok].min(axis=0), Y[ok].max(axis=0)  # (m,)
    span = np.where(high - low > 0, high - low, 1.0)
    out[ok] = (Y[ok] - low) / span
    return out


def chebyshev(Yn: np.ndarray, weights: np.ndarray, rho: float = 0.05) -> np.ndarray:
    """Augmented Chebyshev scalarisation ``max_j w_j y_j + rho sum_j w_j y_j`` of each row of
    ``Yn (n, m)`` (normalised losses) -> ``(n,)`` (Knowles 2006, eq. 2)."""
    Yn = np.asarray(Yn, dtype=float)
    Yn = Yn.reshape(-1, len(weights))
    wy = Yn * np.asarray(weights, dtype=float)  # (n, m)
    return wy.max(axis=1) + rho * wy.sum(axis=1)


def simplex_weights(m: int, rng: np.random.Generator) -> np.ndarray:
    """``(m,)`` weights drawn uniformly from the unit simplex (Dirichlet(1, ..., 1))."""
    return rng.dirichlet(np.ones(m))


def oriented_slack(constraint: Constraint, value: float | None) -> float:
    """``value - bound`` for ``<=``/``<``, ``bound - value`` for ``>=``/``>``: feasible iff ``<= 0``;
    NaN when the value is missing or not a finite number."""
    if value is None or isinstance(value, bool):
        return math.nan
    try:
        value = float(value)
    except (TypeError, ValueError):
        return math.nan
    if not math.isfinite(value):
        return math.nan
    return value - constraint.bound if constraint.operator in ("<=", "<") else constraint.bound - value


# ---- acquisition: probability of feasibility (Gardner et al. 2014) -------------------------


class LogPoF:
    """``U (c, D) -> log PoF (c,)``: the sum over constraints of ``log Phi((t_j - mu_j) / sigma_j)``
    under each constraint's GP ``gps[j]`` (standardised slacks, threshold ``thresholds[j]``)."""

    def __init__(self, gps: Sequence[GP], thresholds: Sequence[float]):
        self.gps, self.thresholds = list(gps), [float(t) for t in thresholds]

    def __call__(self, U: torch.Tensor) -> torch.Tensor:
        total = torch.zeros(U.shape[0], dtype=DTYPE)
        for gp, t in zip(self.gps, self.thresholds):
            mean, var = gp.posterior(U)
            total = total + torch.special.log_ndtr((t - mean) / var.sqrt())
        return total

    def numpy(self, U: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            return self(torch.as_tensor(U, dtype=DTYPE)).numpy()


class LogEIFeasible:
    """``log EI(u) + log PoF(u)`` (Gardner et al. 2014, in log space)."""

    def __init__(self, ei: LogEI, pof: LogPoF):
        self.ei, self.pof = ei, pof

    def __call__(self, U: torch.Tensor) -> torch.Tensor:
        return self.ei(U) + self.pof(U)

    def numpy(self, U: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            return self(torch.as_tensor(U, dtype=DTYPE)).numpy()


# ---- the policy ----------------------------------------------------------------------------


@dataclass(frozen=True)
class MOGPOptions:
    """Options of :class:`MOGP` (see the module docstring)."""

    rho: float = 0.05  # augmentation of the Chebyshev scalarisation (Knowles 2006)
    n_startup: int = 10  # uniform draws before the model is used
    gp: GPEIOptions = field(default_factory=GPEIOptions)  # the GP, its fit and the optimiser

    def validate(self) -> None:
        if isinstance(self.rho, bool) or not isinstance(self.rho, (int, float)) or not (
                math.isfinite(self.rho) and self.rho >= 0):
            raise ValueError(f"MOGP: 'rho' must be a finite number >= 0, got {self.rho!r}; use e.g. 0.05 "
                             f"(Knowles 2006)")
        if isinstance(self.n_startup, bool) or not isinstance(self.n_startup, (int, np.integer)) \
                or self.n_startup < 0:
            raise ValueError(f"MOGP: 'n_startup' must be an int >= 0, got {self.n_startup!r}; use e.g. 10")
        if not isinstance(self.gp, GPEIOptions):
            raise ValueError(f"MOGP: 'gp' must be a GPEIOptions, got {type(self.gp).__name__}")
        self.gp.validate()

    def as_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "MOGPOptions":
        d = dict(d)
        d["gp"] = GPEIOptions.from_dict(d["gp"])
        return cls(**d)


class MOGP:
    """ParEGO (random augmented-Chebyshev scalarisations, GP-EI on each) with constraints by
    probability of feasibility from one GP per constraint.

    Holds the only state that outlives a suggestion: the GPs' last hyperparameters (warm starts),
    :meth:`state` / :meth:`load_state` carry them through a save/restore. ``last`` describes the
    latest suggestion (weights, acquisition value, whether a feasible point was known) for logs
    and tests.

    Args:
        dims: ``Space.dims()``.
        options: :class:`MOGPOptions`.
    """

    def __init__(self, dims: Sequence[Dim], options: MOGPOptions | None = None):
        options = MOGPOptions() if options is None else options
        options.validate()
        self.dims, self.options = tuple(dims), options
        self._objective = GPEI(self.dims, options.gp)
        self._constraints: list[GPEI] = []
        self.last: dict = {}

    # ---- persistence --------------------------------------------------------------------

    def state(self) -> dict:
        return {"objective": self._objective.state(), "constraints": [c.state() for c in self._constraints]}

    def load_state(self, state: dict | None) -> None:
        state = state or {}
        self._objective.load_state(state.get("objective"))
        self._constraints = []
        for s in state.get("constraints", []):
            core = GPEI(self.dims, self.options.gp)
            core.load_state(s)
            self._constraints.append(core)

    # ---- suggesting ---------------------------------------------------------------------

    def suggest(self, X: np.ndarray, Y: np.ndarray, rng: np.random.Generator,
                violation: Sequence[float] | None = None, constraint_values: np.ndarray | None = None,
                pending: np.ndarray | None = None) -> np.ndarray:
        """The ``(D,)`` unit vector to evaluate next.

        Args:
            X: ``(n, D)`` unit vectors; Y: ``(n, m)`` losses (NaN/inf rows failed).
            rng: every random draw (weights, start-up points, the optimiser) comes from it.
            violation: ``(n,)`` total constraint violation (0 = feasible); used for feasibility,
                and as the one modelled constraint when ``constraint_values`` is not given.
            constraint_values: ``(n, k)`` slacks ``C`` (see the glossary; :func:`oriented_slack`).
            pending: ``(p, D)`` running points.
        """
        D = len(self.dims)
        X = _unit_rows(X, D, "X", "MOGP")
        n = X.shape[0]
        Y = np.asarray(Y, dtype=float)
        if Y.ndim != 2 or Y.shape[0] != n or Y.shape[1] < 1:
            raise ValueError(f"MOGP: 'Y' must be a 2-D array (n, m) with one row per row of X ({n}), got shape "
                             f"{Y.shape}; pass the losses as Y.reshape(n, m)")
        C = self._slacks(n, violation, constraint_values)  # (n, k)
        pending = _unit_rows(np.zeros((0, D)) if pending is None else pending, D, "pending", "MOGP")
        ok = np.all(np.isfinite(Y), axis=1)
        if n < self.options.n_startup or ok.sum() < 2:
            self.last = {"startup": True}
            return canonical(rng.random((1, D)), self.dims, rng)[0]
        weights = simplex_weights(Y.shape[1], rng)
        scal = np.full(n, np.nan)
        scal[ok] = chebyshev(normalise_objectives(Y[ok]), weights, self.options.rho)
        with torch_threads(self.options.gp.threads):
            if C.shape[1] == 0:
                suggestion = self._objective.suggest(X, [v if ok[i] else None for i, v in enumerate(scal)],
                                                     rng, pending=pending)
                self.last = {"startup": False, "weights": weights, "value": suggestion.log_ei,
                             "feasible_known": True}
                return suggestion.u
            feasible = ok & np.all(C <= 0, axis=1)  # NaN compares False: infeasible
            if violation is not None:
                feasible &= np.asarray(violation, dtype=float) == 0
            u, value = self._suggest_constrained(X, scal, ok, C, feasible, rng, pending)
        self.last = {"startup": False, "weights": weights, "value": value, "feasible_known": bool(feasible.any())}
        return u

    def _slacks(self, n: int, violation, constraint_values) -> np.ndarray:
        if constraint_values is not None:
            C = np.asarray(constraint_values, dtype=float)
            if C.size == 0:
                return np.zeros((n, 0))
            if C.ndim == 1 and C.shape == (n,):
                C = C.reshape(n, 1)
            if C.ndim != 2 or C.shape[0] != n:
                raise ValueError(f"MOGP: 'constraint_values' must be a 2-D array (n, k) with one row per row of "
                                 f"X ({n}), got shape {C.shape}; pass one slack per constraint (oriented_slack)")
        elif violation is not None:
            v = np.asarray(violation, dtype=float).reshape(-1)
            if v.shape != (n,):
                raise ValueError(f"MOGP: 'violation' needs one entry per row of X ({n}), got {v.shape}")
            if not np.any(np.isfinite(v) & (v > 0)):
                return np.zeros((n, 0))  # no finite violation (inf: a failed trial): nothing to model
            C = np.where(np.isfinite(v), v, np.nan).reshape(n, 1)
        else:
            return np.zeros((n, 0))
        C = np.where(np.isfinite(C), C, np.nan)
        while len(self._constraints) < C.shape[1]:
            self._constraints.append(GPEI(self.dims, self.options.gp))
        return C

    def _suggest_constrained(self, X, scal, ok, C, feasible, rng, pending) -> tuple[np.ndarray, float]:
        opts = self.options.gp
        D = len(self.dims)
        # the objective: GP of the scalarised values, failed rows at the worst, running ones believed
        obj = self._objective
        used = obj.model_subset(scal, ok)
        y = model_targets(scal[used], opts.output_warp)
        gp, _, _ = obj.fit(X[used], y, n_seen=int(ok.sum()))
        noisy = resolve_noise(opts.noise, gp, opts.noise_threshold)
        with torch.no_grad():
            believed = gp.posterior(torch.as_tensor(pending, dtype=DTYPE))[0].numpy() if len(pending) \
                else np.zeros(0)
        model = gp.condition(np.concatenate([pending, X[~ok]]),
                             np.concatenate([believed, np.full(int((~ok).sum()), y.max())]))
        # the constraints: one GP each on standardised slacks, threshold at slack 0
        gps, thresholds = [], []
        for j, core in enumerate(self._constraints[: C.shape[1]]):
            okj = np.isfinite(C[:, j])
            if okj.sum() < 2:
                continue  # nothing to learn yet: this constraint does not shape the acquisition
            usedj = core.model_subset(C[:, j], okj)
            yj, mean, std = standardise(C[usedj, j])
            gpj, _, _ = core.fit(X[usedj], yj, n_seen=int(okj.sum()))
            gps.append(gpj.condition(X[~okj], np.full(int((~okj).sum()), yj.max())))
            thresholds.append((0.0 - mean) / std)
        pof = LogPoF(gps, thresholds)
        if feasible.any():
            rows = np.flatnonzero(feasible)
            if noisy:
                with torch.no_grad():
                    tau = float(gp.posterior(torch.as_tensor(X[rows], dtype=DTYPE))[0].min())
            else:
                y_all = np.full(len(scal), np.nan)
                y_all[used] = y
                in_model = rows[used[rows]]
                if len(in_model):
                    tau = float(y_all[in_model].min())
                else:  # every feasible row left out of the model subset
                    with torch.no_grad():
                        tau = float(gp.posterior(torch.as_tensor(X[rows], dtype=DTYPE))[0].min())
            acqf = LogEIFeasible(LogEI(model, tau), pof) if gps else LogEI(model, tau)
            centres = rows[np.argsort(scal[rows], kind="stable")][: opts.n_best]
        else:
            if not gps:  # no feasible point and no constraint model: plain EI on the scalarisation
                acqf = LogEI(model, float(y.min()))
            else:
                acqf = pof
            worst = np.nansum(np.clip(np.nan_to_num(C, nan=np.inf), 0, None), axis=1)  # (n,) total slack
            centres = np.argsort(worst, kind="stable")[: opts.n_best]
        exclude = np.concatenate([X, pending]).reshape(-1, D)
        return optimize_acqf(acqf, self.dims, rng, centres=X[centres], exclude=exclude, options=opts.optimize)
