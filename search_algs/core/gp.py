"""Gaussian-process regression for Bayesian optimisation: the numerical core.

torch (float64), numpy and scipy only; nothing here knows of Ray or of the search-space
classes. Inputs are unit vectors as :class:`search_algs.space.Space` encodes them, with the
categorical levels and the inactive (``NaN``) coordinates turned into model features here.

Glossary (shapes in comments use these symbols)
-----------------------------------------------
``n``        observations in the model (completed trials, then any fantasies).
``m``        query points.
``D``        parameters (length of a unit vector ``u``).
``U``        ``(n, D)`` unit vectors, ``NaN`` where a parameter is inactive.
``Z``        ``(n, D)`` model features of ``U`` (:func:`features`).
``levels``   ``(D,)`` number of choices of each categorical parameter, 0 for numeric ones.
``y``        ``(n,)`` standardised targets ``(loss - mean) / std``: smaller is better.
``theta``    ``(D + 2,)`` log-hyperparameters ``[log l_1 .. log l_D, log s2_f, log s2_n]``.
``l``        lengthscales; ``s2_f`` signal variance; ``s2_n`` noise variance (standardised
             units, so ``s2_n / s2_f`` is the fraction of variance the model calls noise).
``s``        scaled squared distance ``sum_numeric ((a_j - b_j) / l_j)^2
             + sum_categorical [a_j != b_j] / l_j^2``.
``k(a, b)``  ``s2_f * M52(s)``, ``M52(s) = (1 + sqrt(5 s) + 5 s / 3) exp(-sqrt(5 s))``
             (Matern-5/2 with ARD lengthscales; a Hamming distance on categoricals).
``C``        ``(n, n)`` ``K + s2_n I``; ``L`` its lower Cholesky factor (plus jitter);
``alpha``    ``(n,)`` ``C^-1 y``.

Design choices
--------------
* **Categoricals** enter through a Hamming term (Optuna's GP does the same): two different
  choices are one lengthscale apart whichever they are, so the encoding is never ordinal.
* **Inactive parameters** (``NaN``: a conditional parameter whose parent takes another
  choice) are imputed with a fixed value: ``0.5`` for numeric ones, a dedicated extra level
  (``levels[j]``) for categorical ones. Two points where a parameter is inactive therefore
  agree on it, as they should (it had no effect on either). A point where it is active and
  one where it is not always differ in the parent choice, which the Hamming term already
  separates; 0.5 keeps the extra numeric distance between them at most 0.5.
* **Priors** (MAP fit, on ``theta``):

  - ``log l_j ~ Normal(-1 + log(D) / 2, 1)``: the dimension scaling of Hvarfner, Hellsten
    and Nardi, "Vanilla Bayesian Optimization Performs Great in High Dimensions", ICML 2024
    (the prior median grows like ``sqrt(D)``, so a high-dimensional cube does not look
    like unrelated points), recentred for tuning-sized problems. Their centre ``sqrt(2)``
    (median ``l = 4.1 sqrt(D)``, scale ``sqrt(3)``) let the fit explain bumpy objectives
    as noise along near-irrelevant dimensions (``l ~ 10`` on the unit cube) and measured
    worse here: Hartmann6 at 40 evaluations, median regret over 10 seeds 0.09 with it,
    0.011 with this prior (median ``l`` 0.52 at ``D = 2``, 0.90 at 6, 1.6 at 20); Branin
    at 30 evaluations 0.003 with either.
  - ``log s2_f ~ Normal(0, 1)``: targets are standardised, so about one.
  - ``log s2_n ~ Normal(-8, 2)`` with ``s2_n >= 1e-6``: tuning objectives are often nearly
    deterministic; a wide prior centred low lets the data decide (bounds below).
* **Fit**: L-BFGS-B (scipy) on ``theta`` within box bounds, gradients by torch autograd,
  float64 throughout, from several starts (the caller's choice: the suggestion loop uses
  the previous fit, and every few observations also the prior's centre and
  :meth:`GPPrior.short_theta`); the best MAP value wins. When every start fails (Cholesky
  breaks down even with jitter, non-finite objective) the caller's fallback (previous
  hyperparameters, else the defaults) is used and a warning is logged: :func:`fit_map`
  never returns ``NaN``.
* **Cholesky with growing jitter**: ``1e-9, 1e-8, ..., 1e-3`` times the mean diagonal
  added until the factorisation succeeds; :class:`GPNumericalError` beyond that.
"""

from __future__ import annotations

import logging
import math
from dataclasses import asdict, dataclass
from typing import Callable, Sequence

import numpy as np
import scipy.optimize
import torch

logger = logging.getLogger(__name__)

DTYPE = torch.float64
VAR_FLOOR = 1e-12  # posterior variances are clamped here (standardised units)
_JITTERS = (1e-9, 1e-8, 1e-7, 1e-6, 1e-5, 1e-4, 1e-3)  # relative to the mean diagonal

__all__ = [
    "GP",
    "GPNumericalError",
    "GPPrior",
    "FitResult",
    "features",
    "fit_map",
    "standardise",
    "half_rank_warp",
    "model_targets",
    "OUTPUT_WARPS",
]


class GPNumericalError(RuntimeError):
    """The kernel matrix could not be factorised, even with the largest jitter."""


# ---- hyperparameters ---------------------------------------------------------------------


@dataclass(frozen=True)
class GPPrior:
    """Independent normal priors on the log-hyperparameters, and their box bounds.

    ``lengthscale_loc + log(D) / 2`` is the mean of every ``log l_j`` (Hvarfner et al. 2024).
    """

    lengthscale_loc: float = -1.0
    lengthscale_scale: float = 1.0
    signal_loc: float = 0.0
    signal_scale: float = 1.0
    noise_loc: float = -8.0
    noise_scale: float = 2.0
    min_noise: float = 1e-6
    lengthscale_bounds: tuple[float, float] = (1e-3, 1e3)
    signal_bounds: tuple[float, float] = (1e-2, 1e2)
    max_noise: float = 10.0

    def validate(self) -> None:
        for name in ("lengthscale_scale", "signal_scale", "noise_scale", "min_noise", "max_noise"):
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
                raise ValueError(f"GPPrior: '{name}' must be a positive finite number, got {value!r}")
        for name in ("lengthscale_bounds", "signal_bounds"):
            lo, hi = getattr(self, name)
            if not (0 < lo < hi and math.isfinite(hi)):
                raise ValueError(f"GPPrior: '{name}' must be (low, high) with 0 < low < high, got {(lo, hi)!r}")
        if self.min_noise >= self.max_noise:
            raise ValueError(
                f"GPPrior: min_noise must be below max_noise, got {self.min_noise} >= {self.max_noise}"
            )

    def as_dict(self) -> dict:
        return asdict(self)

    def loc(self, dim: int) -> np.ndarray:  # (D + 2,)
        """Prior means of ``theta`` (also the default starting point of a fit)."""
        ls = self.lengthscale_loc + 0.5 * math.log(max(dim, 1))
        return np.array([ls] * dim + [self.signal_loc, self.noise_loc], dtype=float)

    def scale(self, dim: int) -> np.ndarray:  # (D + 2,)
        return np.array([self.lengthscale_scale] * dim + [self.signal_scale, self.noise_scale], dtype=float)

    def bounds(self, dim: int) -> list[tuple[float, float]]:
        ls = tuple(math.log(b) for b in self.lengthscale_bounds)
        sf = tuple(math.log(b) for b in self.signal_bounds)
        sn = (math.log(self.min_noise), math.log(self.max_noise))
        return [ls] * dim + [sf, sn]

    def default_theta(self, dim: int) -> np.ndarray:  # (D + 2,)
        return self.clip(self.loc(dim))

    def short_theta(self, dim: int) -> np.ndarray:  # (D + 2,)
        """A second start: lengthscales 1.5 prior standard deviations below the centre.
        The marginal likelihood of bumpy objectives often has an "all noise" local optimum
        (long lengthscales, noise ~ signal variance) next to the better, wigglier one;
        starting from long lengthscales the fit can settle in the first (seen on Hartmann6
        at 30 points), from short ones it reaches the second."""
        theta = self.loc(dim)
        theta[:-2] -= 1.5 * self.lengthscale_scale
        return self.clip(theta)

    def clip(self, theta: np.ndarray) -> np.ndarray:
        lo, hi = np.array(self.bounds(len(theta) - 2)).T
        return np.clip(np.asarray(theta, dtype=float), lo, hi)

    def log_density(self, theta: torch.Tensor) -> torch.Tensor:  # scalar
        """Log prior density of ``theta`` (up to a constant)."""
        dim = theta.shape[-1] - 2
        loc = torch.as_tensor(self.loc(dim), dtype=DTYPE)
        scale = torch.as_tensor(self.scale(dim), dtype=DTYPE)
        return -0.5 * (((theta - loc) / scale) ** 2).sum()

    def log_density_fn(self, dim: int):
        """:meth:`log_density` with its constants built once (used inside the fit loop)."""
        loc = torch.as_tensor(self.loc(dim), dtype=DTYPE)
        inv_scale = 1.0 / torch.as_tensor(self.scale(dim), dtype=DTYPE)
        return lambda theta: -0.5 * (((theta - loc) * inv_scale) ** 2).sum()


def unpack(theta: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(1 / l^2 (D,), s2_f (), s2_n ())`` from ``theta``."""
    return torch.exp(-2.0 * theta[:-2]), torch.exp(theta[-2]), torch.exp(theta[-1])


# ---- kernel ------------------------------------------------------------------------------


class _Matern52(torch.autograd.Function):
    """``M52(s)`` as a function of the squared scaled distance ``s``.

    Written in ``s`` (not ``sqrt(s)``) with a hand-made derivative
    ``dM52/ds = -(5/6) (1 + sqrt(5 s)) exp(-sqrt(5 s))``, which is finite at ``s = 0``, where
    autograd through ``sqrt`` would give ``0 * inf``.
    """

    @staticmethod
    def forward(ctx, s: torch.Tensor) -> torch.Tensor:
        r = torch.sqrt(5.0 * s)
        e = torch.exp(-r)
        ctx.save_for_backward(-(5.0 / 6.0) * (1.0 + r) * e)
        return (1.0 + r + (5.0 / 3.0) * s) * e

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        (deriv,) = ctx.saved_tensors
        return grad * deriv


def matern52(s: torch.Tensor) -> torch.Tensor:
    return _Matern52.apply(s.clamp_min(0.0))


def features(U: torch.Tensor, levels: torch.Tensor) -> torch.Tensor:
    """Model features of unit vectors: ``(m, D) -> (m, D)``.

    Numeric coordinates pass through (gradients flow), inactive ones become 0.5; a
    categorical coordinate becomes its level index ``floor(u * n_choices)``, inactive ones the
    extra level ``n_choices``.
    """
    missing = torch.isnan(U)  # (m, D)
    is_cat = levels > 0  # (D,)
    if not bool(is_cat.any()) and not bool(missing.any()):
        return U  # all numeric and active: nothing to do (the common case, and cheaper to differentiate)
    numeric = torch.where(missing, torch.full_like(U, 0.5), U)
    safe = torch.nan_to_num(U, nan=0.0).detach()
    level = torch.minimum(torch.floor(safe * levels), (levels - 1).clamp_min(0).to(DTYPE))
    level = torch.where(missing, levels.to(DTYPE).expand_as(U), level)
    return torch.where(is_cat, level, numeric)


def squared_differences(A: torch.Tensor, B: torch.Tensor, levels: torch.Tensor) -> torch.Tensor:
    """Per-parameter squared differences of features: ``(a, D), (b, D) -> (a, b, D)``
    (``[a_j != b_j]`` on categorical parameters). Without categorical parameters only the
    squares are formed (the same values; a third of the work of the general form, which
    dominated building a 1000-point model, issue #21)."""
    diff = A.unsqueeze(-2) - B.unsqueeze(-3)  # (a, b, D)
    is_cat = levels > 0  # (D,)
    if not bool(is_cat.any()):
        return diff * diff
    return torch.where(is_cat, (diff != 0).to(DTYPE), diff * diff)


def cholesky_jittered(C: torch.Tensor) -> tuple[torch.Tensor, float]:
    """Lower Cholesky factor of ``C (n, n)``, adding growing jitter when needed.

    Returns ``(L (n, n), jitter)``. Raises :class:`GPNumericalError` when even the largest
    jitter fails (or ``C`` is not finite).
    """
    if not bool(torch.isfinite(C).all()):
        raise GPNumericalError("kernel matrix has non-finite entries")
    L, info = torch.linalg.cholesky_ex(C)
    if int(info) == 0:
        return L, 0.0
    scale = float(C.diagonal().mean().detach())
    eye = torch.eye(C.shape[-1], dtype=C.dtype)
    for rel in _JITTERS:
        jitter = rel * scale
        L, info = torch.linalg.cholesky_ex(C + jitter * eye)
        if int(info) == 0:
            logger.debug("Cholesky needed jitter %.1e (n=%d)", jitter, C.shape[-1])
            return L, jitter
    raise GPNumericalError(
        f"Cholesky of the {C.shape[-1]}x{C.shape[-1]} kernel matrix failed even with jitter "
        f"{_JITTERS[-1]:.0e} x mean diagonal"
    )


# ---- the model ---------------------------------------------------------------------------


class GP:
    """Exact GP posterior for fixed hyperparameters.

    Args:
        U: ``(n, D)`` unit vectors (``NaN`` where inactive).
        y: ``(n,)`` standardised targets.
        theta: ``(D + 2,)`` log-hyperparameters.
        levels: ``(D,)`` categorical choice counts, 0 for numeric parameters.
    """

    def __init__(self, U: np.ndarray | torch.Tensor, y: np.ndarray | torch.Tensor,
                 theta: np.ndarray | torch.Tensor, levels: np.ndarray | torch.Tensor):
        self.U = torch.as_tensor(U, dtype=DTYPE).reshape(-1, len(levels))  # (n, D)
        self.y = torch.as_tensor(y, dtype=DTYPE).reshape(-1)  # (n,)
        if self.U.shape[0] != self.y.shape[0]:
            raise ValueError(f"GP: {self.U.shape[0]} inputs but {self.y.shape[0]} targets")
        if not bool(torch.isfinite(self.y).all()):
            raise ValueError("GP: targets must be finite; drop failed observations before building the model")
        self.levels = torch.as_tensor(np.asarray(levels), dtype=torch.long)  # (D,)
        self.theta = torch.as_tensor(theta, dtype=DTYPE).detach().clone()  # (D + 2,)
        self.inv_l2, self.signal_var, self.noise_var = unpack(self.theta)
        self.Z = features(self.U, self.levels)  # (n, D)
        C = self._kernel(self.Z, self.Z)  # (n, n)
        C = C + self.noise_var * torch.eye(len(self.y), dtype=DTYPE)
        self.L, self.jitter = cholesky_jittered(C)  # (n, n)
        self.alpha = torch.cholesky_solve(self.y.unsqueeze(-1), self.L).squeeze(-1)  # (n,)

    @property
    def n(self) -> int:
        return int(self.y.shape[0])

    @property
    def dim(self) -> int:
        return int(self.levels.shape[0])

    def _kernel(self, Za: torch.Tensor, Zb: torch.Tensor) -> torch.Tensor:  # (a, b)
        s = squared_differences(Za, Zb, self.levels) @ self.inv_l2
        return self.signal_var * matern52(s)

    def kernel(self, Ua: torch.Tensor, Ub: torch.Tensor) -> torch.Tensor:
        """Prior covariance ``k(Ua (a, D), Ub (b, D)) -> (a, b)``."""
        return self._kernel(features(Ua, self.levels), features(Ub, self.levels))

    def posterior(self, Uq: torch.Tensor, chunk: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Posterior mean ``(m,)`` and variance ``(m,)`` of the latent ``f`` (no noise) at
        ``Uq (m, D)``; differentiable in the numeric coordinates of ``Uq``."""
        Uq = torch.as_tensor(Uq, dtype=DTYPE)
        if chunk is None:
            chunk = max(1, 2_000_000 // max(1, self.n * self.dim))
        if Uq.shape[0] > chunk:
            parts = [self.posterior(Uq[i:i + chunk], chunk) for i in range(0, Uq.shape[0], chunk)]
            return torch.cat([p[0] for p in parts]), torch.cat([p[1] for p in parts])
        Kq = self._kernel(features(Uq, self.levels), self.Z)  # (m, n)
        mean = Kq @ self.alpha  # (m,)
        V = torch.linalg.solve_triangular(self.L, Kq.T, upper=False)  # (n, m)
        var = (self.signal_var - (V * V).sum(0)).clamp_min(VAR_FLOOR)  # (m,)
        return mean, var

    def condition(self, U_new: np.ndarray | torch.Tensor, y_new: np.ndarray | torch.Tensor) -> "GP":
        """A model with ``(U_new (p, D), y_new (p,))`` appended, same hyperparameters
        (fantasies of running or failed trials)."""
        U_new = torch.as_tensor(U_new, dtype=DTYPE).reshape(-1, self.dim)
        if U_new.shape[0] == 0:
            return self
        return GP(torch.cat([self.U, U_new]), torch.cat([self.y, torch.as_tensor(y_new, dtype=DTYPE)]),
                  self.theta, self.levels)

    def noise_ratio(self) -> float:
        """``s2_n / s2_f``: the share of variance the fit attributes to noise."""
        return float(self.noise_var / self.signal_var)

    def lengthscales(self) -> np.ndarray:  # (D,)
        return np.exp(self.theta[:-2].numpy())


# ---- fitting -----------------------------------------------------------------------------


def standardise(values: Sequence[float] | np.ndarray) -> tuple[np.ndarray, float, float]:
    """``(y, mean, std)`` with ``y = (values - mean) / std``; ``std = 1`` when all are equal."""
    v = np.asarray(values, dtype=float)
    if v.size == 0 or not np.all(np.isfinite(v)):
        raise ValueError(f"standardise: need finite values, got {v!r}")
    mean = float(v.mean())
    std = float(v.std())
    if not std > 1e-12 * max(1.0, abs(mean)):
        std = 1.0
    return (v - mean) / std, mean, std


OUTPUT_WARPS = ("half_rank", "none")


def half_rank_warp(values: Sequence[float] | np.ndarray) -> np.ndarray:
    """Losses with their worse half tamed: ``(n,) -> (n,)``, order kept (ties stay ties).

    Values at or below the median ``m`` keep their scale. A value above it is replaced by
    ``m + s * Phi^-1(p)``: ``p`` its mid-rank quantile among all ``n`` values (above 1/2),
    ``s`` the root mean square distance of the better half from ``m`` -- the worse half becomes
    the mirror of a normal fitted to the better half, whatever its outliers. The idea is the
    half-rank output warping of Google Vizier (Song et al., "The Vizier Gaussian Process
    Bandit Algorithm", 2024); the formula here is ours.

    Why: tuning objectives have a few diverged configurations (HPOLib: MSEs up to 4e7 beside
    an optimum of 3e-5; NAS-Bench-201: degenerate cells 13 points worse than the rest). Plain
    standardisation gives them nearly all the variance, so the model sees the good region as
    flat, fits lengthscales to the outliers and calls the real noise negligible
    (BENCHMARKS.md, "One trace": 78% of the variance in 2 of 13 points).
    """
    from scipy.special import ndtri
    from scipy.stats import rankdata

    v = np.asarray(values, dtype=float)
    n = v.size
    if n < 3 or not np.all(np.isfinite(v)):
        return v.copy()
    m = float(np.median(v))
    good = v[v <= m]
    s = float(np.sqrt(np.mean((good - m) ** 2)))
    if not s > 0:  # the better half is flat: nothing to calibrate the tail against
        return v.copy()
    p = (rankdata(v, method="average") - 0.5) / n  # (n,) mid-rank quantiles in (0, 1)
    out = v.copy()
    bad = v > m
    out[bad] = m + s * ndtri(np.maximum(p[bad], 0.5))
    return out


def model_targets(values: Sequence[float] | np.ndarray, warp: str = "none") -> np.ndarray:
    """The GP's targets ``y (n,)`` from losses: warped (``warp``, see :func:`half_rank_warp`)
    and standardised."""
    if warp not in OUTPUT_WARPS:
        raise ValueError(f"model_targets: 'warp' must be one of {OUTPUT_WARPS}, got {warp!r}")
    v = np.asarray(values, dtype=float)
    return standardise(half_rank_warp(v) if warp == "half_rank" else v)[0]


def neg_log_posterior(theta: torch.Tensor, sqd: torch.Tensor, y: torch.Tensor,
                      log_prior: Callable[[torch.Tensor], torch.Tensor]) -> torch.Tensor:
    """``-log p(y | theta) - log p(theta)`` (up to a constant) for ``sqd (n, n, D)``."""
    inv_l2, signal_var, noise_var = unpack(theta)
    n = y.shape[0]
    C = signal_var * matern52(sqd @ inv_l2)  # (n, n)
    C = C + torch.diag_embed(noise_var.expand(n))
    L, _ = cholesky_jittered(C)
    a = torch.linalg.solve_triangular(L, y.unsqueeze(-1), upper=False).squeeze(-1)  # (n,)
    nll = 0.5 * (a @ a) + torch.log(L.diagonal()).sum() + 0.5 * n * math.log(2 * math.pi)
    return nll - log_prior(theta)


@dataclass
class FitResult:
    """Outcome of :func:`fit_map`: ``theta`` is always finite (the fallback when ``ok`` is False)."""

    theta: np.ndarray  # (D + 2,)
    value: float  # negative log posterior at theta (inf when unknown)
    ok: bool
    message: str
    n_evals: int


def fit_map(
    U: np.ndarray,
    y: np.ndarray,
    levels: np.ndarray,
    prior: GPPrior,
    starts: Sequence[np.ndarray],
    fallback: np.ndarray | None = None,
    maxiter: int = 200,
) -> FitResult:
    """MAP estimate of ``theta`` from ``(U (n, D), y (n,))`` by L-BFGS-B from each of ``starts``.

    The lowest negative log posterior over the starts wins. When no start succeeds, a
    warning is logged and ``fallback`` (else the prior's centre) is returned with
    ``ok=False``.
    """
    dim = len(levels)
    levels_t = torch.as_tensor(np.asarray(levels), dtype=torch.long)
    Z = features(torch.as_tensor(U, dtype=DTYPE).reshape(-1, dim), levels_t)  # (n, D)
    sqd = squared_differences(Z, Z, levels_t)  # (n, n, D)
    y_t = torch.as_tensor(y, dtype=DTYPE)  # (n,)
    bounds = prior.bounds(dim)
    log_prior = prior.log_density_fn(dim)
    n_evals = 0

    def objective(x: np.ndarray) -> tuple[float, np.ndarray]:
        nonlocal n_evals
        n_evals += 1
        theta = torch.tensor(x, dtype=DTYPE, requires_grad=True)
        value = neg_log_posterior(theta, sqd, y_t, log_prior)
        (grad,) = torch.autograd.grad(value, theta)
        value_f, grad_np = float(value.detach()), grad.numpy().copy()
        if not (math.isfinite(value_f) and np.all(np.isfinite(grad_np))):
            raise GPNumericalError(f"non-finite objective {value_f} or gradient at theta={x.tolist()}")
        return value_f, grad_np

    best: FitResult | None = None
    errors: list[str] = []
    for start in starts:
        x0 = prior.clip(start)
        try:
            res = scipy.optimize.minimize(objective, x0, jac=True, method="L-BFGS-B", bounds=bounds,
                                          options={"maxiter": maxiter, "gtol": 1e-5})
            value = float(res.fun)
            if not (math.isfinite(value) and np.all(np.isfinite(res.x))):
                raise GPNumericalError(f"L-BFGS-B ended at a non-finite point ({res.message})")
        except GPNumericalError as exc:
            errors.append(str(exc))
            continue
        if best is None or value < best.value:
            best = FitResult(np.asarray(res.x, dtype=float), value, True, str(res.message), 0)
    if best is not None:
        best.n_evals = n_evals
        return best
    theta = prior.default_theta(dim) if fallback is None else prior.clip(fallback)
    which = "the default" if fallback is None else "the previous"
    logger.warning(
        "GP hyperparameter fit failed from all %d start(s) on n=%d points (%s); using %s "
        "hyperparameters instead", len(starts), len(y), "; ".join(errors) or "no start given", which,
    )
    return FitResult(theta, math.inf, False, "; ".join(errors), n_evals)
