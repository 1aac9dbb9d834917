"""Tests of the GP-EI Tune adapter: encoding of the space, startup, determinism,
save/restore, failures, and one real Tune run."""

from __future__ import annotations

import math
import pickle

import numpy as np
import pytest

from search_algs.core.gp_ei import GPEIOptions
from search_algs.core.optimizer import OptimizeOptions
from search_algs.gp_ei import GPEISearch
from search_algs.random_search import RandomSearch
from search_algs.space import Categorical, Float, Int, Space

SPACE = {
    "x": Float(0.0, 1.0),
    "lr": Float(1e-4, 1e-1, log=True),
    "n": Int(1, 8),
    "opt": Categorical(["sgd", {"kind": "adam", "beta": Float(0.8, 0.99, step=0.01)}]),
}
# lighter acquisition search: these tests check wiring, not optimisation quality
FAST = GPEIOptions(optimize=OptimizeOptions(n_raw=256, n_perturb=64, n_starts=4, maxiter=30))


def objective(config) -> float:
    penalty = 0.0 if config["opt"] == "sgd" else (config["opt"]["beta"] - 0.9) ** 2
    return (config["x"] - 0.3) ** 2 + (math.log10(config["lr"]) + 2.5) ** 2 + 0.1 * abs(config["n"] - 5) + penalty


def drive(searcher, n: int, start: int = 0, fail=lambda i: False) -> list:
    configs = []
    for i in range(start, start + n):
        config = searcher.suggest(f"t{i}")
        configs.append(config)
        if fail(i):
            searcher.on_trial_complete(f"t{i}", None, error=True)
        else:
            searcher.on_trial_complete(f"t{i}", {"loss": objective(config), "training_iteration": 1})
    return configs


def make(seed: int = 0, **kwargs) -> GPEISearch:
    kwargs.setdefault("options", FAST)
    return GPEISearch(space=SPACE, metric="loss", mode="min", seed=seed, **kwargs)


def test_registry_names_gp_ei():
    from orchestrator.registry import searcher_class

    assert searcher_class("gp-ei") is GPEISearch


def test_dims_describe_the_space_encoding():
    space = Space({**SPACE, "units": Int(1, 1000, log=True), "huge": Int(0, 10**6)})
    dims = {p.name: d for p, d in zip(space.params, space.dims())}
    assert dims["x"].kind == dims["lr"].kind == "continuous"
    assert dims["opt"].kind == "categorical" and dims["opt"].n_choices == 2
    n = space.params[space.index("n")]
    np.testing.assert_allclose(dims["n"].grid, [n.encode(k) for k in range(1, 9)])
    units = space.params[space.index("units")]
    assert [units.decode(u) for u in dims["units"].grid] == list(range(1, 1001))
    assert dims["huge"].kind == "discrete" and dims["huge"].grid is None  # searched as continuous
    assert dims["opt[1]/beta"].condition == ((space.index("opt"), 1),)
    assert len(dims["opt[1]/beta"].grid) == 20


def test_startup_draws_are_random_search_draws():
    gp = make(seed=7)
    rs = RandomSearch(space=SPACE, metric="loss", mode="min", seed=7)
    assert gp.startup() == 10  # min(10, 2 * 5 + 1)
    assert drive(gp, 10) == drive(rs, 10)
    assert make(n_startup=3).startup() == 3


def test_sobol_startup_covers_each_dimension_evenly_and_survives_a_restore(tmp_path):
    a = make(seed=5, startup_design="sobol", n_startup=8)
    configs = drive(a, 4)
    path = str(tmp_path / "searcher.pkl")
    a.save(path)
    b = make(seed=123, startup_design="random")  # overwritten by the restore
    b.restore(path)
    configs += drive(b, 4, start=4)
    assert configs == drive(make(seed=5, startup_design="sobol", n_startup=8), 8)
    # the first 8 points of a scrambled Sobol sequence put exactly one point in each eighth of
    # every coordinate: no two start-up points share a bin of x (Float(0, 1), linear)
    assert sorted(int(c["x"] * 8) for c in configs) == list(range(8))
    lr_bins = sorted(int((math.log10(c["lr"]) + 4) / 3 * 8) for c in configs)  # log scale
    assert lr_bins == list(range(8))
    for config in configs:
        Space(SPACE).to_flat(config)  # valid (raises otherwise)
    assert configs != drive(make(seed=6, startup_design="sobol", n_startup=8), 8)


def test_options_from_a_mapping_as_yaml_gives_them():
    from search_algs.core.gp_ei import GPEIOptions as Opts
    from search_algs.kg import KGSearch

    searcher = GPEISearch(space=SPACE, noise="noisy",
                          options={"noisy_acqf": "nei", "prior": {"noise_loc": -6, "lengthscale_bounds": [0.01, 100]},
                                   "optimize": {"n_raw": 256}})
    opts = searcher.options
    assert isinstance(opts, Opts) and (opts.noise, opts.noisy_acqf) == ("noisy", "nei")
    assert opts.prior.noise_loc == -6 and opts.prior.lengthscale_bounds == (0.01, 100)
    assert opts.prior.noise_scale == Opts().prior.noise_scale and opts.optimize.n_raw == 256
    assert opts.optimize.n_starts == Opts().optimize.n_starts
    kg = KGSearch(space=SPACE, options={"prior": {"noise_loc": -6}})
    assert type(kg.options).__name__ == "KGOptions" and kg.options.prior.noise_loc == -6
    drive(GPEISearch(space=SPACE, metric="loss", mode="min", seed=0, noise="noisy", n_startup=3,
                     options={"noisy_acqf": "nei", "optimize": {"n_raw": 128, "n_perturb": 32, "maxiter": 20}}), 5)


def test_same_seed_same_sequence_and_every_config_is_valid():
    a, b = make(seed=3), make(seed=3)
    seq_a, seq_b = drive(a, 14), drive(b, 14)
    assert seq_a == seq_b
    space = Space(SPACE)
    for config in seq_a:
        flat = space.to_flat(config)  # raises on anything outside the space
        assert isinstance(config["n"], int)
        assert all(np.isfinite(float(v)) for v in flat.values())
    assert seq_a[10:] != drive(make(seed=4), 14)[10:]


def test_save_restore_continues_the_same_sequence(tmp_path):
    a = make(seed=1)
    drive(a, 11)
    path = str(tmp_path / "searcher.pkl")
    a.save(path)
    after_a = drive(a, 3, start=11)

    b = make(seed=99, noise="noisy", n_startup=2, options=GPEIOptions())  # all overwritten by restore
    b.restore(path)
    assert b.n_startup is None and b.options.noise == "auto" and b.options.optimize.n_raw == 256
    assert drive(b, 3, start=11) == after_a

    c = pickle.loads(pickle.dumps(a))  # as Tune brings it back from tuner.pkl
    assert drive(c, 2, start=14) == drive(a, 2, start=14)


def test_failures_and_max_mode():
    searcher = GPEISearch(space=SPACE, metric="score", mode="max", seed=0, n_startup=4, options=FAST)
    configs = []
    for i in range(9):
        config = searcher.suggest(f"t{i}")
        configs.append(config)
        if i in (1, 5):
            searcher.on_trial_complete(f"t{i}", None, error=True)
        else:
            searcher.on_trial_complete(f"t{i}", {"score": -objective(config), "training_iteration": 1})
    assert [o.failed for o in searcher.history].count(True) == 2
    assert searcher.history[0].loss == pytest.approx(objective(configs[0]))  # sign flipped to a loss
    assert configs[6] != configs[5] and configs[7] != configs[5]
    best = searcher.recommend_flat()
    assert best == min((o for o in searcher.history if not o.failed), key=lambda o: o.loss).flat
    assert searcher.recommend() == searcher.space.to_config(best)


def test_only_failures_fall_back_to_random_draws(caplog):
    searcher = make(seed=0, n_startup=2)
    drive(searcher, 4, fail=lambda i: True)
    assert all(o.failed for o in searcher.history)
    assert searcher.recommend() is None


def test_bad_arguments_are_refused_with_the_value():
    with pytest.raises(ValueError, match="n_startup.*-1"):
        GPEISearch(space=SPACE, n_startup=-1)
    with pytest.raises(ValueError, match="noise.*'loud'"):
        GPEISearch(space=SPACE, noise="loud")
    with pytest.raises(ValueError, match=r"unknown 'options' field\(s\) \['noisy_acf'\]"):
        GPEISearch(space=SPACE, options={"noisy_acf": "nei"})
    with pytest.raises(ValueError, match=r"unknown 'options.prior' field\(s\) \['noise'\]"):
        GPEISearch(space=SPACE, options={"prior": {"noise": -4}})
    with pytest.raises(ValueError, match="'noisy_acqf' must be one of"):
        GPEISearch(space=SPACE, options={"noisy_acqf": "qnei"})
    with pytest.raises(ValueError, match="'startup_design' must be one of .*'lhs'"):
        GPEISearch(space=SPACE, startup_design="lhs")
    with pytest.raises(ValueError, match="'options' must be a GPEIOptions or a mapping of its fields, got str"):
        GPEISearch(space=SPACE, options="fast")


def test_tune_run_completes_and_searcher_sees_every_trial(ray_local, tmp_path):
    from ray import tune
    from ray.tune.search import ConcurrencyLimiter

    def trainable(config):
        tune.report({"loss": (config["x"] - 0.3) ** 2 + (config["y"] == "b") + 0.01 * config["k"]})

    space = {"x": Float(0.0, 1.0), "y": Categorical(["a", "b"]), "k": Int(0, 4)}
    searcher = GPEISearch(space=space, metric="loss", mode="min", seed=0, options=FAST)
    tuner = tune.Tuner(
        trainable,
        tune_config=tune.TuneConfig(search_alg=ConcurrencyLimiter(searcher, max_concurrent=2),
                                    num_samples=12, reuse_actors=True),
        run_config=tune.RunConfig(storage_path=str(tmp_path), verbose=0),
    )
    results = tuner.fit()
    assert len(results) == 12 and not results.errors
    assert len(searcher.history) == 12 and not searcher.pending
    assert all(o.loss is not None for o in searcher.history)
    configs = [r.config for r in results]
    assert len({(c["x"], c["y"], c["k"]) for c in configs}) == 12
    best = results.get_best_result(metric="loss", mode="min")
    assert best.metrics["loss"] == pytest.approx(min(o.loss for o in searcher.history))


# ---- bounded cost at any history size (issue #21) -----------------------------------------------


def test_adapter_encodes_each_observation_once_and_follows_history_changes():
    a, b = make(seed=0), make(seed=1)
    drive(a, 12)
    drive(b, 12)
    space = Space(SPACE)

    def fresh(s):
        return np.array([space.encode_flat(obs.flat) for obs in s.history])

    np.testing.assert_array_equal(a._arrays()[0], fresh(a))
    first = a._encoded
    drive(a, 2, start=12)
    assert a._encoded is first  # extended, not rebuilt
    np.testing.assert_array_equal(a._arrays()[0], fresh(a))
    a.set_state(b.get_state())  # another history (resume): rebuilt
    np.testing.assert_array_equal(a._arrays()[0], fresh(b))
    clone = pickle.loads(pickle.dumps(a))
    assert clone._encoded is None  # a cache: it does not travel
    np.testing.assert_array_equal(clone._arrays()[0], fresh(a))


def test_capped_model_and_fit_through_the_adapter_stay_valid_and_reproducible():
    capped = {**FAST.as_dict(), "max_model_points": 12, "max_fit_points": 8}
    a, b = make(seed=5, options=capped), make(seed=5, options=capped)
    assert (a.options.max_model_points, a.options.max_fit_points) == (12, 8)
    seq_a, seq_b = drive(a, 22), drive(b, 22)
    assert seq_a == seq_b
    space = Space(SPACE)
    for config in seq_a:
        space.to_flat(config)  # raises on anything outside the space
    with pytest.raises(ValueError, match="'max_fit_points' must be None or an int >= 4, got 0"):
        make(options={"max_fit_points": 0})
