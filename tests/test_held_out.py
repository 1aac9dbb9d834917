"""Held-out evaluation (``orchestrator/held_out.py``) and the schedule replay it uses for PBT
(``schedulers/replay.py``): the replay's hooks with stand-ins (fast), then real Tune runs on
the PBT paper's toy problem, where training from scratch along a schedule is computed
exactly (``trainables.toy_replay``), so every held-out value is checked to the last digit.
"""

from __future__ import annotations

import math

import pytest
from ray.tune.experiment import Trial
from ray.tune.trainable import FunctionTrainable

import orchestrator
from orchestrator.held_out import HeldOutResult, check_options, schedule_of
from schedulers.replay import ReplayConfigError, ReplayScheduler, merge_config
from search_algs import Float
from search_algs.space import Space
from trainables import pbt_toy, toy_replay

# ---- the replay scheduler with stand-ins ----------------------------------------------------


class FakeTrial:
    def __init__(self, trial_id, config, status=Trial.RUNNING):
        self.trial_id, self.config, self.status = trial_id, dict(config), status
        self.experiment_tag = "0_seed=1"

    def get_trainable_cls(self):
        return FunctionTrainable

    def set_config(self, config):
        self.config = config

    def set_experiment_tag(self, tag):
        self.experiment_tag = tag


class FakeController:
    def __init__(self, trials):
        self.trials = trials

    def get_trials(self):
        return self.trials


def report(t, checkpoint=True):
    return {"training_iteration": t, "Q": 0.5, "should_checkpoint": checkpoint}


def test_replay_switches_at_checkpointed_steps_and_keeps_other_keys():
    s = ReplayScheduler([(4, {"h": {"a": 2}}), (8, {"h": {"a": 3}})])
    trial = FakeTrial("x", {"h": {"a": 1, "b": 9}, "seed": 101})
    ctl = FakeController([trial])
    s.on_trial_add(ctl, trial)
    assert [s.on_trial_result(ctl, trial, report(t)) for t in (1, 2, 3)] == ["CONTINUE"] * 3
    assert s.on_trial_result(ctl, trial, report(4)) == "PAUSE"
    assert s.on_trial_result(ctl, trial, report(4)) == "CONTINUE"  # already switching
    assert s.choose_trial_to_run(ctl) is None and trial.config["h"]["a"] == 1  # still running
    trial.status = Trial.PAUSED  # Tune saved it at step 4
    assert s.choose_trial_to_run(ctl) is trial
    assert trial.config == {"h": {"a": 2, "b": 9}, "seed": 101} and trial.experiment_tag == "0_seed=1@replay1"
    trial.status = Trial.RUNNING
    assert s.on_trial_result(ctl, trial, report(8, checkpoint=False)) == "CONTINUE"  # no checkpoint: wait
    assert s.on_trial_result(ctl, trial, report(9)) == "PAUSE"
    trial.status = Trial.PAUSED
    s.choose_trial_to_run(ctl)
    assert trial.config["h"]["a"] == 3 and trial.experiment_tag == "0_seed=1@replay2"
    assert s.switches() == {"x": [(4.0, 4.0), (8.0, 9.0)]} and not s.exact()
    trial.status = Trial.RUNNING
    assert s.on_trial_result(ctl, trial, report(12)) == "CONTINUE"  # schedule done


def test_replay_schedule_is_checked():
    with pytest.raises(ReplayConfigError, match=r"schedule\[0\] has t=0.*drop the entry at t=0"):
        ReplayScheduler([(0, {"a": 1})])
    with pytest.raises(ReplayConfigError, match=r"schedule\[1\] has t=3.*strictly increasing"):
        ReplayScheduler([(4, {"a": 1}), (3, {"a": 2})])
    with pytest.raises(ReplayConfigError, match=r"schedule\[0\] must be a \(t, config\) pair"):
        ReplayScheduler([(4, 5)])
    with pytest.raises(ReplayConfigError, match="time_attr"):
        ReplayScheduler([], time_attr="")
    assert merge_config({"a": {"b": 1, "c": 2}, "d": 3}, {"a": {"b": 5}}) == {"a": {"b": 5, "c": 2}, "d": 3}


# ---- options and the result -----------------------------------------------------------------


def test_options_and_the_fixed_config_schedule():
    space = Space.of({"lr": Float(0.01, 0.1), "seed": 0})
    assert check_options(None, "seed", space) is None
    assert check_options((101, 102), "seed", space) == [101, 102]
    assert check_options([5], "cfg/seed", space) == [5]
    assert schedule_of(None, "t1", {"lr": 0.05}) == [(0.0, {"lr": 0.05})]


def test_summary_rows_and_metrics():
    r = HeldOutResult(metric="Q", mode="max", seed_key="seed", seeds=[1, 2], values={1: 0.5, 2: None},
                      mean=0.5, std=None, tuning_value=0.7, trial_id="t", errors={2: "RuntimeError: boom"},
                      schedule=[(0.0, {}), (4.0, {})])
    rows = dict(r.summary_rows())
    assert "mean 0.5; tuning value 0.7" in rows["held-out"]
    assert rows["  seed 2"] == "failed: RuntimeError: boom" and "1 config switches" in rows["  replayed"]
    assert r.metrics() == {"held_out.mean": 0.5, "held_out.tuning_value": 0.7, "held_out.seed_1": 0.5,
                           "held_out.failed": 1.0}


# ---- real Tune runs -------------------------------------------------------------------------

STEPS = 24
SEEDS = [101, 102, 103]


@pytest.mark.slow
@pytest.mark.timeout(240)
def test_pbt_best_schedule_is_replayed_on_held_out_seeds(ray_local, tmp_path):
    space = {"h0": Float(0.0, 1.0), "h1": Float(0.0, 1.0), "checkpoint_every": 2, "seed": 0}
    population = [{"h0": 1.0, "h1": 0.0}, {"h0": 0.0, "h1": 1.0}, {"h0": 0.8, "h1": 0.0}, {"h0": 0.0, "h1": 0.8}]
    result = orchestrator.tune(
        pbt_toy, space, metric="Q", mode="max", search="random", scheduler="pbt",
        scheduler_options={"perturbation_interval": 4, "resample_probability": 0.5},
        points_to_evaluate=population, num_samples=4, max_concurrent=4, resources={"cpu": 0.5}, seed=1,
        stop={"training_iteration": STEPS}, storage_path=str(tmp_path), name="held-out-pbt", verbose=0,
        held_out_seeds=SEEDS, seed_key="seed")
    h = result.held_out
    assert h is not None and h.seeds == SEEDS and not h.errors and h.note is None
    assert h.trial_id == result.best_trial_id and h.tuning_value == result.best_metric
    schedule = h.schedule
    assert len(schedule) > 1, "the best member of a one-hot population has exploited"  # else Q <= ~0.4
    assert h.exact
    # the tuning value is what training from scratch along the schedule gives on the tuning seed ...
    assert toy_replay(schedule, STEPS, seed=0) == pytest.approx(result.best_metric, abs=1e-12)
    # ... and each held-out value is what it gives on that seed: the replay switched on time
    for seed in SEEDS:
        assert h.values[seed] == pytest.approx(toy_replay(schedule, STEPS, seed=seed), abs=1e-12), seed
    assert h.mean == pytest.approx(sum(h.values.values()) / 3)
    assert h.std == pytest.approx(math.sqrt(sum((v - h.mean) ** 2 for v in h.values.values()) / 2))
    text = result.summary()
    assert "held-out" in text and "seed 103" in text and "config switches" in text
    # MLflow: the parent run holds both numbers
    from mlflow import MlflowClient

    run = MlflowClient(result.tracking_uri).get_run(result.mlflow_run_id)
    assert run.data.metrics["held_out.mean"] == pytest.approx(h.mean)
    assert run.data.metrics["held_out.seed_102"] == pytest.approx(h.values[102])
    assert run.data.metrics["held_out.tuning_value"] == pytest.approx(result.best_metric)
    assert run.data.params["held_out.seeds"] == "101,102,103"
    print(f"\nheld-out: tuning Q {result.best_metric:.5f}, held-out {h.values} (schedule of "
          f"{len(schedule)} configs)")


@pytest.mark.timeout(120)
def test_fixed_best_config_is_retrained_on_held_out_seeds(ray_local, tmp_path):
    space = {"h0": Float(0.2, 1.0), "h1": Float(0.2, 1.0), "seed": 7}
    result = orchestrator.tune(pbt_toy, space, metric="Q", mode="max", num_samples=2, max_concurrent=2,
                               resources={"cpu": 0.5}, seed=0, stop={"training_iteration": 3},
                               storage_path=str(tmp_path), tracking_uri="", verbose=0,
                               held_out_seeds=[1, 2], seed_key="seed")
    h = result.held_out
    best = {k: result.best_config[k] for k in ("h0", "h1")}
    assert h.schedule[0][1]["seed"] == 7 and len(h.schedule) == 1 and h.exact
    assert h.values == {s: pytest.approx(toy_replay([(0, best)], 3, seed=s), abs=1e-12) for s in (1, 2)}
    assert toy_replay([(0, best)], 3, seed=7) == pytest.approx(result.best_metric, abs=1e-12)
    assert h.experiment_path.endswith("-held-out")
