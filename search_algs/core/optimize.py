"""Acquisition optimisation over mixed, conditional spaces, and the GP-EI suggestion step.

torch (float64), numpy and scipy only; nothing here knows of Ray. The adapter
(``search_algs/gp_ei.py``) describes the space as a tuple of :class:`Dim` and hands in unit
vectors; :class:`GPEI` fits the model (:mod:`search_algs.core.gp`), builds LogEI
(:mod:`search_algs.core.acquisition`) and maximises it here.

Glossary (shapes in comments use these symbols)
-----------------------------------------------
``D``        parameters (length of a unit vector ``u``); ``dims`` their :class:`Dim`.
``n``        finished observations; ``p`` pending (running) points; ``q`` failed points.
``c``        candidates evaluated at once.
``u``        unit vector ``(D,)``, ``NaN`` where inactive; canonical when categoricals sit at
             their choice centres ``(k + 0.5) / n_choices``, discrete parameters on their grid,
             continuous ones in ``[0, 1]`` and exactly the inactive ones ``NaN``.
free dims    active continuous and discrete coordinates of a candidate: what L-BFGS-B moves
             (discrete ones relaxed to ``[0, 1]``, snapped afterwards).

Acquisition optimisation (:func:`optimize_acqf`)
------------------------------------------------
1. Raw candidates: ``n_raw`` scrambled-Sobol points (scipy.stats.qmc, seeded from the
   caller's generator) plus ``n_perturb`` perturbations of the best observed points (a
   random subset of numeric coordinates moved by normal steps of three sizes, categoricals
   re-drawn with a small probability), all made canonical.
2. The ``n_starts`` best distinct raw candidates start one joint L-BFGS-B run on their free
   dims (torch autograd gradients of the summed LogEI; the rows are independent, so the sum's
   gradient is each row's own).
3. The results are snapped to their grids, and the best ``n_local`` of everything seen are
   improved by a greedy local search over discrete neighbours (grid index +-1, every other
   categorical choice; children a new choice activates get fresh random values).
4. The best candidate that is not already observed or running wins.

The suggestion step (:class:`GPEI`)
-----------------------------------
* Failed observations (loss ``None``/NaN) are left out of the hyperparameter fit and of the
  standardisation, and conditioned on afterwards as fantasies at the *worst* observed
  (standardised) loss, so EI drops around them and they are not proposed again.
* Censored observations (stopped early by a scheduler) are modelled with the loss they
  reached: the scheduler stopped them because they looked worse than their peers, so that
  pessimistic value is informative; dropping them would send the search back into regions
  the scheduler already rejected.
* Running trials: kriging believer. Each pending point is fantasised at the posterior mean
  and the model conditioned on it (hyperparameters unchanged). The mean is unchanged, the
  variance there collapses, so EI near a running trial drops and concurrent suggestions
  spread out. The fantasies count as observations for the incumbent.
* Noise (``noise``, ``noisy_acqf``): when the objective is treated as noisy (see
  :mod:`search_algs.core.acquisition`), ``noisy_acqf="ei"`` (default) measures EI from the least
  posterior mean at the evaluated points; ``"aei"`` uses augmented EI (Huang et al. 2006) instead,
  which stops re-sampling points the noise already pins down. Measured on Hartmann6, 50
  evaluations (BENCHMARKS.md, run C2): AEI helps with noise std 0.1 and hurts with 0.5, so it
  is opt-in.
* Many observations (``max_model_points``, default 1000): beyond that many usable observations
  the model (fit, acquisition, recommendation) is built on a subset of that size: the half with
  the least losses and the rest thinned evenly in arrival order (:meth:`GPEI.model_subset`);
  every observation is still excluded from being proposed again. An exact GP costs ``O(n^3)``
  per fit: at n = 2000 (6-D) a suggestion with a refit took 30-90 CPU s here, with the cap 5-12 s,
  and one without a refit 1.15 s vs 0.47 s (BENCHMARKS.md, run C2). ``None`` models everything.
* Refitting: hyperparameters are refitted on every suggestion up to ``refit_all_until``
  (100) observations, warm-started from the previous fit and, every ``restart_every`` (5)
  observations, also from the prior's centre and from short lengthscales (the best MAP
  value wins); beyond 100, every ``refit_every`` (10) new observations from the previous
  fit only, at most ``fit_maxiter_large`` (50) iterations. In between the previous
  hyperparameters are conditioned on the new data (one Cholesky). A failed fit keeps the
  previous hyperparameters (else the prior's centre) and logs a warning.
* Threads: the block runs with one torch thread (``threads``), restored afterwards.
  The adapter also limits BLAS to one thread (scipy's L-BFGS-B calls it on tiny vectors;
  with OpenBLAS's default threads on a busy 2-core machine that was 3x slower).
"""

from __future__ import annotations

import contextlib
import logging
import math
import time
from dataclasses import asdict, dataclass, field
from typing import Any, Callable, Sequence

import numpy as np
import scipy.optimize
import torch
from scipy.stats import qmc

from search_algs.core.acquisition import NOISE_MODES, LogEI, LogNEI, incumbent, resolve_noise
from search_algs.core.gp import DTYPE, GP, GPNumericalError, GPPrior, fit_map, standardise

logger = logging.getLogger(__name__)

__all__ = ["Dim", "OptimizeOptions", "GPEIOptions", "GPEI", "canonical", "optimize_acqf"]

KINDS = ("continuous", "discrete", "categorical")
NOISY_ACQFS = ("ei", "aei", "nei")


@dataclass(frozen=True, eq=False)
class Dim:
    """One parameter as the optimiser sees it.

    Args:
        kind: ``"continuous"``, ``"discrete"`` (integer or quantised) or ``"categorical"``.
        n_choices: number of choices of a categorical parameter.
        grid: ascending unit coordinates of a discrete parameter's grid points; ``None``
            treats it as continuous here (a very fine grid; decoding still snaps it).
        condition: ``(parent index, choice index)`` pairs, root first: active iff every
            parent takes that choice (parents come before children in ``dims``).
    """

    kind: str
    n_choices: int = 0
    grid: np.ndarray | None = None
    condition: tuple[tuple[int, int], ...] = ()

    def __post_init__(self):
        if self.kind not in KINDS:
            raise ValueError(f"Dim: kind must be one of {KINDS}, got {self.kind!r}")
        if self.kind == "categorical" and self.n_choices < 1:
            raise ValueError(f"Dim: a categorical needs n_choices >= 1, got {self.n_choices!r}")
        if self.grid is not None:
            g = np.asarray(self.grid, dtype=float)
            if g.ndim != 1 or g.size == 0 or np.any(np.diff(g) <= 0) or g[0] < 0 or g[-1] > 1:
                raise ValueError("Dim: grid must be a non-empty ascending array of unit coordinates")
            object.__setattr__(self, "grid", g)


def levels_of(dims: Sequence[Dim]) -> np.ndarray:  # (D,)
    """Categorical choice counts, 0 for numeric parameters (the GP's ``levels``)."""
    return np.array([d.n_choices if d.kind == "categorical" else 0 for d in dims], dtype=np.int64)


def _choice(col: np.ndarray, n: int) -> np.ndarray:
    return np.minimum(np.floor(np.nan_to_num(col, nan=0.0) * n), n - 1).astype(np.int64)


def _snap_grid(col: np.ndarray, grid: np.ndarray) -> np.ndarray:
    """Nearest grid point of each value of ``col``."""
    idx = np.clip(np.searchsorted(grid, col), 1, len(grid) - 1) if len(grid) > 1 else np.zeros(len(col), int)
    if len(grid) > 1:
        left = grid[idx - 1]
        idx = np.where(np.abs(col - left) <= np.abs(grid[idx] - col), idx - 1, idx)
    return grid[idx]


def canonical(U: np.ndarray, dims: Sequence[Dim], rng: np.random.Generator) -> np.ndarray:
    """Canonical candidates from arbitrary ones ``(c, D) -> (c, D)``: snapped, clipped, ``NaN``
    exactly where inactive; an active coordinate that was ``NaN`` gets a uniform draw."""
    U = np.array(U, dtype=float, copy=True).reshape(-1, len(dims))
    choice: dict[int, np.ndarray] = {}
    for j, d in enumerate(dims):  # parents first
        col = U[:, j]
        active = np.ones(len(U), dtype=bool)
        for parent, k in d.condition:
            active &= choice[parent] == k
        holes = active & np.isnan(col)
        if holes.any():
            col[holes] = rng.random(int(holes.sum()))
        col = np.clip(col, 0.0, 1.0)
        if d.kind == "categorical":
            idx = _choice(col, d.n_choices)
            choice[j] = np.where(active, idx, -1)
            col = (idx + 0.5) / d.n_choices
        elif d.grid is not None:
            col = _snap_grid(col, d.grid)
        U[:, j] = np.where(active, col, np.nan)
    return U


def _keys(U: np.ndarray) -> list[bytes]:
    return [row.tobytes() for row in np.round(np.nan_to_num(U, nan=-1.0), 9)]


# ---- acquisition optimisation ------------------------------------------------------------


@dataclass(frozen=True)
class OptimizeOptions:
    n_raw: int = 1024  # Sobol points (rounded up to a power of two)
    n_perturb: int = 256  # perturbations of the best observed points
    n_starts: int = 8  # L-BFGS-B starts
    maxiter: int = 100  # L-BFGS-B iterations
    n_local: int = 3  # candidates improved by the discrete local search
    local_rounds: int = 20  # at most this many moves per local search

    def validate(self) -> None:
        for name, low in (("n_raw", 1), ("n_perturb", 0), ("n_starts", 1), ("maxiter", 0),
                          ("n_local", 1), ("local_rounds", 0)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
                raise ValueError(f"OptimizeOptions: '{name}' must be an int >= {low}, got {value!r}")


def _perturb(centres: np.ndarray, dims: Sequence[Dim], n: int, rng: np.random.Generator) -> np.ndarray:
    """``n`` perturbations ``(n, D)`` of rows of ``centres (k, D)``."""
    D = len(dims)
    base = centres[rng.integers(len(centres), size=n)].copy()  # (n, D)
    numeric = np.array([d.kind != "categorical" for d in dims])
    n_num = int(numeric.sum())
    if n_num:
        p = min(1.0, 5.0 / n_num)  # move a handful of coordinates (all, in low dimension)
        move = (rng.random((n, D)) < p) & numeric
        none = ~move.any(axis=1)
        if none.any():  # at least one numeric coordinate per row
            cols = np.flatnonzero(numeric)[rng.integers(n_num, size=int(none.sum()))]
            move[np.flatnonzero(none), cols] = True
        step = np.array([0.01, 0.05, 0.2])[rng.integers(3, size=(n, 1))]  # (n, 1)
        delta = step * rng.standard_normal((n, D))
        base = np.where(move & ~np.isnan(base), base + delta, base)
        base = np.where(base > 1.0, 2.0 - base, base)  # reflect off the faces
        base = np.where(base < 0.0, -base, base)
    for j, d in enumerate(dims):
        if d.kind == "categorical" and d.n_choices > 1:
            flip = rng.random(n) < 1.0 / max(D, 2)
            base[flip, j] = (rng.integers(d.n_choices, size=int(flip.sum())) + 0.5) / d.n_choices
    return canonical(base, dims, rng)


def _lbfgs(acqf: Callable[[torch.Tensor], torch.Tensor], starts: np.ndarray, dims: Sequence[Dim],
           maxiter: int) -> np.ndarray:
    """Joint L-BFGS-B maximisation of ``acqf`` over the free dims of ``starts (s, D)``."""
    free = ~np.isnan(starts) & np.array([d.kind != "categorical" for d in dims])  # (s, D)
    if maxiter == 0 or not free.any():
        return starts
    rows, cols = np.nonzero(free)
    base = torch.as_tensor(starts, dtype=DTYPE)  # (s, D), NaN where inactive
    rows_t, cols_t = torch.as_tensor(rows), torch.as_tensor(cols)

    def objective(x: np.ndarray) -> tuple[float, np.ndarray]:
        xt = torch.tensor(x, dtype=DTYPE, requires_grad=True)
        U = base.index_put((rows_t, cols_t), xt)  # (s, D)
        value = -acqf(U).sum()
        (grad,) = torch.autograd.grad(value, xt)
        v, g = float(value.detach()), grad.numpy().copy()
        if not (math.isfinite(v) and np.all(np.isfinite(g))):
            raise FloatingPointError(f"acquisition gave a non-finite value {v} or gradient")
        return v, g

    x0 = starts[rows, cols]
    try:
        res = scipy.optimize.minimize(objective, x0, jac=True, method="L-BFGS-B",
                                      bounds=[(0.0, 1.0)] * len(x0), options={"maxiter": maxiter})
    except FloatingPointError as exc:
        logger.warning("acquisition gradient search stopped (%s); keeping the raw candidates", exc)
        return starts
    out = starts.copy()
    out[rows, cols] = np.clip(res.x, 0.0, 1.0)
    return out


def _neighbours(u: np.ndarray, dims: Sequence[Dim], rng: np.random.Generator) -> np.ndarray:
    """Discrete neighbours of a canonical ``u (D,)``: ``(c, D)`` (possibly ``c = 0``)."""
    out = []
    for j, d in enumerate(dims):
        if np.isnan(u[j]):
            continue
        if d.kind == "categorical":
            current = int(_choice(u[j:j + 1], d.n_choices)[0])
            for k in range(d.n_choices):
                if k != current:
                    v = u.copy()
                    v[j] = (k + 0.5) / d.n_choices
                    out.append(v)
        elif d.grid is not None and len(d.grid) > 1:
            i = int(np.argmin(np.abs(d.grid - u[j])))
            for i2 in (i - 1, i + 1):
                if 0 <= i2 < len(d.grid):
                    v = u.copy()
                    v[j] = d.grid[i2]
                    out.append(v)
    if not out:
        return np.empty((0, len(dims)))
    return canonical(np.array(out), dims, rng)


def optimize_acqf(
    acqf: LogEI,
    dims: Sequence[Dim],
    rng: np.random.Generator,
    centres: np.ndarray | None = None,
    exclude: Sequence[np.ndarray] | np.ndarray = (),
    options: OptimizeOptions = OptimizeOptions(),
) -> tuple[np.ndarray, float]:
    """Maximise ``acqf`` over the space of ``dims``; returns ``(u (D,), log EI at u)``.

    Args:
        centres: ``(k, D)`` canonical points to perturb (the best observations).
        exclude: canonical points not to return (observed and running ones); when every
            candidate seen is excluded a fresh random point is returned, with a log line.
    """
    D = len(dims)
    seed = int(rng.integers(2**31 - 1))
    raw = qmc.Sobol(d=D, scramble=True, seed=seed).random_base2(max(0, math.ceil(math.log2(options.n_raw))))
    pool = [canonical(raw, dims, rng)]
    if centres is not None and len(centres) and options.n_perturb:
        pool.append(_perturb(np.asarray(centres, dtype=float).reshape(-1, D), dims, options.n_perturb, rng))
    U = np.concatenate(pool)  # (c, D)
    first = {key: i for i, key in reversed(list(enumerate(_keys(U))))}  # first copy of each
    U = U[np.sort(np.fromiter(first.values(), dtype=np.int64))]
    values = acqf.numpy(U)  # (c,)

    order = np.argsort(-values, kind="stable")[: options.n_starts]
    refined = canonical(_lbfgs(acqf, U[order], dims, options.maxiter), dims, rng)
    U = np.concatenate([U, refined])
    values = np.concatenate([values, acqf.numpy(refined)])

    # discrete local search from the best few distinct candidates
    seen = {}
    for i in np.argsort(-values, kind="stable"):
        seen.setdefault(_keys(U[i:i + 1])[0], i)
        if len(seen) >= options.n_local:
            break
    found_u, found_v = [U], [values]
    for i in seen.values():
        u, v = U[i].copy(), float(values[i])
        for _ in range(options.local_rounds):
            nb = _neighbours(u, dims, rng)
            if len(nb) == 0:
                break
            nv = acqf.numpy(nb)
            found_u.append(nb)
            found_v.append(nv)
            best = int(np.argmax(nv))
            if not nv[best] > v:
                break
            u, v = nb[best], float(nv[best])
    U, values = np.concatenate(found_u), np.concatenate(found_v)

    taken = set(_keys(np.asarray(exclude, dtype=float).reshape(-1, D))) if len(exclude) else set()
    for i in np.argsort(-values, kind="stable"):
        if _keys(U[i:i + 1])[0] not in taken:
            return U[i].copy(), float(values[i])
    logger.warning("every acquisition candidate is already observed or running; proposing a random point")
    u = canonical(rng.random((1, D)), dims, rng)[0]
    return u, float(acqf.numpy(u[None])[0])


# ---- the suggestion step -----------------------------------------------------------------


@contextlib.contextmanager
def torch_threads(n: int | None):
    """Run the block with ``n`` torch intra-op threads (restored afterwards; ``None`` leaves
    them). The matrices here are small: on a busy machine extra threads mostly wait for
    each other (measured 20x slower with 2 threads on 2 loaded cores)."""
    if n is None:
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


@dataclass(frozen=True)
class GPEIOptions:
    """Options of :class:`GPEI` (see the module docstring)."""

    noise: str = "auto"
    noise_threshold: float = 1e-3
    noisy_acqf: str = "ei"  # when noisy: "ei" (plug-in incumbent), "aei" (augmented EI), "nei" (Letham et al.)
    refit_all_until: int = 100
    refit_every: int = 10
    fit_maxiter: int = 200
    fit_maxiter_large: int = 50
    restart_every: int = 5  # fit also from the prior's starting points every this many observations
    n_best: int = 5  # best observations whose perturbations seed the acquisition search
    max_model_points: int | None = 1000  # model at most this many observations (see model_subset)
    threads: int | None = 1  # torch threads while suggesting (None: leave torch's setting)
    prior: GPPrior = field(default_factory=GPPrior)
    optimize: OptimizeOptions = field(default_factory=OptimizeOptions)

    def validate(self) -> None:
        if self.noise not in NOISE_MODES:
            raise ValueError(
                f"GP-EI: 'noise' must be one of {NOISE_MODES}, got {self.noise!r}; use 'auto' to detect it"
            )
        if self.noisy_acqf not in NOISY_ACQFS:
            raise ValueError(
                f"GP-EI: 'noisy_acqf' must be one of {NOISY_ACQFS}, got {self.noisy_acqf!r}; "
                f"use 'nei' (noisy EI, Letham et al. 2019), 'aei' (augmented EI) or 'ei'"
            )
        if not (isinstance(self.noise_threshold, (int, float)) and self.noise_threshold > 0):
            raise ValueError(f"GP-EI: 'noise_threshold' must be a positive number, got {self.noise_threshold!r}")
        if self.max_model_points is not None and (
                isinstance(self.max_model_points, bool) or not isinstance(self.max_model_points, (int, np.integer))
                or self.max_model_points < 4):
            raise ValueError(
                f"GP-EI: 'max_model_points' must be None or an int >= 4, got {self.max_model_points!r}; "
                f"use e.g. 1000, or None to model every observation"
            )
        for name, low in (("refit_all_until", 0), ("refit_every", 1), ("fit_maxiter", 1),
                          ("fit_maxiter_large", 1), ("restart_every", 1), ("n_best", 1)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
                raise ValueError(f"GP-EI: '{name}' must be an int >= {low}, got {value!r}")
        if self.threads is not None and (isinstance(self.threads, bool) or not isinstance(self.threads, int)
                                         or self.threads < 1):
            raise ValueError(f"GP-EI: 'threads' must be None or an int >= 1, got {self.threads!r}")
        self.prior.validate()
        self.optimize.validate()

    def as_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "GPEIOptions":
        d = dict(d)
        d["prior"] = GPPrior(**{k: tuple(v) if isinstance(v, list) else v for k, v in d["prior"].items()})
        d["optimize"] = OptimizeOptions(**d["optimize"])
        return cls(**d)


@dataclass
class Suggestion:
    """What :meth:`GPEI.suggest` decided, for logs and tests."""

    u: np.ndarray  # (D,)
    log_ei: float
    noisy: bool
    refit: bool
    fit_ok: bool
    seconds: float
    info: dict[str, Any] = field(default_factory=dict)


class GPEI:
    """GP with (log) expected improvement: fit, fantasise, optimise.

    Holds the only state that outlives a suggestion: the last hyperparameters (warm start)
    and the number of observations they were fitted on. :meth:`state` / :meth:`load_state`
    carry it through a save/restore.
    """

    def __init__(self, dims: Sequence[Dim], options: GPEIOptions = GPEIOptions()):
        options.validate()
        self.dims = tuple(dims)
        self.levels = levels_of(self.dims)
        self.options = options
        self.theta: np.ndarray | None = None  # (D + 2,)
        self.n_at_fit = 0
        self.n_at_restart = 0

    # ---- persistence --------------------------------------------------------------------

    def state(self) -> dict:
        return {"theta": None if self.theta is None else self.theta.tolist(), "n_at_fit": self.n_at_fit,
                "n_at_restart": self.n_at_restart}

    def load_state(self, state: dict | None) -> None:
        state = state or {}
        theta = state.get("theta")
        self.theta = None if theta is None else np.asarray(theta, dtype=float)
        self.n_at_fit = int(state.get("n_at_fit", 0))
        self.n_at_restart = int(state.get("n_at_restart", 0))

    # ---- model --------------------------------------------------------------------------

    def _split(self, U: np.ndarray, losses: Sequence[float | None]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        D = len(self.dims)
        U = np.asarray(U, dtype=float).reshape(-1, D)
        loss = np.array([np.nan if v is None else float(v) for v in losses], dtype=float)
        if len(loss) != len(U):
            raise ValueError(f"GP-EI: {len(U)} points but {len(loss)} losses")
        ok = np.isfinite(loss)
        return U, loss, ok

    def model_subset(self, loss: np.ndarray, ok: np.ndarray) -> np.ndarray:
        """Mask ``(n,)`` of the observations the model is built on: every usable one (``ok``),
        or beyond ``max_model_points`` of them a subset of that size: the half with the least
        losses (where the search is) and the rest of the usable ones thinned evenly in arrival
        order (early, exploratory points keep the global picture). Deterministic, no random
        draws: suggesting and recommending see the same subset."""
        cap = self.options.max_model_points
        idx = np.flatnonzero(ok)
        if cap is None or len(idx) <= cap:
            return ok
        order = idx[np.argsort(loss[idx], kind="stable")]
        best = order[: cap // 2]
        rest = np.sort(order[cap // 2:])
        keep = rest[np.linspace(0, len(rest) - 1, cap - len(best)).round().astype(np.int64)]
        mask = np.zeros(len(ok), dtype=bool)
        mask[best] = True
        mask[keep] = True
        return mask

    def fit(self, U: np.ndarray, y: np.ndarray, force: bool = False,
            n_seen: int | None = None) -> tuple[GP, bool, bool]:
        """The model of ``(U (n, D), y (n,))``: returns ``(gp, refitted, fit_ok)``.
        ``n_seen``: observations so far when the model holds a subset of them (the refit
        schedule counts these; default ``n``)."""
        n, D = (len(y) if n_seen is None else int(n_seen)), len(self.dims)
        prior = self.options.prior
        warm = self.theta if self.theta is not None and len(self.theta) == D + 2 else None
        due = (force or warm is None or n <= self.options.refit_all_until
               or n - self.n_at_fit >= self.options.refit_every)
        fit_ok = True
        if due:
            large = n > self.options.refit_all_until  # cheaper fits: fewer iterations, no restarts
            fresh = warm is None or (not large and n - self.n_at_restart >= self.options.restart_every)
            starts = ([] if warm is None else [warm]) + (
                [prior.default_theta(D), prior.short_theta(D)] if fresh else [])
            result = fit_map(U, y, self.levels, prior, starts, fallback=warm,
                             maxiter=self.options.fit_maxiter_large if large else self.options.fit_maxiter)
            theta, fit_ok = result.theta, result.ok
            self.n_at_fit = n
            if fresh:
                self.n_at_restart = n
        else:
            theta = warm
        try:
            gp = GP(U, y, theta, self.levels)
        except GPNumericalError as exc:
            default = prior.default_theta(D)
            logger.warning("GP with the fitted hyperparameters is singular (%s); using the defaults", exc)
            gp, theta, fit_ok = GP(U, y, default, self.levels), default, False
        self.theta = np.asarray(theta, dtype=float)
        return gp, due, fit_ok

    def suggest(
        self,
        U: np.ndarray,
        losses: Sequence[float | None],
        rng: np.random.Generator,
        pending: np.ndarray | None = None,
    ) -> Suggestion | None:
        """The next point for observations ``(U (n, D), losses (n,))`` (``None``/NaN losses are
        failures) with ``pending (p, D)`` running; ``None`` with fewer than 2 usable losses."""
        with torch_threads(self.options.threads):
            return self._suggest(U, losses, rng, pending)

    def _suggest(self, U, losses, rng, pending) -> Suggestion | None:
        t0 = time.process_time()
        D = len(self.dims)
        U, loss, ok = self._split(U, losses)
        if ok.sum() < 2:
            return None
        used = self.model_subset(loss, ok)
        y, _, _ = standardise(loss[used])
        gp, refit, fit_ok = self.fit(U[used], y, n_seen=int(ok.sum()))
        noisy = resolve_noise(self.options.noise, gp, self.options.noise_threshold)

        pending = np.zeros((0, D)) if pending is None else np.asarray(pending, dtype=float).reshape(-1, D)
        failed = U[~ok]
        model = gp
        if len(pending) or len(failed):
            with torch.no_grad():
                fantasy = gp.posterior(torch.as_tensor(pending, dtype=DTYPE))[0].numpy() if len(pending) \
                    else np.zeros(0)
            y_new = np.concatenate([fantasy, np.full(len(failed), y.max())])
            model = gp.condition(np.concatenate([pending, failed]), y_new)
        n_real_pending = gp.n + len(pending)
        augmented = noisy and self.options.noisy_acqf == "aei"
        if noisy and self.options.noisy_acqf == "nei":
            acqf = LogNEI(model, rng, n_observed=gp.n)
            tau = float(acqf.tau.mean())
        else:
            if noisy:
                tau = incumbent(model, noisy=True, sigma_weight=1.0 if augmented else 0.0)
            else:
                tau = float(model.y[:n_real_pending].min())
            acqf = LogEI(model, tau, augmented=augmented)

        if noisy:
            with torch.no_grad():
                ranking = gp.posterior(gp.U)[0].numpy()
        else:
            ranking = y
        centres = U[used][np.argsort(ranking, kind="stable")[: self.options.n_best]]
        exclude = np.concatenate([U, pending])
        u, value = optimize_acqf(acqf, self.dims, rng, centres=centres, exclude=exclude,
                                 options=self.options.optimize)
        return Suggestion(u, value, noisy, refit, fit_ok, time.process_time() - t0,
                          {"tau": tau, "noise_ratio": gp.noise_ratio(), "n_model": model.n})

    def recommend(self, U: np.ndarray, losses: Sequence[float | None]) -> int | None:
        """Index of the observation to recommend: the best observed loss, or when the model
        finds the objective noisy the least posterior mean at the evaluated points
        (Frazier 2018). ``None`` without a usable loss."""
        with torch_threads(self.options.threads):
            return self._recommend(U, losses)

    def _recommend(self, U, losses) -> int | None:
        U, loss, ok = self._split(U, losses)
        if ok.sum() == 0:
            return None
        if ok.sum() < 2:
            return int(np.flatnonzero(ok)[0])
        used = self.model_subset(loss, ok)
        idx = np.flatnonzero(used)
        y, _, _ = standardise(loss[used])
        saved = self.state()
        try:
            gp, _, _ = self.fit(U[used], y, n_seen=int(ok.sum()))
        finally:  # recommending must not change the suggestion sequence
            self.load_state(saved)
        if not resolve_noise(self.options.noise, gp, self.options.noise_threshold):
            return int(idx[np.argmin(y)])
        with torch.no_grad():
            mean = gp.posterior(gp.U)[0].numpy()
        return int(idx[np.argmin(mean)])

