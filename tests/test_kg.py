"""Tests of the knowledge-gradient searcher: the envelope formula against quadrature and Monte
Carlo, degenerate cases, gradients against finite differences and the envelope theorem, the KG
of a GP against fantasy updates, the suggestion step, the Tune adapter, one real Tune run and a
sanity run on noisy Hartmann6."""

from __future__ import annotations

import math
import pickle
import time
from dataclasses import replace

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import integrate

from search_algs.core.gp import GP
from search_algs.core.kg import (
    KGOptions,
    KnowledgeGradient,
    LogKG,
    envelope_gain,
    envelope_pairs,
    log_envelope_gain,
)
from search_algs.core.dims import Dim
from search_algs.core.optimizer import OptimizeOptions
from search_algs.kg import KGSearch
from search_algs.random_search import RandomSearch
from search_algs.space import Categorical, Float, Int, Space

try:  # single-threaded BLAS, as the adapter runs the core
    from threadpoolctl import threadpool_limits
except ImportError:  # pragma: no cover
    threadpool_limits = None


@pytest.fixture(autouse=True)
def _one_thread():
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


# ---- references for h(a, b) = E[max_i a_i + b_i Z] - max_i a_i -------------------------------------


def quadrature_gain(a: np.ndarray, b: np.ndarray) -> float:
    """``h`` by adaptive quadrature between every pairwise crossing (O(k^2) breakpoints)."""
    a, b = np.asarray(a, float), np.asarray(b, float)

    def integrand(z):
        return np.max(a + b * z) * math.exp(-0.5 * z * z) / math.sqrt(2 * math.pi)

    cuts = {(a[i] - a[j]) / (b[j] - b[i]) for i in range(len(a)) for j in range(len(a)) if b[j] != b[i]}
    pts = [-14.0] + sorted(z for z in cuts if abs(z) < 14) + [14.0]
    total = sum(integrate.quad(integrand, lo, hi, epsabs=1e-14, epsrel=1e-12)[0] for lo, hi in zip(pts, pts[1:]))
    return total - float(a.max())


def monte_carlo_gain(a: np.ndarray, b: np.ndarray, n: int, seed: int) -> tuple[float, float]:
    """``(estimate, standard error)`` of ``h`` from ``n`` draws of ``Z``."""
    z = np.random.default_rng(seed).standard_normal(n)
    gain = np.max(a[None, :] + b[None, :] * z[:, None], axis=1) - a.max()
    return float(gain.mean()), float(gain.std() / math.sqrt(n))


def test_envelope_gain_agrees_with_monte_carlo_and_quadrature():
    rng = np.random.default_rng(0)
    for k in (2, 3, 7, 15, 60, 200):
        a, b = rng.normal(size=k), rng.normal(scale=rng.uniform(0.05, 2.0), size=k)
        got = float(envelope_gain(a[None], b[None])[0])
        mc, se = monte_carlo_gain(a, b, 50_000, seed=k)
        assert abs(got - mc) <= 4 * se, (k, got, mc, se)
        if k <= 15:
            assert got == pytest.approx(quadrature_gain(a, b), rel=1e-9, abs=1e-13)


def test_two_lines_have_the_closed_form():
    # E[max(0, Z)] = phi(0); E[max(a0, a1 + Z)] - max(a0, a1) = f(-|a0 - a1|)
    assert envelope_gain(np.array([[0.0, 0.0]]), np.array([[0.0, 1.0]]))[0] == pytest.approx(1 / math.sqrt(2 * math.pi))
    d = 1.7
    f = math.exp(-0.5 * d * d) / math.sqrt(2 * math.pi) - d * 0.5 * math.erfc(d / math.sqrt(2))
    assert envelope_gain(np.array([[d, 0.0]]), np.array([[0.0, 1.0]]))[0] == pytest.approx(f, rel=1e-12)


def test_degenerate_cases_give_zero_and_ties_change_nothing():
    # one line, and lines of equal slope (parallel): no gain; log gain -inf, not NaN
    one = log_envelope_gain(torch.tensor([[0.3]]), torch.tensor([[2.0]]))
    parallel = log_envelope_gain(torch.tensor([[0.3, -1.0, 2.0]]), torch.tensor([[0.5, 0.5, 0.5]]))
    flat = log_envelope_gain(torch.zeros(1, 4, dtype=torch.float64), torch.zeros(1, 4, dtype=torch.float64))
    for value in (one, parallel, flat):
        assert value.item() == -math.inf
    # duplicated lines and equal slopes with lower intercepts do not change h
    a, b = np.array([0.2, -0.4, 0.9]), np.array([-0.5, 0.3, 1.1])
    base = envelope_gain(a[None], b[None])[0]
    a_dup = np.concatenate([a, a, [a[1] - 1.0, a[2] - 3.0]])
    b_dup = np.concatenate([b, b, [b[1], b[2]]])
    perm = np.random.default_rng(1).permutation(len(a_dup))
    assert envelope_gain(a_dup[perm][None], b_dup[perm][None])[0] == pytest.approx(base, rel=1e-13)
    # equal intercepts (a tie for the current best), and slopes that differ by less than the tie tolerance
    a_eq, b_eq = np.array([1.0, 1.0, 0.0]), np.array([-1.0, 1.0, 0.0])
    assert envelope_gain(a_eq[None], b_eq[None])[0] == pytest.approx(quadrature_gain(a_eq, b_eq), rel=1e-10)
    near = envelope_gain(np.array([[0.0, 1.0, 0.5]]), np.array([[1.0, 1.0 + 1e-15, 0.0]]))[0]
    assert near == pytest.approx(quadrature_gain(np.array([1.0, 0.5]), np.array([1.0, 0.0])), rel=1e-10)


def test_rows_are_independent_in_a_batch():
    rng = np.random.default_rng(2)
    rows = [(rng.normal(size=9), rng.normal(size=9)) for _ in range(6)]
    rows[2] = (rows[2][0], np.full(9, 0.4))  # no gain
    rows[4] = (np.linspace(0, 1, 9), np.linspace(0, 1, 9) ** 2)  # every line on the envelope
    A, B = np.array([r[0] for r in rows]), np.array([r[1] for r in rows])
    batch = envelope_gain(A, B)
    alone = [envelope_gain(a[None], b[None])[0] for a, b in rows]
    np.testing.assert_allclose(batch, alone, rtol=1e-14)
    assert batch[2] == 0.0
    row, lo, hi = envelope_pairs(A[4:5], B[4:5])
    assert list(lo) == list(range(8)) and list(hi) == list(range(1, 9))  # all 9 lines, in slope order


@settings(max_examples=60, deadline=None, derandomize=True)
@given(st.lists(st.tuples(st.floats(-3, 3), st.floats(-2, 2)), min_size=1, max_size=8))
def test_envelope_gain_matches_quadrature_on_arbitrary_lines(lines):
    a, b = np.array(lines).T
    got = envelope_gain(a[None], b[None])[0]
    assert np.isfinite(got) and got >= 0.0
    assert got == pytest.approx(quadrature_gain(a, b), rel=1e-8, abs=1e-11)


def test_log_gain_stays_finite_with_finite_gradients_far_apart():
    # breakpoints at |c| up to 1e8: the plain gain underflows to 0, its log must not
    for gap in (1.0, 40.0, 1e3, 1e8):
        a = torch.tensor([[gap, 0.0]], dtype=torch.float64, requires_grad=True)
        b = torch.tensor([[0.0, 1.0]], dtype=torch.float64, requires_grad=True)
        value = log_envelope_gain(a, b)
        ga, gb = torch.autograd.grad(value.sum(), (a, b))
        assert torch.isfinite(value).all() and torch.isfinite(ga).all() and torch.isfinite(gb).all()
        if gap >= 40:
            assert value.item() < -700 and envelope_gain(a.detach().numpy(), b.detach().numpy())[0] == 0.0
    with pytest.raises(FloatingPointError):
        envelope_pairs(np.array([[0.0, np.nan]]), np.array([[0.0, 1.0]]))


def test_gain_gradient_matches_finite_differences_and_the_envelope_theorem():
    rng = np.random.default_rng(3)
    a0, b0 = rng.normal(size=12), rng.normal(size=12)
    a = torch.tensor(a0[None], requires_grad=True)
    b = torch.tensor(b0[None], requires_grad=True)
    assert torch.autograd.gradcheck(lambda a, b: log_envelope_gain(a, b), (a, b), eps=1e-7, atol=1e-6, rtol=1e-5)
    h = torch.exp(log_envelope_gain(a, b)).sum()
    ga, gb = (g.numpy()[0] for g in torch.autograd.grad(h, (a, b)))
    # envelope theorem: dh/da_i = P(line i is best) - [i is the best intercept], dh/db_i = E[Z; line i best]
    z = np.random.default_rng(4).standard_normal(400_000)
    best = np.argmax(a0[None] + b0[None] * z[:, None], axis=1)
    onehot = np.eye(12)[best]
    mc_a = onehot.mean(0) - np.eye(12)[np.argmax(a0)]
    mc_b = (onehot * z[:, None]).mean(0)
    se_b = (onehot * z[:, None]).std(0) / math.sqrt(len(z))
    np.testing.assert_allclose(ga, mc_a, atol=4 * 0.5 / math.sqrt(len(z)))
    assert np.all(np.abs(gb - mc_b) <= 4 * se_b + 1e-9)


# ---- the KG of a GP -----------------------------------------------------------------------------


def _model(seed: int = 0, n: int = 20, d: int = 3, noise: float = 0.05):
    rng = np.random.default_rng(seed)
    X = rng.random((n, d))
    y = np.sin(5 * X[:, 0]) + X[:, 1] ** 2 - X[:, 2] + 0.3 * rng.standard_normal(n)
    theta = np.log([0.3] * d + [1.0, noise])
    return GP(X, (y - y.mean()) / y.std(), theta, np.zeros(d, dtype=int)), rng


def test_kg_lines_are_the_fantasy_update_and_kg_matches_monte_carlo():
    gp, rng = _model()
    C = rng.random((40, 3))
    kg = LogKG(gp, C)
    x = rng.random((1, 3))
    a, b = kg.lines(torch.as_tensor(x))
    with torch.no_grad():
        mean_x, var_x = gp.posterior(torch.as_tensor(x))
    sd_y = math.sqrt(float(var_x) + float(gp.noise_var))
    for z in (-1.3, 0.4, 2.2):  # condition on a fantasy y(x): the means move along the lines
        fantasy = gp.condition(x, np.array([float(mean_x) + z * sd_y]))
        moved = -fantasy.posterior(torch.as_tensor(np.vstack([C, x])))[0].numpy()
        # the loss mean moves by +b z, so a = -mean by -b z (the same law: Z is symmetric)
        np.testing.assert_allclose(moved, (a - b * z).detach().numpy()[0], rtol=1e-8, atol=1e-9)
    # KG(x) = E[max over C and x of the updated -mean] - max over C of the current -mean
    zs = np.random.default_rng(5).standard_normal(200_000)
    aa, bb = a.detach().numpy()[0], b.detach().numpy()[0]
    gains = np.max(aa[None] + bb[None] * zs[:, None], axis=1) - aa[:-1].max()
    got = math.exp(float(kg(torch.as_tensor(x))[0]))
    assert abs(got - gains.mean()) <= 4 * gains.std() / math.sqrt(len(zs))


def test_kg_gradient_matches_finite_differences():
    gp, rng = _model(seed=1)
    C = np.vstack([gp.U.numpy(), rng.random((60, 3))])
    kg = LogKG(gp, C)
    X = rng.uniform(0.05, 0.95, size=(5, 3))
    U = torch.tensor(X, requires_grad=True)
    (grad,) = torch.autograd.grad(kg(U).sum(), U)
    eps = 1e-6
    for i in range(len(X)):
        for j in range(3):
            up, down = X[i].copy(), X[i].copy()
            up[j] += eps
            down[j] -= eps
            fd = (kg.numpy(up[None])[0] - kg.numpy(down[None])[0]) / (2 * eps)
            assert grad[i, j].item() == pytest.approx(fd, rel=1e-4, abs=1e-6), (i, j)
    # far from the data KG is tiny but its log and gradient stay finite
    far = torch.tensor([[0.999, 0.001, 0.999]], requires_grad=True)
    value = kg(far)
    assert torch.isfinite(value).all() and torch.isfinite(torch.autograd.grad(value.sum(), far)[0]).all()


def test_kg_is_largest_where_learning_changes_the_decision():
    # two near-equal minima: sampling between them is worth more than sampling a settled, bad region
    X = np.array([[0.1], [0.15], [0.2], [0.5], [0.8], [0.85], [0.9], [0.35], [0.65]])
    y = np.array([0.0, -0.1, 0.0, 1.5, 0.0, -0.1, 0.0, 1.0, 1.0])
    gp = GP(X, y, np.log([0.1, 1.0, 0.04]), np.zeros(1, dtype=int))
    grid = np.linspace(0, 1, 101)[:, None]
    kg = LogKG(gp, grid).numpy(grid)
    assert np.all(np.isfinite(kg))
    assert kg[np.argmin(np.abs(grid[:, 0] - 0.15))] > kg[np.argmin(np.abs(grid[:, 0] - 0.5))]


# ---- the suggestion step ------------------------------------------------------------------------

FAST = KGOptions(optimize=OptimizeOptions(n_raw=128, n_perturb=32, n_starts=2, maxiter=15, n_local=1, local_rounds=5),
                 mean_optimize=OptimizeOptions(n_raw=64, n_perturb=16, n_starts=1, maxiter=10, n_local=1,
                                               local_rounds=3),
                 n_sobol=32, n_neighbours=16, decision_set="wide")


def _quad(u: np.ndarray) -> float:
    return float(np.sum((u - 0.3) ** 2))


def test_core_is_deterministic_and_state_round_trips():
    X = np.random.default_rng(0).random((12, 3))
    losses = [_quad(x) for x in X]
    a, b = KnowledgeGradient([Dim("continuous")] * 3, FAST), KnowledgeGradient([Dim("continuous")] * 3, FAST)
    rng_a, rng_b = np.random.default_rng(3), np.random.default_rng(3)
    sa, sb = a.suggest(X, losses, rng_a), b.suggest(X, losses, rng_b)
    assert np.array_equal(sa.u, sb.u) and np.isfinite(sa.log_kg) and sa.info["n_candidates"] > 32
    c = KnowledgeGradient([Dim("continuous")] * 3, KGOptions.from_dict(a.options.as_dict()))
    assert c.options == a.options
    c.load_state(a.state())
    rng_c = np.random.default_rng()
    rng_c.bit_generator.state = rng_a.bit_generator.state
    X2, losses2 = np.vstack([X, sa.u]), losses + [0.5]
    assert np.array_equal(a.suggest(X2, losses2, rng_a).u, c.suggest(X2, losses2, rng_c).u)
    assert a.suggest(X[:3], [None, None, 1.0], rng_a) is None  # fewer than two usable losses


def test_decision_sets_observed_wide_and_alternating():
    X = np.random.default_rng(1).random((12, 2))
    losses = [_quad(x) for x in X]
    pending = np.array([[0.31, 0.29]])
    sizes = {}
    for ds in ("wide", "observed"):
        core = KnowledgeGradient([Dim("continuous")] * 2, replace(FAST, decision_set=ds))
        s = core.suggest(X, losses, np.random.default_rng(0), pending=pending)
        assert s.info["decision_set"] == ds and np.isfinite(s.log_kg)
        sizes[ds] = s.info["n_candidates"]
    assert sizes["observed"] == 13  # the 12 evaluated points and the running one, nothing else
    assert sizes["wide"] == 13 + 32 + 1 + 16  # + Sobol, the mean's minimiser, the neighbours
    core = KnowledgeGradient([Dim("continuous")] * 2, replace(FAST, decision_set="alternate"))
    seen = [core.suggest(X[:n], losses[:n], np.random.default_rng(0)).info["decision_set"] for n in (10, 11, 12)]
    assert seen == ["wide", "observed", "wide"]  # by the parity of the finished trials in the model
    assert KGOptions().decision_set == "alternate"


def test_observed_set_cashes_in_a_predicted_improvement():
    # noiseless 1-D data sloping down to the edge of the data: the posterior mean predicts a better
    # value just beyond the best point. With the observed set KG(x) >= a(x) - a* > 0 there; with a
    # set that already holds the mean's minimiser that gain is not counted
    X = np.array([[0.1], [0.2], [0.3], [0.4], [0.9]])
    y = np.array([1.0, 0.5, 0.0, -0.5, 1.0])
    gp = GP(X, y, np.log([0.3, 1.0, 1e-6]), np.zeros(1, dtype=int))
    grid = np.linspace(0, 1, 201)[:, None]
    with torch.no_grad():
        mean = gp.posterior(torch.as_tensor(grid))[0].numpy()
    u_min = grid[np.argmin(mean)]
    assert mean.min() < -0.5 and 0.4 < u_min[0] < 0.9
    observed = LogKG(gp, X).numpy(u_min[None])[0]
    wide = LogKG(gp, np.vstack([X, u_min[None]])).numpy(u_min[None])[0]
    assert observed >= math.log(-0.5 - mean.min()) - 1e-9
    assert wide < observed


def test_pending_points_make_concurrent_suggestions_distinct():
    rng = np.random.default_rng(0)
    X = rng.random((10, 2))
    losses = [_quad(x) + 0.05 * rng.standard_normal() for x in X]
    core = KnowledgeGradient([Dim("continuous")] * 2, FAST)
    pending: list[np.ndarray] = []
    for _ in range(5):
        pending.append(core.suggest(X, losses, rng, pending=np.array(pending).reshape(-1, 2)).u)
    points = np.array(pending)
    dist = np.linalg.norm(points[:, None] - points[None], axis=-1) + np.eye(5)
    print("min distance between 5 concurrent suggestions:", dist.min())
    assert dist.min() > 1e-3


def test_mixed_conditional_space_suggestions_are_canonical():
    grid = (np.arange(5) + 0.5) / 5
    dims = [Dim("continuous"), Dim("categorical", n_choices=3), Dim("discrete", grid=grid, condition=((1, 1),))]
    core = KnowledgeGradient(dims, FAST)
    rng = np.random.default_rng(0)
    from search_algs.core.optimizer import canonical

    X = canonical(rng.random((8, 3)), dims, rng)
    losses = [float(x[0] + (np.floor(x[1] * 3) != 1)) for x in X]
    for _ in range(3):
        u = core.suggest(X, losses, rng).u
        assert np.array_equal(np.isnan(u), np.isnan(canonical(u[None], dims, rng)[0]))
        assert not any(np.allclose(np.nan_to_num(u, nan=-1), np.nan_to_num(x, nan=-1)) for x in X)
        X = np.vstack([X, u])
        losses.append(float(u[0] + (np.floor(u[1] * 3) != 1)))


# ---- the Tune adapter ----------------------------------------------------------------------------

SPACE = {
    "x": Float(0.0, 1.0),
    "lr": Float(1e-4, 1e-1, log=True),
    "n": Int(1, 8),
    "opt": Categorical(["sgd", {"kind": "adam", "beta": Float(0.8, 0.99, step=0.01)}]),
}


def objective(config) -> float:
    penalty = 0.0 if config["opt"] == "sgd" else (config["opt"]["beta"] - 0.9) ** 2
    return (config["x"] - 0.3) ** 2 + (math.log10(config["lr"]) + 2.5) ** 2 + 0.1 * abs(config["n"] - 5) + penalty


def drive(searcher, n: int, start: int = 0, fail=lambda i: False) -> list:
    configs = []
    for i in range(start, start + n):
        config = searcher.suggest(f"t{i}")
        configs.append(config)
        if fail(i):
            searcher.on_trial_complete(f"t{i}", None, error=True)
        else:
            searcher.on_trial_complete(f"t{i}", {"loss": objective(config), "training_iteration": 1})
    return configs


def make(seed: int = 0, **kwargs) -> KGSearch:
    kwargs.setdefault("options", FAST)
    kwargs.setdefault("n_startup", 5)
    return KGSearch(space=SPACE, metric="loss", mode="min", seed=seed, **kwargs)


def test_registry_names_kg():
    from orchestrator.registry import searcher_class

    assert searcher_class("kg") is KGSearch


def test_same_seed_same_sequence_and_every_config_is_valid():
    seq_a, seq_b = drive(make(seed=3), 8), drive(make(seed=3), 8)
    assert seq_a == seq_b
    space = Space(SPACE)
    for config in seq_a:
        flat = space.to_flat(config)
        assert all(np.isfinite(float(v)) for v in flat.values())
    assert seq_a[5:] != drive(make(seed=4), 8)[5:]


def test_save_restore_continues_the_same_sequence(tmp_path):
    a = make(seed=1)
    drive(a, 6)
    path = str(tmp_path / "searcher.pkl")
    a.save(path)
    after_a = drive(a, 2, start=6)

    b = KGSearch(space=SPACE, metric="loss", mode="min", seed=99, noise="noisy", n_startup=1)  # all overwritten
    b.restore(path)
    assert b.n_startup == 5 and b.options == FAST and b.options.noise == "auto"
    assert drive(b, 2, start=6) == after_a

    c = pickle.loads(pickle.dumps(a))  # as Tune brings it back from tuner.pkl
    assert drive(c, 1, start=8) == drive(a, 1, start=8)


def test_points_to_evaluate_then_warm_start_then_model():
    first = {"x": 0.3, "lr": 3e-3, "n": 5, "opt": "sgd"}
    s = make(seed=0, points_to_evaluate=[first], noise="none")
    for i in range(6):  # warm start: evaluated elsewhere, in the user's mode
        config = Space(SPACE).sample(np.random.default_rng(i))
        s.add_evaluated_point(config, objective(config))
    assert s.suggest("t0") == first  # the queue comes first
    s.on_trial_complete("t0", {"loss": objective(first), "training_iteration": 1})
    config = s.suggest("t1")  # 7 observations >= n_startup: a model suggestion
    Space(SPACE).to_flat(config)
    assert s.recommend() == first  # the exact optimum, observed without noise


def test_failures_censoring_and_max_mode():
    s = KGSearch(space=SPACE, metric="score", mode="max", seed=0, n_startup=4, noise="none", options=FAST)
    configs = []
    for i in range(8):
        config = s.suggest(f"t{i}")
        configs.append(config)
        if i in (1, 5):
            s.on_trial_complete(f"t{i}", None, error=True)
        else:  # trial 2 stops early (a scheduler's decision): censored at the loss it reached
            s.on_trial_complete(f"t{i}", {"score": -objective(config), "training_iteration": 1 if i == 2 else 3})
    assert [o.failed for o in s.history].count(True) == 2
    assert s.history[2].censored and not s.history[3].censored
    assert s.history[0].loss == pytest.approx(objective(configs[0]))  # sign flipped to a loss
    assert configs[6] != configs[5] and configs[7] != configs[5]
    best = min((o for o in s.history if not o.failed), key=lambda o: o.loss)
    assert s.recommend() == Space(SPACE).to_config(best.flat) and s.recommend_flat() == best.flat


def test_only_failures_fall_back_to_random_draws():
    s = make(seed=0, n_startup=2)
    drive(s, 4, fail=lambda i: True)
    assert all(o.failed for o in s.history)
    assert s.recommend() is None


def test_bad_arguments_are_refused_with_the_value():
    with pytest.raises(ValueError, match="n_startup.*-1"):
        KGSearch(space=SPACE, n_startup=-1)
    with pytest.raises(ValueError, match="noise.*'loud'"):
        KGSearch(space=SPACE, noise="loud")
    with pytest.raises(ValueError, match="KGOptions"):
        from search_algs.core.gp_ei import GPEIOptions

        KGSearch(space=SPACE, options=GPEIOptions())
    with pytest.raises(ValueError, match="n_sobol.*-3"):
        KGOptions(n_sobol=-3).validate()
    with pytest.raises(ValueError, match="decision_set.*'all'"):
        KGOptions(decision_set="all").validate()


def test_concurrent_suggestions_differ_in_the_adapter():
    s = make(seed=2)
    drive(s, 6)
    configs = [s.suggest(f"p{i}") for i in range(4)]  # four trials running at once
    flats = [tuple(sorted(Space(SPACE).to_flat(c).items())) for c in configs]
    assert len(set(flats)) == 4


def test_tune_run_completes_and_searcher_sees_every_trial(ray_local, tmp_path):
    from ray import tune
    from ray.tune.search import ConcurrencyLimiter

    def trainable(config):
        tune.report({"loss": (config["x"] - 0.3) ** 2 + (config["y"] == "b") + 0.01 * config["k"]})

    space = {"x": Float(0.0, 1.0), "y": Categorical(["a", "b"]), "k": Int(0, 4)}
    searcher = KGSearch(space=space, metric="loss", mode="min", seed=0, n_startup=4, options=FAST)
    tuner = tune.Tuner(
        trainable,
        tune_config=tune.TuneConfig(search_alg=ConcurrencyLimiter(searcher, max_concurrent=2),
                                    num_samples=10, reuse_actors=True),
        run_config=tune.RunConfig(storage_path=str(tmp_path), verbose=0),
    )
    results = tuner.fit()
    assert len(results) == 10 and not results.errors
    assert len(searcher.history) == 10 and not searcher.pending
    configs = [r.config for r in results]
    assert len({(c["x"], c["y"], c["k"]) for c in configs}) == 10
    assert searcher.recommend() is not None


# ---- sanity: noisy Hartmann6 ------------------------------------------------------------------------


def test_sanity_kg_recommends_better_than_random_on_noisy_hartmann6():
    from benchmarks.problems import hartmann6

    t0 = time.time()
    space = {f"x{i}": Float(0.0, 1.0) for i in range(6)}
    budget, noise_sd = 30, 0.1
    true = {"kg": [], "random": []}
    for seed in (0, 1, 2):
        for name in true:
            noise = np.random.default_rng([seed, 7])  # the same noise stream for both
            if name == "kg":
                s = KGSearch(space=space, metric="loss", mode="min", seed=seed)
            else:
                s = RandomSearch(space=space, metric="loss", mode="min", seed=seed)
            observed = []
            for i in range(budget):
                config = s.suggest(f"t{i}")
                value = hartmann6([config[f"x{j}"] for j in range(6)])
                observed.append((value + noise_sd * noise.standard_normal(), value))
                s.on_trial_complete(f"t{i}", {"loss": observed[-1][0], "training_iteration": 1})
            if name == "kg":
                rec = s.recommend()
                true[name].append(hartmann6([rec[f"x{j}"] for j in range(6)]))
            else:  # random's recommendation: the best observed (noisy) value
                true[name].append(min(observed)[1])
    regret = {k: [v + 3.32237 for v in vals] for k, vals in true.items()}
    print(f"noisy Hartmann6 (sd {noise_sd}), {budget} evaluations, seeds 0-2: true regret at the "
          f"recommendation KG {np.round(regret['kg'], 3)} vs random {np.round(regret['random'], 3)} "
          f"({time.time() - t0:.1f} s)")
    assert np.mean(regret["kg"]) < np.mean(regret["random"])
    assert sum(k < r for k, r in zip(regret["kg"], regret["random"])) >= 2


# ---- bounded cost at any history size (issue #21) -----------------------------------------------


def test_kg_models_and_fits_at_most_its_caps(monkeypatch):
    import search_algs.core.gp_ei as gp_ei_module

    assert (KGOptions().max_model_points, KGOptions().max_fit_points) == (500, 200)  # smaller than GP-EI's model
    seen = []
    real_fit = gp_ei_module.fit_map

    def spy(U, y, *args, **kwargs):
        seen.append(np.array(U))
        return real_fit(U, y, *args, **kwargs)

    monkeypatch.setattr(gp_ei_module, "fit_map", spy)
    X = np.random.default_rng(0).random((90, 3))
    losses = [_quad(x) for x in X]
    opts = replace(FAST, max_model_points=40, max_fit_points=24, decision_set="observed")
    core = KnowledgeGradient([Dim("continuous")] * 3, opts)
    s = core.suggest(X, losses, np.random.default_rng(1))
    assert s.info["n_model"] == 40 and s.info["n_candidates"] == 40  # observed set = the modelled points
    assert len(seen) == 1 and seen[0].shape == (24, 3)
    assert s.u.shape == (3,) and np.all((s.u >= 0) & (s.u <= 1)) and np.isfinite(s.log_kg)
    again = KnowledgeGradient([Dim("continuous")] * 3, opts).suggest(X, losses, np.random.default_rng(1))
    np.testing.assert_array_equal(again.u, s.u)  # deterministic for a seed
    best = int(np.argmin(losses))
    assert core.model_subset(np.array(losses), np.ones(90, dtype=bool))[best]  # the best is modelled


def test_kg_cap_options_are_validated_with_the_value():
    for name in ("max_model_points", "max_fit_points"):
        with pytest.raises(ValueError) as err:
            replace(KGOptions(), **{name: 1}).validate()
        assert str(err.value).startswith("KG:") and f"'{name}'" in str(err.value) and "got 1" in str(err.value)
