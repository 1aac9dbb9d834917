"""Fast correctness tests of the benchmark harness (``benchmarks/``).

Peers and optional problems that are not installed are skipped with a message naming the
package (the ``bench`` extra: optuna, botorch; BBOB needs ``coco-experiment``).
"""

from __future__ import annotations

import importlib.util
import json
import math

import numpy as np
import pytest

from benchmarks import harness, peers, report, runner
from benchmarks.problems import (
    BRANIN_MINIMISERS,
    HARTMANN6_OPTIMUM,
    PBTToy,
    branin,
    get_problem,
    hartmann6,
    problem_available,
    problem_names,
)
from benchmarks.suites import Suite


def _need(module: str, package: str) -> None:
    if importlib.util.find_spec(module) is None:
        pytest.skip(f"'{package}' is not installed (pip install '.[bench]')")


# ---- problems ----------------------------------------------------------------------------------

def test_branin_minimum_at_its_three_minimisers():
    for x1, x2 in BRANIN_MINIMISERS:
        assert branin(x1, x2) == pytest.approx(0.397887, abs=1e-6)
    p = get_problem("branin")
    assert p.optimum == pytest.approx(0.397887, abs=1e-6)
    for m in p.minimisers:
        assert p.value(m) == pytest.approx(p.optimum, abs=1e-12)
    rng = np.random.default_rng(0)
    assert min(p.value(p.space.sample(rng)) for _ in range(2000)) > p.optimum


def test_hartmann6_minimum_at_the_published_point():
    published = (0.20169, 0.150011, 0.476874, 0.275332, 0.311652, 0.6573)
    assert hartmann6(published) == pytest.approx(-3.32237, abs=1e-5)
    assert HARTMANN6_OPTIMUM == pytest.approx(-3.32237, abs=1e-5)
    p = get_problem("hartmann6")
    assert p.value(p.minimisers[0]) == pytest.approx(p.optimum, abs=1e-9)
    from scipy.optimize import minimize

    res = minimize(hartmann6, published, method="L-BFGS-B", bounds=[(0, 1)] * 6)
    assert res.fun >= p.optimum - 1e-9  # no lower point next to it
    rng = np.random.default_rng(1)
    assert min(p.value(p.space.sample(rng)) for _ in range(2000)) > p.optimum


@pytest.mark.parametrize("name", ["mixed", "conditional"])
def test_mixed_and_conditional_minimisers(name):
    p = get_problem(name)
    for m in p.minimisers:
        config = p.space.to_config(p.space.to_flat(m))  # the minimiser lies in the space
        assert p.value(config) == pytest.approx(p.optimum, abs=1e-12)
    rng = np.random.default_rng(2)
    assert min(p.value(p.space.sample(rng)) for _ in range(500)) >= p.optimum


def test_noise_is_seeded_and_true_value_kept():
    p = get_problem("hartmann6_noise0.5")
    config = p.minimisers[0]
    obs = [p.evaluate(config, np.random.default_rng([7, i])) for i in range(400)]
    assert all(t == pytest.approx(p.optimum) for _, t in obs)
    noise = np.array([o - t for o, t in obs])
    assert 0.4 < noise.std() < 0.6
    assert p.evaluate(config, np.random.default_rng(3)) == p.evaluate(config, np.random.default_rng(3))
    assert get_problem("hartmann6").evaluate(config, np.random.default_rng(3))[0] == pytest.approx(p.optimum)


def test_every_named_problem_builds_and_evaluates():
    rng = np.random.default_rng(4)
    for name in problem_names():
        ok, why = problem_available(name)
        if not ok or name in ("knn_digits", "mlp_digits"):  # the slowest two are tested below / in full
            continue
        p = get_problem(name)
        value = p.value(p.space.sample(rng))
        assert math.isfinite(value), name
        if p.optimum is not None:
            assert value >= p.optimum - 1e-9, name


def test_unknown_problem_names_the_known_ones():
    with pytest.raises(KeyError, match="branin"):
        get_problem("nope")
    ok, why = problem_available("nope")
    assert not ok and "unknown problem" in why


def test_bbob_optimum_is_the_value_at_xopt():
    _need("cocoex", "coco-experiment")
    p = get_problem("bbob_f1_d2")
    xopt = p.fn.xopt()
    assert p.value({"x0": xopt[0], "x1": xopt[1]}) == pytest.approx(p.optimum, abs=1e-12)
    rng = np.random.default_rng(5)
    assert min(p.value(p.space.sample(rng)) for _ in range(200)) > p.optimum


def test_ml_task_is_a_deterministic_cv_error():
    _need("sklearn", "scikit-learn")
    p = get_problem("svm_breast_cancer")
    c = {"C": 10.0, "gamma": 0.01}
    e = p.value(c)
    assert 0.0 <= e < 0.1 and p.value(c) == e


@pytest.mark.parametrize("name", ["bbob_f17_d5_noise1", "bbob_f21_d5_noise1"])
def test_noisy_bbob_is_seeded_and_keeps_the_noise_free_value(name):
    _need("cocoex", "coco-experiment")
    p, clean = get_problem(name), get_problem(name.rsplit("_noise", 1)[0])
    assert name in problem_names() and p.noisy and p.noise_std == 1.0 and "noisy" in p.tags
    assert p.optimum == clean.optimum
    config = p.space.to_config(p.space.sample_flat(np.random.default_rng(8)))
    obs = [p.evaluate(config, np.random.default_rng([9, i])) for i in range(300)]
    assert all(t == clean.value(config) for _, t in obs)  # the TRUE value is the noise-free BBOB value
    assert 0.85 < np.std([o - t for o, t in obs]) < 1.15
    assert p.evaluate(config, np.random.default_rng(3)) == p.evaluate(config, np.random.default_rng(3))
    assert p.evaluate(config, np.random.default_rng(3)) != p.evaluate(config, np.random.default_rng(4))
    assert get_problem("bbob_f21_d5_noise0.25").noise_std == 0.25  # any std by name


def test_noisy_ml_task_observes_one_real_split_and_its_truth_is_the_mean():
    _need("sklearn", "scikit-learn")
    from benchmarks.problems import SVM_SPLITS

    p = get_problem("svm_breast_cancer_splits")
    assert p.noisy and p.optimum is None and "svm_breast_cancer_splits" in problem_names()
    c = {"C": 10.0, "gamma": 0.01}
    errors = p.split_errors(c)
    assert errors.shape == (SVM_SPLITS,) and errors.std() > 0  # different splits, different errors
    assert p.value(c) == pytest.approx(errors.mean()) and 0.0 <= p.value(c) < 0.1
    seen = set()
    for i in range(60):
        observed, true = p.evaluate(c, np.random.default_rng([10, i]))
        assert observed in errors and true == pytest.approx(errors.mean())
        seen.add(observed)
    assert len(seen) > 1  # the split is drawn per evaluation
    assert p.evaluate(c, np.random.default_rng(3)) == p.evaluate(c, np.random.default_rng(3))
    # the harness recommends on it: a noisy problem's incumbent is the TRUE value at the recommendation
    value, source = harness.incumbent_true(p, [0.5, 0.1], [0.5, 0.1], [], 2, {"C": 10.0, "gamma": 0.01})
    assert source == "optimizer" and value == pytest.approx(errors.mean())


def test_learning_curve_is_per_epoch_and_seeded():
    _need("torch", "torch")
    p = get_problem("mlp_digits")
    c = {"lr": 0.05, "hidden": 32, "batch_size": 64, "weight_decay": 1e-4}
    a = list(p.curve(c, seed=1, epochs=2))
    assert len(a) == 2 and all(0.0 <= v <= 1.0 for v in a)
    assert a == list(p.curve(c, seed=1, epochs=2))


def test_pbt_toy_problem():
    full = [q for _, q in PBTToy.train({"h0": 1.0, "h1": 1.0}, 200)]
    assert full[-1] == pytest.approx(PBTToy.optimum, abs=1e-6)
    assert all(b >= a for a, b in zip(full, full[1:]))  # gradient ascent on the true objective
    stalled = [q for _, q in PBTToy.train({"h0": 1.0, "h1": 0.0}, 200)]
    assert stalled[-1] == pytest.approx(1.2 - 0.81, abs=1e-6)
    assert PBTToy.q_hat((0.5, 0.5), {"h0": 1.0, "h1": 1.0}) == pytest.approx(PBTToy.q((0.5, 0.5)))


# ---- statistics on hand-made data --------------------------------------------------------------

def test_regret_quantiles_and_normalisation():
    assert report.regret(1.5, 0.5) == 1.0
    assert report.regret(0.4999999, 0.5) == 0.0  # rounding of a published optimum
    assert report.quantiles([1, 2, 3, 4]) == (2.5, 1.75, 3.25)
    assert report.normalised_ratio([0.5, 1.0, 2.0], [1.0, 2.0, 4.0], tol=1e-6) == pytest.approx(0.5)
    assert report.normalised_ratio([0.0, 0.0], [1e-3, 1e-3], tol=1e-6) == pytest.approx(1e-3)  # floored
    assert report.geometric_mean([0.5, 2.0]) == pytest.approx(1.0)
    assert report.geometric_mean([0.1, 0.1, 0.1]) == pytest.approx(0.1)
    with pytest.raises(ValueError):
        report.geometric_mean([0.0, 1.0])


def test_wins_ties_losses_arithmetic():
    ours = {0: 1.0, 1: 2.0, 2: 3.0, 3: 5.0}
    peer = {0: 1.05, 1: 3.0, 2: 2.0, 4: 9.0}  # seed 3 / 4 unpaired
    assert report.paired_outcomes(ours, peer, tol=0.1) == (1, 1, 1)
    better = {s: 1.0 for s in range(8)}
    worse = {s: 2.0 + s for s in range(8)}
    v, p = report.verdict(better, worse, tol=1e-6)
    assert v == "win" and p == pytest.approx(2 / 2 ** 8)  # exact two-sided signed-rank p
    assert report.verdict(worse, better, tol=1e-6)[0] == "loss"
    v, p = report.verdict({0: 1, 1: 1, 2: 1}, {0: 2, 1: 2, 2: 2}, tol=1e-6)
    assert v == "tie" and math.isnan(p)  # 3 seeds can never reach p < 0.05
    assert report.verdict(better, {s: 1.0 for s in range(8)}, tol=1e-6)[0] == "tie"


def _hand_made() -> dict:
    def run(problem, opt, seed, values):
        return {"problem": problem, "optimizer": opt, "seed": seed, "budget": 4, "observed": values,
                "true": values, "ask_cpu": [0.001] * 4, "tell_cpu": [0.0] * 4,
                "incumbent": {"1": values[0], "2": min(values[:2]), "4": min(values)},
                "incumbent_source": {}, "wall_s": 0.0, "cpu_s": 0.0, "error": None, "mode": "sequential"}

    runs = []
    for seed in range(2):
        runs.append(run("a", "random", seed, [4.0, 4.0, 3.0, 2.0]))  # regret 4, 4, 2
        runs.append(run("a", "ours", seed, [4.0, 2.0, 1.0, 1.0]))     # regret 4, 2, 1
        runs.append(run("b", "random", seed, [9.0, 9.0, 9.0, 9.0]))
        runs.append(run("b", "ours", seed, [9.0, 9.0, 9.0, 4.0 + seed]))
    return {
        "meta": {"optimizers": ["random", "ours"], "kinds": {"random": "ours", "ours": "ours"}},
        "problems": {"a": {"optimum": 0.0, "tol": 1e-6}, "b": {"optimum": None, "tol": 1e-6}},
        "runs": runs,
    }


def test_summary_on_hand_made_results():
    s = report.summary(_hand_made())
    assert s["optima"]["b"] == (4.0, False)  # unknown optimum: best TRUE value in the set
    assert s["table"][("a", "ours")]["100%"] == {0: 1.0, 1: 1.0}
    assert s["table"][("b", "ours")]["100%"] == {0: 0.0, 1: 1.0}
    # a: ours 1 vs random 2 -> 0.5; b: median(0, 1) = 0.5 vs 5 -> 0.1; geometric mean sqrt(0.05)
    assert s["norm"]["ours"]["100%"] == pytest.approx(math.sqrt(0.5 * 0.1))
    assert s["norm"]["ours"]["25%"] == pytest.approx(1.0)
    assert s["norm"]["random"]["100%"] == pytest.approx(1.0)
    (pw, pt, pl), (sw, st, sl) = s["wtl"][("ours", "random")]
    assert (pw, pt, pl) == (0, 2, 0) and (sw, st, sl) == (4, 0, 0)
    md = report.render({**_hand_made(), "meta": {**_hand_made()["meta"], "title": "t"}})
    assert "| a | ours | 4 [4, 4] | 2 [2, 2] | 1 [1, 1] | 0.5 |" in md
    assert "| b* | ours |" in md


def test_checkpoints_and_incumbent():
    assert harness.checkpoints(40) == [10, 20, 40]
    assert harness.checkpoints(8) == [2, 4, 8]
    assert harness.checkpoints(1) == [1, 1, 1]
    noisy = get_problem("hartmann6_noise0.1")
    flats = [{"x0": 0.5}] * 3
    # best observed is index 1, its TRUE value is returned
    assert harness.incumbent_true(noisy, [1.0, -5.0, 0.0], [0.1, 0.2, 0.3], flats, 3, None) == (0.2, "best-observed")
    value, source = harness.incumbent_true(noisy, [1.0, -5.0, 0.0], [0.1, 0.2, 0.3], flats, 3,
                                           noisy.space.to_flat(noisy.minimisers[0]))
    assert source == "optimizer" and value == pytest.approx(noisy.optimum)
    clean = get_problem("hartmann6")
    assert harness.incumbent_true(clean, [3.0, 1.0, 2.0], [3.0, 1.0, 2.0], flats, 2, None) == (1.0, "best-observed")


# ---- the harness -------------------------------------------------------------------------------

def test_tiny_harness_run_produces_a_table(tmp_path):
    suite = Suite(name="tiny", problems=("branin", "mixed"), optimizers=("random",), seeds=2, budget=8,
                  cost_sizes=(5,), cost_reps=2)
    data = runner.run_suite(suite, command="test", log=lambda m: None)
    assert len(data["runs"]) == 4 and not any(r["error"] for r in data["runs"])
    assert all(len(r["observed"]) == 8 and set(r["incumbent"]) == {"2", "4", "8"} for r in data["runs"])
    js, md = runner.write_results(data, str(tmp_path / "out"))
    text = open(md).read()
    assert "| branin | random |" in text and "| mixed | random |" in text
    assert "Suggestion cost on hartmann6" in text
    again = json.load(open(js))
    assert report.render(again).strip() == text.strip()
    # same seed, same sequence
    rerun = runner.run_suite(suite, command="test", cost=False, log=lambda m: None)
    assert [r["observed"] for r in rerun["runs"]] == [r["observed"] for r in data["runs"]]


def test_cli_run_writes_json_and_markdown(tmp_path, capsys):
    from benchmarks.__main__ import main

    out = tmp_path / "cli"
    rc = main(["run", "--suite", "quick", "--optimizers", "random", "--problems", "branin",
               "--seeds", "2", "--budget", "4", "--no-cost", "--out", str(out)])
    assert rc == 0
    printed = capsys.readouterr().out
    assert "versions:" in printed and "command: python -m benchmarks run" in printed and "date:" in printed
    assert (out / "results.json").exists() and (out / "results.md").exists()
    assert main(["run", "--optimizers", "nope", "--out", str(out)]) == 2
    assert main(["run", "--optimizers", "tpe", "--problems", "branin", "--seeds", "1", "--budget", "4",
                 "--in-flight", "3", "--no-cost", "--out", str(out / "k3")]) == 0
    data = json.loads((out / "k3" / "results.json").read_text())
    assert data["meta"]["in_flight"] == 3 and [r["mode"] for r in data["runs"]] == ["in-flight-K3"]


def test_merge_unites_result_sets_and_a_rerun_replaces_its_seeds(tmp_path, capsys):
    import gzip

    from benchmarks.__main__ import main

    problems = [get_problem("branin")]
    specs = peers.optimizer_specs()
    parts = []
    for names, n_seeds in ((["random"], 2), (["tpe"], 1), (["random"], 3)):
        data = runner.new_result_set(f"run {names} {n_seeds}", "t", n_seeds, {"branin": 6},
                                     [specs[n] for n in names], problems)
        records, _ = harness.run_grid(problems, [specs[n] for n in names], list(range(n_seeds)), {"branin": 6},
                                      log=lambda m: None)
        data["runs"] = [r.to_json() for r in records]
        parts.append(data)
    merged = report.merge(parts)
    assert merged["meta"]["optimizers"] == ["random", "tpe"]
    assert merged["meta"]["commands"] == [p["meta"]["command"] for p in parts]
    assert sorted((r["optimizer"], r["seed"]) for r in merged["runs"]) == [
        ("random", 0), ("random", 1), ("random", 2), ("tpe", 0)]
    assert len(parts[0]["runs"]) == 2  # the parts are not changed

    paths = []
    for i, part in enumerate(parts):  # the CLI reads plain and gzipped result sets
        path = tmp_path / (f"p{i}.json.gz" if i else f"p{i}.json")
        with (gzip.open(path, "wt") if i else open(path, "w")) as f:
            json.dump(part, f)
        paths.append(str(path))
    assert main(["merge", "--out", str(tmp_path / "m"), *paths]) == 0
    written = json.loads((tmp_path / "m" / "results.json").read_text())
    assert len(written["runs"]) == 4 and "| branin | tpe |" in (tmp_path / "m" / "results.md").read_text()


def test_missing_peer_is_skipped_with_a_message(monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "optuna" else real(name, *a))
    messages = []
    chosen = runner.select_optimizers(["random", "optuna-tpe", "optuna-gp"], False, messages.append)
    assert [s.name for s in chosen] == ["random"]
    assert any("optuna-tpe" in m and "'optuna' is not installed" in m for m in messages)
    records, skips = harness.run_grid([get_problem("branin")], [peers.PEERS["optuna-tpe"]], [0], {"branin": 3},
                                      log=messages.append)
    assert records == [] and skips[0].reason.startswith("'optuna' is not installed")


def test_a_tier_can_limit_an_expensive_optimizer_to_some_problems():
    specs = [peers.optimizer_specs()["random"]]
    problems = [get_problem("branin"), get_problem("mixed")]
    records, skips = harness.run_grid(problems, specs, [0], {"branin": 2, "mixed": 2}, log=lambda m: None,
                                      only={"random": ("mixed",)})
    assert [r.problem for r in records] == ["mixed"]
    assert skips[0].problem == "branin" and "limited to mixed" in skips[0].reason


def test_a_failing_optimizer_is_recorded_not_hidden():
    class Broken(peers.Optimizer):
        def ask(self):
            raise RuntimeError("boom")

    spec = peers.OptimizerSpec("broken", "peer", lambda s, seed: Broken(), (), (), True, "")
    rec = harness.run_one(get_problem("branin"), spec, 0, 4, log=lambda m: None)
    assert rec.error == "RuntimeError: boom" and rec.incumbent == {}


def test_in_flight_mode_keeps_k_trials_pending_and_counts_completions():
    events = []

    class Recorder(peers.Optimizer):
        def __init__(self, space, seed):
            self.space, self.rng, self.out, self.n = space, np.random.default_rng(seed), set(), 0

        def ask(self):
            events.append(("ask", len(self.out)))
            self.n += 1
            self.out.add(self.n)
            return self.n, self.space.sample_flat(self.rng)

        def tell(self, token, value):
            events.append(("tell", token))
            self.out.remove(token)

    spec = peers.OptimizerSpec("rec", "peer", Recorder, (), (), True, "", concurrent=True)
    rec = harness.run_one(get_problem("branin"), spec, 0, 10, in_flight=4)
    asks = [k for what, k in events if what == "ask"]
    assert asks == [0, 1, 2, 3, 3, 3, 3, 3, 3, 3]  # every ask after the first 4 sees 3 pending trials
    assert [t for what, t in events if what == "tell"] == list(range(1, 11))  # oldest completes first
    assert len(rec.observed) == 10 and rec.mode == "in-flight-K4" and rec.error is None

    # ours: K = 1 is the sequential run; K = 4 shares the start-up draws, then pending trials matter
    tpe = peers.optimizer_specs()["tpe"]
    sequential = harness.run_one(get_problem("branin"), tpe, 0, 16)
    assert harness.run_one(get_problem("branin"), tpe, 0, 16, in_flight=1).observed == sequential.observed
    k4 = harness.run_one(get_problem("branin"), tpe, 0, 16, in_flight=4)
    assert k4.observed[:10] == sequential.observed[:10] and k4.observed[12:] != sequential.observed[12:]

    # an adapter that asks one trial at a time is skipped, with the reason
    one_at_a_time = peers.OptimizerSpec("seq", "peer", Recorder, (), (), True, "")
    records, skips = harness.run_grid([get_problem("branin")], [one_at_a_time], [0], {"branin": 4},
                                      log=lambda m: None, in_flight=4)
    assert records == [] and "one trial at a time" in skips[0].reason


CHEAP_PEERS = [("hyperopt-tpe", "hyperopt"), ("optuna-tpe", "optuna")]


@pytest.mark.parametrize("name,module", CHEAP_PEERS + [("random", "ray")])
@pytest.mark.parametrize("problem", ["mixed", "conditional", "dtree_wine"])
def test_peer_translation_stays_in_the_space_and_reaches_its_edges(name, module, problem):
    _need(module, module)
    p = get_problem(problem)
    spec = peers.optimizer_specs()[name]
    rec = harness.run_one(p, spec, 0, 30, log=print)  # run_one checks every suggestion against the space
    assert rec.error is None and len(rec.true) == 30
    # the start-up phase is random: over 60 draws every categorical choice shows up
    opt = spec.build(p.space, 1)
    seen = {q.name: set() for q in p.space.params if q.is_categorical}
    for _ in range(60):
        token, flat = opt.ask()
        opt.tell(token, 1.0)  # flat objective: TPE stays close to its prior
        for k in seen:
            if k in flat:
                seen[k].add(flat[k])
    for k, values in seen.items():
        assert values == set(range(p.space.params[p.space.index(k)].n_choices)), (name, k, values)


@pytest.mark.parametrize("name,module", CHEAP_PEERS + [("random", "ray")])
def test_warm_start_for_the_cost_measurement(name, module):
    _need(module, module)
    spec = peers.optimizer_specs()[name]
    for problem in ("hartmann6", "conditional"):
        [rec] = harness.measure_cost(get_problem(problem), spec, [25], reps=2, log=print)
        assert rec.error is None and len(rec.ask_cpu) == 2


def test_optuna_gp_runs_past_its_startup():
    _need("optuna", "optuna")
    _need("torch", "torch")
    rec = harness.run_one(get_problem("branin"), peers.PEERS["optuna-gp"], 0, 12, log=print)
    assert rec.error is None and len(rec.true) == 12


def test_botorch_runs_and_refuses_categoricals():
    _need("botorch", "botorch")
    spec = peers.PEERS["botorch-qlognei"]
    assert spec.refuses(get_problem("mixed").space) and spec.refuses(get_problem("conditional").space)
    assert spec.refuses(get_problem("branin").space) is None
    p = get_problem("hartmann6_noise0.1")
    opt = spec.build(p.space, 0)
    noise = np.random.default_rng(0)
    for _ in range(opt.n_init + 1):  # the Sobol design, then one GP suggestion
        token, flat = opt.ask()
        opt.tell(token, p.evaluate(p.space.to_config(flat), noise)[0])
    assert set(opt.recommend()) == set(p.space.names)


def test_registry_searchers_are_benchmarked_under_their_names():
    from orchestrator.registry import SEARCHERS

    specs = peers.optimizer_specs()
    assert set(SEARCHERS) <= set(specs)
    assert all(specs[n].kind == "ours" for n in SEARCHERS)


def test_ablation_variants_run_only_when_named_and_switch_one_option():
    _need("ray", "ray")
    specs = peers.optimizer_specs()
    assert set(peers.VARIANTS) <= set(specs)
    assert all(specs[n].kind == "ours" and not specs[n].in_tiers for n in peers.VARIANTS)
    for cheap_only in (True, False):  # a tier's default selection leaves them out
        chosen = runner.select_optimizers(None, cheap_only, lambda m: None)
        assert not {s.name for s in chosen} & set(peers.VARIANTS)
    assert [s.name for s in runner.select_optimizers(["gp-ei-plain"], False, lambda m: None)] == ["gp-ei-plain"]
    space = get_problem("hartmann6_noise0.1").space
    plain = specs["gp-ei-plain"].build(space, 0).searcher
    aei = specs["gp-ei-aei"].build(space, 0).searcher
    default = specs["gp-ei"].build(space, 0).searcher
    assert (default.options.noise, default.options.noisy_acqf) == ("auto", "ei")
    assert (default.options.output_warp, default.options.pending) == ("none", "believer")
    assert specs["gp-ei-warp"].build(space, 0).searcher.options.output_warp == "half_rank"
    assert (plain.options.noise, plain.options.noisy_acqf) == ("none", "ei")
    assert (aei.options.noise, aei.options.noisy_acqf) == ("auto", "aei")
    assert default.options.max_model_points == 1000
    assert specs["gp-ei-nocap"].build(space, 0).searcher.options.max_model_points is None


def test_cost_command_measures_the_sizes_asked_for(tmp_path, capsys):
    _need("ray", "ray")
    from benchmarks import cost

    assert cost.main(["--optimizers", "random", "--sizes", "3,7", "--reps", "2", "--out", str(tmp_path)]) == 0
    data = json.loads((tmp_path / "results.json").read_text())
    assert [(c["optimizer"], c["n_history"], len(c["ask_cpu"])) for c in data["cost"]] == [("random", 3, 2),
                                                                                          ("random", 7, 2)]
    assert "n=7" in (tmp_path / "results.md").read_text() and "n=    7" in capsys.readouterr().out
    assert cost.main(["--optimizers", "nope", "--out", str(tmp_path)]) == 2


# ---- through real Tune (slow: starts Ray) --------------------------------------------------------

@pytest.mark.slow
def test_tune_mode_and_overhead(ray_local):
    from benchmarks.tune_mode import measure_overhead, run_tune

    rec = run_tune("branin", "random", seed=0, budget=4, concurrency=2)
    assert rec.error is None and len(rec.true) == 4 and set(rec.incumbent) == {"1", "2", "4"}
    ov = measure_overhead(3, "random", repeats=1)
    assert ov["ratio"] > 0 and len(ov["wall_s"]["ours"]) == 1


def test_first_seed_and_compare_give_paired_before_after_tables(tmp_path, capsys):
    from benchmarks.__main__ import main

    out = tmp_path
    assert main(["run", "--suite", "quick", "--optimizers", "random,tpe", "--problems", "branin", "--seeds", "2",
                 "--first-seed", "3", "--budget", "6", "--no-cost", "--out", str(out / "a")]) == 0
    data = json.loads((out / "a" / "results.json").read_text())
    assert sorted({r["seed"] for r in data["runs"]}) == [3, 4] and data["meta"]["first_seed"] == 3
    capsys.readouterr()
    path = str(out / "a" / "results.json")
    assert main(["compare", path, "--pairs", "tpe:random"]) == 0
    text = capsys.readouterr().out
    assert "tpe vs random" in text and "| branin |" in text and "**total**" in text
    # TAG=PATH relabels a set, so a searcher can be judged against its own earlier run
    assert main(["compare", f"old={path}", f"new={path}", "--pairs", "tpe@new:tpe@old"]) == 0
    assert "| branin | 1.00 | tie (nan) | 0/2/0 |" in capsys.readouterr().out
    assert main(["compare", path, "--pairs", "tpe:gp-ei"]) == 2
    assert "not in the results" in capsys.readouterr().err
