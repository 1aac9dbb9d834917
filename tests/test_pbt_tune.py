"""The PBT adapter: Ray internals it relies on, its hooks with stand-ins (fast), then real
Ray Tune runs of the PBT paper's toy problem (session fixture ``ray_local``, 2 CPUs).

Real runs give each trial half a CPU, so the 4 members of the population run side by side
on the 2 CPUs, and record every result in the driver with a callback.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile

import numpy as np
import pytest
from ray import tune
from ray.tune import Callback, Checkpoint
from ray.tune.experiment import Trial
from ray.tune.schedulers import TrialScheduler
from ray.tune.search import ConcurrencyLimiter
from ray.tune.trainable import FunctionTrainable

from orchestrator.registry import scheduler_class
from schedulers import _ray_private
from schedulers.core.pbt import PBTConfigError, PBTStateError
from schedulers.pbt import MetricTypeError, MissingMetricError, NoSearchSpaceError, PBTScheduler, _overlay
from search_algs.random_search import RandomSearch
from search_algs.space import Float, Int

TOY_SPACE = {"h0": Float(0.0, 1.0), "h1": Float(0.0, 1.0)}
ONE_HOT = [{"h0": 1.0, "h1": 0.0}, {"h0": 0.0, "h1": 1.0}] * 2


# ---- Ray internals -----------------------------------------------------------------------


def test_ray_private_apis_still_exist_in_this_ray():
    """Fails loudly (naming what moved) when a Ray upgrade changes an internal PBT uses."""
    _ray_private.verify()
    import ray
    from ray.train._internal.checkpoint_manager import _CheckpointManager
    from ray.train._internal.session import _TrainingResult
    from ray.tune.execution.tune_controller import TuneController

    assert ray.__version__.startswith("2.60.")
    for name in ("pause_trial", "_schedule_trial_save", "_schedule_trial_restore"):
        assert callable(getattr(TuneController, name)), name
    manager = _CheckpointManager(None)
    marker = _TrainingResult(checkpoint=None, metrics={"training_iteration": 3})
    manager._latest_checkpoint_result = marker
    assert manager.latest_checkpoint_result is marker  # what a PAUSED trial restarts from
    assert {"set_config", "set_experiment_tag", "latest_checkpoint_result"} <= set(dir(Trial))


# ---- adapter with stand-ins --------------------------------------------------------------


class FakeTrial:
    def __init__(self, trial_id, config, status=Trial.PENDING, trainable=FunctionTrainable):
        self.trial_id, self.config, self.status = trial_id, dict(config), status
        self.experiment_tag, self.storage, self.trainable = trial_id[-1], None, trainable
        self.latest_checkpoint_result = None  # none registered: exploits of it are called off

    def get_trainable_cls(self):
        return self.trainable

    def set_status(self, status):
        self.status = status


class FakeController:
    def __init__(self, trials, searcher=None):
        self.trials = trials
        self.search_alg = None if searcher is None else type("Gen", (), {"searcher": searcher})()

    def get_trials(self):
        return self.trials

    def _schedule_trial_save(self, trial, result=None):
        self.saves = getattr(self, "saves", []) + [trial.trial_id]


def result(t, q, checkpoint=True, **extra):
    return {"training_iteration": t, "Q": q, "should_checkpoint": checkpoint, "done": False, **extra}


def test_registry_names_pbt():
    assert scheduler_class("pbt") is PBTScheduler
    assert {"seed", "state_path", "space"} <= set(PBTScheduler.CONFIGURABLE)


def test_invalid_options_fail_at_construction():
    with pytest.raises(PBTConfigError, match=r"quantile_fraction must be in \[0, 0.5\].*got 0.75; pass"):
        PBTScheduler(time_attr="training_iteration", quantile_fraction=0.75)
    with pytest.raises(PBTConfigError, match="time_attr must be a non-empty result key"):
        PBTScheduler(time_attr="")
    with pytest.raises(PBTConfigError, match=r"mode must be 'min', 'max' or None, got 'up'"):
        PBTScheduler(time_attr="training_iteration", mode="up")
    with pytest.raises(PBTConfigError, match=r"got unknown \['depth'\]"):
        PBTScheduler(time_attr="training_iteration", space=TOY_SPACE, mutable=["depth"])


def test_space_comes_from_the_searcher_or_a_clear_error():
    trial = FakeTrial("a", ONE_HOT[0])
    searcher = RandomSearch(space=TOY_SPACE, metric="Q", mode="max")
    s = PBTScheduler(time_attr="training_iteration", metric="Q", mode="max")
    s.on_trial_add(FakeController([trial], searcher), trial)
    assert s.policy.space.names == ["h0", "h1"]
    with pytest.raises(NoSearchSpaceError, match=r"pass PBTScheduler\(hyperparam_mutations=\{\.\.\.\}\)"):
        PBTScheduler(time_attr="training_iteration", metric="Q", mode="max").on_trial_add(FakeController([trial]), trial)
    with pytest.raises(PBTConfigError, match="metric and mode must be set.*TuneConfig"):
        PBTScheduler(time_attr="training_iteration", space=TOY_SPACE).on_trial_add(FakeController([trial]), trial)
    bad = FakeTrial("b", {"h0": 3.0, "h1": 0.0})
    with pytest.raises(PBTConfigError, match=r"trial b's config does not fit.*'h0'.*3.0"):
        s.on_trial_add(FakeController([bad]), bad)


def test_missing_or_non_numeric_metric_is_a_clear_error():
    s = PBTScheduler(time_attr="training_iteration", metric="Q", mode="max", space=TOY_SPACE)
    trial = FakeTrial("a", ONE_HOT[0], Trial.RUNNING)
    ctl = FakeController([trial])
    s.on_trial_add(ctl, trial)
    with pytest.raises(MissingMetricError) as info:
        s.on_trial_result(ctl, trial, {"training_iteration": 1, "acc": 0.3})
    assert "metric 'Q' is missing" in str(info.value) and "['acc']" in str(info.value)
    with pytest.raises(MetricTypeError, match=r"must be a number.*'high'"):
        s.on_trial_result(ctl, trial, result(1, "high"))
    assert s.on_trial_result(ctl, trial, {"training_iteration": 1, "done": True}) == "CONTINUE"


def test_trainable_that_never_checkpoints_gets_one_warning(caplog):
    s = PBTScheduler(time_attr="training_iteration", metric="Q", mode="max", space=TOY_SPACE, perturbation_interval=2)
    trials = [FakeTrial(t, c, Trial.RUNNING) for t, c in zip("abcd", ONE_HOT)]
    ctl = FakeController(trials)
    for trial in trials:
        s.on_trial_add(ctl, trial)
    with caplog.at_level(logging.WARNING, logger="schedulers.pbt"):
        for t in range(1, 7):
            for trial, q in zip(trials, [0.1, 0.2, 0.3, 0.4]):
                assert s.on_trial_result(ctl, trial, result(t, q, checkpoint=False)) == "CONTINUE"
    warnings = [r for r in caplog.records if "has not reported any checkpoint" in r.getMessage()]
    assert len(warnings) == 1
    assert "checkpoint=tune.Checkpoint.from_directory" in warnings[0].getMessage()
    assert s.lineage() == []


def test_time_sharing_pauses_only_for_a_trial_that_keeps_waiting():
    s = PBTScheduler(time_attr="training_iteration", metric="Q", mode="max", space=TOY_SPACE, perturbation_interval=2)
    a, b = FakeTrial("a", ONE_HOT[0], Trial.RUNNING), FakeTrial("b", ONE_HOT[1], Trial.RUNNING)
    c = FakeTrial("c", ONE_HOT[0])  # PENDING: the cluster holds two trials
    ctl = FakeController([a, b, c])
    for trial in (a, b, c):
        s.on_trial_add(ctl, trial)
    assert s.on_trial_result(ctl, b, result(2, 0.1)) == "CONTINUE"
    assert s.on_trial_result(ctl, a, result(2, 0.9)) == "CONTINUE"  # c just started waiting
    assert s.on_trial_result(ctl, a, result(3, 0.9)) == "CONTINUE"  # not a decision point
    assert s.on_trial_result(ctl, a, result(4, 0.9)) == "PAUSE"  # c waited a whole interval
    a.status = Trial.PAUSED
    assert s.choose_trial_to_run(ctl) is c  # the least advanced waiting trial goes first
    # b (the worst) tries to exploit a instead of yielding; no checkpoint is registered for
    # the stand-in a, so the exploit is called off and b goes on
    assert s.on_trial_result(ctl, b, result(4, 0.2)) == "CONTINUE" and s.policy.aborted == 1
    c.status = Trial.RUNNING
    assert s.on_trial_result(ctl, c, result(2, 0.5)) == "CONTINUE"  # a just started waiting
    assert s.on_trial_result(ctl, c, result(4, 0.5, checkpoint=False)) == "CONTINUE"  # no checkpoint
    assert s.on_trial_result(ctl, c, result(5, 0.5)) == "CONTINUE"  # not a decision point
    assert s.on_trial_result(ctl, c, result(6, 0.5)) == "PAUSE"
    # a population that fits the cluster is never paused for time sharing
    fits = PBTScheduler(time_attr="training_iteration", metric="Q", mode="max", space=TOY_SPACE, perturbation_interval=2)
    x, y = FakeTrial("x", ONE_HOT[0], Trial.RUNNING), FakeTrial("y", ONE_HOT[1], Trial.RUNNING)
    ctl = FakeController([x, y])
    for trial in (x, y):
        fits.on_trial_add(ctl, trial)
    assert {fits.on_trial_result(ctl, x, result(t, 0.1 * t)) for t in range(1, 12)} == {"CONTINUE"}


def test_a_waiting_trial_is_not_starved_by_one_that_keeps_coming_back():
    """Among equally advanced trials the one that waited longest runs first: a clone sent back
    to its paused donor's time at every decision point must not win every turn."""
    s = PBTScheduler(time_attr="training_iteration", metric="Q", mode="max", space=TOY_SPACE, perturbation_interval=100)
    a, b = FakeTrial("a", ONE_HOT[0], Trial.RUNNING), FakeTrial("b", ONE_HOT[1], Trial.RUNNING)
    ctl = FakeController([a, b])
    for trial in (a, b):
        s.on_trial_add(ctl, trial)
        s.on_trial_result(ctl, trial, result(5, 0.5))
    a.status, b.status = Trial.PAUSED, Trial.PENDING
    assert s.choose_trial_to_run(ctl) is b  # a tie: pending before paused
    assert s.choose_trial_to_run(ctl) is a  # b, back at the same time, waits for its turn
    saved = s._state()
    again = PBTScheduler(time_attr="training_iteration", metric="Q", mode="max", space=TOY_SPACE, perturbation_interval=100)
    again._ensure_core(None, None)
    again._load_state(saved)
    assert again.choose_trial_to_run(ctl) is b  # the turns survive a restore


def test_class_trainable_is_asked_to_save_at_decision_points():
    from ray.tune import Trainable

    s = PBTScheduler(time_attr="training_iteration", metric="Q", mode="max", space=TOY_SPACE, perturbation_interval=2)
    trials = [FakeTrial(t, c, Trial.RUNNING, trainable=Trainable) for t, c in zip("ab", ONE_HOT)]
    ctl = FakeController(trials)
    for trial in trials:
        s.on_trial_add(ctl, trial)
    for t in (1, 2, 3, 4):
        s.on_trial_result(ctl, trials[1], result(t, 0.5, checkpoint=False))
    assert ctl.saves == ["b", "b"]  # at t=2 and t=4, its decision points


def test_sync_trials_held_at_the_barrier_are_not_chosen_to_run():
    s = PBTScheduler(time_attr="training_iteration", metric="Q", mode="max", space=TOY_SPACE, perturbation_interval=2, synchronous=True)
    trials = [FakeTrial(t, c, Trial.RUNNING) for t, c in zip("abcd", ONE_HOT)]
    ctl = FakeController(trials)
    for trial in trials:
        s.on_trial_add(ctl, trial)
    assert s.on_trial_result(ctl, trials[0], result(2, 0.5)) == TrialScheduler.PAUSE
    trials[0].status = Trial.PAUSED
    assert s.choose_trial_to_run(ctl) is None  # a is held; b, c, d are running
    trials[3].status = Trial.ERROR
    s.on_trial_error(ctl, trials[3])
    assert s.choose_trial_to_run(ctl) is None  # b and c have not arrived yet
    assert "generation 0" in s.debug_string()


def test_config_overlay_keeps_keys_outside_the_space():
    template = {"opt": {"lr": Float(0.0, 1.0)}, "n": Int(1, 4)}
    donor = {"opt": {"lr": 0.5, "eps": 1e-8}, "n": 2, "data": "/d"}
    assert _overlay(donor, {"opt": {"lr": 0.6}, "n": 3}, template) == {
        "opt": {"lr": 0.6, "eps": 1e-8}, "n": 3, "data": "/d"}


def test_state_file_is_read_by_a_new_scheduler(tmp_path):
    path = tmp_path / "pbt-state.json"
    s = PBTScheduler(time_attr="training_iteration", metric="Q", mode="max", space=TOY_SPACE, perturbation_interval=2, state_path=path)
    trials = [FakeTrial(t, c, Trial.RUNNING) for t, c in zip("abcd", ONE_HOT)]
    ctl = FakeController(trials)
    for trial in trials:
        s.on_trial_add(ctl, trial)
    for trial, q in zip(trials, [0.1, 0.2, 0.3, 0.4]):
        s.on_trial_result(ctl, trial, result(2, q))
    again = PBTScheduler(time_attr="training_iteration", metric="Q", mode="max", space=TOY_SPACE, perturbation_interval=2, state_path=path)
    assert again.scores() == s.scores() and set(again.scores()) == set("abcd")
    with pytest.raises(PBTStateError, match="other options"):
        PBTScheduler(time_attr="training_iteration", metric="Q", mode="max", space=TOY_SPACE, perturbation_interval=3, state_path=path)


# ---- real Ray Tune runs --------------------------------------------------------------------


def toy_trainable(config):
    """The toy problem of Jaderberg et al. (2017), Section 4.1, as a checkpointing trainable.

    theta starts at (0.9, 0.9); each step is gradient ascent (lr 0.05) on the surrogate
    Q^ = 1.2 - (h0 theta0^2 + h1 theta1^2); it reports the true Q = 1.2 - |theta|^2 every
    step, with a checkpoint every ``config["checkpoint_every"]`` steps (a checkpoint per
    perturbation interval is all PBT needs), and reads h from ``config`` after restoring.
    It runs until Tune stops it (``RunConfig(stop=...)``: the report that meets the stop
    criterion never reaches the scheduler, so nothing is exploited at the very end).
    With ``config["fail_marker"]`` (a path), the first trial to reach step 6 creates that
    file and raises: exactly one member of the population fails.
    """
    theta, step = np.array([0.9, 0.9]), 0
    checkpoint = tune.get_checkpoint()
    if checkpoint is not None:
        with checkpoint.as_directory() as d, open(os.path.join(d, "toy.json")) as f:
            state = json.load(f)
        theta, step = np.array(state["theta"]), state["step"]
    h = np.array([config["h0"], config["h1"]])
    while True:
        step += 1
        if config.get("fail_marker") and step == 6:
            try:
                os.close(os.open(config["fail_marker"], os.O_CREAT | os.O_EXCL))
            except FileExistsError:
                pass
            else:
                raise RuntimeError("injected failure of one population member")
        theta = theta + 0.05 * (-2.0 * h * theta)
        if step % config.get("checkpoint_every", 1):
            tune.report({"Q": 1.2 - float(theta @ theta), "step": step})
            continue
        with tempfile.TemporaryDirectory() as d:
            with open(os.path.join(d, "toy.json"), "w") as f:
                json.dump({"theta": theta.tolist(), "step": step}, f)
            tune.report({"Q": 1.2 - float(theta @ theta), "step": step},
                        checkpoint=Checkpoint.from_directory(d))


def replay(schedule, steps):
    """Train the toy problem from scratch following a config schedule [(t_k, config_k)]."""
    theta = np.array([0.9, 0.9])
    for step in range(1, steps + 1):
        config = [c for t, c in schedule if t < step][-1]
        theta = theta + 0.05 * (-2.0 * np.array([config["h0"], config["h1"]]) * theta)
    return 1.2 - float(theta @ theta)


class Rows(Callback):
    def __init__(self):
        self.rows = []

    def on_trial_result(self, iteration, trials, trial, result, **info):
        self.rows.append((trial.trial_id, result["training_iteration"], result["step"], result["Q"]))


def run_toy(tmp_path, name, scheduler, steps, extra=None, num_to_keep=None):
    rows = Rows()
    points = [{**p, **(extra or {})} for p in ONE_HOT]
    space = {**TOY_SPACE, **(extra or {})}
    searcher = RandomSearch(space=space, metric="Q", mode="max", points_to_evaluate=points, seed=0)
    tuner = tune.Tuner(
        tune.with_resources(toy_trainable, {"cpu": 0.5}),
        tune_config=tune.TuneConfig(metric="Q", mode="max", num_samples=len(points), reuse_actors=True,
                                    search_alg=ConcurrencyLimiter(searcher, max_concurrent=len(points)),
                                    scheduler=scheduler),
        run_config=tune.RunConfig(storage_path=str(tmp_path), name=name, verbose=0, callbacks=[rows],
                                  stop={"training_iteration": steps},
                                  checkpoint_config=tune.CheckpointConfig(num_to_keep=num_to_keep)))
    return tuner.fit(), rows.rows


def check_checkpoints_hold_what_was_reported(results):
    """Every checkpoint folder a result names holds the state of that result. (A trial paused
    for an exploit right after it reported a checkpoint once wrote its clone's first checkpoint
    over it: ``result.json`` then named the clone's state, and a resume restarted from it.)"""
    checked = 0
    for result in results:
        with open(os.path.join(result.path, "result.json")) as f:
            rows = [json.loads(line) for line in f]
        for row in rows:
            name = row.get("checkpoint_dir_name")
            if name and os.path.isdir(os.path.join(result.path, name)):
                with open(os.path.join(result.path, name, "toy.json")) as f:
                    assert json.load(f)["step"] == row["step"], (result.path, name, row["step"])
                checked += 1
    assert checked


def check_lineage_replays(scheduler, results, rows):
    """Every trial's last reported Q equals training from scratch along its config schedule."""
    assert all(step == it for _, it, step, _ in rows)  # a clone inherits the donor's iteration
    last = {}
    for tid, it, _, q in rows:
        last[tid] = (it, q)
    for tid, (it, q) in last.items():
        assert replay(scheduler.config_schedule(tid), it) == pytest.approx(q, abs=1e-12), tid


@pytest.mark.slow
@pytest.mark.timeout(240)
def test_toy_problem_async_pbt_reaches_high_q_with_lineage(ray_local, tmp_path):
    state = tmp_path / "pbt-state.json"
    s = PBTScheduler(time_attr="training_iteration", perturbation_interval=4, resample_probability=0.5, seed=0, state_path=state)
    results, rows = run_toy(tmp_path, "toy_async", s, steps=80, extra={"checkpoint_every": 4})
    assert not results.errors and results.num_terminated == 4
    lineage = s.lineage()
    assert len(lineage) >= 3, lineage
    trial_ids = {r.metrics["trial_id"] for r in results}
    for record in lineage:
        assert {record["target"], record["donor"]} <= trial_ids and record["target"] != record["donor"]
        assert record["donor_time"] >= 4 and record["time"] >= 4
        assert set(record["new_config"]) == {"h0", "h1", "checkpoint_every"}
        assert 0.0 <= record["new_config"]["h0"] <= 1.0 and 0.0 <= record["new_config"]["h1"] <= 1.0
    best = max(q for *_, q in rows)
    first = min(it for _, it, _, q in rows if q >= 1.19) if best >= 1.19 else None
    print(f"\nasync toy: {len(lineage)} exploits ({s.policy.aborted} called off), best Q {best:.5f}, "
          f"first Q >= 1.19 at step {first}")
    assert best >= 1.19  # exploit-free training from one-hot h stays at 0.39
    check_lineage_replays(s, results, rows)
    check_checkpoints_hold_what_was_reported(results)
    # the state file keeps lineage and scores for a resumed experiment
    again = PBTScheduler(time_attr="training_iteration", metric="Q", mode="max", space={**TOY_SPACE, "checkpoint_every": 4},
                         perturbation_interval=4,
                         resample_probability=0.5, seed=0, state_path=state)
    assert again.lineage() == lineage and again.scores() == s.scores()


@pytest.mark.slow
@pytest.mark.timeout(240)
def test_toy_problem_sync_pbt_survives_a_failing_member(ray_local, tmp_path):
    """One member fails while the others wait at a barrier: the run ends, nobody is left
    paused. Tune keeps only the latest checkpoint of each trial (``num_to_keep=1``), so
    cloned checkpoints must be copied before the donor's next one deletes them."""
    marker = str(tmp_path / "failed")
    s = PBTScheduler(time_attr="training_iteration", perturbation_interval=4, resample_probability=0.5, seed=0, synchronous=True)
    results, rows = run_toy(tmp_path, "toy_sync", s, steps=16, num_to_keep=1,
                            extra={"checkpoint_every": 4, "fail_marker": marker})
    assert os.path.exists(marker) and len(results.errors) == 1 and results.num_terminated == 3
    (failed,) = [tid for tid, m in s.policy.members.items() if m.status == "errored"]
    survivors = {tid for tid in s.policy.members if tid != failed}
    assert {tid for tid, it, *_ in rows if it == 16} == survivors  # nobody left paused
    assert s.policy.generation == 3  # barriers 4, 8, 12 (the report at 16 stops the trial)
    lineage = s.lineage()
    assert lineage and all(r["generation"] is not None and r["time"] % 4 == 0 for r in lineage)
    check_lineage_replays(s, results, [r for r in rows if r[0] != failed])
    copies = [d for _, dirs, _ in os.walk(results.experiment_path) for d in dirs if "-pbt-" in d]
    assert len(copies) == len(lineage)


def test_orchestrator_builds_pbt_with_state_path_and_seed(tmp_path):
    from orchestrator.api import build_scheduler
    from orchestrator.spec import ExperimentSpec

    spec = ExperimentSpec(trainable=toy_trainable, space=TOY_SPACE, metric="Q", mode="max", seed=7,
                          scheduler="pbt", scheduler_options={"perturbation_interval": 2,
                                                              "perturbation_factors": [0.5, 2.0]})
    s = build_scheduler(spec, str(tmp_path))
    assert isinstance(s, PBTScheduler)
    assert s.state_path == os.path.join(str(tmp_path), "pbt-state.json")
    assert s.seed == 7 and s._options["perturbation_factors"] == (0.5, 2.0)
    assert s._time_attr == "training_iteration"  # the spec default (the class has Ray's)


def test_exploit_missing_from_tunes_snapshot_is_undone_on_resume(tmp_path, caplog):
    path = tmp_path / "pbt-state.json"
    options = dict(metric="Q", mode="max", space=TOY_SPACE, perturbation_interval=2, resample_probability=0.0,
                   state_path=path)
    s = PBTScheduler(**options)
    core = s.policy
    for tid, config in zip("abcd", ONE_HOT):
        core.add(tid, config)
    for tid, q in zip("bcd", (0.2, 0.3, 0.4)):
        core.on_result(tid, 2, q, True)
    record = core.commit(core.on_result("a", 2, 0.1, True)[0])
    s._persist()
    copy = tmp_path / "copy.json"
    copy.write_text(path.read_text())
    # Tune's snapshot still has a's old config: the exploit is undone, with a warning
    again = PBTScheduler(**options)
    with caplog.at_level(logging.WARNING, logger="schedulers.pbt"):
        again.on_trial_add(FakeController([]), FakeTrial("a", ONE_HOT[0]))
    assert again.lineage() == [] and again.policy.members["a"].config == ONE_HOT[0]
    assert any("without its exploit" in r.getMessage() for r in caplog.records)
    # Tune's snapshot has the new config: the lineage stays
    third = PBTScheduler(**{**options, "state_path": copy})
    third.on_trial_add(FakeController([]), FakeTrial("a", third.policy.to_config(record.new_config)))
    assert len(third.lineage()) == 1
