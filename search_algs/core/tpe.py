"""Tree-structured Parzen Estimator (TPE): the numerical core.

numpy/scipy only; nothing here knows of Ray. The core works on the
:class:`~search_algs.core.dims.Dim` tuple of a space (``Space.dims()``) and on unit vectors (``NaN`` where a parameter is inactive).
The adapter (``search_algs/tpe.py``) only turns observations into arrays and back.

References: Bergstra et al., "Algorithms for Hyper-Parameter Optimization", NeurIPS 2011
(TPE); Falkner et al., "BOHB", ICML 2018 (multivariate product kernels, Scott's rule);
Watanabe, "Tree-Structured Parzen Estimator: Understanding Its Algorithm Components and
Their Roles for Better Empirical Performance", arXiv:2304.11127, 2023 (ablations of the
choices below); Optuna's and hyperopt's samplers (weights, prior, magic clip).

Glossary (shapes in comments use these symbols)
------------------------------------------------
``d``      number of parameters (length of a unit vector ``u``).
``n``      number of finished observations given to the core; ``m`` pending (running) points.
``N``      number of candidates drawn per suggestion (``n_ei_candidates``).
group      the parameters that share one activation ``condition`` (so they are always active
           together). An unconditional space is one group: the kernels are fully joint.
``k``      number of parameters in one group; ``c`` number of kernels of one estimator.
good set   the best ``n_good = gamma(n_ranked)`` ranked observations; density ``l(x)``.
bad set    every other observation: the rest of the ranking, failed trials and (constant
           liar) pending points; density ``g(x)``.
score      ``log l(x) - log g(x)``, summed over the groups active at ``x``; the candidate with
           the largest score is suggested (Bergstra et al. 2011: maximising ``l/g`` maximises EI).

Design choices
--------------
* **Split** ``gamma(n) = min(ceil(0.15 n), 25)``, ``n`` = number of ranked (non-failed)
  observations: Optuna's linear rule with a slightly larger fraction. Watanabe (2023)
  finds the linear split more exploitative than hyperopt's ``ceil(0.25 sqrt(n))``; at the
  tens-to-hundreds of evaluations tuning runs get here the sqrt rule keeps the good set at
  2-4 points, a few thin bumps that chase noise. Between fractions 0.1 and 0.15, 0.15 did
  better on held-out seeds (100-139) of both Branin and Hartmann6, at 50 and at 100
  evaluations (median regret 0.082 -> 0.049 and 0.46 -> 0.40 at 50; 0.0087 -> 0.0049 and
  0.18 -> 0.16 at 100). The cap keeps ``l(x)`` focused in long runs.
* **Ranking and censoring.** Failed observations (loss ``None``/NaN/inf) are never ranked:
  they go to the bad set, so ``g(x)`` grows over the failed region and it is avoided. The
  others are ordered lexicographically by

  1. completed before censored (a censored trial was stopped early by a scheduler),
  2. among censored ones, budget reached (deepest first),
  3. loss at that budget (lower first; within one budget tier this is the loss at the
     deepest milestone all of them share),
  4. age (older first, so ties are deterministic).

  Hence a censored trial never enters the good set ahead of a completed trial (in
  particular not ahead of one that beat it at their common milestone), and among censored
  trials one promoted further by the scheduler ranks ahead of one stopped earlier, as a
  successive-halving scheduler ranked them itself. Censored trials fill the good set only
  when fewer than ``n_good`` trials completed (typical under ASHA).
* **Weights.** Within each set, in chronological order: uniform when the set has fewer
  than ``full_weight_window`` (25) members, otherwise the older members ramp linearly from
  ``1/c`` to 1 and the 25 newest keep weight 1 (hyperopt's and Optuna's rule). The good set
  is capped at 25, so it is always uniform (its members are equally informative of where
  the optimum is); the bad set grows without bound and the ramp lets ``g(x)`` follow where
  the search is now, instead of the random start-up design. Pending points are the newest.
* **Prior.** Every estimator mixes in a uniform component over the unit cube with weight
  ``prior_weight`` (1.0, i.e. as much as one full-weight observation). It keeps ``l`` and
  ``g`` positive everywhere, lets ``l`` propose anywhere, and is the whole estimator of a
  group with no observation in a set.
* **Bandwidth** (option ``bandwidth``), in unit space, clipped to ``[floor, 1]`` with
  ``floor = max(min_bandwidth, 1 / (c + 2))`` (Optuna's "magic clip": wide kernels while a
  set is small, never thinner than ``min_bandwidth`` = 0.01):

  - ``"neighbour"`` (default; hyperopt's and Optuna's rule): one width per kernel and
    parameter, the larger of the gaps from its centre to the next centres below and above
    (the outermost centres look inward only; a lone centre measures to the domain's ends).
    Kernels are narrow where observations cluster, wide where they are sparse.
  - ``"scott"``: one width per parameter, Scott's rule ``sigma_j = std_j *
    n_eff ** (-1 / (k + 4))`` with ``std_j`` the weighted spread of the kernel centres along
    ``j`` and ``n_eff = 1 / sum(w^2)`` (normalised weights).

  Measured (2026-11-27, harness, 100 evaluations, seeds 0-39 on Branin, Hartmann6 and 8 BBOB
  functions in 5-D; seeds 0-29 on mixed, conditional, svm_breast_cancer, dtree_wine; together
  with ``categorical_bandwidth="count"``): against Scott's rule no problem is worse at 100%
  of the budget (Wilcoxon, p < 0.05); normalised regret at 25% / 50% / 100% of the budget
  0.28 / 0.12 / 0.071 against 0.44 / 0.13 / 0.074 on the synthetic set, and 0.53 / 0.27 /
  0.14 against 0.89 / 0.53 / 0.24 on the mixed / conditional / scikit-learn set, where
  ``conditional`` no longer sticks on its plateau branch (seeds 23 better / 7 worse).
* **Kernels** (per parameter, multiplied across the group's parameters):

  - continuous: normal truncated to ``[0, 1]`` (log scales are already linear in ``u``);
  - integer / quantised: the same normal, discretised: a grid value's probability is the
    kernel's mass over the unit-interval cell that decodes to it (cells are unequal on log
    grids), divided by the mass on ``[0, 1]``;
  - categorical (Aitchison-Aitken style): ``1 - lam + lam / K`` on the observed choice,
    ``lam / K`` on each other one. Option ``categorical_bandwidth``: ``"count"`` (default)
    ``lam = s / (1 + s)`` with ``s = K * prior_weight / (c + 1)``, the kernel Optuna builds
    (the prior's weight spread over the ``c + 1`` components), so the smoothing fades as the
    set grows; ``"scott"``: ``lam = clip(f * D, floor, 1)``, ``f`` Scott's factor above and
    ``D`` the normalised Gini dispersion of the set's choices (1 when spread evenly, 0 when
    all agree), the categorical analogue of ``std_j``.
* **Conditional spaces.** Each group is modelled only from the observations where it is
  active. Candidates are built top-down (groups in parameter order, parents first); a child
  group is sampled only for candidates whose parents activate it, and adds its own
  log-ratio to the score. ``l`` and ``g`` are thereby tree-structured densities: products
  over the groups active at ``x``.
* **Constant liar.** Pending points join the bad set (as the newest members), so parallel
  workers asking in turn are pushed away from the points already running.
* **Bounded cost in long runs** (option ``max_set_points``, default 2000; issue #21). Scoring
  costs ``O(N c k)`` per estimator, and the bad set grows with the history: uncapped, a
  suggestion at n = 10,000 took 63 ms (p50) / 91 ms (p95) CPU here, most of it in ``g(x)``. A
  set with more than ``max_set_points`` finished members is modelled by that many of them
  (:func:`cap_set`): the best-ranked half (for the bad set: the observations nearest the
  split, which is where the candidates drawn from ``l`` land; for the good set: the best) and
  the rest thinned evenly in arrival order (the oldest and the newest kept), their weights
  scaled by one factor so that the thinned part keeps its total weight (its share of ``g``
  against the near-split part and the prior). Deterministic, no random draw. Pending points
  (constant liar) are always all kept, on top. At or below the cap nothing changes, so every
  result measured with at most ``gamma_cap + max_set_points`` (2025) observations, all the
  stored ones, still holds. Measured (BENCHMARKS.md, "Suggestion cost by history size"): at
  n = 10,000 p50 / p95 11 / 12 ms with 2000 (8 / 9 ms with 1000); the regret check there (cap 1000
  at 1500 evaluations, cap 100 at 400, and the default at 3000) found no significant
  difference. ``None`` models every observation.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any, Sequence

import numpy as np
from scipy.special import log_ndtr, ndtr, ndtri

from search_algs.core.dims import CATEGORICAL, Dim

__all__ = [
    "TPEOptions",
    "TPE",
    "TPEModel",
    "ParzenEstimator",
    "gamma",
    "recency_weights",
    "rank_observations",
    "split_good_bad",
    "cap_set",
    "log_normal_mass",
]

_LOG_2PI_HALF = 0.5 * math.log(2.0 * math.pi)



# ---- options ---------------------------------------------------------------------------


@dataclass(frozen=True)
class TPEOptions:
    """Tunable constants of the core (see the module docstring for what each one does)."""

    n_ei_candidates: int = 24
    gamma_fraction: float = 0.15
    gamma_cap: int = 25
    prior_weight: float = 1.0
    full_weight_window: int = 25
    min_bandwidth: float = 0.01
    constant_liar: bool = True
    bandwidth: str = "neighbour"
    categorical_bandwidth: str = "count"
    max_set_points: int | None = 2000

    def __post_init__(self):
        def bad(name: str, constraint: str, fix: str) -> ValueError:
            return ValueError(
                f"TPE option '{name}' must be {constraint}, got {getattr(self, name)!r}; {fix}"
            )

        def is_int(v: Any) -> bool:
            return isinstance(v, (int, np.integer)) and not isinstance(v, bool)

        def is_real(v: Any) -> bool:
            return isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, bool) \
                and math.isfinite(v)

        if not is_int(self.n_ei_candidates) or self.n_ei_candidates < 1:
            raise bad("n_ei_candidates", "an int >= 1", "use e.g. 24 (the default)")
        if not is_real(self.gamma_fraction) or not 0 < self.gamma_fraction <= 1:
            raise bad("gamma_fraction", "a number in (0, 1]", "use e.g. 0.15 (the default)")
        if not is_int(self.gamma_cap) or self.gamma_cap < 1:
            raise bad("gamma_cap", "an int >= 1", "use e.g. 25 (the default)")
        if not is_real(self.prior_weight) or not self.prior_weight > 0:
            raise bad("prior_weight", "a finite number > 0 (the prior keeps both densities "
                      "positive everywhere)", "use e.g. 1.0 (the default)")
        if not is_int(self.full_weight_window) or self.full_weight_window < 1:
            raise bad("full_weight_window", "an int >= 1", "use e.g. 25 (the default)")
        if not is_real(self.min_bandwidth) or not 0 < self.min_bandwidth <= 1:
            raise bad("min_bandwidth", "a number in (0, 1] (unit-space width)",
                      "use e.g. 0.01 (the default)")
        if not isinstance(self.constant_liar, (bool, np.bool_)):
            raise bad("constant_liar", "True or False", "pass a bool")
        if self.bandwidth not in ("scott", "neighbour"):
            raise bad("bandwidth", "'neighbour' or 'scott'", "use 'neighbour' (the default)")
        if self.categorical_bandwidth not in ("scott", "count"):
            raise bad("categorical_bandwidth", "'count' or 'scott'", "use 'count' (the default)")
        if self.max_set_points is not None and (not is_int(self.max_set_points) or self.max_set_points < 2):
            raise bad("max_set_points", "None or an int >= 2 (finished observations modelled per set)",
                      "use e.g. 2000 (the default), or None to model every observation")

    def as_dict(self) -> dict:
        return asdict(self)


# ---- split, ranking, weights (pure functions) -----------------------------------------------


def gamma(n: int, fraction: float = 0.15, cap: int = 25) -> int:
    """Size of the good set among ``n`` ranked observations: ``min(ceil(fraction n), cap)``."""
    if n <= 0:
        return 0
    return int(min(math.ceil(fraction * n - 1e-12), cap, n))


def recency_weights(c: int, window: int = 25) -> np.ndarray:
    """Weights of ``c`` set members in chronological order (oldest first): all 1 when
    ``c < window``, else the ``c - window`` oldest ramp linearly from ``1/c`` up to 1."""
    if c <= 0:
        return np.zeros(0)
    if c < window:
        return np.ones(c)
    return np.concatenate([np.linspace(1.0 / c, 1.0, c - window), np.ones(window)])


def _as_losses(losses: Sequence[float | None]) -> np.ndarray:
    return np.array([np.nan if v is None else float(v) for v in losses], dtype=float)


def rank_observations(
    losses: Sequence[float | None],
    budgets: Sequence[int | None] | None = None,
    censored: Sequence[bool] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Order the observations best first (module docstring, "Ranking and censoring").

    Args:
        losses: ``(n,)`` losses to minimise; ``None``, NaN or +-inf mark a failed trial.
        budgets: ``(n,)`` budget reached (training iterations), ``None`` when unknown.
        censored: ``(n,)`` whether a scheduler stopped the trial early.

    Returns:
        ``(ranked, failed)``: indices of the ranked observations, best first, and of the
        failed ones (chronological).
    """
    loss = _as_losses(losses)
    n = len(loss)
    cens = np.zeros(n, bool) if censored is None else np.asarray(censored, dtype=bool)
    budget = np.full(n, np.nan) if budgets is None else np.array(
        [np.nan if b is None else float(b) for b in budgets], dtype=float)
    if cens.shape != (n,) or budget.shape != (n,):
        raise ValueError(
            f"rank_observations: budgets and censored must have one entry per loss ({n}), got "
            f"{budget.shape[0]} budgets and {cens.shape[0]} censored flags; pass equal lengths"
        )
    ok = np.isfinite(loss)
    idx = np.arange(n)
    tier = np.where(cens, 1, 0)
    # censored: deepest budget first; unknown budget after every known one
    budget_key = np.where(cens, np.where(np.isnan(budget), np.inf, -np.nan_to_num(budget)), 0.0)
    order = np.lexsort((idx[ok], loss[ok], budget_key[ok], tier[ok]))
    return idx[ok][order], idx[~ok]


def split_good_bad(
    losses: Sequence[float | None],
    budgets: Sequence[int | None] | None = None,
    censored: Sequence[bool] | None = None,
    fraction: float = 0.15,
    cap: int = 25,
) -> tuple[np.ndarray, np.ndarray]:
    """Indices of the good and bad observations, each in chronological order.

    The good set is the best ``gamma(n_ranked)`` ranked observations; the bad set holds the
    rest of the ranking and every failed observation.
    """
    ranked, failed = rank_observations(losses, budgets, censored)
    n_good = gamma(len(ranked), fraction, cap)
    good = np.sort(ranked[:n_good])
    bad = np.sort(np.concatenate([ranked[n_good:], failed]).astype(int))
    return good, bad


def cap_set(members: np.ndarray, rank: np.ndarray, weights: np.ndarray,
            cap: int | None) -> tuple[np.ndarray, np.ndarray]:
    """The members of one set that its estimator is built on, and their weights.

    Args:
        members: ``(c,)`` history indices of the set, chronological (oldest first).
        rank: ``(n,)`` rank of every history index (0 = best; failed ones after all ranked).
        weights: ``(c,)`` weights of ``members`` (:func:`recency_weights` of the whole set).
        cap: most members kept; ``None`` keeps all.

    Returns:
        ``(positions (c',), weights (c',))``: positions into ``members`` (ascending, so still
        chronological) and their weights, ``c' = min(c, cap)``. Beyond the cap: the
        ``cap // 2`` best-ranked members with their own weights, and ``cap - cap // 2`` of the
        others evenly spaced in arrival order (the oldest and the newest among them included),
        their weights scaled by one factor so that they sum to the weight of all the others.
        Deterministic: no random draw.
    """
    members = np.asarray(members, dtype=np.int64)
    weights = np.asarray(weights, dtype=float)
    c = len(members)
    if cap is None or c <= cap:
        return np.arange(c), weights
    n_near = cap // 2
    near = np.sort(np.argsort(rank[members], kind="stable")[:n_near])  # (n_near,) positions
    others = np.ones(c, dtype=bool)
    others[near] = False
    rest = np.flatnonzero(others)  # (c - n_near,) ascending = chronological
    k = cap - n_near
    thin = rest[np.linspace(0, len(rest) - 1, k).round().astype(np.int64)]  # distinct: step >= 1
    w = weights.copy()
    kept_mass = w[thin].sum()
    if kept_mass > 0:
        w[thin] *= w[rest].sum() / kept_mass
    keep = np.sort(np.concatenate([near, thin]))
    return keep, w[keep]


# ---- one-dimensional kernel pieces -----------------------------------------------------------


def _log1mexp(x: np.ndarray) -> np.ndarray:
    """``log(1 - exp(x))`` for ``x <= 0``, accurate near 0 and for very negative ``x``."""
    x = np.minimum(x, 0.0)
    with np.errstate(divide="ignore"):
        return np.where(x > -math.log(2.0), np.log(-np.expm1(x)), np.log1p(-np.exp(x)))


def log_normal_mass(lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """``log(Phi(hi) - Phi(lo))`` for ``lo <= hi`` (standard normal), stable in both tails.

    Intervals right of 0 are reflected to the left tail, where ``log_ndtr`` keeps precision.
    """
    lo, hi = np.broadcast_arrays(np.asarray(lo, float), np.asarray(hi, float))
    flip = lo > 0
    a = np.where(flip, -hi, lo)
    b = np.where(flip, -lo, hi)
    log_b = log_ndtr(b)
    return log_b + _log1mexp(log_ndtr(a) - log_b)


def _log_unit_mass(mu: np.ndarray, s: np.ndarray) -> np.ndarray:
    """``log`` of the mass on ``[0, 1]`` of normals ``N(mu, s^2)``: ``(c, k)`` centres and
    ``(k,)`` widths -> ``(c, k)``; the truncation normaliser of the kernels.

    Centres in ``[0, 1]`` and widths ``<= 1`` (always so for fitted kernels) put 0 inside
    ``[a, b]`` with ``b - a = 1 / s >= 1``: the mass is at least ``Phi(1) - Phi(0) = 0.34``
    (checked with margin: ``>= Phi(0.5) - Phi(0) = 0.19``), so the plain difference of two
    CDFs loses no precision and costs half of :func:`log_normal_mass`, which remains the
    fallback for anything else.
    """
    a, b = -mu / s, (1.0 - mu) / s
    if np.all(a <= 0.0) and np.all(b >= 0.0) and np.all(b - a >= 0.5):
        return np.log(ndtr(b) - ndtr(a))
    return log_normal_mass(a, b)


def neighbour_bandwidths(x: np.ndarray, floor: float) -> np.ndarray:
    """Per-kernel widths from the neighbours of each centre (hyperopt's and Optuna's rule):
    the larger of the gaps to the next centre below and above, the domain's ends ``0`` and
    ``1`` counting as neighbours only when there is a single centre; clipped to ``[floor, 1]``.

    ``x``: ``(c, k)`` centres, one column per numeric parameter -> ``(c, k)`` widths.
    """
    c = x.shape[0]
    order = np.argsort(x, axis=0, kind="stable")
    xs = np.take_along_axis(x, order, axis=0)  # (c, k) sorted per column
    padded = np.concatenate([np.zeros((1, x.shape[1])), xs, np.ones((1, x.shape[1]))])  # (c + 2, k)
    below, above = padded[1:-1] - padded[:-2], padded[2:] - padded[1:-1]  # (c, k)
    width = np.maximum(below, above)
    if c >= 2:  # the outermost centres look inward only
        width[0], width[-1] = above[0], below[-1]
    out = np.empty_like(width)
    np.put_along_axis(out, order, width, axis=0)
    return np.clip(out, floor, 1.0)


# ---- Parzen estimator over one group -----------------------------------------------------------


class ParzenEstimator:
    """Weighted mixture of product kernels over one group, plus a uniform prior component.

    Args:
        dims: the ``k`` parameters of the group.
        centres: ``(c, k)`` unit coordinates of the observations (all finite).
        weights: ``(c,)`` non-negative observation weights.
        prior_weight: weight of the uniform component (relative to ``weights``).
        min_bandwidth: absolute floor of every bandwidth (unit space).
        bandwidth_rule: ``"scott"`` (one width per parameter) or ``"neighbour"`` (one width per
            kernel and parameter), see :class:`TPEOptions`.
        categorical_rule: ``"scott"`` or ``"count"``, see :class:`TPEOptions`.

    Attributes: ``bandwidth`` ``(k,)``: Scott's width of each numeric parameter (used only
    under Scott's rule) and ``lam`` of each categorical one; ``sigma`` ``(c, k)``: the width
    each kernel uses for each numeric parameter (every row equal to ``bandwidth`` under
    Scott's rule).

    Everything that depends only on the kernels (widths, truncation normalisers, the
    per-kernel constant of the continuous factors) is computed once here, for all parameters
    of a kind at once; :meth:`log_pdf` then costs one ``(N, c, k_continuous)`` array pass plus
    a pass per grid or categorical parameter.
    """

    def __init__(self, dims: Sequence[Dim], centres: np.ndarray, weights: np.ndarray,
                 prior_weight: float = 1.0, min_bandwidth: float = 0.01,
                 bandwidth_rule: str = "neighbour", categorical_rule: str = "count"):
        self.dims = list(dims)
        k = len(self.dims)
        self.centres = np.asarray(centres, dtype=float).reshape(-1, k)  # (c, k)
        c = self.centres.shape[0]
        w = np.append(np.asarray(weights, dtype=float), prior_weight)  # (c + 1,); last = prior
        self.log_w = np.log(w / w.sum())
        self.mix = w / w.sum()
        self._cont = np.array([j for j, dim in enumerate(self.dims) if dim.numeric and not dim.on_grid],
                              dtype=int)  # continuous, and discrete without an explicit grid
        self._grid = [j for j, dim in enumerate(self.dims) if dim.on_grid]
        self._cats = [j for j, dim in enumerate(self.dims) if dim.kind == CATEGORICAL]
        num = np.array([j for j, dim in enumerate(self.dims) if dim.numeric], dtype=int)
        self.bandwidth = np.ones(k)  # sigma (continuous / grid) or lam (categorical)
        if c:
            wn = w[:c] / w[:c].sum()
            n_eff = 1.0 / np.sum(wn**2)
            factor = n_eff ** (-1.0 / (k + 4))
            floor = max(min_bandwidth, 1.0 / (c + 2))
            spread = np.zeros(k)
            if num.size:
                x = self.centres[:, num]  # (c, k_num)
                mean = wn @ x
                spread[num] = np.sqrt(np.maximum(wn @ (x - mean) ** 2, 0.0))
            for j in self._cats:
                K = self.dims[j].n_choices
                if K >= 2:
                    freq = np.bincount(self.dims[j].choice(self.centres[:, j]), weights=wn, minlength=K)
                    spread[j] = (1.0 - np.sum(freq**2)) * K / (K - 1)
            self.bandwidth = np.minimum(np.maximum(spread * factor, floor), 1.0)
            if categorical_rule == "count":
                for j in self._cats:
                    share = self.dims[j].n_choices * prior_weight / (c + 1)
                    self.bandwidth[j] = share / (1.0 + share)
        self.sigma = np.broadcast_to(self.bandwidth, (c, k)).copy()  # (c, k)
        if c and num.size and bandwidth_rule == "neighbour":
            self.sigma[:, num] = neighbour_bandwidths(self.centres[:, num], floor)
        # per-kernel log normaliser over [0, 1] of the normal kernels: (c, k), 0 elsewhere
        self._log_z = np.zeros((c, k))
        self._cat = [None] * k
        if c and num.size:
            self._log_z[:, num] = _log_unit_mass(self.centres[:, num], self.sigma[:, num])
        for j in self._cats:
            if c:
                self._cat[j] = self.dims[j].choice(self.centres[:, j])
        # log weight + every normaliser of each kernel: (c,)
        # 1 / width of the continuous parameters: (k_cont,) when shared by all kernels (a
        # third cheaper to broadcast in log_pdf), else (c, k_cont)
        if bandwidth_rule == "neighbour":
            self._inv_s_cont = 1.0 / self.sigma[:, self._cont]
        else:
            self._inv_s_cont = 1.0 / self.bandwidth[self._cont]
        log_inv_s = np.broadcast_to(np.log(self._inv_s_cont), (c, self._cont.size))
        self._kernel_const = (self.log_w[:c] - self._cont.size * _LOG_2PI_HALF + log_inv_s.sum(axis=1)
                              - self._log_z[:, num].sum(axis=1))
        self._mu_cont = self.centres[:, self._cont] * self._inv_s_cont  # (c, k_cont), in width units
        if bandwidth_rule == "neighbour":
            # sum_j ((x_j - mu_ij) / s_ij)^2 = x^2 @ A.T - 2 x @ B.T + C: two matrix products
            # instead of an (N, c, k) pass with an (c, k) operand (~25x faster at c = 1000);
            # the expansion costs ~1e-11 absolute in the log density (terms <= k / s^2 ~ 1e5)
            self._A = self._inv_s_cont**2  # (c, k_cont)
            self._B = self.centres[:, self._cont] * self._A  # (c, k_cont)
            self._C = np.sum(self.centres[:, self._cont] * self._B, axis=1)  # (c,)
        self._per_kernel = bandwidth_rule == "neighbour"

    @property
    def n_kernels(self) -> int:
        return self.centres.shape[0]

    def log_pdf(self, x: np.ndarray) -> np.ndarray:
        """Log density (continuous parameters) times probability (grid / categorical) at
        ``x``: ``(N, k)`` unit coordinates -> ``(N,)``."""
        x = np.asarray(x, dtype=float).reshape(-1, len(self.dims))
        N, c = x.shape[0], self.n_kernels
        log_k = np.broadcast_to(self._kernel_const, (N, c)).copy()  # (N, c): sum over parameters
        log_prior = np.full(N, self.log_w[c])
        if c and self._cont.size and self._per_kernel:
            xc = x[:, self._cont]  # (N, k_cont)
            q = (xc**2) @ self._A.T - 2.0 * (xc @ self._B.T) + self._C  # (N, c)
            log_k -= 0.5 * np.maximum(q, 0.0)
        elif c and self._cont.size:
            z = (x[:, None, self._cont] * self._inv_s_cont) - self._mu_cont[None]  # (N, c, k_cont)
            log_k -= 0.5 * np.einsum("ncj,ncj->nc", z, z)
        for j in self._grid:
            dim = self.dims[j]
            cell = dim.cell(x[:, j])
            lo, hi = dim.edges[cell], dim.edges[cell + 1]  # (N,)
            log_prior += np.log(hi - lo)
            if c:
                s = self.sigma[:, j][None, :]  # (1, c)
                mu = self.centres[:, j][None, :]  # (1, c)
                log_k += log_normal_mass((lo[:, None] - mu) / s, (hi[:, None] - mu) / s)
        for j in self._cats:
            dim = self.dims[j]
            K = dim.n_choices
            log_prior -= math.log(K)
            if c:
                lam = self.bandwidth[j]
                same = self._cat[j][None, :] == dim.choice(x[:, j])[:, None]  # (N, c)
                log_k += np.where(same, math.log1p(-lam + lam / K), math.log(lam / K))
        # log(sum_i exp(log_k_i) + exp(log_prior)), shifted by the row maximum
        top = np.maximum(log_k.max(axis=1), log_prior) if c else log_prior  # (N,)
        total = np.exp(log_k - top[:, None]).sum(axis=1) + np.exp(log_prior - top)
        return top + np.log(total)

    def sample(self, rng: np.random.Generator, size: int) -> np.ndarray:
        """``(size, k)`` draws (grid and categorical parameters at their representative unit
        coordinates)."""
        k, c = len(self.dims), self.n_kernels
        comp = rng.choice(c + 1, size=size, p=self.mix)  # c = the prior component
        uni = rng.random((size, k))
        from_prior = comp == c
        ci = np.minimum(comp, max(c - 1, 0))
        out = np.empty((size, k))
        for j, dim in enumerate(self.dims):
            v = uni[:, j]
            if dim.kind == CATEGORICAL:
                K = dim.n_choices
                choice = dim.choice(v)
                if c:
                    lam = self.bandwidth[j]
                    keep = 1.0 - lam
                    centre = self._cat[j][ci]
                    rest = dim.choice(np.clip((v - keep) / lam, 0.0, 1.0))
                    choice = np.where(from_prior, choice, np.where(v < keep, centre, rest))
                out[:, j] = (choice + 0.5) / K
                continue
            x = v.copy()
            if c:
                s = self.sigma[ci, j]
                mu = self.centres[ci, j]
                a, b = -mu / s, (1.0 - mu) / s  # a <= 0 <= b: the mass in between is >= ~0.34
                pa = ndtr(a)
                p = pa + v * (ndtr(b) - pa)
                z = np.clip(ndtri(np.clip(p, 1e-300, 1.0 - 1e-16)), a, b)
                x = np.where(from_prior, v, np.clip(mu + s * z, 0.0, 1.0))
            if dim.on_grid:
                x = dim.grid[dim.cell(x)]
            out[:, j] = x
        return out


# ---- the model over the whole (tree-structured) space ------------------------------------------


@dataclass(frozen=True)
class _Group:
    condition: tuple  # ((parent index, choice index), ...)
    index: np.ndarray  # (k,) parameter indices


class TPEModel:
    """``l`` and ``g`` fitted to one history; draws and scores candidates.

    Built by :meth:`TPE.fit`. ``good`` and ``bad`` are the history indices of the two sets
    (the bad set's pending points are not listed there); ``good_modelled`` and ``bad_modelled``
    those the estimators are built on (the same unless a set passed ``max_set_points``,
    see :func:`cap_set`).
    """

    def __init__(self, tpe: "TPE", groups: list[tuple[_Group, ParzenEstimator, ParzenEstimator]],
                 good: np.ndarray, bad: np.ndarray, good_modelled: np.ndarray | None = None,
                 bad_modelled: np.ndarray | None = None):
        self._tpe = tpe
        self.groups = groups
        self.good, self.bad = good, bad
        self.good_modelled = good if good_modelled is None else good_modelled
        self.bad_modelled = bad if bad_modelled is None else bad_modelled

    def _active(self, cand: np.ndarray, group: _Group) -> np.ndarray:
        active = np.ones(cand.shape[0], bool)
        for parent, k in group.condition:
            u = cand[:, parent]
            active &= np.isfinite(u) & (self._tpe.dims[parent].choice(np.nan_to_num(u)) == k)
        return active

    def sample(self, rng: np.random.Generator, size: int) -> np.ndarray:
        """``(size, d)`` candidates drawn top-down from ``l`` (``NaN`` where inactive)."""
        cand = np.full((size, self._tpe.d), np.nan)
        for group, good, _ in self.groups:
            active = self._active(cand, group)
            if active.any():
                cand[np.ix_(active, group.index)] = good.sample(rng, int(active.sum()))
        return cand

    def score(self, cand: np.ndarray) -> np.ndarray:
        """``log l(x) - log g(x)`` of ``(N, d)`` candidates, summed over their active groups."""
        cand = np.asarray(cand, dtype=float)
        total = np.zeros(cand.shape[0])
        for group, good, bad in self.groups:
            active = self._active(cand, group)
            if active.any():
                x = cand[np.ix_(active, group.index)]
                total[active] += good.log_pdf(x) - bad.log_pdf(x)
        return total


class TPE:
    """Multivariate, tree-structured TPE over a space's parameters.

    Args:
        dims: one :class:`~search_algs.core.dims.Dim` per parameter, parents before children
            (``Space.dims()``).
        options: :class:`TPEOptions`.
    """

    def __init__(self, dims: Sequence[Dim], options: TPEOptions | None = None):
        self.dims = tuple(dims)
        if not all(isinstance(dim, Dim) for dim in self.dims):
            raise TypeError(f"TPE: 'dims' must be a sequence of Dim (Space.dims()), got {dims!r}")
        self.options = options or TPEOptions()
        self.d = len(self.dims)
        by_condition: dict[tuple, list[int]] = {}
        for i, dim in enumerate(self.dims):
            by_condition.setdefault(tuple(dim.condition), []).append(i)
        # parents precede children in params, so ordering groups by first member is top-down
        self.groups = sorted((_Group(cond, np.array(ix)) for cond, ix in by_condition.items()),
                             key=lambda g: int(g.index[0]))

    def _check(self, X: np.ndarray, name: str) -> np.ndarray:
        X = np.asarray(X, dtype=float)
        if X.size == 0:
            X = X.reshape(0, self.d)
        if X.ndim != 2 or X.shape[1] != self.d:
            raise ValueError(
                f"TPE: '{name}' must be a 2-D array of unit vectors with {self.d} columns (one "
                f"per parameter), got shape {X.shape}; encode points with Space.encode_flat"
            )
        return X

    def fit(
        self,
        X: np.ndarray,
        losses: Sequence[float | None],
        budgets: Sequence[int | None] | None = None,
        censored: Sequence[bool] | None = None,
        pending: np.ndarray | None = None,
    ) -> TPEModel:
        """Fit ``l`` and ``g``.

        Args:
            X: ``(n, d)`` unit vectors of the finished observations, chronological.
            losses: ``(n,)`` losses to minimise (``None``/NaN/inf = failed).
            budgets, censored: ``(n,)``, see :func:`rank_observations`.
            pending: ``(m, d)`` unit vectors of running trials (used when ``constant_liar``).
        """
        X = self._check(X, "X")
        n = X.shape[0]
        if len(losses) != n:
            raise ValueError(
                f"TPE: 'losses' must have one entry per row of X ({n}), got {len(losses)}; "
                f"pass matching lengths"
            )
        opt = self.options
        ranked, failed = rank_observations(losses, budgets, censored)
        n_good = gamma(len(ranked), opt.gamma_fraction, opt.gamma_cap)
        good = np.sort(ranked[:n_good])
        bad = np.sort(np.concatenate([ranked[n_good:], failed]).astype(np.int64))
        rank = np.empty(n, dtype=np.int64)  # (n,) 0 = best; failed ones after every ranked one
        rank[np.concatenate([ranked, failed]).astype(np.int64)] = np.arange(n)
        pend = np.zeros((0, self.d)) if not (opt.constant_liar and pending is not None) \
            else self._check(pending, "pending")
        # weights over each whole set (pending points the newest), then at most max_set_points
        # finished members of each set modelled (cap_set; every pending point kept)
        w_good = recency_weights(len(good), opt.full_weight_window)
        w_bad = recency_weights(len(bad) + len(pend), opt.full_weight_window)
        keep_good, w_good = cap_set(good, rank, w_good, opt.max_set_points)
        keep_bad, w_bad_done = cap_set(bad, rank, w_bad[: len(bad)], opt.max_set_points)
        w_bad = np.concatenate([w_bad_done, w_bad[len(bad):]])
        good_points = X[good[keep_good]]
        bad_points = np.concatenate([X[bad[keep_bad]], pend])
        fitted = []
        for group in self.groups:
            ests = []
            for pts, w in ((good_points, w_good), (bad_points, w_bad)):
                sub = pts[:, group.index]
                active = np.all(np.isfinite(sub), axis=1)
                ests.append(ParzenEstimator([self.dims[i] for i in group.index], sub[active],
                                            w[active], opt.prior_weight, opt.min_bandwidth,
                                            opt.bandwidth, opt.categorical_bandwidth))
            fitted.append((group, ests[0], ests[1]))
        return TPEModel(self, fitted, good, bad, good[keep_good], bad[keep_bad])

    def suggest(
        self,
        X: np.ndarray,
        losses: Sequence[float | None],
        rng: np.random.Generator,
        budgets: Sequence[int | None] | None = None,
        censored: Sequence[bool] | None = None,
        pending: np.ndarray | None = None,
    ) -> np.ndarray:
        """The ``(d,)`` unit vector (``NaN`` where inactive) of the best of
        ``n_ei_candidates`` draws from ``l``, by ``log l - log g``."""
        model = self.fit(X, losses, budgets, censored, pending)
        cand = model.sample(rng, self.options.n_ei_candidates)
        return cand[int(np.argmax(model.score(cand)))]
