"""Knowledge-gradient Bayesian optimisation, as a Ray Tune searcher.

A thin adapter, built like GP-EI's (:mod:`search_algs.gp_ei`, whose encoding of the space it
reuses): it turns ``self.history`` and ``self.pending`` into unit-vector arrays, asks the core
(:class:`search_algs.core.kg.KnowledgeGradient`, where every modelling choice is documented) for
the next unit vector and decodes it. Bookkeeping, ``points_to_evaluate``, warm start
(``add_evaluated_point``) and save/restore come from :class:`search_algs.base.SpaceSearcher`.

How outcomes enter the model (see :mod:`search_algs.core.kg`):

* failed trials (error, missing or non-finite metric) are left out of the fit and conditioned on
  at the worst observed loss, so KG drops around them; they are never recommended;
* censored trials (stopped early by a scheduler) count with the loss they reached;
* running trials are fantasised at their posterior mean (kriging believer), so concurrent
  suggestions differ; observed and running configurations are never suggested again.
"""

from __future__ import annotations

import logging
from typing import Any, Mapping, Sequence

import numpy as np

from search_algs.base import SpaceSearcher
from search_algs.core.gp import GPNumericalError
from search_algs.core.kg import KGOptions, KnowledgeGradient
from search_algs.gp_ei import _blas_single_thread, dims_of
from search_algs.space import Space

logger = logging.getLogger(__name__)


class KGSearch(SpaceSearcher):
    """Knowledge gradient: a Matern-5/2 GP (GP-EI's model and fit), the exact discrete KG
    (Frazier, Powell and Dayanik 2009) maximised with exact gradients, kriging believer for
    parallel trials. Made for noisy objectives: it values an evaluation by how much it is
    expected to improve the best posterior mean, not the best noisy observation.

    Args:
        space, metric, mode, points_to_evaluate, seed: see :class:`SpaceSearcher`.
        n_startup: suggestions drawn at random (``Space.sample_flat``) before the model is
            used; counts finished and running trials. Default ``min(10, 2 * d + 1)`` for ``d``
            parameters. The model also needs two finished trials with a finite metric.
        noise: how :meth:`recommend` chooses: ``"auto"`` (the least posterior mean among the
            evaluated points when the fit finds noise, else the best observed), ``"noisy"``
            (always the posterior mean) or ``"none"`` (always the best observed).
        options: every other setting of the core, a :class:`KGOptions` (its ``noise`` is
            replaced by the ``noise`` argument).

    Give Tune a :class:`~ray.tune.search.ConcurrencyLimiter` around this searcher to run
    several trials at once (without one Tune keeps only one pending trial).
    """

    def __init__(
        self,
        space: Any = None,
        metric: str | None = None,
        mode: str | None = None,
        points_to_evaluate: Sequence[Mapping] | None = None,
        seed: int | None = None,
        *,
        n_startup: int | None = None,
        noise: str = "auto",
        options: KGOptions | None = None,
    ):
        if n_startup is not None and (isinstance(n_startup, bool) or not isinstance(n_startup, (int, np.integer))
                                      or n_startup < 0):
            raise ValueError(
                f"KGSearch: 'n_startup' must be an int >= 0 or None, got {n_startup!r}; "
                f"use e.g. 10, or None for min(10, 2 * d + 1)"
            )
        if options is not None and not isinstance(options, KGOptions):
            raise ValueError(
                f"KGSearch: 'options' must be a KGOptions, got {type(options).__name__}; "
                f"build one with search_algs.core.kg.KGOptions(...)"
            )
        base = options or KGOptions()
        self.options = KGOptions.from_dict({**base.as_dict(), "noise": noise})
        self.options.validate()
        self.n_startup = None if n_startup is None else int(n_startup)
        super().__init__(space=space, metric=metric, mode=mode,
                         points_to_evaluate=points_to_evaluate, seed=seed)
        self._core: KnowledgeGradient | None = None
        self._core_space: Space | None = None
        self._core_state: dict | None = None  # restored state, loaded into the next core built

    # ---- the core --------------------------------------------------------------------------

    def startup(self) -> int:
        if self.n_startup is not None:
            return self.n_startup
        return min(10, 2 * self.space.dim + 1)

    def _kg(self) -> KnowledgeGradient:
        if self._core is None or self._core_space is not self.space:
            self._core, self._core_space = KnowledgeGradient(dims_of(self.space), self.options), self.space
            if self._core_state is not None:
                self._core.load_state(self._core_state)
                self._core_state = None
        return self._core

    def _arrays(self) -> tuple[np.ndarray, list, np.ndarray]:
        space = self.space
        U = np.array([space.encode_flat(obs.flat) for obs in self.history]).reshape(-1, space.dim)
        pending = np.array([space.encode_flat(flat) for flat in self.pending.values()]).reshape(-1, space.dim)
        return U, [obs.loss for obs in self.history], pending

    def propose(self) -> dict[str, Any]:
        if len(self.history) + len(self.pending) < self.startup():
            return self.space.sample_flat(self.rng)
        U, losses, pending = self._arrays()
        try:
            with _blas_single_thread():
                suggestion = self._kg().suggest(U, losses, self.rng, pending=pending)
        except (GPNumericalError, FloatingPointError) as exc:
            logger.warning("KG: the model or the acquisition broke down (%s); proposing a random point", exc)
            return self.space.sample_flat(self.rng)
        if suggestion is None:
            logger.info("KG: fewer than 2 trials with a finite metric so far; proposing a random point")
            return self.space.sample_flat(self.rng)
        logger.debug("KG suggestion: log KG %.3g over %d candidates, refit=%s, %.2f s", suggestion.log_kg,
                     suggestion.info["n_candidates"], suggestion.refit, suggestion.seconds)
        return self.space.decode_unit(suggestion.u)

    def recommend_flat(self) -> dict[str, Any] | None:
        """Flat values of the trial to recommend (see ``noise``); ``None`` before any success."""
        if not self.history:
            return None
        U, losses, _ = self._arrays()
        with _blas_single_thread():
            i = self._kg().recommend(U, losses)
        return None if i is None else dict(self.history[i].flat)

    # ---- persistence: options and the warm-start hyperparameters travel with the snapshot -----

    def extra_state(self) -> Any:
        core = self._core.state() if self._core is not None else self._core_state
        return {"options": self.options.as_dict(), "n_startup": self.n_startup, "core": core}

    def set_extra_state(self, extra: Any) -> None:
        if extra:
            self.options = KGOptions.from_dict(extra["options"])
            self.n_startup = extra["n_startup"]
            self._core_state = extra.get("core")
        self._core = None
