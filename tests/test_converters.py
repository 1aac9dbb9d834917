"""Converters against the samplers they translate: Ray Tune domains, hyperopt ``hp.*``
spaces and YAML/dict specs.

The ground truth is each library's OWN sampler: every value it draws must be accepted by our
converted space, the set of values it draws from a discrete domain must equal our grid, and
every value we draw must lie in its support. No ``ray.init`` is needed.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import yaml
from hyperopt import hp
from hyperopt.pyll import scope, stochastic
from ray import tune

from search_algs.converters import from_hyperopt, from_ray_domain, to_ray_param_space, to_template
from search_algs.errors import SpaceError
from search_algs.space import Categorical, Float, Int, Space


def _key(v) -> float:
    """A grid value normalised for set comparison (float noise such as 3 * 0.1 removed)."""
    return round(float(v), 9)


def _grid(param) -> list:
    """Every value our decoder produces for an integer/quantised parameter, in order."""
    assert param.n_grid is not None
    values = sorted({param.decode(u) for u in np.linspace(0.0, 1.0, 20001)})
    assert len(values) == param.n_grid
    return values


def _domain_tuple(d) -> tuple:
    if isinstance(d, Categorical):
        return ("choice", d.choices, d.weights)
    return (type(d).__name__.lower(), d.low, d.high, d.log, d.step)


# ---- Ray Tune ----------------------------------------------------------------------------

# (id, domain, expected our domain, expected grid or None for continuous, draws)
RAY_CASES = [
    ("uniform", tune.uniform(-2.0, 3.0), Float(-2.0, 3.0), None),
    ("uniform-int-bounds", tune.uniform(0, 1), Float(0, 1), None),
    ("loguniform", tune.loguniform(1e-4, 1e-1), Float(1e-4, 1e-1, log=True), None),
    ("quniform", tune.quniform(0.0, 1.0, 0.1), Float(0.0, 1.0, step=0.1),
     [round(0.1 * k, 1) for k in range(11)]),
    ("quniform-top-noise", tune.quniform(0.0, 0.3, 0.1), Float(0.0, 0.3, step=0.1), [0.0, 0.1, 0.2, 0.3]),
    ("quniform-negative", tune.quniform(-1.0, 2.0, 0.5), Float(-1.0, 2.0, step=0.5),
     [-1.0, -0.5, 0.0, 0.5, 1.0, 1.5, 2.0]),
    ("qloguniform", tune.qloguniform(0.1, 2.0, 0.1), Float(0.1, 2.0, log=True, step=0.1),
     [round(0.1 * k, 1) for k in range(1, 21)]),
    ("randint", tune.randint(-3, 7), Int(-3, 6), list(range(-3, 7))),
    ("lograndint", tune.lograndint(1, 20), Int(1, 19, log=True), list(range(1, 20))),
    ("qrandint-q1", tune.qrandint(2, 9, 1), Int(2, 8), list(range(2, 9))),
    ("qrandint-q5", tune.qrandint(0, 20, 5), Int(0, 20, step=5), [0, 5, 10, 15, 20]),
    ("qrandint-q5-unaligned", tune.qrandint(1, 19, 5), Int(5, 15, step=5), [5, 10, 15]),
    ("qlograndint-q1", tune.qlograndint(1, 10, 1), Int(1, 9, log=True), list(range(1, 10))),
    ("qlograndint-q10", tune.qlograndint(1, 100, 10), Int(10, 100, log=True, step=10),
     list(range(10, 101, 10))),
]


@pytest.mark.parametrize("domain,expected,grid", [c[1:] for c in RAY_CASES], ids=[c[0] for c in RAY_CASES])
def test_ray_domain_matches_ray_sampler(domain, expected, grid):
    space = Space.of({"x": domain})
    (param,) = space.params
    assert param.name == "x"
    assert _domain_tuple(param.domain) == _domain_tuple(expected)

    cast = int if isinstance(param.domain, Int) else float
    ray_values = [cast(v) for v in domain.sample(size=4000, random_state=np.random.default_rng(0))]
    # (a) Ray's every draw lies in our domain and reads back through to_flat
    for v in ray_values:
        assert param.contains(v), v
        assert space.to_flat({"x": v}) == {"x": v}
    # (b) for discrete domains Ray draws exactly our grid
    if grid is not None:
        assert sorted({_key(v) for v in ray_values}) == [_key(g) for g in grid]
        assert [_key(g) for g in _grid(param)] == [_key(g) for g in grid]
        assert param.n_grid == len(grid)
    # (c) our draws lie in Ray's support
    rng = np.random.default_rng(1)
    ours = [space.sample(rng)["x"] for _ in range(1000)]
    assert all(isinstance(v, cast) for v in ours)
    if grid is None:
        assert all(domain.lower <= v <= domain.upper for v in ours)
    else:
        assert {_key(v) for v in ours} <= {_key(v) for v in ray_values}
        assert {_key(v) for v in ours} == {_key(g) for g in grid}  # and reach all of it


def test_ray_loguniform_is_log_scaled_like_ray():
    domain = tune.loguniform(1e-6, 1.0)
    space = Space.of({"x": domain})
    rng = np.random.default_rng(3)
    ours = np.array([space.sample(rng)["x"] for _ in range(2000)])
    theirs = np.asarray(domain.sample(size=2000, random_state=np.random.default_rng(4)))
    # geometric midpoint 1e-3: about half of each sample lies below it
    assert abs(np.mean(ours < 1e-3) - 0.5) < 0.05
    assert abs(np.mean(theirs < 1e-3) - 0.5) < 0.05


def test_ray_choice_matches_ray_sampler():
    choices = ["relu", 2, None, 3.5, [1, 2]]
    domain = tune.choice(choices)
    space = Space.of({"act": domain})
    (param,) = space.params
    assert isinstance(param.domain, Categorical) and param.domain.choices == tuple(choices)
    ray_values = domain.sample(size=2000, random_state=np.random.default_rng(0))
    indices = {space.to_flat({"act": v})["act"] for v in ray_values}
    assert indices == set(range(len(choices)))
    rng = np.random.default_rng(1)
    ours = [space.sample(rng)["act"] for _ in range(500)]
    assert all(any(v == c and type(v) is type(c) for c in choices) for v in ours)


def test_ray_choice_of_bool_and_int_kept_apart():
    space = Space.of({"flag": tune.choice([1, True, 0, False])})
    assert space.to_flat({"flag": True}) == {"flag": 1}
    assert space.to_flat({"flag": 1}) == {"flag": 0}
    assert space.to_flat({"flag": False}) == {"flag": 3}


def test_ray_nested_param_space_names_and_round_trip():
    ps = {
        "opt": {"lr": tune.loguniform(1e-4, 1e-1), "momentum": 0.9},
        "layers": [tune.randint(1, 4), tune.choice([16, 32])],
        "seed": 7,
    }
    space = Space.of(ps)
    assert space.names == ["opt/lr", "layers/0", "layers/1"]
    rng = np.random.default_rng(0)
    for _ in range(50):
        config = space.sample(rng)
        assert config["opt"]["momentum"] == 0.9 and config["seed"] == 7
        assert space.to_config(space.to_flat(config)) == config


def test_ray_choice_with_nested_domains_is_conditional():
    space = Space.of({"model": tune.choice([{"kind": "svm", "c": tune.uniform(0.1, 1.0)}, "none"])})
    assert [p.name for p in space] == ["model", "model[0]/c"]
    assert space.params[1].condition == ((0, 0),)
    assert space.to_flat({"model": "none"}) == {"model": 1}
    assert space.to_flat({"model": {"kind": "svm", "c": 0.5}}) == {"model": 0, "model[0]/c": 0.5}


@pytest.mark.parametrize(
    "domain,fragment",
    [
        (tune.randn(0.0, 1.0), "randn"),
        (tune.qrandn(0.0, 1.0, 0.1), "randn"),
        (tune.sample_from(lambda spec: 1), "sample_from"),
        (tune.grid_search([1, 2, 3]), "grid_search"),
        (lambda spec: 1, "function"),
    ],
    ids=["randn", "qrandn", "sample_from", "grid_search", "bare-function"],
)
def test_ray_unsupported_domains_refused_naming_the_parameter(domain, fragment):
    with pytest.raises(SpaceError) as err:
        Space.of({"opt": {"lr": domain}})
    assert "'opt/lr'" in str(err.value)
    assert fragment in str(err.value)


def test_ray_quantised_without_grid_point_refused():
    with pytest.raises(SpaceError, match=r"'x'.*q=5"):
        from_ray_domain(tune.qrandint(1, 4, 5), "x")


# ---- hyperopt ------------------------------------------------------------------------------

LOG = math.log
# (id, space, expected our domain, expected grid or None, continuous support [lo, hi] or None)
HP_CASES = [
    ("uniform", hp.uniform("x", -2.0, 3.0), Float(-2.0, 3.0), None, (-2.0, 3.0)),
    ("loguniform", hp.loguniform("x", LOG(1e-4), LOG(1e-1)), Float(math.exp(LOG(1e-4)), math.exp(LOG(1e-1)), True),
     None, (math.exp(LOG(1e-4)), math.exp(LOG(1e-1)))),
    ("quniform", hp.quniform("x", 0, 10, 2.5), Float(0.0, 10.0, step=2.5), [0.0, 2.5, 5.0, 7.5, 10.0], None),
    # round(1 / 3) = 0: hyperopt draws 0 although the low bound is 1
    ("quniform-below-low", hp.quniform("x", 1, 10, 3), Float(0.0, 9.0, step=3.0), [0.0, 3.0, 6.0, 9.0], None),
    # bounds half-way between multiples: 0 and 4 are reached only at the bound itself
    ("quniform-half-way", hp.quniform("x", 0.5, 3.5, 1), Float(1.0, 3.0, step=1.0), [1.0, 2.0, 3.0], None),
    ("quniform-fine", hp.quniform("x", 0, 1, 0.1), Float(0.0, 1.0, step=0.1),
     [round(0.1 * k, 1) for k in range(11)], None),
    ("qloguniform", hp.qloguniform("x", LOG(10), LOG(100), 10), Float(10.0, 100.0, True, 10.0),
     [10.0 * k for k in range(1, 11)], None),
    ("randint-1arg", hp.randint("x", 5), Int(0, 4), [0, 1, 2, 3, 4], None),
    ("randint-2arg", hp.randint("x", 3, 8), Int(3, 7), [3, 4, 5, 6, 7], None),
    ("uniformint", hp.uniformint("x", 2, 9), Int(2, 9), list(range(2, 10)), None),
    ("int-quniform", scope.int(hp.quniform("x", 0, 20, 5)), Int(0, 20, step=5), [0, 5, 10, 15, 20], None),
    ("int-qloguniform", scope.int(hp.qloguniform("x", LOG(1), LOG(20), 1)), Int(1, 20, True), list(range(1, 21)),
     None),
]


def _hp_samples(space, n: int, seed: int) -> list:
    rng = np.random.default_rng(seed)
    return [stochastic.sample(space, rng=rng) for _ in range(n)]


@pytest.mark.parametrize("space,expected,grid,support", [c[1:] for c in HP_CASES], ids=[c[0] for c in HP_CASES])
def test_hyperopt_leaf_matches_hyperopt_sampler(space, expected, grid, support):
    ours_space = Space.of(space)
    (param,) = ours_space.params
    assert param.name == "x"
    assert _domain_tuple(param.domain) == _domain_tuple(expected)

    theirs = _hp_samples(space, 2000, 0)
    for v in theirs:  # hyperopt's every draw reads back through to_flat
        flat = ours_space.to_flat(v)
        assert flat == {"x": v}
        assert ours_space.to_config(flat) == v
    rng = np.random.default_rng(1)
    ours = [ours_space.sample(rng) for _ in range(1000)]
    if isinstance(param.domain, Int):
        assert all(type(v) is int for v in theirs) and all(type(v) is int for v in ours)
    if grid is not None:
        assert sorted({_key(v) for v in theirs}) == [_key(g) for g in grid]
        assert [_key(g) for g in _grid(param)] == [_key(g) for g in grid]
        assert {_key(v) for v in ours} == {_key(g) for g in grid}
    else:
        lo, hi = support
        assert all(lo <= v <= hi for v in theirs)
        assert all(lo <= v <= hi for v in ours)


def test_hyperopt_loguniform_is_log_scaled_like_hyperopt():
    space = hp.loguniform("x", LOG(1e-6), LOG(1.0))
    theirs = np.array(_hp_samples(space, 2000, 0))
    rng = np.random.default_rng(1)
    ours = np.array([Space.of(space).sample(rng) for _ in range(2000)])
    assert abs(np.mean(theirs < 1e-3) - 0.5) < 0.05
    assert abs(np.mean(ours < 1e-3) - 0.5) < 0.05


def test_hyperopt_choice_constants():
    space = hp.choice("x", ["a", "b", 3, None])
    ours = Space.of(space)
    (param,) = ours.params
    assert param.domain.choices == ("a", "b", 3, None) and param.domain.weights is None
    assert {ours.to_flat(v)["x"] for v in _hp_samples(space, 500, 0)} == {0, 1, 2, 3}
    rng = np.random.default_rng(1)
    assert {ours.sample(rng) for _ in range(500)} == {"a", "b", 3, None}


def test_hyperopt_pchoice_weights_honoured():
    weights = [0.1, 0.6, 0.3]
    space = hp.pchoice("x", list(zip(weights, ["a", "b", "c"])))
    ours = Space.of(space)
    assert ours.params[0].domain.weights == tuple(weights)
    n = 6000
    rng = np.random.default_rng(0)
    ours_counts = np.bincount([ours.sample_flat(rng)["x"] for _ in range(n)], minlength=3) / n
    theirs_counts = np.bincount([ours.to_flat(v)["x"] for v in _hp_samples(space, n, 1)], minlength=3) / n
    for p, a, b in zip(weights, ours_counts, theirs_counts):
        tol = 5 * math.sqrt(p * (1 - p) / n)
        assert abs(a - p) < tol and abs(b - p) < tol
    # encoding stays uniform: the weights bias sampling only
    assert [ours.params[0].encode(k) for k in range(3)] == pytest.approx([1 / 6, 1 / 2, 5 / 6])


def _tree_space():
    return hp.choice("model", [
        {"kind": "svm", "C": hp.loguniform("C", LOG(1e-3), LOG(1e3)),
         "kernel": hp.choice("kernel", ["rbf", {"name": "poly", "degree": hp.randint("degree", 2, 6)}])},
        {"kind": "forest", "depth": hp.uniformint("depth", 1, 12),
         "crit": hp.pchoice("crit", [(0.7, "gini"), (0.3, "entropy")])},
        "dummy",
    ])


def test_hyperopt_nested_choice_is_conditional():
    space = _tree_space()
    ours = Space.of(space)
    by_name = {p.name: p for p in ours.params}
    # hyperopt stores dict keys sorted, so parameters come in that order
    assert list(by_name) == ["model", "C", "kernel", "degree", "crit", "depth"]
    idx = ours.index
    assert by_name["C"].condition == ((idx("model"), 0),)
    assert by_name["degree"].condition == ((idx("model"), 0), (idx("kernel"), 1))
    assert by_name["depth"].condition == ((idx("model"), 1),)
    assert by_name["degree"].domain == Int(2, 5)
    assert by_name["depth"].domain == Int(1, 12)

    seen_models = set()
    for config in _hp_samples(space, 800, 0):  # hyperopt's draws read back, only active params
        flat = ours.to_flat(config)
        assert ours.to_config(flat) == config
        assert set(flat) == {p.name for p, on in zip(ours.params, ours.active(flat)) if on}
        seen_models.add(flat["model"])
    assert seen_models == {0, 1, 2}
    rng = np.random.default_rng(2)
    for _ in range(500):  # our draws have hyperopt's shapes and supports
        config = ours.sample(rng)
        if config == "dummy":
            continue
        if config["kind"] == "svm":
            assert set(config) == {"kind", "C", "kernel"}
            assert 1e-3 * (1 - 1e-12) <= config["C"] <= 1e3 * (1 + 1e-12)
            assert config["kernel"] == "rbf" or config["kernel"]["degree"] in range(2, 6)
        else:
            assert set(config) == {"kind", "depth", "crit"}
            assert config["depth"] in range(1, 13) and config["crit"] in ("gini", "entropy")


def test_hyperopt_node_shared_at_top_level_is_one_parameter():
    lr = hp.loguniform("lr", LOG(1e-4), LOG(1e-1))
    for space in ({"a": lr, "b": lr}, hp.choice("c", [lr]), [lr, {"again": lr}]):
        ours = Space.of(space)
        assert ours.names.count("lr") == 1
    ours = Space.of({"a": lr, "b": [lr]})
    config = ours.sample(np.random.default_rng(0))
    assert config["a"] == config["b"][0]


def test_hyperopt_node_shared_by_every_branch_is_active_with_its_choice():
    lr = hp.uniform("lr", 0, 1)
    space = hp.choice("m", [{"t": "a", "lr": lr}, {"t": "b", "lr": lr, "d": hp.randint("d", 3)}])
    ours = Space.of(space)
    assert {p.name: p.condition for p in ours} == {"m": (), "lr": (), "d": ((0, 1),)}
    for config in _hp_samples(space, 300, 0):
        assert ours.to_config(ours.to_flat(config)) == config
    rng = np.random.default_rng(0)
    for _ in range(100):
        config = ours.sample(rng)
        assert 0 <= config["lr"] <= 1


def test_hyperopt_node_shared_by_some_branches_refused():
    lr = hp.uniform("lr", 0, 1)
    space = hp.choice("m", [{"lr": lr}, {"lr": lr, "x": 1}, "none"])
    with pytest.raises(SpaceError, match=r"'lr'.*m=0.*m=1"):
        Space.of(space)


def test_hyperopt_choice_between_same_shaped_branches_reads_the_right_one():
    space = hp.choice("c", [hp.uniform("a", 0, 1), hp.uniform("b", 2, 3)])
    ours = Space.of(space)
    for v in _hp_samples(space, 200, 0):
        flat = ours.to_flat(v)
        assert flat == ({"c": 0, "a": v} if v <= 1 else {"c": 1, "b": v})
    with pytest.raises(SpaceError, match="'a'.*1.5"):
        ours.to_flat(1.5)


@pytest.mark.parametrize(
    "space,fragment",
    [
        (hp.normal("x", 0, 1), "hp.normal"),
        (hp.lognormal("x", 0, 1), "hp.lognormal"),
        (hp.qnormal("x", 0, 1, 1), "hp.qnormal"),
        (hp.qlognormal("x", 0, 1, 1), "hp.qlognormal"),
        (hp.uniform("x", 0, 1) * 2, "not supported"),
        # exp(low) / q < 1/2: hyperopt draws 0, which a log scale cannot hold
        (hp.qloguniform("x", LOG(0.1), LOG(10), 1), "q/2"),
    ],
    ids=["normal", "lognormal", "qnormal", "qlognormal", "arithmetic", "qloguniform-draws-zero"],
)
def test_hyperopt_unsupported_refused(space, fragment):
    with pytest.raises(SpaceError) as err:
        Space.of({"wrapped": space})
    assert fragment in str(err.value)
    if "hp." in fragment or fragment == "q/2":
        assert "'x'" in str(err.value)


def test_from_hyperopt_is_to_template_for_hyperopt():
    space = _tree_space()
    a, b = Space(from_hyperopt(space)), Space(to_template(space))
    assert a.describe() == b.describe()


# ---- YAML / dict specs ------------------------------------------------------------------------

SPEC_YAML = """
optimizer:
  lr: {type: float, low: 1.0e-4, high: 1.0e-1, log: true}
  wd: {type: loguniform, low: 1.0e-6, high: 1.0e-2}
  momentum: {type: float, low: 0.5, high: 0.95, step: 0.05}
  name: adam
model:
  layers: {type: int, low: 1, high: 8}
  width: {type: int, low: 16, high: 256, step: 16}
  heads: {type: int, low: 1, high: 64, log: true}
  act: {type: choice, values: [relu, gelu, tanh], weights: [2, 1, 1]}
  block:
    type: choice
    values:
      - plain
      - {kind: residual, depth: {type: int, low: 2, high: 6}, gate: {type: choice, values: [true, false]}}
      - {kind: attention, dropout: {type: float, low: 0.0, high: 0.5, step: 0.1}}
epochs: 10
tags: [a, b]
"""


def test_yaml_spec_domains():
    space = Space.of(yaml.safe_load(SPEC_YAML))
    d = {p.name: p.domain for p in space.params}
    assert list(d) == [
        "optimizer/lr", "optimizer/wd", "optimizer/momentum", "model/layers", "model/width", "model/heads",
        "model/act", "model/block", "model/block[1]/depth", "model/block[1]/gate", "model/block[2]/dropout",
    ]
    assert d["optimizer/lr"] == Float(1e-4, 1e-1, log=True)
    assert d["optimizer/wd"] == Float(1e-6, 1e-2, log=True)
    assert d["optimizer/momentum"] == Float(0.5, 0.95, step=0.05)
    assert space.params[space.index("optimizer/momentum")].n_grid == 10
    assert d["model/layers"] == Int(1, 8)
    assert d["model/width"] == Int(16, 256, step=16)
    assert d["model/heads"] == Int(1, 64, log=True)
    assert d["model/act"] == Categorical(["relu", "gelu", "tanh"], [2, 1, 1])
    assert d["model/block[1]/depth"] == Int(2, 6)
    assert d["model/block[1]/gate"] == Categorical([True, False])
    assert d["model/block[2]/dropout"] == Float(0.0, 0.5, step=0.1)
    cond = {p.name: p.condition for p in space.params}
    b = space.index("model/block")
    assert cond["model/block[1]/depth"] == cond["model/block[1]/gate"] == ((b, 1),)
    assert cond["model/block[2]/dropout"] == ((b, 2),)


def test_yaml_spec_configs_and_round_trip():
    space = Space.of(yaml.safe_load(SPEC_YAML))
    rng = np.random.default_rng(0)
    blocks = set()
    for _ in range(300):
        flat = space.sample_flat(rng)
        config = space.to_config(flat)
        assert space.to_flat(config) == flat
        assert config["epochs"] == 10 and config["tags"] == ["a", "b"] and config["optimizer"]["name"] == "adam"
        assert 0.5 <= config["optimizer"]["momentum"] <= 0.95
        assert round(config["optimizer"]["momentum"] / 0.05, 9).is_integer()
        assert config["model"]["width"] % 16 == 0 and 16 <= config["model"]["width"] <= 256
        assert 1 <= config["model"]["layers"] <= 8
        block = config["model"]["block"]
        blocks.add(block if isinstance(block, str) else block["kind"])
        if isinstance(block, dict) and block["kind"] == "residual":
            assert set(block) == {"kind", "depth", "gate"} and block["gate"] in (True, False)
        if isinstance(block, dict) and block["kind"] == "attention":
            assert block["dropout"] in (0.0, 0.1, 0.2, 0.3, 0.4, 0.5)
    assert blocks == {"plain", "residual", "attention"}


def test_yaml_int_bounds_inclusive():
    space = Space.of({"n": {"type": "int", "low": 1, "high": 3}, "k": {"type": "randint", "low": 0, "high": 2}})
    rng = np.random.default_rng(0)
    seen = {(c["n"], c["k"]) for c in (space.sample(rng) for _ in range(300))}
    assert {n for n, _ in seen} == {1, 2, 3} and {k for _, k in seen} == {0, 1, 2}


def test_yaml_whole_float_bounds_for_int_accepted():
    space = Space.of({"n": {"type": "int", "low": 1.0, "high": 4.0, "step": 1.0}})
    assert space.params[0].domain == Int(1, 4)


def test_yaml_spec_weights_honoured():
    space = Space.of({"act": {"type": "choice", "values": ["a", "b"], "weights": [3, 1]}})
    rng = np.random.default_rng(0)
    share = np.mean([space.sample(rng)["act"] == "a" for _ in range(4000)])
    assert abs(share - 0.75) < 0.03


def test_yaml_single_leaf_space_named_value():
    space = Space.of({"type": "float", "low": 0.0, "high": 1.0})
    assert space.names == ["value"]
    assert 0.0 <= space.sample(np.random.default_rng(0)) <= 1.0


# ---- to_ray_param_space ----------------------------------------------------------------------

ROUND_TRIP_TEMPLATES = [
    {"x": Float(-1.0, 2.0)},
    {"x": Float(1e-5, 1e-1, log=True)},
    {"x": Float(0.0, 1.0, step=0.1), "y": Float(0.2, 1.0, step=0.2)},
    {"x": Float(0.1, 2.0, log=True, step=0.1)},
    {"x": Int(0, 10), "y": Int(1, 100, log=True)},
    {"x": Int(0, 20, step=5), "y": Int(10, 100, log=True, step=10)},
    {"x": Categorical(["a", 1, None, {"const": [1, 2]}])},
    {"opt": {"lr": Float(1e-4, 1e-1, log=True), "name": "sgd"}, "layers": [Int(1, 4), 32], "pair": (Int(0, 3), "k")},
    {"x": Float(3.0, 3.0), "y": Int(5, 5)},
]


@pytest.mark.parametrize("template", ROUND_TRIP_TEMPLATES)
def test_to_ray_param_space_round_trip(template):
    ours = Space(template)
    ray_space = to_ray_param_space(template)
    back = Space.of(ray_space)
    assert back.describe() == ours.describe()
    assert [_domain_tuple(p.domain) for p in back.params] == [_domain_tuple(p.domain) for p in ours.params]
    # Ray's own draws from the exported domains lie in our space
    rng = np.random.default_rng(0)
    for p in back.params:
        node = ray_space
        for part in p.name.split("/"):
            node = node[int(part)] if isinstance(node, (list, tuple)) else node[part]
        cast = int if isinstance(p.domain, Int) else (lambda v: v) if p.is_categorical else float
        alone = Space({"v": ours.params[ours.index(p.name)].domain})
        for v in node.sample(size=300, random_state=rng):
            v = cast(v)
            assert set(alone.to_flat({"v": v})) == {"v"}, (p.name, v)


def test_to_ray_param_space_keeps_constants_and_shapes():
    template = {"opt": {"lr": Float(0.0, 1.0), "name": "sgd"}, "layers": [Int(1, 4), 32], "pair": (Int(0, 3), "k")}
    ray_space = to_ray_param_space(template)
    assert ray_space["opt"]["name"] == "sgd" and ray_space["layers"][1] == 32
    assert isinstance(ray_space["pair"], tuple) and ray_space["pair"][1] == "k"
    assert type(ray_space["pair"][0]).__module__ == "ray.tune.search.sample"


def test_to_ray_param_space_unaligned_high_exports_last_grid_point():
    ours = Space({"x": Int(0, 10, step=3), "y": Float(0.0, 1.0, step=0.3)})
    back = Space.of(to_ray_param_space(ours.template))
    assert back.params[0].domain == Int(0, 9, step=3)
    assert back.params[1].domain == Float(0.0, 0.9, step=0.3)
    assert _grid(back.params[0]) == _grid(ours.params[0])
    assert [_key(v) for v in _grid(back.params[1])] == [_key(v) for v in _grid(ours.params[1])]


@pytest.mark.parametrize(
    "template,fragment",
    [
        ({"m": Categorical([{"lr": Float(0, 1)}, "none"])}, "'m'"),
        ({"m": Categorical([Float(0, 1), Float(2, 3)])}, "'m'"),
        ({"a": {"m": Categorical(["x", [Int(0, 3)]])}}, "'a/m'"),
    ],
)
def test_to_ray_param_space_refuses_conditional(template, fragment):
    with pytest.raises(SpaceError) as err:
        to_ray_param_space(template)
    assert fragment in str(err.value) and "conditional" in str(err.value)


@pytest.mark.parametrize(
    "template,fragment",
    [
        ({"x": Int(1, 10, step=3)}, "low=1"),
        ({"x": Float(0.05, 0.95, step=0.1)}, "low=0.05"),
        ({"x": Int(3, 99, log=True, step=5)}, "low=3"),
    ],
)
def test_to_ray_param_space_refuses_grid_ray_cannot_hold(template, fragment):
    with pytest.raises(SpaceError) as err:
        to_ray_param_space(template)
    assert "'x'" in str(err.value) and fragment in str(err.value)
