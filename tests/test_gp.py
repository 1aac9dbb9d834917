"""Tests of the GP-EI numerical core (no Ray): GP, LogEI, acquisition optimisation, the loop."""

from __future__ import annotations

import logging
import math
import time

import numpy as np
import pytest
import torch

from search_algs.core import gp as gp_module
from search_algs.core.acquisition import LogEI, LogNEI, incumbent, log_aei_factor, log_ei, log_h, naive_ei, resolve_noise
from search_algs.core.gp import GP, GPNumericalError, GPPrior, features, fit_map, model_targets, standardise
from search_algs.core.dims import Dim
from search_algs.core.gp_ei import GPEI, GPEIOptions
from search_algs.core.optimizer import canonical, optimize_acqf

try:  # single-threaded BLAS, as the adapter runs the core (see search_algs/gp_ei.py)
    from threadpoolctl import threadpool_limits
except ImportError:  # pragma: no cover
    threadpool_limits = None


@pytest.fixture(autouse=True)
def _one_thread():
    """One BLAS and one torch thread, as the adapter runs the core (small matrices on a busy
    machine: extra threads only wait for each other)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        if threadpool_limits is None:
            yield
        else:
            with threadpool_limits(limits=1, user_api="blas"):
                yield
    finally:
        torch.set_num_threads(before)


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


# ---- a naive reference GP (explicit inverse, Matern written in r) ------------------------------


def naive_features(U: np.ndarray, levels: np.ndarray) -> np.ndarray:
    Z = np.where(np.isnan(U), 0.5, U)
    for j, n in enumerate(levels):
        if n:
            Z[:, j] = np.where(np.isnan(U[:, j]), n, np.minimum(np.floor(np.nan_to_num(U[:, j]) * n), n - 1))
    return Z


def naive_kernel(A, B, levels, theta):
    ls, sf2 = np.exp(theta[:-2]), np.exp(theta[-2])
    ZA, ZB = naive_features(A, levels), naive_features(B, levels)
    s = np.zeros((len(A), len(B)))
    for j, n in enumerate(levels):
        d = ZA[:, j][:, None] - ZB[:, j][None, :]
        s += ((d != 0) if n else d**2) / ls[j] ** 2
    r = np.sqrt(5 * s)
    return sf2 * (1 + r + r**2 / 3) * np.exp(-r)


def naive_posterior(X, y, Xq, levels, theta):
    K = naive_kernel(X, X, levels, theta) + np.exp(theta[-1]) * np.eye(len(X))
    Kinv = np.linalg.inv(K)
    Kq = naive_kernel(Xq, X, levels, theta)
    mean = Kq @ Kinv @ y
    var = np.exp(theta[-2]) - np.einsum("ij,jk,ik->i", Kq, Kinv, Kq)
    return mean, var


# ---- LogEI ------------------------------------------------------------------------------------


def test_log_h_matches_high_precision_reference():
    mpmath = pytest.importorskip("mpmath")
    mpmath.mp.dps = 50
    zs = [-1e6, -1e4, -1e3, -250.0, -200.0, -199.0, -100.0, -40.0, -20.0, -5.0, -1.0 - 1e-9, -1.0,
          -0.999, 0.0, 0.5, 3.0, 40.0, 1e3]
    got = log_h(torch.tensor(zs, dtype=torch.float64)).numpy()
    for z, value in zip(zs, got):
        zm = mpmath.mpf(z)
        ref = float(mpmath.log(mpmath.npdf(zm) + zm * mpmath.ncdf(zm)))
        assert abs(value - ref) <= 1e-12 * max(1.0, abs(ref)), (z, value, ref)


def test_log_ei_equals_log_of_plain_ei_where_plain_is_finite():
    rng = np.random.default_rng(0)
    mean = torch.tensor(rng.normal(size=400))
    var = torch.tensor(rng.uniform(0.01, 4.0, size=400))
    z = torch.tensor(rng.uniform(-20, 20, size=400))
    tau = mean + z * var.sqrt()  # incumbents that put z where we want it
    plain = naive_ei(mean, var, tau)
    logged = log_ei(mean, var, tau)
    ok = plain > 1e-250
    assert ok.sum() > 350
    np.testing.assert_allclose(logged[ok].numpy(), torch.log(plain[ok]).numpy(), rtol=1e-9, atol=1e-9)
    # where the plain formula underflows, LogEI is still finite and below the smallest plain value
    far = log_ei(torch.tensor([0.0]), torch.tensor([1.0]), torch.tensor([-60.0]))
    assert naive_ei(torch.tensor([0.0]), torch.tensor([1.0]), torch.tensor([-60.0])).item() == 0.0
    assert torch.isfinite(far).all() and far.item() < -1700


def test_log_ei_is_finite_with_finite_gradients_far_below_the_incumbent():
    z = torch.cat([torch.linspace(-40.0, 40.0, 801, dtype=torch.float64),
                   torch.tensor([-1e3, -1e5, -1e8], dtype=torch.float64)])
    mean = (-z).clone().requires_grad_(True)  # tau = 0, sigma = 1: z = -mean
    var = torch.ones_like(z, requires_grad=True)
    value = log_ei(mean, var, 0.0)
    gm, gv = torch.autograd.grad(value.sum(), (mean, var))
    assert torch.isfinite(value).all() and torch.isfinite(gm).all() and torch.isfinite(gv).all()
    assert torch.all(gm < 0)  # a higher mean (worse loss) always lowers EI
    assert torch.all(torch.diff(value[:801]) > 0)  # monotone in z
    # the hand-made branches agree with their own finite differences
    pts = torch.tensor([-150.0, -37.3, -5.0, -1.0, -0.5, 2.0], dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(log_h, (pts,), eps=1e-6, atol=1e-5, rtol=1e-5)


def _noisy_model(seed: int = 0):
    rng = np.random.default_rng(seed)
    X = rng.random((25, 2))
    y = np.sin(6 * X[:, 0]) + X[:, 1] + 0.3 * rng.standard_normal(25)
    theta = np.log([0.3, 0.5, 1.0, 0.09])
    return X, y, theta


def test_noisy_ei_matches_monte_carlo_over_the_posterior():
    X, y, theta = _noisy_model()
    levels = np.zeros(2, dtype=int)
    model = GP(X, y, theta, levels)
    assert resolve_noise("auto", model) and not resolve_noise("none", model) and resolve_noise("noisy", model)
    tau = incumbent(model, noisy=True)
    ref_mean_at_X, _ = naive_posterior(X, y, X, levels, theta)
    assert tau == pytest.approx(ref_mean_at_X.min(), abs=1e-9)  # best posterior mean, not best y
    assert tau > y.min()

    Xq = np.random.default_rng(1).random((6, 2))
    acq = LogEI(model, tau).numpy(Xq)
    mean, var = naive_posterior(X, y, Xq, levels, theta)
    f = mean + np.sqrt(var) * np.random.default_rng(2).standard_normal((200_000, 6))
    improvement = np.maximum(tau - f, 0.0)
    mc, se = improvement.mean(0), improvement.std(0) / math.sqrt(len(f))
    assert np.all(np.abs(np.exp(acq) - mc) <= 4 * se + 1e-6), (np.exp(acq), mc, se)


def test_nei_matches_monte_carlo_over_the_joint_posterior():
    """NEI (Letham et al. 2019) = E[max(min_i f(x_i) - f(x), 0)] under the JOINT posterior of
    the evaluated points and the query: checked against plain Monte Carlo of that joint."""
    X, y, theta = _noisy_model()
    levels = np.zeros(2, dtype=int)
    model = GP(X, y, theta, levels)
    nei = LogNEI(model, np.random.default_rng(0), max_points=len(y), n_samples=4096)
    Xq = np.vstack([np.random.default_rng(1).random((5, 2)), X[np.argmin(y)] + 0.02])
    value = np.exp(nei.numpy(Xq))
    rng = np.random.default_rng(2)
    for q, got in zip(Xq, value):
        both = np.vstack([X, q])
        mean, _ = naive_posterior(X, y, both, levels, theta)
        K = naive_kernel(both, both, levels, theta)
        Kx = naive_kernel(both, X, levels, theta)
        C = naive_kernel(X, X, levels, theta) + np.exp(theta[-1]) * np.eye(len(X))
        cov = K - Kx @ np.linalg.solve(C, Kx.T)
        f = rng.multivariate_normal(mean, cov, size=200_000, method="eigh")
        improvement = np.maximum(f[:, :-1].min(1) - f[:, -1], 0.0)
        mc, se = improvement.mean(), improvement.std() / math.sqrt(len(f))
        assert abs(got - mc) <= 4 * se + 0.01 * mc + 1e-7, (got, mc, se)


def test_nei_gains_nothing_by_re_evaluating_an_evaluated_point():
    """The plug-in noisy EI values the best-sampled point at ~0.4 sigma there (why the search kept
    re-sampling one region of noisy Hartmann6); NEI knows f there is one of the draws' own
    values, so the improvement is ~0, while a nearby new point keeps a real value."""
    rng = np.random.default_rng(0)
    X = rng.random((20, 2))
    best = np.array([0.3, 0.3])
    X = np.vstack([X, np.repeat(best[None], 5, axis=0)])
    y = np.sum((X - 0.3) ** 2, axis=1) + 0.1 * rng.standard_normal(len(X))
    model = GP(X, y, np.log([0.3, 0.3, 1.0, 0.01]), np.zeros(2, dtype=int))
    nei = LogNEI(model, np.random.default_rng(1))
    plugin = LogEI(model, incumbent(model, noisy=True))
    at, near = best[None], np.array([[0.36, 0.24]])
    assert nei.numpy(at)[0] < plugin.numpy(at)[0] - 5.0
    assert nei.numpy(near)[0] > nei.numpy(at)[0] + 5.0
    U = torch.tensor(np.vstack([near, at]), dtype=torch.float64, requires_grad=True)
    (grad,) = torch.autograd.grad(nei(U).sum(), U)
    assert torch.isfinite(grad).all()


def test_nei_reduces_to_ei_when_the_noise_vanishes():
    X, y, theta = _noisy_model()
    theta = theta.copy()
    theta[-1] = math.log(1e-6)  # (nearly) noiseless: every draw's incumbent is min y
    model = GP(X, y, theta, np.zeros(2, dtype=int))
    Xq = np.random.default_rng(3).random((8, 2))
    nei = LogNEI(model, np.random.default_rng(0), max_points=len(y)).numpy(Xq)
    ei = LogEI(model, float(model.y.min())).numpy(Xq)
    np.testing.assert_allclose(np.exp(nei), np.exp(ei), rtol=0.02, atol=1e-6)


def test_aei_factor_matches_its_plain_form_and_stays_finite_where_that_cancels():
    noise_var = 0.04
    var = torch.tensor([1e-12, 1e-9, 1e-6, 1e-3, 0.04, 1.0, 100.0], dtype=torch.float64, requires_grad=True)
    value = log_aei_factor(var, noise_var)
    plain = np.log(1.0 - math.sqrt(noise_var) / np.sqrt(var.detach().numpy() + noise_var))
    ok = var.detach().numpy() >= 1e-6  # below, 1 - s_n / r cancels in float64
    np.testing.assert_allclose(value.detach().numpy()[ok], plain[ok], rtol=1e-9)
    # the small-variance limit: 1 - s_n / r ~ var / (2 s2_n)
    np.testing.assert_allclose(value.detach().numpy()[:2], np.log(var.detach().numpy()[:2] / (2 * noise_var)),
                               rtol=1e-6)
    (grad,) = torch.autograd.grad(value.sum(), var)
    assert torch.isfinite(value).all() and torch.isfinite(grad).all() and (value < 0).all()


def test_augmented_ei_stops_resampling_a_point_the_noise_already_pins_down():
    """AEI (Huang et al. 2006): EI at a point observed many times stays positive under noise
    (the latent mean is never known exactly); AEI's factor takes that point out."""
    rng = np.random.default_rng(0)
    X = rng.random((20, 2))
    best = np.array([0.3, 0.3])
    X = np.vstack([X, np.repeat(best[None], 15, axis=0)])
    y = np.sum((X - 0.3) ** 2, axis=1) + 0.1 * rng.standard_normal(len(X))
    theta = np.log([0.3, 0.3, 1.0, 0.01])
    model = GP(X, y, theta, np.zeros(2, dtype=int))
    tau = incumbent(model, noisy=True)
    mean, var = (t.detach().numpy() for t in model.posterior(model.U))
    # the effective best (Huang et al.): least mu + sigma; here the well-sampled point
    tau_aei = incumbent(model, noisy=True, sigma_weight=1.0)
    assert tau_aei == pytest.approx(mean[int(np.argmin(mean + np.sqrt(var)))], abs=1e-12)
    assert tau_aei >= tau
    far = np.array([[0.45, 0.15]])  # unexplored, near the optimum region
    at = best[None]
    plain, aug = LogEI(model, tau), LogEI(model, tau, augmented=True)
    assert plain.numpy(at)[0] > -20  # plain noisy EI still wants the well-sampled point
    gap_plain = plain.numpy(far)[0] - plain.numpy(at)[0]
    gap_aug = aug.numpy(far)[0] - aug.numpy(at)[0]
    assert gap_aug > gap_plain + 1.0  # AEI prefers new information by far more than EI does
    np.testing.assert_allclose(aug.numpy(far) - plain.numpy(far),
                               log_aei_factor(model.posterior(torch.as_tensor(far))[1], model.noise_var)
                               .detach().numpy(), rtol=1e-12)


# ---- the GP -----------------------------------------------------------------------------------


def _mixed_data(seed: int = 0, n: int = 30):
    """A conditional mixed space: x0 continuous, x1 categorical (3), x2 numeric active iff x1 == 1,
    x3 categorical (2) active iff x1 == 2."""
    rng = np.random.default_rng(seed)
    levels = np.array([0, 3, 0, 2])
    U = rng.random((n, 4))
    U[:, 1] = (np.floor(U[:, 1] * 3) + 0.5) / 3
    U[:, 3] = (np.floor(U[:, 3] * 2) + 0.5) / 2
    choice = np.floor(U[:, 1] * 3)
    U[choice != 1, 2] = np.nan
    U[choice != 2, 3] = np.nan
    y = np.sin(5 * U[:, 0]) + choice + np.nan_to_num(U[:, 2]) + 0.1 * rng.standard_normal(n)
    return U, y, levels


def test_posterior_matches_naive_reference_on_a_mixed_conditional_space():
    U, y, levels = _mixed_data()
    theta = np.log([0.4, 0.7, 0.3, 1.5, 1.3, 0.01])
    model = GP(U, y, theta, levels)
    Uq, _, _ = _mixed_data(seed=1, n=15)
    mean, var = model.posterior(torch.as_tensor(Uq))
    ref_mean, ref_var = naive_posterior(U, y, Uq, levels, theta)
    np.testing.assert_allclose(mean.numpy(), ref_mean, rtol=1e-8, atol=1e-9)
    np.testing.assert_allclose(var.numpy(), ref_var, rtol=1e-6, atol=1e-9)
    # chunked evaluation gives the same numbers
    mean2, var2 = model.posterior(torch.as_tensor(Uq), chunk=4)
    np.testing.assert_allclose(mean2.numpy(), mean.numpy(), rtol=1e-12)
    # conditioning on fantasies equals a model built on everything at once
    cond = model.condition(Uq[:3], np.array([0.1, -0.2, 0.3]))
    joint = GP(np.concatenate([U, Uq[:3]]), np.concatenate([y, [0.1, -0.2, 0.3]]), theta, levels)
    np.testing.assert_allclose(cond.posterior(torch.as_tensor(Uq))[0].numpy(),
                               joint.posterior(torch.as_tensor(Uq))[0].numpy(), rtol=1e-10)


def test_categoricals_are_hamming_not_ordinal_and_inactive_coordinates_are_imputed():
    levels = torch.tensor([4, 0])
    theta = torch.log(torch.tensor([0.7, 0.5, 1.0, 1e-6], dtype=torch.float64))
    model = GP(np.array([[0.125, 0.5]]), np.array([0.0]), theta, levels)
    choices = torch.tensor([[0.125, 0.3], [0.375, 0.3], [0.625, 0.3], [0.875, 0.3]], dtype=torch.float64)
    k = model.kernel(choices[:1], choices)[0]
    assert k[1] == k[2] == k[3] < k[0]  # choice 0 is as far from 1 as from 3
    # inactive: numeric -> 0.5, categorical -> its own extra level
    Z = features(torch.tensor([[float("nan"), float("nan")]], dtype=torch.float64), levels)
    assert Z.tolist() == [[4.0, 0.5]]
    both_inactive = torch.tensor([[float("nan"), 0.2], [float("nan"), 0.2]], dtype=torch.float64)
    assert model.kernel(both_inactive[:1], both_inactive[1:]).item() == pytest.approx(1.0)


def test_gradients_are_finite_at_observed_points():
    rng = np.random.default_rng(0)
    X = rng.random((8, 3))
    model = GP(X, rng.standard_normal(8), np.log([0.3, 0.3, 0.3, 1.0, 1e-6]), np.zeros(3, dtype=int))
    x = torch.tensor(X[:2], requires_grad=True)  # zero distance to training points
    acq = LogEI(model, float(model.y.min()))
    (grad,) = torch.autograd.grad(acq(x).sum(), x)
    assert torch.isfinite(grad).all()


def test_cholesky_grows_jitter_for_duplicated_points():
    X = np.tile([[0.3, 0.7]], (30, 1))
    X[::2] += 1e-9
    y = np.linspace(-1, 1, 30)
    model = GP(X, y, np.log([50.0, 50.0, 1.0, 1e-6]), np.zeros(2, dtype=int))
    mean, var = model.posterior(torch.rand(5, 2, dtype=torch.float64))
    assert torch.isfinite(mean).all() and torch.all(var > 0)
    with pytest.raises(GPNumericalError):
        gp_module.cholesky_jittered(torch.full((3, 3), float("nan"), dtype=torch.float64))


def test_fit_detects_noise_and_its_absence():
    rng = np.random.default_rng(0)
    X = rng.random((40, 2))
    clean = np.sin(4 * X[:, 0]) * np.cos(3 * X[:, 1])
    prior = GPPrior()
    levels = np.zeros(2, dtype=int)
    for values, noisy in ((clean, False), (clean + 0.2 * rng.standard_normal(40), True)):
        y, _, _ = standardise(values)
        result = fit_map(X, y, levels, prior, [prior.default_theta(2), prior.short_theta(2)])
        assert result.ok and np.all(np.isfinite(result.theta))
        model = GP(X, y, result.theta, levels)
        assert resolve_noise("auto", model) is noisy, model.noise_ratio()
    # the MAP beats its starting point
    start = prior.default_theta(2)
    obj = gp_module.neg_log_posterior
    sqd = gp_module.squared_differences(torch.as_tensor(X), torch.as_tensor(X), torch.zeros(2, dtype=torch.long))
    at_start = obj(torch.as_tensor(start), sqd, torch.as_tensor(y), prior.log_density_fn(2)).item()
    assert result.value < at_start


def test_fit_failure_falls_back_to_previous_hyperparameters_loudly(monkeypatch, caplog):
    def broken(*args, **kwargs):
        raise GPNumericalError("simulated breakdown")

    monkeypatch.setattr(gp_module, "neg_log_posterior", broken)
    prior = GPPrior()
    previous = np.log([0.2, 0.3, 1.0, 1e-4])
    rng = np.random.default_rng(0)
    X, y = rng.random((10, 2)), rng.standard_normal(10)
    with caplog.at_level(logging.WARNING, logger="search_algs.core.gp"):
        result = fit_map(X, y, np.zeros(2, dtype=int), prior, [previous, prior.default_theta(2)], fallback=previous)
    assert not result.ok and np.array_equal(result.theta, previous)
    assert "failed from all 2 start(s)" in caplog.text and "previous" in caplog.text
    # the loop keeps going on the fallback
    core = GPEI([Dim("continuous")] * 2)
    core.theta, core.n_at_fit = previous, 0
    s = core.suggest(X, list(y), rng)
    assert s is not None and not s.fit_ok and np.all(np.isfinite(s.u))


def test_gp_rejects_non_finite_targets():
    with pytest.raises(ValueError, match="finite"):
        GP(np.zeros((2, 1)), np.array([0.0, np.nan]), np.zeros(3), np.zeros(1, dtype=int))


# ---- acquisition optimisation -----------------------------------------------------------------


def _conditional_dims():
    grid = (np.arange(21) + 0.5) / 21  # Int(0, 20)
    return [Dim("continuous"), Dim("categorical", n_choices=3), Dim("discrete", grid=grid, condition=((1, 1),)),
            Dim("categorical", n_choices=2, condition=((1, 2),))]


def test_canonical_snaps_and_marks_inactive():
    dims = _conditional_dims()
    U = np.array([[1.3, 0.5, 0.49, 0.9], [-0.1, 0.9, 0.12, 0.2], [0.5, 0.1, np.nan, np.nan]])
    out = canonical(U, dims, np.random.default_rng(0))
    assert out[0, 0] == 1.0 and out[1, 0] == 0.0
    assert out[0, 1] == pytest.approx(1.5 / 3) and out[0, 2] == pytest.approx(10.5 / 21) and np.isnan(out[0, 3])
    assert out[1, 1] == pytest.approx(2.5 / 3) and np.isnan(out[1, 2]) and out[1, 3] == 0.25
    assert np.isnan(out[2, 2]) and np.isnan(out[2, 3])


class _Peak:
    """A fake acquisition peaked at x0 = 0.3, choice 1, grid point 7 (log-space values)."""

    def __call__(self, U: torch.Tensor) -> torch.Tensor:
        x0 = U[:, 0]
        choice = torch.floor(torch.nan_to_num(U[:, 1]) * 3)
        g = torch.nan_to_num(U[:, 2], nan=0.0) * 21 - 0.5
        return -((x0 - 0.3) ** 2) * 10 - (choice != 1) * 3.0 - torch.where(choice == 1, (g - 7.2) ** 2, 0.0)

    def numpy(self, U: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            return self(torch.as_tensor(U, dtype=torch.float64)).numpy()


def test_optimizer_finds_the_mixed_optimum_on_the_grid():
    dims = _conditional_dims()
    u, value = optimize_acqf(_Peak(), dims, np.random.default_rng(0))
    assert u[0] == pytest.approx(0.3, abs=1e-4)
    assert u[1] == pytest.approx(1.5 / 3) and u[2] == pytest.approx(7.5 / 21) and np.isnan(u[3])
    # excluded points are skipped
    u2, _ = optimize_acqf(_Peak(), dims, np.random.default_rng(0), exclude=u[None])
    assert not np.array_equal(np.nan_to_num(u2), np.nan_to_num(u))


# ---- the loop ---------------------------------------------------------------------------------


def _run(f, d: int, seed: int, budget: int, n_startup: int, model: bool) -> float:
    core = GPEI([Dim("continuous")] * d)
    rng = np.random.default_rng(seed)
    X, losses = [], []
    for i in range(budget):
        if model and i >= n_startup:
            u = core.suggest(np.array(X), losses, rng).u
        else:
            u = rng.random(d)
        X.append(u)
        losses.append(f(u))
    return min(losses)


def test_sanity_gp_ei_clearly_beats_random_on_branin_and_hartmann6():
    t0 = time.time()
    seeds = (0, 1, 2)
    rows = []
    for name, f, d, budget, n_startup in (("branin", branin, 2, 30, 5), ("hartmann6", hartmann6, 6, 40, 10)):
        gp = [_run(f, d, s, budget, n_startup, True) for s in seeds]
        rand = [_run(f, d, s, budget, n_startup, False) for s in seeds]
        rows.append((name, budget, float(np.median(gp)), float(np.median(rand)), gp, rand))
    for name, budget, g, r, gp, rand in rows:
        print(f"{name}: {budget} evaluations, seeds {seeds}: median best regret GP-EI {g:.3g} "
              f"({', '.join(f'{v:.2g}' for v in gp)}) vs random {r:.3g} ({', '.join(f'{v:.2g}' for v in rand)})")
    print(f"sanity run took {time.time() - t0:.1f} s")
    (_, _, g_b, r_b, _, _), (_, _, g_h, r_h, _, _) = rows
    assert g_b < 0.05 and g_b < 0.05 * r_b
    assert g_h < 0.3 and g_h < 0.25 * r_h


def test_pending_points_make_concurrent_suggestions_distinct_and_spread():
    rng = np.random.default_rng(0)
    X = rng.random((12, 2))
    losses = [branin(x) for x in X]
    core = GPEI([Dim("continuous")] * 2)
    pending: list[np.ndarray] = []
    for _ in range(4):  # four trials start running
        pending.append(core.suggest(X, losses, rng, pending=np.array(pending).reshape(-1, 2)).u)
    new = []
    for _ in range(4):  # four more suggestions while they run
        new.append(core.suggest(X, losses, rng, pending=np.array(pending + new)).u)
    points = np.array(pending + new)
    dist = np.linalg.norm(points[:, None] - points[None], axis=-1) + np.eye(8)
    print("min distance between the 8 concurrent suggestions:", dist.min())
    assert dist.min() > 0.02
    # without the pending points the core would have repeated the same suggestion
    again = core.suggest(X, losses, np.random.default_rng(5)).u
    assert np.linalg.norm(again - pending[0]) < 0.02


def test_failed_points_lower_ei_and_are_not_proposed_again():
    rng = np.random.default_rng(0)
    X = rng.random((12, 2))
    losses = [branin(x) for x in X]
    core = GPEI([Dim("continuous")] * 2)
    first = core.suggest(X, losses, np.random.default_rng(1)).u
    X2, losses2 = np.vstack([X, first]), losses + [None]  # it failed
    second = core.suggest(X2, losses2, np.random.default_rng(1)).u
    assert np.linalg.norm(second - first) > 0.02
    # fewer than two usable losses: no model, the caller draws at random
    assert core.suggest(X[:3], [None, None, 1.0], rng) is None


def test_discrete_space_never_repeats_an_observed_point():
    grid = (np.arange(4) + 0.5) / 4
    dims = [Dim("discrete", grid=grid), Dim("categorical", n_choices=3)]
    core = GPEI(dims)
    rng = np.random.default_rng(0)
    X = canonical(rng.random((3, 2)), dims, rng)
    losses = [float(np.sum(x)) for x in X]
    for _ in range(9):  # 12 points in all: the whole space
        u = core.suggest(X, losses, rng).u
        assert not any(np.allclose(u, x) for x in X)
        X = np.vstack([X, u])
        losses.append(float(np.sum(u)))
    assert len({tuple(x) for x in X}) == 12


def test_core_is_deterministic_and_state_round_trips():
    rng_a, rng_b = np.random.default_rng(3), np.random.default_rng(3)
    X = np.random.default_rng(0).random((15, 3))
    losses = [float(np.sum((x - 0.4) ** 2)) for x in X]
    a, b = GPEI([Dim("continuous")] * 3), GPEI([Dim("continuous")] * 3)
    ua = a.suggest(X, losses, rng_a).u
    ub = b.suggest(X, losses, rng_b).u
    assert np.array_equal(ua, ub)
    c = GPEI([Dim("continuous")] * 3, GPEIOptions.from_dict(a.options.as_dict()))
    c.load_state(a.state())
    rng_c = np.random.default_rng()
    rng_c.bit_generator.state = rng_a.bit_generator.state
    X2, losses2 = np.vstack([X, ua]), losses + [0.5]
    assert np.array_equal(a.suggest(X2, losses2, rng_a).u, c.suggest(X2, losses2, rng_c).u)


def test_recommend_uses_posterior_mean_when_noisy():
    rng = np.random.default_rng(0)
    X = rng.random((30, 2))
    y = 2.0 * np.sum((X - 0.3) ** 2, axis=1) + 0.2 * rng.standard_normal(30)
    lucky = np.array([[0.9, 0.9]])  # far from the optimum (f = 1.44), one lucky draw among 4 typical ones
    X = np.vstack([X, lucky, lucky + 0.005, lucky - 0.005, lucky + [0.005, -0.005], lucky + [-0.005, 0.005]])
    y = np.concatenate([y, [y.min() - 0.3, 1.5, 1.3, 1.45, 1.4]])
    core = GPEI([Dim("continuous")] * 2, GPEIOptions(noise="noisy"))
    i = core.recommend(X, list(y))
    assert core.theta is None  # recommending leaves the suggestion state alone
    model, _, _ = core.fit(X, standardise(y)[0])
    mean = model.posterior(model.U)[0].detach().numpy()
    assert i == int(np.argmin(mean)) and int(np.argmin(y)) == 30 and i != 30
    assert np.linalg.norm(X[i] - 0.3) < 0.3
    assert GPEI([Dim("continuous")] * 2, GPEIOptions(noise="none")).recommend(X, list(y)) == 30
    with pytest.raises(ValueError, match="noise"):
        GPEIOptions(noise="loud").validate()


def test_model_subset_caps_the_model_and_keeps_the_best_half():
    rng = np.random.default_rng(0)
    X = rng.random((60, 2))
    losses = [branin(x) for x in X]
    loss, ok = np.array(losses), np.ones(60, dtype=bool)
    ok[7] = False  # a failure is never in the subset
    capped = GPEI([Dim("continuous")] * 2, GPEIOptions(max_model_points=20))
    mask = capped.model_subset(loss, ok)
    assert mask.sum() == 20 and not mask[7]
    best10 = np.argsort(np.where(ok, loss, np.inf))[:10]
    assert mask[best10].all() and mask[0] and mask[59]  # the best half, then evenly thinned (ends kept)
    assert np.array_equal(mask, capped.model_subset(loss, ok))  # deterministic, no random draws
    assert np.array_equal(GPEI([Dim("continuous")] * 2).model_subset(loss, ok), ok)  # no cap: every usable one
    s = capped.suggest(X, [None if i == 7 else v for i, v in enumerate(losses)], rng)
    assert s.info["n_model"] == 20 + 1  # the subset, plus the failure as a fantasy
    assert capped.n_at_fit == 59  # the refit schedule counts every usable observation
    assert s.info["tau"] == pytest.approx(model_targets(loss[mask]).min())  # the best loss is modelled
    i = capped.recommend(X, losses)
    assert mask[i] or i == int(np.argmin(loss))
    for bad in (2, 3.5, True):
        with pytest.raises(ValueError, match="max_model_points"):
            GPEIOptions(max_model_points=bad).validate()


def test_half_rank_warp_keeps_the_better_half_and_order_and_tames_outliers():
    from search_algs.core.gp import half_rank_warp, model_targets

    rng = np.random.default_rng(0)
    v = np.concatenate([rng.normal(size=20), [1e6, 4e7, 4e7]])
    w = half_rank_warp(v)
    m = np.median(v)
    assert np.array_equal(w[v <= m], v[v <= m])  # the better half untouched
    assert np.all(np.diff(w[np.argsort(v, kind="stable")]) >= 0)  # order kept
    assert w[-1] == w[-2] and w.max() < m + 4 * np.sqrt(np.mean((v[v <= m] - m) ** 2))  # ties, tails tamed
    y = model_targets(v, "half_rank")
    assert abs(y.mean()) < 1e-12 and abs(y.std() - 1) < 1e-12
    assert np.sum(y[:20] ** 2) > 0.5 * np.sum(y ** 2)  # the outliers no longer hold the variance
    np.testing.assert_allclose(model_targets(v), standardise(v)[0])  # "none": plain standardisation
    assert np.array_equal(half_rank_warp([3.0, 1.0]), [3.0, 1.0])  # too few to warp
    with pytest.raises(ValueError, match="'warp' must be one of"):
        model_targets(v, "log")


def test_output_warp_option_is_validated():
    with pytest.raises(ValueError, match="'output_warp' must be one of"):
        GPEIOptions(output_warp="rank").validate()


def test_pending_ei_matches_monte_carlo_over_the_joint_posterior_and_has_finite_gradients():
    from search_algs.core.acquisition import LogEIPending

    rng = np.random.default_rng(3)
    X = rng.random((12, 2))
    y = standardise(np.sin(6 * X[:, 0]) + X[:, 1] ** 2)[0]
    gp = GP(X, y, np.array([np.log(0.3), np.log(0.3), 0.0, np.log(1e-4)]), np.zeros(2, dtype=np.int64))
    P = rng.random((3, 2))
    tau = float(y.min())
    acqf = LogEIPending(gp, tau, P, np.random.default_rng(0), n_draws=4096)
    Q = rng.random((4, 2))
    got = np.exp(acqf.numpy(Q))
    # brute force: joint draws of (f_P, f_x), improvement of x over min(tau, min f_P)
    both = torch.as_tensor(np.concatenate([P, Q]))
    with torch.no_grad():
        mean, _ = gp.posterior(both)
        K = gp.kernel(both, both)
        V = torch.linalg.solve_triangular(gp.L, gp.kernel(gp.U, both), upper=False)
        cov = (K - V.T @ V).numpy()
    draws = np.random.default_rng(1).multivariate_normal(mean.numpy(), cov + 1e-10 * np.eye(7), size=200_000)
    base = np.minimum(tau, draws[:, :3].min(axis=1))
    want = np.maximum(base[:, None] - draws[:, 3:], 0.0).mean(axis=0)
    np.testing.assert_allclose(got, want, rtol=0.05, atol=1e-4)
    # at a running point nothing is left to gain beyond what the running trial itself brings
    assert np.exp(acqf.numpy(P[:1])[0]) < 1e-3
    U = torch.tensor(Q, requires_grad=True)
    (grad,) = torch.autograd.grad(acqf(U).sum(), U)
    assert torch.isfinite(grad).all()


def test_pending_rule_is_an_option_and_believer_keeps_the_old_path():
    with pytest.raises(ValueError, match="'pending' must be one of"):
        GPEIOptions(pending="liar").validate()
    rng = np.random.default_rng(0)
    X = rng.random((10, 2))
    y = list((X ** 2).sum(1))
    for rule in ("fantasies", "believer"):
        core = GPEI([Dim("continuous")] * 2, GPEIOptions(pending=rule))
        s = core.suggest(X, y, np.random.default_rng(1), pending=X[:1] * 0.5)
        assert s is not None and np.all(np.isfinite(s.u))


# ---- bounded cost at any history size: max_fit_points (issue #21) --------------------------------


def test_thin_subset_rule():
    from search_algs.core.gp_ei import thin_subset

    rng = np.random.default_rng(3)
    values = rng.random(500)
    ok = np.ones(500, dtype=bool)
    ok[[4, 400]] = False
    np.testing.assert_array_equal(thin_subset(values, ok, None), ok)
    np.testing.assert_array_equal(thin_subset(values, ok, 498), ok)
    mask = thin_subset(values, ok, 101)
    assert mask.sum() == 101 and not mask[4] and not mask[400]
    best = np.argsort(np.where(ok, values, np.inf))[:50]
    assert mask[best].all()  # the best half is always kept
    rest = np.setdiff1d(np.flatnonzero(ok), best)
    thin = np.flatnonzero(mask & ~np.isin(np.arange(500), best))
    assert thin[0] == rest[0] and thin[-1] == rest[-1]  # the oldest and the newest of the rest
    gaps = np.diff(np.searchsorted(rest, thin))
    assert gaps.max() - gaps.min() <= 1  # evenly spaced in arrival order
    np.testing.assert_array_equal(mask, thin_subset(values, ok, 101))  # deterministic


def test_hyperparameters_are_fitted_on_at_most_max_fit_points(monkeypatch):
    rng = np.random.default_rng(0)
    X = rng.random((150, 2))
    losses = [branin(x) for x in X]
    seen = []
    real_fit = gp_module.fit_map

    def spy(U, y, *args, **kwargs):
        seen.append((np.array(U), np.array(y)))
        return real_fit(U, y, *args, **kwargs)

    import search_algs.core.gp_ei as gp_ei_module

    monkeypatch.setattr(gp_ei_module, "fit_map", spy)
    core = GPEI([Dim("continuous")] * 2, GPEIOptions(max_fit_points=40))
    s = core.suggest(X, losses, np.random.default_rng(1))
    assert len(seen) == 1 and seen[0][0].shape == (40, 2)  # the fit saw the subset
    assert s.info["n_model"] == 150  # the GP is conditioned on every modelled point
    y = model_targets(np.array(losses))
    assert np.isin(np.sort(y)[:20], seen[0][1]).all()  # the best half is in the fit
    assert np.all((s.u >= 0) & (s.u <= 1))
    # deterministic: the same fit subset and the same suggestion for the same seed
    again = GPEI([Dim("continuous")] * 2, GPEIOptions(max_fit_points=40))
    s2 = again.suggest(X, losses, np.random.default_rng(1))
    np.testing.assert_array_equal(seen[1][0], seen[0][0])
    np.testing.assert_array_equal(s.u, s2.u)


def test_nothing_changes_up_to_max_fit_points():
    rng = np.random.default_rng(2)
    X = rng.random((40, 2))
    losses = [branin(x) for x in X]
    a = GPEI([Dim("continuous")] * 2, GPEIOptions(max_fit_points=40)).suggest(X, losses, np.random.default_rng(3))
    b = GPEI([Dim("continuous")] * 2, GPEIOptions(max_fit_points=None)).suggest(X, losses, np.random.default_rng(3))
    np.testing.assert_array_equal(a.u, b.u)
    assert a.log_ei == b.log_ei


@pytest.mark.parametrize("bad", [3, 2.5, True, "300"])
def test_max_fit_points_is_validated_with_the_value_and_the_fix(bad):
    with pytest.raises(ValueError) as err:
        GPEIOptions(max_fit_points=bad).validate()
    msg = str(err.value)
    assert "GP-EI" in msg and "'max_fit_points'" in msg and repr(bad) in msg and "None" in msg


def test_squared_differences_fast_path_matches_the_general_form():
    rng = np.random.default_rng(4)
    A = torch.as_tensor(rng.random((30, 4)), dtype=torch.float64)
    B = torch.as_tensor(rng.random((20, 4)), dtype=torch.float64)
    numeric = torch.zeros(4, dtype=torch.long)
    fast = gp_module.squared_differences(A, B, numeric)
    diff = A.unsqueeze(-2) - B.unsqueeze(-3)
    general = torch.where(numeric > 0, (diff != 0).to(torch.float64), diff * diff)
    assert torch.equal(fast, general)  # bit for bit
    mixed = torch.tensor([0, 3, 0, 0])
    Z = gp_module.features(torch.cat([A, B]), mixed)
    sq = gp_module.squared_differences(Z[:30], Z[30:], mixed)
    d = Z[:30].unsqueeze(-2) - Z[30:].unsqueeze(-3)
    assert torch.equal(sq[..., 1], (d[..., 1] != 0).to(torch.float64))
    assert torch.equal(sq[..., 0], d[..., 0] ** 2)
