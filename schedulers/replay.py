"""Replay a config schedule: every trial changes its config at given steps, continuing from
its OWN checkpoint (no cloning, no search).

What for: a PBT trial's result is the product of a *schedule* of hyperparameters
(:meth:`schedulers.pbt.PBTScheduler.config_schedule`: ``[(t0, config0), (t1, config1), ...]``,
config ``k`` applying to the steps after ``t_k``). Re-training that schedule from scratch on
other seeds (``orchestrator.held_out``) needs a scheduler that switches a running trial's
config at exactly ``t_k``. Each trial starts with ``config0`` (the caller puts it in Tune's
``param_space``); at its report at ``t_k`` the trial is paused (Tune saves it: a function
trainable's save is the checkpoint of that report), its config is replaced by ``config_k``
merged over its current one (keys the schedule does not name, e.g. the seed, are kept), and
it restarts from that checkpoint with the new config. The Ray internal this needs
(``Trial.set_config``) is in :mod:`schedulers._ray_private`.

Exactness: the switch is exact when the trial reports at ``t_k`` with a checkpoint (a
function trainable reports one: ``should_checkpoint`` in the result; a class ``Trainable``
is saved on pause anyway). Otherwise the trial switches at its first checkpointed report
after ``t_k``; :meth:`ReplayScheduler.switches` records planned and actual steps, and
:meth:`ReplayScheduler.exact` says whether every switch was on time.
"""

from __future__ import annotations

import copy
import math
import numbers
from typing import Any, Mapping, Sequence

from ray.tune.experiment import Trial
from ray.tune.result import SHOULD_CHECKPOINT
from ray.tune.schedulers import FIFOScheduler, TrialScheduler

from schedulers import _ray_private
from schedulers._results import result_number
from search_algs.errors import TuneorchError

__all__ = ["ReplayScheduler", "ReplayConfigError", "merge_config"]


class ReplayConfigError(TuneorchError, ValueError):
    """The schedule or an option of :class:`ReplayScheduler` is invalid."""


def merge_config(base: Any, new: Any) -> Any:
    """``new`` over ``base``, recursively for nested dicts; keys only ``base`` has are kept."""
    if isinstance(base, Mapping) and isinstance(new, Mapping):
        out = {k: copy.deepcopy(v) for k, v in base.items()}
        for k, v in new.items():
            out[k] = merge_config(base.get(k), v)
        return out
    return copy.deepcopy(new)


class ReplayScheduler(FIFOScheduler):
    """Switch every trial's config at the steps of ``schedule``.

    Args:
        schedule: ``[(t1, config1), (t2, config2), ...]``, strictly increasing ``t`` > 0:
            after its report at ``t_k`` a trial goes on with ``config_k`` merged over its
            config. (The first config, applying from the start, is the trial's own.) An
            entry at ``t = 0`` is refused: put that config in the trial's config instead.
        time_attr: the result key ``t`` is measured in (numeric, increasing).
    """

    _supports_buffered_results = False  # a switch must act on the report at t_k

    def __init__(self, schedule: Sequence[tuple[float, Mapping]], time_attr: str = "training_iteration"):
        super().__init__()
        if not isinstance(time_attr, str) or not time_attr:
            raise ReplayConfigError(f"ReplayScheduler: time_attr must be a non-empty result key, got "
                                    f"{time_attr!r}; pass e.g. time_attr='training_iteration'")
        if isinstance(schedule, (str, bytes, Mapping)) or not isinstance(schedule, Sequence):
            raise ReplayConfigError(f"ReplayScheduler: schedule must be a list of (t, config) pairs, got "
                                    f"{type(schedule).__name__}; pass e.g. [(4, {{'lr': 0.01}})]")
        entries, last = [], 0.0
        for k, entry in enumerate(schedule):
            if not (isinstance(entry, Sequence) and len(entry) == 2 and isinstance(entry[1], Mapping)):
                raise ReplayConfigError(f"ReplayScheduler: schedule[{k}] must be a (t, config) pair with a "
                                        f"dict config, got {entry!r}")
            t = entry[0]
            if isinstance(t, bool) or not isinstance(t, numbers.Real) or not math.isfinite(t) or t <= last:
                raise ReplayConfigError(
                    f"ReplayScheduler: schedule[{k}] has t={t!r}; steps must be finite numbers > 0, "
                    f"strictly increasing (previous {last:g}); drop the entry at t=0 (it is the "
                    f"trial's starting config) and sort the rest")
            entries.append((float(t), dict(entry[1])))
            last = float(t)
        self._schedule = entries
        self._time_attr = time_attr
        self._next: dict[str, int] = {}  # trial id -> index of its next switch
        self._pending: dict[str, int] = {}  # trial id -> switch to apply once it is paused
        self._switches: dict[str, list[tuple[float, float]]] = {}  # trial id -> [(planned, actual)]

    @property
    def schedule(self) -> list[tuple[float, dict]]:
        return [(t, dict(c)) for t, c in self._schedule]

    def switches(self) -> dict[str, list[tuple[float, float]]]:
        """``{trial_id: [(planned t_k, actual t), ...]}`` of the switches made so far."""
        return {tid: list(s) for tid, s in self._switches.items()}

    def exact(self) -> bool:
        """Whether every switch made so far happened at its planned step."""
        return all(planned == actual for s in self._switches.values() for planned, actual in s)

    # ---- Tune contract -------------------------------------------------------------------

    def on_trial_add(self, tune_controller, trial: Trial) -> None:
        self._next.setdefault(trial.trial_id, 0)

    def on_trial_result(self, tune_controller, trial: Trial, result: dict) -> str:
        tid = trial.trial_id
        k = self._next.setdefault(tid, 0)
        if k >= len(self._schedule) or tid in self._pending or self._time_attr not in result:
            return TrialScheduler.CONTINUE
        t = result_number("ReplayScheduler", result, self._time_attr, "time_attr", tid, allow_nonfinite=False)
        if t < self._schedule[k][0]:
            return TrialScheduler.CONTINUE
        if _ray_private.is_function_trainable(trial) and not result.get(SHOULD_CHECKPOINT):
            return TrialScheduler.CONTINUE  # no checkpoint of this step to continue from: wait
        while k + 1 < len(self._schedule) and self._schedule[k + 1][0] <= t:
            self._switches.setdefault(tid, []).append((self._schedule[k][0], math.nan))  # skipped
            k += 1
        self._pending[tid] = k
        self._switches.setdefault(tid, []).append((self._schedule[k][0], t))
        return TrialScheduler.PAUSE  # Tune saves the trial; it restarts from this step

    def choose_trial_to_run(self, tune_controller) -> Trial | None:
        for trial in tune_controller.get_trials():
            k = self._pending.get(trial.trial_id)
            if k is not None and trial.status == Trial.PAUSED:
                config = merge_config(trial.config, self._schedule[k][1])
                tag = f"{(trial.experiment_tag or '').split('@replay', 1)[0]}@replay{k + 1}"
                _ray_private.set_config(trial, config, tag)
                del self._pending[trial.trial_id]
                self._next[trial.trial_id] = k + 1
        return super().choose_trial_to_run(tune_controller)

    def on_trial_complete(self, tune_controller, trial: Trial, result: dict) -> None:
        self._pending.pop(trial.trial_id, None)

    def on_trial_error(self, tune_controller, trial: Trial) -> None:
        self._pending.pop(trial.trial_id, None)

    def on_trial_remove(self, tune_controller, trial: Trial) -> None:
        self._pending.pop(trial.trial_id, None)

    def debug_string(self) -> str:
        return f"Replaying a config schedule of {len(self._schedule)} switches ({self._time_attr})"
