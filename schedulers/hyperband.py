"""Synchronous Hyperband (Li et al. 2018) for Ray Tune: the adapter around
:class:`schedulers.core.hyperband.Hyperband` (the policy and its rules are documented there).

Trials pause at each rung until every member of their bracket has arrived; the best
``1/reduction_factor`` are then resumed from their checkpoint, the others stopped. So, as with
``ASHAScheduler(variant="promotion")``, a function trainable must report a checkpoint at (at
least) every rung and load ``tune.get_checkpoint()`` at start. Everything else (metric/mode,
results, seed, state file, resume, promotion of paused trials) is :mod:`schedulers.base`.
"""

from __future__ import annotations

import os
from typing import Mapping

from ray.tune.experiment import Trial

from schedulers.base import TuneorchScheduler
from schedulers.core.decisions import Action
from schedulers.core.hyperband import Hyperband, HyperbandConfigError, HyperbandStateError, validate_options

__all__ = ["HyperbandScheduler", "HyperbandConfigError", "HyperbandStateError"]


class HyperbandScheduler(TuneorchScheduler):
    """Synchronous Hyperband. Arguments as Ray's ``HyperBandScheduler`` (``time_attr``, ``metric``,
    ``mode``, ``max_t=81``, ``reduction_factor=3``, ``stop_last_trials=True``) plus
    ``grace_period`` (the smallest budget, default 1), ``seed`` and ``state_path``."""

    NAME = "HyperbandScheduler"
    STATE_FILE = "hyperband-state.json"
    CONFIG_ERROR = HyperbandConfigError
    STATE_ERROR = HyperbandStateError
    HOLDS_PAUSED = True
    _supports_buffered_results = False  # a pause must act on the report that reached the rung

    def __init__(self, time_attr: str = "training_iteration", metric: str | None = None,
                 mode: str | None = None, max_t: float = 81, reduction_factor: float = 3,
                 stop_last_trials: bool = True, *, grace_period: float = 1, seed: int | None = None,
                 state_path: str | os.PathLike | None = None):
        super().__init__(time_attr, metric, mode, seed=seed, state_path=state_path)
        validate_options(grace_period, reduction_factor, max_t, mode or "min")
        if stop_last_trials is not True:
            raise HyperbandConfigError("HyperbandScheduler: stop_last_trials=False is not supported: a "
                                       "bracket's budget ends at max_t; use ASHAScheduler(stop_last_trials="
                                       "False) to let the best trials run on")
        self._max_t, self._eta, self._grace_period = max_t, reduction_factor, grace_period
        self._load_now()

    def _build_core(self, tune_controller) -> Hyperband:
        return Hyperband(self._grace_period, self._eta, self._max_t, self._mode, self._seed,
                         context={"metric": self._metric, "time_attr": self._time_attr})

    def _on_result(self, tune_controller, trial: Trial, result: Mapping, t: float, value: float) -> str:
        decision = self._core.decide(trial.trial_id, t, value)
        if decision.action is Action.PAUSE:
            self._check_can_resume(trial, result, t)
        self._persist()
        return self._tune(decision)

    def stopped_at_rung(self, trial_id: str) -> float | None:
        return None if self._core is None else self._core.stopped_at(trial_id)

    def debug_string(self) -> str:
        head = f"Using synchronous Hyperband (eta={self._eta}, max_t={self._max_t})"
        return head if self._core is None else f"{head}: {self._core.summary()}"
