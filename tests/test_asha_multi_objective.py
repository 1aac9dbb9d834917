"""Multi-objective ASHA (schedulers/core/asha.py with a list of modes): scripted events, no Ray."""

from __future__ import annotations

import json

from schedulers.core.asha import ASHA
from schedulers.core.decisions import Action


def make(**kw):
    return ASHA(grace_period=1, eta=2, max_t=8, mode=["min", "max"], seed=0, **kw)


def test_rung_order_is_feasible_front_then_violation():
    asha = make()
    asha.decide("a", 1, [1.0, 1.0])  # (min, max): a is dominated by b
    asha.decide("b", 1, [0.5, 2.0])
    asha.decide("c", 1, [0.0, 9.0], violation=3.0)  # best objectives, infeasible
    asha.decide("d", 1, [2.0, 5.0])  # front with b
    asha.decide("e", 1, [float("nan"), 1.0])
    ranked = asha._ranked(0, 0)
    assert set(ranked[:2]) == {"b", "d"} and ranked[2:] == ["a", "c", "e"]
    assert asha.rank("c", 0) == (4, 5)


def test_stopping_decisions_follow_the_pareto_rank():
    asha = make()
    assert asha.decide("a", 1, [1.0, 1.0]).action is Action.CONTINUE  # first arrival: n=1, quota 1
    assert asha.decide("b", 1, [2.0, 0.5]).action is Action.STOP  # dominated by a: rank 2 of 2, quota 1
    assert asha.decide("c", 1, [0.0, 0.0], violation=1.0).action is Action.STOP  # infeasible: last
    assert asha.decide("d", 1, [0.5, 3.0]).action is Action.CONTINUE  # dominates a: rank 1 of 4


def test_state_round_trip_keeps_the_decisions():
    asha = make(variant="promotion")
    for i, v in enumerate([[1, 1], [2, 3], [0.5, 0.5], [3, 3]]):
        asha.decide(f"t{i}", 1, v, violation=0.0 if i != 1 else float("inf"))
    state = json.loads(json.dumps(asha.to_dict(), allow_nan=False))
    again = make(variant="promotion")
    again.load_dict(state)
    assert again._ranked(0, 0) == asha._ranked(0, 0)
    assert again.plan([t for t in asha.trials], list(asha.trials), True) == \
        asha.plan([t for t in asha.trials], list(asha.trials), True)
    assert asha.decide("t9", 1, [0.1, 9]).action == again.decide("t9", 1, [0.1, 9]).action
