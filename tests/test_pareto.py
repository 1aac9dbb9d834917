"""Pareto core (search_algs/core/pareto.py) and the MOTPE split (search_algs/core/motpe.py):
hand-computed cases and brute force. No Ray."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

from search_algs.core.motpe import MOTPE, split_good_bad_mo
from search_algs.core.pareto import (Constraint, crowding_distance, default_reference_point, dominates,
                                     feasibility_order, hypervolume, hypervolume_contributions, knee_point,
                                     non_dominated_sort, parse_constraint, select_by_contribution,
                                     total_violation)


def brute_fronts(Y):
    Y = np.asarray(Y, float)
    rank = np.full(len(Y), -1)
    left = set(range(len(Y)))
    k = 0
    while left:
        front = [i for i in left if not any(dominates(Y[j], Y[i]) for j in left if j != i)]
        for i in front:
            rank[i] = k
        left -= set(front)
        k += 1
    return rank


def brute_hv(Y, ref, samples=None):
    """Exact union of boxes by inclusion-exclusion (small sets only)."""
    Y = np.asarray(Y, float)
    ref = np.asarray(ref, float)
    total = 0.0
    for r in range(1, len(Y) + 1):
        for subset in itertools.combinations(range(len(Y)), r):
            corner = Y[list(subset)].max(axis=0)
            total += (-1) ** (r + 1) * np.prod(np.maximum(ref - corner, 0.0))
    return total


def test_non_dominated_sort_hand_case():
    Y = [[1, 5], [2, 2], [5, 1], [3, 3], [4, 4], [2, 2], [6, 6]]
    assert non_dominated_sort(Y).tolist() == [0, 0, 0, 1, 2, 0, 3]


@pytest.mark.parametrize("m", [2, 3, 4])
def test_non_dominated_sort_matches_brute_force(m):
    rng = np.random.default_rng(m)
    for _ in range(20):
        Y = rng.integers(0, 5, size=(15, m)).astype(float)  # many ties
        assert non_dominated_sort(Y).tolist() == brute_fronts(Y).tolist()


def test_crowding_distance_hand_case():
    Y = np.array([[0.0, 4.0], [1.0, 2.0], [3.0, 1.0], [4.0, 0.0]])
    d = crowding_distance(Y)
    assert math.isinf(d[0]) and math.isinf(d[3])
    assert d[1] == pytest.approx((3 - 0) / 4 + (4 - 1) / 4)
    assert d[2] == pytest.approx((4 - 1) / 4 + (2 - 0) / 4)


def test_hypervolume_hand_cases():
    assert hypervolume([[1, 1]], [2, 2]) == pytest.approx(1.0)
    # staircase: (1,3),(2,2),(3,1) with ref (4,4): 3*1 + 2*1 + 1*1 = 6
    assert hypervolume([[1, 3], [2, 2], [3, 1]], [4, 4]) == pytest.approx(6.0)
    assert hypervolume([[1, 3], [2, 2], [3, 1], [3, 3]], [4, 4]) == pytest.approx(6.0)  # dominated adds 0
    assert hypervolume([[5, 5]], [4, 4]) == 0.0  # beyond the reference point
    assert hypervolume([[0, 0, 0]], [1, 2, 3]) == pytest.approx(6.0)
    # two 3-D boxes overlapping in [0,1]^3: 2 + 2 - 1
    assert hypervolume([[0, 0, 1], [1, 0, 0]], [2, 1, 2]) == pytest.approx(2 + 2 - 1)


@pytest.mark.parametrize("m", [2, 3, 4, 5])
def test_hypervolume_matches_inclusion_exclusion(m):
    rng = np.random.default_rng(10 + m)
    for _ in range(10):
        Y = rng.random((7, m))
        ref = np.ones(m) * 1.1
        assert hypervolume(Y, ref) == pytest.approx(brute_hv(Y, ref), rel=1e-10, abs=1e-12)


def test_hypervolume_of_a_sampled_front_agrees_with_monte_carlo():
    rng = np.random.default_rng(0)
    Y = rng.random((20, 3))
    ref = np.ones(3)
    U = rng.random((200_000, 3))
    inside = np.zeros(len(U), bool)
    for y in Y:
        inside |= np.all(U >= y, axis=1)
    assert hypervolume(Y, ref) == pytest.approx(inside.mean(), abs=5e-3)


def test_contributions_are_exclusive_volumes():
    Y = np.array([[1, 3], [2, 2], [3, 1], [3, 3]])
    c = hypervolume_contributions(Y, [4, 4])
    assert c.tolist() == pytest.approx([1.0, 1.0, 1.0, 0.0])
    Y3 = np.random.default_rng(1).random((6, 3))
    c3 = hypervolume_contributions(Y3, [1, 1, 1])
    for i in range(6):
        assert c3[i] == pytest.approx(brute_hv(Y3, [1, 1, 1]) - brute_hv(np.delete(Y3, i, 0), [1, 1, 1]))


def test_select_by_contribution_drops_the_least_contributor():
    Y = np.array([[0.0, 1.0], [0.45, 0.5], [0.5, 0.45], [1.0, 0.0]])
    kept = select_by_contribution(Y, 3, ref=[1.1, 1.1])
    assert len(kept) == 3 and 0 in kept and 3 in kept  # the extremes keep large boxes


def test_knee_point_and_reference_point():
    Y = np.array([[0.0, 1.0], [0.2, 0.2], [1.0, 0.0], [0.9, 0.9]])
    assert knee_point(Y) == 1
    assert knee_point([[3.0, 1.0]]) == 0
    ref = default_reference_point(np.array([[0.0, 10.0], [1.0, 20.0]]))
    assert ref.tolist() == pytest.approx([1.1, 21.0])


def test_constraints_parse_and_measure():
    c = parse_constraint("memory_gb <= 16")
    assert c == Constraint("memory_gb", "<=", 16.0)
    assert c.violation(15) == 0 and c.violation(18) == 2 and c.violation(float("nan")) == math.inf
    strict = parse_constraint(" latency_ms<50 ")
    assert not strict.holds(50.0) and strict.holds(49.9)
    assert parse_constraint("acc >= 0.9").violation(0.5) == pytest.approx(0.4)
    assert total_violation([c, strict], {"memory_gb": 17, "latency_ms": 10}) == pytest.approx(1.0)
    assert total_violation([c], {}) == math.inf
    for bad in ["memory_gb == 16", "memory_gb <= sixteen", "<= 16", "memory_gb <= 16 GB", "m <= inf", 16]:
        with pytest.raises(ValueError):
            parse_constraint(bad)


def test_feasibility_order_ranks_infeasible_last_by_violation():
    Y = np.array([[1, 1], [0, 0], [2, 0], [0, 2], [3, 3], [np.nan, 0]])
    viol = np.array([0, 5.0, 0, 0, 0, 0])
    order = feasibility_order(Y, viol).tolist()
    assert set(order[:3]) == {0, 2, 3}  # front of the feasible ones
    assert order[3] == 4
    assert order[4:] == [1, 5]  # infeasible by violation, failed last


def test_motpe_split_fronts_feasibility_and_failures():
    Y = np.array([[0, 0], [1, 3], [3, 1], [2, 2], [4, 4], [5, 5], [np.nan, 1]] + [[6, 6]] * 13, float)
    viol = np.zeros(len(Y))
    viol[0] = 1.0  # the best point is infeasible
    good, bad = split_good_bad_mo(Y, viol, fraction=0.15, cap=25)  # n_ok = 19 -> 3 good
    assert good.tolist() == [1, 2, 3]
    assert 0 in bad and 6 in bad
    # no feasible point at all: the least violating fill the good set
    good, _ = split_good_bad_mo(Y[:6], np.array([3.0, 1, 2, 5, 6, 7]), fraction=0.3)
    assert good.tolist() == [1, 2]
    # completed trials before censored ones
    good, _ = split_good_bad_mo(Y[:6], None, budgets=[1, 9, 9, 9, 9, 9],
                                censored=[True, False, False, False, False, False], fraction=0.3)
    # the completed front {1, 2, 3} is cut to 2 by hypervolume contribution: (2, 2) adds most
    assert good.tolist() == [1, 3]


def test_motpe_moves_towards_the_front():
    from search_algs.core.dims import Dim  # noqa: F401 - the space builds them

    from search_algs import Float
    from search_algs.space import Space

    space = Space.of({"x": Float(0.0, 1.0), "y": Float(0.0, 1.0)})
    core = MOTPE(space.dims())
    rng = np.random.default_rng(0)
    X = rng.random((40, 2))
    Y = np.stack([X[:, 0], 1 - X[:, 0] + 5 * X[:, 1]], axis=1)  # the front is y = 0
    picks = np.array([core.suggest(X, Y, rng) for _ in range(20)])
    assert np.median(picks[:, 1]) < 0.25


def test_hypervolume_history_follows_the_front_as_trials_end():
    """The hypervolume of the trials ended so far, in end order, recomputed only when one enters
    the front: hand case with reference point (4, 4)."""
    from orchestrator.pareto_records import hypervolume_history

    L = np.array([[3.0, 3.0],   # ends 2nd: HV 1
                  [1.0, 1.0],   # ends 4th: dominates everything so far: HV 9
                  [2.0, 3.5],   # ends 1st: HV 2 * 0.5 = 1
                  [3.5, 3.5],   # ends 3rd: dominated, no change
                  [0.5, 3.9],   # ends 5th, infeasible: no change
                  [np.nan, 1.0]])  # no end time: last; not counted (infeasible)
    feasible = np.array([True, True, True, True, False, False])
    ends = [20.0, 40.0, 10.0, 30.0, 50.0, None]
    history = hypervolume_history(L, feasible, np.array([4.0, 4.0]), ends)
    assert [(k, ts) for k, ts, _ in history] == [(1, 10000), (2, 20000), (4, 40000), (6, None)]
    values = [v for *_, v in history]
    assert values == pytest.approx([1.0, 1.0 + 1.0 - 0.5, 9.0, 9.0])
    from search_algs.core.pareto import hypervolume as hv_of
    assert values[1] == pytest.approx(hv_of(L[[0, 2]], np.array([4.0, 4.0])))
