"""Population Based Training for Ray Tune: the adapter around :class:`schedulers.core.pbt.PBT`.

The policy (ranking, quantiles, exploit/explore, generations, lineage) lives in
:mod:`schedulers.core.pbt` and knows nothing of Ray. This module translates Tune's events
into the policy's and carries its decisions out; the few Ray internals that carrying out an
exploit needs are in :mod:`schedulers._ray_private` (see there for what and why).

Differences from Ray's ``PopulationBasedTraining``
--------------------------------------------------
* Works with a searcher: the initial configs come from it (our TPE, random search, or any
  Ray ``Searcher``); Ray's PBT refuses every search algorithm. Exploits change a trial's
  config behind the searcher's back, so a searcher that learns from completed trials
  learns "initial config -> final score of the lineage"; with a model-based searcher that
  is a (documented) approximation.
* Explore draws from the project's search space (:class:`search_algs.space.Space`), so
  perturbed values respect bounds, grids, log scales and conditional branches. Resampling
  uses the scheduler's own seeded generator and the space's prior; it does not ask the
  searcher, because a suggestion is bound to a new trial id in every searcher's
  bookkeeping. The space is the one given as ``space=...`` or, by default, the one of the
  first tuneorch searcher found behind Tune's search algorithm.
* Checkpoint rules: a trial is never cloned unless it has reported a checkpoint since its
  last exploit, and never perturbed before it has; a trial is never paused (time sharing,
  synchronous barrier) on a report without a checkpoint, so pausing never loses progress
  (ray issue 27170). A trainable that never reports a checkpoint gets one warning naming
  the fix. When Tune may delete old checkpoints (``CheckpointConfig(num_to_keep=...)``),
  the cloned checkpoint is copied first (ray issues 9036, 27790).
* Synchronous mode never leaves trials paused forever (ray issues 23424, 12122): a member
  that finishes, fails or is removed leaves the generation at once.
* Lineage: every exploit is recorded (:meth:`PBTScheduler.lineage`), and
  :meth:`PBTScheduler.config_schedule` gives the replayable config schedule of a trial,
  following the donor chain. Lineage, scores and the generator state are kept in a JSON
  file (``state_path``, written atomically) and read back when the experiment is resumed:
  Tune never calls a scheduler's ``save``/``restore`` (FACTS.md, ray issue 30838). Two
  traps of a resume are handled: Tune copies the experiment folder's ``*.json`` files into its
  staging folder on restore and uploads them back later, which would overwrite the live state
  file with the stale copy (the copy is removed, ``_ray_private.drop_staged_copy``); and Tune's
  experiment snapshot is periodic, so an exploit made after the last snapshot comes back
  undone (the target has its old config): it is taken out of the lineage
  (:meth:`schedulers.core.pbt.PBT.on_restore`), with a warning.

How a function trainable must look: report with a checkpoint (at least every
``perturbation_interval``), load ``tune.get_checkpoint()`` at start, and read the
hyperparameters PBT may change from ``config`` after loading (e.g. set the optimizer's
learning rate from ``config`` after ``optimizer.load_state_dict``), as
``examples/digits_mlp.py`` does. Freeze what the checkpoint depends on (layer sizes) with
``mutable=[...]``. A class ``Trainable`` is asked to save at each decision point.

With a searcher behind a ``ConcurrencyLimiter`` (as ``orchestrator.api`` builds it), Tune
creates a new trial only when a running one completes, so the population is
``max_concurrent`` trials; set ``max_concurrent=num_samples`` for a population larger than
the cluster holds (members then take turns: see ``time_sharing``).
"""

from __future__ import annotations

import copy
import json
import logging
import math
import numbers
import os
from typing import TYPE_CHECKING, Any, Iterable, Mapping, Sequence

from ray.tune.experiment import Trial
from ray.tune.result import DEFAULT_METRIC, SHOULD_CHECKPOINT
from ray.tune.schedulers import TrialScheduler

from schedulers._results import MetricTypeError, MissingMetricError, result_number, user_keys
from schedulers import _ray_private
from schedulers.core.state_file import write_json_atomic
from schedulers.core.pbt import (MIDDLE, MODES, NO_CHECKPOINT, PBT, TOO_FEW, TOP, Continue, Exploit,
                                 Pause, PBTConfigError, PBTStateError,
                                 validate_options)
from search_algs.errors import SpaceError, TuneorchError
from search_algs.space import Space

if TYPE_CHECKING:
    from ray.tune.execution.tune_controller import TuneController

logger = logging.getLogger(__name__)

__all__ = ["PBTScheduler", "PBTConfigError", "PBTStateError", "MissingMetricError", "MetricTypeError",
           "NoSearchSpaceError"]

_CONCLUDED = (TOP, MIDDLE, TOO_FEW)  # a decision point passed without an exploit
_NOT_INHERITED = ("config", "trial_id", "experiment_tag", "done", SHOULD_CHECKPOINT)




class NoSearchSpaceError(TuneorchError, ValueError):
    """The scheduler has no search space to explore in."""


class PBTScheduler(TrialScheduler):
    """Population Based Training (Jaderberg et al. 2017) for Ray Tune.

    Every ``perturbation_interval`` of ``time_attr``, a trial in the bottom
    ``quantile_fraction`` of the population restarts from the checkpoint of a trial in the
    top quantile (exploit) with that trial's hyperparameters perturbed (explore).

    Args:
        time_attr: result key measuring progress (numeric, increasing), e.g.
            ``"training_iteration"`` (default) or ``"time_total_s"``.
        metric, mode: what to rank by; may come from ``TuneConfig(metric=..., mode=...)``.
        perturbation_interval: reconsider each trial every this much ``time_attr`` (> 0).
        burn_in_period: no exploit before ``time_attr >= burn_in_period``.
        quantile_fraction: size of the bottom and the top quantile, in ``(0, 0.5]``.
        resample_probability: per parameter, chance of a fresh draw from the space
            instead of a perturbation, in ``[0, 1]``.
        perturbation_factors: numbers are multiplied by one of these (drawn per parameter),
            kept inside their bounds and on their grid; choices move to a neighbour.
        mutable: names of the parameters explore may change (default: all of the space).
            Freeze architecture parameters the checkpoint depends on.
        synchronous: ``False`` (default): each trial is decided on its own when due.
            ``True``: trials wait for each other at every interval (a barrier) and are
            decided together; members that end or fail never block the others.
        space: the search space (anything ``Space.of`` accepts: our domains, a Ray Tune
            ``param_space``, a hyperopt space). Default: the space of the tuneorch
            searcher in use.
        time_sharing: asynchronous mode: when another trial has waited for resources since
            a trial's previous decision point, the trial pauses at its current one (on a
            checkpointed report) to let the least advanced waiting trial run: populations
            larger than the cluster take turns.
        copy_checkpoints: copy a cloned checkpoint before the target restarts from it.
            ``None`` (default): only when Tune may delete checkpoints (``num_to_keep``).
        seed: seeds every random draw (donor choice, explore).
        state_path: JSON file keeping lineage, scores and policy state across a resume;
            default ``<experiment folder>/pbt-state.json`` (``orchestrator.api`` passes it).
    """

    accepts_state_path = True
    accepts_seed = True
    STATE_FILE = "pbt-state.json"
    _supports_buffered_results = False  # an exploit must act on the report that triggered it

    def __init__(self, time_attr: str = "training_iteration", metric: str | None = None,
                 mode: str | None = None, perturbation_interval: float = 5,
                 burn_in_period: float = 0, quantile_fraction: float = 0.25,
                 resample_probability: float = 0.25,
                 perturbation_factors: Sequence[float] = (0.8, 1.2),
                 mutable: Iterable[str] | None = None, synchronous: bool = False,
                 space: Any = None, time_sharing: bool = True,
                 copy_checkpoints: bool | None = None, seed: int | None = None,
                 state_path: str | os.PathLike | None = None):
        super().__init__()
        if not isinstance(time_attr, str) or not time_attr:
            raise PBTConfigError(f"PBTScheduler: time_attr must be a non-empty result key, got "
                                 f"{time_attr!r}; pass e.g. time_attr='training_iteration'")
        if metric is not None and (not isinstance(metric, str) or not metric):
            raise PBTConfigError(f"PBTScheduler: metric must be a non-empty result key or None, got "
                                 f"{metric!r}; pass metric='loss' (the key you report)")
        if mode is not None and mode not in MODES:
            raise PBTConfigError(f"PBTScheduler: mode must be 'min', 'max' or None, got {mode!r}; "
                                 f"pass mode='min' or mode='max'")
        if not isinstance(time_sharing, bool):
            raise PBTConfigError(f"PBTScheduler: time_sharing must be True or False, got {time_sharing!r}; "
                                 f"pass time_sharing=True (default) or time_sharing=False")
        if copy_checkpoints is not None and not isinstance(copy_checkpoints, bool):
            raise PBTConfigError(f"PBTScheduler: copy_checkpoints must be None, True or False, got "
                                 f"{copy_checkpoints!r}; leave it None to copy only when Tune may "
                                 f"delete checkpoints")
        self._options = dict(perturbation_interval=perturbation_interval, burn_in_period=burn_in_period,
                             quantile_fraction=quantile_fraction,
                             resample_probability=resample_probability,
                             perturbation_factors=tuple(perturbation_factors)
                             if isinstance(perturbation_factors, (list, tuple)) else perturbation_factors,
                             mutable=None if mutable is None else
                             ([mutable] if isinstance(mutable, str) else list(mutable)),
                             synchronous=synchronous, seed=seed)
        # Validate now, so a bad option fails when the scheduler is built, not at the first trial.
        validate_options(perturbation_interval, burn_in_period, quantile_fraction, resample_probability,
                         perturbation_factors, mode or "max", synchronous, seed)
        try:
            self._space = Space.of(space) if space is not None else None
        except SpaceError as exc:
            raise PBTConfigError(f"PBTScheduler: space: {exc}") from None
        if self._space is not None and self._options["mutable"] is not None:
            PBT(self._space, mutable=self._options["mutable"])  # names checked against the space
        self._time_attr, self._metric, self._mode = time_attr, metric, mode
        self._time_sharing, self._copy = time_sharing, copy_checkpoints
        self._state_path = os.fspath(state_path) if state_path is not None else None
        self._core: PBT | None = None
        self._path: str | None = None
        self._loaded = False
        self._staging_checked = False  # drop_staged_copy looked for a stale copy in this process
        self._saved_version: int | None = None
        self._verified = False
        self._queue: list = []  # synchronous mode: decisions waiting for their trials to pause
        self._injected: dict[str, str] = {}  # trial id -> path of the cloned checkpoint it restarts from
        self._base_tags: dict[str, str] = {}
        self._warned: set[str] = set()
        self._seen_waiting: dict[str, set] = {}  # time sharing: who waited at a trial's last decision point
        if self._space is not None and self._state_path is not None and self._metric and self._mode:
            self._ensure_core(None, None)  # an existing state file is readable right away

    # ---- results -----------------------------------------------------------------------

    @property
    def policy(self) -> PBT:
        """The underlying policy (available once the space is known)."""
        if self._core is None:
            raise NoSearchSpaceError(
                "PBTScheduler: the policy exists once the first trial was added (or when space=..., "
                "metric=..., mode=... and state_path=... are given); run the experiment first")
        return self._core

    @property
    def state_path(self) -> str | None:
        return self._path or self._state_path

    def lineage(self) -> list[dict]:
        """Every exploit, in order: ``target``, ``donor``, ``time`` (the target's progress
        when it was exploited), ``donor_time`` (progress of the cloned checkpoint, which the
        target continues from), ``target_config`` (before), ``donor_config`` (cloned),
        ``new_config`` (after explore), ``operations``, ``generation`` (synchronous mode).
        Configs are as the trainable receives them."""
        core = self.policy
        out = []
        for r in core.lineage():
            d = r.to_json()
            for key in ("target_config", "donor_config", "new_config"):
                d[key] = core.to_config(d[key])
            out.append(d)
        return out

    def config_schedule(self, trial_id: str) -> list[tuple[float, Any]]:
        """``[(t0, config0), (t1, config1), ...]``: config ``k`` applies to the steps after
        ``t_k``. Training from scratch with it reproduces ``trial_id``'s final state."""
        core = self.policy
        return [(t, core.to_config(flat)) for t, flat in core.config_schedule(trial_id)]

    def scores(self) -> dict[str, list[tuple[float, float]]]:
        """``{trial_id: [(t, value), ...]}`` at each decision point (values in user units)."""
        return {tid: list(m.scores) for tid, m in self.policy.members.items()}

    # ---- Tune contract -----------------------------------------------------------------

    def set_search_properties(self, metric: str | None, mode: str | None, **spec) -> bool:
        if self._metric and metric and metric != self._metric:
            return False
        if self._mode and mode and mode != self._mode:
            return False
        if mode is not None and mode not in MODES:
            raise PBTConfigError(f"PBTScheduler: mode must be 'min' or 'max', got {mode!r}; pass "
                                 f"mode='min' or mode='max' in TuneConfig")
        self._metric = self._metric or metric
        self._mode = self._mode or mode
        if self._metric is None and self._mode:
            self._metric = DEFAULT_METRIC
        return True

    def on_trial_add(self, tune_controller: "TuneController", trial: Trial) -> None:
        core = self._ensure_core(tune_controller, trial)
        if not self._staging_checked and self._state_path is not None:
            # A restore staged a copy of our state file that Tune would upload over it.
            self._staging_checked = True
            if _ray_private.drop_staged_copy(trial, self._state_path):
                logger.debug("PBTScheduler: removed the stale copy of %s staged by the restore",
                             self._state_path)
        tid = trial.trial_id
        try:
            flat = core.space.to_flat(trial.config)
        except SpaceError as exc:
            raise PBTConfigError(
                f"PBTScheduler: trial {tid}'s config does not fit the search space: {exc}; give "
                f"PBTScheduler(space=...) the space the trials are drawn from") from None
        core.add(tid, flat)
        undone = core.on_restore(tid, flat)  # resumed: Tune's snapshot may predate an exploit
        if undone is not None:
            self._injected.pop(tid, None)
            logger.warning(
                "PBTScheduler: trial %s came back from Tune's experiment snapshot without its exploit "
                "at %s=%g (a clone of %s): the driver stopped before Tune saved it, so the trial "
                "continues from its own checkpoint and the exploit is taken out of the lineage",
                tid, self._time_attr, undone.time, undone.donor)
        tag = trial.experiment_tag or ""
        self._base_tags.setdefault(tid, tag.split("@pbt", 1)[0])
        if core.synchronous and core.held(tid) and trial.status == Trial.PENDING:
            # Resumed experiment: Tune re-queues paused trials as PENDING; keep it at the barrier.
            trial.set_status(Trial.PAUSED)
        self._persist()

    def on_trial_result(self, tune_controller: "TuneController", trial: Trial, result: dict) -> str:
        core = self._ensure_core(tune_controller, trial)
        if self._metric not in result and not user_keys(result):
            return TrialScheduler.CONTINUE  # nothing reported (a trainable that only returned)
        t = self._number(result, self._time_attr, "time_attr", trial, allow_nonfinite=False)
        value = self._number(result, self._metric, "metric", trial, allow_nonfinite=True)
        function = _ray_private.is_function_trainable(trial)
        reported = bool(result.get(SHOULD_CHECKPOINT))
        decisions = core.on_result(trial.trial_id, t, value, reported or not function)
        own = decisions[0]
        self._queue.extend(decisions[1:])
        action = self._act(tune_controller, trial, own, reported, function, t)
        self._persist()
        return action

    def on_trial_complete(self, tune_controller: "TuneController", trial: Trial, result: dict) -> None:
        self._leave(trial, "complete")

    def on_trial_error(self, tune_controller: "TuneController", trial: Trial) -> None:
        self._leave(trial, "error")

    def on_trial_remove(self, tune_controller: "TuneController", trial: Trial) -> None:
        self._leave(trial, "remove")

    def choose_trial_to_run(self, tune_controller: "TuneController") -> Trial | None:
        trials = tune_controller.get_trials()
        core = self._core
        if core is None:
            return next((t for t in trials if t.status == Trial.PENDING), None)
        if self._queue:
            self._drain_queue(tune_controller)
            self._persist()
        candidates = [t for t in trials if t.status == Trial.PENDING
                      or (t.status == Trial.PAUSED and not core.held(t.trial_id))]
        if not candidates:
            return None

        def key(t: Trial):
            member = core.members.get(t.trial_id)
            progress = member.time if member is not None and member.time is not None else 0.0
            return (progress, t.status != Trial.PENDING)

        return min(candidates, key=key)  # the least advanced first: members take turns

    def debug_string(self) -> str:
        head = (f"Using PBT ({'synchronous' if self._options['synchronous'] else 'asynchronous'}, "
                f"interval {self._options['perturbation_interval']} {self._time_attr})")
        return head if self._core is None else f"{head}: {self._core.summary()}"

    def save(self, checkpoint_path: str) -> None:
        _write_json(checkpoint_path, self._state())

    def restore(self, checkpoint_path: str) -> None:
        self._load_state(_read_json(checkpoint_path))
        self._saved_version = None

    # ---- decisions -----------------------------------------------------------------------

    def _act(self, controller, trial: Trial, own, reported: bool, function: bool, t: float) -> str:
        core = self._core
        if isinstance(own, Pause):  # synchronous: held at the barrier (Tune checkpoints on PAUSE)
            return TrialScheduler.PAUSE
        if isinstance(own, Exploit):  # asynchronous: clone a donor now
            done = self._execute(controller, own, running=True)
            return TrialScheduler.NOOP if done else TrialScheduler.CONTINUE
        if not isinstance(own, Continue):  # the policy gives the reporter nothing else
            return TrialScheduler.CONTINUE
        if own.reason == NO_CHECKPOINT and function and not core.members[trial.trial_id].ever_checkpointed:
            self._warn_no_checkpoint(trial, t)
        if own.reason in _CONCLUDED:
            if (not core.synchronous and self._time_sharing and self._starved(controller, trial)
                    and (reported or not function)):
                self._seen_waiting.pop(trial.trial_id, None)
                return TrialScheduler.PAUSE  # take turns; Tune checkpoints the trial on PAUSE
            if not function:
                _ray_private.request_save(controller, trial)  # so that it can be cloned
        return TrialScheduler.CONTINUE

    def _execute(self, controller, exploit: Exploit, running: bool) -> bool | None:
        """Carry ``exploit`` out: True done, False aborted, None not yet possible (the
        synchronous target or donor is still saving at the barrier)."""
        core = self._core
        if exploit not in core.pending():
            return False  # the target left the population meanwhile
        trials = {t.trial_id: t for t in controller.get_trials()}
        target, donor = trials.get(exploit.target), trials.get(exploit.donor)
        if target is None or target.status in (Trial.TERMINATED, Trial.ERROR):
            core.abort(exploit, "target ended")
            return False
        if not running and (target.status != Trial.PAUSED
                            or (donor is not None and donor.status == Trial.RUNNING)):
            return None  # wait until both paused at the barrier (their checkpoints registered)
        found = self._donor_checkpoint(donor, exploit)
        if found is None:
            logger.debug("PBT: exploit %s <- %s postponed: the donor's checkpoint at %s=%s is not "
                         "registered yet", exploit.target, exploit.donor, self._time_attr, exploit.donor_time)
            core.abort(exploit, "donor checkpoint not registered")
            return False
        checkpoint, metrics, donor_time = found
        if self._copy or (self._copy is None and (_ray_private.num_to_keep(target) is not None
                                                 or _ray_private.num_to_keep(donor) is not None)):
            checkpoint = _copy_checkpoint(checkpoint, f"pbt-{exploit.target}-{core.members[exploit.target].exploits + 1}")
        if running:
            _ray_private.pause_without_saving(controller, target)
        _ray_private.restart_from(target, checkpoint, {k: v for k, v in metrics.items() if k not in _NOT_INHERITED})
        config = _overlay(donor.config, core.to_config(exploit.new_config), core.space.template)
        tag = f"{self._base_tags.get(exploit.target, '')}@pbt{core.members[exploit.target].exploits + 1}"
        _ray_private.set_config(target, config, tag)
        value = core.members[exploit.target].value
        core.commit(exploit, donor_time=donor_time)
        self._injected[exploit.target] = str(checkpoint.path)
        logger.info("PBT: trial %s (%s=%s at %s=%g) clones %s (at %s=%g)%s; explore: %s",
                    exploit.target, self._metric, "?" if value is None else f"{value:.6g}",
                    self._time_attr, exploit.time, exploit.donor, self._time_attr, donor_time,
                    f", generation {exploit.generation}" if exploit.generation is not None else "",
                    ", ".join(f"{k}: {exploit.donor_config.get(k)!r} -{op}-> {exploit.new_config.get(k)!r}"
                              for k, op in exploit.operations.items()))
        return True

    def _donor_checkpoint(self, donor: Trial | None, exploit: Exploit):
        """``(checkpoint, metrics, t)`` of the donor's latest own checkpoint, or None.

        "Own": registered since its last exploit, so not the clone it restarted from; it was
        then taken under the donor's current config."""
        if donor is None:
            return None
        found = _ray_private.latest_checkpoint(donor)
        if found is None:
            return None
        checkpoint, metrics = found
        if self._injected.get(donor.trial_id) == str(checkpoint.path):
            return None
        t = metrics.get(self._time_attr)
        if isinstance(t, bool) or not isinstance(t, numbers.Real) or not math.isfinite(t):
            t = exploit.donor_time
        return checkpoint, metrics, float(t)

    def _drain_queue(self, controller) -> None:
        waiting = []
        for decision in self._queue:
            if isinstance(decision, Exploit) and self._execute(controller, decision, running=False) is None:
                waiting.append(decision)
            # Resume: nothing to do; the trial is no longer held and will be chosen to run.
        self._queue = waiting

    def _leave(self, trial: Trial, event: str) -> None:
        if self._core is None:
            return
        core = self._core
        if trial.trial_id not in core.members:
            return
        handler = {"complete": core.on_complete, "error": core.on_error, "remove": core.on_remove}[event]
        self._queue.extend(handler(trial.trial_id))
        self._persist()

    def _starved(self, controller, trial: Trial) -> bool:
        """Whether another trial has been waiting to run (PENDING, or PAUSED and not held)
        since ``trial``'s previous decision point without making progress: then the cluster
        is too small for the population and ``trial`` should yield. Trials that wait only
        for a moment (an exploited trial about to restart, a trial being started) do not
        count, so a population that fits the cluster is never paused for time sharing."""
        core = self._core

        def progress(tid: str):
            member = core.members.get(tid)
            return None if member is None else member.time

        now = {(t.trial_id, progress(t.trial_id)) for t in controller.get_trials()
               if t is not trial and (t.status == Trial.PENDING
                                      or (t.status == Trial.PAUSED and not core.held(t.trial_id)))}
        before = self._seen_waiting.get(trial.trial_id, set())
        self._seen_waiting[trial.trial_id] = now
        return bool(now & before)

    def _warn_no_checkpoint(self, trial: Trial, t: float) -> None:
        if "no_checkpoint" in self._warned:
            return
        self._warned.add("no_checkpoint")
        logger.warning(
            "PBTScheduler: trial %s is due for exploit/explore at %s=%g but has not reported any "
            "checkpoint. PBT clones checkpoints, so a trial is only exploited, cloned or paused once "
            "it has one; a trainable that never checkpoints gets no PBT at all. Fix: report with "
            "tune.report(metrics, checkpoint=tune.Checkpoint.from_directory(dir)) at least every "
            "perturbation_interval (%s) and resume from tune.get_checkpoint() at start. (Shown once.)",
            trial.trial_id, self._time_attr, t, self._options["perturbation_interval"])

    # ---- state -------------------------------------------------------------------------

    def _ensure_core(self, controller, trial: Trial | None) -> PBT:
        if self._core is None:
            if self._metric is None or self._mode is None:
                raise PBTConfigError(
                    f"PBTScheduler: metric and mode must be set before trials run, got "
                    f"metric={self._metric!r}, mode={self._mode!r}; pass them to PBTScheduler(...) "
                    f"or to tune.TuneConfig(metric=..., mode=...)")
            if not self._verified:
                _ray_private.verify()
                self._verified = True
            space = self._space or _space_of_searcher(controller)
            if space is None:
                raise NoSearchSpaceError(
                    "PBTScheduler: no search space to explore in: none was given and the search "
                    "algorithm is not a tuneorch searcher; pass PBTScheduler(space=...) (the same "
                    "space the trials are drawn from, e.g. your Tune param_space) or use "
                    "search='random' / 'tpe'")
            self._space = space
            self._core = PBT(space, mode=self._mode, context={"metric": self._metric,
                                                              "time_attr": self._time_attr},
                             **self._options)
        if not self._loaded:
            path = self._state_path
            if path is None and trial is not None:
                staging = _ray_private.experiment_staging_dir(trial)
                path = None if staging is None else os.path.join(staging, self.STATE_FILE)
            if path is not None:
                self._path, self._loaded = path, True
                state = _read_json(path, missing_ok=True)
                if state is not None:
                    self._load_state(state)
                    logger.info("PBTScheduler: loaded %d members and %d lineage records from %s",
                                len(self._core.members), len(self._core.lineage()), path)
                    self._saved_version = self._core.version
        return self._core

    def _state(self) -> dict:
        state = self.policy.to_dict()
        state["adapter"] = {"injected": dict(self._injected), "base_tags": dict(self._base_tags)}
        return state

    def _load_state(self, state: Mapping) -> None:
        self.policy.load_dict(state)
        adapter = state.get("adapter") or {}
        self._injected = dict(adapter.get("injected") or {})
        self._base_tags.update(adapter.get("base_tags") or {})
        self._queue = []

    def _persist(self) -> None:
        if self._core is None or self._path is None or self._core.version == self._saved_version:
            return
        _write_json(self._path, self._state())
        self._saved_version = self._core.version

    def _number(self, result: Mapping, key: str, role: str, trial: Trial,
                allow_nonfinite: bool) -> float:
        return result_number("PBTScheduler", result, key, role, trial.trial_id, allow_nonfinite)

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        state["_loaded"] = False  # a copy (e.g. from tuner.pkl) reads the state file again
        state["_staging_checked"] = False
        state["_saved_version"] = None
        return state


# ---- helpers -------------------------------------------------------------------------------



def _space_of_searcher(controller) -> Space | None:
    """The space of the first tuneorch searcher behind Tune's search algorithm
    (``SearchGenerator`` -> ``ConcurrencyLimiter`` -> searcher, via public ``.searcher``)."""
    obj = getattr(controller, "search_alg", None) if controller is not None else None
    for _ in range(8):
        if obj is None:
            return None
        space = getattr(obj, "space", None)
        if isinstance(space, Space):
            return space
        obj = getattr(obj, "searcher", None)
    return None


def _overlay(base: Any, new: Any, template: Any) -> Any:
    """``new`` (a config built from the space) over ``base`` (a full config of the donor,
    which may hold keys the space does not know, e.g. constants from Tune's param_space)."""
    if isinstance(template, Mapping) and isinstance(base, Mapping) and isinstance(new, Mapping):
        out = {k: copy.deepcopy(v) for k, v in base.items() if k not in template}
        for k, v in new.items():
            out[k] = _overlay(base.get(k), v, template.get(k))
        return out
    return new


def _copy_checkpoint(checkpoint: Any, suffix: str) -> Any:
    """A copy of ``checkpoint`` next to it (same filesystem), outside Tune's bookkeeping, so
    Tune's ``num_to_keep`` cannot delete it before the target has restarted from it."""
    import pyarrow.fs
    from ray.tune import Checkpoint

    destination = f"{str(checkpoint.path).rstrip('/')}-{suffix}"
    checkpoint.filesystem.create_dir(destination, recursive=True)
    pyarrow.fs.copy_files(checkpoint.path, destination, source_filesystem=checkpoint.filesystem,
                          destination_filesystem=checkpoint.filesystem)
    return Checkpoint(path=destination, filesystem=checkpoint.filesystem)


def _write_json(path: str, data: Any) -> None:
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


def _read_json(path: str, missing_ok: bool = False) -> Any:
    try:
        if "://" not in path or path.startswith("file://"):
            local = path[len("file://"):] if path.startswith("file://") else path
            if missing_ok and not os.path.exists(local):
                return None
            with open(local) as f:
                return json.load(f)
        import pyarrow.fs

        fs, fs_path = pyarrow.fs.FileSystem.from_uri(path)
        if missing_ok and fs.get_file_info(fs_path).type == pyarrow.fs.FileType.NotFound:
            return None
        with fs.open_input_stream(fs_path) as f:
            return json.loads(f.read().decode())
    except (OSError, ValueError) as exc:
        raise PBTStateError(f"PBTScheduler: cannot read the state file {path!r} ({exc}); remove it "
                            f"to start afresh") from None

