"""GP-EI, the policy: fit the GP, fantasise running and failed trials, build (log) EI, and
hand it to the acquisition optimiser (:mod:`search_algs.core.optimizer`).

torch (float64), numpy and scipy only; nothing here knows of Ray. The adapter
(``search_algs/gp_ei.py``) describes the space as a tuple of :class:`~search_algs.core.dims.Dim`
and hands in unit vectors; :class:`GPEI` fits the model (:mod:`search_algs.core.gp`), builds
LogEI (:mod:`search_algs.core.acquisition`) and maximises it with
:func:`~search_algs.core.optimizer.optimize_acqf`.

Glossary: as :mod:`search_algs.core.optimizer` (``D``, ``n``, ``p``, ``q``, ``u``).

The suggestion step (:class:`GPEI`)
-----------------------------------
* Targets (``output_warp``): the losses the model sees are warped, then standardised
  (:func:`search_algs.core.gp.model_targets`). ``"none"`` (default) is plain standardisation;
  ``"half_rank"`` keeps the better half
  of the losses and maps the worse half onto the mirror of a normal fitted to the better half
  (order kept), so a few diverged configurations cannot take the variance, the lengthscales
  and the noise estimate with them. Measured (BENCHMARKS.md, 2026-12-07 section): far lower
  regret on HPOLib and NAS-Bench-201 (diverged rows), worse on Branin and Hartmann6 (Hartmann6
  significantly), so it is opt-in. Observed losses, the incumbent and the recommendation keep their order.
* Failed observations (loss ``None``/NaN) are left out of the hyperparameter fit and of the
  standardisation, and conditioned on afterwards as fantasies at the *worst* observed
  (standardised) loss, so EI drops around them and they are not proposed again.
* Censored observations (stopped early by a scheduler) are modelled with the loss they
  reached: the scheduler stopped them because they looked worse than their peers, so that
  pessimistic value is informative; dropping them would send the search back into regions
  the scheduler already rejected.
* Running trials (``pending``): ``"believer"`` (default) or ``"fantasies"``, which averages EI over ``n_fantasies``
  joint draws of the running trials' outcomes (:class:`~search_algs.core.acquisition.LogEIPending`,
  Snoek et al. 2012): a candidate is worth what it can add to the running batch, so one near a
  running trial is worth little and one far away is judged against the batch's likely best.
  Measured at 4 in flight on Hartmann6 (BENCHMARKS.md, 2026-12-07): the believer had the lower
  regret in 4 of 5 seeds at 0.64x the CPU, so it stays the default.
  ``"believer"`` (kriging believer; AEI and NEI always use it):
  each running trial is fantasised at its posterior mean and the model conditioned on it
  (hyperparameters unchanged); the variance there collapses, so EI near it drops, and the
  fantasies count as observations for the incumbent.
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
* Bounded cost at any history size (``max_fit_points``, default 200; issue #21): beyond that
  many modelled observations the hyperparameters are fitted (MAP) on a subset of that size,
  chosen from the model's points by the same rule (:func:`thin_subset`: the best half and an
  even thinning of the rest in arrival order, deterministic), and the GP with those
  hyperparameters is then conditioned on every modelled point (one Cholesky). A fit costs
  ``O(n^3)`` per iteration: at 1000 points a refit (50 iterations) took 4.7 CPU s and the first
  fit after a warm start 12.4 s, on 200 points ~0.1 s. At or below ``max_fit_points`` nothing
  changes (every stored sample-efficiency result ran at most 100 evaluations). ``None`` fits on
  every modelled observation. Measured: BENCHMARKS.md, "Suggestion cost by history size".
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
import time
from dataclasses import asdict, dataclass, field
from typing import Any, Sequence

import numpy as np
import torch

from search_algs.core.acquisition import NOISE_MODES, LogEI, LogEIPending, LogNEI, incumbent, resolve_noise
from search_algs.core.dims import Dim
from search_algs.core.gp import DTYPE, GP, OUTPUT_WARPS, GPNumericalError, GPPrior, fit_map, model_targets
from search_algs.core.optimizer import OptimizeOptions, levels_of, optimize_acqf

logger = logging.getLogger(__name__)

__all__ = ["GPEIOptions", "GPEI", "Suggestion", "thin_subset", "torch_threads"]

NOISY_ACQFS = ("ei", "aei", "nei")
PENDING_RULES = ("fantasies", "believer")


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
    pending: str = "believer"  # running trials: "believer" (kriging believer) or "fantasies" (EI averaged)
    n_fantasies: int = 64  # draws of the running trials' outcomes (rounded up to a power of two)
    output_warp: str = "none"  # "none" (plain standardisation) or "half_rank" (the worse half tamed)
    noisy_acqf: str = "ei"  # when noisy: "ei" (plug-in incumbent), "aei" (augmented EI), "nei" (Letham et al.)
    refit_all_until: int = 100
    refit_every: int = 10
    fit_maxiter: int = 200
    fit_maxiter_large: int = 50
    restart_every: int = 5  # fit also from the prior's starting points every this many observations
    n_best: int = 5  # best observations whose perturbations seed the acquisition search
    max_model_points: int | None = 1000  # model at most this many observations (see model_subset)
    max_fit_points: int | None = 200  # fit the hyperparameters on at most this many of them (thin_subset)
    threads: int | None = 1  # torch threads while suggesting (None: leave torch's setting)
    prior: GPPrior = field(default_factory=GPPrior)
    optimize: OptimizeOptions = field(default_factory=OptimizeOptions)

    def validate(self) -> None:
        if self.noise not in NOISE_MODES:
            raise ValueError(
                f"GP-EI: 'noise' must be one of {NOISE_MODES}, got {self.noise!r}; use 'auto' to detect it"
            )
        if self.pending not in PENDING_RULES:
            raise ValueError(
                f"GP-EI: 'pending' must be one of {PENDING_RULES}, got {self.pending!r}; use 'believer' "
                f"(default: kriging believer) or 'fantasies' (EI averaged over the running trials' outcomes)"
            )
        if self.output_warp not in OUTPUT_WARPS:
            raise ValueError(
                f"GP-EI: 'output_warp' must be one of {OUTPUT_WARPS}, got {self.output_warp!r}; "
                f"use 'none' (default: plain standardisation) or 'half_rank'"
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
                f"{self.label}: 'max_model_points' must be None or an int >= 4, got {self.max_model_points!r}; "
                f"use e.g. 1000, or None to model every observation"
            )
        if self.max_fit_points is not None and (
                isinstance(self.max_fit_points, bool) or not isinstance(self.max_fit_points, (int, np.integer))
                or self.max_fit_points < 4):
            raise ValueError(
                f"{self.label}: 'max_fit_points' must be None or an int >= 4, got {self.max_fit_points!r}; "
                f"use e.g. 200 (the default), or None to fit the hyperparameters on every modelled observation"
            )
        for name, low in (("refit_all_until", 0), ("refit_every", 1), ("fit_maxiter", 1),
                          ("fit_maxiter_large", 1), ("restart_every", 1), ("n_best", 1), ("n_fantasies", 1)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
                raise ValueError(f"GP-EI: '{name}' must be an int >= {low}, got {value!r}")
        if self.threads is not None and (isinstance(self.threads, bool) or not isinstance(self.threads, int)
                                         or self.threads < 1):
            raise ValueError(f"GP-EI: 'threads' must be None or an int >= 1, got {self.threads!r}")
        self.prior.validate()
        self.optimize.validate()

    @property
    def label(self) -> str:
        return "GP-EI"

    def as_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "GPEIOptions":
        d = dict(d)
        d["prior"] = GPPrior(**{k: tuple(v) if isinstance(v, list) else v for k, v in d["prior"].items()})
        d["optimize"] = OptimizeOptions(**d["optimize"])
        return cls(**d)


def thin_subset(values: np.ndarray, ok: np.ndarray, cap: int | None) -> np.ndarray:
    """Mask ``(n,)`` of at most ``cap`` of the usable (``ok``) points: all of them when there
    are at most ``cap``; else the ``cap // 2`` with the least ``values`` (ties: the older
    first) and ``cap - cap // 2`` of the other usable ones evenly spaced in arrival order (the
    oldest and the newest of them included). Deterministic: no random draw.

    Args:
        values: ``(n,)`` losses or targets (lower is better; only the ``ok`` ones are read).
        ok: ``(n,)`` which points may be chosen.
        cap: the most points kept; ``None`` keeps every usable one.
    """
    ok = np.asarray(ok, dtype=bool)
    idx = np.flatnonzero(ok)
    if cap is None or len(idx) <= cap:
        return ok.copy()
    order = idx[np.argsort(np.asarray(values, dtype=float)[idx], kind="stable")]
    best = order[: cap // 2]
    rest = np.sort(order[cap // 2:])
    keep = rest[np.linspace(0, len(rest) - 1, cap - len(best)).round().astype(np.int64)]
    mask = np.zeros(len(ok), dtype=bool)
    mask[best] = True
    mask[keep] = True
    return mask


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
        draws: suggesting and recommending see the same subset (:func:`thin_subset`)."""
        cap = self.options.max_model_points
        if cap is None or int(np.count_nonzero(ok)) <= cap:
            return ok
        return thin_subset(loss, ok, cap)

    def fit_subset(self, y: np.ndarray) -> np.ndarray:
        """Mask ``(n,)`` of the modelled points ``y (n,)`` the hyperparameters are fitted on:
        all of them, or beyond ``max_fit_points`` a subset of that size by the rule of
        :meth:`model_subset` (:func:`thin_subset`; the least targets are the least losses)."""
        return thin_subset(y, np.ones(len(y), dtype=bool), self.options.max_fit_points)

    def fit(self, U: np.ndarray, y: np.ndarray, force: bool = False,
            n_seen: int | None = None) -> tuple[GP, bool, bool]:
        """The model of ``(U (n, D), y (n,))``: returns ``(gp, refitted, fit_ok)``.
        ``n_seen``: observations so far when the model holds a subset of them (the refit
        schedule counts these; default ``n``). A refit sees at most ``max_fit_points`` of the
        points (:meth:`fit_subset`); the GP is conditioned on all ``n``."""
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
            sub = self.fit_subset(y)
            result = fit_map(U[sub], y[sub], self.levels, prior, starts, fallback=warm,
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
        y = model_targets(loss[used], self.options.output_warp)
        gp, refit, fit_ok = self.fit(U[used], y, n_seen=int(ok.sum()))
        noisy = resolve_noise(self.options.noise, gp, self.options.noise_threshold)

        pending = np.zeros((0, D)) if pending is None else np.asarray(pending, dtype=float).reshape(-1, D)
        failed = U[~ok]
        augmented = noisy and self.options.noisy_acqf == "aei"
        nei = noisy and self.options.noisy_acqf == "nei"
        # running trials: averaged over their outcomes (fantasies) where the acquisition allows
        # it, else the kriging believer (conditioned at their posterior mean)
        integrate = self.options.pending == "fantasies" and len(pending) > 0 and not (augmented or nei)
        believed = np.zeros((0, D)) if integrate else pending
        model = gp
        if len(believed) or len(failed):
            with torch.no_grad():
                fantasy = gp.posterior(torch.as_tensor(believed, dtype=DTYPE))[0].numpy() if len(believed) \
                    else np.zeros(0)
            y_new = np.concatenate([fantasy, np.full(len(failed), y.max())])
            model = gp.condition(np.concatenate([believed, failed]), y_new)
        n_real_pending = gp.n + len(believed)
        if nei:
            acqf = LogNEI(model, rng, n_observed=gp.n)
            tau = float(acqf.tau.mean())
        else:
            if noisy:
                tau = incumbent(model, noisy=True, sigma_weight=1.0 if augmented else 0.0)
            else:
                tau = float(model.y[:n_real_pending].min())
            if integrate:
                acqf = LogEIPending(model, tau, pending, rng, n_draws=self.options.n_fantasies)
            else:
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
        y = model_targets(loss[used], self.options.output_warp)
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

