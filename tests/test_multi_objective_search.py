"""The searcher contract (tests/test_searcher_contract.py) for the multi-objective searcher,
random and MOTPE, driven with two objectives and a constraint (no cluster)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from search_algs import Categorical, Float, Int
from search_algs.multi_objective import ConstraintMetricError, MultiObjectiveSearch

from tests.test_searcher_contract import SPACE, assert_in_space, objective

ALGORITHMS = ["random", "tpe"]


def make(algorithm: str, seed: int = 0, **kwargs):
    return MultiObjectiveSearch(space=SPACE, metric=["loss", "size"], mode=["min", "min"], seed=seed,
                                constraints=["memory <= 100"], algorithm=algorithm, **kwargs)


def report(config: dict) -> dict:
    loss = objective(config)
    return {"loss": loss, "size": config["units"] / 128, "memory": config["units"], "training_iteration": 3}


def drive(searcher, n: int, start: int = 0, faults: bool = True) -> list[dict]:
    configs = []
    for i in range(start, start + n):
        trial = f"t{i}"
        config = searcher.suggest(trial)
        configs.append(config)
        if faults and i == 3:
            searcher.on_trial_complete(trial, None, error=True)
        elif faults and i == 5:
            searcher.on_trial_complete(trial, {**report(config), "size": float("nan")})
        else:
            searcher.on_trial_result(trial, {**report(config), "training_iteration": 1})
            searcher.on_trial_complete(trial, report(config))
    return configs


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_suggestions_stay_in_the_space_and_faults_never_crash(algorithm):
    searcher = make(algorithm)
    for config in drive(searcher, 16):
        assert_in_space(searcher, config)
    assert len([o for o in searcher.history if o.failed]) == 2 and len(searcher.history) == 16
    infeasible = [o for o in searcher.history if not o.failed and o.violation > 0]
    assert all(o.flat["units"] > 100 for o in infeasible)


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_the_same_seed_gives_the_same_sequence(algorithm):
    assert drive(make(algorithm, seed=7), 14) == drive(make(algorithm, seed=7), 14)
    assert drive(make(algorithm, seed=7), 3) != drive(make(algorithm, seed=8), 3)


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_save_and_restore_continue_the_same_sequence(algorithm, tmp_path):
    searcher = make(algorithm, seed=3)
    drive(searcher, 12)
    path = str(tmp_path / "state.pkl")
    searcher.save(path)
    expected = drive(searcher, 3, start=12)
    restored = make(algorithm, seed=99)
    restored.restore(path)
    assert drive(restored, 3, start=12) == expected


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_pending_trials_get_distinct_suggestions(algorithm):
    searcher = make(algorithm, seed=1)
    drive(searcher, 12, faults=False)
    pending = [searcher.suggest(f"p{i}") for i in range(4)]
    flats = [tuple(sorted(searcher.space.to_flat(c).items())) for c in pending]
    assert len(set(flats)) == 4


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_points_to_evaluate_and_warm_start(algorithm):
    first = {"lr": 0.01, "units": 32, "act": "relu", "opt": {"name": "adam"}, "epochs": 3}
    searcher = make(algorithm, points_to_evaluate=[first])
    assert searcher.suggest("a") == first
    rng = np.random.default_rng(0)
    for _ in range(12):
        config = searcher.space.sample(rng)
        r = report(config)
        searcher.add_evaluated_point(config, [r["loss"], r["size"]], constraint_values={"memory": r["memory"]})
    assert len(searcher.history) == 12
    assert_in_space(searcher, searcher.suggest("next"))


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_the_recommendation_is_a_feasible_front_member(algorithm):
    searcher = make(algorithm)
    assert searcher.recommend() is None
    configs = drive(searcher, 14)
    recommended = searcher.recommend()
    assert recommended in configs and recommended["units"] <= 100
    order = searcher.ranking()
    assert searcher.history[order[0]].violation == 0
    assert all(searcher.history[i].failed or searcher.history[i].violation > 0
               for i in order[order.index(next(i for i in order if searcher.history[i].violation > 0)):])


def test_a_constraint_metric_the_trial_never_reports_is_named():
    searcher = make("tpe")
    config = searcher.suggest("a")
    with pytest.raises(ConstraintMetricError, match=r"'memory'.*memory <= 100.*reported \['loss', 'size'\]"):
        searcher.on_trial_result("a", {"loss": 1.0, "size": 2.0, "training_iteration": 1})


def test_motpe_finds_more_hypervolume_than_random_on_a_zdt1_like_problem():
    from search_algs.core.pareto import hypervolume

    space = {f"x{i}": Float(0.0, 1.0) for i in range(4)}

    def zdt1(c):
        x = [c[f"x{i}"] for i in range(4)]
        g = 1 + 9 * sum(x[1:]) / 3
        return {"f1": x[0], "f2": g * (1 - math.sqrt(x[0] / g)), "training_iteration": 1}

    def run(algorithm, seed):
        s = MultiObjectiveSearch(space=space, metric=["f1", "f2"], mode="min", seed=seed, algorithm=algorithm)
        Y = []
        for i in range(60):
            c = s.suggest(str(i))
            r = zdt1(c)
            s.on_trial_complete(str(i), r)
            Y.append([r["f1"], r["f2"]])
        return hypervolume(np.array(Y), [1.1, 11.0])

    tpe = np.mean([run("tpe", seed) for seed in range(4)])
    rnd = np.mean([run("random", seed) for seed in range(4)])
    assert tpe > rnd
