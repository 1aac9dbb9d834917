"""The contract every registered searcher keeps, driven through Ray's Searcher calls (no cluster).

Each test runs for every name in ``orchestrator.registry.SEARCHERS``: a new searcher is covered
the moment it is registered.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from orchestrator import registry
from search_algs import Categorical, Float, Int

SPACE = {
    "lr": Float(1e-4, 1.0, log=True),
    "units": Int(8, 128, log=True),
    "act": Categorical(["relu", "tanh"]),
    "opt": Categorical([{"name": "sgd", "momentum": Float(0.0, 0.99)}, {"name": "adam"}]),
    "epochs": 3,
}
NAMES = sorted(registry.SEARCHERS)


def objective(config: dict) -> float:
    value = (math.log10(config["lr"]) + 2) ** 2 + (math.log2(config["units"]) - 5) ** 2 / 4
    value += 0.5 if config["act"] == "tanh" else 0.0
    if config["opt"]["name"] == "sgd":
        value += (config["opt"]["momentum"] - 0.9) ** 2
    return value


def make(name: str, seed: int = 0, **kwargs):
    return registry.searcher_class(name)(space=SPACE, metric="loss", mode="min", seed=seed, **kwargs)


def drive(searcher, n: int, start: int = 0, faults: bool = True) -> list[dict]:
    """Suggest and complete ``n`` trials one by one; trial 3 errors, trial 5 reports NaN."""
    configs = []
    for i in range(start, start + n):
        trial = f"t{i}"
        config = searcher.suggest(trial)
        configs.append(config)
        if faults and i == 3:
            searcher.on_trial_complete(trial, None, error=True)
        elif faults and i == 5:
            searcher.on_trial_complete(trial, {"loss": float("nan"), "training_iteration": 3})
        else:
            searcher.on_trial_result(trial, {"loss": objective(config) + 1, "training_iteration": 1})
            searcher.on_trial_complete(trial, {"loss": objective(config), "training_iteration": 3})
    return configs


def assert_in_space(searcher, config):
    searcher.space.to_flat(config)  # raises SpaceError outside the space
    assert config["epochs"] == 3  # constants pass through
    assert ("momentum" in config["opt"]) == (config["opt"]["name"] == "sgd")


@pytest.mark.parametrize("name", NAMES)
def test_suggestions_stay_in_the_space_and_faults_never_crash(name):
    searcher = make(name)
    for config in drive(searcher, 16):
        assert_in_space(searcher, config)
    failed = [obs for obs in searcher.history if obs.failed]
    assert len(failed) == 2 and len(searcher.history) == 16


@pytest.mark.parametrize("name", NAMES)
def test_the_same_seed_gives_the_same_sequence(name):
    assert drive(make(name, seed=7), 14) == drive(make(name, seed=7), 14)
    assert drive(make(name, seed=7), 3) != drive(make(name, seed=8), 3)


@pytest.mark.parametrize("name", NAMES)
def test_save_and_restore_continue_the_same_sequence(name, tmp_path):
    searcher = make(name, seed=3)
    drive(searcher, 12)
    path = str(tmp_path / "state.pkl")
    searcher.save(path)
    expected = drive(searcher, 3, start=12)
    restored = make(name, seed=99)
    restored.restore(path)
    assert drive(restored, 3, start=12) == expected


@pytest.mark.parametrize("name", NAMES)
def test_pending_trials_get_distinct_suggestions(name):
    searcher = make(name, seed=1)
    drive(searcher, 12, faults=False)
    pending = [searcher.suggest(f"p{i}") for i in range(4)]
    for config in pending:
        assert_in_space(searcher, config)
    flats = [tuple(sorted(searcher.space.to_flat(c).items())) for c in pending]
    assert len(set(flats)) == 4, pending
    assert len(searcher.pending) == 4


@pytest.mark.parametrize("name", NAMES)
def test_points_to_evaluate_come_first(name):
    first = {"lr": 0.01, "units": 32, "act": "relu", "opt": {"name": "adam"}, "epochs": 3}
    searcher = make(name, points_to_evaluate=[first])
    assert searcher.suggest("a") == first
    assert_in_space(searcher, searcher.suggest("b"))


@pytest.mark.parametrize("name", NAMES)
def test_warm_start_points_are_observations(name):
    searcher = make(name)
    rng = np.random.default_rng(0)
    for _ in range(12):
        config = searcher.space.sample(rng)
        searcher.add_evaluated_point(config, objective(config))
    assert len(searcher.history) == 12
    assert_in_space(searcher, searcher.suggest("next"))


@pytest.mark.parametrize("name", NAMES)
def test_the_recommendation_is_a_config_of_an_evaluated_trial(name):
    searcher = make(name)
    assert searcher.recommend() is None
    configs = drive(searcher, 12)
    recommended = searcher.recommend()
    assert_in_space(searcher, recommended)
    assert recommended in configs
