"""Multi-objective, constrained TPE (MOTPE): the numerical core.

numpy only; nothing here knows of Ray. It reuses the Parzen estimator, the tree-structured model
and the weights of :mod:`search_algs.core.tpe` (by import; this file changes only how the
observations are split into the good and the bad set).

References: Ozaki, Tanigaki, Watanabe, Onishi, "Multiobjective Tree-Structured Parzen Estimator
for Computationally Expensive Optimization Problems", GECCO 2020, and its JAIR 2022 version
(split by non-dominated rank, the last front cut by hypervolume contribution); Watanabe & Hutter,
"c-TPE: Tree-structured Parzen Estimator with Inequality Constraints", IJCAI 2023 (why infeasible
points must not shape ``l(x)``).

The split (``n`` observations, ``Y`` their ``(n, m)`` objectives to minimise)
-------------------------------------------------------------------------------
1. Failed observations (an objective missing/NaN/inf) go to the bad set.
2. Infeasible observations (total constraint violation > 0) go to the bad set: feasibility-aware
   splitting. Exception: while *no* observation is feasible, the ``n_good`` least-violating ones
   form the good set, so the search moves towards the feasible region instead of sampling ``l``
   from the prior alone.
3. The good set has ``n_good = gamma(n_ok)`` members (the linear rule of the single-objective
   core, ``n_ok`` = non-failed observations), taken only among the feasible ones: whole
   non-dominated fronts, best first, in the tiers of the single-objective core (completed
   trials before censored ones, censored ones by budget reached, deepest first); the front that
   does not fit whole is cut by hypervolume contribution
   (:func:`search_algs.core.pareto.select_by_contribution`: the point of least contribution
   leaves first, against the reference point of that front). Fewer feasible observations than
   ``n_good``: all of them, and no infeasible one.
4. Everything else (and, with ``constant_liar``, the pending points) forms the bad set.

``l`` and ``g`` are then built, sampled and scored exactly as in the single-objective core.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from search_algs.core.pareto import non_dominated_sort, select_by_contribution
from search_algs.core.tpe import TPE, ParzenEstimator, TPEModel, TPEOptions, gamma, recency_weights

__all__ = ["MOTPE", "split_good_bad_mo"]


def split_good_bad_mo(
    Y: np.ndarray,
    violation: Sequence[float] | None = None,
    budgets: Sequence[int | None] | None = None,
    censored: Sequence[bool] | None = None,
    fraction: float = 0.15,
    cap: int = 25,
) -> tuple[np.ndarray, np.ndarray]:
    """Indices of the good and the bad observations, each in chronological order (see the
    module docstring).

    Args:
        Y: ``(n, m)`` objectives to minimise; a row with NaN/inf is a failed observation.
        violation: ``(n,)`` total constraint violation (0 = feasible); ``None``: none.
        budgets, censored: ``(n,)`` as in :func:`search_algs.core.tpe.rank_observations`.
    """
    Y = np.asarray(Y, dtype=float)
    if Y.ndim == 1:
        Y = Y.reshape(-1, 1)
    n = Y.shape[0]
    viol = np.zeros(n) if violation is None else np.asarray(violation, dtype=float)
    cens = np.zeros(n, bool) if censored is None else np.asarray(censored, dtype=bool)
    budget = np.array([np.nan if b is None else float(b) for b in (budgets or [None] * n)])
    if viol.shape != (n,) or cens.shape != (n,) or budget.shape != (n,):
        raise ValueError(f"split_good_bad_mo: violation, budgets and censored need one entry per row of Y "
                         f"({n}); pass equal lengths")
    ok = np.all(np.isfinite(Y), axis=1) & ~np.isnan(viol)
    n_good = gamma(int(ok.sum()), fraction, cap)
    feasible = np.flatnonzero(ok & (viol == 0))
    good: list[int] = []
    if feasible.size == 0:
        infeasible = np.flatnonzero(ok)
        good = [int(i) for i in infeasible[np.argsort(viol[infeasible], kind="stable")][:n_good]]
    else:
        # tiers: completed first, then censored by deepest budget (unknown budget last)
        tier_key = np.where(cens[feasible], np.where(np.isnan(budget[feasible]), np.inf,
                                                     -np.nan_to_num(budget[feasible])), -np.inf)
        for key in np.unique(tier_key):
            if len(good) >= n_good:
                break
            members = feasible[tier_key == key]
            ranks = non_dominated_sort(Y[members])
            for r in range(int(ranks.max()) + 1):
                room = n_good - len(good)
                if room <= 0:
                    break
                front = members[ranks == r]
                if front.size > room:
                    front = front[select_by_contribution(Y[front], room)]
                good.extend(int(i) for i in front)
    good_idx = np.array(sorted(good), dtype=int)
    bad_idx = np.setdiff1d(np.arange(n), good_idx).astype(int)
    return good_idx, bad_idx


def _unit_rows(X: np.ndarray, d: int, name: str, who: str = "MOTPE") -> np.ndarray:
    X = np.asarray(X, dtype=float)
    if X.size == 0:
        X = X.reshape(0, d)
    if X.ndim != 2 or X.shape[1] != d:
        raise ValueError(f"{who}: '{name}' must be a 2-D array of unit vectors with {d} columns, got "
                         f"shape {X.shape}; encode points with Space.encode_flat")
    return X


class MOTPE:
    """TPE over a space's parameters with a multi-objective, feasibility-aware split.

    Args:
        dims: ``Space.dims()``.
        options: :class:`~search_algs.core.tpe.TPEOptions` (the split uses ``gamma_fraction``
            and ``gamma_cap``; the rest as in the single-objective core).
    """

    def __init__(self, dims, options: TPEOptions | None = None):
        self._tpe = TPE(dims, options)
        self.options = self._tpe.options

    def fit(self, X: np.ndarray, Y: np.ndarray, violation: Sequence[float] | None = None,
            budgets: Sequence[int | None] | None = None, censored: Sequence[bool] | None = None,
            pending: np.ndarray | None = None) -> TPEModel:
        """``l`` and ``g`` for ``X`` ``(n, d)`` unit vectors and ``Y`` ``(n, m)`` objectives."""
        tpe, opt = self._tpe, self.options
        X = _unit_rows(X, tpe.d, "X")
        Y = np.asarray(Y, dtype=float).reshape(X.shape[0], -1)
        good, bad = split_good_bad_mo(Y, violation, budgets, censored, opt.gamma_fraction, opt.gamma_cap)
        bad_points = X[bad]
        if opt.constant_liar and pending is not None:
            bad_points = np.concatenate([bad_points, _unit_rows(pending, tpe.d, "pending")])
        good_points = X[good]
        w_good = recency_weights(len(good_points), opt.full_weight_window)
        w_bad = recency_weights(len(bad_points), opt.full_weight_window)
        fitted = []
        for group in tpe.groups:
            ests = []
            for pts, w in ((good_points, w_good), (bad_points, w_bad)):
                sub = pts[:, group.index]
                active = np.all(np.isfinite(sub), axis=1)
                ests.append(ParzenEstimator([tpe.dims[i] for i in group.index], sub[active], w[active],
                                            opt.prior_weight, opt.min_bandwidth, opt.bandwidth,
                                            opt.categorical_bandwidth))
            fitted.append((group, ests[0], ests[1]))
        return TPEModel(tpe, fitted, good, bad)

    def suggest(self, X: np.ndarray, Y: np.ndarray, rng: np.random.Generator,
                violation: Sequence[float] | None = None, budgets: Sequence[int | None] | None = None,
                censored: Sequence[bool] | None = None, pending: np.ndarray | None = None) -> np.ndarray:
        """The ``(d,)`` unit vector of the best of ``n_ei_candidates`` draws from ``l``."""
        model = self.fit(X, Y, violation, budgets, censored, pending)
        cand = model.sample(rng, self.options.n_ei_candidates)
        return cand[int(np.argmax(model.score(cand)))]
