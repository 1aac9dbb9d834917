"""Fast tests of the scheduler benchmark (``benchmarks/schedulers.py``): the metric arithmetic
on hand-made event lists and the decision-overhead measurement on a few events. No Tune run."""

from __future__ import annotations

import json
import math

import pytest

from benchmarks import schedulers as S

# Hand-made FIFO run: 3 trials, max_t 3, results in arrival order [trial, epoch, val_loss].
FIFO = [
    ["a", 1, 1.0], ["b", 1, 0.9], ["a", 2, 0.6], ["c", 1, 1.2], ["b", 2, 0.7],
    ["a", 3, 0.65],  # a overfits: 0.6 at epoch 2, 0.65 at its end
    ["c", 2, 0.8], ["b", 3, 0.5], ["c", 3, 0.7],
]
# A stopping scheduler on the same configs: c stopped at epoch 1, a at epoch 2.
ASHA = [["a", 1, 1.0], ["b", 1, 0.9], ["c", 1, 1.2], ["b", 2, 0.7], ["a", 2, 0.6], ["b", 3, 0.5]]


def test_epochs_incumbent_and_recommended():
    assert S.total_epochs(FIFO) == 9
    traj = S.incumbent_trajectory(FIFO)
    assert traj == [1.0, 0.9, 0.6, 0.6, 0.6, 0.65, 0.65, 0.5, 0.5]  # latest epoch of each trial
    assert S.best_last(FIFO) == 0.5
    assert S.recommended(FIFO) == ("b", 0.5)
    assert S.reference_optimum(FIFO) == 0.5
    assert S.last_results(ASHA) == {"a": (2, 0.6), "b": (3, 0.5), "c": (1, 1.2)}
    assert S.recommended(ASHA) == ("b", 0.5)
    # the recommendation is among the trials that trained longest, not the lowest value anywhere
    assert S.recommended([["x", 1, 0.1], ["y", 1, 0.9], ["y", 2, 0.8]]) == ("y", 0.8)


def test_nan_counts_as_infinitely_bad():
    ev = [["a", 1, math.nan], ["b", 1, 0.4], ["b", 2, math.nan]]
    assert S.incumbent_trajectory(ev) == [math.inf, 0.4, math.inf]
    assert S.recommended(ev) == ("b", math.inf)
    assert S.regret(math.inf, 0.3) == math.inf
    assert S.reference_optimum(ev) == 0.4


def test_completed_incumbent_budgets_and_time_to_target():
    assert S.budgets(9) == [3, 5, 9]
    # only trials that reached max_t count; +inf before the first one has
    assert S.completed_trajectory(FIFO, 3) == [math.inf] * 5 + [0.65, 0.65, 0.5, 0.5]
    traj = S.completed_trajectory(ASHA, 3)
    assert traj == [math.inf] * 5 + [0.5]
    assert S.incumbent_at(S.incumbent_trajectory(ASHA), 3) == 0.9
    assert S.incumbent_at(traj, 100) == 0.5  # a run that ended earlier keeps its final incumbent
    assert S.epochs_to_reach(traj, 0.5) == 6
    assert S.epochs_to_reach(traj, 0.4) is None
    assert S.epochs_to_reach(S.completed_trajectory(FIFO, 3), 0.5) == 8


def test_run_metrics_against_fifo_reference():
    ref = S.reference_optimum(FIFO)
    fifo = S.run_metrics(FIFO, ref, 9, 0.5, 3)
    assert fifo["epochs"] == 9 and fifo["epochs_frac"] == 1.0
    assert fifo["regret"] == 0.0 and fifo["regret_recommended"] == 0.0
    assert fifo["regret_at"] == {"25%": math.inf, "50%": math.inf, "100%": 0.0}
    assert fifo["epochs_to_fifo_final"] == 8
    m = S.run_metrics(ASHA, ref, 9, 0.5, 3)
    assert m["epochs"] == 6 and m["epochs_frac"] == pytest.approx(6 / 9)
    assert m["regret"] == 0.0
    assert m["regret_at"] == {"25%": math.inf, "50%": math.inf, "100%": 0.0}
    assert m["frac_to_fifo_final"] == pytest.approx(6 / 9)
    # the reference is the lowest value at ANY epoch: when the best trial overfits, FIFO's own
    # final regret is > 0
    over = [["a", 1, 0.3], ["b", 1, 0.9], ["a", 2, 0.35], ["b", 2, 0.5]]
    ref = S.reference_optimum(over)
    assert ref == 0.3
    m = S.run_metrics(over, ref, 4, 0.35, 2)
    assert m["regret"] == pytest.approx(0.05) and m["regret_recommended"] == pytest.approx(0.05)
    assert m["regret_at"] == {"25%": math.inf, "50%": math.inf, "100%": pytest.approx(0.05)}
    assert m["epochs_to_fifo_final"] == 3


def test_paired_common_epochs_quantiles_and_wtl():
    ra, rb, e = S.paired_at_common_epochs(ASHA, FIFO, 0.5, 3)
    assert e == 6
    assert ra == pytest.approx(0.0) and rb == pytest.approx(0.15)  # FIFO after 6 epochs: a done, 0.65
    assert S._q([3.0, 1.0, 2.0]) == (2.0, 1.5, 2.5)
    assert S._q([1.0, math.inf, 2.0])[0] == 2.0
    assert S._q([1.0, math.inf, math.inf])[0] == math.inf
    assert S.wtl([(0.1, 0.2), (0.2, 0.2), (0.3, 0.1), (math.inf, math.inf)]) == (1, 2, 1)


def _data(runs):
    return {"meta": {"title": "t", "command": "c", "date": "d", "machine": "m", "git": "g", "versions": {},
                     "metric": "val_loss", "max_t": 3, "grace_period": 1, "eta": 3, "space": {},
                     "n_trials": 3, "concurrency": 2, "num_cpus": 1, "seeds": 2,
                     "schedulers": ["fifo", "asha", "ray-asha"]},
            "runs": runs, "overhead": None}


def _run(name, seed, events, error=None):
    configs = {tid: {"lr": {"a": 0.1, "b": 0.2, "c": 0.3}[tid]} for tid, _, _ in events}
    return {"scheduler": name, "seed": seed, "n_trials": 3, "events": events, "configs": configs,
            "wall_s": 1.0, "error": error, "timed_out": False}


def test_summary_and_render_from_raw_runs():
    ray_asha = [["a", 1, 1.0], ["b", 1, 0.9], ["c", 1, 1.2], ["a", 2, 0.6], ["a", 3, 0.65]]
    runs = [_run("fifo", 0, FIFO), _run("asha", 0, ASHA), _run("ray-asha", 0, ray_asha),
            _run("fifo", 1, FIFO), _run("asha", 1, ASHA), _run("ray-asha", 1, [], error="boom")]
    data = _data(runs)
    s = S.summarise(data)
    assert s["per_seed"]["asha"][0]["same_configs"]
    assert s["per_seed"]["ray-asha"][0]["same_configs"]
    assert s["median"]["asha"]["epochs"][0] == 6
    assert s["median"]["asha"]["within_third"] == 0 and s["median"]["asha"]["reached"] == 2
    assert s["median"]["ray-asha"]["n"] == 1
    assert s["per_seed"]["ray-asha"][0]["regret"] == pytest.approx(0.15)
    assert s["per_seed"]["ray-asha"][0]["frac_to_fifo_final"] is None
    rows = s["pairs"][("asha", "ray-asha")]
    assert len(rows) == 1 and rows[0]["common_epochs"] == 5
    assert rows[0]["common_a"] == math.inf and rows[0]["common_b"] == pytest.approx(0.15)
    assert any("boom" in n for n in s["notes"])
    md = S.render(json.loads(json.dumps(data)))
    assert "| asha | 6 |" in md and "| fifo | 9 |" in md and "boom" in md
    # a run that saw other configs than FIFO's is flagged
    runs[2] = _run("ray-asha", 0, [["a", 1, 1.0], ["b", 1, 0.9]])
    s = S.summarise(_data(runs))
    assert not s["per_seed"]["ray-asha"][0]["same_configs"]
    assert any("differ" in n for n in s["notes"])


def test_fifo_is_required_and_names_are_checked():
    from benchmarks import runner

    with pytest.raises(runner.SelectionError, match="fifo"):
        S.run_benchmark("c", schedulers=["asha"], overhead=False)
    with pytest.raises(runner.SelectionError, match="unknown"):
        S.run_benchmark("c", schedulers=["fifo", "hyperband"], overhead=False)


def test_decision_overhead_on_a_few_events(tmp_path):
    out = S.decision_overhead(n_results=300, window=100, seed=1, adapter_window=20)
    for name in ("ours-core", "ray-asha", "ours-adapter"):
        r = out["results"][name]
        assert r["all"]["n"] == (20 if name == "ours-adapter" else 100)
        assert 0 < r["all"]["median_us"] <= r["all"]["p95_us"]
        assert 0 < r["arrivals"]["n"] < r["all"]["n"]
        assert r["trials"] > 4 and r["rung_records"] > 0
    # same stream, same decisions: the core is deterministic given the seed
    again = S.decision_overhead(n_results=300, window=100, seed=1, which=("ours-core",))
    assert again["results"]["ours-core"]["trials"] == out["results"]["ours-core"]["trials"]
    assert again["results"]["ours-core"]["rung_records"] == out["results"]["ours-core"]["rung_records"]
    md = S.render({**_data([]), "overhead": out})
    assert "Decision overhead at 300 recorded results" in md


def test_make_scheduler():
    from schedulers.asha import ASHAScheduler

    assert S.make_scheduler("fifo", 0) is None
    ours = S.make_scheduler("asha-promotion", 3)
    assert isinstance(ours, ASHAScheduler) and ours.variant == "promotion"
    assert S.make_scheduler("asha", 3).variant == "stopping"
    assert type(S.make_scheduler("ray-asha", 0)).__name__ == "AsyncHyperBandScheduler"
    with pytest.raises(KeyError):
        S.make_scheduler("pbt", 0)
    t = S.space_template(5, 27)
    assert t["epochs"] == 27 and t["seed"] == 5 and t["dropout"] == 0.0
