"""The shared Ray Tune adapter every searcher of this project is built on.

It owns what each searcher would otherwise redo: the space, the trial bookkeeping (pending
trials, observations, learning curves), the mode sign (cores always MINIMISE a loss),
``points_to_evaluate``, warm start, the seeded generator and save/restore.

A subclass implements :meth:`SpaceSearcher.propose` with the observations it finds in
``self.history`` and the running trials in ``self.pending``, and returns flat values
(see :class:`search_algs.space.Space`). The numerical work belongs in ``search_algs/core``,
which knows nothing of Ray.

How outcomes are recorded (the contract cores can rely on):

* ``Observation.loss``: the metric, sign-flipped for ``mode="max"``; ``None`` for a failed
  trial (error, missing/NaN/inf/non-numeric metric). Failed trials are never good results.
* ``Observation.budget``: the ``training_iteration`` of the last result. A trial stopped by
  a scheduler arrives like a finished one (Tune gives no flag); it is *censored* when its
  budget is below the largest budget any completed trial reached. A trial removed while
  paused (``result=None``) after reporting is recorded censored at its last result.
* ``Observation.curve``: ``{training_iteration: loss}`` of every intermediate result, for
  ranking trials at a common milestone.
"""

from __future__ import annotations

import logging
import math
import pickle
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

import numpy as np
from ray.tune.search import Searcher

from search_algs.errors import SpaceError
from search_algs.space import Space

logger = logging.getLogger(__name__)

STATE_VERSION = 1


@dataclass
class Observation:
    """One completed trial, as the cores see it."""

    flat: dict[str, Any]
    loss: float | None
    budget: int | None = None
    curve: dict[int, float] = field(default_factory=dict)
    censored: bool = False

    @property
    def failed(self) -> bool:
        return self.loss is None


def metric_value(result: Mapping | None, metric: str) -> float | None:
    """The metric as a finite float, or ``None`` when it is missing, NaN/inf or not a number."""
    if not result or metric not in result:
        return None
    value = result[metric]
    if isinstance(value, bool):
        return None
    try:
        value = float(value)
    except (TypeError, ValueError):
        return None
    return value if math.isfinite(value) else None


class SpaceSearcher(Searcher):
    """Base class of this project's Ray Tune searchers.

    Args:
        space: anything :meth:`Space.of` accepts. May be left out and given later by Tune
            through ``set_search_properties`` (a non-empty ``param_space``).
        metric, mode: what to optimise; ``mode`` is ``"min"`` or ``"max"``.
        points_to_evaluate: configs to try first, in order (partial configs are completed
            with random draws).
        seed: seeds the one generator every random draw of the searcher comes from.
    """

    def __init__(
        self,
        space: Any = None,
        metric: str | None = None,
        mode: str | None = None,
        points_to_evaluate: Sequence[Mapping] | None = None,
        seed: int | None = None,
    ):
        super().__init__(metric=metric, mode=mode)
        if mode is not None and mode not in ("min", "max"):
            raise ValueError(f"mode must be 'min' or 'max', got {mode!r}; pass mode='min' or mode='max'")
        self.space: Space | None = Space.of(space) if space is not None else None
        self.seed = seed
        self.rng = np.random.default_rng(seed)
        self.history: list[Observation] = []
        self.pending: dict[str, dict[str, Any]] = {}
        self.curves: dict[str, dict[int, float]] = {}
        self._queue: list[Mapping] = list(points_to_evaluate or [])
        self._max_budget = 0

    # ---- to implement ------------------------------------------------------------------

    def propose(self) -> dict[str, Any]:
        """Flat values of the next point to try (subclasses override)."""
        raise NotImplementedError

    # ---- Ray Tune contract -------------------------------------------------------------

    def set_search_properties(self, metric: str | None, mode: str | None, config: dict, **spec) -> bool:
        if self.space is not None and config:
            return False  # our space was given explicitly; refuse a second one
        if metric:
            self._metric = metric
        if mode:
            self._mode = mode
        if config:
            self.space = Space.of(config)
        return True

    def suggest(self, trial_id: str) -> dict | None:
        if self.space is None:
            raise SpaceError(
                f"{type(self).__name__}: no search space; pass space=... or a non-empty param_space"
            )
        if self._metric is None or self._mode is None:
            raise ValueError(
                f"{type(self).__name__}: metric and mode must be set (metric=..., mode='min'|'max')"
            )
        flat = self._next_from_queue() if self._queue else self.propose()
        self.pending[trial_id] = flat
        return self.space.to_config(flat)

    def _next_from_queue(self) -> dict[str, Any]:
        point = self._queue.pop(0)
        flat = self.space.to_flat(_complete(point, self.space, self.rng))
        return flat

    def on_trial_result(self, trial_id: str, result: dict) -> None:
        value = metric_value(result, self._metric)
        step = result.get("training_iteration")
        if value is not None and step is not None:
            self.curves.setdefault(trial_id, {})[int(step)] = self._loss(value)

    def on_trial_complete(self, trial_id: str, result: dict | None = None, error: bool = False) -> None:
        flat = self.pending.pop(trial_id, None)
        curve = self.curves.pop(trial_id, {})
        if flat is None:
            return
        if result is None and not error:
            if curve:  # stopped while paused (ASHA promotion): censored at its last result
                last = max(curve)
                self._record(flat, curve[last], last, curve, censored=True)
            return  # otherwise removed before it ran: nothing was learned
        value = None if error else metric_value(result, self._metric)
        if value is None and not error:
            logger.warning(
                "trial %s completed without a finite '%s' (got %r); recording it as failed",
                trial_id, self._metric, (result or {}).get(self._metric, "<missing>"),
            )
        budget = (result or {}).get("training_iteration")
        self._record(flat, None if value is None else self._loss(value), budget, curve)

    def add_evaluated_point(
        self,
        parameters: dict,
        value: float,
        error: bool = False,
        pruned: bool = False,
        intermediate_values: list[float] | None = None,
    ) -> None:
        """Warm start: record a trial evaluated elsewhere (``value`` in the user's mode)."""
        if self.space is None:
            raise SpaceError(f"{type(self).__name__}: set the space before adding evaluated points")
        flat = self.space.to_flat(parameters)
        loss = None if error else metric_value({"v": value}, "v")
        loss = None if loss is None else self._loss(loss)
        curve = {i + 1: self._loss(v) for i, v in enumerate(intermediate_values or [])
                 if metric_value({"v": v}, "v") is not None}
        budget = len(intermediate_values) if intermediate_values else None
        self._record(flat, loss, budget, curve, censored=pruned)

    def add_evaluated_points(self, points: Sequence[tuple[dict, float]]) -> None:
        for parameters, value in points:
            self.add_evaluated_point(parameters, value)

    def _record(self, flat, loss, budget, curve, censored: bool = False) -> None:
        budget = int(budget) if budget is not None else None
        if budget is not None and budget > self._max_budget:
            self._max_budget = budget
            for obs in self.history:  # a longer trial reveals earlier short ones as censored
                if obs.budget is not None and obs.budget < budget:
                    obs.censored = True
        censored = censored or (budget is not None and budget < self._max_budget)
        self.history.append(Observation(dict(flat), loss, budget, dict(curve), censored))

    def _loss(self, value: float) -> float:
        return value if self._mode == "min" else -value

    # ---- recommendation ----------------------------------------------------------------

    def recommend_flat(self) -> dict[str, Any] | None:
        """Flat values of the point to recommend; here the best completed observation (a
        model-based searcher overrides this, e.g. with the best posterior mean when noisy).
        ``None`` before any trial succeeded."""
        done = [obs for obs in self.history if not obs.failed]
        if not done:
            return None
        uncensored = [obs for obs in done if not obs.censored] or done
        return dict(min(uncensored, key=lambda obs: obs.loss).flat)

    def recommend(self) -> Any:
        """The config to recommend, as the trainable receives it (``None`` before any success)."""
        flat = self.recommend_flat()
        return None if flat is None else self.space.to_config(flat)

    # ---- persistence -------------------------------------------------------------------

    def get_state(self) -> dict:
        return {
            "version": STATE_VERSION,
            "class": type(self).__name__,
            "metric": self._metric,
            "mode": self._mode,
            "space": self.space,
            "seed": self.seed,
            "rng": self.rng.bit_generator.state,
            "history": self.history,
            "pending": self.pending,
            "curves": self.curves,
            "queue": self._queue,
            "max_budget": self._max_budget,
            "extra": self.extra_state(),
        }

    def set_state(self, state: dict) -> None:
        if state.get("class") != type(self).__name__:
            raise ValueError(f"saved state belongs to {state.get('class')}, not {type(self).__name__}")
        self._metric, self._mode = state["metric"], state["mode"]
        self.space, self.seed = state["space"], state["seed"]
        self.rng = np.random.default_rng()
        self.rng.bit_generator.state = state["rng"]
        self.history, self.pending = state["history"], state["pending"]
        self.curves, self._queue = state["curves"], state["queue"]
        self._max_budget = state["max_budget"]
        self.set_extra_state(state["extra"])

    def extra_state(self) -> Any:
        """State a subclass adds to the snapshot (override with :meth:`set_extra_state`)."""
        return None

    def set_extra_state(self, extra: Any) -> None:
        pass

    def save(self, checkpoint_path: str) -> None:
        with open(checkpoint_path, "wb") as f:
            pickle.dump(self.get_state(), f)

    def restore(self, checkpoint_path: str) -> None:
        with open(checkpoint_path, "rb") as f:
            self.set_state(pickle.load(f))


def _complete(point: Mapping, space: Space, rng: np.random.Generator) -> Any:
    """A full config from a possibly partial one: missing values are drawn at random."""
    try:
        space.to_flat(point)
        return point
    except SpaceError:
        return _merge(space.sample(rng), point)


def _merge(base: Any, override: Any) -> Any:
    if isinstance(base, Mapping) and isinstance(override, Mapping):
        out = dict(base)
        for k, v in override.items():
            out[k] = _merge(base.get(k), v) if k in base else v
        return out
    return override
