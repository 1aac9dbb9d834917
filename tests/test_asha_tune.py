"""The ASHA adapter: its hooks with stand-in trials (fast), then real Ray Tune runs.

Real runs use the session fixture ``ray_local`` (2 CPUs), ``reuse_actors=True`` (a trial
start then costs milliseconds instead of an actor start) and a callback to record every
result in the driver, because ``TUNE_DISABLE_AUTO_CALLBACK_LOGGERS=1`` (conftest) means no
result.json is written for ``ResultGrid`` to read back.
"""

from __future__ import annotations

import json
import logging
import math
import os
import pickle
import signal
import tempfile

import pytest
from ray import tune
from ray.tune import Callback, Checkpoint
from ray.tune.error import TuneError
from ray.tune.experiment import Trial
from ray.tune.schedulers import TrialScheduler
from ray.tune.trainable import FunctionTrainable, Trainable

from orchestrator.registry import scheduler_class
from schedulers.asha import (ASHAConfigError, ASHAScheduler, ASHAStateError, MetricTypeError,
                             MissingMetricError, PromotionNeedsCheckpointError)
from schedulers.core.asha import ASHA, Status

# ---- stand-ins for Tune's trial and controller -----------------------------------------


class FakeTrial:
    def __init__(self, trial_id, trainable=FunctionTrainable, checkpoint=None, status=Trial.PENDING):
        self.trial_id, self.status, self.checkpoint = trial_id, status, checkpoint
        self.storage = None
        self._trainable = trainable

    def get_trainable_cls(self):
        return self._trainable

    def set_status(self, status):
        self.status = status


class FakeSearch:
    def __init__(self, finished=False):
        self.finished = finished

    def is_finished(self):
        return self.finished


class FakeController:
    """Calls the scheduler back the way TuneController.stop_trial does for a paused trial."""

    def __init__(self, scheduler, trials, finished=False):
        self.scheduler, self.trials, self.search_alg = scheduler, trials, FakeSearch(finished)

    def get_trials(self):
        return self.trials

    def stop_trial(self, trial):
        if trial.status in (Trial.PAUSED, Trial.PENDING):
            self.scheduler.on_trial_remove(self, trial)
        trial.status = Trial.TERMINATED


def result(t, loss, **extra):
    return {"training_iteration": t, "loss": loss, "time_total_s": 0.1 * t, "done": False,
            "trial_id": "x", **extra}


def sched(**kw):
    kw = {"metric": "loss", "mode": "min", "max_t": 9, "grace_period": 1, "eta": 3, "seed": 0, **kw}
    return ASHAScheduler(**kw)


# ---- adapter with stand-ins ------------------------------------------------------------


def test_registry_names_asha():
    assert scheduler_class("asha") is ASHAScheduler


def test_invalid_options_fail_at_construction():
    with pytest.raises(ASHAConfigError, match=r"eta \(Ray's reduction_factor\) must be >= 2, got 1"):
        ASHAScheduler(eta=1)
    with pytest.raises(ASHAConfigError, match=r"mode must be 'min', 'max' or None, got 'up'"):
        ASHAScheduler(mode="up")
    with pytest.raises(ASHAConfigError, match=r"time_attr must be a non-empty result key"):
        ASHAScheduler(time_attr="")


def test_metric_and_mode_from_tune_config_or_a_clear_error():
    s = ASHAScheduler(max_t=9)
    with pytest.raises(ASHAConfigError, match=r"metric and mode must be set.*TuneConfig"):
        s.on_trial_add(None, FakeTrial("a"))
    assert s.set_search_properties("loss", "max")
    s.on_trial_add(None, FakeTrial("a"))
    assert s.policy.mode == "max" and s.policy.context["metric"] == "loss"
    assert not sched().set_search_properties("acc", None)  # conflicting metric
    assert sched().set_search_properties("loss", "min")  # the same one is fine
    with pytest.raises(ASHAConfigError, match="mode must be 'min' or 'max', got 'best'"):
        ASHAScheduler().set_search_properties("loss", "best")


def test_stopping_decisions_through_the_hooks():
    s = sched()
    trials = [FakeTrial(t) for t in "abc"]
    for t in trials:
        s.on_trial_add(None, t)
    got = [s.on_trial_result(None, t, result(1, v)) for t, v in zip(trials, [2.0, 1.0, 3.0])]
    assert got == [TrialScheduler.CONTINUE, TrialScheduler.CONTINUE, TrialScheduler.STOP]
    assert s.on_trial_result(None, trials[1], result(9, 0.5)) == TrialScheduler.STOP  # max_t
    assert s.policy.status("b") is Status.FINISHED
    assert "bracket 0" in s.debug_string()


def test_missing_or_non_numeric_metric_is_a_clear_error():
    s = sched()
    trial = FakeTrial("a")
    s.on_trial_add(None, trial)
    with pytest.raises(MissingMetricError) as info:
        s.on_trial_result(None, trial, {"training_iteration": 1, "acc": 0.3, "val_loss": 1.0})
    msg = str(info.value)
    assert "metric 'loss' is missing" in msg and "['acc', 'val_loss']" in msg and "a" in msg
    assert "time_total_s" not in msg  # Ray's automatic keys are not listed as reported
    with pytest.raises(MissingMetricError, match="time_attr 'epoch'"):
        sched(time_attr="epoch").on_trial_result(None, trial, result(1, 1.0))
    with pytest.raises(MetricTypeError, match=r"must be a number.*'high'"):
        s.on_trial_result(None, trial, result(1, "high"))
    with pytest.raises(MetricTypeError, match="must be finite"):
        s.on_trial_result(None, trial, result(math.nan, 1.0))
    # a trainable that returned without reporting anything: nothing to judge
    assert s.on_trial_result(None, trial, {"training_iteration": 1, "done": True}) == "CONTINUE"


def test_nan_at_a_rung_stops_the_trial():
    s = sched()
    trial = FakeTrial("a")
    s.on_trial_add(None, trial)
    assert s.on_trial_result(None, trial, result(1, float("nan"))) == TrialScheduler.STOP
    assert s.rung_records()[(0, 1)] == {"a": None}


def test_promotion_pause_needs_a_checkpoint(caplog):
    s = sched(variant="promotion")
    assert not s.supports_buffered_results
    bare = FakeTrial("a")
    s.on_trial_add(None, bare)
    with pytest.raises(PromotionNeedsCheckpointError) as info:
        s.on_trial_result(None, bare, result(1, 1.0))
    assert "training_iteration=1" in str(info.value) and "checkpoint=" in str(info.value)
    assert "variant='stopping'" in str(info.value)
    # a checkpoint in the report that reaches the rung: fine
    s = sched(variant="promotion")
    ok = FakeTrial("b")
    s.on_trial_add(None, ok)
    assert s.on_trial_result(None, ok, result(1, 1.0, should_checkpoint=True)) == "PAUSE"
    # a class Trainable is checkpointed by Tune when paused: fine
    cls = FakeTrial("c", trainable=Trainable)
    s.on_trial_add(None, cls)
    assert s.on_trial_result(None, cls, result(1, 2.0)) == "PAUSE"
    # only an older checkpoint: allowed, with a warning
    old = FakeTrial("d", checkpoint=object())
    s.on_trial_add(None, old)
    with caplog.at_level(logging.WARNING, logger="schedulers.asha"):
        assert s.on_trial_result(None, old, result(1, 3.0)) == "PAUSE"
    assert "repeats the steps" in caplog.text


def test_choose_trial_to_run_promotes_and_stops_the_hopeless():
    s = sched(variant="promotion")
    trials = {t: FakeTrial(t) for t in "abcd"}
    for t in trials.values():
        s.on_trial_add(None, t)
    for tid, v in zip("abc", [1.0, 2.0, 3.0]):
        assert s.on_trial_result(None, trials[tid], result(1, v, should_checkpoint=True)) == "PAUSE"
        trials[tid].status = Trial.PAUSED
    ctl = FakeController(s, list(trials.values()))
    # d is still pending: it is returned FIFO-style after the promotion of a (n=3, quota 1)
    assert s.choose_trial_to_run(ctl) is trials["a"]
    assert s.choose_trial_to_run(ctl) is trials["a"]  # idempotent until Tune acts on it
    trials["a"].status = Trial.RUNNING  # Tune starts it
    assert s.choose_trial_to_run(ctl) is trials["d"]
    trials["d"].status = Trial.TERMINATED  # d ends without reporting
    s.on_trial_complete(None, trials["d"], {})
    trials["a"].status = Trial.TERMINATED
    s.on_trial_complete(None, trials["a"], {})
    # nothing runs or waits: rung settled (ceil(3/3)=1 used by a) -> b, c can never go on
    assert s.choose_trial_to_run(ctl) is None
    assert trials["b"].status == trials["c"].status == Trial.TERMINATED
    assert s.policy.status("b") is Status.STOPPED and s.policy.status("c") is Status.STOPPED


def test_state_file_written_on_change_and_reloaded(tmp_path):
    path = tmp_path / "exp" / "asha.json"
    s = sched(state_path=path)
    s.PERSIST_INTERVAL_S = 0.0  # write after every result (throttling: the next test)
    frozen = pickle.dumps(s)  # what tuner.pkl holds: the scheduler before the run
    trials = [FakeTrial(t) for t in "abcd"]
    for t, v in zip(trials, [2.0, 1.0, 3.0, 0.5]):
        s.on_trial_add(None, t)
        s.on_trial_result(None, t, result(1, v))
    saved = json.loads(path.read_text())
    assert set(saved["trials"]) == set("abcd")
    assert [p.name for p in path.parent.iterdir()] == ["asha.json"]
    # a new scheduler on the same file sees the same records at once
    assert sched(state_path=path).rung_records() == s.rung_records()
    # the copy from tuner.pkl (restore) re-reads the file at its first hook call
    restored = pickle.loads(frozen)
    assert restored._core.trials == {}  # as pickled: empty
    restored.on_trial_add(None, FakeTrial("a"))
    assert restored.rung_records() == s.rung_records()
    assert restored.on_trial_result(None, FakeTrial("c"), result(1, 3.0)) == "STOP"  # same decision
    with pytest.raises(ASHAStateError, match="other options"):
        sched(state_path=path, eta=2)


def test_state_writes_are_throttled_and_caught_up_by_the_next_hook(tmp_path):
    path = tmp_path / "asha.json"
    s = sched(state_path=path)
    s.PERSIST_INTERVAL_S = 3600.0
    trials = [FakeTrial(t) for t in "abc"]
    for t in trials:
        s.on_trial_add(None, t)  # new trials: written at once
    assert s.on_trial_result(None, trials[0], result(1, 1.0)) == "CONTINUE"
    assert s.on_trial_result(None, trials[1], result(1, 0.5)) == "CONTINUE"
    assert s.on_trial_result(None, trials[2], result(1, 3.0)) == "STOP"
    on_disk = json.loads(path.read_text())["trials"]
    assert not any(on_disk[t]["rungs"] for t in "abc")  # within the interval: not yet written
    s.PERSIST_INTERVAL_S = 0.0  # the interval has passed
    s.choose_trial_to_run(FakeController(s, trials))
    assert sched(state_path=path).rung_records() == s.rung_records()


def test_resumed_paused_trial_is_held_paused(tmp_path):
    path = tmp_path / "asha.json"
    s = sched(variant="promotion", state_path=path)
    trial = FakeTrial("a")
    s.on_trial_add(None, trial)
    assert s.on_trial_result(None, trial, result(1, 1.0, should_checkpoint=True)) == "PAUSE"
    again = sched(variant="promotion", state_path=path)
    requeued = FakeTrial("a", status=Trial.PENDING)  # Tune re-queues unfinished trials as PENDING
    again.on_trial_add(None, requeued)
    assert requeued.status == Trial.PAUSED


def test_retried_trial_keeps_bracket_and_history():
    s = sched(brackets=2, max_t=27)
    trial = FakeTrial("a")
    s.on_trial_add(None, trial)
    bracket = s.policy.trials["a"].bracket
    first = s.policy.levels[bracket][0]
    assert s.on_trial_result(None, trial, result(first, 1.0)) == "CONTINUE"
    s.on_trial_error(None, trial)
    s.on_trial_add(None, trial)  # Tune's retry re-adds the same Trial
    assert s.policy.trials["a"].bracket == bracket
    assert s.policy.trials["a"].rungs[0].value == 1.0
    assert s.on_trial_result(None, trial, result(first, 5.0)) == "CONTINUE"  # same decision


# ---- real Ray Tune runs ----------------------------------------------------------------

Q_VALUES = [0.5, 0.3, 0.9, 0.1, 1.0, 0.7, 0.2, 0.8, 0.4, 0.6]  # worst (1.0) is 5th
RUNGS, MAX_T = (1, 3), 9
FAILING_Q = 0.1


def curve_trainable(config):
    """loss = q + 1/step: lower q is better at every step; checkpoints every report.

    With ``fail_marker`` in the config, the trial with ``q == FAILING_Q`` raises once before
    its step 5 report (Tune retries it from its step 4 checkpoint).
    """
    marker = config.get("fail_marker")
    start = 0
    checkpoint = tune.get_checkpoint()
    if checkpoint:
        with checkpoint.as_directory() as d, open(os.path.join(d, "state.json")) as f:
            start = json.load(f)["step"]
    for step in range(start + 1, 3 * MAX_T):
        if marker and config["q"] == FAILING_Q and step == 5 and not os.path.exists(marker):
            open(marker, "w").close()
            raise RuntimeError("injected failure, retried by FailureConfig(max_failures=1)")
        with tempfile.TemporaryDirectory() as d:
            with open(os.path.join(d, "state.json"), "w") as f:
                json.dump({"step": step}, f)
            tune.report({"loss": config["q"] + 1.0 / step, "step": step, "restored_from": start},
                        checkpoint=Checkpoint.from_directory(d))


def plain_trainable(config):
    for step in range(1, 3 * MAX_T):
        tune.report({"loss": config["q"] + 1.0 / step})


class History(Callback):
    """Every result as the driver saw it: (trial_id, iteration, loss, restored_from).

    Rows go to a JSON-lines file, so the copy of this callback that ``Tuner.restore``
    unpickles from tuner.pkl keeps appending to the same record.
    """

    def __init__(self, path):
        self.path = str(path)

    def on_trial_result(self, iteration, trials, trial, result, **info):
        with open(self.path, "a") as f:
            f.write(json.dumps([trial.trial_id, result["training_iteration"], result["loss"],
                                result.get("restored_from")]) + "\n")

    @property
    def rows(self):
        if not os.path.exists(self.path):
            return []
        with open(self.path) as f:
            return [tuple(json.loads(line)) for line in f]

    def last_iteration(self):
        out = {}
        for tid, it, *_ in self.rows:
            out[tid] = max(it, out.get(tid, 0))
        return out


class InterruptOnce(Callback):
    """Interrupts the run (SIGUSR1, Tune's own graceful stop) after ``after`` results."""

    def __init__(self, after, marker):
        self.after, self.marker, self.seen = after, str(marker), 0

    def on_trial_result(self, iteration, trials, trial, result, **info):
        self.seen += 1
        if self.seen >= self.after and not os.path.exists(self.marker):
            open(self.marker, "w").close()
            os.kill(os.getpid(), signal.SIGUSR1)


def run(tmp_path, name, scheduler, trainable=curve_trainable, q=Q_VALUES, callbacks=(),
        fail_once=False):
    history = History(tmp_path / f"{name}.jsonl")
    space = {"q": tune.grid_search(list(q))}
    if fail_once:
        space["fail_marker"] = str(tmp_path / f"{name}.failed")
    tuner = tune.Tuner(
        trainable, param_space=space,
        tune_config=tune.TuneConfig(scheduler=scheduler, reuse_actors=True),
        run_config=tune.RunConfig(storage_path=str(tmp_path), name=name, verbose=0,
                                  callbacks=[history, *callbacks],
                                  failure_config=tune.FailureConfig(max_failures=1)))
    return tuner.fit(), history


def q_of(results):
    return {r.metrics["trial_id"]: r.config["q"] for r in results if r.metrics}


@pytest.mark.slow
def test_stopping_run_cuts_bad_trials_at_rungs(ray_local, tmp_path):
    s = sched()
    results, history = run(tmp_path, "stopping", s, fail_once=True)
    assert not results.errors
    assert os.path.exists(tmp_path / "stopping.failed")  # the best trial failed once, was retried
    last = history.last_iteration()
    q = {r.metrics["trial_id"]: r.config["q"] for r in results}
    assert len(last) == len(Q_VALUES)
    assert set(last.values()) <= {*RUNGS, MAX_T}  # every stop happens at a rung
    best, worst = min(q, key=q.get), max(q, key=q.get)
    assert last[best] == MAX_T and last[worst] == RUNGS[0]
    assert 1 <= sum(v == MAX_T for v in last.values()) < len(Q_VALUES)
    # The policy agrees with what happened in Tune ...
    for tid, it in last.items():
        state = s.policy.trials[tid]
        if it == MAX_T:
            assert state.status is Status.FINISHED
        else:
            assert state.status is Status.STOPPED
            assert s.policy.levels[0][state.level] == it and state.rungs[state.level].action == "STOP"
    # ... and a fresh policy replaying the same events makes the same decisions.
    replay = ASHA(1, 3, MAX_T, seed=0, context={"metric": "loss", "time_attr": "training_iteration"})
    for tid, it, loss, _ in history.rows:
        replay.on_result(tid, it, loss)
    assert replay.to_dict()["trials"] == {t: st.to_json() for t, st in s.policy.trials.items()}
    # The state file went to the experiment folder; a new scheduler reads the same records.
    path = os.path.join(results.experiment_path, ASHAScheduler.STATE_FILE)
    assert sched(state_path=path).rung_records() == s.rung_records()


@pytest.mark.slow
def test_promotion_run_resumes_paused_trials_from_checkpoints(ray_local, tmp_path, caplog):
    s = sched(variant="promotion")
    with caplog.at_level(logging.WARNING, logger="schedulers.asha"):
        results, history = run(tmp_path, "promotion", s, q=Q_VALUES[:9])
    assert not results.errors
    assert "repeats the steps" not in caplog.text  # every pause had its own checkpoint
    assert results.num_terminated == len(results) == 9  # every trial ended: none left paused
    last = history.last_iteration()
    q = q_of(results)
    assert last[min(q, key=q.get)] == MAX_T
    assert set(last.values()) <= {*RUNGS, MAX_T}
    assert {st.status for st in s.policy.trials.values()} <= {Status.FINISHED, Status.STOPPED}
    resumed = 0
    for tid in last:
        rows = [(it, restored) for t, it, _, restored in history.rows if t == tid]
        assert [it for it, _ in rows] == list(range(1, last[tid] + 1))  # no step repeated or lost
        for (it, restored), (prev_it, prev_restored) in zip(rows[1:], rows):
            if restored != prev_restored:  # first report after a resume from a checkpoint
                resumed += 1
                assert restored == prev_it and restored in RUNGS
                k = RUNGS.index(restored)
                assert s.policy.trials[tid].rungs[k].promoted
    assert resumed >= 1


@pytest.mark.slow
def test_promotion_without_checkpoints_is_refused(ray_local, tmp_path):
    with pytest.raises(TuneError) as info:
        run(tmp_path, "nockpt", sched(variant="promotion"), trainable=plain_trainable, q=[0.1, 0.2])
    chain, error = [], info.value
    while error is not None:
        chain.append(error)
        error = error.__cause__ or error.__context__
    assert any(isinstance(e, PromotionNeedsCheckpointError) for e in chain), chain


@pytest.mark.slow
def test_tuner_restore_makes_the_same_decisions(ray_local, tmp_path):
    s = sched(variant="promotion")
    interrupt = InterruptOnce(after=8, marker=tmp_path / "interrupted")
    q = Q_VALUES[:9]
    results, _ = run(tmp_path, "resume", s, q=q, callbacks=[interrupt])
    assert os.path.exists(tmp_path / "interrupted")
    path = os.path.join(results.experiment_path, ASHAScheduler.STATE_FILE)
    before = json.loads(open(path).read())
    held = {tid for tid, st in before["trials"].items() if st["status"] == "paused"}
    assert held, "the interruption should find trials paused at a rung"
    assert any(st["status"] != "paused" for st in before["trials"].values())

    # Tune must bring the file back from the experiment folder: drop the driver's copy.
    assert s.state_path != path and os.path.exists(s.state_path)
    os.remove(s.state_path)
    history = History(tmp_path / "resume.jsonl")  # the restored callback appends here too
    seen_before = len(history.rows)
    final = tune.Tuner.restore(results.experiment_path, trainable=curve_trainable).fit()
    assert not final.errors and final.num_terminated == len(final) == len(q)
    rows_after = history.rows[seen_before:]
    after = json.loads(open(path).read())
    assert set(after["trials"]) == set(before["trials"])  # trial ids survive the restore
    assert {r.metrics["trial_id"] for r in final} == set(before["trials"])
    for tid, st in before["trials"].items():
        for k, entry in st["rungs"].items():
            again = after["trials"][tid]["rungs"][k]
            assert {**again, "promoted": None} == {**entry, "promoted": None}, (tid, k)
    # Trials held at a rung were not run on after the restore unless promoted from it.
    for tid in held:
        k = before["trials"][tid]["paused_at"]
        ran_on = [it for t, it, *_ in rows_after if t == tid and it > RUNGS[k]]
        assert bool(ran_on) == after["trials"][tid]["rungs"][str(k)]["promoted"], tid
    statuses = [st["status"] for st in after["trials"].values()]
    assert set(statuses) <= {"finished", "stopped"} and "finished" in statuses


def test_a_restores_staged_copy_of_the_state_file_is_dropped(tmp_path):
    """Tune's restore copies the experiment folder's *.json into its staging folder and uploads
    them back at every snapshot: the stale copy of our state file must go, once."""
    class Storage:
        experiment_driver_staging_path = str(tmp_path / "staging")

    (tmp_path / "staging").mkdir()
    live = tmp_path / "asha-state.json"
    stale = tmp_path / "staging" / "asha-state.json"
    stale.write_text("{}")
    s = sched(state_path=str(live))
    trial = FakeTrial("a")
    trial.storage = Storage()
    s.on_trial_add(None, trial)
    assert not stale.exists() and live.exists()
    stale.write_text("{}")  # checked once per process: later trials leave the folder alone
    other = FakeTrial("b")
    other.storage = Storage()
    s.on_trial_add(None, other)
    assert stale.exists()
