"""Gaussian-process Bayesian optimisation with (log) expected improvement, as a Ray Tune searcher.

A thin adapter: it describes the space to the core as :class:`~search_algs.core.dims.Dim`
tuples (``Space.dims()``), turns ``self.history`` and ``self.pending`` into unit-vector arrays, asks the core
(:class:`search_algs.core.gp_ei.GPEI`, where every modelling choice is documented) for the
next unit vector and decodes it. Bookkeeping, ``points_to_evaluate``, warm start and
save/restore come from :class:`search_algs.base.SpaceSearcher`.
"""

from __future__ import annotations

import contextlib
import logging
import math
from typing import Any, Mapping, Sequence

import numpy as np
from scipy.stats import qmc

from search_algs.base import SpaceSearcher
from search_algs.core.gp import GPNumericalError
from search_algs.core.gp_ei import GPEI, GPEIOptions
from search_algs.space import Space
from search_algs.tpe import encoded_history

logger = logging.getLogger(__name__)

STARTUP_DESIGNS = ("random", "sobol")


def _blas_single_thread():
    """One BLAS thread while suggesting: scipy's L-BFGS-B calls BLAS on tiny vectors, and with
    OpenBLAS's default threads on a busy 2-core machine each call waits for the others
    (measured 0.54 s -> 0.17 s per suggestion at n = 30). threadpoolctl comes with
    scikit-learn, a dependency of this project; without it nothing is limited."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # pragma: no cover - scikit-learn brings it
        return contextlib.nullcontext()
    return threadpool_limits(limits=1, user_api="blas")


class GPEISearch(SpaceSearcher):
    """GP-EI: a Matern-5/2 GP with MAP hyperparameters, LogEI, kriging believer for parallelism
    (options: half-rank output warping, EI averaged over the running trials' outcomes).

    Args:
        space, metric, mode, points_to_evaluate, seed: see :class:`SpaceSearcher`.
        n_startup: suggestions drawn at random from the space (``Space.sample_flat``) before
            the model is used; counts finished and running trials. Default
            ``min(10, 2 * d + 1)`` for ``d`` parameters. The model also needs two finished
            trials with a finite metric; until then draws stay random.
        startup_design: how the start-up points are drawn: ``"random"`` (default: independent
            uniform draws, ``Space.sample_flat``) or ``"sobol"`` (the first points of a scrambled
            Sobol sequence seeded by the searcher's generator: even coverage; measured no better
            over 50 seeds on Branin and Hartmann6, BENCHMARKS.md C5).
        noise: ``"auto"`` (default: the noisy rules below when the fitted noise-to-signal
            ratio passes ``noise_threshold``), ``"none"`` (incumbent and recommendation = best
            observed) or ``"noisy"`` (incumbent = least posterior mean at the evaluated points,
            recommendation = the evaluated point with the least posterior mean; see
            :mod:`search_algs.core.acquisition`). On the real tabular problems the
            posterior-mean recommendation picked a worse point than the best observation more
            often than a better one (BENCHMARKS.md, 2026-12-07 section).
        options: every other setting of the core, a :class:`GPEIOptions` or a mapping of some
            of its fields (nested parts as mappings too, e.g. ``{"noisy_acqf": "nei", "prior":
            {"noise_loc": -6}}``, as ``search_options`` in YAML give it); its ``noise`` is
            replaced by the ``noise`` argument. For noisy objectives ``noise="noisy"`` with
            ``{"noisy_acqf": "nei"}`` measured best (BENCHMARKS.md C5).

    Cost at any history size (issue #21): the model holds at most ``max_model_points`` (1000)
    observations and its hyperparameters are fitted on at most ``max_fit_points`` (200) of them
    (the best half and an even thinning of the rest), and the history is encoded once per
    observation, so a suggestion stays under a second at 10,000 trials; the first one after a
    restore or a warm start fits from scratch (a few seconds at most). See
    :mod:`search_algs.core.gp_ei`.

    Give Tune a :class:`~ray.tune.search.ConcurrencyLimiter` around this searcher to run
    several trials at once (without one Tune keeps only one pending trial); running trials are
    fantasised at their posterior mean (``options={"pending": "fantasies"}``: EI averaged over
    their possible outcomes), so concurrent suggestions differ.

    Subclasses that share the GP and its fit but acquire differently (:class:`KGSearch`) swap
    the core through the class attributes below.
    """

    core_class: type = GPEI
    options_class: type = GPEIOptions
    label = "GP-EI"
    model_errors: tuple = (GPNumericalError,)
    default_startup_design = "random"
    default_noise = "auto"

    def __init__(
        self,
        space: Any = None,
        metric: str | None = None,
        mode: str | None = None,
        points_to_evaluate: Sequence[Mapping] | None = None,
        seed: int | None = None,
        *,
        n_startup: int | None = None,
        startup_design: str | None = None,
        noise: str | None = None,
        options: Any = None,
    ):
        me, opts = type(self).__name__, self.options_class
        startup_design = self.default_startup_design if startup_design is None else startup_design
        if startup_design not in STARTUP_DESIGNS:
            raise ValueError(
                f"{me}: 'startup_design' must be one of {STARTUP_DESIGNS}, got {startup_design!r}; "
                f"use 'random' (the default) or 'sobol' (even coverage)"
            )
        if n_startup is not None and (isinstance(n_startup, bool) or not isinstance(n_startup, (int, np.integer))
                                      or n_startup < 0):
            raise ValueError(
                f"{me}: 'n_startup' must be an int >= 0 or None, got {n_startup!r}; "
                f"use e.g. 10, or None for min(10, 2 * d + 1)"
            )
        if isinstance(options, Mapping):  # from YAML / search_options: fields, nested parts as dicts
            options = self._options_from_mapping(options)
        if options is not None and not isinstance(options, opts):
            raise ValueError(
                f"{me}: 'options' must be a {opts.__name__} or a mapping of its fields, got "
                f"{type(options).__name__}; e.g. {{'noisy_acqf': 'nei', 'prior': {{'noise_loc': -6}}}}"
            )
        base = options or opts()
        noise = self.default_noise if noise is None else noise
        self.options = opts.from_dict({**base.as_dict(), "noise": noise})
        self.options.validate()
        self.n_startup = None if n_startup is None else int(n_startup)
        self.startup_design = startup_design
        self._design_seed: int | None = None  # drawn from the searcher's generator at first use
        super().__init__(space=space, metric=metric, mode=mode,
                         points_to_evaluate=points_to_evaluate, seed=seed)
        self._core: Any = None
        self._core_space: Space | None = None
        self._core_state: dict | None = None  # restored state, loaded into the next core built
        self._encoded = None  # unit vectors of the history, a cache (search_algs.tpe.encoded_history)

    @classmethod
    def _options_from_mapping(cls, given: Mapping) -> Any:
        """``options_class`` from a mapping of some of its fields (the rest default); a nested
        part (``prior``, ``optimize``) is itself a mapping of some of its fields."""
        me = cls.__name__
        merged = cls.options_class().as_dict()
        unknown = sorted(set(given) - set(merged))
        if unknown:
            raise ValueError(f"{me}: unknown 'options' field(s) {unknown}; known: {sorted(merged)}")
        for key, value in given.items():
            if isinstance(merged[key], dict):
                if not isinstance(value, Mapping):
                    raise ValueError(f"{me}: 'options.{key}' must be a mapping of its fields, got {value!r}")
                bad = sorted(set(value) - set(merged[key]))
                if bad:
                    raise ValueError(f"{me}: unknown 'options.{key}' field(s) {bad}; known: {sorted(merged[key])}")
                merged[key] = {**merged[key], **value}
            else:
                merged[key] = value
        return cls.options_class.from_dict(merged)

    # ---- the core --------------------------------------------------------------------------

    def startup(self) -> int:
        if self.n_startup is not None:
            return self.n_startup
        return min(10, 2 * self.space.dim + 1)

    def _model(self) -> Any:
        if self._core is None or self._core_space is not self.space:
            self._core, self._core_space = self.core_class(self.space.dims(), self.options), self.space
            if self._core_state is not None:
                self._core.load_state(self._core_state)
                self._core_state = None
        return self._core

    def _arrays(self) -> tuple[np.ndarray, list, np.ndarray]:
        space = self.space
        pending = np.array([space.encode_flat(flat) for flat in self.pending.values()]).reshape(-1, space.dim)
        return self._encoded_history().copy(), [obs.loss for obs in self.history], pending

    def _encoded_history(self) -> np.ndarray:
        return encoded_history(self)  # TPE's cache of encoded observations

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        state["_encoded"] = None  # a cache: rebuilt from the history on the next suggestion
        return state

    def startup_point(self, k: int) -> dict[str, Any]:
        """Flat values of the ``k``-th start-up point (``k`` counts finished and running trials,
        ``points_to_evaluate`` included)."""
        if self.startup_design == "random":
            return self.space.sample_flat(self.rng)
        if self._design_seed is None:
            self._design_seed = int(self.rng.integers(2**31 - 1))
        size = max(2, self.startup())
        design = qmc.Sobol(d=self.space.dim, scramble=True, seed=self._design_seed).random_base2(
            math.ceil(math.log2(size)))  # (2^m, D): a power of two keeps Sobol's balance
        if k >= len(design):  # more trials than the design (a restore with other options)
            return self.space.sample_flat(self.rng)
        return self.space.decode_unit(design[k])

    def propose(self) -> dict[str, Any]:
        started = len(self.history) + len(self.pending)
        if started < self.startup():
            return self.startup_point(started)
        U, losses, pending = self._arrays()
        try:
            with _blas_single_thread():
                suggestion = self._model().suggest(U, losses, self.rng, pending=pending)
        except self.model_errors as exc:
            logger.warning("%s: the model or the acquisition broke down (%s); proposing a random point",
                           self.label, exc)
            return self.space.sample_flat(self.rng)
        if suggestion is None:
            logger.info("%s: fewer than 2 trials with a finite metric so far; proposing a random point", self.label)
            return self.space.sample_flat(self.rng)
        logger.debug("%s suggestion: %s, refit=%s, %.2f s", self.label, self._describe(suggestion),
                     suggestion.refit, suggestion.seconds)
        return self.space.decode_unit(suggestion.u)

    @staticmethod
    def _describe(suggestion: Any) -> str:
        return f"log EI {suggestion.log_ei:.3g}, noisy={suggestion.noisy}"

    def recommend_flat(self) -> dict[str, Any] | None:
        """Flat values of the trial to recommend: the best observed, or when the objective
        looks noisy the one with the least posterior mean (``None`` before any success)."""
        if not self.history:
            return None
        U, losses, _ = self._arrays()
        with _blas_single_thread():
            i = self._model().recommend(U, losses)
        return None if i is None else dict(self.history[i].flat)

    # ---- persistence: options and the warm-start hyperparameters travel with the snapshot -----

    def extra_state(self) -> Any:
        core = self._core.state() if self._core is not None else self._core_state
        return {"options": self.options.as_dict(), "n_startup": self.n_startup, "core": core,
                "startup_design": self.startup_design, "design_seed": self._design_seed}

    def set_extra_state(self, extra: Any) -> None:
        if extra:
            self.options = self.options_class.from_dict(extra["options"])
            self.n_startup = extra["n_startup"]
            self.startup_design = extra.get("startup_design", "random")  # snapshots before it existed
            self._design_seed = extra.get("design_seed")
            self._core_state = extra.get("core")
        self._core = None
        self._encoded = None
