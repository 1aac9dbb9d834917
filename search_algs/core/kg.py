"""The knowledge gradient over a discrete candidate set: the numerical core of the KG searcher.

torch (float64), numpy and scipy only; nothing here knows of Ray. Losses are MINIMISED by the
caller; inside this module everything is written for *maximising* ``a = -(posterior mean of the
standardised loss)``, so that the formulas read as in the papers.

Glossary (shapes in comments use these symbols)
-----------------------------------------------
``D``        parameters (length of a unit vector ``u``).
``n``        points the model is conditioned on (observations, then fantasies).
``m``        candidates ``C``: the alternatives the decision "which point would I pick after one
             more observation?" ranges over (see :meth:`KnowledgeGradient.candidates`).
``s``        query points ``x`` evaluated at once (rows).
``k``        lines per query row: ``m + 1`` (the candidates and ``x`` itself).
``mu(c)``    posterior mean of the latent standardised loss ``f``; ``a(c) = -mu(c)``.
``s2_n``     the GP's noise variance (standardised units): a new observation is
             ``y(x) = f(x) + eps``, ``eps ~ Normal(0, s2_n)``.
``b_x(c)``   ``Cov_n(f(c), y(x)) / sqrt(Var_n(f(x)) + s2_n)``: after observing ``y(x)`` the
             posterior mean becomes ``a(c) + b_x(c) Z`` with ``Z ~ Normal(0, 1)`` (the same ``Z``
             for every ``c``; Frazier, Powell and Dayanik 2009).
``h(a, b)``  ``E[max_i a_i + b_i Z] - max_i a_i`` for vectors ``a, b``: the expected gain of the
             best line (:func:`log_envelope_gain`).
``f(z)``     ``phi(z) + z Phi(z)`` (standard normal density and distribution); ``log f`` is
             :func:`search_algs.core.acquisition.log_h`.
``a*``       ``max_c a(c)``: the value of the best candidate now.
``KG(x)``    ``E[max_{c in C + {x}} a(c) + b_x(c) Z] - a*``: the expected increase of the best
             posterior mean when ``x`` is observed once more.

References
----------
* P. Frazier, W. Powell, S. Dayanik, "The Knowledge-Gradient Policy for Correlated Normal
  Beliefs", INFORMS Journal on Computing 21(4), 2009: ``h(a, b)`` in closed form from the upper
  envelope of the lines ``a_i + b_i z``: with the envelope's lines sorted by
  slope and ``c_j`` the ``z`` where line ``j`` hands over to line ``j + 1``,
  ``h = sum_j (b_{j+1} - b_j) f(-|c_j|)``.
* P. Frazier, "A Tutorial on Bayesian Optimization", arXiv:1807.02811, 2018, section 4.2: KG for
  noisy evaluations, its discretised form, and the gradient of KG by the envelope theorem.
* W. Scott, P. Frazier, W. Powell, "The correlated knowledge gradient for simulation optimization
  of continuous parameters using Gaussian process regression", SIAM J. Optim. 21(3), 2011: the
  discrete set is the evaluated points plus ``x`` itself (KGCP).

Design choices
--------------
* **Exact envelope, stably** (:func:`envelope_pairs`, :func:`log_envelope_gain`). Per row: sort
  the lines by slope (``O(k log k)``), merge slopes that agree to ``1e-12`` of the row's largest
  ``|b|`` (keeping the highest line: the merged line's share of ``h`` is below ``1e-12 max|b|``,
  and without the merge a near-tie gives a breakpoint ``c`` near ``1/eps`` whose derivative
  overflows), drop every line below the chords from the shallowest line to the highest one and
  from the highest one to the steepest one (those three are on the envelope, and the envelope is
  concave, so anything below a chord is not: an exact ``O(k)`` filter; on a GP's lines it leaves
  a handful of some two hundred), then Frazier, Powell and Dayanik's stack scan (a monotone-chain
  upper hull), run for all rows at once. ``h`` is summed in log space: ``log h = logsumexp_j(log(b_{j+1} - b_j) +
  log f(-|c_j|))``, finite however far apart the lines are (``f`` underflows below ``z ~ -38``,
  ``log f`` does not), which keeps the acquisition informative far from the data, as LogEI does.
* **The candidate set** ``C``, two kinds, alternating by default (``decision_set``):

  - *wide*: the evaluated points, the running ones, ``n_sobol`` scrambled Sobol points, the
    minimiser of the posterior mean (searched for with the acquisition optimiser of
    :mod:`search_algs.core.optimizer`), ``n_neighbours`` perturbations of the ``n_best`` points
    with the lowest posterior mean;
  - *observed*: the evaluated and running points only (Scott, Frazier and Powell's KGCP);

  and in each row ``x`` itself, which makes ``KG(x) > 0`` wherever ``x`` is uncertain even when
  no candidate is near it. Why both (BENCHMARKS.md, run C4): the recommendation is an *evaluated*
  point, but the wide set's ``a*`` includes unevaluated ones (the mean's minimiser lies
  0.03-0.2 standardised units beyond the best evaluated mean on noisy BBOB f21), so with it KG
  never pays for cashing in a predicted improvement near the incumbent: a point there is worth
  only its variance, and far, prior-like points win the argmax (40-60 % of the steps on f21,
  where they land on the plateau). With the observed set a predicted improvement counts in full
  (``max(0, a(x) - a*)``; without noise KGCP is EI on the posterior mean). The wide set is what
  gave KG its lead on Hartmann6 with noise 0.1, the observed one does better on f21 and loses that
  lead; alternating kept both (10 seeds x 50 on five noisy problems: better than the wide set on
  28 seed pairs, worse on 17; f21 4.03 vs 6.13, Hartmann6 0.1 0.152 vs 0.237; not significant).
  The fitted noise cannot choose between them: in KG's runs the noise-to-signal ratio stays near
  the prior's ~3e-4 for most steps even on Hartmann6 with noise 0.5 (above 1e-3 in 12-50 % of the
  steps; found only near the end, 0.09-2.9 at n = 50) and on f21 (0-55 %; BENCHMARKS.md C6). At
  30 seeds neither set is better on Hartmann6 with noise 0.5 (15/15 seed pairs).
* **Baseline** ``a*`` is the best over ``C`` alone, a constant of the suggestion step (the
  tutorial's ``mu*_n``, approximated by ``C``, which holds the mean's minimiser). Subtracting
  ``max(a*, a(x))`` instead (the textbook discrete KG) would put a kink into ``KG`` wherever
  ``a(x)`` crosses ``a*``; here ``KG(x) = h(a, b) + max(0, a(x) - a*)``, smooth in ``x``.
* **Maximising KG over x: exact gradients of the discretised KG, not stochastic ones, not
  one-shot.** With ``C`` fixed, ``KG(x)`` is an explicit smooth function of ``a(x)``, ``b_x``;
  between changes of the envelope's combinatorial structure (measure zero, where KG stays
  continuously differentiable because a line enters with an interval of length 0) its gradient
  is the gradient of the closed form with the structure held fixed, which torch's autograd gives
  exactly. This *is* the envelope-theorem gradient of the tutorial,
  ``grad E[max_i a_i + b_i Z] = E[grad a_{i*(Z)} + Z grad b_{i*(Z)}]`` (``i*(Z)`` the best line),
  with the expectation over ``Z`` taken in closed form over the envelope's intervals instead of
  sampled; so the maximisation is deterministic and runs on L-BFGS-B (the optimiser of
  :mod:`search_algs.core.optimizer`: Sobol + perturbation screening, joint L-BFGS-B from the best
  starts, discrete local search), with no step sizes to tune. The one-shot formulation (BoTorch's
  qKG) optimises ``x`` jointly with one maximiser per fantasy, ``D (1 + fantasies)`` variables
  and a Monte-Carlo estimate: more accurate in its inner maximisation than a fixed ``C``, and
  several times dearer, which is what the cost target of this searcher rules out.
* **Parallel trials**: kriging believer, as in GP-EI: running trials are conditioned on at their
  posterior mean (hyperparameters unchanged), which shrinks ``b`` near them (so KG drops there)
  and leaves the means alone; observed and running points are never proposed again.
* **Failed and censored observations**: as GP-EI (:mod:`search_algs.core.gp_ei`): failures are
  left out of the fit and conditioned on at the worst observed loss (they are kept out of ``C``);
  censored trials are modelled with the loss they reached.
* **Recommendation**: GP-EI's (:meth:`GPEI.recommend`): when the fitted noise is not negligible
  (``noise="auto"``), the evaluated point with the least posterior mean (Frazier 2018), else the
  best observed one.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass, field, replace
from typing import Any, Sequence

import numpy as np
import torch
from scipy.stats import qmc

from search_algs.core.acquisition import log_h
from search_algs.core.gp import DTYPE, GP, VAR_FLOOR, model_targets
from search_algs.core.dims import Dim
from search_algs.core.gp_ei import GPEI, GPEIOptions, torch_threads
from search_algs.core.optimizer import OptimizeOptions, _perturb, canonical, optimize_acqf

logger = logging.getLogger(__name__)

__all__ = [
    "KGOptions",
    "KGSuggestion",
    "KnowledgeGradient",
    "LogKG",
    "envelope_pairs",
    "log_envelope_gain",
    "envelope_gain",
]

DECISION_SETS = ("alternate", "wide", "observed")
TIE_TOL = 1e-12  # slopes closer than this times the row's largest |b| are one slope


# ---- h(a, b) = E[max_i a_i + b_i Z] - max_i a_i ----------------------------------------------


def envelope_pairs(a: np.ndarray, b: np.ndarray, tie_tol: float = TIE_TOL) -> tuple[np.ndarray, ...]:
    """Consecutive lines of the upper envelope of ``a_i + b_i z`` in every row.

    Args:
        a, b: ``(s, k)`` finite intercepts and slopes.

    Returns:
        ``(row, lo, hi)``, each ``(p,)``: for every row, the envelope's lines in increasing
        slope, as pairs of column indices ``(lo, hi)`` of neighbours on the envelope (line
        ``lo`` is the best just left of their breakpoint, ``hi`` just right of it). A row whose
        envelope is a single line (all slopes equal, one line) has no pair. Slopes within
        ``tie_tol * max|b|`` of each other count as equal (the highest line is kept).
    """
    a = np.asarray(a, dtype=float)
    b = np.asarray(b, dtype=float)
    if a.ndim != 2 or a.shape != b.shape:
        raise ValueError(f"envelope_pairs: a and b must have one shape (s, k), got {a.shape} and {b.shape}")
    if not (np.isfinite(a).all() and np.isfinite(b).all()):
        raise FloatingPointError("envelope_pairs: non-finite intercept or slope; the model produced NaN/inf")
    s, k = a.shape
    empty = np.zeros(0, dtype=np.int64)
    if s == 0 or k < 2:
        return empty, empty, empty
    rows = np.arange(s)

    # 1. sort each row by slope, then intercept (O(k log k))
    order = np.lexsort((a, b), axis=-1)  # (s, k)
    A = np.take_along_axis(a, order, axis=1)  # (s, k)
    B = np.take_along_axis(b, order, axis=1)  # (s, k)

    # 2. merge (near-)equal slopes: keep the highest line of each run of ties
    tol = tie_tol * np.abs(B).max(axis=1, keepdims=True)  # (s, 1)
    start = np.ones((s, k), dtype=bool)
    start[:, 1:] = np.diff(B, axis=1) > tol  # a new slope group starts here
    if start.all():
        keep = np.ones((s, k), dtype=bool)
    else:
        flat_start = np.flatnonzero(start.ravel())  # (groups,), row starts included
        group = np.cumsum(start.ravel()) - 1  # (s * k,) group of each line
        gmax = np.maximum.reduceat(A.ravel(), flat_start)  # (groups,)
        top = A.ravel() == gmax[group]
        before = np.cumsum(top) - top  # tops seen before this line
        first_top = top & (before - before[flat_start][group] == 0)
        keep = first_top.reshape(s, k)

    # 3. exact filter: the envelope's lines lie on or above the chords shallowest -> highest -> steepest
    first = np.argmax(keep, axis=1)  # (s,) shallowest kept line
    last = k - 1 - np.argmax(keep[:, ::-1], axis=1)  # (s,) steepest kept line
    high = np.argmax(np.where(keep, A, -np.inf), axis=1)  # (s,) highest line
    cols = np.arange(k)
    left = cols[None, :] <= high[:, None]  # (s, k)
    p = np.where(left, first[:, None], high[:, None])  # chord start (s, k)
    q = np.where(left, high[:, None], last[:, None])  # chord end (s, k)
    Ap, Bp = A[rows[:, None], p], B[rows[:, None], p]
    Aq, Bq = A[rows[:, None], q], B[rows[:, None], q]
    above = (A - Ap) * (Bq - Bp) - (Aq - Ap) * (B - Bp) > 0  # strictly above the chord
    ends = (cols[None, :] == first[:, None]) | (cols[None, :] == last[:, None]) | (cols[None, :] == high[:, None])
    keep &= above | ends

    # 4. compact the survivors to the left (sorted order kept) and scan them
    squeeze = np.argsort(~keep, axis=1, kind="stable")  # (s, k)
    width = int(keep.sum(axis=1).max())
    squeeze = squeeze[:, :width]  # (s, w)
    valid = np.take_along_axis(keep, squeeze, axis=1)  # (s, w)
    A = np.take_along_axis(A, squeeze, axis=1)
    B = np.take_along_axis(B, squeeze, axis=1)
    column = np.take_along_axis(order, squeeze, axis=1)  # (s, w) original column of each

    stack = np.zeros((s, width), dtype=np.int64)  # positions (in 0..w-1) of the envelope so far
    size = np.zeros(s, dtype=np.int64)
    for j in range(width):
        on = valid[:, j]
        while True:
            r = rows[on & (size >= 2)]
            if len(r) == 0:
                break
            i1, i2 = stack[r, size[r] - 2], stack[r, size[r] - 1]
            a1, b1, a2, b2 = A[r, i1], B[r, i1], A[r, i2], B[r, i2]
            a3, b3 = A[r, j], B[r, j]
            # line i2 is never strictly best iff its breakpoint with i1 is not left of the one with j
            hidden = (a1 - a2) * (b3 - b2) >= (a2 - a3) * (b2 - b1)
            if not hidden.any():
                break
            size[r[hidden]] -= 1
        stack[on, size[on]] = j
        size[on] += 1

    n_pairs = np.maximum(size - 1, 0)  # (s,)
    row = np.repeat(rows, n_pairs)  # (p,)
    offset = np.arange(len(row)) - np.repeat(np.cumsum(n_pairs) - n_pairs, n_pairs)  # (p,)
    lo = column[row, stack[row, offset]]
    hi = column[row, stack[row, offset + 1]]
    return row, lo, hi


def log_envelope_gain(a: torch.Tensor, b: torch.Tensor, tie_tol: float = TIE_TOL) -> torch.Tensor:
    """``log h(a, b) = log(E[max_i a_i + b_i Z] - max_i a_i)`` per row, ``(s, k) -> (s,)``.

    ``-inf`` where ``h = 0`` (one line, or all slopes equal). Differentiable in ``a`` and ``b``
    (the envelope's structure is found without gradients and held fixed, see the module
    docstring); finite gradients wherever the value is finite.
    """
    a = torch.as_tensor(a, dtype=DTYPE)
    b = torch.as_tensor(b, dtype=DTYPE)
    s = a.shape[0]
    row, lo, hi = envelope_pairs(a.detach().numpy(), b.detach().numpy(), tie_tol)
    out = torch.full((s,), -math.inf, dtype=DTYPE)
    if len(row) == 0:
        return out + 0.0 * (a.sum() + b.sum())  # keeps the graph (zero gradients)
    row_t, lo_t, hi_t = (torch.as_tensor(v) for v in (row, lo, hi))
    db = b[row_t, hi_t] - b[row_t, lo_t]  # (p,) > 0 (merged ties are gone)
    c = (a[row_t, lo_t] - a[row_t, hi_t]) / db  # (p,) breakpoints
    terms = torch.log(db) + log_h(-c.abs())  # (p,) log of each segment's share
    # logsumexp per row, shifted by the row's largest term (a constant: gradients unchanged)
    shift = np.full(s, -np.inf)
    np.maximum.at(shift, row, terms.detach().numpy())
    has = torch.as_tensor(np.isfinite(shift))
    shift_t = torch.as_tensor(np.where(np.isfinite(shift), shift, 0.0), dtype=DTYPE)
    sums = torch.zeros(s, dtype=DTYPE).index_add(0, row_t, torch.exp(terms - shift_t[row_t]))
    safe = torch.where(has, sums, torch.ones_like(sums))
    result = torch.where(has, torch.log(safe) + shift_t, out)
    if bool(torch.isnan(result).any()):
        raise FloatingPointError("log_envelope_gain: NaN from finite lines; report this with the inputs")
    return result


def envelope_gain(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``h(a, b)`` per row as numpy ``(s, k) -> (s,)`` (0 where there is no gain)."""
    with torch.no_grad():
        return torch.exp(log_envelope_gain(torch.as_tensor(a, dtype=DTYPE),
                                           torch.as_tensor(b, dtype=DTYPE))).numpy()


# ---- KG of a GP over a candidate set ---------------------------------------------------------


def _safe_log_positive(x: torch.Tensor) -> torch.Tensor:
    """``log x`` where ``x > 0``, ``-inf`` elsewhere, with zero (not NaN) gradients there."""
    pos = x > 0
    return torch.where(pos, torch.log(torch.where(pos, x, torch.ones_like(x))), torch.full_like(x, -math.inf))


class LogKG:
    """``U (s, D) -> log KG (s,)`` under the posterior of ``gp`` over candidates ``C (m, D)``.

    Building it computes what every query shares (``O(n^2 m)``): ``a(C)``, ``a*`` and
    ``L^-1 K(X_n, C)``. A call costs ``O(s (n^2 + n m) + s k log k)``.
    """

    def __init__(self, gp: GP, candidates: np.ndarray | torch.Tensor, tie_tol: float = TIE_TOL):
        C = torch.as_tensor(candidates, dtype=DTYPE).reshape(-1, gp.dim)  # (m, D)
        if C.shape[0] == 0:
            raise ValueError("LogKG: the candidate set is empty; give at least one candidate")
        self.gp = gp
        self.C = C
        self.tie_tol = tie_tol
        with torch.no_grad():
            mean_c, _ = gp.posterior(C)
            self.a_c = -mean_c  # (m,)
            K_nc = gp.kernel(gp.U, C)  # (n, m)
            self.V_c = torch.linalg.solve_triangular(gp.L, K_nc, upper=False)  # (n, m)
        self.best = float(self.a_c.max())  # a*
        if not math.isfinite(self.best):
            raise FloatingPointError("LogKG: non-finite posterior mean at the candidates")

    def lines(self, U: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(a (s, m + 1), b (s, m + 1))``: the candidates' lines, then ``x``'s own, per row."""
        gp = self.gp
        U = torch.as_tensor(U, dtype=DTYPE).reshape(-1, gp.dim)  # (s, D)
        K_xn = gp.kernel(U, gp.U)  # (s, n)
        V_x = torch.linalg.solve_triangular(gp.L, K_xn.T, upper=False)  # (n, s)
        mean_x = K_xn @ gp.alpha  # (s,)
        var_x = (gp.signal_var - (V_x * V_x).sum(0)).clamp_min(VAR_FLOOR)  # (s,)
        cov = gp.kernel(U, self.C) - V_x.T @ self.V_c  # (s, m) Cov_n(f(x), f(c))
        scale = torch.sqrt(var_x + gp.noise_var)  # (s,) sd of y(x)
        b = torch.cat([cov, var_x.unsqueeze(-1)], dim=1) / scale.unsqueeze(-1)  # (s, m + 1)
        a = torch.cat([self.a_c.expand(U.shape[0], -1), -mean_x.unsqueeze(-1)], dim=1)  # (s, m + 1)
        return a, b

    def __call__(self, U: torch.Tensor) -> torch.Tensor:
        a, b = self.lines(U)
        log_gain = log_envelope_gain(a, b, self.tie_tol)  # (s,) log h
        log_lift = _safe_log_positive(a[:, -1] - self.best)  # (s,) log max(0, a(x) - a*)
        return torch.logaddexp(log_gain, log_lift)

    def numpy(self, U: np.ndarray, chunk: int = 512) -> np.ndarray:
        """Values without gradients for ``U (s, D)`` as a numpy array ``(s,)``."""
        U = np.asarray(U, dtype=float).reshape(-1, self.gp.dim)
        with torch.no_grad():
            parts = [self(torch.as_tensor(U[i:i + chunk], dtype=DTYPE)).numpy() for i in range(0, len(U), chunk)]
        return np.concatenate(parts) if parts else np.zeros(0)


class _NegMean:
    """``U (s, D) -> -mu(U) (s,)``: maximised to find the posterior mean's minimiser."""

    def __init__(self, gp: GP):
        self.gp = gp

    def __call__(self, U: torch.Tensor) -> torch.Tensor:
        return -self.gp.posterior(U)[0]

    def numpy(self, U: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            return self(torch.as_tensor(U, dtype=DTYPE)).numpy()


# ---- options and the suggestion step ---------------------------------------------------------


def _kg_optimize() -> OptimizeOptions:
    # KG costs ~n/m times LogEI per point: a smaller screen and fewer, shorter L-BFGS-B runs
    return OptimizeOptions(n_raw=512, n_perturb=128, n_starts=4, maxiter=40, n_local=2, local_rounds=10)


def _mean_optimize() -> OptimizeOptions:
    return OptimizeOptions(n_raw=256, n_perturb=64, n_starts=2, maxiter=30, n_local=1, local_rounds=10)


@dataclass(frozen=True)
class KGOptions(GPEIOptions):
    """Options of :class:`KnowledgeGradient`: the GP's (fit, prior, refits, threads) as
    :class:`GPEIOptions`, and

    * ``noise``: only chooses the recommendation (see :meth:`GPEI.recommend`); KG itself always
      uses the fitted noise.
    * ``n_best``: incumbents (least posterior mean) whose perturbations seed both ``C`` and the
      acquisition search.
    * ``optimize``: the search for the maximiser of KG (lighter than GP-EI's: KG costs more per point).
    * ``n_sobol``: Sobol points in ``C`` (rounded up to a power of two; 0 for none).
    * ``n_neighbours``: perturbations of the incumbents in ``C``.
    * ``mean_optimize``: the search for the posterior mean's minimiser (added to ``C``).
    * ``max_model_points`` (default 500, GP-EI's is 1000) and ``max_fit_points`` (200, as
      GP-EI): the model holds at most 500 observations (the best half and an even thinning of
      the rest, :meth:`GPEI.model_subset`) and the hyperparameters are fitted on at most 200 of
      them. A KG suggestion costs ``O(s (n^2 + n m))`` per batch of ``s`` points with ``m >= n``
      candidates: with a 1000-point model it took 0.92 s (p50) and 1.24 s (p95) on this
      machine, with 500 points well under 1 s (issue #21; BENCHMARKS.md, "Suggestion cost by
      history size"). Below 200 (fit) and 500 (model) observations nothing changes.
    * ``decision_set``: which ``C`` (see the module docstring): ``"wide"`` (the evaluated and
      running points, Sobol points, the mean's minimiser, perturbations of the incumbents),
      ``"observed"`` (the evaluated and running points only: Scott et al.'s KGCP) or
      ``"alternate"`` (default: ``"wide"`` when the number of finished trials in the model is
      even, ``"observed"`` when it is odd).
    """
    optimize: OptimizeOptions = field(default_factory=_kg_optimize)
    max_model_points: int | None = 500  # KG costs ~n / m times LogEI per point: a smaller model than GP-EI's
    n_sobol: int = 128
    n_neighbours: int = 32
    mean_optimize: OptimizeOptions = field(default_factory=_mean_optimize)
    decision_set: str = "alternate"

    @property
    def label(self) -> str:
        return "KG"

    def validate(self) -> None:
        super().validate()
        for name in ("n_sobol", "n_neighbours"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 0:
                raise ValueError(f"KG: '{name}' must be an int >= 0, got {value!r}")
        if self.decision_set not in DECISION_SETS:
            raise ValueError(f"KG: 'decision_set' must be one of {DECISION_SETS}, got {self.decision_set!r}")
        if not isinstance(self.mean_optimize, OptimizeOptions):
            raise ValueError(f"KG: 'mean_optimize' must be an OptimizeOptions, got {self.mean_optimize!r}")
        self.mean_optimize.validate()

    @classmethod
    def from_dict(cls, d: dict) -> "KGOptions":
        d = dict(d)
        mean = d.pop("mean_optimize", None)
        options = super().from_dict(d)
        return options if mean is None else replace(options, mean_optimize=OptimizeOptions(**mean))


@dataclass
class KGSuggestion:
    """What :meth:`KnowledgeGradient.suggest` decided, for logs and tests."""

    u: np.ndarray  # (D,)
    log_kg: float
    refit: bool
    fit_ok: bool
    seconds: float
    info: dict[str, Any] = field(default_factory=dict)


class KnowledgeGradient(GPEI):
    """GP with the discrete knowledge gradient: fit, fantasise, build ``C``, maximise ``log KG``.

    Fitting, the refit schedule, the persistent state (:meth:`state` / :meth:`load_state`) and
    :meth:`recommend` are GP-EI's (:class:`GPEI`).
    """

    def __init__(self, dims: Sequence[Dim], options: KGOptions = KGOptions()):
        if not isinstance(options, KGOptions):
            raise ValueError(f"KG: 'options' must be a KGOptions, got {type(options).__name__}")
        super().__init__(dims, options)

    def candidates(self, model: GP, n_observed: int, centres: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """The candidate set ``C (m, D)``: the first ``n_observed`` points of ``model`` (finished
        and running trials, not failures), Sobol points, the posterior mean's minimiser and
        perturbations of ``centres (k, D)``."""
        D = len(self.dims)
        opts = self.options
        parts = [model.U[:n_observed].numpy()]
        if opts.n_sobol:
            seed = int(rng.integers(2**31 - 1))
            raw = qmc.Sobol(d=D, scramble=True, seed=seed).random_base2(max(0, math.ceil(math.log2(opts.n_sobol))))
            parts.append(canonical(raw, self.dims, rng))
        u_mean, _ = optimize_acqf(_NegMean(model), self.dims, rng, centres=centres, options=opts.mean_optimize)
        parts.append(u_mean[None])
        if opts.n_neighbours and len(centres):
            parts.append(_perturb(centres, self.dims, opts.n_neighbours, rng))
        return np.concatenate(parts)

    def decision_set(self, gp: GP) -> str:
        """``"wide"`` or ``"observed"``: the candidate set for the model ``gp`` (see
        :class:`KGOptions`)."""
        choice = self.options.decision_set
        if choice == "alternate":
            choice = "wide" if gp.n % 2 == 0 else "observed"
        return choice

    def _suggest(self, U, losses, rng, pending) -> KGSuggestion | None:
        t0 = time.process_time()
        D = len(self.dims)
        U, loss, ok = self._split(U, losses)
        if ok.sum() < 2:
            return None
        used = self.model_subset(loss, ok)  # every usable observation unless max_model_points caps it
        y = model_targets(loss[used], self.options.output_warp)
        gp, refit, fit_ok = self.fit(U[used], y, n_seen=int(ok.sum()))

        pending = np.zeros((0, D)) if pending is None else np.asarray(pending, dtype=float).reshape(-1, D)
        failed = U[~ok]
        model = gp
        if len(pending) or len(failed):
            with torch.no_grad():
                believed = gp.posterior(torch.as_tensor(pending, dtype=DTYPE))[0].numpy() if len(pending) \
                    else np.zeros(0)  # (p,) kriging believer
            model = gp.condition(np.concatenate([pending, failed]), np.concatenate([believed, np.full(len(failed), y.max())]))

        with torch.no_grad():
            mean_obs = gp.posterior(gp.U)[0].numpy()  # (n,)
        centres = U[used][np.argsort(mean_obs, kind="stable")[: self.options.n_best]]
        decision = self.decision_set(gp)
        if decision == "wide":
            C = self.candidates(model, gp.n + len(pending), centres, rng)
        else:
            C = model.U[: gp.n + len(pending)].numpy()
        acqf = LogKG(model, C)
        u, value = optimize_acqf(acqf, self.dims, rng, centres=centres, exclude=np.concatenate([U, pending]),
                                 options=self.options.optimize)
        return KGSuggestion(u, value, refit, fit_ok, time.process_time() - t0,
                            {"n_candidates": len(C), "noise_ratio": gp.noise_ratio(), "n_model": model.n,
                             "decision_set": decision})

    def suggest(self, U: np.ndarray, losses: Sequence[float | None], rng: np.random.Generator,
                pending: np.ndarray | None = None) -> KGSuggestion | None:
        """The next point for observations ``(U (n, D), losses (n,))`` (``None``/NaN losses are
        failures) with ``pending (p, D)`` running; ``None`` with fewer than 2 usable losses."""
        with torch_threads(self.options.threads):
            return self._suggest(U, losses, rng, pending)
