"""The searcher contract (tests/test_searcher_contract.py) for the multi-objective searcher,
random, MOTPE and ParEGO GP-EI, driven with two objectives and a constraint (no cluster)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from search_algs import Categorical, Float, Int
from search_algs.multi_objective import ConstraintMetricError, MultiObjectiveSearch

from tests.test_searcher_contract import SPACE, assert_in_space, objective

ALGORITHMS = ["random", "tpe", "gp-ei"]
# a cheaper acquisition search keeps the GP cases fast; the contract does not depend on it
CHEAP_GP = {"options": {"fit_maxiter": 50, "optimize": {"n_raw": 128, "n_perturb": 32, "n_starts": 2,
                                                        "maxiter": 20, "n_local": 1}}}


def make(algorithm: str, seed: int = 0, **kwargs):
    if algorithm == "gp-ei" and "options" not in kwargs:
        kwargs = {**CHEAP_GP, **kwargs}
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


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_a_constraint_metric_the_trial_never_reports_is_named(algorithm):
    searcher = make(algorithm)
    config = searcher.suggest("a")
    with pytest.raises(ConstraintMetricError, match=r"'memory'.*memory <= 100.*reported \['loss', 'size'\]"):
        searcher.on_trial_result("a", {"loss": 1.0, "size": 2.0, "training_iteration": 1})


def test_gp_ei_keeps_each_constraint_slack_on_the_observations():
    searcher = MultiObjectiveSearch(space=SPACE, metric=["loss", "size"], mode=["min", "max"], seed=0,
                                    constraints=["memory <= 100", "size >= 0.25"], algorithm="gp-ei", **CHEAP_GP)
    drive(searcher, 12)
    for obs in searcher.history:
        if obs.flat.get("units") is None:
            continue
        if obs.failed and obs.objectives is None and math.isinf(obs.violation):
            continue
        memory, size = obs.flat["units"], obs.flat["units"] / 128
        assert obs.constraint_values[0] == pytest.approx(memory - 100)
        assert obs.constraint_values[1] == pytest.approx(0.25 - size)
        assert (obs.violation == 0) == (memory <= 100 and size >= 0.25)


@pytest.mark.parametrize("kwargs, words", [
    ({"rho": -1}, ["'rho'", "-1", "0.05"]),
    ({"rho": "big"}, ["'rho'", "'big'"]),
    ({"startup_design": "grid"}, ["'startup_design'", "'grid'", "'sobol'"]),
    ({"noise": "loud"}, ["'noise'", "'loud'"]),
    ({"options": {"noisy_acq": "nei"}}, ["'options'", "noisy_acq"]),
    ({"options": 5}, ["'options'", "int 5"]),
    ({"options": {"optimize": {"n_raw": 0}}}, ["'n_raw'", "0"]),
])
def test_gp_ei_options_are_validated_with_clear_errors(kwargs, words):
    with pytest.raises(ValueError) as info:
        make("gp-ei", **kwargs)
    assert all(w in str(info.value) for w in words), str(info.value)


def test_options_of_another_algorithm_are_refused_by_name():
    with pytest.raises(TypeError, match="unexpected keyword argument 'gamma_fraction'"):
        make("gp-ei", gamma_fraction=0.2)
    with pytest.raises(TypeError, match="'rho'"):
        make("tpe", rho=0.05)
    with pytest.raises(ValueError, match="'algorithm'.*'gp'.*'gp-ei'"):
        make("gp")


def test_gp_ei_sobol_start_up_and_restore_of_the_design():
    searcher = make("gp-ei", seed=2, startup_design="sobol", n_startup=8)
    first = drive(searcher, 4, faults=False)
    again = make("gp-ei", seed=2, startup_design="sobol", n_startup=8)
    assert drive(again, 4, faults=False) == first
    assert len({c["units"] for c in first}) == 4


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


def test_the_spec_builds_gp_ei_for_several_objectives_and_refuses_kg():
    from orchestrator.components import build_searcher
    from orchestrator.spec import ExperimentSpec, SpecError

    from tests.test_spec import spec_with

    two = {"metric": ["val_loss", "latency"], "mode": ["min", "min"], "constraints": ["memory <= 16"]}
    spec = ExperimentSpec.from_dict(spec_with(**two, search="gp-ei", search_options={"rho": 0.1, "n_startup": 5}))
    searcher, _ = build_searcher(spec)
    assert isinstance(searcher, MultiObjectiveSearch) and searcher.algorithm == "gp-ei"
    assert searcher.options.rho == 0.1 and searcher.n_startup == 5 and searcher.options.n_startup == 5
    with pytest.raises(SpecError, match=r"search_options.rho.*-1.*'rho' must be a finite number >= 0"):
        build_searcher(ExperimentSpec.from_dict(spec_with(**two, search="gp-ei", search_options={"rho": -1})))
    with pytest.raises(SpecError, match=r"'kg' cannot tune several objectives.*'gp-ei'.*search: gp-ei"):
        ExperimentSpec.from_dict(spec_with(**two, search="kg"))
