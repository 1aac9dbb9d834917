"""The ASHA policy as scripted event sequences: no Ray, hand-computed expectations."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys

import numpy as np
import pytest

from schedulers.core.asha import (ASHA, Action, ASHAConfigError, ASHAStateError, Plan, Status,
                                  bracket_probabilities, continue_quota, max_brackets,
                                  promotion_quota, rung_levels)

C, P, S = Action.CONTINUE, Action.PAUSE, Action.STOP


# ---- rung arithmetic -----------------------------------------------------------------


def test_rung_levels_below_max_t():
    assert rung_levels(1, 3, 27) == (1, 3, 9)  # 27 is max_t, not a rung
    assert rung_levels(1, 3, 28) == (1, 3, 9, 27)
    assert rung_levels(2, 2, 20) == (2, 4, 8, 16)
    assert rung_levels(5, 3, 5) == ()  # grace_period == max_t: every trial runs to the end
    assert rung_levels(1, 3, 27, bracket=1) == (3, 9)
    assert rung_levels(1, 3, 27, bracket=3) == ()
    assert rung_levels(0.5 * 2, 2.5, 10) == (1, 2.5, 6.25)


def test_max_brackets_and_probabilities():
    assert max_brackets(1, 3, 27) == 4
    assert max_brackets(1, 2, 1) == 1
    probs = bracket_probabilities(1, 3, 27, 4)
    sizes = np.array([3, 2, 1, 0])
    expected = 3.0**sizes / (sizes + 1)
    np.testing.assert_allclose(probs, expected / expected.sum())
    assert probs[0] > probs[1] > probs[2] > probs[3]


@pytest.mark.parametrize("n, eta, ceil_q, floor_q", [
    (1, 3, 1, 0), (2, 3, 1, 0), (3, 3, 1, 1), (4, 3, 2, 1), (9, 3, 3, 3), (10, 3, 4, 3),
    (5, 2.5, 2, 2), (6, 2.5, 3, 2), (7, 2, 4, 3),
])
def test_quotas(n, eta, ceil_q, floor_q):
    assert continue_quota(n, eta) == ceil_q
    assert promotion_quota(n, eta) == floor_q


# ---- validation ----------------------------------------------------------------------


@pytest.mark.parametrize("kwargs, words", [
    (dict(grace_period=0), ["grace_period", ">= 1", "0"]),
    (dict(grace_period=True), ["grace_period", "True"]),
    (dict(eta=1.5), ["eta", ">= 2", "1.5"]),
    (dict(eta=float("nan")), ["eta", "nan"]),
    (dict(grace_period=10, max_t=5), ["max_t", "grace_period", "max_t=5", "grace_period=10"]),
    (dict(brackets=0), ["brackets", ">= 1", "0"]),
    (dict(brackets=2.0), ["brackets", "integer", "2.0"]),
    (dict(grace_period=1, eta=3, max_t=27, brackets=5), ["brackets", "<= 4", "brackets=5"]),
    (dict(mode="minimize"), ["mode", "'minimize'", "mode='min'"]),
    (dict(variant="promote"), ["variant", "'promote'", "variant='promotion'"]),
    (dict(seed=-1), ["seed", "-1"]),
])
def test_invalid_options_raise_clear_errors(kwargs, words):
    with pytest.raises(ASHAConfigError) as info:
        ASHA(**kwargs)
    assert isinstance(info.value, ValueError)
    for word in words:
        assert word in str(info.value)
    assert "pass" in str(info.value) or "raise" in str(info.value)  # says how to fix it


# ---- stopping variant ----------------------------------------------------------------


def script(core: ASHA, events) -> list[Action]:
    return [core.on_result(tid, t, v) for tid, t, v in events]


def test_stopping_decisions_match_hand_computation():
    # grace 1, eta 3, max_t 9 -> rungs at 1 and 3 (one bracket).
    core = ASHA(grace_period=1, eta=3, max_t=9, mode="min", seed=0)
    got = script(core, [
        ("a", 1, 5.0),  # n=1, rank 1 <= ceil(1/3)=1 -> continue
        ("b", 1, 3.0),  # n=2, rank 1 <= 1
        ("c", 1, 4.0),  # n=3, rank 2 > ceil(3/3)=1 -> stop
        ("d", 1, 1.0),  # n=4, rank 1 <= ceil(4/3)=2
        ("e", 1, 2.0),  # n=5, rank 2 <= 2
        ("f", 1, 6.0),  # n=6, rank 6 > 2
        ("g", 1, 3.5),  # n=7: 1 2 3 3.5 ... rank 4 > ceil(7/3)=3
        ("a", 2, 0.1),  # between rungs
        ("a", 3, 0.5),  # rung 3: n=1 -> continue
        ("b", 3, 0.7),  # n=2, rank 2 > ceil(2/3)=1 -> stop
        ("a", 9, 0.2),  # max_t -> finished
    ])
    assert got == [C, C, S, C, C, S, S, C, C, S, S]
    assert core.status("a") is Status.FINISHED
    assert core.status("b") is Status.STOPPED and core.status("c") is Status.STOPPED
    assert core.status("d") is Status.ACTIVE
    assert core.rung_records()[(0, 1)] == {"a": 5.0, "b": 3.0, "c": 4.0, "d": 1.0, "e": 2.0,
                                           "f": 6.0, "g": 3.5}
    assert core.rung_records()[(0, 3)] == {"a": 0.5, "b": 0.7}


def test_max_mode_mirrors_min_mode():
    events = [("a", 1, 5.0), ("b", 1, 3.0), ("c", 1, 4.0), ("d", 1, 1.0), ("e", 1, 2.0),
              ("f", 1, 6.0), ("g", 1, 3.5)]
    low = script(ASHA(1, 3, 9, mode="min", seed=0), events)
    high = script(ASHA(1, 3, 9, mode="max", seed=0), [(i, t, -v) for i, t, v in events])
    assert low == high


def test_stopped_and_finished_trials_keep_stopping():
    core = ASHA(1, 2, 4, seed=0)
    assert script(core, [("a", 1, 1.0), ("b", 1, 2.0)]) == [C, S]
    assert core.on_result("b", 2, 0.0) is S  # a late report does not revive it
    assert core.on_result("a", 4, 0.0) is S
    assert core.on_result("a", 5, 0.0) is S


def test_a_report_crossing_rungs_is_judged_at_the_highest_only():
    core = ASHA(1, 3, 27, seed=0)  # rungs 1, 3, 9
    assert core.on_result("a", 4.5, 2.0) is C  # crossed 1 and 3: recorded at 3 only
    assert core.rung_records()[(0, 1)] == {} and core.rung_records()[(0, 3)] == {"a": 2.0}
    assert core.on_result("a", 2, 1.0) is C  # going back below a passed rung: no new record
    assert core.rung_records()[(0, 1)] == {}


def test_retried_trial_repeats_its_decisions_and_keeps_its_bracket():
    core = ASHA(1, 3, 27, brackets=3, seed=3)
    bracket = core.add("a")
    first = core.levels[bracket][0]
    assert core.on_result("a", first, 1.0) is C
    core.on_error("a")
    assert core.status("a") is Status.ERRORED
    assert core.add("a") == bracket  # re-added by Tune's retry: same bracket
    assert core.status("a") is Status.ACTIVE
    n_before = len(core.trials["a"].rungs)
    assert core.on_result("a", first, 9.0) is C  # restarted from scratch: decision repeated
    assert len(core.trials["a"].rungs) == n_before
    assert core.rung_records()[(bracket, first)] == {"a": 1.0}


def test_nonfinite_value_stops_counts_and_ranks_last():
    core = ASHA(1, 3, 9, seed=0)
    assert core.on_result("nan", 1, math.nan) is S
    assert core.on_result("inf", 1, math.inf) is S
    assert core.on_result("ninf", 1, -math.inf) is S  # -inf is "best" for min, still refused
    assert core.rung_records()[(0, 1)] == {"nan": None, "inf": None, "ninf": None}
    # A finite arrival: n=4, rank 1 (non-finite rank last) <= ceil(4/3)=2.
    assert core.on_result("ok", 1, 100.0) is C
    assert core.rank("ok", 0) == (1, 4)
    assert core.trials["nan"].rungs[0].nonfinite == "nan"
    assert core.trials["ninf"].rungs[0].nonfinite == "-inf"


def test_nonfinite_in_promotion_variant_is_stopped_never_promoted():
    core = ASHA(1, 3, 9, variant="promotion", seed=0)
    assert core.on_result("x", 1, math.nan) is S
    for i in range(5):
        core.on_result(f"t{i}", 1, float(i))
    plan = core.plan(paused={"x", *[f"t{i}" for i in range(5)]}, live=[f"t{i}" for i in range(5)],
                     no_new_trials=True)
    assert "x" not in plan.promote and "x" not in plan.stop
    assert core.status("x") is Status.STOPPED


# ---- brackets ------------------------------------------------------------------------


def test_bracket_rungs_start_at_grace_times_eta_to_the_s():
    core = ASHA(1, 3, 27, brackets=4, seed=0)
    assert core.levels == ((1, 3, 9), (3, 9), (9,), ())
    ids = {}
    for i in range(40):
        ids.setdefault(core.add(f"t{i}"), f"t{i}")
    assert set(ids) == {0, 1, 2, 3}
    # bracket 2: nothing happens before t=9
    tid = ids[2]
    assert core.on_result(tid, 1, 5.0) is C and core.on_result(tid, 3, 5.0) is C
    assert core.trials[tid].rungs == {}
    assert core.on_result(tid, 9, 5.0) is C and core.rung_records()[(2, 9)] == {tid: 5.0}
    # bracket 3 has no rung: runs to max_t
    tid = ids[3]
    assert core.on_result(tid, 26, 1e9) is C and core.on_result(tid, 27, 1e9) is S
    assert core.status(tid) is Status.FINISHED


def test_bracket_frequencies_follow_probabilities():
    core = ASHA(1, 3, 27, brackets=4, seed=1)
    counts = np.bincount([core.add(f"t{i}") for i in range(4000)], minlength=4) / 4000
    np.testing.assert_allclose(counts, bracket_probabilities(1, 3, 27, 4), atol=0.03)


def test_brackets_rank_separately():
    core = ASHA(1, 2, 8, brackets=2, seed=0)  # bracket 0: 1, 2, 4; bracket 1: 2, 4
    b = {t: core.add(t) for t in [f"t{i}" for i in range(20)]}
    in0 = [t for t in b if b[t] == 0][:2]
    in1 = [t for t in b if b[t] == 1][:2]
    # The best of bracket 1 at t=2 does not count in bracket 0's rung at t=2.
    assert core.on_result(in1[0], 2, 0.0) is C
    for t in in0:
        core.on_result(t, 1, 1.0)
    assert core.on_result(in0[0], 2, 5.0) is C  # first arrival at bracket 0's rung 2
    assert core.rung_records()[(0, 2)] == {in0[0]: 5.0}
    assert core.rung_records()[(1, 2)] == {in1[0]: 0.0}


# ---- promotion variant ---------------------------------------------------------------


def test_promotion_pauses_then_promotes_top_floor_n_over_eta():
    core = ASHA(1, 3, 9, variant="promotion", seed=0)  # rungs 1, 3
    for t in "abcdefgh":
        core.add(t)
    live = set("abcdefgh")
    assert script(core, [("a", 1, 5.0), ("b", 1, 3.0)]) == [P, P]  # floor(1/3)=floor(2/3)=0
    assert core.plan({"a", "b"}, live, False) == Plan()
    assert core.on_result("c", 1, 4.0) is P  # n=3, quota 1, c ranks 2nd
    assert core.plan({"a", "b", "c"}, live, False) == Plan(promote=("b",))
    core.mark_promoted("b")
    assert core.status("b") is Status.ACTIVE and core.trials["b"].rungs[0].promoted
    assert core.plan({"a", "c"}, live, False) == Plan()  # quota 1 is used by b
    # d arrives best: n=4, quota 1, rank 1 -> promoted in place (no pause/resume round trip)
    assert core.on_result("d", 1, 1.0) is C and core.trials["d"].rungs[0].promoted
    # b reaches rung 3 first: paused (floor(1/3) = 0)
    assert core.on_result("b", 3, 2.0) is P
    assert script(core, [("e", 1, 6.0), ("f", 1, 3.5)]) == [P, P]  # n=6, quota 2: f is 3rd
    assert core.plan({"a", "b", "c", "e", "f"}, live, False) == Plan()
    assert core.on_result("g", 1, 7.0) is P  # n=7: quota 2 (used by d, b)
    assert core.on_result("h", 1, 8.0) is P  # n=8: quota 2
    assert core.plan({"a", "b", "c", "e", "f", "g", "h"}, live, False) == Plan()
    assert core.on_result("d", 3, 1.5) is P  # rung 3: n=2, quota 0
    # No trial will come any more, nothing runs: every rung is final, quotas become ceil.
    # Rung 1: n=8 -> ceil 3 -> f (3rd) is promotable; a, c, e, g, h never.
    # Rung 3: kept open while f can still arrive.
    plan = core.plan({"a", "b", "c", "d", "e", "f", "g", "h"}, live, True)
    assert plan == Plan(promote=("f",), stop=("a", "c", "e", "g", "h"))
    for t in plan.stop:
        core.mark_stopped(t)
    core.mark_promoted("f")
    assert core.on_result("f", 3, 1.8) is P  # rung 3: d 1.5, f 1.8, b 2.0 -> n=3, quota 1 = d
    live = {"b", "d", "f"}
    assert core.plan(live, live, False) == Plan(promote=("d",))
    # settled: ceil(3/3) = 1 -> d promoted, b and f never
    assert core.plan(live, live, True) == Plan(promote=("d",), stop=("b", "f"))
    core.mark_promoted("d")
    assert core.on_result("d", 9, 1.0) is S and core.status("d") is Status.FINISHED


def test_promotion_orders_highest_rung_first_then_rank():
    core = ASHA(1, 2, 8, variant="promotion", seed=0)  # rungs 1, 2, 4
    live = set("stuvwxyz")
    for t in sorted(live):
        core.add(t)
    assert script(core, [("x", 1, 1.0), ("y", 1, 2.0)]) == [P, P]  # n=2, quota 1: x waits
    core.mark_promoted("x")
    assert core.on_result("x", 2, 1.0) is P  # rung 2: n=1, quota 0
    assert core.on_result("z", 1, 0.5) is C  # rung 1: n=3, quota 1, rank 1: in place
    assert core.on_result("z", 2, 3.0) is P  # rung 2: n=2, quota 1 -> x (paused) now eligible
    # rung 1: z .5, x 1, w 1.5, u 1.6, v 1.7, y 2, t 5, s 6
    assert script(core, [("w", 1, 1.5), ("v", 1, 1.7), ("u", 1, 1.6), ("t", 1, 5.0),
                         ("s", 1, 6.0)]) == [P] * 5
    paused = set(live)  # every trial waits at a rung now
    # rung 1 quota floor(8/2)=4: z, x promoted already -> w (3rd), u (4th); rung 2 first.
    assert core.plan(paused, live, False) == Plan(promote=("x", "w", "u"))
    # Settled: rung 1 final, quota ceil(8/2)=4 -> v, y, t, s can never be promoted; rung 2
    # stays open (w and u may still arrive), so z (2nd of 2) is kept waiting.
    assert core.plan(paused, live, True) == Plan(promote=("x", "w", "u"), stop=("s", "t", "v", "y"))


def test_rung_stays_open_while_a_lower_trial_runs():
    core = ASHA(1, 3, 9, variant="promotion", seed=0)
    for t in "abc":
        core.add(t)
    core.on_result("a", 1, 1.0)  # paused, n=1
    core.on_result("b", 1, 2.0)  # paused, n=2
    # c has not reported: rung 1 is not final even with no new trials
    assert core.plan({"a", "b"}, {"a", "b", "c"}, True) == Plan()
    # c was removed: rung final, ceil(2/3)=1 -> a promoted, b never
    assert core.plan({"a", "b"}, {"a", "b"}, True) == Plan(promote=("a",), stop=("b",))


def test_paused_trial_running_again_without_promotion_is_held_again():
    core = ASHA(1, 3, 9, variant="promotion", seed=0)
    assert core.on_result("a", 1, 1.0) is P
    assert core.on_result("a", 1, 1.0) is P  # Tune ran it again (e.g. after a resume)
    assert core.rank("a", 0) == (1, 1)


def test_trial_failing_while_being_paused_is_paused_again_after_its_retry():
    core = ASHA(1, 3, 9, variant="promotion", seed=0)
    assert core.on_result("a", 1, 1.0) is P
    core.on_error("a")  # the save of the pause failed; Tune retries the trial
    assert core.status("a") is Status.ERRORED
    core.add("a")
    assert core.status("a") is Status.ACTIVE
    assert core.on_result("a", 1, 1.0) is P  # the stored decision, no new entry
    assert core.rank("a", 0) == (1, 1)
    assert core.status("a") is Status.PAUSED and core.trials["a"].paused_at == 0


def test_mark_promoted_refuses_a_running_trial():
    core = ASHA(1, 3, 9, variant="promotion", seed=0)
    core.add("a")
    with pytest.raises(ASHAStateError, match="only a paused trial"):
        core.mark_promoted("a")


def test_stopping_variant_plan_is_empty():
    core = ASHA(1, 3, 9, seed=0)
    core.on_result("a", 1, 1.0)
    assert core.plan({"a"}, {"a"}, True) == Plan()


# ---- determinism ---------------------------------------------------------------------


def _run_script(seed):
    core = ASHA(1, 3, 27, brackets=3, seed=seed)
    rng = np.random.default_rng(123)  # the workload: fixed
    out = []
    for i in range(30):
        tid = f"t{i}"
        out.append(core.add(tid))
        for t in (1, 3, 9, 27):
            a = core.on_result(tid, t, float(rng.integers(0, 4)))  # many ties
            out.append(a.value)
            if a is not C:
                break
    return out, core.to_dict()


def test_same_seed_same_decisions_and_ties():
    a, state_a = _run_script(7)
    b, state_b = _run_script(7)
    assert a == b and state_a == state_b
    c, _ = _run_script(8)
    assert a != c


def test_ties_are_broken_by_the_seeded_generator():
    def first_rung_winner(seed):
        core = ASHA(1, 3, 9, seed=seed)
        script(core, [("a", 1, 1.0), ("b", 1, 1.0), ("c", 1, 1.0)])
        return sorted("abc", key=lambda t: core.rank(t, 0))[0]

    winners = {first_rung_winner(s) for s in range(30)}
    assert len(winners) > 1  # not decided by id or arrival order
    assert first_rung_winner(5) == first_rung_winner(5)


def test_reproducible_in_another_process():
    code = ("import json, sys; sys.modules['ray'] = None\n"
            "sys.path.insert(0, '.')\n"
            "from tests.test_asha_core import _run_script\n"
            "print(json.dumps(_run_script(11)[0]))")
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    done = subprocess.run([sys.executable, "-c", code], cwd=root, capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == _run_script(11)[0]


# ---- persistence ---------------------------------------------------------------------


def test_save_load_round_trip_continues_identically(tmp_path):
    path = tmp_path / "state" / "asha.json"
    original = ASHA(1, 3, 27, brackets=3, variant="promotion", seed=4, context={"metric": "m"})
    for i in range(12):
        original.add(f"t{i}")
        original.on_result(f"t{i}", 1, float(i % 4))
    original.on_result("x", 1, math.nan)
    original.save(path)
    assert [p.name for p in path.parent.iterdir()] == ["asha.json"]  # no temporary file left
    assert json.loads(path.read_text())["format"] == "tuneorch.asha"

    copy = ASHA(1, 3, 27, brackets=3, variant="promotion", seed=4, context={"metric": "m"})
    copy.load(path)
    assert copy.rung_records() == original.rung_records()
    assert {t: s.status for t, s in copy.trials.items()} == \
           {t: s.status for t, s in original.trials.items()}
    # the generator comes back too: the next draws (brackets, ties) are the same
    live = set(original.trials)
    for core in (original, copy):
        for i in range(12, 20):
            core.add(f"t{i}")
            core.on_result(f"t{i}", 3, 0.5)
    assert copy.to_dict() == original.to_dict()
    assert copy.plan(live, live, True) == original.plan(live, live, True)


def test_load_refuses_other_options_and_garbage(tmp_path):
    path = tmp_path / "asha.json"
    core = ASHA(1, 3, 27, seed=0)
    core.on_result("a", 1, 1.0)
    core.save(path)
    other = ASHA(1, 2, 27, seed=0)
    with pytest.raises(ASHAStateError) as info:
        other.load(path)
    assert "eta" in str(info.value) and "saved 3 vs now 2" in str(info.value)
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(ASHAStateError, match="cannot read state file"):
        ASHA(1, 3, 27, seed=0).load(bad)
    bad.write_text(json.dumps({"format": "other"}))
    with pytest.raises(ASHAStateError, match="not an ASHA state"):
        ASHA(1, 3, 27, seed=0).load(bad)


def test_version_moves_only_on_change():
    core = ASHA(1, 3, 9, seed=0)
    core.add("a")
    v = core.version
    assert core.on_result("a", 0.5, 1.0) is C and core.version == v  # below first rung
    core.on_result("a", 1, 1.0)
    assert core.version > v
