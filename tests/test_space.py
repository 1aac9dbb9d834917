"""The search-space model: encoding conventions, round trips, conditional activation,
validation messages and seeded sampling. Pure Python, no Ray instance."""

from __future__ import annotations

import math

import numpy as np
import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from search_algs.errors import SpaceError
from search_algs.space import Categorical, Float, Int, Param, Space

SETTINGS = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])


# ---- encoding conventions ---------------------------------------------------------------------

def test_int_is_padded_by_half_a_step():
    p = Param("n", Int(0, 4))
    # five grid points, each owning a fifth of [0, 1]
    assert [p.decode(u) for u in (0.0, 0.19, 0.21, 0.5, 0.79, 0.81, 1.0)] == [0, 0, 1, 2, 3, 4, 4]
    assert [p.encode(k) for k in range(5)] == pytest.approx([0.1, 0.3, 0.5, 0.7, 0.9])
    assert p.n_grid == 5


def test_quantised_float_is_padded_and_inclusive():
    p = Param("x", Float(0.0, 1.0, step=0.25))
    assert p.n_grid == 5
    assert [p.decode(u) for u in (0.0, 0.5, 1.0)] == [0.0, 0.5, 1.0]
    assert p.encode(0.75) == pytest.approx(0.7)
    assert p.decode(0.3 * 0.1 / 0.1) == 0.25
    # float noise is removed: 0.1 * 3 decodes as 0.3
    q = Param("y", Float(0.0, 1.0, step=0.1))
    assert q.decode(q.encode(0.3)) == 0.3
    assert q.contains(0.30000000000000004) and q.contains(1.0000000000000002)
    assert not q.contains(1.1) and not q.contains(0.35) and not q.contains(-0.1)


def test_tiny_steps_keep_distinct_grid_points():
    p = Param("x", Float(0.0, 1e-12, step=1e-13))
    values = sorted({p.decode(u) for u in np.linspace(0, 1, 1001)})
    assert len(values) == p.n_grid == 11
    assert all(p.contains(v) for v in values)


def test_log_grid_shares_are_equal_in_log_space():
    p = Param("n", Int(1, 1000, log=True))
    # log space, padded by half the first and last log gaps: [log 1 - log(2)/2, log 1000 + log(1000/999)/2]
    lo, hi = -math.log(2) / 2, math.log(1000) + math.log(1000 / 999) / 2
    assert p.decode(0.5) == round(math.exp((lo + hi) / 2))
    assert p.decode(0.0) == 1 and p.decode(1.0) == 1000
    assert p.decode((math.log(1.5) - lo) / (hi - lo) - 1e-9) == 1  # 1 owns log-space up to log(1.5)
    values = [p.decode(u) for u in np.linspace(0, 1, 2001)]
    assert values == sorted(values)


def test_categorical_centres():
    p = Param("c", Categorical(["a", "b", "c", "d"]))
    assert [p.encode(k) for k in range(4)] == [0.125, 0.375, 0.625, 0.875]
    assert [p.decode(u) for u in (0.0, 0.2499, 0.25, 0.999, 1.0)] == [0, 0, 1, 3, 3]
    assert p.contains(3) and not p.contains(4) and not p.contains(-1) and not p.contains("a")


def test_continuous_float_linear_and_log():
    lin = Param("x", Float(-1.0, 3.0))
    assert lin.decode(0.25) == 0.0 and lin.n_grid is None
    log = Param("y", Float(1e-4, 1.0, log=True))
    assert log.decode(0.5) == pytest.approx(1e-2)
    assert log.decode(0.0) == pytest.approx(1e-4, rel=1e-12) and log.decode(1.0) == pytest.approx(1.0, rel=1e-12)
    assert log.decode(-3.0) == log.decode(0.0) and log.decode(7.0) == log.decode(1.0)  # clipped
    assert 1e-4 <= log.decode(0.0) and log.decode(1.0) <= 1.0


def test_degenerate_domains():
    for d in (Float(2.0, 2.0), Float(2.0, 2.0, log=True), Float(2.0, 2.0, step=0.5), Int(3, 3), Categorical([1])):
        p = Param("x", d)
        v = p.decode(0.37)
        assert p.contains(v)
        assert p.decode(p.encode(v)) == v


def test_contains_rejects_wrong_types():
    assert not Param("n", Int(0, 5)).contains(2.0)
    assert not Param("n", Int(0, 5)).contains(True)
    assert not Param("x", Float(0, 5)).contains(float("nan"))
    assert not Param("x", Float(0, 5)).contains("1")
    assert not Param("x", Float(0, 5, step=1)).contains(float("inf"))


# ---- random valid spaces (hypothesis) -------------------------------------------------------------

finite = dict(allow_nan=False, allow_infinity=False)


@st.composite
def floats_domains(draw):
    log = draw(st.booleans())
    if log:
        low = draw(st.floats(1e-6, 1e3, **finite))
        high = low * draw(st.one_of(st.just(1.0), st.floats(1.001, 1e4, **finite)))
    else:
        low = draw(st.floats(-1e3, 1e3, **finite))
        high = low + draw(st.one_of(st.just(0.0), st.floats(1e-3, 1e3, **finite)))
    step = None
    if draw(st.booleans()) and high > low:
        # sometimes the range is not a whole number of steps (high is then off the grid)
        step = (high - low) / draw(st.floats(1.0, 50.0, **finite))
    return Float(low, high, log, step)


@st.composite
def int_domains(draw):
    log = draw(st.booleans())
    low = draw(st.integers(1, 100) if log else st.integers(-100, 100))
    high = low + draw(st.integers(0, 300))
    step = draw(st.integers(1, max(1, high - low)))
    return Int(low, high, log, step)


def categorical_domains(children=None):
    constants = st.one_of(st.integers(-5, 5), st.text("abc", max_size=3), st.none(), st.booleans())
    return st.lists(constants, min_size=1, max_size=5, unique_by=lambda v: (type(v), v)).map(Categorical)


leaf_domains = st.one_of(floats_domains(), int_domains(), categorical_domains())


@st.composite
def templates(draw, depth=0):
    """A nested template: dicts/lists of domains and constants, with conditional choices."""
    out = {}
    for k in range(draw(st.integers(1, 4))):
        kind = draw(st.sampled_from(["leaf", "leaf", "const", "list", "branch"] if depth < 2 else ["leaf", "const"]))
        if kind == "leaf":
            out[f"p{k}"] = draw(leaf_domains)
        elif kind == "const":
            out[f"c{k}"] = draw(st.one_of(st.integers(), st.text(max_size=3), st.none()))
        elif kind == "list":
            out[f"l{k}"] = [draw(leaf_domains), "fixed"]
        else:
            branches = draw(st.lists(templates(depth=depth + 1), min_size=1, max_size=3))
            extra = draw(st.lists(st.text("xyz", min_size=1, max_size=2), max_size=2, unique=True))
            out[f"b{k}"] = Categorical([{"branch": i, **b} for i, b in enumerate(branches)] + extra)
    return out


@st.composite
def space_and_u(draw):
    space = Space({"first": draw(leaf_domains), **draw(templates())})
    u = np.array(draw(st.lists(st.floats(0.0, 1.0, **finite), min_size=space.dim, max_size=space.dim)))
    return space, u


def _same(param: Param, a, b) -> bool:
    if param.n_grid is None and not param.is_categorical:
        return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-12 * max(1.0, abs(param.domain.high)))
    return a == b and type(a) is type(b)


@SETTINGS
@given(domain=st.one_of(floats_domains(), int_domains(), categorical_domains()), u=st.floats(0.0, 1.0, **finite))
def test_param_decode_in_domain_and_stable(domain, u):
    p = Param("x", domain)
    domain.validate("x")
    v = p.decode(u)
    assert p.contains(v)
    assert isinstance(v, int if isinstance(domain, (Int, Categorical)) else float)
    e = p.encode(v)
    assert 0.0 <= e <= 1.0
    assert _same(p, p.decode(e), v)
    if p.n_grid is not None or p.is_categorical:
        assert p.decode(e) == v  # decode(encode(decode(u))) == decode(u) exactly on grids


@SETTINGS
@given(domain=st.one_of(floats_domains(), int_domains()))
def test_grid_endpoints_reached(domain):
    p = Param("x", domain)
    lo, hi = p.decode(0.0), p.decode(1.0)
    if p.n_grid is not None:
        assert lo == domain.low  # the low bound exactly, as the user wrote it
    assert lo == pytest.approx(domain.low, rel=1e-9, abs=1e-12)
    if p.n_grid is None:
        assert hi == pytest.approx(domain.high, rel=1e-9, abs=1e-12)
    else:
        top = domain.low + (p.n_grid - 1) * domain.step
        assert hi == pytest.approx(top, rel=1e-9, abs=1e-9)
        assert top <= domain.high + 1e-9 * max(1, abs(domain.high)) and top + domain.step > domain.high - 1e-9


@SETTINGS
@given(space_and_u())
def test_space_round_trips_and_activation(arg):
    space, u = arg
    for i, p in enumerate(space.params):  # parents come before their children
        assert all(parent < i and space.params[parent].is_categorical for parent, _ in p.condition)
    assert len(set(space.names)) == space.dim
    flat = space.decode_unit(u)
    active = space.active(flat)
    # inactive parameters are absent, active ones present
    assert set(flat) == {p.name for p, on in zip(space.params, active) if on}
    for p, on in zip(space.params, active):
        # active iff every parent takes the branch that holds it
        assert on == all(space.params[i].name in flat and flat[space.params[i].name] == k for i, k in p.condition)
        if on:
            assert p.contains(flat[p.name])
    config = space.to_config(flat)
    assert space.to_flat(config) == flat
    assert space.to_config(space.to_flat(config)) == config
    # encode_flat: NaN exactly for the inactive parameters
    e = space.encode_flat(flat)
    assert np.array_equal(np.isnan(e), ~np.array(active))
    # decode_unit ignores inactive coordinates and reproduces the point
    again = space.decode_unit(e)
    assert set(again) == set(flat)
    assert all(_same(space.params[space.index(n)], again[n], flat[n]) for n in flat)
    # an inactive coordinate's value does not matter
    u2 = np.where(np.array(active), u, np.nan)
    assert space.decode_unit(u2) == flat
    # canonical is the identity on points of the space (up to float noise)
    canon = space.to_flat(space.canonical(config))
    assert set(canon) == set(flat)
    assert all(_same(space.params[space.index(n)], canon[n], flat[n]) for n in flat)


@SETTINGS
@given(space_and_u(), st.integers(0, 2**32 - 1))
def test_samples_are_valid_points(arg, seed):
    space, _ = arg
    rng = np.random.default_rng(seed)
    for _ in range(3):
        flat = space.sample_flat(rng)
        assert set(flat) == {p.name for p, on in zip(space.params, space.active(flat)) if on}
        assert all(space.params[space.index(n)].contains(v) for n, v in flat.items())
        assert space.to_flat(space.to_config(flat)) == flat


def _conditional_space() -> Space:
    return Space({
        "opt": Categorical([
            {"name": "sgd", "lr": Float(1e-4, 1.0, log=True), "nesterov": Categorical([True, False])},
            {"name": "adam", "beta": Float(0.8, 0.999), "sched": Categorical(["none", {"gamma": Float(0.1, 0.9)}])},
            "default",
        ]),
        "batch": Int(16, 256, step=16),
    })


def test_conditional_structure():
    space = _conditional_space()
    assert space.names == ["opt", "opt[0]/lr", "opt[0]/nesterov", "opt[1]/beta", "opt[1]/sched",
                           "opt[1]/sched[1]/gamma", "batch"]
    assert space.params[5].condition == ((0, 1), (4, 1))
    assert space.is_conditional
    flat = {"opt": 1, "opt[1]/beta": 0.9, "opt[1]/sched": 1, "opt[1]/sched[1]/gamma": 0.5, "batch": 32}
    assert space.to_config(flat) == {"opt": {"name": "adam", "beta": 0.9, "sched": {"gamma": 0.5}}, "batch": 32}
    assert space.to_flat(space.to_config(flat)) == flat
    e = space.encode_flat(flat)
    assert np.isnan(e[[1, 2]]).all() and not np.isnan(e[[0, 3, 4, 5, 6]]).any()
    assert space.to_config({"opt": 2, "batch": 16}) == {"opt": "default", "batch": 16}


def test_encode_flat_ignores_values_of_inactive_parameters():
    space = _conditional_space()
    # a stale value for the sgd branch while adam is chosen must not be encoded
    flat = {"opt": 1, "opt[0]/lr": 0.01, "opt[1]/beta": 0.9, "opt[1]/sched": 0, "batch": 32}
    e = space.encode_flat(flat)
    assert np.isnan(e[space.index("opt[0]/lr")])
    assert np.isnan(e[space.index("opt[1]/sched[1]/gamma")])
    assert not np.isnan(e[space.index("opt[1]/beta")])


def test_decode_unit_needs_active_coordinates():
    space = _conditional_space()
    u = np.full(space.dim, np.nan)
    u[0] = 0.1  # sgd
    with pytest.raises(ValueError, match="opt\\[0\\]/lr"):
        space.decode_unit(u)
    u[[1, 2, 6]] = 0.5
    assert set(space.decode_unit(u)) == {"opt", "opt[0]/lr", "opt[0]/nesterov", "batch"}
    with pytest.raises(ValueError, match="shape"):
        space.decode_unit(np.zeros(space.dim + 1))


def test_shared_domain_object_is_one_parameter():
    lr = Float(1e-4, 1e-1, log=True, label="lr")
    space = Space({"a": lr, "b": {"c": lr}, "n": Int(0, 3)})
    assert space.names == ["lr", "n"]
    config = space.sample(np.random.default_rng(0))
    assert config["a"] == config["b"]["c"]


def test_shared_domain_in_every_branch_and_at_top():
    lr = Float(0.0, 1.0, label="lr")
    space = Space({"m": Categorical([{"lr": lr}, {"lr": lr, "d": Int(1, 3)}])})
    assert {p.name: p.condition for p in space} == {"m": (), "lr": (), "m[1]/d": ((0, 1),)}
    space = Space({"m": Categorical([{"lr": lr}, "none"]), "again": lr})
    assert {p.name: p.condition for p in space} == {"m": (), "lr": ()}
    rng = np.random.default_rng(0)
    for _ in range(20):
        config = space.sample(rng)
        assert space.to_config(space.to_flat(config)) == config


def test_shared_domain_in_some_branches_refused():
    lr = Float(0.0, 1.0, label="lr")
    with pytest.raises(SpaceError, match=r"'lr'.*m=0.*m=1"):
        Space({"m": Categorical([{"lr": lr}, {"lr": lr}, "none"])})


def test_to_flat_picks_the_branch_that_holds_the_value():
    space = Space({"x": Categorical([Float(0.0, 1.0), Float(2.0, 3.0), Int(10, 20)])})
    assert space.to_flat({"x": 0.5}) == {"x": 0, "x[0]": 0.5}
    assert space.to_flat({"x": 2.5}) == {"x": 1, "x[1]": 2.5}
    assert space.to_flat({"x": 15}) == {"x": 2, "x[2]": 15}


def test_describe():
    rows = _conditional_space().describe()
    assert rows[0] == {"name": "opt", "type": "categorical", "choices": ["<branch 0>", "<branch 1>", "default"]}
    assert rows[1] == {"name": "opt[0]/lr", "type": "float", "low": 1e-4, "high": 1.0, "log": True, "step": None,
                       "active_if": {"opt": 0}}
    assert rows[5]["active_if"] == {"opt": 1, "opt[1]/sched": 1}
    assert rows[6] == {"name": "batch", "type": "int", "low": 16, "high": 256, "log": False, "step": 16}


# ---- seeded reproducibility -------------------------------------------------------------------

@pytest.mark.parametrize("seed", [0, 1, 12345])
def test_sampling_is_reproducible(seed):
    space = _conditional_space()
    weighted = Space({"w": Categorical(["a", "b", "c"], [1, 5, 2]), "x": Float(0, 1)})
    for s in (space, weighted):
        a = np.random.default_rng(seed)
        b = np.random.default_rng(seed)
        first = [s.sample(a) for _ in range(30)]
        assert first == [s.sample(b) for _ in range(30)]
        other = np.random.default_rng(seed + 1)
        assert first != [s.sample(other) for _ in range(30)]


def test_weights_bias_sampling_only():
    space = Space({"w": Categorical(["a", "b"], [1, 3])})
    rng = np.random.default_rng(0)
    share = np.mean([space.sample(rng)["w"] == "b" for _ in range(4000)])
    assert abs(share - 0.75) < 0.03
    assert space.params[0].encode(1) == 0.75


# ---- validation: one table of bad inputs --------------------------------------------------------

BAD = [
    # (id, space, fragments that the message must contain: the parameter and the value received)
    ("low>high-float", {"lr": {"type": "float", "low": 1.0, "high": 0.5}}, ["'lr'", "low=1.0", "high=0.5"]),
    ("low>high-int", {"n": {"type": "int", "low": 5, "high": 2}}, ["'n'", "low=5", "high=2"]),
    ("low>high-domain", {"x": Float(3, 1)}, ["'x'", "low=3", "high=1"]),
    ("log-zero-low", {"lr": {"type": "float", "low": 0.0, "high": 1.0, "log": True}}, ["'lr'", "low=0.0"]),
    ("log-negative-int", {"n": {"type": "int", "low": -5, "high": 5, "log": True}}, ["'n'", "low=-5"]),
    ("loguniform-zero", {"lr": {"type": "loguniform", "low": 0, "high": 1}}, ["'lr'", "low=0"]),
    ("empty-choices", {"act": {"type": "choice", "values": []}}, ["'act'", "[]"]),
    ("empty-categorical", {"act": Categorical([])}, ["'act'", "()"]),
    ("choices-not-list", {"act": {"type": "choice", "values": "relu"}}, ["'act'", "'relu'"]),
    ("no-values", {"act": {"type": "choice"}}, ["'act'", "'values'"]),
    ("step-zero-float", {"lr": {"type": "float", "low": 0.0, "high": 1.0, "step": 0}}, ["'lr'", "0"]),
    ("step-negative-float", {"lr": {"type": "float", "low": 0.0, "high": 1.0, "step": -0.1}}, ["'lr'", "-0.1"]),
    ("step-string-float", {"lr": {"type": "float", "low": 0.0, "high": 1.0, "step": "0.1"}}, ["'lr'", "'0.1'"]),
    ("step-bool-float", {"lr": Float(0.0, 1.0, step=True)}, ["'lr'", "True"]),
    ("step-zero-int", {"n": {"type": "int", "low": 0, "high": 10, "step": 0}}, ["'n'", "step=0"]),
    ("step-fraction-int", {"n": {"type": "int", "low": 0, "high": 10, "step": 1.5}}, ["'n'", "1.5"]),
    ("step>range-float", {"lr": {"type": "float", "low": 0.0, "high": 1.0, "step": 2.0}}, ["'lr'", "step=2.0", "[0.0, 1.0]"]),
    ("step>range-int", {"n": {"type": "int", "low": 0, "high": 5, "step": 10}}, ["'n'", "step=10", "[0, 5]"]),
    ("yaml-1e-3-string", yaml.safe_load("lr: {type: float, low: 1e-3, high: 1.0}"), ["'lr'", "'1e-3'", "1.0e-3"]),
    ("string-high", {"lr": {"type": "float", "low": 0.0, "high": "big"}}, ["'lr'", "'big'"]),
    ("bool-bound", {"lr": {"type": "float", "low": False, "high": 1.0}}, ["'lr'", "False"]),
    ("infinite-bound", {"x": Float(0.0, math.inf)}, ["'x'", "inf"]),
    ("nan-bound", {"x": {"type": "float", "low": float("nan"), "high": 1.0}}, ["'x'", "nan"]),
    ("fractional-int-bound", {"n": {"type": "int", "low": 0.5, "high": 3}}, ["'n'", "0.5"]),
    ("float-in-Int", {"n": Int(0.0, 3)}, ["'n'", "0.0"]),
    ("unknown-key", {"lr": {"type": "float", "low": 0.0, "high": 1.0, "lgo": True}}, ["'lr'", "lgo"]),
    ("unknown-key-choice", {"act": {"type": "choice", "choices": [1, 2]}}, ["'act'", "choices"]),
    ("missing-low", {"lr": {"type": "float", "high": 1.0}}, ["'lr'", "'low'", "'high': 1.0"]),
    ("missing-high", {"n": {"type": "int", "low": 1}}, ["'n'", "'high'", "'low': 1"]),
    ("log-not-bool", {"lr": {"type": "float", "low": 0.1, "high": 1.0, "log": "yes"}}, ["'lr'", "'yes'"]),
    ("bad-weights", {"act": {"type": "choice", "values": [1, 2], "weights": [1]}}, ["'act'", "[1.0]"]),
    ("negative-weights", {"act": Categorical([1, 2], [1, -1])}, ["'act'", "-1.0"]),
    ("string-weights", {"act": {"type": "choice", "values": [1, 2], "weights": "1,2"}}, ["'act'", "'1,2'"]),
    ("nested-path", {"model": {"opt": {"lr": {"type": "float", "low": 2.0, "high": 1.0}}}}, ["'model/opt/lr'", "low=2.0"]),
    ("in-branch", {"m": {"type": "choice", "values": [{"d": {"type": "int", "low": 3, "high": 1}}]}}, ["'m[0]/d'", "low=3"]),
    ("duplicate-labels", {"a": Float(0, 1, label="lr"), "b": Float(0, 2, label="lr")}, ["duplicates", "'lr'"]),
    ("only-constants", {"a": 1, "b": "x"}, ["no parameter", "'a': 1", "'b': 'x'"]),
    ("empty", {}, ["no parameter", "{}"]),
    ("non-string-key", {1: Float(0, 1)}, ["keys must be strings", "1"]),
]


@pytest.mark.parametrize("space,fragments", [b[1:] for b in BAD], ids=[b[0] for b in BAD])
def test_bad_spaces_refused_with_clear_message(space, fragments):
    with pytest.raises(SpaceError) as err:
        Space.of(space)
    message = str(err.value)
    for fragment in fragments:
        assert fragment in message, (fragment, message)


BAD_CONFIGS = [
    ({"lr": 2.0}, ["'lr'", "2.0"]),
    ({"lr": "0.1"}, ["'lr'", "'0.1'"]),
    ({"lr": None}, ["'lr'", "None"]),
    ({"lr": 0.1, "n": 2.5}, ["'n'", "2.5"]),
    ({"lr": 0.1, "n": float("nan")}, ["'n'", "nan"]),
    ({"lr": 0.1, "n": float("inf")}, ["'n'", "inf"]),
    ({"lr": 0.1, "n": 7}, ["'n'", "7"]),
    ({"lr": 0.1, "n": 3, "act": "gelu"}, ["'act'", "'gelu'"]),
    ({"lr": 0.1, "n": 3, "act": "relu", "q": 0.35}, ["'q'", "0.35"]),
    ({"lr": 0.1, "n": 3, "act": "relu", "q": 0.3, "pair": [1]}, ["'pair'", "[1]"]),
    ({"n": 3}, ["'lr'", "missing"]),
    ([1, 2], ["dict", "[1, 2]"]),
]


@pytest.mark.parametrize("config,fragments", BAD_CONFIGS)
def test_bad_configs_refused_naming_the_parameter(config, fragments):
    space = Space({"lr": Float(0.0, 1.0), "n": Int(0, 6, step=3), "act": Categorical(["relu", "tanh"]),
                   "q": Float(0.0, 1.0, step=0.1), "pair": [Int(0, 3), "k"]})
    with pytest.raises(SpaceError) as err:
        space.to_flat(config)
    for fragment in fragments:
        assert fragment in str(err.value), (fragment, str(err.value))


def test_low_equal_high_is_a_single_value():
    space = Space.of({"x": {"type": "float", "low": 1.0, "high": 1.0}, "n": {"type": "int", "low": 4, "high": 4}})
    assert space.sample(np.random.default_rng(0)) == {"x": 1.0, "n": 4}


# ---- points checked against the space, parameter specs that are not quite one, numeric sanity ---------

POINT_SPACE = {"lr": Float(1e-3, 0.1, log=True), "opt": Categorical(["adam", {"name": "sgd", "mom": Float(0, 1)}]),
               "epochs": 10, "nested": {"a": Int(1, 5)}}


@pytest.mark.parametrize("point", [{}, {"lr": 0.01}, {"opt": "adam"}, {"opt": {"name": "sgd", "mom": 0.5}},
                                   {"epochs": 10}, {"nested": {"a": 2}}, {"nested": {}}])
def test_partial_points_inside_the_space_pass(point):
    Space.of(POINT_SPACE).check_point(point)


@pytest.mark.parametrize("point, fragments", [
    ({"lrr": 0.01}, ["'lrr'", "did you mean 'lr'"]),
    ({"lr": 1.0}, ["'lr'", "1.0", "outside", "[0.001, 0.1]"]),
    ({"opt": "adamw"}, ["'opt'", "'adamw'", "not among the choices"]),
    ({"opt": {"name": "sgd", "mom": 5}}, ["'opt/mom'", "5", "outside"]),  # the branch says what is wrong inside it
    ({"epochs": 3}, ["'epochs'", "3", "constant 10"]),
    ({"nested": {"b": 1}}, ["'nested/b'", "unknown key", "['a']"]),
    ({"nested": {"a": 2.5}}, ["'nested/a'", "2.5", "whole number"]),
    ([0.1], ["[0.1]", "mapping"]),
])
def test_points_outside_the_space_are_refused_naming_the_key(point, fragments):
    with pytest.raises(SpaceError) as err:
        Space.of(POINT_SPACE).check_point(point)
    for fragment in fragments:
        assert fragment in str(err.value), (fragment, str(err.value))


@pytest.mark.parametrize("template, fragments", [
    ({"x": {"type": "floatt", "low": 0, "high": 1}}, ["'x'", "'floatt'", "type: float"]),
    ({"x": {"typ": "float", "low": 0, "high": 1}}, ["'x'", "'typ'", "type: float"]),
    ({"x": {"low": 0, "high": 9}}, ["'x'", "without 'type'", "type: int"]),
    ({"x": {"type": "choice", "values": [{"y": {"tpye": "int", "low": 0, "high": 2}}]}}, ["'x[0]/y'", "'tpye'"]),
    ({"x": Float(-1e308, 1e308)}, ["'x'", "width", "finite"]),
    ({"x": Int(0, 2**60)}, ["'x'", "2**53"]),
    ({"x": {"type": "float", "low": 0, "high": 10**400}}, ["'x'", "401 digits"]),
])
def test_spec_typos_and_unusable_numbers_are_errors_never_constants(template, fragments):
    with pytest.raises(SpaceError) as err:
        Space.of(template)
    for fragment in fragments:
        assert fragment in str(err.value), (fragment, str(err.value))


def test_constant_mappings_with_a_type_key_stay_constants():
    space = Space.of({"x": Float(0, 1), "optimizer": {"type": "adam", "lr": 0.1}, "act": {"type": "relu"}})
    assert space.names == ["x"]
    assert space.to_config({"x": 0.5})["optimizer"] == {"type": "adam", "lr": 0.1}


def test_a_wide_but_finite_float_range_samples_inside_it():
    space = Space.of({"x": Float(-1e300, 1e300)})
    values = [space.sample(np.random.default_rng(s))["x"] for s in range(20)]
    assert all(-1e300 <= v <= 1e300 for v in values) and len(set(values)) == 20


def test_dims_are_the_one_core_view_of_a_space():
    from search_algs.core.dims import Dim

    space = Space({"x": Float(0, 1), "n": Int(1, 100, log=True), "big": Int(0, 10**6),
                   "opt": Categorical(["a", {"b": Float(0.0, 0.6, step=0.3)}])})
    dims = dict(zip(space.names, space.dims()))
    assert space.dims() is space.dims()  # built once
    assert dims["x"].kind == "continuous" and not dims["x"].on_grid
    n = space.params[space.index("n")]
    assert [n.decode(u) for u in dims["n"].grid] == list(range(1, 101))
    assert dims["n"].edges[0] == 0 and dims["n"].edges[-1] == 1
    # every grid point owns its cell: decoding anywhere in cell k gives grid value k (unequal log cells)
    mids = (dims["n"].edges[:-1] + dims["n"].edges[1:]) / 2
    assert [n.decode(u) for u in mids] == list(range(1, 101))
    assert np.array_equal(dims["n"].cell(dims["n"].grid), np.arange(100))
    assert dims["big"].kind == "discrete" and dims["big"].grid is None  # too fine: searched as continuous
    assert dims["opt"].kind == "categorical" and dims["opt"].n_choices == 2
    assert dims["opt[1]/b"].condition == ((space.index("opt"), 1),) and len(dims["opt[1]/b"].grid) == 3
    with pytest.raises(ValueError, match="edges"):
        Dim("discrete", grid=np.array([0.25, 0.75]), edges=np.array([0.0, 1.0]))


def test_space_and_converters_do_not_import_each_other():
    import ast
    import pathlib

    root = pathlib.Path(__file__).resolve().parents[1] / "search_algs"
    imported = {}
    for name in ("space", "converters", "domains"):
        tree = ast.parse((root / f"{name}.py").read_text())
        imported[name] = {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)} | {
            (n.module or "") + "." + a.name for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) for a in n.names}
    assert not any("search_algs.space" in m for m in imported["converters"] | imported["domains"])
    assert not any("search_algs.converters" in m for m in imported["domains"])
