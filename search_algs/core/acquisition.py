"""Expected improvement, computed in log space: the acquisition core.

torch (float64) only; nothing here knows of Ray. Losses are MINIMISED.

Glossary (shapes in comments use these symbols)
-----------------------------------------------
``m``          query points; ``D`` parameters.
``mu, var``    ``(m,)`` posterior mean and variance of the latent ``f`` at the queries
               (standardised units); ``sigma = sqrt(var)``.
``tau``        the incumbent: the value an improvement is measured from.
``z``          ``(tau - mu) / sigma``.
``h(z)``       ``phi(z) + z Phi(z)`` (standard normal density ``phi``, distribution ``Phi``),
               so that ``EI = E[max(tau - f, 0)] = sigma h(z)``.
``LogEI``      ``log EI = log h(z) + log sigma``.

References
----------
* Ament, Daulton, Eriksson, Balandat, Bakshy, "Unexpected Improvements to Expected
  Improvement for Bayesian Optimization", NeurIPS 2023: EI underflows to exactly 0 (and its
  gradient with it) far from the incumbent, which stalls gradient-based acquisition
  optimisation; ``log h`` computed with the scaled complementary error function
  ``erfcx`` stays finite and smooth there.
* Frazier, "A Tutorial on Bayesian Optimization", arXiv:1807.02811, 2018, section 5
  (noisy evaluations): with noise the best *observed* value is an optimistic, noisy
  incumbent; use the best *posterior mean* at the evaluated points instead, and recommend
  the evaluated point with the best posterior mean.

* Letham, Karrer, Ottoni, Bakshy, "Constrained Bayesian Optimization with Noisy Experiments",
  Bayesian Analysis 14(2), 2019 (noisy EI, NEI): average EI over quasi-Monte-Carlo samples of
  the latent values at the evaluated points, each sample with its own incumbent (their
  minimum) and the query's distribution conditioned on it; the inner EI stays analytic.
  Unlike a plug-in incumbent, this knows that the query and the evaluated points are
  correlated: re-evaluating an evaluated point gains exactly nothing, so the search does not
  keep re-sampling its best region (the failure seen with the plug-in incumbent on noisy
  Hartmann6, BENCHMARKS.md C5).
* Huang, Allen, Notz, Zeng, "Global optimization of stochastic black-box systems via
  sequential kriging meta-models", J. Global Optim. 34, 2006 (augmented EI, AEI): with noise,
  plain EI keeps re-sampling next to its incumbent (the latent mean there is never known
  exactly, so EI stays positive); AEI multiplies EI by ``1 - s_n / sqrt(var + s2_n)``, which
  goes to 0 where the posterior of ``f`` is already as tight as one more noisy observation
  could make it, and measures improvement from the "effective best" evaluated point, the
  least ``mu + c sigma`` (``c = 1``).

Noise handling (``noise=``)
---------------------------
``"none"``: incumbent = best observed standardised loss. ``"noisy"``: incumbent = least
posterior mean over the points the model was conditioned on (or AEI's effective best with
``sigma_weight``), optionally with AEI's factor (``LogEI(augmented=True)``), or :class:`LogNEI`
(no single incumbent: Letham et al.). ``"auto"``: noisy
when the fitted noise variance exceeds ``noise_threshold`` (default 1e-3) times the signal
variance, i.e. when the noise standard deviation is above ~3% of the signal's.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from scipy.stats import norm, qmc

from search_algs.core.gp import DTYPE, GP, VAR_FLOOR, cholesky_jittered

__all__ = ["LogEI", "LogNEI", "log_h", "log_ei", "log_aei_factor", "naive_ei", "resolve_noise", "incumbent", "NOISE_MODES"]

NOISE_MODES = ("auto", "none", "noisy")

_LOG_SQRT_2PI = 0.5 * math.log(2.0 * math.pi)
_HALF_LOG_HALF_PI = 0.5 * math.log(math.pi / 2.0)
_INV_SQRT2 = 1.0 / math.sqrt(2.0)
_LN2 = math.log(2.0)
_Z_MID = -1.0  # below: the erfcx form; above: h(z) directly (h(-1) ~ 0.083, no cancellation)
_Z_TAIL = -200.0  # below: the asymptotic series (see log_h)


def _log1mexp(x: torch.Tensor) -> torch.Tensor:
    """``log(1 - exp(x))`` for ``x < 0`` (Maechler 2012: two forms, each accurate on its side
    of ``-log 2``); each branch sees only inputs it is safe for, so gradients stay finite."""
    near = x.clamp(min=-_LN2, max=-1e-300)
    far = x.clamp(max=-_LN2)
    return torch.where(x > -_LN2, torch.log(-torch.expm1(near)), torch.log1p(-torch.exp(far)))


def log_h(z: torch.Tensor) -> torch.Tensor:
    """``log h(z) = log(phi(z) + z Phi(z))``, finite with finite gradients for every finite ``z``.

    Three branches (each evaluated on inputs clamped to its own range, so an unused branch
    never feeds ``inf``/``NaN`` into the gradient):

    * ``z > -1``: ``h`` directly (no cancellation: ``h(-1) ~ 0.083``);
    * ``-200 <= z <= -1``: ``h(z) = phi(z) (1 - |z| sqrt(pi/2) erfcx(|z| / sqrt 2))``, so
      ``log h = log phi(z) + log1mexp(log|z| + log sqrt(pi/2) + log erfcx(|z| / sqrt 2))``
      (Ament et al. 2023, eq. 9);
    * ``z < -200``: the Mills-ratio series ``h(z) = phi(z) / z^2 (1 - 3/z^2 + 15/z^4 - ...)``,
      whose truncation error there (~1e-14) is below the cancellation error the erfcx form
      would have (~eps z^2). Ament et al. switch at ``-1/sqrt(eps)`` with the first term only.
    """
    z = torch.as_tensor(z, dtype=DTYPE)
    is_up = z > _Z_MID
    is_tail = z < _Z_TAIL
    if bool(is_up.all()):  # fast paths: one branch serves every element
        return _log_h_up(z)
    if not bool(is_up.any()) and not bool(is_tail.any()):
        return _log_h_mid(z)
    return torch.where(is_up, _log_h_up(z.clamp(min=_Z_MID)),
                       torch.where(is_tail, _log_h_tail(z.clamp(max=_Z_TAIL)),
                                   _log_h_mid(z.clamp(min=_Z_TAIL, max=_Z_MID))))


def _log_h_up(z: torch.Tensor) -> torch.Tensor:  # z >= -1
    return torch.log(torch.exp(-0.5 * z * z - _LOG_SQRT_2PI) + z * torch.special.ndtr(z))


def _log_h_mid(z: torch.Tensor) -> torch.Tensor:  # -200 <= z <= -1
    inner = torch.log(-z) + _HALF_LOG_HALF_PI + torch.log(torch.special.erfcx(-z * _INV_SQRT2))
    return -0.5 * z * z - _LOG_SQRT_2PI + _log1mexp(inner)


def _log_h_tail(z: torch.Tensor) -> torch.Tensor:  # z <= -200
    z = z.clamp(min=-1e150)
    w = 1.0 / (z * z)
    return -0.5 * z * z - _LOG_SQRT_2PI + torch.log(w) + torch.log1p(-3.0 * w + 15.0 * w * w)


def log_ei(mean: torch.Tensor, var: torch.Tensor, tau: float | torch.Tensor) -> torch.Tensor:
    """``log E[max(tau - f, 0)]`` for ``f ~ Normal(mean, var)`` (elementwise, any shape)."""
    sigma = torch.sqrt(var)
    return log_h((tau - mean) / sigma) + torch.log(sigma)


def log_aei_factor(var: torch.Tensor, noise_var: float | torch.Tensor) -> torch.Tensor:
    """``log(1 - s_n / sqrt(var + s2_n))``, AEI's factor (Huang et al. 2006), elementwise.

    Written as ``1 - s_n / r = var / (r (r + s_n))`` with ``r = sqrt(var + s2_n)``: no
    cancellation when ``var << s2_n`` (where the factor is ``~ var / (2 s2_n)``), finite for
    every ``var > 0`` (posterior variances are floored at ``VAR_FLOOR``).
    """
    var = torch.as_tensor(var, dtype=DTYPE)
    noise_var = torch.as_tensor(noise_var, dtype=DTYPE)
    r = torch.sqrt(var + noise_var)
    return torch.log(var) - torch.log(r) - torch.log(r + torch.sqrt(noise_var))


def naive_ei(mean: torch.Tensor, var: torch.Tensor, tau: float | torch.Tensor) -> torch.Tensor:
    """The textbook ``(tau - mu) Phi(z) + sigma phi(z)``: a reference for tests (it underflows
    to 0 and loses all precision for very negative ``z``)."""
    sigma = torch.sqrt(var)
    z = (tau - mean) / sigma
    cdf = 0.5 * torch.special.erfc(-z * _INV_SQRT2)  # accurate in the lower tail (torch's ndtr is not)
    return (tau - mean) * cdf + sigma * torch.exp(-0.5 * z * z - _LOG_SQRT_2PI)


def resolve_noise(mode: str, gp: GP, threshold: float = 1e-3) -> bool:
    """Whether to use the noisy incumbent: ``mode`` ``"none"``/``"noisy"`` decide, ``"auto"``
    compares the fitted noise-to-signal variance ratio with ``threshold``."""
    if mode not in NOISE_MODES:
        raise ValueError(f"noise must be one of {NOISE_MODES}, got {mode!r}; use 'auto' to detect it from the fit")
    if mode == "auto":
        return gp.noise_ratio() > threshold
    return mode == "noisy"


def incumbent(gp: GP, noisy: bool, sigma_weight: float = 0.0) -> float:
    """``tau`` for the points ``gp`` was conditioned on (observations and fantasies):
    the least target, or when ``noisy`` the posterior mean at the point with the least
    ``mu + sigma_weight * sigma`` there (0: the least posterior mean; 1: AEI's effective best)."""
    if not noisy:
        return float(gp.y.min())
    with torch.no_grad():
        mean, var = gp.posterior(gp.U)
    if sigma_weight == 0.0:
        return float(mean.min())
    return float(mean[torch.argmin(mean + sigma_weight * var.sqrt())])


class LogEI:
    """``U (m, D) -> log EI (m,)`` under the posterior of ``gp``, improvement over ``tau``;
    with ``augmented`` AEI's factor (Huang et al. 2006) for the noise of ``gp`` is added:
    ``log EI + log(1 - s_n / sqrt(var + s2_n))``."""

    def __init__(self, gp: GP, tau: float, augmented: bool = False):
        if not math.isfinite(tau):
            raise ValueError(f"LogEI: the incumbent must be finite, got {tau!r}")
        self.gp = gp
        self.tau = float(tau)
        self.augmented = bool(augmented)

    def __call__(self, U: torch.Tensor) -> torch.Tensor:
        mean, var = self.gp.posterior(U)
        value = log_ei(mean, var, self.tau)
        if self.augmented:
            value = value + log_aei_factor(var, self.gp.noise_var)
        return value

    def numpy(self, U: np.ndarray) -> np.ndarray:
        """Values without gradients for ``U (m, D)`` as a numpy array ``(m,)``."""
        with torch.no_grad():
            return self(torch.as_tensor(U, dtype=DTYPE)).numpy()


class LogNEI:
    """Noisy expected improvement (Letham et al. 2019), in log space: ``U (m, D) -> (m,)``.

    ``NEI(x) = mean_s EI(x | f_O = f_O^s)`` over ``n_samples`` quasi-Monte-Carlo draws ``f_O^s``
    of the latent values at the ``k`` evaluated points ``O``, where each draw's incumbent is
    ``min_i f_O^s_i`` and ``f(x)`` given the draw is normal with

        mean ``mu_x + w_x . z^s``, variance ``var_x - |w_x|^2``,
        ``w_x = L_O^-1 cov(f_O, f(x))``, ``f_O^s = mu_O + L_O z^s`` (``L_O L_O^T = cov(f_O)``).

    Args:
        gp: the model (``gp.U[:n_observed]`` are the evaluated points; rows after them are
            fantasies of running trials, which the model is conditioned on but which are not
            incumbent candidates).
        rng: the seeded generator of the suggestion (the draws are fixed once, so the
            acquisition is a smooth deterministic function for the gradient search).
        n_observed: how many leading points of ``gp.U`` are real evaluations (default all).
        max_points: ``O`` is the ``max_points`` evaluated points with the least posterior mean
            (the others are practically never a draw's minimum; this bounds the cost at
            ``O(m k)`` per query batch on top of the posterior).
        n_samples: draws of ``f_O`` (a power of two keeps the Sobol sequence balanced).
    """

    def __init__(self, gp: GP, rng: np.random.Generator, n_observed: int | None = None,
                 max_points: int = 32, n_samples: int = 128):
        self.gp = gp
        n_obs = gp.n if n_observed is None else int(n_observed)
        if n_obs < 1:
            raise ValueError("LogNEI: needs at least one evaluated point")
        with torch.no_grad():
            mean_all, _ = gp.posterior(gp.U[:n_obs])
        order = torch.argsort(mean_all)[: max(1, int(max_points))]
        self.U_O = gp.U[:n_obs][order]  # (k, D)
        with torch.no_grad():
            K_O_X = gp.kernel(self.U_O, gp.U)  # (k, n)
            # cov(f_O) = K_OO - K_OX C^-1 K_XO; A = C^-1 K_XO is reused for every query
            self.A = torch.cholesky_solve(K_O_X.T, gp.L)  # (n, k)
            cov_O = gp.kernel(self.U_O, self.U_O) - K_O_X @ self.A  # (k, k)
            cov_O = 0.5 * (cov_O + cov_O.T)
            self.L_O, _ = cholesky_jittered(cov_O + 1e-10 * gp.signal_var * torch.eye(len(order), dtype=DTYPE))
            mu_O = mean_all[order]  # (k,)
        seed = int(rng.integers(2**31 - 1))
        u = qmc.Sobol(d=len(order), scramble=True, seed=seed).random(n_samples)  # (S, k) in (0, 1)
        self.z = torch.as_tensor(norm.ppf(np.clip(u, 1e-10, 1 - 1e-10)), dtype=DTYPE)  # (S, k)
        f_O = mu_O + self.z @ self.L_O.T  # (S, k) draws of the latent values at O
        self.tau = f_O.min(dim=1).values  # (S,) each draw's incumbent
        self.log_n = math.log(n_samples)

    def __call__(self, U: torch.Tensor) -> torch.Tensor:
        mean, var = self.gp.posterior(U)  # (m,)
        cross = self.gp.kernel(U, self.U_O) - self.gp.kernel(U, self.gp.U) @ self.A  # (m, k) cov(f(x), f_O)
        W = torch.linalg.solve_triangular(self.L_O, cross.T, upper=False).T  # (m, k)
        cond_var = (var - (W * W).sum(-1)).clamp_min(VAR_FLOOR)  # (m,)
        cond_mean = mean.unsqueeze(-1) + W @ self.z.T  # (m, S)
        per_draw = log_ei(cond_mean, cond_var.unsqueeze(-1), self.tau)  # (m, S)
        return torch.logsumexp(per_draw, dim=-1) - self.log_n

    def numpy(self, U: np.ndarray) -> np.ndarray:
        """Values without gradients for ``U (m, D)`` as a numpy array ``(m,)``."""
        with torch.no_grad():
            return self(torch.as_tensor(U, dtype=DTYPE)).numpy()


class LogEIPending:
    """``U (m, D) -> log E_y[EI(x | y)] (m,)``: expected improvement of a candidate ``x`` averaged
    over the outcomes ``y`` of the ``p`` running (pending) points, the "fantasies" of Snoek,
    Larochelle and Adams, "Practical Bayesian Optimization of Machine Learning Algorithms",
    NeurIPS 2012 (integrating the acquisition over pending experiments).

    For each of ``S`` fixed quasi-random draws ``z_s (p,)`` the pending latent values are
    ``f_P(s) = mu_P + L_P z_s`` (``L_P`` the Cholesky factor of their joint posterior
    covariance); given them the candidate's latent value is normal with mean
    ``mu_x + l_x . z_s`` and variance ``d2_x = var_x - |l_x|^2`` (``l_x = L_P^-1 cov(P, x)``),
    and what it can still improve on is ``tau_s = min(tau, min_j f_P(s)_j)``. So

        value(x) = log (1/S) sum_s EI(mu_x + l_x . z_s, d2_x; tau_s)

    with EI in closed form per draw (Rao-Blackwellised: only the pending points are sampled,
    the draws are common to every candidate, so the value is smooth in ``x`` and L-BFGS-B
    works on it). Near a running point ``d2_x -> 0`` and the value drops; a candidate far from
    every running point gets plain EI against the expected best of the batch. This is the
    improvement the candidate adds to the running batch, i.e. the increment of BoTorch's and
    Optuna's ``qLogEI`` with the running points fixed, computed analytically per draw.

    Args:
        gp: the model (conditioned on the finished and failed points, not on the pending ones).
        tau: the incumbent (standardised).
        pending: ``(p, D)`` unit vectors of the running points, ``p >= 1``.
        rng: draws the scrambled-Sobol seed.
        n_draws: ``S``, rounded up to a power of two.
    """

    def __init__(self, gp: GP, tau: float, pending: np.ndarray, rng: np.random.Generator, n_draws: int = 64):
        if not math.isfinite(tau):
            raise ValueError(f"LogEIPending: the incumbent must be finite, got {tau!r}")
        self.gp, self.tau = gp, float(tau)
        self.P = torch.as_tensor(np.asarray(pending, dtype=float), dtype=DTYPE).reshape(-1, gp.dim)  # (p, D)
        p = self.P.shape[0]
        if p < 1:
            raise ValueError("LogEIPending: needs at least one pending point; use LogEI without any")
        seed = int(rng.integers(2**31 - 1))
        m = max(1, math.ceil(math.log2(max(2, n_draws))))
        u = qmc.Sobol(d=p, scramble=True, seed=seed).random_base2(m)  # (S, p)
        self.z = torch.as_tensor(norm.ppf(np.clip(u, 1e-10, 1 - 1e-10)), dtype=DTYPE)  # (S, p)
        with torch.no_grad():
            mean_P, _ = gp.posterior(self.P)  # (p,)
            K_PX = gp.kernel(self.P, gp.U)  # (p, n)
            self.V_P = torch.linalg.solve_triangular(gp.L, K_PX.T, upper=False)  # (n, p)
            cov_PP = gp.kernel(self.P, self.P) - self.V_P.T @ self.V_P  # (p, p)
            cov_PP = 0.5 * (cov_PP + cov_PP.T) + VAR_FLOOR * torch.eye(p, dtype=DTYPE)
            self.L_P, _ = cholesky_jittered(cov_PP)  # (p, p)
            f_P = mean_P + self.z @ self.L_P.T  # (S, p)
            self.tau_s = torch.clamp(f_P.min(dim=1).values, max=self.tau)  # (S,)
        self.log_S = math.log(self.z.shape[0])

    def __call__(self, U: torch.Tensor) -> torch.Tensor:
        gp = self.gp
        U = torch.as_tensor(U, dtype=DTYPE)
        Kq = gp.kernel(U, gp.U)  # (m, n)
        mean = Kq @ gp.alpha  # (m,)
        Vq = torch.linalg.solve_triangular(gp.L, Kq.T, upper=False)  # (n, m)
        var = (gp.signal_var - (Vq * Vq).sum(0)).clamp_min(VAR_FLOOR)  # (m,)
        cov_xP = gp.kernel(U, self.P) - Vq.T @ self.V_P  # (m, p)
        l_x = torch.linalg.solve_triangular(self.L_P, cov_xP.T, upper=False).T  # (m, p)
        d2 = (var - (l_x * l_x).sum(-1)).clamp_min(VAR_FLOOR)  # (m,)
        m_s = mean.unsqueeze(-1) + l_x @ self.z.T  # (m, S)
        values = log_ei(m_s, d2.unsqueeze(-1), self.tau_s.unsqueeze(0))  # (m, S)
        return torch.logsumexp(values, dim=-1) - self.log_S

    def numpy(self, U: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            return self(torch.as_tensor(U, dtype=DTYPE)).numpy()
