"""A Ray Tune user's script runs with only the import changed: our ASHAScheduler and
PBTScheduler take Ray 2.60's arguments, names and defaults (our own equivalents of Ray's
documented ASHA and PBT examples, small enough for 2 CPUs)."""

from __future__ import annotations

import inspect
import json
import os
import tempfile

import pytest
from ray import tune
from ray.tune import Checkpoint
from ray.tune.schedulers import ASHAScheduler as RayASHA
from ray.tune.schedulers import HyperBandScheduler as RayHyperBand
from ray.tune.schedulers import PopulationBasedTraining as RayPBT

from schedulers.asha import ASHAScheduler
from schedulers.hyperband import HyperbandScheduler
from schedulers.pbt import PBTScheduler
from search_algs.errors import TuneorchError


def ray_defaults(cls) -> dict:
    return {n: p.default for n, p in inspect.signature(cls).parameters.items()}


@pytest.mark.parametrize("ours, theirs", [(ASHAScheduler, RayASHA), (PBTScheduler, RayPBT),
                                          (HyperbandScheduler, RayHyperBand)])
def test_every_ray_argument_is_ours_with_rays_default_and_position(ours, theirs):
    mine, ray_args = ray_defaults(ours), ray_defaults(theirs)
    assert list(mine)[:len(ray_args)] == list(ray_args)  # same names, same order: positional calls work
    for name, default in ray_args.items():
        assert mine[name] == default, (name, mine[name], default)


def test_our_option_names_stay_valid():
    assert ASHAScheduler(eta=3)._eta == 3 and ASHAScheduler(reduction_factor=2)._eta == 2
    assert ASHAScheduler()._eta == 4  # Ray's default
    with pytest.raises(TuneorchError, match="eta is another name for reduction_factor"):
        ASHAScheduler(eta=3, reduction_factor=2)
    assert PBTScheduler(synchronous=True)._options["synchronous"]
    assert PBTScheduler(synch=True)._options["synchronous"]
    with pytest.raises(TuneorchError, match="drop mutable"):
        PBTScheduler(hyperparam_mutations={"lr": [0.1, 0.2]}, mutable=["lr"])
    with pytest.raises(TuneorchError, match=r"hyperparam_mutations\['lr'\] is a function.*tune.uniform"):
        PBTScheduler(hyperparam_mutations={"lr": lambda: 0.1})
    with pytest.raises(TuneorchError, match="stop_last_trials=False is not supported"):
        HyperbandScheduler(stop_last_trials=False)


# ---- Ray's ASHA example, with our import --------------------------------------------------


def train_fn(config):
    """Ray's ASHA example trainable, in small: a score that grows with ``width`` per step."""
    start = 0
    checkpoint = tune.get_checkpoint()
    if checkpoint:
        with checkpoint.as_directory() as d, open(os.path.join(d, "s.json")) as f:
            start = json.load(f)["step"]
    for step in range(start + 1, 20):
        with tempfile.TemporaryDirectory() as d:
            with open(os.path.join(d, "s.json"), "w") as f:
                json.dump({"step": step}, f)
            tune.report({"episode_reward_mean": config["width"] * step / 10 - config["height"] / 100},
                        checkpoint=Checkpoint.from_directory(d))


@pytest.mark.slow
@pytest.mark.timeout(240)
def test_rays_asha_example_runs_with_our_import(ray_local, tmp_path):
    asha_scheduler = ASHAScheduler(
        time_attr="training_iteration",
        metric="episode_reward_mean",
        mode="max",
        max_t=9,
        grace_period=1,
        reduction_factor=3,
        brackets=1,
    )
    tuner = tune.Tuner(
        train_fn,
        tune_config=tune.TuneConfig(scheduler=asha_scheduler, num_samples=6, reuse_actors=True),
        param_space={"width": tune.uniform(0, 20), "height": tune.uniform(-100, 100)},
        run_config=tune.RunConfig(storage_path=str(tmp_path), name="asha", verbose=0),
    )
    results = tuner.fit()
    assert not results.errors and len(results) == 6
    best = results.get_best_result(metric="episode_reward_mean", mode="max")
    assert best.metrics["training_iteration"] == 9  # the best ran to max_t
    assert any(r.metrics["training_iteration"] < 9 for r in results)  # others were cut at rungs


@pytest.mark.slow
@pytest.mark.timeout(240)
def test_hyperband_runs_in_tune(ray_local, tmp_path):
    scheduler = HyperbandScheduler(metric="episode_reward_mean", mode="max", max_t=9, reduction_factor=3)
    tuner = tune.Tuner(
        train_fn,
        tune_config=tune.TuneConfig(scheduler=scheduler, num_samples=6, reuse_actors=True),
        param_space={"width": tune.uniform(0, 20), "height": tune.uniform(-100, 100)},
        run_config=tune.RunConfig(storage_path=str(tmp_path), name="hb", verbose=0),
    )
    results = tuner.fit()
    assert not results.errors and results.num_terminated == len(results) == 6  # none left paused
    iterations = sorted(r.metrics["training_iteration"] for r in results)
    assert iterations[-1] == 9 and iterations[0] < 9
    best = results.get_best_result(metric="episode_reward_mean", mode="max")
    assert best.metrics["training_iteration"] == 9


# ---- Ray's PBT example, with our import ---------------------------------------------------


def train_convnet(config):
    """Ray's PBT guide trainable, in small: accuracy climbs faster with lr near 0.1 and
    momentum near 0.9; checkpoints every ``checkpoint_interval`` steps, reads lr/momentum from
    ``config`` after restoring."""
    step, accuracy = 0, 0.0
    checkpoint = tune.get_checkpoint()
    if checkpoint:
        with checkpoint.as_directory() as d, open(os.path.join(d, "s.json")) as f:
            state = json.load(f)
        step, accuracy = state["step"], state["accuracy"]
    while True:
        step += 1
        accuracy += 0.1 / (1 + 10 * abs(config["lr"] - 0.1) + abs(config["momentum"] - 0.9))
        metrics = {"mean_accuracy": accuracy}
        if step % config["checkpoint_interval"] == 0:
            with tempfile.TemporaryDirectory() as d:
                with open(os.path.join(d, "s.json"), "w") as f:
                    json.dump({"step": step, "accuracy": accuracy}, f)
                tune.report(metrics, checkpoint=Checkpoint.from_directory(d))
        else:
            tune.report(metrics)


@pytest.mark.slow
@pytest.mark.timeout(240)
def test_rays_pbt_example_runs_with_our_import(ray_local, tmp_path):
    perturbation_interval = 2
    scheduler = PBTScheduler(
        time_attr="training_iteration",
        perturbation_interval=perturbation_interval,
        metric="mean_accuracy",
        mode="max",
        hyperparam_mutations={
            # distribution for resampling
            "lr": tune.uniform(0.0001, 1),
            # allow perturbations within this set of categorical values
            "momentum": [0.8, 0.9, 0.99],
        },
    )
    tuner = tune.Tuner(
        tune.with_resources(train_convnet, {"cpu": 0.5}),
        run_config=tune.RunConfig(
            name="pbt_test", storage_path=str(tmp_path), verbose=0,
            stop={"training_iteration": 12},
            checkpoint_config=tune.CheckpointConfig(checkpoint_score_attribute="mean_accuracy",
                                                    num_to_keep=4),
        ),
        tune_config=tune.TuneConfig(scheduler=scheduler, num_samples=4, reuse_actors=True),
        param_space={
            "lr": tune.uniform(0.001, 1),
            "momentum": tune.uniform(0.001, 1),  # outside the mutation choices: moved onto them
            "checkpoint_interval": perturbation_interval,
        },
    )
    results = tuner.fit()
    assert not results.errors and len(results) == 4
    for r in results:
        assert r.config["momentum"] in (0.8, 0.9, 0.99) and 0.0001 <= r.config["lr"] <= 1
        assert r.config["checkpoint_interval"] == perturbation_interval  # kept, not explored
    assert scheduler.lineage(), "PBT should have exploited at least once"
