"""Knowledge-gradient Bayesian optimisation, as a Ray Tune searcher.

A thin adapter: :class:`search_algs.gp_ei.GPEISearch` with the KG core swapped in (same
encoding of the space, bookkeeping and persistence): it turns ``self.history`` and ``self.pending`` into unit-vector arrays, asks the core
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

from typing import Any

from search_algs.core.gp import GPNumericalError
from search_algs.core.kg import KGOptions, KnowledgeGradient
from search_algs.gp_ei import GPEISearch


class KGSearch(GPEISearch):
    """Knowledge gradient: a Matern-5/2 GP (GP-EI's model and fit), the exact discrete KG
    (Frazier, Powell and Dayanik 2009) maximised with exact gradients, kriging believer for
    parallel trials. Made for noisy objectives: it values an evaluation by how much it is
    expected to improve the best posterior mean, not the best noisy observation.

    Args:
        space, metric, mode, points_to_evaluate, seed: see :class:`SpaceSearcher`.
        n_startup: suggestions drawn at random (``Space.sample_flat``) before the model is
            used; counts finished and running trials. Default ``min(10, 2 * d + 1)`` for ``d``
            parameters. The model also needs two finished trials with a finite metric.
        noise: how :meth:`recommend` chooses: ``"auto"`` (default; the least posterior mean among the
            evaluated points when the fit finds noise, else the best observed), ``"noisy"``
            (always the posterior mean) or ``"none"`` (always the best observed).
        options: every other setting of the core, a :class:`KGOptions` (its ``noise`` is
            replaced by the ``noise`` argument).

    Give Tune a :class:`~ray.tune.search.ConcurrencyLimiter` around this searcher to run
    several trials at once (without one Tune keeps only one pending trial).
    """

    core_class = KnowledgeGradient
    options_class = KGOptions
    label = "KG"
    model_errors = (GPNumericalError, FloatingPointError)

    @staticmethod
    def _describe(suggestion: Any) -> str:
        return f"log KG {suggestion.log_kg:.3g} over {suggestion.info['n_candidates']} candidates"
