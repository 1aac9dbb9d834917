"""The PBT benchmark (``benchmarks/pbt.py``): its metrics on hand-made event lists (fast), and a
tiny real run of all three schedulers through Tune (``ray_local``) that writes its tables."""

from __future__ import annotations

import json
import math
import os

import pytest

from benchmarks import pbt as P

EVENTS = [["a", 1, 0.2], ["b", 1, 0.3], ["a", 2, 1.191], ["b", 2, 0.35], ["b", 3, 1.195], ["a", 3, 1.0]]


def test_metrics_on_hand_made_events():
    assert P.steps_to(EVENTS, 1.19) == 2.0
    assert P.steps_to(EVENTS, 1.195) == 3.0
    assert P.steps_to(EVENTS, 1.2) == math.inf
    assert P.final_best(EVENTS) == 1.195  # a's last is 1.0, b's last 1.195
    assert P.best_ever(EVENTS) == 1.195
    assert P.final_best([["a", 1, math.nan]]) == -math.inf
    assert P.population(4) == [{"h0": 1.0, "h1": 0.0}, {"h0": 0.0, "h1": 1.0}] * 2


def test_summary_and_render_from_raw_runs():
    meta = {"title": "t", "command": "c", "date": "d", "machine": "m", "git": "g", "versions": {"ray": "x"},
            "seeds": 2, "steps": 3, "population": 2, "interval": 1, "resample": 0.25, "target": 1.19,
            "schedulers": ["ours", "fifo"], "descriptions": P.DESCRIPTIONS}
    runs = [{"scheduler": "ours", "seed": 0, "events": EVENTS, "exploits": 2, "wall_s": 1.0, "error": None},
            {"scheduler": "ours", "seed": 1, "events": EVENTS[:2], "exploits": 0, "wall_s": 3.0, "error": None},
            {"scheduler": "fifo", "seed": 0, "events": EVENTS[:2], "exploits": 0, "wall_s": 1.0, "error": None},
            {"scheduler": "fifo", "seed": 1, "events": [], "exploits": 0, "wall_s": 0.1, "error": "boom"}]
    s = P.summarise({"meta": meta, "runs": runs})
    assert s["ours"]["median_steps"] == math.inf and s["ours"]["reached"] == 1  # one seed never reached
    assert s["ours"]["median_final"] == pytest.approx((1.195 + 0.3) / 2)
    assert s["fifo"]["n"] == 1
    md = P.render({"meta": meta, "runs": runs})
    assert "| ours | never | 2, never | 1/2 |" in md and "fifo seed 1: boom" in md


def test_unknown_scheduler_or_odd_population_is_refused():
    from benchmarks import runner

    with pytest.raises(runner.SelectionError, match="unknown"):
        P.run_benchmark("c", schedulers=["ours", "hyperband"])
    with pytest.raises(runner.SelectionError, match="even"):
        P.run_benchmark("c", size=3)
    with pytest.raises(KeyError):
        P.make_scheduler("pb2", 0)


@pytest.mark.slow
@pytest.mark.timeout(240)
def test_a_tiny_run_of_the_three_schedulers(ray_local, tmp_path):
    lines = []
    before = os.environ.get("TUNE_DISABLE_AUTO_CALLBACK_LOGGERS")
    data = P.run_benchmark("python -m benchmarks pbt --seeds 1 --steps 12", seeds=1, steps=12,
                           time_limit_s=100, log=lines.append)
    assert os.environ.get("TUNE_DISABLE_AUTO_CALLBACK_LOGGERS") == before  # Tune's setting did not leak
    assert [r["scheduler"] for r in data["runs"]] == list(P.SCHEDULERS)
    for run in data["runs"]:
        assert run["error"] is None, run["error"]
        members = {tid for tid, *_ in run["events"]}
        assert len(members) == 4
        assert max(it for _, it, _ in run["events"]) == 12
    by = {r["scheduler"]: r for r in data["runs"]}
    assert by["fifo"]["exploits"] == 0 and P.final_best(by["fifo"]["events"]) < 0.39  # stalls below 1.2 - 0.81
    assert by["ours"]["exploits"] >= 1 and by["ours-sync"]["exploits"] >= 1
    js, md = P.write(data, str(tmp_path / "out"))
    with open(js) as f:
        again = json.load(f)
    assert P.render(again) == open(md).read().rstrip("\n")
    assert "| ours |" in P.render(again) and "| ray-sync |" in P.render(again) and len(lines) == 5


def test_digits_final_value_and_render_from_raw_runs():
    ev = [["a", 1, 0.9, 0.7], ["b", 1, 0.8, 0.75], ["a", 2, 0.5, 0.9], ["b", 2, 0.6, 0.88]]
    assert P.digits_final(ev) == (0.5, 0.9)
    assert P.digits_final([["a", 1, math.nan, 0.1]]) == (math.inf, 0.1)
    meta = {"kind": "pbt-digits", "title": "t", "command": "c", "date": "d", "machine": "m", "git": "g",
            "versions": {}, "seeds": 2, "epochs": 2, "population": 2, "interval": 1,
            "schedulers": list(P.DIGITS_SCHEDULERS), "descriptions": P.DIGITS_DESCRIPTIONS}

    def run(name, seed, events, error=None):
        return {"scheduler": name, "seed": seed, "events": events, "configs": {}, "exploits": 1,
                "wall_s": 1.0, "error": error}

    worse = [[t, e, loss * 1.25, acc] for t, e, loss, acc in ev]
    runs = [run("pbt", 0, ev), run("fixed", 0, worse), run("pbt", 1, worse), run("fixed", 1, ev, error="boom")]
    md = P.render({"meta": meta, "runs": runs})
    assert "| 0 | 0.5000 | 0.6250 | 0.9000 | 0.9000 | 1 | 4 | 4 |" in md
    assert "median 0.800" in md and "PBT lower in 1 of 1 seeds" in md and "error: boom" in md
    with pytest.raises(KeyError):
        P.run_digits_one("hyperband", 0)


def test_digits_held_out_value_schedule_and_render():
    # [trial, epoch, val_loss, val_acc, test_loss, test_acc, lr, momentum]
    ev = [["a", 1, 0.9, 0.7, 0.95, 0.68, 0.1, 0.5], ["b", 1, 0.8, 0.75, 0.7, 0.8, 0.01, 0.9],
          ["a", 2, 0.5, 0.9, 0.6, 0.85, 0.08, 0.5], ["b", 2, 0.6, 0.88, 0.4, 0.9, 0.01, 0.9]]
    assert P.digits_best_member(ev) == "a"  # chosen on validation, not on test
    assert P.digits_final(ev) == (0.5, 0.9) and P.digits_final_test(ev) == (0.6, 0.85)
    assert P.digits_final_test([["a", 1, 0.5, 0.9]]) == pytest.approx((math.nan, math.nan), nan_ok=True)
    assert P.digits_best_member([]) is None
    train, val, test = P.digits_splits()
    assert len(val[0]) + len(test[0]) == 718 and len(train[0]) == 1797 - 718
    meta = {"kind": "pbt-digits", "title": "t", "command": "c", "date": "d", "machine": "m", "git": "g",
            "versions": {}, "seeds": 1, "epochs": 2, "population": 2, "interval": 1,
            "split": {"val_fraction_held_out": 0.4}, "schedulers": list(P.DIGITS_SCHEDULERS),
            "descriptions": P.DIGITS_DESCRIPTIONS}
    worse = [[t, e, v * 1.25, a, s * 2, sa, lr, m] for t, e, v, a, s, sa, lr, m in ev]
    runs = [{"scheduler": "pbt", "seed": 0, "events": ev, "configs": {}, "exploits": 1, "wall_s": 1.0,
             "error": None, "schedule": [[0, 0.1, 0.5], [1, 0.08, 0.5]]},
            {"scheduler": "fixed", "seed": 0, "events": worse, "configs": {}, "exploits": 0, "wall_s": 1.0,
             "error": None, "schedule": None}]
    md = P.render({"meta": meta, "runs": runs})
    assert "| 0 | 0.5000 | 0.6250 | 0.6000 | 1.2000 | 0.8500 | 0.8500 | 1 | 4 | 0.1@0 0.08@1 |" in md
    assert "val_loss: median 0.800" in md and "test_loss: median 0.500" in md and "PBT lower in 1 of 1" in md


def test_digits_noisy_problem_space_labels_and_initial_configs():
    t = P.digits_template(3, 12, "digits-noisy")
    assert t["hidden"] == 16 and t["batch_size"] == 8 and t["momentum"] == 0.0 and t["label_noise"] == 0.3
    assert "label_noise" not in P.digits_template(3, 12)  # the digits set-up is unchanged
    assert P.digits_problem("digits-noisy").mutable == ["lr"] and P.digits_problem("digits").mutable == ["lr", "momentum"]
    with pytest.raises(KeyError, match="unknown digits problem"):
        P.digits_problem("cifar")
    (_, y), _, _ = P.digits_splits()
    noisy = P.noisy_labels(y, 0.3)
    assert noisy is not y and 0.2 < (noisy != y).mean() < 0.32  # ~27% wrong (a redraw may hit the true class)
    assert (P.noisy_labels(y, 0.3) == noisy).all() and P.noisy_labels(y, 0.0) is y  # fixed, same for every seed
    a, b = P.initial_configs(3, 12, 4, "digits-noisy"), P.initial_configs(3, 12, 4, "digits-noisy")
    assert a == b and len({c["lr"] for c in a}) == 4 and all(1e-3 <= c["lr"] <= 1.0 for c in a)
    assert P.sign_test_p(5, 5) == pytest.approx(0.0625) and P.sign_test_p(0, 10) == pytest.approx(2 / 1024)
    assert P.sign_test_p(5, 10) == 1.0 and math.isnan(P.sign_test_p(0, 0))


# recorder events: [trial, epoch, *P.DIGITS_FIELDS] (val_loss, val_accuracy, test_loss, test_accuracy, lr, momentum)
EV = [["a", 1, 0.5, 0.9, 0.6, 0.85, 0.1, 0.0]]
WORSE = [["b", 1, 0.8, 0.8, 0.9, 0.8, 0.1, 0.0]]


def _digits_meta(schedulers):
    return {"kind": "pbt-digits", "title": "t", "command": "c", "date": "d", "machine": "m", "git": "g",
            "versions": {}, "seeds": 1, "epochs": 1, "population": 1, "interval": 1, "problem": "digits-noisy",
            "problem_text": "noisy", "mutable": ["lr"], "split": {"val_fraction_held_out": 0.4},
            "schedulers": schedulers, "descriptions": P.DIGITS_DESCRIPTIONS}


def _digits_run(name, events, schedule=None):
    return {"scheduler": name, "seed": 0, "events": events, "configs": {}, "exploits": 0, "wall_s": 1.0,
            "error": None, "schedule": schedule}


def test_digits_render_with_ray_rows_and_sign_test():
    ev, worse, meta, run = EV, WORSE, _digits_meta(["pbt", "fixed", "ray"]), _digits_run

    md = P.render({"meta": meta, "runs": [run("pbt", ev), run("fixed", worse), run("ray", worse)]})
    assert "exploits/explores lr every 1 epochs" in md and "sign test p = 1" in md
    assert "| 0 | 0.8000 | 0.8000 | 0.9000 | 0.9000 | 0.8000 | 0 | 1 |  |" in md  # Ray's row
    assert "Ray's lower in 0 of 1 seeds (1 tied)" in md


@pytest.mark.slow
@pytest.mark.timeout(400)
def test_a_tiny_run_of_the_noisy_digits_problem(ray_local, tmp_path):
    lines = []
    data = P.run_digits_benchmark("python -m benchmarks pbt --problem digits-noisy ...", seeds=1, epochs=2,
                                  size=4, interval=1, time_limit_s=200, log=lines.append, problem="digits-noisy",
                                  schedulers=["pbt", "fixed", "ray", "pbt-sync"])
    assert [r["scheduler"] for r in data["runs"]] == ["pbt", "fixed", "ray", "pbt-sync"] and len(lines) == 4
    for run in data["runs"]:
        assert run["error"] is None, run["error"]
        assert {tid for tid, *_ in run["events"]} and all(e[6] > 0 and e[7] == 0.0 for e in run["events"])
        assert math.isfinite(P.digits_final(run["events"])[0]) and math.isfinite(P.digits_final_test(run["events"])[0])
    by = {r["scheduler"]: r for r in data["runs"]}
    assert sorted(c["lr"] for c in by["fixed"]["configs"].values()) == \
        sorted(c["lr"] for c in by["ray"]["configs"].values())  # the same initial population
    js, md = P.write(data, str(tmp_path / "out"))
    with open(js) as f:
        assert P.render(json.load(f)) == open(md).read().rstrip("\n")
    assert "Ray's `PopulationBasedTraining`" in open(md).read() and "synchronous=True" in open(md).read()
    with pytest.raises(Exception, match="must include fixed and pbt or pbt-sync"):
        P.run_digits_benchmark("c", schedulers=["ray"])


def test_digits_render_synchronous_pbt_alone_or_beside_the_asynchronous():
    ev, worse, meta = EV, WORSE, _digits_meta(["pbt-sync", "fixed"])

    def run(name, events):
        return _digits_run(name, events, [[0, 0.1, 0.0]] if name.startswith("pbt") else None)

    md = P.render({"meta": meta, "runs": [run("pbt-sync", ev), run("fixed", worse)]})
    assert "PBT (synchronous) ranks" in md and "| 0 | 0.5000 | 0.8000 | 0.6000 | 0.9000 |" in md
    md = P.render({"meta": meta, "runs": [run("pbt", worse), run("fixed", worse), run("pbt-sync", ev)]})
    assert "PBT (asynchronous) ranks" in md and "Our PBT with `synchronous=True`" in md
    assert "| 0 | 0.5000 | 0.8000 | 0.6000 | 0.9000 | 0.8500 | 0 | 1 | 0.1@0 |" in md
    assert "synchronous PBT lower in 1 of 1 seeds" in md
