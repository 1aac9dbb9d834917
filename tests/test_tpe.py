"""Tests of the TPE core (no Ray) and of its Tune adapter (one real Tune run)."""

from __future__ import annotations

import itertools
import json
import math
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scipy import stats

from search_algs.core.tpe import (
    TPE,
    ParzenEstimator,
    TPEOptions,
    gamma,
    log_normal_mass,
    rank_observations,
    cap_set,
    recency_weights,
    split_good_bad,
)
from search_algs.space import Categorical, Float, Int, Space

REPO = Path(__file__).resolve().parents[1]


# ---- test functions (unit cube in, regret out) -----------------------------------------------


def branin(u: np.ndarray) -> float:
    x1, x2 = -5.0 + 15.0 * u[0], 15.0 * u[1]
    b, c, t = 5.1 / (4 * math.pi**2), 5 / math.pi, 1 / (8 * math.pi)
    return (x2 - b * x1**2 + c * x1 - 6) ** 2 + 10 * (1 - t) * math.cos(x1) + 10 - 0.397887


_H_A = np.array([[10, 3, 17, 3.5, 1.7, 8], [0.05, 10, 17, 0.1, 8, 14],
                 [3, 3.5, 1.7, 10, 17, 8], [17, 8, 0.05, 10, 0.1, 14]])
_H_P = 1e-4 * np.array([[1312, 1696, 5569, 124, 8283, 5886], [2329, 4135, 8307, 3736, 1004, 9991],
                        [2348, 1451, 3522, 2883, 3047, 6650], [4047, 8828, 8732, 5743, 1091, 381]])
_H_ALPHA = np.array([1.0, 1.2, 3.0, 3.2])


def hartmann6(u: np.ndarray) -> float:
    return float(-np.sum(_H_ALPHA * np.exp(-np.sum(_H_A * (u - _H_P) ** 2, axis=1))) + 3.32237)


def unit_space(d: int) -> Space:
    return Space({f"x{i}": Float(0.0, 1.0) for i in range(d)})


def best_of_run(f, d: int, seed: int, budget: int, use_tpe: bool, n_startup: int = 10) -> float:
    core = TPE(unit_space(d).dims())
    rng = np.random.default_rng(seed)
    X, losses = [], []
    for i in range(budget):
        if use_tpe and i >= n_startup:
            u = core.suggest(np.array(X), losses, rng)
        else:
            u = rng.random(d)
        X.append(u)
        losses.append(f(u))
    return min(losses)


# ---- pure pieces -----------------------------------------------------------------------------


def test_gamma_and_recency_weights():
    assert [gamma(n) for n in (0, 1, 6, 7, 10, 100, 1000)] == [0, 1, 1, 2, 2, 15, 25]
    assert gamma(10, 0.1) == 1 and gamma(11, 0.1) == 2
    assert np.array_equal(recency_weights(3), np.ones(3))
    w = recency_weights(40, 25)
    assert len(w) == 40 and np.all(w[-25:] == 1) and w[0] == pytest.approx(1 / 40)
    assert np.all(np.diff(w) >= 0)


def test_log_normal_mass_matches_scipy_in_both_tails():
    lo = np.array([-3.0, -0.5, 0.2, 30.0, -40.0, 8.0, -1e-3])
    hi = np.array([-1.0, 0.7, 0.3, 31.0, -39.0, 8.5, 1e-3])
    # reference: whichever scipy form has no cancellation
    with np.errstate(divide="ignore"):
        ref = np.where(
            lo > 0,
            stats.norm.logsf(lo) + np.log1p(-np.exp(stats.norm.logsf(hi) - stats.norm.logsf(lo))),
            stats.norm.logcdf(hi) + np.log1p(-np.exp(stats.norm.logcdf(lo) - stats.norm.logcdf(hi))),
        )
    got = log_normal_mass(lo, hi)
    assert np.all(np.isfinite(got))
    np.testing.assert_allclose(got, ref, rtol=1e-9)


def _naive_log_pdf(dims, centres, weights, prior_weight, bandwidth, x):
    """Reference mixture density, one kernel and one parameter at a time, with scipy."""
    w = np.append(weights, prior_weight)
    w = w / w.sum()
    total = 0.0
    for i, mu in enumerate(centres):
        p = w[i]
        for j, dim in enumerate(dims):
            s = bandwidth[j]
            if dim.kind == "continuous":
                p *= stats.truncnorm.pdf(x[j], -mu[j] / s, (1 - mu[j]) / s, loc=mu[j], scale=s)
            elif dim.on_grid:
                c = int(np.argmin(np.abs(dim.grid - x[j])))
                a, b = -mu[j] / s, (1 - mu[j]) / s
                cdf = stats.truncnorm.cdf(dim.edges[[c, c + 1]], a, b, loc=mu[j], scale=s)
                p *= cdf[1] - cdf[0]
            else:
                K = dim.n_choices
                same = int(x[j] * K) == int(mu[j] * K)
                p *= (1 - s + s / K) if same else s / K
        total += p
    prior = w[-1]
    for j, dim in enumerate(dims):
        if dim.on_grid:
            c = int(np.argmin(np.abs(dim.grid - x[j])))
            prior *= dim.edges[c + 1] - dim.edges[c]
        elif dim.kind == "categorical":
            prior /= dim.n_choices
    return math.log(total + prior)


MIXED = Space({
    "lr": Float(1e-4, 1.0, log=True),
    "width": Int(1, 64, log=True),
    "act": Categorical(["relu", "tanh", "gelu"]),
    "drop": Float(0.0, 0.5, step=0.1),
})


def _mixed_points(rng, n):
    return np.array([MIXED.encode_flat(MIXED.sample_flat(rng)) for _ in range(n)])


def test_mixture_log_pdf_matches_naive_reference():
    rng = np.random.default_rng(3)
    dims = list(MIXED.dims())
    centres = _mixed_points(rng, 7)
    weights = rng.uniform(0.2, 1.0, 7)
    est = ParzenEstimator(dims, centres, weights, prior_weight=0.7, bandwidth_rule="scott", categorical_rule="scott")
    x = _mixed_points(rng, 15)
    got = est.log_pdf(x)
    ref = [_naive_log_pdf(dims, centres, weights, 0.7, est.bandwidth, xi) for xi in x]
    np.testing.assert_allclose(got, ref, rtol=1e-7)


def _scott_bandwidth_reference(dims, centres, weights, min_bandwidth=0.01):
    """The bandwidth rule of the module docstring, one parameter at a time."""
    c, k = centres.shape
    wn = np.asarray(weights, float) / np.sum(weights)
    factor = (1.0 / np.sum(wn**2)) ** (-1.0 / (k + 4))
    floor = max(min_bandwidth, 1.0 / (c + 2))
    out = []
    for j, dim in enumerate(dims):
        if dim.kind == "categorical":
            K = dim.n_choices
            freq = [sum(wn[i] for i in range(c) if int(centres[i, j] * K) == m) for m in range(K)]
            spread = (1.0 - sum(f * f for f in freq)) * K / (K - 1)
        else:
            mean = sum(wn[i] * centres[i, j] for i in range(c))
            spread = math.sqrt(sum(wn[i] * (centres[i, j] - mean) ** 2 for i in range(c)))
        out.append(min(max(spread * factor, floor), 1.0))
    return np.array(out)


def _continuous_log_pdf_reference(centres, weights, prior_weight, bandwidth, x):
    """Mixture of truncated-normal product kernels + uniform prior, with scipy, per point."""
    w = np.append(weights, prior_weight)
    w = w / w.sum()
    out = []
    for xi in x:
        log_k = np.log(w[:-1]).copy()
        for j, s in enumerate(bandwidth):
            mu = centres[:, j]
            log_k += stats.truncnorm.logpdf(xi[j], -mu / s, (1 - mu) / s, loc=mu, scale=s)
        out.append(np.logaddexp(np.log(np.sum(np.exp(log_k - log_k.max()))) + log_k.max(), np.log(w[-1])))
    return np.array(out)


def test_vectorised_kernels_match_the_reference_in_10d():
    """The estimator evaluates all kernels and parameters as arrays; it must give what one
    kernel and one parameter at a time gives (scipy's truncated normal)."""
    rng = np.random.default_rng(11)
    d, c = 10, 150
    dims = list(unit_space(d).dims())
    centres = rng.random((c, d))
    centres[:5] = np.clip(centres[:5].round(), 0, 1)  # kernels sitting on the edges
    weights = recency_weights(c, 25) * rng.uniform(0.5, 1.0, c)
    est = ParzenEstimator(dims, centres, weights, prior_weight=1.0, bandwidth_rule="scott",
                          categorical_rule="scott")
    np.testing.assert_allclose(est.bandwidth, _scott_bandwidth_reference(dims, centres, weights), rtol=1e-12)
    x = np.vstack([rng.random((20, d)), np.zeros((1, d)), np.ones((1, d)), centres[:3]])
    ref = _continuous_log_pdf_reference(centres, weights, 1.0, est.bandwidth, x)
    np.testing.assert_allclose(est.log_pdf(x), ref, rtol=1e-9, atol=1e-9)
    # narrow kernels (floor of the bandwidth): far tails stay finite and exact
    small = ParzenEstimator(dims, centres[:3], np.ones(3), prior_weight=1e-3, min_bandwidth=0.01,
                            bandwidth_rule="scott")
    ref = _continuous_log_pdf_reference(centres[:3], np.ones(3), 1e-3, small.bandwidth, x)
    np.testing.assert_allclose(small.log_pdf(x), ref, rtol=1e-9, atol=1e-9)


def test_vectorised_mixed_kernels_match_the_reference_with_many_kernels():
    rng = np.random.default_rng(5)
    dims = list(MIXED.dims())
    centres = _mixed_points(rng, 60)
    weights = recency_weights(60, 25)
    est = ParzenEstimator(dims, centres, weights, prior_weight=1.0, bandwidth_rule="scott",
                          categorical_rule="scott")
    np.testing.assert_allclose(est.bandwidth, _scott_bandwidth_reference(dims, centres, weights), rtol=1e-12)
    x = _mixed_points(rng, 8)
    ref = [_naive_log_pdf(dims, centres, weights, 1.0, est.bandwidth, xi) for xi in x]
    np.testing.assert_allclose(est.log_pdf(x), ref, rtol=1e-9)


def test_neighbour_bandwidths_match_a_loop_reference():
    from search_algs.core.tpe import neighbour_bandwidths

    def reference(x, floor):
        c = len(x)
        out = []
        for i in range(c):
            below = [x[i] - v for m, v in enumerate(x) if m != i and (v, m) <= (x[i], i)]
            above = [v - x[i] for m, v in enumerate(x) if m != i and (v, m) >= (x[i], i)]
            if c == 1:
                width = max(x[i], 1.0 - x[i])
            elif not below:
                width = min(above)
            elif not above:
                width = min(below)
            else:
                width = max(min(below), min(above))
            out.append(min(max(width, floor), 1.0))
        return np.array(out)

    rng = np.random.default_rng(8)
    for c in (1, 2, 3, 7, 40):
        x = rng.random((c, 3))
        x[:, 2] = np.round(x[:, 2] * 4) / 4  # ties, as on a grid
        got = neighbour_bandwidths(x, 0.02)
        for j in range(3):
            np.testing.assert_allclose(got[:, j], reference(list(x[:, j]), 0.02), rtol=0, atol=1e-15)


def test_neighbour_kernels_match_the_reference():
    """Per-kernel widths: the array evaluation against scipy, one kernel at a time."""
    rng = np.random.default_rng(12)
    dims = list(unit_space(6).dims())
    centres = rng.random((40, 6))
    weights = recency_weights(40, 25)
    est = ParzenEstimator(dims, centres, weights, 1.0, 0.01, bandwidth_rule="neighbour")
    x = np.vstack([rng.random((10, 6)), centres[:2], np.zeros((1, 6))])
    w = np.append(weights, 1.0) / (weights.sum() + 1.0)
    ref = []
    for xi in x:
        log_k = np.log(w[:-1]).copy()
        for j in range(6):
            s, mu = est.sigma[:, j], centres[:, j]
            log_k += stats.truncnorm.logpdf(xi[j], -mu / s, (1 - mu) / s, loc=mu, scale=s)
        ref.append(np.logaddexp(np.logaddexp.reduce(log_k), np.log(w[-1])))
    np.testing.assert_allclose(est.log_pdf(x), ref, rtol=1e-9, atol=1e-9)
    dims = list(MIXED.dims())
    centres = _mixed_points(rng, 30)
    est = ParzenEstimator(dims, centres, np.ones(30), 1.0, 0.1, bandwidth_rule="neighbour",
                          categorical_rule="count")  # floor 0.1: the linear-space reference cannot underflow
    assert est.bandwidth[2] == pytest.approx((3 / 31) / (1 + 3 / 31))  # Optuna's categorical kernel
    for xi in _mixed_points(rng, 5):
        # per-kernel widths: the naive reference with each kernel's own widths
        parts = [_naive_log_pdf(dims, centres[i:i + 1], np.ones(1), 0.0,
                                np.where(np.arange(4) == 2, est.bandwidth, est.sigma[i]), xi) for i in range(30)]
        mix = np.logaddexp.reduce(np.array(parts) + np.log(1 / 31))
        prior = _naive_log_pdf(dims, centres[:0], np.ones(0), 1.0, est.bandwidth, xi) + np.log(1 / 31)
        assert est.log_pdf(xi[None])[0] == pytest.approx(np.logaddexp(mix, prior), rel=1e-9)


def test_unit_mass_shortcut_matches_the_stable_form():
    from search_algs.core.tpe import _log_unit_mass

    rng = np.random.default_rng(2)
    mu = np.vstack([rng.random((50, 3)), [[0.0, 1.0, 0.5]]])
    for s in (np.array([0.01, 0.2, 1.0]), np.array([1.0, 1.0, 1.0])):
        np.testing.assert_allclose(_log_unit_mass(mu, s), log_normal_mass(-mu / s, (1 - mu) / s), rtol=1e-13,
                                   atol=1e-15)
    outside = np.array([[3.0, -2.0, 0.5]])  # not a fitted kernel: takes the stable fallback
    s = np.array([0.1, 0.1, 0.1])
    np.testing.assert_allclose(_log_unit_mass(outside, s), log_normal_mass(-outside / s, (1 - outside) / s))
    assert np.all(np.isfinite(_log_unit_mass(outside, s)))


def test_encode_flats_equals_encode_flat_row_by_row():
    cond = Space({"m": Categorical([{"kind": "a", "p": Float(0, 1), "q": Int(1, 9)},
                                    {"kind": "b", "r": Float(1e-3, 1, log=True, step=None)}, {"kind": "c"}]),
                  "s": Float(0, 1, step=0.1), "n": Int(2, 2)})
    rng = np.random.default_rng(4)
    for space in (MIXED, cond, unit_space(10)):
        flats = [space.sample_flat(rng) for _ in range(40)]
        rows = np.array([space.encode_flat(f) for f in flats])
        np.testing.assert_array_equal(space.encode_flats(flats), rows)  # bit for bit, NaN where inactive
        assert space.encode_flats([]).shape == (0, space.dim)


def test_discrete_densities_sum_to_one_and_sampling_follows_them():
    space = Space({"n": Int(1, 64, log=True), "q": Float(0.0, 1.0, step=0.25),
                   "c": Categorical(["a", "b", "c"])})
    dims = list(space.dims())
    rng = np.random.default_rng(0)
    centres = np.array([space.encode_flat(space.sample_flat(rng)) for _ in range(5)])
    est = ParzenEstimator(dims, centres, np.ones(5))
    values = [dims[0].grid, dims[1].grid, (np.arange(3) + 0.5) / 3]
    grid = np.array(list(itertools.product(*values)))
    p = np.exp(est.log_pdf(grid))
    assert p.sum() == pytest.approx(1.0, abs=1e-9)
    p = p.reshape(len(values[0]), len(values[1]), 3)
    draws = est.sample(np.random.default_rng(1), 40000)
    for j in range(3):  # every marginal, and the joint of the two small parameters
        freq = np.array([np.mean(np.isclose(draws[:, j], v)) for v in values[j]])
        marginal = p.sum(axis=tuple(k for k in range(3) if k != j))
        assert 0.5 * np.abs(freq - marginal).sum() < 0.02  # total variation
    joint = p.sum(axis=0)
    freq = np.array([[np.mean(np.isclose(draws[:, 1], a) & np.isclose(draws[:, 2], b))
                      for b in values[2]] for a in values[1]])
    assert 0.5 * np.abs(freq - joint).sum() < 0.02


def test_continuous_density_integrates_to_one():
    dims = list(unit_space(1).dims())
    est = ParzenEstimator(dims, np.array([[0.02], [0.5], [0.97]]), np.array([1.0, 0.5, 1.0]))
    xs = np.linspace(0, 1, 20001)[:, None]
    assert np.trapezoid(np.exp(est.log_pdf(xs)), xs[:, 0]) == pytest.approx(1.0, abs=1e-4)


# ---- ranking: censored and failed observations -------------------------------------------------


def test_censored_never_ahead_of_completed_and_deeper_budget_first():
    #            0 completed  1 cens@3   2 cens@9   3 completed  4 cens@9  5 failed  6 cens@3
    losses = [1.0, 0.1, 0.5, 2.0, 0.4, None, 0.05]
    budgets = [27, 3, 9, 27, 9, 27, 3]
    censored = [False, True, True, False, True, False, True]
    ranked, failed = rank_observations(losses, budgets, censored)
    assert ranked.tolist() == [0, 3, 4, 2, 6, 1]
    assert failed.tolist() == [5]
    # a censored trial with a better number at a shallow budget never beats a completed one
    good, bad = split_good_bad(losses, budgets, censored, fraction=0.3)
    assert good.tolist() == [0, 3] and 5 in bad and 1 in bad and 6 in bad


def test_censored_fill_the_good_set_only_when_few_completed():
    losses = [5.0] + [0.1 * i for i in range(19)]
    budgets = [9] + [1 + (i % 3) for i in range(19)]
    censored = [False] + [True] * 19
    good, _ = split_good_bad(losses, budgets, censored, fraction=0.15)
    assert len(good) == 3 and 0 in good  # the completed (worse-looking) trial is in
    assert all(budgets[i] == 3 for i in good if i != 0)  # then the deepest censored ones


def test_failed_and_nonfinite_never_good_and_never_crash():
    rng = np.random.default_rng(0)
    X = rng.random((30, 2))
    losses = [None, math.nan, math.inf, -math.inf] + list(rng.random(26))
    good, bad = split_good_bad(losses)
    assert not {0, 1, 2, 3} & set(good.tolist()) and {0, 1, 2, 3} <= set(bad.tolist())
    u = TPE(unit_space(2).dims()).suggest(X, losses, rng)
    assert u.shape == (2,) and np.all((0 <= u) & (u <= 1))
    # only failures: the model still answers (l is the prior alone)
    u = TPE(unit_space(2).dims()).suggest(X[:5], [None] * 5, rng)
    assert np.all(np.isfinite(u))


def test_failed_region_is_avoided():
    rng = np.random.default_rng(1)
    X = rng.random((40, 2))
    losses = [None if x[0] < 0.5 else (x[1] - 0.3) ** 2 + 0.1 * x[0] for x in X]
    core = TPE(unit_space(2).dims())
    picks = np.array([core.suggest(X, losses, np.random.default_rng(s)) for s in range(30)])
    assert np.mean(picks[:, 0] >= 0.5) >= 0.9


# ---- conditional spaces ------------------------------------------------------------------------


COND = Space({
    "model": Categorical([
        {"kind": "linear", "lr": Float(1e-4, 1.0, log=True)},
        {"kind": "tree", "depth": Int(1, 12), "split": Categorical(["gini", "entropy"])},
    ]),
    "batch": Int(16, 256, log=True),
})


def test_conditional_children_only_where_active_and_modelled_from_their_branch():
    rng = np.random.default_rng(0)
    flats = [COND.sample_flat(rng) for _ in range(40)]

    def loss(flat):  # the linear branch with lr near 1e-2 is best
        if flat["model"] == 0:
            return abs(math.log10(flat["model[0]/lr"]) + 2)
        return 3.0 + flat["model[1]/depth"] / 12

    X = np.array([COND.encode_flat(f) for f in flats])
    losses = [loss(f) for f in flats]
    core = TPE(COND.dims())
    model = core.fit(X, losses)
    for group, good, bad in model.groups:
        members = [COND.params[i].name for i in group.index]
        active_good = sum(all(n in flats[i] for n in members) for i in model.good)
        assert good.n_kernels == active_good  # only observations where the group is active
    picks = []
    for s in range(20):
        u = core.suggest(X, losses, np.random.default_rng(s))
        flat = COND.decode_unit(u)
        active = COND.active(flat)
        assert all(np.isfinite(u[i]) == a for i, a in enumerate(active))
        picks.append(flat)
    linear = [f for f in picks if f["model"] == 0]
    assert len(linear) >= 15
    assert np.median([abs(math.log10(f["model[0]/lr"]) + 2) for f in linear]) < 0.75


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    n=st.integers(0, 30),
    seed=st.integers(0, 2**31 - 1),
    kinds=st.lists(st.sampled_from(["ok", "none", "nan", "inf", "ninf", "cens"]), min_size=30, max_size=30),
    n_pending=st.integers(0, 4),
)
def test_any_history_gives_a_valid_point(n, seed, kinds, n_pending):
    rng = np.random.default_rng(seed)
    flats = [COND.sample_flat(rng) for _ in range(n + n_pending)]
    X = np.array([COND.encode_flat(f) for f in flats[:n]]).reshape(-1, COND.dim)
    pending = np.array([COND.encode_flat(f) for f in flats[n:]]).reshape(-1, COND.dim)
    value = {"ok": 1.0, "none": None, "nan": math.nan, "inf": math.inf, "ninf": -math.inf, "cens": 0.5}
    losses = [value[k] if value[k] != 1.0 else float(rng.random()) for k in kinds[:n]]
    censored = [k == "cens" for k in kinds[:n]]
    budgets = [int(rng.integers(1, 5)) if c else 9 for c in censored]
    u = TPE(COND.dims()).suggest(X, losses, rng, budgets=budgets, censored=censored, pending=pending)
    config = COND.to_config(COND.decode_unit(u))
    assert COND.to_flat(config) == COND.decode_unit(u)


# ---- options -----------------------------------------------------------------------------------


@pytest.mark.parametrize("field, value", [
    ("n_ei_candidates", 0), ("gamma_fraction", 0.0), ("gamma_fraction", 1.5), ("gamma_cap", 0),
    ("prior_weight", 0.0), ("prior_weight", math.nan), ("min_bandwidth", 0.0),
    ("full_weight_window", 0), ("constant_liar", "yes"), ("bandwidth", "silverman"),
    ("categorical_bandwidth", None), ("max_set_points", 1), ("max_set_points", 2.5), ("max_set_points", True),
])
def test_bad_options_name_parameter_and_value(field, value):
    with pytest.raises(ValueError) as err:
        TPEOptions(**{field: value})
    assert f"'{field}'" in str(err.value) and repr(value) in str(err.value)


def test_bad_array_shapes_are_reported():
    core = TPE(unit_space(2).dims())
    with pytest.raises(ValueError, match="'X' must be a 2-D array of unit vectors with 2 columns"):
        core.suggest(np.zeros((4, 3)), [1.0] * 4, np.random.default_rng(0))
    with pytest.raises(ValueError, match="'losses'"):
        core.suggest(np.zeros((4, 2)), [1.0] * 3, np.random.default_rng(0))


# ---- performance sanity (core only, no Ray) ------------------------------------------------------


def test_tpe_beats_random_on_branin_and_hartmann6():
    budget, seeds = 60, range(5)
    lines = []
    for name, f, d in (("branin", branin, 2), ("hartmann6", hartmann6, 6)):
        tpe = np.median([best_of_run(f, d, s, budget, True) for s in seeds])
        rnd = np.median([best_of_run(f, d, s, budget, False) for s in seeds])
        lines.append(f"{name}: median best regret over seeds 0-4, {budget} evaluations: "
                     f"TPE {tpe:.4g}, random {rnd:.4g}")
        assert tpe < 0.5 * rnd, lines[-1]
    print("\n" + "\n".join(lines))


def test_suggestion_cost_at_200_observations():
    rng = np.random.default_rng(0)
    X = _mixed_points(rng, 200)
    losses = list(rng.random(200))
    pending = X[:8]
    core = TPE(MIXED.dims())
    core.suggest(X, losses, rng, pending=pending)  # warm-up
    times = []
    for _ in range(20):
        t = time.perf_counter()
        core.suggest(X, losses, rng, pending=pending)
        times.append(time.perf_counter() - t)
    ms = 1000 * float(np.median(times))
    print(f"\nTPE core: median {ms:.2f} ms per suggestion at n=200 observations, 4 params, 8 pending")
    assert ms < 50


# ---- the Tune adapter, driven by hand (no Ray cluster needed) ------------------------------------


def _objective(config) -> float:
    return (math.log10(config["lr"]) + 2) ** 2 + (config["width"] - 40) ** 2 / 400 + \
        (0.0 if config["act"] == "tanh" else 0.5) + config["drop"]


def _searcher(seed=0, **kw):
    from search_algs.tpe import TPESearch

    return TPESearch(space=MIXED.template, metric="loss", mode="min", seed=seed, **kw)


def _drive(searcher, n, start=0):
    configs = []
    for i in range(start, start + n):
        config = searcher.suggest(f"t{i}")
        searcher.on_trial_complete(f"t{i}", {"loss": _objective(config), "training_iteration": 1})
        configs.append(config)
    return configs


def test_startup_is_random_search_with_the_same_seed():
    from search_algs.random_search import RandomSearch

    rs = RandomSearch(space=MIXED.template, metric="loss", mode="min", seed=7)
    tpe_configs = _drive(_searcher(seed=7), 10)
    rs_configs = [rs.suggest(f"r{i}") for i in range(10)]
    assert tpe_configs == rs_configs


def test_same_seed_same_sequence():
    a, b, c = _drive(_searcher(3), 16), _drive(_searcher(3), 16), _drive(_searcher(4), 16)
    assert a == b and a[10:] != c[10:]


def test_same_sequence_in_another_process():
    code = (
        "import json, sys; sys.path.insert(0, sys.argv[1]); import tests.test_tpe as t; "
        "print(json.dumps(t._drive(t._searcher(5), 14)))"
    )
    out = subprocess.run([sys.executable, "-c", code, str(REPO)], capture_output=True, text=True,
                         timeout=60, cwd=REPO)
    assert out.returncode == 0, out.stderr[-2000:]
    here = json.loads(json.dumps(_drive(_searcher(5), 14)))
    assert json.loads(out.stdout.strip().splitlines()[-1]) == here


def test_save_restore_continues_the_same_sequence(tmp_path):
    first = _searcher(11)
    seq = _drive(first, 8)
    first.save(str(tmp_path / "tpe.pkl"))
    seq += _drive(first, 7, start=8)
    fresh = _searcher(999, n_startup=3)  # state (rng, history, options) comes from the file
    fresh.restore(str(tmp_path / "tpe.pkl"))
    assert _drive(fresh, 7, start=8) == seq[8:]


def test_pickled_searcher_continues_the_same_sequence():
    import pickle

    import cloudpickle

    a = _searcher(2)
    _drive(a, 12)
    for clone in (pickle.loads(pickle.dumps(a)), cloudpickle.loads(cloudpickle.dumps(a))):
        assert _drive(clone, 4, start=12) == _drive(pickle.loads(pickle.dumps(a)), 4, start=12)
    assert _drive(pickle.loads(pickle.dumps(a)), 4, start=12) == _drive(a, 4, start=12)


def test_adapter_encodes_each_observation_once_and_follows_history_changes():
    import pickle

    a, b = _searcher(2), _searcher(9)
    _drive(a, 14)
    _drive(b, 12)

    def fresh(s):
        return np.array([MIXED.encode_flat(obs.flat) for obs in s.history])

    np.testing.assert_array_equal(a._encoded_history(), fresh(a))
    first = a._encoded
    _drive(a, 3, start=14)
    assert a._encoded is first  # extended, not rebuilt
    np.testing.assert_array_equal(a._encoded_history(), fresh(a))
    a.set_state(b.get_state())  # another history (resume): rebuilt
    np.testing.assert_array_equal(a._encoded_history(), fresh(b))
    a.history[0] = type(a.history[0])(dict(b.history[5].flat), 1.0)  # replaced in place: rebuilt
    np.testing.assert_array_equal(a._encoded_history(), fresh(a))
    clone = pickle.loads(pickle.dumps(a))
    assert clone._encoded is None  # the cache does not travel; the sequence does (tests above)
    np.testing.assert_array_equal(clone._encoded_history(), fresh(a))


def test_suggestion_cost_at_1000_observations_in_10d():
    """Issue #4's target: <= 10 ms CPU per suggestion at n = 1000 in 10-D, through the adapter
    (the first suggestion after a warm start encodes the whole history once)."""
    from search_algs.tpe import TPESearch

    space = unit_space(10)
    rng = np.random.default_rng(0)
    searcher = TPESearch(space=space.template, metric="loss", mode="min", seed=0)
    for _ in range(1000):
        flat = space.sample_flat(rng)
        searcher.add_evaluated_point(space.to_config(flat), hartmann6(space.encode_flat(flat)[:6]))
    times = []
    for i in range(8):
        t = time.process_time()
        config = searcher.suggest(f"c{i}")
        times.append(time.process_time() - t)
        searcher.on_trial_complete(f"c{i}", {"loss": hartmann6(space.encode_flat(space.to_flat(config))[:6]),
                                             "training_iteration": 1})
    ms = 1000 * np.array(times)
    print(f"\nTPESearch: CPU ms per suggestion at n=1000, d=10: median {np.median(ms):.2f}, "
          f"first {ms[0]:.2f}, max {ms.max():.2f}")
    assert np.median(ms) < 10 and ms[0] < 20


def test_constant_liar_spreads_concurrent_suggestions():
    def spread(liar: bool, seed: int) -> float:
        s = _searcher(seed, constant_liar=liar)
        _drive(s, 20)
        points = np.array([MIXED.encode_flat(MIXED.to_flat(s.suggest(f"p{i}"))) for i in range(8)])
        assert len(s.pending) == 8
        d = np.sqrt(((points[:, None, :] - points[None, :, :]) ** 2).sum(-1))
        return float(d[np.triu_indices(8, 1)].mean())

    with_liar = np.array([spread(True, s) for s in range(10)])
    without = np.array([spread(False, s) for s in range(10)])
    print(f"\nmean pairwise unit distance of 8 concurrent suggestions over seeds 0-9: "
          f"liar {with_liar.mean():.3f}, no liar {without.mean():.3f}, "
          f"liar wider in {(with_liar > without).sum()}/10")
    assert with_liar.mean() > 1.2 * without.mean()
    assert (with_liar > without).sum() >= 7


def test_adapter_treats_failed_and_censored_trials():
    s = _searcher(0, n_startup=4)
    for i in range(6):
        config = s.suggest(f"t{i}")
        if i % 3 == 0:
            s.on_trial_complete(f"t{i}", {"loss": math.nan, "training_iteration": 9})
        elif i % 3 == 1:
            s.on_trial_complete(f"t{i}", error=True)
        else:
            s.on_trial_complete(f"t{i}", {"loss": 0.1, "training_iteration": 2})  # censored
    assert sum(o.failed for o in s.history) == 4 and all(o.censored for o in s.history if not o.failed)
    config = s.suggest("next")
    assert MIXED.to_flat(config)  # a valid point


def test_adapter_rejects_bad_arguments():
    with pytest.raises(ValueError, match="'n_startup'.*-1"):
        _searcher(n_startup=-1)
    with pytest.raises(ValueError, match="'n_ei_candidates'"):
        _searcher(n_ei_candidates=0)


def test_registry_knows_tpe():
    from orchestrator.registry import searcher_class
    from search_algs.tpe import TPESearch

    assert searcher_class("tpe") is TPESearch


# ---- one real Tune run ---------------------------------------------------------------------------


@pytest.mark.slow
def test_tune_run_completes_and_searcher_sees_every_trial(ray_local, tmp_path):
    from ray import tune
    from ray.tune.search import ConcurrencyLimiter

    from search_algs.tpe import TPESearch

    def trainable(config):
        for step in range(2):
            tune.report({"loss": (config["x"] - 0.3) ** 2 + (config["y"] == "b") + 0.1 * step})

    searcher = TPESearch(space={"x": Float(0.0, 1.0), "y": Categorical(["a", "b"])},
                         metric="loss", mode="min", seed=0, n_startup=5)
    tuner = tune.Tuner(
        trainable,
        tune_config=tune.TuneConfig(search_alg=ConcurrencyLimiter(searcher, max_concurrent=2),
                                    num_samples=12, reuse_actors=True),
        run_config=tune.RunConfig(storage_path=str(tmp_path), verbose=0),
    )
    results = tuner.fit()
    assert len(results) == 12 and not results.errors
    assert all(r.metrics["training_iteration"] == 2 for r in results)
    assert len(searcher.history) == 12 and not searcher.pending
    assert all(o.loss is not None and not o.censored for o in searcher.history)
    best = results.get_best_result(metric="loss", mode="min")
    assert best.metrics["loss"] == pytest.approx(min(o.loss for o in searcher.history))


# ---- bounded cost in long runs: max_set_points (issue #21) ---------------------------------------


def test_cap_set_keeps_every_member_up_to_the_cap():
    members = np.arange(0, 40, 2)
    rank = np.random.default_rng(0).permutation(40)
    w = recency_weights(len(members), 5)
    for cap in (None, 20, 100):
        keep, wk = cap_set(members, rank, w, cap)
        np.testing.assert_array_equal(keep, np.arange(20))
        np.testing.assert_array_equal(wk, w)


def test_cap_set_keeps_the_best_ranked_half_and_thins_the_rest_evenly():
    n = 1000
    rng = np.random.default_rng(1)
    rank = rng.permutation(n)
    members = np.sort(rng.choice(n, 700, replace=False))
    w = recency_weights(len(members), 25)
    keep, wk = cap_set(members, rank, w, 101)
    assert len(keep) == 101 and np.all(np.diff(keep) > 0)  # distinct, chronological
    best = np.argsort(rank[members], kind="stable")[:50]
    assert set(best) <= set(keep)  # the 50 best-ranked (nearest the split) are kept
    rest = np.setdiff1d(np.arange(700), best)
    thin = np.setdiff1d(keep, best)
    assert thin[0] == rest[0] and thin[-1] == rest[-1]  # the oldest and the newest of the rest
    gaps = np.diff(np.searchsorted(rest, thin))
    assert gaps.max() - gaps.min() <= 1  # evenly spaced in arrival order
    np.testing.assert_allclose(wk[np.isin(keep, best)], w[np.sort(best)])  # own weights
    np.testing.assert_allclose(wk[np.isin(keep, thin)].sum(), w[rest].sum())  # the rest keeps its weight
    again = cap_set(members, rank, w, 101)  # deterministic: no random draw
    np.testing.assert_array_equal(again[0], keep)
    np.testing.assert_array_equal(again[1], wk)


def _long_history(n: int, seed: int = 0, d: int = 3):
    rng = np.random.default_rng(seed)
    X = rng.random((n, d))
    losses = [float(np.sum((x - 0.3) ** 2)) for x in X]
    for i in rng.choice(n, n // 20, replace=False):
        losses[i] = None  # some failures, in the bad set
    return X, losses


def test_estimators_hold_at_most_the_cap_and_keep_the_best():
    space = unit_space(3)
    X, losses = _long_history(800)
    pending = np.random.default_rng(2).random((3, 3))
    core = TPE(space.dims(), TPEOptions(max_set_points=60))
    model = core.fit(X, losses, pending=pending)
    [(_, good, bad)] = model.groups
    assert len(model.bad) > 700 and len(model.bad_modelled) == 60
    assert bad.n_kernels == 60 + 3  # the cap, plus every pending point
    ranked, _ = rank_observations(losses)
    assert good.n_kernels == 25 and set(model.good_modelled) == set(ranked[:25])  # the best: all kept
    np.testing.assert_array_equal(model.good, model.good_modelled)
    assert set(ranked[25:25 + 30]) <= set(model.bad_modelled)  # nearest the split
    again = core.fit(X, losses, pending=pending)
    np.testing.assert_array_equal(again.bad_modelled, model.bad_modelled)
    np.testing.assert_array_equal(again.groups[0][2].centres, bad.centres)
    u1 = core.suggest(X, losses, np.random.default_rng(5), pending=pending)
    u2 = core.suggest(X, losses, np.random.default_rng(5), pending=pending)
    np.testing.assert_array_equal(u1, u2)  # same seed, same suggestion
    assert u1.shape == (3,) and np.all((u1 >= 0) & (u1 <= 1))


def test_nothing_changes_up_to_the_cap():
    space = unit_space(3)
    X, losses = _long_history(300, seed=3)
    for cap in (275, 400, None):  # bad set: 300 - 25 = 275 members
        capped = TPE(space.dims(), TPEOptions(max_set_points=cap))
        free = TPE(space.dims(), TPEOptions(max_set_points=None))
        np.testing.assert_array_equal(capped.suggest(X, losses, np.random.default_rng(7)),
                                      free.suggest(X, losses, np.random.default_rng(7)))
    small = TPE(space.dims(), TPEOptions(max_set_points=274))
    assert len(small.fit(X, losses).bad_modelled) == 274


def test_capped_suggestions_stay_valid_on_a_conditional_space():
    rng = np.random.default_rng(4)
    flats = [COND.sample_flat(rng) for _ in range(400)]
    X = np.array([COND.encode_flat(f) for f in flats])
    losses = [float(rng.random()) for _ in flats]
    core = TPE(COND.dims(), TPEOptions(max_set_points=16))
    for group, good, bad in core.fit(X, losses).groups:
        assert good.n_kernels <= 16 and bad.n_kernels <= 16
    for seed in range(5):
        u = core.suggest(X, losses, np.random.default_rng(seed))
        assert COND.to_flat(COND.to_config(COND.decode_unit(u))) == COND.decode_unit(u)


def test_adapter_takes_max_set_points():
    from search_algs.tpe import TPESearch

    s = TPESearch(space=unit_space(2).template, metric="loss", mode="min", seed=0, max_set_points=50)
    assert s.options.max_set_points == 50
    with pytest.raises(ValueError, match="'max_set_points'.*0"):
        TPESearch(space=unit_space(2).template, metric="loss", mode="min", seed=0, max_set_points=0)


def test_cost_command_passes_core_options_and_checks_regret_arguments(tmp_path, capsys):
    from benchmarks import cost

    assert cost.main(["--optimizers", "tpe", "--problem", "branin", "--sizes", "40", "--reps", "3",
                      "--core-options", '{"max_set_points": 8}', "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "steady p50" in out and "first ask" in out
    spec = cost._with_options(cost.runner.select_optimizers(["tpe"], False)[0], {"max_set_points": 8})
    assert spec.build(get_problem_space("branin"), 0).searcher.options.max_set_points == 8
    assert cost.main(["--regret", "10", "--optimizers", "tpe"]) == 2  # no --core-options to compare with
    assert all(math.isnan(v) for v in cost.percentiles([]))
    assert cost.percentiles([1.0, 2.0, 3.0]) == (2.0, pytest.approx(2.9))


def get_problem_space(name: str):
    from benchmarks.problems import get_problem

    return get_problem(name).space
