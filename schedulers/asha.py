"""Ray Tune adapter for the ASHA policy of :mod:`schedulers.core.asha`.

The policy (rungs, brackets, rounding, NaN rule, persistence format) is documented and
implemented there, without Ray. This file only translates Tune's hooks into policy events and
the returned actions into Tune decisions, and keeps the policy's state on disk.

Persistence. Tune never calls a scheduler's ``save``/``restore`` (ray issue 30838), so after
``Tuner.restore`` a scheduler would come back with the rung records it had when the Tuner was
built (empty). This scheduler writes its whole state as JSON after every change (atomically:
temporary file + ``os.replace``) and reloads it at its first hook call in a process:

* ``state_path`` given: that file (the orchestrator passes one inside the experiment folder);
  an existing file is loaded, so pass a fresh path for a new experiment.
* otherwise: ``asha_state.json`` in the experiment's driver staging folder
  (``trial.storage.experiment_driver_staging_path``). Tune uploads that folder to the
  experiment directory with every experiment snapshot, and on resume downloads its ``.json``
  files back before it re-adds the trials, so the file follows the experiment to any
  ``storage_path`` (local, NFS, S3).

Records are keyed by ``trial.trial_id``, which Tune keeps for a retried trial and for a
trial resumed with ``ResumeConfig(unfinished=RESUME)`` (the default). A trial restarted
with ``RESTART`` gets a new id: its old records stay in the rungs under the old id.

Promotion variant limits. A paused trial is resumed from its checkpoint, so the trainable
must checkpoint at every rung: a function trainable reports one with
``tune.report(metrics, checkpoint=...)`` on (at least) each report that reaches a rung; a
class ``Trainable`` is checkpointed by Tune when it is paused. At a PAUSE the adapter checks:
no checkpoint at all raises :class:`PromotionNeedsCheckpointError`; an older checkpoint only
warns (the trial will repeat the steps since then, and its records at rungs it passed keep
their first decision). On resume, Tune re-queues paused trials as PENDING; the adapter marks
those the policy still holds as PAUSED again in ``on_trial_add``, so they wait for a promotion
instead of running on.
"""

from __future__ import annotations

import logging
import os
import time
from typing import TYPE_CHECKING, Any, Mapping

from ray.tune.experiment import Trial
from ray.tune.result import DEFAULT_METRIC, SHOULD_CHECKPOINT
from ray.tune.schedulers.trial_scheduler import TrialScheduler
from ray.tune.trainable import FunctionTrainable

from schedulers import _ray_private
from schedulers._results import MetricTypeError, MissingMetricError, result_number, user_keys
from schedulers.core.asha import (ASHA, MODES, Action, ASHAConfigError, ASHAStateError, Status,
                                  validate_options)
from search_algs.errors import TuneorchError

if TYPE_CHECKING:
    from ray.tune.execution.tune_controller import TuneController

logger = logging.getLogger(__name__)

__all__ = ["ASHAScheduler", "ASHAConfigError", "ASHAStateError", "MissingMetricError",
           "MetricTypeError", "PromotionNeedsCheckpointError"]

_TUNE = {Action.CONTINUE: TrialScheduler.CONTINUE, Action.PAUSE: TrialScheduler.PAUSE,
         Action.STOP: TrialScheduler.STOP}


class PromotionNeedsCheckpointError(TuneorchError, ValueError):
    """The promotion variant would pause a trial that has no checkpoint to resume from."""


class ASHAScheduler(TrialScheduler):
    """Asynchronous successive halving for Ray Tune, with state that survives a resume.

    Args:
        time_attr: the result key measuring progress (monotone, numeric), e.g.
            ``"training_iteration"`` (default) or ``"time_total_s"``.
        metric: the result key to rank by; may come from ``TuneConfig(metric=...)`` instead.
        mode: ``"min"`` or ``"max"``; may come from ``TuneConfig(mode=...)`` instead.
        max_t: a trial reaching ``time_attr >= max_t`` is finished.
        grace_period: first rung (bracket 0), ``>= 1`` in units of ``time_attr``.
        eta: reduction factor, ``>= 2``: each rung keeps the best ``1/eta``.
        brackets: number of brackets; bracket ``s`` starts at ``grace_period * eta**s``.
        variant: ``"stopping"`` (default: at each rung a trial continues or stops) or
            ``"promotion"`` (a trial pauses at each rung; paused trials in the top ``1/eta``
            of their rung are resumed from their checkpoint; needs checkpoints, see above).
        seed: seeds every random draw (bracket assignment, tie keys).
        state_path: where to keep the state file (see the module docstring).
    """

    STATE_FILE = "asha_state.json"

    def __init__(self, time_attr: str = "training_iteration", metric: str | None = None,
                 mode: str | None = None, max_t: float = 100, grace_period: float = 1,
                 eta: float = 3, brackets: int = 1, variant: str = "stopping",
                 seed: int | None = None, state_path: str | os.PathLike | None = None):
        super().__init__()
        if not isinstance(time_attr, str) or not time_attr:
            raise ASHAConfigError(f"ASHAScheduler: time_attr must be a non-empty result key, got "
                                  f"{time_attr!r}; pass e.g. time_attr='training_iteration'")
        if metric is not None and (not isinstance(metric, str) or not metric):
            raise ASHAConfigError(f"ASHAScheduler: metric must be a non-empty result key or None, "
                                  f"got {metric!r}; pass metric='loss' (the key you report)")
        if mode is not None and mode not in MODES:
            raise ASHAConfigError(f"ASHAScheduler: mode must be 'min', 'max' or None, got {mode!r}; "
                                  f"pass mode='min' or mode='max'")
        validate_options(grace_period, eta, max_t, brackets, mode or "min", variant, seed)
        self._time_attr, self._metric, self._mode = time_attr, metric, mode
        self._max_t, self._grace_period, self._eta = max_t, grace_period, eta
        self._brackets, self._variant, self._seed = brackets, variant, seed
        self._state_path = os.fspath(state_path) if state_path is not None else None
        self._core: ASHA | None = None
        self._path: str | None = None  # the state file in use (resolved at first use)
        self._loaded = False  # the state file was looked for in this process
        self._saved_version: int | None = None
        self._warned_old_checkpoint = False
        self._staging_checked = False  # drop_staged_copy looked for a stale copy in this process
        if variant == "promotion":
            # A pause must happen on the report that reached the rung, with its checkpoint.
            self._supports_buffered_results = False
        if self._state_path is not None and self._metric and self._mode:
            self._ensure_core(None)  # an existing state file is readable right away

    # ---- properties --------------------------------------------------------------------

    @property
    def variant(self) -> str:
        return self._variant

    @property
    def state_path(self) -> str | None:
        """The state file in use (None until the first trial when it is derived)."""
        return self._path or self._state_path

    @property
    def policy(self) -> ASHA:
        """The underlying policy (built and loaded on demand)."""
        return self._ensure_core(None)

    def rung_records(self) -> dict:
        """``{(bracket, milestone): {trial_id: value}}``, see :meth:`ASHA.rung_records`."""
        return self.policy.rung_records()

    def stopped_at_rung(self, trial_id: str) -> float | None:
        """The rung milestone (in units of ``time_attr``) where this scheduler stopped
        ``trial_id`` early; ``None`` when it did not (still going, reached ``max_t``, ended on
        its own, failed, or unknown). Read-only: the orchestrator reports early stops with it."""
        core = self._core
        state = core.trials.get(trial_id) if core is not None else None
        if state is None or state.status is not Status.STOPPED or state.level < 0:
            return None
        return core.levels[state.bracket][state.level]

    # ---- Tune contract -----------------------------------------------------------------

    def set_search_properties(self, metric: str | None, mode: str | None, **spec) -> bool:
        if self._metric and metric and metric != self._metric:
            return False
        if self._mode and mode and mode != self._mode:
            return False
        if mode is not None and mode not in MODES:
            raise ASHAConfigError(f"ASHAScheduler: mode must be 'min' or 'max', got {mode!r}; "
                                  f"pass mode='min' or mode='max' in TuneConfig")
        self._metric = self._metric or metric
        self._mode = self._mode or mode
        if self._metric is None and self._mode:
            self._metric = DEFAULT_METRIC
        return True

    def on_trial_add(self, tune_controller: "TuneController", trial: Trial) -> None:
        if not self._staging_checked and self._state_path is not None:
            # A restore staged a copy of our state file that Tune would upload over the live one
            # at every experiment snapshot (a second resume would then lose decisions).
            self._staging_checked = True
            if _ray_private.drop_staged_copy(trial, self._state_path):
                logger.debug("ASHAScheduler: removed the stale copy of %s staged by the restore", self._state_path)
        core = self._ensure_core(trial)
        tid = trial.trial_id
        core.add(tid)
        status = core.status(tid)
        if trial.status == Trial.TERMINATED and status in (Status.ACTIVE, Status.PAUSED):
            core.on_complete(tid)
        elif trial.status == Trial.ERROR and status is Status.ACTIVE:
            core.on_error(tid)
        elif (status is Status.PAUSED and trial.status == Trial.PENDING
              and self._variant == "promotion"):
            # Resumed experiment: Tune re-queues paused trials as PENDING; keep holding it.
            # (Called before Tune files the trial under its status, so no bookkeeping breaks.)
            trial.set_status(Trial.PAUSED)
        self._persist()

    def on_trial_result(self, tune_controller: "TuneController", trial: Trial,
                        result: dict) -> str:
        core = self._ensure_core(trial)
        if self._metric not in result and not user_keys(result):
            return TrialScheduler.CONTINUE  # nothing reported (a trainable that only returns)
        t = self._number(result, self._time_attr, "time_attr", trial, allow_nonfinite=False)
        value = self._number(result, self._metric, "metric", trial, allow_nonfinite=True)
        action = core.on_result(trial.trial_id, t, value)
        if action is Action.PAUSE:
            self._check_can_resume(trial, result, t)
        # A pause is written at once: the paused trial waits on it for promotion after a resume.
        self._persist(force=action is Action.PAUSE)
        return _TUNE[action]

    def on_trial_complete(self, tune_controller: "TuneController", trial: Trial,
                          result: dict) -> None:
        self._ensure_core(trial).on_complete(trial.trial_id)
        self._persist(force=_last_one(tune_controller, trial))

    def on_trial_error(self, tune_controller: "TuneController", trial: Trial) -> None:
        self._ensure_core(trial).on_error(trial.trial_id)
        self._persist(force=_last_one(tune_controller, trial))

    def on_trial_remove(self, tune_controller: "TuneController", trial: Trial) -> None:
        self._ensure_core(trial).on_remove(trial.trial_id)
        self._persist(force=_last_one(tune_controller, trial))

    def choose_trial_to_run(self, tune_controller: "TuneController") -> Trial | None:
        self._persist(force=False)  # catch up on throttled writes (called on every Tune loop)
        trials = tune_controller.get_trials()
        if self._variant == "promotion" and self._core is not None:
            chosen = self._promote(tune_controller, trials)
            if chosen is not None:
                return chosen
        for trial in trials:
            if trial.status == Trial.PENDING:
                return trial
        if self._variant == "stopping":
            for trial in trials:  # paused by something else than this policy: like FIFO
                if trial.status == Trial.PAUSED:
                    return trial
        return None

    def debug_string(self) -> str:
        head = f"Using ASHA ({self._variant}, eta={self._eta}, max_t={self._max_t})"
        return head if self._core is None else head + "\n" + self._core.summary()

    def save(self, checkpoint_path: str) -> None:
        self.policy.save(checkpoint_path)

    def restore(self, checkpoint_path: str) -> None:
        self.policy.load(checkpoint_path)
        self._saved_version = None

    # ---- internals ---------------------------------------------------------------------

    def _promote(self, tune_controller, trials) -> Trial | None:
        core = self._core
        by_id = {t.trial_id: t for t in trials}
        for trial in trials:
            if trial.status != Trial.PAUSED:
                continue
            state = core.trials.get(trial.trial_id)
            if state is None or state.status in (Status.ACTIVE, Status.ERRORED):
                # Promoted already but not started yet (this keeps the call idempotent), or
                # paused by something else than this policy: resume it.
                return trial
            if state.status in (Status.STOPPED, Status.FINISHED):
                tune_controller.stop_trial(trial)
        paused = [t.trial_id for t in trials if t.status == Trial.PAUSED]
        live = [t.trial_id for t in trials if t.status in (Trial.PENDING, Trial.RUNNING, Trial.PAUSED)]
        busy = any(t.status in (Trial.PENDING, Trial.RUNNING) for t in trials)
        # Nothing running or pending means nothing will ever change unless a paused trial
        # moves: treat the rungs as settled (also avoids the PAUSED-forever hang, ray 23424).
        no_new = not busy or tune_controller.search_alg.is_finished()
        plan = core.plan(paused, live, no_new)
        for tid in plan.stop:
            core.mark_stopped(tid)
            tune_controller.stop_trial(by_id[tid])
        chosen = None
        if plan.promote:
            tid = plan.promote[0]
            core.mark_promoted(tid)
            chosen = by_id[tid]
        self._persist()
        return chosen

    def _ensure_core(self, trial: Trial | None) -> ASHA:
        if self._core is None:
            if self._metric is None or self._mode is None:
                raise ASHAConfigError(
                    f"ASHAScheduler: metric and mode must be set before trials run, got "
                    f"metric={self._metric!r}, mode={self._mode!r}; pass them to ASHAScheduler(...) "
                    f"or to tune.TuneConfig(metric=..., mode=...)")
            self._core = ASHA(self._grace_period, self._eta, self._max_t, self._brackets,
                              self._mode, self._variant, self._seed,
                              context={"metric": self._metric, "time_attr": self._time_attr})
        if not self._loaded:
            path = self._state_path
            if path is None and trial is not None and getattr(trial, "storage", None) is not None:
                path = os.path.join(trial.storage.experiment_driver_staging_path, self.STATE_FILE)
            if path is not None:
                self._path, self._loaded = path, True
                if os.path.exists(path):
                    self._core.load(path)
                    logger.info("ASHAScheduler: loaded %d trials' rung records from %s",
                                len(self._core.trials), path)
                    self._saved_version = self._core.version
        return self._core

    # The state file is rewritten at most this often (a whole rewrite costs ~0.1 s at 10,000
    # rung records), by whichever hook comes next; Tune calls choose_trial_to_run on every
    # loop, so it lags the decisions by about this much. A resume after a crash inside that
    # window re-decides the few trials concerned at their rung, against the same records (Tune's
    # own experiment snapshots are periodic too). New and paused trials are written at once.
    PERSIST_INTERVAL_S = 1.0

    def _persist(self, force: bool = True) -> None:
        if self._core is None or self._path is None or self._core.version == self._saved_version:
            return
        now = time.monotonic()
        if not force and now - getattr(self, "_persisted_at", 0.0) < self.PERSIST_INTERVAL_S:
            return
        self._core.save(self._path)
        self._saved_version = self._core.version
        self._persisted_at = now

    def _number(self, result: Mapping, key: str, role: str, trial: Trial,
                allow_nonfinite: bool) -> float:
        return result_number("ASHAScheduler", result, key, role, trial.trial_id, allow_nonfinite)

    def _check_can_resume(self, trial: Trial, result: Mapping, t: float) -> None:
        if result.get(SHOULD_CHECKPOINT):
            return  # this very report carries a checkpoint
        trainable = trial.get_trainable_cls()
        if trainable is not None and not issubclass(trainable, FunctionTrainable):
            return  # a class Trainable: Tune calls save_checkpoint when it pauses it
        if trial.checkpoint is not None:
            if not self._warned_old_checkpoint:
                self._warned_old_checkpoint = True
                logger.warning(
                    "ASHAScheduler(variant='promotion'): trial %s is paused at %s=%s without a "
                    "checkpoint in that report; if promoted it resumes from its last checkpoint "
                    "and repeats the steps since. Report a checkpoint at each rung to avoid it.",
                    trial.trial_id, self._time_attr, t)
            return
        raise PromotionNeedsCheckpointError(
            f"ASHAScheduler(variant='promotion'): trial {trial.trial_id} must pause at "
            f"{self._time_attr}={t:g} but has no checkpoint to be resumed from; promotion "
            f"needs a trainable that checkpoints at every rung: call "
            f"tune.report(metrics, checkpoint=ray.tune.Checkpoint.from_directory(...)) and "
            f"load tune.get_checkpoint() at start, or use variant='stopping'")

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        state["_loaded"] = False  # a copy (e.g. from tuner.pkl) re-reads the state file
        state["_staging_checked"] = False
        state["_saved_version"] = None
        return state


def _last_one(tune_controller: Any, ending: Trial) -> bool:
    """Whether ``ending`` is the last unfinished trial (then the state is written at once: no
    later hook would catch up on a throttled write)."""
    try:
        trials = tune_controller.get_trials()
    except Exception:  # noqa: BLE001 - without a controller, err on the side of writing
        return True
    return all(t is ending or t.status in (Trial.TERMINATED, Trial.ERROR) for t in trials)
