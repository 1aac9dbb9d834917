"""The contract every registered scheduler keeps, as scripted event sequences (no cluster).

Each test runs for every name in ``orchestrator.registry.SCHEDULERS`` that names one of ours
(``fifo`` is Tune's own): a new scheduler is covered the moment it is registered. Trials and the
controller are stand-ins for Tune's; :func:`simulate` is a small Tune loop (start the trial
``choose_trial_to_run`` picks, one report per running trial per round, carry the returned
decision out) that the tests script faults into.
"""

from __future__ import annotations

import math
import types

import pytest
from ray.tune.experiment import Trial
from ray.tune.schedulers import TrialScheduler
from ray.tune.trainable import FunctionTrainable

from orchestrator import registry
from schedulers.base import MissingMetricError, TuneorchScheduler
from search_algs.errors import TuneorchError
from search_algs.space import Float

NAMES = sorted(name for name, target in registry.SCHEDULERS.items() if target is not None)
SPACE = {"lr": Float(0.01, 1.0)}
MAX_T = 9
# Options that make each scheduler decide within MAX_T steps (defaults otherwise).
OPTIONS = {
    "asha": {"max_t": MAX_T, "grace_period": 1, "reduction_factor": 3},
    "pbt": {"perturbation_interval": 2, "copy_checkpoints": False},
    "hyperband": {"max_t": MAX_T, "grace_period": 1, "reduction_factor": 3},
}
DECISIONS = {TrialScheduler.CONTINUE, TrialScheduler.PAUSE, TrialScheduler.STOP, TrialScheduler.NOOP}


def make(name: str, seed: int = 0, state_path=None, **extra) -> TuneorchScheduler:
    """Built the way the orchestrator builds it: options, then ``configure`` with what the class
    declares it takes."""
    cls = registry.scheduler_class(name)
    s = cls(time_attr="training_iteration", metric="loss", mode="min", **{**OPTIONS.get(name, {}), **extra})
    given = {"seed": seed, "state_path": state_path, "space": SPACE}
    return s.configure(**{k: v for k, v in given.items() if k in cls.CONFIGURABLE})


class FakeTrial:
    def __init__(self, trial_id: str, lr: float):
        self.trial_id, self.config, self.status = trial_id, {"lr": lr}, Trial.PENDING
        self.experiment_tag, self.storage, self.checkpoint = trial_id, None, None
        self.latest_checkpoint_result = None
        self.step = 0  # what the trainable would resume from
        self.run_metadata = types.SimpleNamespace(
            checkpoint_manager=types.SimpleNamespace(
                checkpoint_config=types.SimpleNamespace(num_to_keep=None), _latest_checkpoint_result=None),
            invalidate_cache=lambda: None)

    def get_trainable_cls(self):
        return FunctionTrainable

    def set_status(self, status):
        self.status = status

    def set_config(self, config):
        self.config = dict(config)

    def set_experiment_tag(self, tag):
        self.experiment_tag = tag

    def report(self, t: float) -> None:
        """A checkpointed report at step ``t``: the trial can be resumed or cloned from it."""
        self.step = t
        self.checkpoint = self.latest_checkpoint_result = types.SimpleNamespace(
            checkpoint=types.SimpleNamespace(path=f"/ckpt/{self.trial_id}/{t}"),
            metrics={"training_iteration": t})


class FakeController:
    """What schedulers call on Tune's controller."""

    def __init__(self, scheduler, trials, finished=True):
        self.scheduler, self.trials = scheduler, trials
        self.search_alg = types.SimpleNamespace(is_finished=lambda: finished)

    def get_trials(self):
        return self.trials

    def stop_trial(self, trial):
        if trial.status in (Trial.PAUSED, Trial.PENDING):
            self.scheduler.on_trial_remove(self, trial)
        trial.status = Trial.TERMINATED

    def pause_trial(self, trial, should_checkpoint=True):
        trial.status = Trial.PAUSED

    def _schedule_trial_save(self, trial, result=None):
        pass


def loss(trial: FakeTrial, t: float, nan: str | None) -> float:
    if trial.trial_id == nan:
        return math.nan
    return (trial.config["lr"] - 0.3) ** 2 + 1.0 / t


def result(t, value, **extra):
    return {"training_iteration": t, "loss": value, "should_checkpoint": True, "done": False, **extra}


def simulate(s, trials, *, nan=None, error=None, rounds=80, log=None, ctl=None):
    """Run the stand-in Tune loop until every trial ended (or ``rounds``); returns the log of
    ``(trial_id, t, decision)``. ``error=(trial_id, t)`` makes that trial fail at step ``t``."""
    ctl = ctl or FakeController(s, trials)
    log = [] if log is None else log
    for trial in trials:
        if trial.trial_id not in getattr(s, "_added", set()):
            s.on_trial_add(ctl, trial)
    for _ in range(rounds):
        while True:  # start everything that may run (the cluster is large enough)
            chosen = s.choose_trial_to_run(ctl)
            if chosen is None:
                break
            assert chosen.status in (Trial.PENDING, Trial.PAUSED), (chosen.trial_id, chosen.status)
            restart = chosen.run_metadata.checkpoint_manager._latest_checkpoint_result
            if restart is not None:  # a PBT exploit: it continues from the donor's checkpoint
                chosen.step = restart.metrics["training_iteration"]
                chosen.run_metadata.checkpoint_manager._latest_checkpoint_result = None
            chosen.status = Trial.RUNNING
        running = [t for t in trials if t.status == Trial.RUNNING]
        if not running:
            break
        for trial in running:
            if trial.status != Trial.RUNNING:
                continue  # paused meanwhile (a PBT exploit of another report)
            t = trial.step + 1
            if error and (trial.trial_id, t) == error:
                trial.status = Trial.ERROR
                s.on_trial_error(ctl, trial)
                log.append((trial.trial_id, t, "ERROR"))
                continue
            trial.report(t)
            decision = s.on_trial_result(ctl, trial, result(t, loss(trial, t, nan)))
            assert decision in DECISIONS, decision
            log.append((trial.trial_id, t, decision))
            if decision == TrialScheduler.PAUSE:
                trial.status = Trial.PAUSED
            elif decision == TrialScheduler.STOP or t >= 2 * MAX_T:
                trial.status = Trial.TERMINATED
                s.on_trial_complete(ctl, trial, result(t, loss(trial, t, nan)))
    return log


def population(n: int = 9):
    return [FakeTrial(f"t{i}", 0.05 + 0.1 * i) for i in range(n)]


# ---- the contract ----------------------------------------------------------------------------


@pytest.mark.parametrize("name", NAMES)
def test_registered_scheduler_is_built_on_the_base(name):
    cls = registry.scheduler_class(name)
    assert issubclass(cls, TuneorchScheduler)
    assert set(cls.CONFIGURABLE) <= {"seed", "state_path", "space"}
    s = make(name, seed=5)
    assert s.seed == 5 and s.metric == "loss"


@pytest.mark.parametrize("name", NAMES)
def test_a_run_ends_with_every_trial_ended_and_errors_tolerated(name):
    s = make(name)
    trials = population()
    log = simulate(s, trials, error=("t2", 2))
    assert all(t.status in (Trial.TERMINATED, Trial.ERROR) for t in trials), \
        [(t.trial_id, t.status) for t in trials]
    assert [t.trial_id for t in trials if t.status == Trial.ERROR] == ["t2"]
    assert not any(tid == "t2" and step > 2 for tid, step, _ in log)
    assert s.choose_trial_to_run(FakeController(s, trials)) is None
    assert isinstance(s.debug_string(), str)


@pytest.mark.parametrize("name", NAMES)
def test_the_same_seed_gives_the_same_decisions(name):
    assert simulate(make(name, seed=3), population()) == simulate(make(name, seed=3), population())


@pytest.mark.parametrize("name", NAMES)
def test_removed_and_externally_paused_trials(name):
    s = make(name)
    trials = population(6)
    ctl = FakeController(s, trials, finished=False)
    for trial in trials:
        s.on_trial_add(ctl, trial)
    # a pending trial is removed before it ever ran: never chosen, never a problem
    trials[5].status = Trial.TERMINATED
    s.on_trial_remove(ctl, trials[5])
    # a trial paused by something else than the scheduler (Tune, a user) is resumed again
    first = s.choose_trial_to_run(ctl)
    first.status = Trial.RUNNING
    first.report(1)
    s.on_trial_result(ctl, first, result(1, 0.5))
    other = next(t for t in trials if t.status == Trial.PENDING)
    other.status = Trial.PAUSED  # paused before it reported anything
    seen = set()
    for _ in range(10):
        chosen = s.choose_trial_to_run(ctl)
        if chosen is None:
            break
        assert chosen is not trials[5]
        seen.add(chosen.trial_id)
        chosen.status = Trial.RUNNING
    assert other.trial_id in seen


@pytest.mark.parametrize("name", NAMES)
def test_save_and_restore_mid_stream_then_identical_decisions(name, tmp_path):
    """Tune's save/restore and the state file (a crash: a new scheduler reads it) both bring the
    scheduler back so that the rest of the run is decided as without the interruption."""
    def first_half(s):
        trials = population()
        log = simulate(s, trials, rounds=3, nan="t2")
        return trials, log

    reference = make(name, seed=1)
    trials, _ = first_half(reference)
    rest = simulate(reference, trials, nan="t2")

    saved = make(name, seed=1, state_path=str(tmp_path / "live.json"))
    trials2, _ = first_half(saved)
    saved.save(str(tmp_path / "tune-save.json"))
    for restored in (make(name, seed=1), None):
        if restored is None:  # after a crash: a new scheduler on the same state file
            restored = make(name, seed=1, state_path=str(tmp_path / "live.json"))
        else:
            restored.restore(str(tmp_path / "tune-save.json"))
        copy = [FakeTrial(t.trial_id, t.config["lr"]) for t in trials2]
        for c, t in zip(copy, trials2):
            c.config, c.status, c.step = dict(t.config), t.status, t.step
            c.checkpoint, c.latest_checkpoint_result = t.checkpoint, t.latest_checkpoint_result
            c.experiment_tag, c.run_metadata = t.experiment_tag, t.run_metadata  # a restart pending
        assert simulate(restored, copy, nan="t2") == rest


@pytest.mark.parametrize("name", NAMES)
def test_a_missing_metric_is_a_clear_error(name):
    s = make(name)
    trial = FakeTrial("a", 0.5)
    ctl = FakeController(s, [trial])
    s.on_trial_add(ctl, trial)
    trial.status = Trial.RUNNING
    with pytest.raises(MissingMetricError) as info:
        s.on_trial_result(ctl, trial, {"training_iteration": 1, "acc": 0.3, "val_loss": 1.0})
    assert isinstance(info.value, TuneorchError)
    message = str(info.value)
    assert "'loss'" in message and "['acc', 'val_loss']" in message and "trial a" in message
    # a trainable that only returned (reported nothing) is not an error
    assert s.on_trial_result(ctl, trial, {"training_iteration": 1, "done": True}) == TrialScheduler.CONTINUE


@pytest.mark.parametrize("name", NAMES)
def test_nan_is_never_promoted_nor_cloned(name):
    s = make(name)
    trials = population()
    log = simulate(s, trials, nan="t3")
    if hasattr(s, "lineage"):  # PBT: a diverged member is never a donor
        lineage = s.lineage()
        assert lineage, "the scripted run should exploit"
        assert all(r["donor"] != "t3" for r in lineage)
    else:  # rung schedulers: stopped at its first rung, nothing after
        assert s.stopped_at_rung("t3") is not None
        steps = [t for tid, t, _ in log if tid == "t3"]
        assert max(steps) == s.stopped_at_rung("t3")
        assert [d for tid, _, d in log if tid == "t3"][-1] == TrialScheduler.STOP


@pytest.mark.parametrize("name", NAMES)
def test_results_after_completion_change_nothing(name):
    s = make(name)
    trials = population(4)
    simulate(s, trials)
    ctl = FakeController(s, trials)
    state = s._state()
    for trial in trials:  # Tune may deliver a buffered result after a trial ended
        assert s.on_trial_result(ctl, trial, result(trial.step + 1, 0.0)) in (
            TrialScheduler.CONTINUE, TrialScheduler.STOP)
    assert s.choose_trial_to_run(ctl) is None
    after = s._state()
    for key in ("trials", "members", "lineage"):
        if key in state:
            assert after[key] == state[key]
