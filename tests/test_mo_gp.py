"""The multi-objective GP core (search_algs/core/mo_gp.py: ParEGO with probability of feasibility),
driven directly with unit vectors: no Ray, no searcher adapter."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy.stats import norm
from threadpoolctl import threadpool_limits

from search_algs.core.acquisition import LogEI
from search_algs.core.dims import Dim
from search_algs.core.gp import GP
from search_algs.core.gp_ei import GPEIOptions
from search_algs.core.mo_gp import (MOGP, LogEIFeasible, LogPoF, MOGPOptions, chebyshev, normalise_objectives,
                                    oriented_slack, simplex_weights)
from search_algs.core.optimizer import OptimizeOptions
from search_algs.core.pareto import Constraint, hypervolume

D = 3
DIMS = tuple(Dim("continuous") for _ in range(D))
# a cheaper fit and acquisition search keep the loops fast; the claims below held with the defaults too
CHEAP = MOGPOptions(gp=GPEIOptions(fit_maxiter=30, optimize=OptimizeOptions(n_raw=128, n_perturb=32, n_starts=2,
                                                                            maxiter=20, n_local=1)))


def zdt1(u: np.ndarray) -> np.ndarray:
    g = 1 + 9 * u[1:].sum() / (len(u) - 1)
    return np.array([u[0], g * (1 - math.sqrt(u[0] / g))])


def run(seed: int, n: int, algorithm: str, constraint=None) -> tuple[np.ndarray, np.ndarray]:
    """``n`` evaluations of ZDT1 (``D`` = 3); ``constraint(u) -> slack`` (feasible when <= 0)."""
    rng = np.random.default_rng(seed)
    core = MOGP(DIMS, CHEAP)
    X, Y, C = np.zeros((0, D)), np.zeros((0, 2)), np.zeros((0, 1))
    with threadpool_limits(limits=1, user_api="blas"):
        for _ in range(n):
            if algorithm == "random":
                u = rng.random(D)
            else:
                u = core.suggest(X, Y, rng, constraint_values=None if constraint is None else C)
            X, Y = np.vstack([X, u]), np.vstack([Y, zdt1(u)])
            if constraint is not None:
                C = np.vstack([C, [constraint(u)]])
    return X, Y


# ---- scalarisation --------------------------------------------------------------------------


def test_chebyshev_matches_hand_computed_values():
    Yn = np.array([[0.0, 1.0], [0.5, 0.5], [1.0, 0.2], [0.2, 0.4]])
    w = np.array([0.3, 0.7])
    # max(w * y) + 0.05 * sum(w * y), row by row
    expected = [0.7 + 0.05 * 0.7, 0.35 + 0.05 * 0.5, 0.3 + 0.05 * (0.3 + 0.14), 0.28 + 0.05 * (0.06 + 0.28)]
    assert chebyshev(Yn, w, 0.05) == pytest.approx(expected, abs=1e-12)
    assert chebyshev(Yn, w, 0.0) == pytest.approx([0.7, 0.35, 0.3, 0.28], abs=1e-12)
    three = chebyshev(np.array([[0.1, 0.2, 0.3]]), np.array([0.5, 0.25, 0.25]), 0.05)
    assert three == pytest.approx([0.075 + 0.05 * (0.05 + 0.05 + 0.075)])


def test_normalisation_maps_usable_rows_to_the_unit_box_and_keeps_failures_nan():
    Y = np.array([[1.0, 10.0], [3.0, 10.0], [np.nan, 0.0], [2.0, 10.0]])
    Yn = normalise_objectives(Y)
    assert Yn[[0, 1, 3], 0] == pytest.approx([0.0, 1.0, 0.5])
    assert Yn[[0, 1, 3], 1] == pytest.approx([0.0, 0.0, 0.0])  # no spread: shifted only
    assert np.isnan(Yn[2]).all()


def test_weights_are_on_the_simplex_and_come_from_the_generator():
    w = simplex_weights(3, np.random.default_rng(0))
    assert w.shape == (3,) and np.all(w >= 0) and w.sum() == pytest.approx(1.0)
    assert np.array_equal(w, simplex_weights(3, np.random.default_rng(0)))
    draws = np.array([simplex_weights(2, np.random.default_rng(s)) for s in range(400)])
    assert 0.4 < draws[:, 0].mean() < 0.6  # uniform on the simplex: each weight's mean is 1/m


@pytest.mark.parametrize("op, value, slack", [("<=", 12.0, 2.0), ("<", 8.0, -2.0), (">=", 12.0, -2.0),
                                              (">", 8.0, 2.0), ("<=", None, math.nan), ("<=", float("inf"), math.nan),
                                              ("<=", "x", math.nan)])
def test_oriented_slack_is_feasible_when_not_positive(op, value, slack):
    got = oriented_slack(Constraint("m", op, 10.0), value)
    assert (math.isnan(got) and math.isnan(slack)) or got == pytest.approx(slack)
    if not math.isnan(slack):
        assert (got <= 0) == Constraint("m", op, 10.0).holds(value)


# ---- acquisition ----------------------------------------------------------------------------


def test_log_pof_and_the_feasible_ei_agree_with_the_plain_forms():
    rng = np.random.default_rng(1)
    U = rng.random((8, D))
    theta = np.array([-1.0, -1.0, -1.0, 0.0, -8.0])
    levels = np.zeros(D, dtype=int)
    gp_f = GP(U, rng.standard_normal(8), theta, levels)
    gp_c = [GP(U, rng.standard_normal(8), theta, levels) for _ in range(2)]
    pof = LogPoF(gp_c, [0.3, -0.2])
    Q = rng.random((5, D))
    with torch.no_grad():
        plain = np.ones(5)
        for gp, t in zip(gp_c, [0.3, -0.2]):
            mean, var = gp.posterior(torch.as_tensor(Q))
            plain *= norm.cdf((t - mean.numpy()) / np.sqrt(var.numpy()))
    assert np.exp(pof.numpy(Q)) == pytest.approx(plain, rel=1e-9)
    both = LogEIFeasible(LogEI(gp_f, 0.0), pof)
    assert both.numpy(Q) == pytest.approx(LogEI(gp_f, 0.0).numpy(Q) + np.log(plain), rel=1e-9)
    Qt = torch.as_tensor(Q, dtype=torch.float64).requires_grad_(True)
    (grad,) = torch.autograd.grad(both(Qt).sum(), Qt)
    assert torch.isfinite(grad).all()


# ---- the policy -----------------------------------------------------------------------------


def test_thirty_evaluations_find_more_hypervolume_than_thirty_random_points():
    ref = [1.1, 11.0]
    wins = 0
    for seed in range(5):
        hv_gp = hypervolume(run(seed, 30, "mogp")[1], ref)
        hv_random = hypervolume(run(seed, 30, "random")[1], ref)
        wins += hv_gp > hv_random
    assert wins >= 4  # measured: 5 of 5, HV ~11.6-11.7 vs 8.8-10.4


def test_with_a_constraint_suggestions_are_feasible_more_often_than_random_ones():
    def slack(u):  # feasible: u0 + u1 <= 0.6 (18% of the cube)
        return u[0] + u[1] - 0.6

    model, rand = 0, 0
    for seed in range(3):
        X, _ = run(seed, 22, "mogp", slack)
        model += int(sum(slack(u) <= 0 for u in X[10:]))
        Xr, _ = run(seed, 22, "random")
        rand += int(sum(slack(u) <= 0 for u in Xr[10:]))
    assert model > rand and model >= 0.6 * 36  # measured: 36 of 36 vs 7 of 36


def test_with_no_feasible_point_yet_it_moves_towards_feasibility():
    rng = np.random.default_rng(3)
    X = 0.5 + 0.5 * rng.random((12, D))  # every point has u0 + u1 > 1
    Y = np.array([zdt1(u) for u in X])
    C = (X[:, 0] + X[:, 1] - 0.6).reshape(-1, 1)
    core = MOGP(DIMS, CHEAP)
    with threadpool_limits(limits=1, user_api="blas"):
        u = core.suggest(X, Y, rng, violation=np.clip(C[:, 0], 0, None), constraint_values=C)
    assert core.last["feasible_known"] is False
    assert u[0] + u[1] - 0.6 < C.min()  # more promising than every point seen


def test_failed_rows_and_running_points_are_handled_and_never_proposed_again():
    X, Y = run(4, 12, "mogp")
    Y[3] = [np.nan, np.nan]
    pending = np.random.default_rng(9).random((2, D))
    core = MOGP(DIMS, CHEAP)
    u = core.suggest(X, Y, np.random.default_rng(0), pending=pending)
    assert u.shape == (D,) and np.all((u >= 0) & (u <= 1))
    assert not any(np.allclose(u, p) for p in np.vstack([X, pending]))


def test_start_up_draws_are_uniform_and_then_the_model_is_used():
    core = MOGP(DIMS, CHEAP)
    X, Y = run(0, 9, "random")
    core.suggest(X, Y, np.random.default_rng(0))
    assert core.last == {"startup": True}
    X, Y = run(0, 10, "random")
    core.suggest(X, Y, np.random.default_rng(0))
    assert core.last["startup"] is False and core.last["weights"].sum() == pytest.approx(1.0)


def test_the_same_seed_gives_the_same_sequence_and_the_state_carries_it():
    def slack(u):
        return u[2] - 0.5

    first, again = run(5, 12, "mogp", slack)[0], run(5, 12, "mogp", slack)[0]
    assert np.array_equal(first, again)
    assert not np.array_equal(first, run(6, 12, "mogp", slack)[0])
    X, Y = run(5, 13, "random")
    C = (X[:, 2] - 0.5).reshape(-1, 1)
    a = MOGP(DIMS, CHEAP)
    a.suggest(X[:12], Y[:12], np.random.default_rng(1), constraint_values=C[:12])
    b = MOGP(DIMS, CHEAP)
    b.load_state(a.state())
    ua = a.suggest(X, Y, np.random.default_rng(2), constraint_values=C)
    ub = b.suggest(X, Y, np.random.default_rng(2), constraint_values=C)
    assert np.array_equal(ua, ub)


def test_bad_inputs_are_refused_with_the_value_and_the_fix():
    with pytest.raises(ValueError, match=r"'rho'.*-0.1.*0.05"):
        MOGP(DIMS, MOGPOptions(rho=-0.1))
    with pytest.raises(ValueError, match=r"'n_startup'.*2.5"):
        MOGP(DIMS, MOGPOptions(n_startup=2.5))
    core = MOGP(DIMS, CHEAP)
    with pytest.raises(ValueError, match=r"'X'.*3 columns.*\(4, 2\)"):
        core.suggest(np.zeros((4, 2)), np.zeros((4, 2)), np.random.default_rng(0))
    with pytest.raises(ValueError, match=r"'Y'.*one row per row of X \(4\).*\(3, 2\)"):
        core.suggest(np.zeros((4, D)), np.zeros((3, 2)), np.random.default_rng(0))


def test_options_round_trip_through_a_dict():
    assert MOGPOptions.from_dict(CHEAP.as_dict()) == CHEAP


def test_constraint_values_of_the_wrong_shape_are_refused():
    X, Y = run(0, 12, "random")
    with pytest.raises(ValueError, match=r"'constraint_values'.*\(12\).*\(11, 1\)"):
        MOGP(DIMS, CHEAP).suggest(X, Y, np.random.default_rng(0), constraint_values=np.zeros((11, 1)))
