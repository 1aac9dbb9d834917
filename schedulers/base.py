"""The one Ray Tune ``TrialScheduler`` adapter every scheduler of this project is built on
(the schedulers' counterpart of :mod:`search_algs.base`).

It owns what each scheduler would otherwise redo:

* ``time_attr`` / ``metric`` / ``mode`` (validated here, or given later by
  ``TuneConfig(metric=..., mode=...)`` through :meth:`set_search_properties`);
* reading a result: the two numbers a policy needs, or one clear :class:`MissingMetricError`
  naming the key and the keys the trial did report (:mod:`schedulers._results`);
* the seed and the state file, given to the constructor or later, by the orchestrator, through
  :meth:`TuneorchScheduler.configure` (the class declares in ``CONFIGURABLE`` what it takes:
  no signature probing);
* the state file itself: Tune never calls a scheduler's ``save``/``restore`` (ray issue 30838),
  so the policy's state is written as JSON (atomically) after each change and read back at the
  first hook call in a process: a resumed experiment, also after a crash, decides as the
  uninterrupted one would. Without ``state_path`` the file goes into Tune's driver staging
  folder (``STATE_FILE``), which Tune syncs with the experiment folder;
* carrying out the decisions of the core (:mod:`schedulers.core.decisions`): ``Action`` to
  Tune's strings, a :class:`~schedulers.core.decisions.Plan` for trials held paused at a rung
  (promote / stop) in :meth:`choose_trial_to_run`;
* the checkpoint check before a pause, the completion/error/removal bookkeeping, pickling
  (``tuner.pkl``) that re-reads the state file.

A scheduler is a pure core (``schedulers/core/<name>.py``, no Ray), a thin subclass of
:class:`TuneorchScheduler` that implements :meth:`_build_core` and :meth:`_on_result` (and
whatever else it must carry out), and a line in ``orchestrator/registry.py``. Every Ray internal
goes through :mod:`schedulers._ray_private`.

Core protocol (duck-typed): ``version`` (bumped on every change), ``to_dict()``,
``load_dict(state, source=...)``, ``add(trial_id)``, ``on_complete`` / ``on_error`` /
``on_remove(trial_id)``. A core that holds trials paused at rungs (``HOLDS_PAUSED``) also has
``trials`` (``{id: obj with .status}``, a :class:`~schedulers.core.decisions.Status`),
``plan(paused, live, no_new_trials) -> Plan``, ``mark_promoted(id)``, ``mark_stopped(id)``.
"""

from __future__ import annotations

import json
import logging
import numbers
import os
import time
from typing import TYPE_CHECKING, Any, ClassVar, Mapping

from ray.tune.experiment import Trial
from ray.tune.result import DEFAULT_METRIC, SHOULD_CHECKPOINT
from ray.tune.schedulers.trial_scheduler import TrialScheduler

from schedulers import _ray_private
from schedulers._results import MetricTypeError, MissingMetricError, result_number, user_keys
from schedulers.core.decisions import Action, Decision, Status
from schedulers.core.state_file import write_json_atomic
from schedulers.fifo import TrialScan
from search_algs.errors import TuneorchError

if TYPE_CHECKING:
    from ray.tune.execution.tune_controller import TuneController


__all__ = ["TuneorchScheduler", "SchedulerConfigError", "SchedulerStateError", "MissingMetricError",
           "MetricTypeError", "PromotionNeedsCheckpointError", "TUNE_ACTIONS"]

MODES = ("min", "max")
TUNE_ACTIONS = {Action.CONTINUE: TrialScheduler.CONTINUE, Action.PAUSE: TrialScheduler.PAUSE,
                Action.STOP: TrialScheduler.STOP}
_UNSET: Any = object()


class SchedulerConfigError(TuneorchError, ValueError):
    """A scheduler option is invalid (the message names the option, the rule, the value, the fix)."""


class SchedulerStateError(TuneorchError, ValueError):
    """A scheduler's state file cannot be used."""


class PromotionNeedsCheckpointError(TuneorchError, ValueError):
    """A scheduler would pause a trial that has no checkpoint to be resumed from."""


class TuneorchScheduler(TrialScheduler):
    """Base class of this project's Tune schedulers (see the module docstring).

    Args:
        time_attr: the result key measuring progress (numeric, increasing).
        metric, mode: what to rank by; may come from ``TuneConfig(metric=..., mode=...)``.
        seed: seeds the core's one generator. May be given later by :meth:`configure`.
        state_path: the state file; may be given later by :meth:`configure`. An existing file is
            loaded (so pass a fresh path for a new experiment).
        require_attrs: ``True``: a result without ``metric`` / ``time_attr`` is an error naming
            what the trial reported. ``False``: such a result is skipped (one warning).
    """

    NAME: ClassVar[str] = "Scheduler"  # in messages
    STATE_FILE: ClassVar[str] = "scheduler-state.json"  # in the staging folder when no state_path
    CONFIG_ERROR: ClassVar[type] = SchedulerConfigError
    STATE_ERROR: ClassVar[type] = SchedulerStateError
    #: what :meth:`configure` (the orchestrator) may give: a subset of seed, state_path, space
    CONFIGURABLE: ClassVar[tuple[str, ...]] = ("seed", "state_path")
    #: defaults when built from a spec (YAML / CLI / ``orchestrator.tune``) instead of Ray's
    SPEC_DEFAULTS: ClassVar[Mapping[str, Any]] = {}
    RANKS: ClassVar[bool] = True  # needs metric and mode
    HOLDS_PAUSED: ClassVar[bool] = False  # the core holds trials paused at rungs (plan/promote)
    PERSIST_INTERVAL_S: ClassVar[float] = 0.0  # state writes at most this often (0: every change)

    def __init__(self, time_attr: str = "training_iteration", metric: str | None = None,
                 mode: str | None = None, *, seed: int | None = None,
                 state_path: str | os.PathLike | None = None, require_attrs: bool = True):
        super().__init__()
        err = self.CONFIG_ERROR
        if not isinstance(time_attr, str) or not time_attr:
            raise err(f"{self.NAME}: time_attr must be a non-empty result key, got {time_attr!r}; pass "
                      f"e.g. time_attr='training_iteration'")
        if metric is not None and (not isinstance(metric, str) or not metric):
            raise err(f"{self.NAME}: metric must be a non-empty result key or None, got {metric!r}; "
                      f"pass metric='loss' (the key you report)")
        if mode is not None and mode not in MODES:
            raise err(f"{self.NAME}: mode must be 'min', 'max' or None, got {mode!r}; pass mode='min' "
                      f"or mode='max'")
        if not isinstance(require_attrs, bool):
            raise err(f"{self.NAME}: require_attrs must be True or False, got {require_attrs!r}")
        self._check_seed(seed)
        self._time_attr, self._metric, self._mode = time_attr, metric, mode
        self._seed = seed
        self._require_attrs = require_attrs
        self._state_path = os.fspath(state_path) if state_path is not None else None
        self._core: Any = None
        self._path: str | None = None  # the state file in use (resolved at first use)
        self._loaded = False  # the state file was looked for in this process
        self._staging_checked = False  # drop_staged_copy looked for a stale copy in this process
        self._saved_version: int | None = None
        self._persisted_at = 0.0
        self._warned: set[str] = set()

    # ---- what the orchestrator gives -------------------------------------------------------

    def configure(self, *, seed: Any = _UNSET, state_path: Any = _UNSET, space: Any = _UNSET
                  ) -> "TuneorchScheduler":
        """Give what the orchestrator knows: the experiment's ``seed`` (kept if the scheduler
        was given one), the ``state_path`` inside the experiment folder, the search ``space``.
        Only the names in ``CONFIGURABLE`` are taken. Returns ``self``."""
        given = {k: v for k, v in (("seed", seed), ("state_path", state_path), ("space", space))
                 if v is not _UNSET}
        refused = sorted(set(given) - set(self.CONFIGURABLE))
        if refused:
            raise self.CONFIG_ERROR(f"{self.NAME}.configure: takes {list(self.CONFIGURABLE)}, got {refused}")
        if "seed" in given and self._seed is None:
            self._check_seed(given["seed"])
            self._seed = given["seed"]
        if given.get("state_path") is not None:
            self._state_path = os.fspath(given["state_path"])
        if "space" in given:
            self._configure_space(given["space"])
        self._core, self._loaded, self._path, self._saved_version = None, False, None, None
        self._load_now()
        return self

    def _configure_space(self, space: Any) -> None:
        """Subclasses that take a space (``"space"`` in ``CONFIGURABLE``) override this."""

    def _check_seed(self, seed: Any) -> None:
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, numbers.Integral) or seed < 0):
            raise self.CONFIG_ERROR(f"{self.NAME}: seed must be None or an integer >= 0, got {seed!r}; "
                                    f"pass seed=0 (or any non-negative integer) for reproducible runs")

    # ---- to implement ------------------------------------------------------------------------

    def _build_core(self, tune_controller: Any) -> Any:
        """The core, built from the options, ``self._mode``, ``self._seed`` (abstract)."""
        raise NotImplementedError

    def _on_result(self, tune_controller: Any, trial: Trial, result: Mapping, t: float,
                   value: float | None) -> str:
        """Decide on one result (``t`` and ``value`` read already); return Tune's string."""
        raise NotImplementedError

    def _can_build_now(self) -> bool:
        """Whether the core can be built before the first trial (to read a state file at once)."""
        return True

    def _add(self, tune_controller: Any, trial: Trial) -> None:
        """A trial was added (new, retried or resumed); default: ``core.add(trial_id)`` and the
        trial's status reconciled with the core's (for cores that hold paused trials)."""
        core = self._core
        tid = trial.trial_id
        core.add(tid)
        if not self.HOLDS_PAUSED:
            return
        status = core.trials[tid].status
        if trial.status == Trial.TERMINATED and status in (Status.ACTIVE, Status.PAUSED):
            core.on_complete(tid)
        elif trial.status == Trial.ERROR and status is Status.ACTIVE:
            core.on_error(tid)
        elif status is Status.PAUSED and trial.status == Trial.PENDING:
            # Resumed experiment: Tune re-queues paused trials as PENDING; keep holding it.
            # (Called before Tune files the trial under its status, so no bookkeeping breaks.)
            trial.set_status(Trial.PAUSED)

    def _leave(self, tune_controller: Any, trial: Trial, event: str) -> None:
        """The trial completed, failed or was removed: tell the core."""
        core = self._core
        if core is None:
            return
        handler = {"complete": core.on_complete, "error": core.on_error, "remove": core.on_remove}[event]
        handler(trial.trial_id)

    def _state(self) -> dict:
        return self._core.to_dict()

    def _load_state(self, state: Mapping, source: str) -> None:
        self._core.load_dict(state, source=source)

    # ---- properties ---------------------------------------------------------------------------

    @property
    def metric(self) -> str | None:
        return self._metric

    @property
    def state_path(self) -> str | None:
        """The state file in use (None until the first trial when it is derived)."""
        return self._path or self._state_path

    @property
    def seed(self) -> int | None:
        return self._seed

    def stopped_at_rung(self, trial_id: str) -> float | None:
        """The rung (in units of ``time_attr``) where this scheduler stopped ``trial_id``
        early; ``None`` when it did not, or when the scheduler has no rungs. Read-only: the
        orchestrator reports early stops with it."""
        return None

    # ---- Tune contract -------------------------------------------------------------------------

    def set_search_properties(self, metric: str | None, mode: str | None, **spec) -> bool:
        if self._metric and metric and metric != self._metric:
            return False
        if self._mode and mode and mode != self._mode:
            return False
        if mode is not None and mode not in MODES:
            raise self.CONFIG_ERROR(f"{self.NAME}: mode must be 'min' or 'max', got {mode!r}; pass "
                                    f"mode='min' or mode='max' in TuneConfig")
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
                self._logger.debug("%s: removed the stale copy of %s staged by the restore", self.NAME,
                             self._state_path)
        self._ensure_core(tune_controller, trial)
        self._add(tune_controller, trial)
        self._persist()

    def on_trial_result(self, tune_controller: "TuneController", trial: Trial, result: dict) -> str:
        self._ensure_core(tune_controller, trial)
        read = self._read(result, trial)
        if read is None:
            return TrialScheduler.CONTINUE
        return self._on_result(tune_controller, trial, result, *read)

    def on_trial_complete(self, tune_controller: "TuneController", trial: Trial, result: dict) -> None:
        self._ensure_core(tune_controller, trial)
        self._leave(tune_controller, trial, "complete")
        self._persist(force=_last_one(self._trial_scan, tune_controller, trial))

    def on_trial_error(self, tune_controller: "TuneController", trial: Trial) -> None:
        self._ensure_core(tune_controller, trial)
        self._leave(tune_controller, trial, "error")
        self._persist(force=_last_one(self._trial_scan, tune_controller, trial))

    def on_trial_remove(self, tune_controller: "TuneController", trial: Trial) -> None:
        self._ensure_core(tune_controller, trial)
        self._leave(tune_controller, trial, "remove")
        self._persist(force=_last_one(self._trial_scan, tune_controller, trial))

    def choose_trial_to_run(self, tune_controller: "TuneController") -> Trial | None:
        self._persist(force=False)  # catch up on throttled writes (called on every Tune loop)
        # Only the trials that may still run: the scan skips the ended ones (schedulers/fifo.py).
        trials = self._trial_scan.unended(tune_controller.get_trials())
        if self.HOLDS_PAUSED and self._core is not None:
            chosen = self._promote(tune_controller, trials)
            if chosen is not None:
                return chosen
        for trial in trials:
            if trial.status == Trial.PENDING:
                return trial
        if not self.HOLDS_PAUSED:
            for trial in trials:  # paused by something else than this policy: like FIFO
                if trial.status == Trial.PAUSED:
                    return trial
        return None

    @property
    def _trial_scan(self) -> TrialScan:
        # Made on first use: a scheduler unpickled from an older experiment's tuner.pkl has none.
        scan = self.__dict__.get("_scan")
        if scan is None:
            scan = self.__dict__["_scan"] = TrialScan()
        return scan

    def save(self, checkpoint_path: str) -> None:
        self._ensure_core(None, None)
        _write_json(checkpoint_path, self._state(), self.STATE_ERROR)

    def restore(self, checkpoint_path: str) -> None:
        self._ensure_core(None, None)
        self._load_state(_read_json(checkpoint_path, self.STATE_ERROR, self.NAME),
                         f"state file {checkpoint_path!r}")
        self._saved_version = None

    # ---- carrying decisions out ------------------------------------------------------------

    @staticmethod
    def _tune(decision: Decision | Action) -> str:
        """Tune's string for a decision (or a bare action)."""
        return TUNE_ACTIONS[decision if isinstance(decision, Action) else decision.action]

    def _promote(self, tune_controller: Any, trials: list) -> Trial | None:
        """Trials held paused at rungs: stop those that can never go on, return one to resume."""
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
        search = getattr(tune_controller, "search_alg", None)
        no_new = not busy or (search is not None and search.is_finished())
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

    def _check_can_resume(self, trial: Trial, result: Mapping, t: float, fix: str = "") -> None:
        """Before a PAUSE that must be resumed later: the trial needs a checkpoint to resume from.
        None at all raises :class:`PromotionNeedsCheckpointError`; an older one warns once."""
        if result.get(SHOULD_CHECKPOINT) or not _ray_private.is_function_trainable(trial):
            return  # this report carries a checkpoint, or a class Trainable (saved on pause)
        if getattr(trial, "checkpoint", None) is not None:
            if "old_checkpoint" not in self._warned:
                self._warned.add("old_checkpoint")
                self._logger.warning(
                    "%s: trial %s is paused at %s=%s without a checkpoint in that report; if "
                    "promoted it resumes from its last checkpoint and repeats the steps since. Report "
                    "a checkpoint at each rung to avoid it.", self._label(), trial.trial_id,
                    self._time_attr, t)
            return
        raise PromotionNeedsCheckpointError(
            f"{self._label()}: trial {trial.trial_id} must pause at {self._time_attr}={t:g} but has "
            f"no checkpoint to be resumed from; pausing at rungs needs a trainable that checkpoints "
            f"at every rung: call tune.report(metrics, checkpoint=ray.tune.Checkpoint.from_directory"
            f"(...)) and load tune.get_checkpoint() at start{fix}")

    def _label(self) -> str:
        return self.NAME

    def _loaded_text(self) -> str:
        """What a loaded state holds, for the log line."""
        return "its state"

    @property
    def _logger(self) -> logging.Logger:
        """The subclass's module logger (``schedulers.asha``...): where users look for it."""
        return logging.getLogger(type(self).__module__)

    # ---- reading results ------------------------------------------------------------------------

    def _read(self, result: Mapping, trial: Trial) -> tuple[float, float | None] | None:
        """``(t, value)`` of a result, or ``None`` when there is nothing to decide on."""
        if self._metric not in result and not user_keys(result):
            return None  # nothing reported (a trainable that only returned)
        if not self._require_attrs:
            missing = [k for k in (self._time_attr, self._metric if self.RANKS else None)
                       if k is not None and k not in result]
            if missing:
                if "missing" not in self._warned:
                    self._warned.add("missing")
                    self._logger.warning("%s(require_attrs=False): trial %s reported no %s (it reported %s); "
                                   "such results are skipped. (Shown once.)", self.NAME, trial.trial_id,
                                   missing, user_keys(result))
                return None
        value = None
        if self.RANKS:  # the metric first: when both are missing, it is the one to name
            value = result_number(self.NAME, result, self._metric, "metric", trial.trial_id,
                                  allow_nonfinite=True)
        t = result_number(self.NAME, result, self._time_attr, "time_attr", trial.trial_id,
                          allow_nonfinite=False)
        return t, value

    # ---- state ------------------------------------------------------------------------------------

    def _ensure_core(self, tune_controller: Any, trial: Trial | None) -> Any:
        if self._core is None:
            if self.RANKS and (self._metric is None or self._mode is None):
                raise self.CONFIG_ERROR(
                    f"{self.NAME}: metric and mode must be set before trials run, got "
                    f"metric={self._metric!r}, mode={self._mode!r}; pass them to {self.NAME}(...) "
                    f"or to tune.TuneConfig(metric=..., mode=...)")
            self._core = self._build_core(tune_controller)
        if not self._loaded:
            path = self._state_path
            if path is None and trial is not None:
                staging = _ray_private.experiment_staging_dir(trial)
                path = None if staging is None else os.path.join(staging, self.STATE_FILE)
            if path is not None:
                self._path, self._loaded = path, True
                state = _read_json(path, self.STATE_ERROR, self.NAME, missing_ok=True)
                if state is not None:
                    self._load_state(state, f"state file {path!r}")
                    self._logger.info("%s: loaded %s from %s", self.NAME, self._loaded_text(), path)
                    self._saved_version = self._core.version
        return self._core

    def _load_now(self) -> None:
        """With a state file and everything the core needs: build it and read the file now."""
        if self._state_path is not None and (not self.RANKS or (self._metric and self._mode)) \
                and self._can_build_now():
            self._ensure_core(None, None)

    def _persist(self, force: bool = True) -> None:
        core = self._core
        if core is None or self._path is None or core.version == self._saved_version:
            return
        now = time.monotonic()
        if not force and now - self._persisted_at < self.PERSIST_INTERVAL_S:
            return
        _write_json(self._path, self._state(), self.STATE_ERROR)
        self._saved_version = core.version
        self._persisted_at = now

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        state["_loaded"] = False  # a copy (e.g. from tuner.pkl) re-reads the state file
        state["_staging_checked"] = False
        state["_saved_version"] = None
        return state


# ---- helpers ------------------------------------------------------------------------------------


def _last_one(scan: TrialScan, tune_controller: Any, ending: Trial) -> bool:
    """Whether ``ending`` is the last unfinished trial (then the state is written at once: no
    later hook would catch up on a throttled write)."""
    try:
        trials = scan.unended(tune_controller.get_trials())
    except Exception:  # noqa: BLE001 - without a controller, err on the side of writing
        return True
    return all(t is ending or t.status in (Trial.TERMINATED, Trial.ERROR) for t in trials)


def _write_json(path: str, data: Any, error: type = SchedulerStateError) -> None:
    """Atomic write: local files via a temporary file and ``os.replace``; URIs (``s3://``...)
    via pyarrow (a temporary object moved into place)."""
    if "://" not in path or path.startswith("file://"):
        write_json_atomic(path[len("file://"):] if path.startswith("file://") else path, data)
        return
    import pyarrow.fs

    fs, fs_path = pyarrow.fs.FileSystem.from_uri(path)
    tmp = f"{fs_path}.tmp"
    with fs.open_output_stream(tmp) as f:
        f.write(json.dumps(data, indent=1, sort_keys=True, allow_nan=False).encode())
    fs.move(tmp, fs_path)


def _read_json(path: str, error: type = SchedulerStateError, owner: str = "scheduler",
               missing_ok: bool = False) -> Any:
    try:
        if "://" not in path or path.startswith("file://"):
            local = path[len("file://"):] if path.startswith("file://") else path
            if missing_ok and not os.path.exists(local):
                return None
            with open(local, encoding="utf-8") as f:
                return json.load(f)
        import pyarrow.fs

        fs, fs_path = pyarrow.fs.FileSystem.from_uri(path)
        if missing_ok and fs.get_file_info(fs_path).type == pyarrow.fs.FileType.NotFound:
            return None
        with fs.open_input_stream(fs_path) as f:
            return json.loads(f.read().decode())
    except (OSError, ValueError) as exc:
        raise error(f"{owner}: cannot read the state file {path!r} ({exc}); restore it, or remove it "
                    f"(or pass a new path) to start afresh") from None
