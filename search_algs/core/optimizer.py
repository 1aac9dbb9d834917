"""The acquisition optimiser: maximise any acquisition function over a mixed, conditional space.

torch (float64), numpy and scipy only; nothing here knows of Ray. It knows no model and no policy:
it takes a callable acquisition (``acqf(U (c, D)) -> (c,)`` differentiable in torch, plus
``acqf.numpy``), the space as a tuple of :class:`~search_algs.core.dims.Dim`, and returns the
best point it finds. The policies that use it: GP-EI (:mod:`search_algs.core.gp_ei`) and KG
(:mod:`search_algs.core.kg`).

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
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from typing import Any, Callable, Sequence

import numpy as np
import scipy.optimize
import torch
from scipy.stats import qmc

from search_algs.core.dims import Dim, levels_of
from search_algs.core.gp import DTYPE

logger = logging.getLogger(__name__)

__all__ = ["OptimizeOptions", "canonical", "levels_of", "optimize_acqf"]


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
    acqf: Any,
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
