"""Ray Tune adapter for the ASHA policy of :mod:`schedulers.core.asha`.

The policy (rungs, brackets, rounding, NaN rule, persistence format) is documented and
implemented there, without Ray. This file only translates Tune's hooks into policy events and
the returned actions into Tune decisions, and keeps the policy's state on disk.

Drop-in for Ray's ``ray.tune.schedulers.ASHAScheduler``: the same arguments, in the same
order, with Ray's meaning and defaults (``reduction_factor=4``, ``stop_last_trials=True``);
``eta`` is an alias of ``reduction_factor``. Our own options (``variant``, ``seed``,
``state_path``) are keyword-only.

Persistence (:mod:`schedulers.base`). Tune never calls a scheduler's ``save``/``restore`` (ray
issue 30838), so after ``Tuner.restore`` a scheduler would come back with the rung records it
had when the Tuner was built (empty). This scheduler writes its whole state as JSON after every
change (atomically: temporary file + ``os.replace``) and reloads it at its first hook call in a
process:

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
from typing import TYPE_CHECKING, Mapping

from ray.tune.experiment import Trial

from schedulers.base import (MetricTypeError, MissingMetricError, PromotionNeedsCheckpointError,
                             TuneorchScheduler)
from schedulers.core.asha import ASHA, ASHAConfigError, ASHAStateError, Status, validate_options
from schedulers.core.decisions import Action

if TYPE_CHECKING:
    from ray.tune.execution.tune_controller import TuneController

logger = logging.getLogger(__name__)

__all__ = ["ASHAScheduler", "ASHAConfigError", "ASHAStateError", "MissingMetricError",
           "MetricTypeError", "PromotionNeedsCheckpointError"]


class ASHAScheduler(TuneorchScheduler):
    """Asynchronous successive halving for Ray Tune, with state that survives a resume.

    Args (Ray's, in Ray's order, with Ray's defaults):
        time_attr: the result key measuring progress (monotone, numeric), e.g.
            ``"training_iteration"`` (default) or ``"time_total_s"``.
        metric: the result key to rank by; may come from ``TuneConfig(metric=...)`` instead.
        mode: ``"min"`` or ``"max"``; may come from ``TuneConfig(mode=...)`` instead.
        max_t: a trial reaching ``time_attr >= max_t`` is finished.
        grace_period: first rung (bracket 0), ``>= 1`` in units of ``time_attr``.
        reduction_factor: ``>= 2``: each rung keeps the best ``1/reduction_factor`` (default 4).
        brackets: number of brackets; bracket ``s`` starts at ``grace_period * eta**s``.
        stop_last_trials: ``True`` (default): a trial reaching ``max_t`` is stopped; ``False``:
            it runs on (until its own end or ``RunConfig(stop=...)``), judged at no further rung.

    Our options (keyword-only):
        eta: alias of ``reduction_factor`` (the paper's name; the YAML examples use it).
        variant: ``"stopping"`` (default: at each rung a trial continues or stops) or
            ``"promotion"`` (a trial pauses at each rung; paused trials in the top ``1/eta``
            of their rung are resumed from their checkpoint; needs checkpoints, see above).
        seed: seeds every random draw (bracket assignment, tie keys).
        state_path: where to keep the state file (see the module docstring).
    """

    NAME = "ASHAScheduler"
    STATE_FILE = "asha_state.json"
    CONFIG_ERROR = ASHAConfigError
    STATE_ERROR = ASHAStateError
    # The state file is rewritten at most this often (a whole rewrite costs ~0.1 s at 10,000
    # rung records), by whichever hook comes next; Tune calls choose_trial_to_run on every
    # loop, so it lags the decisions by about this much. A resume after a crash inside that
    # window re-decides the few trials concerned at their rung, against the same records (Tune's
    # own experiment snapshots are periodic too). New and paused trials are written at once.
    PERSIST_INTERVAL_S = 1.0

    def __init__(self, time_attr: str = "training_iteration", metric: str | None = None,
                 mode: str | None = None, max_t: float = 100, grace_period: float = 1,
                 reduction_factor: float = 4, brackets: int = 1, stop_last_trials: bool = True,
                 *, eta: float | None = None, variant: str = "stopping", seed: int | None = None,
                 state_path: str | os.PathLike | None = None):
        super().__init__(time_attr, metric, mode, seed=seed, state_path=state_path)
        if eta is not None and reduction_factor not in (4, eta):
            raise ASHAConfigError(f"ASHAScheduler: eta is another name for reduction_factor; got both, "
                                  f"eta={eta!r} and reduction_factor={reduction_factor!r}; pass one")
        eta = reduction_factor if eta is None else eta
        validate_options(grace_period, eta, max_t, brackets, mode or "min", variant, seed)
        if not isinstance(stop_last_trials, bool):
            raise ASHAConfigError(f"ASHAScheduler: stop_last_trials must be True or False, got "
                                  f"{stop_last_trials!r}; pass stop_last_trials=True (default) or False")
        self._max_t, self._grace_period, self._eta = max_t, grace_period, eta
        self._brackets, self._variant, self._stop_last = brackets, variant, stop_last_trials
        if variant == "promotion":
            # A pause must happen on the report that reached the rung, with its checkpoint.
            self._supports_buffered_results = False
        self.HOLDS_PAUSED = variant == "promotion"
        self._objectives: list[str] | None = None  # several objectives / constraints (configure_objectives)
        self._modes: list[str] | None = None
        self._constraints: tuple = ()
        self._load_now()  # an existing state file is readable right away

    def configure_objectives(self, metrics, modes, constraints=()) -> "ASHAScheduler":
        """Rank rungs by Pareto dominance and feasibility (multi-objective ASHA, Schmucker et al.
        2021; see :mod:`schedulers.core.asha`): ``metrics``/``modes`` one per objective,
        ``constraints`` :class:`search_algs.core.pareto.Constraint` values. The orchestrator calls
        it for ``metric: [a, b]`` or ``constraints: [...]``. Returns ``self``."""
        metrics, modes = list(metrics), list(modes)
        if not metrics or len(metrics) != len(modes) or any(m not in ("min", "max") for m in modes):
            raise ASHAConfigError(f"ASHAScheduler: configure_objectives needs one mode ('min'/'max') per "
                                  f"metric, got metrics={metrics!r}, modes={modes!r}")
        self._objectives, self._modes, self._constraints = metrics, modes, tuple(constraints)
        # Tune checks that every result holds ``metric``: the first objective
        self._metric, self._mode = metrics[0], modes[0]
        self._core, self._loaded, self._path, self._saved_version = None, False, None, None
        self._load_now()
        return self

    # ---- properties --------------------------------------------------------------------

    @property
    def variant(self) -> str:
        return self._variant

    @property
    def policy(self) -> ASHA:
        """The underlying policy (built and loaded on demand)."""
        return self._ensure_core(None, None)

    def rung_records(self) -> dict:
        """``{(bracket, milestone): {trial_id: value}}``, see :meth:`ASHA.rung_records`."""
        return self.policy.rung_records()

    def stopped_at_rung(self, trial_id: str) -> float | None:
        core = self._core
        state = core.trials.get(trial_id) if core is not None else None
        if state is None or state.status is not Status.STOPPED or state.level < 0:
            return None
        return core.levels[state.bracket][state.level]

    # ---- the base's hooks --------------------------------------------------------------

    def _build_core(self, tune_controller) -> ASHA:
        context = {"metric": self._metric, "time_attr": self._time_attr}
        if self._objectives is not None:
            context.update(metric=self._objectives, constraints=[str(c) for c in self._constraints])
        return ASHA(self._grace_period, self._eta, self._max_t, self._brackets,
                    self._mode if self._modes is None else self._modes,
                    self._variant, self._seed, context=context, stop_last_trials=self._stop_last)

    def _read(self, result: Mapping, trial: Trial):
        """Several objectives: ``(t, (values, violation))``; a constraint metric the trial does
        not report is a :class:`MissingMetricError` naming it and what the trial reported."""
        read = super()._read(result, trial)
        if read is None or self._objectives is None:
            return read
        from schedulers._results import result_number, user_keys
        from search_algs.core.pareto import total_violation

        values = [result_number(self.NAME, result, m, "metric", trial.trial_id, allow_nonfinite=True)
                  for m in self._objectives]
        for c in self._constraints:
            if c.metric not in result:
                raise MissingMetricError(
                    f"{self.NAME}: trial {trial.trial_id} reported no {c.metric!r}, which the constraint "
                    f"'{c}' names (it reported {user_keys(result)}); report it in every tune.report(...) "
                    f"or fix the constraint's metric name")
        return read[0], (values, total_violation(self._constraints, result))

    def _on_result(self, tune_controller, trial: Trial, result: Mapping, t: float, value) -> str:
        if self._objectives is not None:
            decision = self._core.decide(trial.trial_id, t, *value)
        else:
            decision = self._core.decide(trial.trial_id, t, value)
        if decision.action is Action.PAUSE:
            self._check_can_resume(trial, result, t, ", or use variant='stopping'")
        # A pause is written at once: the paused trial waits on it for promotion after a resume.
        self._persist(force=decision.action is Action.PAUSE)
        return self._tune(decision)

    def _loaded_text(self) -> str:
        return f"{len(self._core.trials)} trials' rung records"

    def _label(self) -> str:
        return f"ASHAScheduler(variant={self._variant!r})"

    def debug_string(self) -> str:
        head = f"Using ASHA ({self._variant}, eta={self._eta}, max_t={self._max_t})"
        return head if self._core is None else head + "\n" + self._core.summary()
