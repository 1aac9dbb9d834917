"""The PBT policy as scripted event sequences: no Ray, milliseconds per test."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys

import numpy as np
import pytest

from schedulers.core.pbt import (BURN_IN, MIDDLE, NO_CHECKPOINT, NO_DONOR, NOT_DUE, NOT_LIVE, PBT,
                                 TOO_FEW, TOP, Continue, Exploit, Pause, PBTConfigError, PBTStateError,
                                 Resume, explore, perturb_number, quantile_size)
from search_algs.space import Categorical, Float, Int, Space

SPACE = {"lr": Float(1e-4, 1e-1, log=True), "momentum": Float(0.0, 0.99),
         "batch": Int(16, 256, step=16), "opt": Categorical(["sgd", "adam", "rmsprop"])}
CONFIG = {"lr": 0.01, "momentum": 0.9, "batch": 64, "opt": 1}  # flat: choice index


def policy(**kw) -> PBT:
    kw = {"perturbation_interval": 4, "mode": "max", "seed": 0, **kw}
    return PBT(kw.pop("space", SPACE), **kw)


def population(pbt: PBT, n: int = 4) -> list[str]:
    ids = [f"t{i}" for i in range(n)]
    for tid in ids:
        pbt.add(tid, CONFIG)
    return ids


def report(pbt, ids, t, values, ckpt=True):
    """One report of every member at ``t``; returns {trial: decisions}."""
    return {tid: pbt.on_result(tid, t, v, ckpt) for tid, v in zip(ids, values)}


# ---- pure functions -------------------------------------------------------------------


def test_quantile_sizes():
    assert [quantile_size(n, 0.25) for n in range(1, 10)] == [0, 1, 1, 1, 2, 2, 2, 2, 3]
    assert [quantile_size(n, 0.5) for n in range(1, 6)] == [0, 1, 1, 2, 2]  # capped at floor(n/2)
    assert quantile_size(10, 0.2) == 2  # 0.2 * 10 is 2, not 3 through float noise


@pytest.mark.parametrize("option, value, words", [
    ("perturbation_interval", 0, "perturbation_interval must be > 0, got 0"),
    ("perturbation_interval", "4", "perturbation_interval must be a finite number, got '4'"),
    ("quantile_fraction", 0.6, "quantile_fraction must be in [0, 0.5]"),
    ("resample_probability", 1.5, "resample_probability must be in [0, 1], got 1.5"),
    ("perturbation_factors", (0.8, -1), "offending -1"),
    ("perturbation_factors", 1.2, "non-empty list"),
    ("burn_in_period", -1, "burn_in_period must be >= 0, got -1"),
    ("mode", "best", "mode must be 'min' or 'max', got 'best'"),
    ("synchronous", "yes", "synchronous must be True or False"),
    ("seed", -3, "seed must be None or an integer >= 0, got -3"),
    ("mutable", ["lr", "depth"], "got unknown ['depth']"),
])
def test_invalid_options_are_named_with_value_and_fix(option, value, words):
    with pytest.raises(PBTConfigError) as info:
        policy(**{option: value})
    assert words in str(info.value) and "; " in str(info.value)  # rule, value, then the fix


def test_perturb_number_stays_in_the_domain_and_moves_on_grids():
    space = Space.of({"i": Int(1, 10), "s": Float(0.0, 1.0, step=0.25), "f": Float(0.5, 2.0)})
    i, s, f = space.params
    assert perturb_number(i, 3, 1.2) == 4  # 3.6 rounds to 4
    assert perturb_number(i, 2, 1.2) == 3  # 2.4 rounds back to 2: moved one step up instead
    assert perturb_number(i, 2, 0.8) == 1
    assert perturb_number(i, 10, 1.2) == 10 and perturb_number(i, 1, 0.8) == 1  # clipped
    assert perturb_number(s, 0.5, 1.2) == 0.75 and perturb_number(s, 0.25, 0.8) == 0.0
    assert perturb_number(f, 1.9, 1.2) == 2.0 and perturb_number(f, 0.6, 0.8) == 0.5
    assert perturb_number(f, 1.0, 1.2) == pytest.approx(1.2)
    assert isinstance(perturb_number(i, 3, 1.2), int)


def test_explore_respects_bounds_grids_choices_and_branches():
    space = Space.of({
        "lr": Float(1e-5, 1e-1, log=True), "n": Int(2, 64, step=2), "q": Float(0.0, 1.0, step=0.1),
        "model": Categorical([{"kind": "mlp", "width": Int(8, 128)},
                              {"kind": "cnn", "kernel": Categorical([3, 5, 7])}]),
    })
    rng = np.random.default_rng(1)
    flat = space.sample_flat(rng)
    ops_seen = set()
    for _ in range(500):
        flat, ops = explore(space, flat, rng, resample_probability=0.2)
        on = space.active(flat)
        assert set(flat) == {p.name for p, a in zip(space.params, on) if a}  # inactive dropped
        for p in space.params:
            if p.name in flat:
                assert p.contains(flat[p.name]), (p.name, flat[p.name])
        space.to_config(flat)  # materialises
        ops_seen.update(v.split()[0] if v.startswith(("shift", "new")) else v[:1] for v in ops.values())
    assert {"r", "*", "shift", "new"} <= ops_seen  # resample, factor, neighbour, new branch


def test_explore_keeps_frozen_parameters_and_shifts_choices_to_neighbours():
    space = Space.of(SPACE)
    rng = np.random.default_rng(0)
    for _ in range(200):
        new, ops = explore(space, CONFIG, rng, mutable=["lr", "opt"], resample_probability=0.0)
        assert new["momentum"] == CONFIG["momentum"] and new["batch"] == CONFIG["batch"]
        assert ops["momentum"] == ops["batch"] == "keep"
        assert new["opt"] in (0, 2) and ops["opt"] in ("shift -1", "shift +1")
        assert new["lr"] == pytest.approx(CONFIG["lr"] * float(ops["lr"][1:]))
    edge, ops = explore(space, {**CONFIG, "opt": 0}, rng, mutable=["opt"], resample_probability=0.0)
    assert edge["opt"] == 1 and ops["opt"] == "shift +1"  # the only neighbour at the edge


# ---- asynchronous decisions -----------------------------------------------------------


def test_async_bottom_member_exploits_a_top_member_when_due():
    pbt = policy(burn_in_period=2)
    ids = population(pbt)
    for t in (1, 2, 3):
        for tid, decisions in report(pbt, ids, t, [1.0, 2.0, 3.0, 4.0]).items():
            assert decisions == (Continue(tid, BURN_IN if t < 2 else NOT_DUE),)
    got = report(pbt, ids[::-1], 4, [4.0, 3.0, 2.0, 1.0])  # t0 reports last
    exploit = got["t0"][0]
    assert isinstance(exploit, Exploit) and exploit.target == "t0" and exploit.donor == "t3"
    assert exploit.time == 4 and exploit.donor_time == 4 and exploit.generation is None
    assert exploit.donor_config == CONFIG and set(exploit.operations) == set(CONFIG)
    assert got["t1"] == (Continue("t1", MIDDLE),) and got["t2"] == (Continue("t2", MIDDLE),)
    assert got["t3"] == (Continue("t3", TOP),)
    assert pbt.quantiles() == (["t0"], ["t3"])
    record = pbt.commit(exploit)
    assert (record.target, record.donor, record.time, record.donor_time) == ("t0", "t3", 4, 4)
    assert pbt.members["t0"].config == exploit.new_config and pbt.members["t0"].exploits == 1
    assert pbt.lineage() == [record]
    # the clone continues from the donor's progress and is due again one interval later
    assert pbt.on_result("t0", 5, 5.0, True) == (Continue("t0", NOT_DUE),)
    assert pbt.on_result("t0", 8, 5.0, True)[0].reason == TOP


def test_mode_min_ranks_low_values_first_and_nan_last():
    pbt = policy(mode="min")
    ids = population(pbt)
    report(pbt, ids[1:], 4, [0.5, 0.2, 0.9])
    assert pbt.on_result("t0", 4, float("nan"), True)[0].donor == "t2"  # NaN is the worst
    assert pbt.quantiles() == (["t0"], ["t2"])


def test_members_are_compared_at_their_common_time():
    """Values grow with t; the member deciding first in a round is one step ahead of the
    others. Judged at the common time it is the worst, and exploits; judged by latest
    values it would look better than one it trails."""
    pbt = policy()
    ids = population(pbt)
    base = {"t0": 0.0, "t1": 0.5, "t2": 1.0, "t3": 1.5}
    for t in (1, 2, 3):
        report(pbt, ids, t, [base[i] + t for i in ids])
    decision = pbt.on_result("t0", 4, base["t0"] + 4, True)[0]  # 4.0, while t1 shows 3.5 at t=3
    assert isinstance(decision, Exploit) and decision.donor == "t3"
    pbt.abort(decision)
    assert pbt.quantiles() == (["t0"], ["t3"])
    pbt.on_result("t1", 5, 100.0, True)  # a jump ahead does not count against those behind:
    assert pbt.members["t1"].value_at(3) == 3.5 and pbt.members["t1"].value_at(4.5) == 3.5
    assert pbt.quantiles() == (["t1"], ["t3"])  # judged by its t=3 value, it beats nobody


def test_too_few_members_means_no_quantiles():
    pbt = policy()
    population(pbt, 1)
    assert pbt.on_result("t0", 4, 1.0, True) == (Continue("t0", TOO_FEW),)


def test_donor_without_checkpoint_is_never_cloned():
    pbt = policy()
    ids = population(pbt)
    pbt.on_result("t3", 4, 9.0, False)  # best, but has no checkpoint
    report(pbt, ids[1:3], 4, [2.0, 3.0])
    assert pbt.on_result("t0", 4, 1.0, True) == (Continue("t0", NO_DONOR),)
    assert pbt.on_result("t0", 5, 1.0, True) == (Continue("t0", NO_DONOR),)  # reconsidered each report
    pbt.on_result("t3", 5, 9.0, True)  # now it has one
    exploit = pbt.on_result("t0", 6, 1.0, True)[0]
    assert isinstance(exploit, Exploit) and exploit.donor == "t3" and exploit.donor_time == 5


def test_trial_without_checkpoint_since_its_exploit_is_neither_perturbed_nor_cloned():
    pbt = policy()
    ids = population(pbt)
    report(pbt, ids[1:], 4, [2.0, 3.0, 4.0])
    pbt.commit(pbt.on_result("t0", 4, 1.0, True)[0])  # t0 clones t3 at 4
    # t0 reports without checkpoints: never due for a decision, however long
    for t in (5, 8, 9):
        decision = pbt.on_result("t0", t, 10.0, False)[0]
        assert decision.reason == (NOT_DUE if t < 8 else NO_CHECKPOINT)
    # t0 ranks top now but holds no checkpoint of its own: t1 (bottom) must not clone it
    report(pbt, ["t2", "t3"], 8, [3.0, 4.0])
    exploit = pbt.on_result("t1", 8, 2.0, True)[0]
    assert pbt.quantiles()[1] == ["t0"] and exploit == Continue("t1", NO_DONOR)
    pbt.on_result("t0", 10, 10.0, True)
    assert pbt.on_result("t1", 9, 2.0, True)[0].donor == "t0"


def test_abort_keeps_the_target_due_and_commit_takes_an_older_donor_checkpoint():
    pbt = policy()
    ids = population(pbt)
    report(pbt, ids[1:], 4, [2.0, 3.0, 4.0])
    first = pbt.on_result("t0", 4, 1.0, True)[0]
    assert pbt.held("t0") and pbt.held("t3")  # neither may be (re)started while it is pending
    pbt.abort(first, "donor checkpoint not registered")
    assert not pbt.held("t0") and pbt.aborted == 1 and pbt.lineage() == []
    second = pbt.on_result("t0", 5, 1.0, True)[0]
    assert isinstance(second, Exploit)
    record = pbt.commit(second, donor_time=3)
    assert record.donor_time == 3 and pbt.members["t0"].time == 3
    with pytest.raises(ValueError, match="no pending exploit"):
        pbt.commit(second)


def test_finished_members_leave_the_ranking():
    pbt = policy()
    ids = population(pbt)
    report(pbt, ids, 3, [1.0, 2.0, 3.0, 9.0])
    pbt.on_complete("t3")
    assert pbt.on_result("t3", 4, 9.0, True) == (Continue("t3", NOT_LIVE),)
    assert pbt.on_result("t0", 4, 1.0, True)[0].donor == "t2"


# ---- synchronous generations ----------------------------------------------------------


def test_sync_generation_waits_for_every_live_member_then_decides_all():
    pbt = policy(synchronous=True)
    ids = population(pbt)
    assert pbt.on_result("t0", 3, 1.0, True) == (Continue("t0", NOT_DUE),)
    assert pbt.on_result("t0", 4, 1.0, True) == (Pause("t0"),)
    assert pbt.on_result("t1", 4, 2.0, False) == (Continue("t1", NO_CHECKPOINT),)  # must checkpoint
    assert pbt.on_result("t1", 5, 2.0, True) == (Pause("t1"),)
    assert pbt.on_result("t2", 4, 4.0, True) == (Pause("t2"),)
    assert all(pbt.held(t) for t in ("t0", "t1", "t2")) and not pbt.held("t3")
    decisions = pbt.on_result("t3", 4, 3.0, True)
    assert decisions[0] == Pause("t3")
    closing = decisions[1:]
    assert [d.trial for d in closing] == ids
    exploit = closing[0]
    assert isinstance(exploit, Exploit) and exploit.donor == "t2" and exploit.generation == 0
    assert closing[1:] == (Resume("t1"), Resume("t2"), Resume("t3"))
    assert pbt.held("t0") and pbt.held("t2")  # target and donor wait for the commit
    assert not pbt.held("t1") and not pbt.held("t3")
    pbt.commit(exploit)
    assert not any(pbt.held(t) for t in ids)
    assert pbt.generation == 1 and pbt.barrier == 8
    assert pbt.on_result("t1", 6, 2.0, True) == (Continue("t1", NOT_DUE),)


@pytest.mark.parametrize("leave", ["on_error", "on_complete", "on_remove"])
def test_sync_member_that_dies_never_blocks_the_generation(leave):
    pbt = policy(synchronous=True)
    ids = population(pbt)
    for tid, v in zip(ids[:3], [3.0, 1.0, 2.0]):
        assert pbt.on_result(tid, 4, v, True) == (Pause(tid),)
    for t in (1, 2, 3):
        pbt.on_result("t3", t, 0.5, True)  # the straggler: still below the barrier ...
    decisions = getattr(pbt, leave)("t3")  # ... and dies there
    assert [type(d) for d in decisions] == [Resume, Exploit, Resume]
    assert decisions[1].target == "t1" and decisions[1].donor == "t0"
    assert pbt.status("t3") in ("errored", "finished", "removed")
    assert getattr(pbt, leave)("t3") == ()  # reported twice: nothing more


def test_sync_last_member_dying_while_others_wait_releases_them_even_without_ranking():
    pbt = policy(synchronous=True)
    ids = population(pbt, 2)
    assert pbt.on_result("t0", 4, 1.0, True) == (Pause("t0"),)
    assert pbt.on_error("t1") == (Resume("t0"),)  # one member left: nothing to rank, it goes on
    assert not pbt.held("t0") and pbt.on_complete("t0") == ()
    assert ids == ["t0", "t1"]


def test_sync_member_that_never_checkpoints_never_arrives_and_leaves_when_it_ends():
    pbt = policy(synchronous=True)
    ids = population(pbt, 3)
    pbt.on_result("t0", 4, 1.0, True)
    pbt.on_result("t1", 4, 2.0, True)
    for t in range(4, 12):
        assert pbt.on_result("t2", t, 9.0, False)[0] == Continue("t2", NO_CHECKPOINT)
    decisions = pbt.on_complete("t2")
    assert [type(d) for d in decisions] == [Exploit, Resume] and decisions[0].donor == "t1"
    assert ids[2] == "t2" and not pbt.members["t2"].ever_checkpointed


def test_sync_abort_lets_the_target_go_on():
    pbt = policy(synchronous=True)
    ids = population(pbt, 2)
    pbt.on_result("t0", 4, 1.0, True)
    exploit = pbt.on_result("t1", 4, 2.0, True)[1]
    pbt.abort(exploit)
    assert not pbt.held("t0") and pbt.members["t0"].config == CONFIG and ids


# ---- determinism, lineage, replay, persistence -------------------------------------------


def toy_population(seed: int, synchronous: bool = False, steps: int = 80, n: int = 4,
                   resample_probability: float = 0.5, pbt: PBT | None = None):
    """The toy problem of Jaderberg et al. (2017), Section 4.1, driven through the policy.

    theta starts at (0.9, 0.9); each step is gradient ascent (lr 0.05) on the surrogate
    Q^ = 1.2 - (h0 theta0^2 + h1 theta1^2); the score is the true Q = 1.2 - |theta|^2.
    Members start at h = (1, 0) or (0, 1), where exploit-free training ends at 0.39.
    Members step round-robin; an exploit copies the donor's theta at the checkpoint time.
    Returns (policy, {trial: theta}, first step with Q >= 1.19 or None).
    """
    space = {"h0": Float(0.0, 1.0), "h1": Float(0.0, 1.0)}
    pbt = pbt or PBT(space, perturbation_interval=4, mode="max", seed=seed, synchronous=synchronous,
                     resample_probability=resample_probability)
    theta, t, saved, held = {}, {}, {}, set()
    for i in range(n):
        tid = f"m{i}"
        pbt.add(tid, {"h0": float(i % 2 == 0), "h1": float(i % 2 == 1)})
        theta[tid], t[tid] = np.array([0.9, 0.9]), 0
    first = None

    def act(decisions):
        for d in decisions:
            if isinstance(d, Pause):
                held.add(d.trial)
            elif isinstance(d, Resume):
                held.discard(d.trial)
            elif isinstance(d, Exploit):
                pbt.commit(d)
                theta[d.target] = saved[(d.donor, d.donor_time)].copy()
                t[d.target] = int(d.donor_time)
                held.discard(d.target)

    while any(t[m] < steps and m not in held for m in theta):
        for tid in theta:
            if t[tid] >= steps or tid in held:
                continue
            h = np.array([pbt.members[tid].config["h0"], pbt.members[tid].config["h1"]])
            theta[tid] = toy_step(theta[tid], h)
            t[tid] += 1
            q = 1.2 - float(theta[tid] @ theta[tid])
            saved[(tid, t[tid])] = theta[tid].copy()
            if q >= 1.19 and first is None:
                first = t[tid]
            act(pbt.on_result(tid, t[tid], q, True))
            if t[tid] >= steps:
                act(pbt.on_complete(tid))
    return pbt, theta, first


def toy_step(theta: np.ndarray, h: np.ndarray) -> np.ndarray:
    return theta + 0.05 * (-2.0 * h * theta)


def replay(schedule, steps: int) -> np.ndarray:
    """Train from scratch following a config schedule [(t_k, config_k)]."""
    theta = np.array([0.9, 0.9])
    for step in range(1, steps + 1):
        config = [c for t, c in schedule if t < step][-1]
        theta = toy_step(theta, np.array([config["h0"], config["h1"]]))
    return theta


@pytest.mark.parametrize("synchronous", [False, True])
def test_toy_problem_pbt_beats_exploit_free_training_and_schedules_replay_exactly(synchronous):
    pbt, theta, first = toy_population(seed=3, synchronous=synchronous)
    assert first is not None and first <= 70
    assert max(1.2 - th @ th for th in theta.values()) >= 1.19
    assert 1.2 - replay([(0, {"h0": 1.0, "h1": 0.0})], 80) @ replay([(0, {"h0": 1.0, "h1": 0.0})], 80) \
        == pytest.approx(0.39, abs=1e-6)  # without exploits: stuck at 0.39
    assert len(pbt.lineage()) >= 5
    for tid, th in theta.items():
        schedule = pbt.config_schedule(tid)
        assert schedule[0][0] == 0 and [t for t, _ in schedule] == sorted(t for t, _ in schedule)
        np.testing.assert_array_equal(replay(schedule, 80), th)  # bit-for-bit
    if synchronous:
        assert {r.time for r in pbt.lineage()} <= {4.0 * k for k in range(1, 21)}


def test_toy_problem_median_over_seeds():
    firsts = [toy_population(seed)[2] or math.inf for seed in range(11)]
    assert np.median(firsts) <= 48, firsts


def test_same_seed_same_decisions_other_seed_other_decisions():
    a, b, c = (toy_population(seed)[0] for seed in (7, 7, 8))
    assert [r.to_json() for r in a.lineage()] == [r.to_json() for r in b.lineage()]
    assert [r.to_json() for r in a.lineage()] != [r.to_json() for r in c.lineage()]


def test_reproducible_in_another_process():
    code = ("import json, sys; sys.path[:0] = ['tests', '.']\n"
            "from test_pbt_core import toy_population\n"
            "print(json.dumps([r.to_json() for r in toy_population(5)[0].lineage()]))")
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    out = subprocess.run([sys.executable, "-c", code], cwd=root, capture_output=True, text=True, check=True)
    assert json.loads(out.stdout) == json.loads(json.dumps([r.to_json() for r in toy_population(5)[0].lineage()]))


def test_schedule_follows_the_donor_chain():
    pbt = policy(resample_probability=0.0)
    ids = population(pbt, 4)
    report(pbt, ids[1:], 4, [2.0, 3.0, 4.0])
    first = pbt.commit(pbt.on_result("t0", 4, 1.0, True)[0])  # t0 <- t3 at 4
    pbt.on_result("t0", 7, 9.0, True)  # t0 leads now, checkpointed at 7
    report(pbt, ["t2", "t3"], 8, [3.0, 4.0])
    second = pbt.commit(pbt.on_result("t1", 8, 2.0, True)[0])  # t1 <- t0 at 7
    assert (second.donor, second.donor_time) == ("t0", 7)
    assert pbt.config_schedule("t3") == [(0.0, CONFIG)]
    assert pbt.config_schedule("t0") == [(0.0, CONFIG), (4.0, first.new_config)]
    assert pbt.config_schedule("t1") == [(0.0, CONFIG), (4.0, first.new_config), (7.0, second.new_config)]


def test_state_round_trip_continues_the_same_sequence(tmp_path):
    path = tmp_path / "state" / "pbt.json"
    whole, _, _ = toy_population(seed=2, steps=40)
    half = PBT({"h0": Float(0.0, 1.0), "h1": Float(0.0, 1.0)}, perturbation_interval=4, mode="max",
               seed=2, resample_probability=0.5)
    half, _, _ = toy_population(seed=2, steps=40, pbt=half)
    half.save(path)
    assert os.listdir(path.parent) == ["pbt.json"]  # the temporary file was moved into place
    text = path.read_text()
    assert "NaN" not in text and json.loads(text)["format"] == "tuneorch.pbt"
    fresh = PBT({"h0": Float(0.0, 1.0), "h1": Float(0.0, 1.0)}, perturbation_interval=4, mode="max",
                seed=2, resample_probability=0.5)
    fresh.load(path)
    assert [r.to_json() for r in fresh.lineage()] == [r.to_json() for r in whole.lineage()]
    assert {t: m.to_json() for t, m in fresh.members.items()} == {t: m.to_json() for t, m in whole.members.items()}
    assert fresh.config_schedule("m1") == whole.config_schedule("m1")
    # the generator continues where it stopped: the next draws agree
    assert fresh.rng.random() == whole.rng.random()


def test_state_with_nan_scores_and_wrong_options(tmp_path):
    pbt = policy()
    ids = population(pbt, 2)
    report(pbt, ids, 4, [float("nan"), 1.0])
    path = tmp_path / "pbt.json"
    pbt.save(path)
    again = policy()
    again.load(path)
    assert math.isnan(again.members["t0"].value)
    with pytest.raises(PBTStateError, match=r"other options .*quantile_fraction.*remove"):
        policy(quantile_fraction=0.5).load(path)
    path.write_text("{not json")
    with pytest.raises(PBTStateError, match="cannot read"):
        policy().load(path)


def test_configs_outside_the_space_are_refused():
    pbt = policy()
    with pytest.raises(PBTConfigError, match=r"parameter 'batch'.*got 65"):
        pbt.add("x", {**CONFIG, "batch": 65})


def test_restore_undoes_an_exploit_that_tune_never_saved():
    """Resume after the driver stopped between an exploit and Tune's next experiment snapshot:
    Tune brings the target back with its old config, so the exploit leaves the lineage."""
    pbt = policy(resample_probability=0.0)
    ids = population(pbt, 4)
    report(pbt, ids[1:], 4, [2.0, 3.0, 4.0])
    first = pbt.commit(pbt.on_result("t0", 4, 1.0, True)[0])  # t0 <- t3 at 4
    report(pbt, ["t2", "t3"], 8, [3.0, 4.0])
    second = pbt.commit(pbt.on_result("t1", 8, 2.0, True)[0])  # t1 <- t3 at 8
    assert (first.seq, second.seq) == (0, 1)
    assert pbt.on_restore("t1", second.new_config) is None  # Tune saw t1's exploit: nothing to undo
    assert pbt.on_restore("t0", CONFIG) == first
    assert [(r.seq, r.target, r.donor, r.time) for r in pbt.lineage()] == [(0, "t1", "t3", 8.0)]
    t0 = pbt.members["t0"]
    assert t0.config == CONFIG and t0.exploits == 0 and t0.value is None and t0.ckpt_time is None
    assert pbt.config_schedule("t0") == [(0.0, CONFIG)]
    assert pbt.config_schedule("t1") == [(0.0, CONFIG), (8.0, second.new_config)]
    # it restarts from its own checkpoint (here at 4) and is due again there
    again = pbt.on_result("t0", 4, 1.0, True)[0]
    assert isinstance(again, Exploit) and again.target == "t0"


def test_restore_keeps_an_exploit_the_member_has_trained_on_since():
    pbt = policy(resample_probability=0.0)
    ids = population(pbt, 4)
    report(pbt, ids[1:], 4, [2.0, 3.0, 4.0])
    first = pbt.commit(pbt.on_result("t0", 4, 1.0, True)[0])  # t0 <- t3 at 4
    pbt.on_result("t0", 7, 9.0, True)
    report(pbt, ["t2", "t3"], 8, [3.0, 4.0])
    pbt.commit(pbt.on_result("t1", 8, 2.0, True)[0])  # t1 <- t0 at 7: t0 trained on since its exploit
    assert pbt.on_restore("t0", CONFIG) is None and pbt.lineage()[0] == first
