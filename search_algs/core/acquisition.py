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
``sigma_weight``), optionally with AEI's factor (``LogEI(augmented=True)``). ``"auto"``: noisy
when the fitted noise variance exceeds ``noise_threshold`` (default 1e-3) times the signal
variance, i.e. when the noise standard deviation is above ~3% of the signal's.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from search_algs.core.gp import DTYPE, GP

__all__ = ["LogEI", "log_h", "log_ei", "log_aei_factor", "naive_ei", "resolve_noise", "incumbent", "NOISE_MODES"]

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
