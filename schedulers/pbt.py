"""Population Based Training for Ray Tune: the adapter around :class:`schedulers.core.pbt.PBT`.

The policy (ranking, quantiles, exploit/explore, generations, lineage) lives in
:mod:`schedulers.core.pbt` and knows nothing of Ray. This module translates Tune's events
into the policy's and carries its decisions out; the few Ray internals that carrying out an
exploit needs are in :mod:`schedulers._ray_private` (see there for what and why).

Drop-in for Ray's ``PopulationBasedTraining``
--------------------------------------------
Every argument of Ray 2.60's ``PopulationBasedTraining`` is accepted, in Ray's order, with
Ray's meaning and default (``time_attr="time_total_s"``, ``perturbation_interval=60.0``,
``perturbation_factors=(1.2, 0.8)``, ...). ``hyperparam_mutations`` is the space explore draws
from, as in Ray: a list is a set of choices (moved to a neighbour or resampled), a Tune domain
(``tune.uniform``, ``tune.loguniform``, ``tune.choice``, ...) or one of ours is a range; its keys
are the parameters PBT may change (everything else in the config is kept as it is). A key the
trial's config lacks is drawn from it when the trial is added, as Ray does; a value outside it
(``tune.uniform(0, 1)`` in ``param_space`` but a list of choices in ``hyperparam_mutations``) is
moved to the nearest allowed value before the trial starts, with a warning. Refused: a plain
function as a ``hyperparam_mutations`` value (``lambda: random.uniform(a, b)``: explore needs the
bounds; write ``tune.uniform(a, b)``). ``custom_explore_fn(config)`` is called after the built-in
explore with the mutated parameters' config and must keep them inside ``hyperparam_mutations``.
``log_config``: the lineage (``config_schedule``) is always kept in the state file; ``False``
only silences the log line per exploit. ``synch`` is our ``synchronous``.

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
  bookkeeping. The space is ``hyperparam_mutations`` (Ray's way), else the one given as
  ``space=...`` (or by the orchestrator), else the one of the first tuneorch searcher found
  behind Tune's search algorithm.
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
import logging
import math
import numbers
import os
from typing import TYPE_CHECKING, Any, Callable, Iterable, Mapping, Sequence

from ray.tune.experiment import Trial
from ray.tune.result import SHOULD_CHECKPOINT
from ray.tune.schedulers import TrialScheduler

from schedulers import _ray_private
from schedulers.base import MetricTypeError, MissingMetricError, TuneorchScheduler
from schedulers.core.decisions import Continue, Exploit, Pause
from schedulers.core.pbt import (MIDDLE, NO_CHECKPOINT, PBT, TOO_FEW, TOP, PBTConfigError, PBTStateError,
                                 sample_param, validate_options)
from search_algs.errors import SpaceError, TuneorchError
from search_algs.space import Categorical, Float, Int, Space

if TYPE_CHECKING:
    from ray.tune.execution.tune_controller import TuneController

logger = logging.getLogger(__name__)

__all__ = ["PBTScheduler", "PBTConfigError", "PBTStateError", "MissingMetricError", "MetricTypeError",
           "NoSearchSpaceError"]

_CONCLUDED = (TOP, MIDDLE, TOO_FEW)  # a decision point passed without an exploit
_NOT_INHERITED = ("config", "trial_id", "experiment_tag", "done", SHOULD_CHECKPOINT)


class NoSearchSpaceError(TuneorchError, ValueError):
    """The scheduler has no search space to explore in."""


class PBTScheduler(TuneorchScheduler):
    """Population Based Training (Jaderberg et al. 2017) for Ray Tune.

    Every ``perturbation_interval`` of ``time_attr``, a trial in the bottom
    ``quantile_fraction`` of the population restarts from the checkpoint of a trial in the
    top quantile (exploit) with that trial's hyperparameters perturbed (explore).

    Args (Ray's, in Ray's order, with Ray's defaults; see the module docstring):
        time_attr: result key measuring progress (numeric, increasing); default
            ``"time_total_s"`` as Ray's (``"training_iteration"`` counts reports/epochs).
        metric, mode: what to rank by; may come from ``TuneConfig(metric=..., mode=...)``.
        perturbation_interval: reconsider each trial every this much ``time_attr`` (> 0).
        burn_in_period: no exploit before ``time_attr >= burn_in_period``.
        hyperparam_mutations: the parameters PBT may change and their ranges (Ray's format:
            a list of choices, a Tune domain, or a dict of those for nested keys).
        quantile_fraction: size of the bottom and the top quantile, in ``[0, 0.5]``
            (0: no exploitation).
        resample_probability: per parameter, chance of a fresh draw from the space
            instead of a perturbation, in ``[0, 1]``.
        perturbation_factors: numbers are multiplied by one of these (drawn per parameter),
            kept inside their bounds and on their grid; choices move to a neighbour.
        custom_explore_fn: ``f(config) -> config`` applied after the built-in explore.
        log_config: log each exploit (the lineage is kept in the state file either way).
        require_attrs: ``True``: a result without ``metric`` or ``time_attr`` is an error;
            ``False``: it is skipped, with one warning.
        synch: ``True``: trials wait for each other at every interval (a barrier) and are
            decided together; members that end or fail never block the others.

    Our options (keyword-only):
        mutable: names of the parameters explore may change (default: all of the space);
            an alternative to ``hyperparam_mutations`` when the space comes from elsewhere.
            Freeze architecture parameters the checkpoint depends on.
        synchronous: alias of ``synch``.
        space: the search space (anything ``Space.of`` accepts: our domains, a Ray Tune
            ``param_space``, a hyperopt space). Default: ``hyperparam_mutations``, else the
            space of the tuneorch searcher in use.
        time_sharing: asynchronous mode: when another trial has waited for resources since
            a trial's previous decision point, the trial pauses at its current one (on a
            checkpointed report) to let the least advanced waiting trial run: populations
            larger than the cluster take turns.
        copy_checkpoints: copy a cloned checkpoint before the target restarts from it.
            ``None`` (default): only when Tune may delete checkpoints (``num_to_keep``).
        seed: seeds every random draw (donor choice, explore).
        state_path: JSON file keeping lineage, scores and policy state across a resume;
            default ``pbt-state.json`` in the experiment folder (``orchestrator.api`` passes it).
    """

    NAME = "PBTScheduler"
    STATE_FILE = "pbt-state.json"
    CONFIG_ERROR = PBTConfigError
    STATE_ERROR = PBTStateError
    CONFIGURABLE = ("seed", "state_path", "space")
    # Built from a spec (YAML, CLI, orchestrator.tune), progress is counted in reports (epochs),
    # as the examples' perturbation_interval assumes; the class itself has Ray's default.
    SPEC_DEFAULTS = {"time_attr": "training_iteration"}
    _supports_buffered_results = False  # an exploit must act on the report that triggered it

    def __init__(self, time_attr: str = "time_total_s", metric: str | None = None,
                 mode: str | None = None, perturbation_interval: float = 60.0,
                 burn_in_period: float = 0.0, hyperparam_mutations: Mapping[str, Any] | None = None,
                 quantile_fraction: float = 0.25, resample_probability: float = 0.25,
                 perturbation_factors: Sequence[float] = (1.2, 0.8),
                 custom_explore_fn: Callable[[dict], dict] | None = None, log_config: bool = True,
                 require_attrs: bool = True, synch: bool = False, *,
                 mutable: Iterable[str] | None = None, synchronous: bool | None = None,
                 space: Any = None, time_sharing: bool = True,
                 copy_checkpoints: bool | None = None, seed: int | None = None,
                 state_path: str | os.PathLike | None = None):
        super().__init__(time_attr, metric, mode, seed=seed, state_path=state_path,
                         require_attrs=require_attrs)
        if synchronous is not None and synchronous != synch and synch is not False:
            raise PBTConfigError(f"PBTScheduler: synchronous is another name for synch; got both, "
                                 f"synch={synch!r} and synchronous={synchronous!r}; pass one")
        synch = synch if synchronous is None else synchronous
        for name, value in (("time_sharing", time_sharing), ("log_config", log_config)):
            if not isinstance(value, bool):
                raise PBTConfigError(f"PBTScheduler: {name} must be True or False, got {value!r}")
        if copy_checkpoints is not None and not isinstance(copy_checkpoints, bool):
            raise PBTConfigError(f"PBTScheduler: copy_checkpoints must be None, True or False, got "
                                 f"{copy_checkpoints!r}; leave it None to copy only when Tune may "
                                 f"delete checkpoints")
        if custom_explore_fn is not None and not callable(custom_explore_fn):
            raise PBTConfigError(f"PBTScheduler: custom_explore_fn must be a function f(config) -> config, "
                                 f"got {custom_explore_fn!r}")
        if hyperparam_mutations is not None and mutable is not None:
            raise PBTConfigError("PBTScheduler: hyperparam_mutations already names the parameters PBT may "
                                 f"change ({sorted(hyperparam_mutations)}); drop mutable={mutable!r}")
        self._options = dict(perturbation_interval=perturbation_interval, burn_in_period=burn_in_period,
                             quantile_fraction=quantile_fraction,
                             resample_probability=resample_probability,
                             perturbation_factors=tuple(perturbation_factors)
                             if isinstance(perturbation_factors, (list, tuple)) else perturbation_factors,
                             mutable=None if mutable is None else
                             ([mutable] if isinstance(mutable, str) else list(mutable)),
                             synchronous=synch)
        # Validate now, so a bad option fails when the scheduler is built, not at the first trial.
        validate_options(perturbation_interval, burn_in_period, quantile_fraction, resample_probability,
                         perturbation_factors, mode or "max", synch, seed)
        self._mutations = None if hyperparam_mutations is None else _mutation_space(hyperparam_mutations)
        self._space: Space | None = self._mutations
        if space is not None and self._mutations is None:
            self._configure_space(space)
        self._explore_fn = custom_explore_fn
        self._log_config = log_config
        self._time_sharing, self._copy = time_sharing, copy_checkpoints
        self._verified = False
        self._queue: list = []  # synchronous mode: decisions waiting for their trials to pause
        self._injected: dict[str, str] = {}  # trial id -> path of the cloned checkpoint it restarts from
        self._base_tags: dict[str, str] = {}
        self._seen_waiting: dict[str, set] = {}  # time sharing: who waited at a trial's last decision point
        self._turns: dict[str, int] = {}  # trial id -> when it was last chosen to run (a counter)
        self._load_now()  # an existing state file is readable right away

    # ---- results -----------------------------------------------------------------------

    @property
    def policy(self) -> PBT:
        """The underlying policy (available once the space is known)."""
        if self._core is None:
            if self._space is not None and self._metric and self._mode:
                return self._ensure_core(None, None)
            raise NoSearchSpaceError(
                "PBTScheduler: the policy exists once the first trial was added (or when space=... or "
                "hyperparam_mutations=..., metric=... and mode=... are given); run the experiment first")
        return self._core

    def lineage(self) -> list[dict]:
        """Every exploit, in order: ``target``, ``donor``, ``time`` (the target's progress
        when it was exploited), ``donor_time`` (progress of the cloned checkpoint, which the
        target continues from), ``target_config`` (before), ``donor_config`` (cloned),
        ``new_config`` (after explore), ``operations``, ``generation`` (synchronous mode).
        Configs are as the trainable receives them (the explored parameters)."""
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

    # ---- the base's hooks --------------------------------------------------------------

    def _configure_space(self, space: Any) -> None:
        if self._mutations is not None:
            return  # hyperparam_mutations is the space, as in Ray
        try:
            self._space = Space.of(space) if space is not None else None
        except SpaceError as exc:
            raise PBTConfigError(f"PBTScheduler: space: {exc}") from None
        if self._space is not None and self._options["mutable"] is not None:
            PBT(self._space, mutable=self._options["mutable"])  # names checked against the space

    def _can_build_now(self) -> bool:
        return self._space is not None

    def _loaded_text(self) -> str:
        return f"{len(self._core.members)} members and {len(self._core.lineage())} lineage records"

    def _build_core(self, tune_controller) -> PBT:
        if not self._verified:
            _ray_private.verify()
            self._verified = True
        space = self._space or _space_of_searcher(tune_controller)
        if space is None:
            raise NoSearchSpaceError(
                "PBTScheduler: no search space to explore in: no hyperparam_mutations were given and the "
                "search algorithm is not a tuneorch searcher; pass PBTScheduler(hyperparam_mutations={...}) "
                "as with Ray's PopulationBasedTraining (or space=..., the space the trials are drawn from) "
                "or use search='random' / 'tpe'")
        self._space = space
        explore_fn = None
        if self._explore_fn is not None:
            fn = self._explore_fn

            def explore_fn(flat: dict) -> dict:
                return space.to_flat(fn(space.to_config(flat)))
        return PBT(space, mode=self._mode, context={"metric": self._metric, "time_attr": self._time_attr},
                   seed=self._seed, explore_fn=explore_fn, **self._options)

    def _add(self, tune_controller, trial: Trial) -> None:
        core = self._core
        tid = trial.trial_id
        if self._mutations is not None and tid not in core.members:
            self._fit_to_mutations(trial)
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

    def _fit_to_mutations(self, trial: Trial) -> None:
        """As Ray's PBT: a mutated key the config lacks is drawn from ``hyperparam_mutations``;
        a value outside it is moved to the nearest allowed one (with a warning), before the
        trial starts."""
        config = copy.deepcopy(trial.config)
        changes = []
        for p in self._core.space.params:
            *parents, key = p.name.split("/")
            node = config
            for part in parents:
                node = node.setdefault(part, {})
            d = p.domain
            if key not in node:
                k = sample_param(p, self._core.rng)
                node[key] = d.choices[k] if isinstance(d, Categorical) else k
                continue
            value = node[key]
            if isinstance(d, Categorical):
                if any(value == c for c in d.choices):
                    continue
                numeric = [c for c in d.choices if isinstance(c, numbers.Real) and not isinstance(c, bool)]
                if numeric and isinstance(value, numbers.Real):
                    new = min(numeric, key=lambda c: abs(c - value))
                else:
                    new = d.choices[sample_param(p, self._core.rng)]
            elif isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value):
                if p.contains(int(value) if isinstance(d, Int) and float(value).is_integer() else value):
                    continue
                new = p.decode(p.encode(min(max(value, d.low), d.high)))
            else:
                continue  # not a number: to_flat names it
            node[key] = new
            changes.append(f"{p.name}={value!r} -> {new!r}")
        if config != trial.config:
            if changes:
                logger.warning("PBTScheduler: trial %s: %s outside hyperparam_mutations, moved to the "
                               "nearest allowed value before it starts", trial.trial_id, ", ".join(changes))
            _ray_private.set_config(trial, config, trial.experiment_tag or "")

    def _on_result(self, tune_controller, trial: Trial, result: Mapping, t: float, value: float) -> str:
        core = self._core
        function = _ray_private.is_function_trainable(trial)
        reported = bool(result.get(SHOULD_CHECKPOINT))
        decisions = core.on_result(trial.trial_id, t, value, reported or not function)
        own = decisions[0]
        self._queue.extend(decisions[1:])
        action = self._act(tune_controller, trial, own, reported, function, t, result)
        self._persist()
        return action

    # ---- Tune contract -----------------------------------------------------------------

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
            return (progress, self._turns.get(t.trial_id, -1), t.status != Trial.PENDING)

        # The least advanced first, and among equals the one that waited longest. Without the
        # second rule a trial that exploits at every decision point (cloned back to a paused
        # donor's time each time) won every tie against the paused donor, which never ran again:
        # seen with 4 members on 2 CPUs, two of them cloning the third for ever.
        chosen = min(candidates, key=key)
        self._turns[chosen.trial_id] = max(self._turns.values(), default=-1) + 1
        return chosen

    def debug_string(self) -> str:
        head = (f"Using PBT ({'synchronous' if self._options['synchronous'] else 'asynchronous'}, "
                f"interval {self._options['perturbation_interval']} {self._time_attr})")
        return head if self._core is None else f"{head}: {self._core.summary()}"

    # ---- state -------------------------------------------------------------------------

    def _state(self) -> dict:
        state = self.policy.to_dict()
        state["adapter"] = {"injected": dict(self._injected), "base_tags": dict(self._base_tags),
                            "seen_waiting": {tid: sorted([w, t] for w, t in seen)
                                             for tid, seen in self._seen_waiting.items()},
                            "turns": dict(self._turns)}
        return state

    def _load_state(self, state: Mapping, source: str = "state") -> None:
        self.policy.load_dict(state)
        adapter = state.get("adapter") or {}
        self._injected = dict(adapter.get("injected") or {})
        self._base_tags.update(adapter.get("base_tags") or {})
        self._seen_waiting = {tid: {(w, t) for w, t in seen}
                              for tid, seen in (adapter.get("seen_waiting") or {}).items()}
        self._turns = {tid: int(n) for tid, n in (adapter.get("turns") or {}).items()}
        self._queue = []

    # ---- decisions -----------------------------------------------------------------------

    def _act(self, controller, trial: Trial, own, reported: bool, function: bool, t: float,
             result: Mapping) -> str:
        core = self._core
        if isinstance(own, Pause):  # synchronous: held at the barrier (Tune checkpoints on PAUSE)
            return TrialScheduler.PAUSE
        if isinstance(own, Exploit):  # asynchronous: clone a donor now
            done = self._execute(controller, own, running=True, result=result)
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

    def _execute(self, controller, exploit: Exploit, running: bool, result: Mapping | None = None) -> bool | None:
        """Carry ``exploit`` out: True done, False aborted, None not yet possible (the
        synchronous target or donor is still saving at the barrier). ``result``: what the
        running target just reported."""
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
            try:
                checkpoint = _copy_checkpoint(checkpoint, f"pbt-{exploit.target}-{core.members[exploit.target].exploits + 1}")
            except FileNotFoundError as exc:
                # Tune's record of the donor's latest checkpoint names a folder that is gone (seen
                # after a resume from a killed driver): no exploit this time, the run goes on.
                logger.warning("PBT: exploit %s <- %s called off: the donor's checkpoint %s is missing "
                               "(%s)", exploit.target, exploit.donor, checkpoint.path, exc)
                core.abort(exploit, "donor checkpoint missing")
                return False
        if running:
            _ray_private.pause_without_saving(controller, target, result)
        _ray_private.restart_from(target, checkpoint, {k: v for k, v in metrics.items() if k not in _NOT_INHERITED})
        config = _overlay(donor.config, core.to_config(exploit.new_config), core.space.template)
        tag = f"{self._base_tags.get(exploit.target, '')}@pbt{core.members[exploit.target].exploits + 1}"
        _ray_private.set_config(target, config, tag)
        value = core.members[exploit.target].value
        core.commit(exploit, donor_time=donor_time)
        self._injected[exploit.target] = str(checkpoint.path)
        if self._log_config:
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

    def _leave(self, tune_controller, trial: Trial, event: str) -> None:
        core = self._core
        if core is None or trial.trial_id not in core.members:
            return
        handler = {"complete": core.on_complete, "error": core.on_error, "remove": core.on_remove}[event]
        self._queue.extend(handler(trial.trial_id))

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


def _mutation_space(mutations: Mapping[str, Any]) -> Space:
    """Ray's ``hyperparam_mutations`` as a space: a list or tuple is a set of choices, a dict
    nests, a Tune (or our) domain is itself; a plain function is refused (no bounds)."""
    from ray.tune.search.sample import Domain as RayDomain

    def convert(node: Any, path: str) -> Any:
        if isinstance(node, Mapping):
            return {k: convert(v, f"{path}/{k}" if path else str(k)) for k, v in node.items()}
        if isinstance(node, (list, tuple)):
            if not node:
                raise PBTConfigError(f"PBTScheduler: hyperparam_mutations['{path}'] is an empty list; give "
                                     f"the values it may take")
            return Categorical(list(node))
        if isinstance(node, (RayDomain, Float, Int, Categorical)):
            return node
        if callable(node):
            raise PBTConfigError(
                f"PBTScheduler: hyperparam_mutations['{path}'] is a function ({node!r}); explore needs the "
                f"range to stay in, which a function does not tell: write a Tune domain instead, e.g. "
                f"tune.uniform(low, high) or tune.loguniform(low, high), or a list of values")
        raise PBTConfigError(f"PBTScheduler: hyperparam_mutations['{path}'] must be a list of values, a Tune "
                             f"domain (tune.uniform, tune.choice, ...) or a dict of those, got {node!r}")

    if not isinstance(mutations, Mapping) or not mutations:
        raise PBTConfigError(f"PBTScheduler: hyperparam_mutations must be a non-empty dict "
                             f"{{name: list | tune domain | dict}}, got {mutations!r}")
    try:
        return Space.of(convert(mutations, ""))
    except SpaceError as exc:
        raise PBTConfigError(f"PBTScheduler: hyperparam_mutations: {exc}") from None
