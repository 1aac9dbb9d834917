"""The Python API against a real local Ray: real trials, real concurrency, clear failures."""

from __future__ import annotations

import copy
import dataclasses
import json
import os
import time

import pytest

from orchestrator import run, tune
from orchestrator.spec import ExperimentSpec, SpecError
from search_algs import Float, Int, Categorical

SPACE = {"x": Float(-2.0, 2.0), "n": Int(1, 4), "kind": Categorical(["a", "b"]), "fixed": 7}


def quadratic(config):
    from ray import tune as ray_tune

    for step in range(1, 3):
        loss = (config["x"] - 0.5) ** 2 + 0.1 * config["n"] + (0.3 if config["kind"] == "b" else 0.0)
        ray_tune.report({"loss": loss / step, "fixed": config["fixed"]})


def interval_logger(config):
    """Writes when it ran, to measure real concurrency.

    The first trials wait (up to 30 s) until ``expect`` trials have started, so that on a
    loaded machine the ones Tune runs together really overlap.
    """
    from ray import tune as ray_tune

    start = time.time()
    started = os.path.join(config["log_dir"], "started")
    os.makedirs(started, exist_ok=True)
    open(os.path.join(started, f"{config['x']:.12f}"), "w").close()
    while len(os.listdir(started)) < config["expect"] and time.time() < start + 30:
        time.sleep(0.05)
    time.sleep(1.0)
    with open(os.path.join(config["log_dir"], f"{config['x']:.12f}.json"), "w") as f:
        json.dump([start, time.time()], f)
    ray_tune.report({"loss": config["x"]})


def sometimes_fails(config):
    from ray import tune as ray_tune

    if config["x"] > 0:
        raise RuntimeError(f"bad region x={config['x']:.3f}")
    ray_tune.report({"loss": config["x"]})


def max_overlap(intervals):
    events = sorted([(s, 1) for s, _ in intervals] + [(e, -1) for _, e in intervals])
    running = peak = 0
    for _, delta in events:
        running += delta
        peak = max(peak, running)
    return peak


def test_tune_finds_the_best_trial_and_returns_a_table(ray_local, tmp_path):
    result = tune(quadratic, SPACE, metric="loss", mode="min", num_samples=6, max_concurrent=2,
                  seed=3, storage_path=str(tmp_path), tracking_uri="", verbose=0)
    assert len(result.trials) == 6
    assert (result.trials["status"] == "TERMINATED").all()
    losses = result.trials["loss"]
    assert result.best_metric == pytest.approx(losses.min())
    assert result.best_config["fixed"] == 7 and set(result.best_config) == {"x", "n", "kind", "fixed"}
    assert os.path.isdir(result.experiment_path)
    assert "best metric" in result.summary() and result.experiment_path in result.summary()


def test_same_seed_gives_the_same_configs(ray_local, tmp_path):
    def configs(seed, sub):
        result = tune(quadratic, SPACE, metric="loss", mode="min", num_samples=4, max_concurrent=2,
                      seed=seed, storage_path=str(tmp_path / sub), tracking_uri="", verbose=0)
        return sorted(round(x, 12) for x in result.trials["config/x"])

    assert configs(11, "a") == configs(11, "b")
    assert configs(11, "a") != configs(12, "c")


def test_max_concurrent_bounds_and_fills_the_cluster(ray_local, tmp_path):
    log_dir = tmp_path / "intervals"
    log_dir.mkdir()
    space = {"x": Float(0.0, 1.0), "log_dir": str(log_dir), "expect": 3}
    tune(interval_logger, space, metric="loss", mode="min", num_samples=9, max_concurrent=3,
         resources={"cpu": 0.5}, seed=0, storage_path=str(tmp_path / "runs"), tracking_uri="", verbose=0)
    intervals = [json.loads(p.read_text()) for p in log_dir.glob("*.json")]
    assert len(intervals) == 9
    # 4 trials of 0.5 CPU fit on 2 CPUs; max_concurrent=3 must cap it at 3 and reach 3.
    assert max_overlap(intervals) == 3


def test_failed_trials_are_reported_and_the_run_goes_on(ray_local, tmp_path):
    result = tune(sometimes_fails, {"x": Float(-1.0, 1.0)}, metric="loss", mode="min", num_samples=6,
                  max_concurrent=2, seed=1, storage_path=str(tmp_path), tracking_uri="", verbose=0)
    failed = result.trials[result.trials["status"] == "ERROR"]
    assert len(failed) == len(result.errors) > 0
    assert all("bad region" in message for message in result.errors.values())
    assert result.best_metric is not None and result.best_metric <= 0


def test_ray_tune_searcher_and_scheduler_objects_are_accepted(ray_local, tmp_path):
    from ray.tune.schedulers import ASHAScheduler
    from ray.tune.search.hyperopt import HyperOptSearch

    result = tune(quadratic, SPACE, metric="loss", mode="min", search=HyperOptSearch(random_state_seed=0),
                  scheduler=ASHAScheduler(max_t=2, grace_period=1), num_samples=4, max_concurrent=2,
                  storage_path=str(tmp_path), tracking_uri="", verbose=0)
    assert len(result.trials) == 4
    assert all(-2.0 <= x <= 2.0 for x in result.trials["config/x"])
    assert set(result.trials["config/n"]) <= {1, 2, 3, 4}


def test_a_request_no_node_can_hold_fails_before_any_trial(ray_local, tmp_path):
    with pytest.raises(SpecError) as info:
        tune(quadratic, SPACE, metric="loss", mode="min", resources={"cpu": 1, "gpu": 1},
             storage_path=str(tmp_path), tracking_uri="", verbose=0)
    message = str(info.value)
    assert "GPU=1" in message and "GPU=0" in message and "lower the per-trial request" in message
    assert not (tmp_path / "tune").exists()


def reports_the_wrong_key(config):
    from ray import tune as ray_tune

    ray_tune.report({"accuracy": config["x"], "epoch_loss": 1.0})


def reports_a_string(config):
    from ray import tune as ray_tune

    ray_tune.report({"loss": "low"})


def test_a_missing_metric_names_the_keys_the_trainable_did_report(ray_local, tmp_path):
    from orchestrator import TrialReportError

    with pytest.raises(TrialReportError) as info:
        tune(reports_the_wrong_key, {"x": Float(0.0, 1.0)}, metric="loss", mode="min", num_samples=2,
             storage_path=str(tmp_path), tracking_uri="", verbose=0)
    message = str(info.value)
    assert "['accuracy', 'epoch_loss']" in message and "not 'loss'" in message
    assert "training_iteration" not in message


def test_a_metric_reported_as_a_string_is_explained(ray_local, tmp_path):
    result = tune(reports_a_string, {"x": Float(0.0, 1.0)}, metric="loss", mode="min", num_samples=2,
                  storage_path=str(tmp_path), tracking_uri="", verbose=0)
    assert result.best_config is None
    assert "no trial reported a finite number for 'loss'" in result.summary()
    assert "'low'" in result.summary()


def test_the_searchers_recommendation_is_in_the_result(ray_local, tmp_path):
    result = tune(quadratic, SPACE, metric="loss", mode="min", num_samples=4, max_concurrent=2, seed=5,
                  storage_path=str(tmp_path), tracking_uri="", verbose=0)
    # Random search recommends its best completed trial: the best config.
    assert result.recommended_config == result.best_config


# ----- tune() and ExperimentSpec: one definition of the fields; the spec given is not changed ------


@pytest.fixture
def captured_run(monkeypatch):
    """tune() up to run(): what run() would have been given, without running."""
    from orchestrator import api

    calls = []
    monkeypatch.setattr(api, "run", lambda spec, verbose, callbacks: calls.append((spec, verbose, callbacks)))
    return calls


def test_tune_accepts_every_spec_field(captured_run):
    values = {f.name: f"<{f.name}>" for f in dataclasses.fields(ExperimentSpec)}
    tune(verbose=0, callbacks=["a callback"], **values)
    (spec, verbose, callbacks), = captured_run
    assert spec == ExperimentSpec(**values)
    assert (verbose, callbacks) == (0, ["a callback"])


def test_tune_takes_none_for_a_mapping_field_as_its_default(captured_run):
    tune(quadratic, SPACE, metric="loss", mode="min", search_options=None, scheduler_options=None,
         resources=None, keep_checkpoints=None)
    (spec, _, _), = captured_run
    defaults = ExperimentSpec(quadratic, SPACE, "loss", "min")
    assert (spec.search_options, spec.scheduler_options, spec.resources) == \
        (defaults.search_options, defaults.scheduler_options, defaults.resources)
    assert spec.keep_checkpoints is None  # not a mapping: None is the value (keep every checkpoint)


def test_tune_names_an_unknown_keyword_and_the_nearest_fields(captured_run):
    with pytest.raises(SpecError, match=r"unknown keyword argument 'keep_checkpoint'; did you mean "
                                        r"'keep_checkpoints'"):
        tune(quadratic, SPACE, metric="loss", mode="min", keep_checkpoint=2)
    with pytest.raises(SpecError, match=r"tune\(\): mode is required; say whether to minimise"):
        tune(quadratic, SPACE, metric="loss")
    assert not captured_run


def test_run_leaves_the_spec_it_is_given_unchanged(ray_local, tmp_path):
    """The run fills in the concurrency, the tracking URI, the space as a Space and the resources
    in full, on its own copy."""
    spec = ExperimentSpec(quadratic, dict(SPACE), "loss", "min", num_samples=2, resources={"cpu": 1},
                          storage_path=str(tmp_path))
    given = {f.name: getattr(spec, f.name) for f in dataclasses.fields(spec)}
    copies = copy.deepcopy(given)
    result = run(spec, verbose=0)
    assert len(result.trials) == 2 and result.tracking_uri.startswith("sqlite:")  # on the run's copy
    for name, value in given.items():
        assert getattr(spec, name) is value and value == copies[name], name
    assert spec.max_concurrent is None and spec.tracking_uri is None
