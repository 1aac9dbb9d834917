"""Bad input fails on the driver, before Ray starts, with one clear message."""

from __future__ import annotations

import textwrap

import pytest

from orchestrator.spec import ExperimentSpec, SpecError, apply_override

GOOD = {
    "trainable": "tuneorch_examples.digits_mlp:train_digits",
    "space": {"lr": {"type": "float", "low": 1e-3, "high": 0.1, "log": True}},
    "metric": "val_loss",
    "mode": "min",
}


def spec_with(**changes):
    data = {**GOOD, **changes}
    return {k: v for k, v in data.items() if v is not _DROP}


_DROP = object()

# (changes to a good spec, fragments the message must contain)
BAD_INPUT = [
    ({"space": {"lr": {"type": "float", "low": 1.0, "high": 0.1}}}, ["'lr'", "low must be <= high", "low=1.0", "high=0.1"]),
    ({"space": {"lr": {"type": "float", "low": 0.0, "high": 1.0, "log": True}}}, ["'lr'", "low > 0", "low=0.0"]),
    ({"space": {"lr": {"type": "int", "low": -5, "high": 10, "log": True}}}, ["'lr'", "low > 0", "low=-5"]),
    ({"space": {"act": {"type": "choice", "values": []}}}, ["'act'", "non-empty list", "[]"]),
    ({"space": {"lr": {"type": "float", "low": "1e-3", "high": 0.1}}}, ["'lr'", "'low' must be a number", "'1e-3'", "1.0e-3"]),
    ({"space": {"lr": {"type": "float", "low": 0, "high": 1, "step": 0}}}, ["'lr'", "step", "positive"]),
    ({"space": {"lr": {"type": "float", "high": 1}}}, ["'lr'", "needs 'low'"]),
    ({"space": {"lr": {"type": "float", "low": 0, "high": 1, "scale": "log"}}}, ["'lr'", "unknown keys ['scale']"]),
    ({"space": {"n": 3}}, ["no parameter to tune", "add at least one"]),
    ({"space": {"g": {"grid_search": [1, 2]}}}, ["'g'", "grid_search", "choice"]),
    ({"search": "bayes"}, ["search", "'bayes'", "known names are", "random"]),
    ({"scheduler": "hyperband2"}, ["scheduler", "'hyperband2'", "known names are", "fifo"]),
    ({"metric": _DROP}, ["'metric' is required", "metric: val_loss"]),
    ({"mode": _DROP}, ["'mode' is required", "mode: min"]),
    ({"mode": "minimize"}, ["mode", "'min' or 'max'", "'minimize'"]),
    ({"num_samples": 0}, ["num_samples", "positive integer", "0"]),
    ({"num_samples": -3}, ["num_samples", "-3"]),
    ({"max_concurrent": 0}, ["max_concurrent", "positive integer", "0"]),
    ({"trainable": "tuneorch_examples.no_such_module:f"}, ["trainable", "'tuneorch_examples.no_such_module'", "does not import"]),
    ({"trainable": "tuneorch_examples.digits_mlp:no_such_fn"}, ["trainable", "no 'no_such_fn'", "train_digits"]),
    ({"trainable": "tuneorch_examples.digits_mlp"}, ["trainable", "package.module:function", "'tuneorch_examples.digits_mlp'"]),
    ({"resources": {"cpu": -1}}, ["resources.cpu", ">= 0", "-1"]),
    ({"resources": {"cpu": 0, "gpu": 0}}, ["resources", "cpu=0 and gpu=0"]),
    ({"resources": {"gpu": 1.5}}, ["resources.gpu", "1.5"]),
    ({"resources": {"cpus": 2}}, ["resources", "unknown keys ['cpus']"]),
    ({"resources": {"workers": -2}}, ["resources.workers", "integer >= 0", "-2"]),
    ({"resources": {"workers": 2, "strategy": "spread"}}, ["resources.strategy", "STRICT_SPREAD", "'spread'"]),
    ({"seed": -1}, ["seed", "non-negative", "-1"]),
    ({"num_sample": 4}, ["unknown fields", "'num_sample'", "did you mean 'num_samples'"]),
    ({"search": {"n_startup": 3}}, ["'search'", "needs a 'name'"]),
    ({"name": "my run/1"}, ["name", "'my run/1'"]),
    ({"report_timeout_s": 0}, ["report_timeout_s", "positive number of seconds", "got 0", "report_timeout_s: 600"]),
    ({"report_timeout_s": "10m"}, ["report_timeout_s", "positive number of seconds", "'10m'"]),
    ({"cache_results": "yes"}, ["cache_results", "true, false or null", "'yes'"]),
    ({"cache_results": True, "scheduler": "pbt"}, ["cache_results: true contradicts scheduler pbt",
                                                    "set it false"]),
    ({"held_out_seeds": [101, -2]}, ["held_out_seeds", "integer >= 0", "-2", "[101, 102, 103]"]),
    ({"held_out_seeds": [1.5]}, ["held_out_seeds", "integer >= 0", "1.5"]),
    ({"held_out_seeds": []}, ["held_out_seeds", "at least one seed", "[]"]),
    ({"held_out_seeds": "101"}, ["held_out_seeds", "list of integer seeds", "'101'"]),
    ({"held_out_seeds": [3, 4, 3]}, ["held_out_seeds", "distinct", "[3, 4, 3]", "[3]"]),
    ({"held_out_seeds": [1], "seed_key": ""}, ["seed_key", "''", "seed_key: seed"]),
    ({"held_out_seeds": [1], "seed_key": "lr"}, ["seed_key", "'lr'", "tuned parameter", "constant"]),
    ({"held_out_seeds": [0, 1], "space": {"lr": {"type": "float", "low": 1e-3, "high": 0.1}, "seed": 0}},
     ["held_out_seeds", "contains 0", "not used for tuning", "drop 0"]),
]


@pytest.mark.parametrize("changes, fragments", BAD_INPUT, ids=[str(i) for i in range(len(BAD_INPUT))])
def test_bad_input_is_refused_with_a_clear_message(changes, fragments):
    with pytest.raises(SpecError) as info:
        ExperimentSpec.from_dict(spec_with(**changes))
    message = str(info.value)
    for fragment in fragments:
        assert fragment in message, f"{fragment!r} missing from: {message}"


def test_a_good_spec_validates_and_builds_the_space():
    spec = ExperimentSpec.from_dict(spec_with(search={"name": "random"}))
    assert spec.search == "random" and spec.search_options == {}
    assert spec.space.names == ["lr"]
    assert spec.resources == {"cpu": 1, "gpu": 0, "memory": None, "custom": {}}


def test_the_example_spec_is_valid():
    spec = ExperimentSpec.from_yaml("examples/digits_mlp.yaml")
    assert spec.metric == "val_loss" and spec.mode == "min"
    assert set(spec.space.names) == {"lr", "momentum", "hidden", "layers", "dropout", "batch_size"}


def test_overrides_reach_nested_fields(tmp_path):
    path = tmp_path / "spec.yaml"
    path.write_text(textwrap.dedent("""
        trainable: tuneorch_examples.digits_mlp:train_digits
        metric: val_loss
        mode: min
        space:
          lr: {type: float, low: 1.0e-3, high: 0.1, log: true}
    """))
    spec = ExperimentSpec.from_yaml(str(path), ["num_samples=3", "space.lr.high=0.5", "resources.gpu=0.5"])
    assert spec.num_samples == 3
    assert spec.space.params[0].domain.high == 0.5
    assert spec.resources["gpu"] == 0.5


@pytest.mark.parametrize("text, fragment", [
    ("", "is empty"),
    ("- a\n- b\n", "expected a mapping"),
    ("trainable: [unclosed", "not valid YAML"),
])
def test_broken_yaml_files(tmp_path, text, fragment):
    path = tmp_path / "spec.yaml"
    path.write_text(text)
    with pytest.raises(SpecError, match=fragment):
        ExperimentSpec.from_yaml(str(path))


def test_missing_file_and_bad_override():
    with pytest.raises(SpecError, match="does not exist"):
        ExperimentSpec.from_yaml("no/such/spec.yaml")
    with pytest.raises(SpecError, match="key=value"):
        apply_override({}, "num_samples")


def test_bad_searcher_and_scheduler_options_fail_before_ray_starts(tmp_path, monkeypatch):
    from orchestrator import cluster, tune

    def no_ray(address):
        raise AssertionError("Ray was started before the options were checked")

    monkeypatch.setattr(cluster, "connect", no_ray)
    space = {"lr": {"type": "float", "low": 1e-3, "high": 0.1, "log": True}}
    with pytest.raises(SpecError, match="search_options.n_startp: TPESearch.*'tpe'.*did you mean 'n_startup'"):
        tune("tuneorch_examples.digits_mlp:train_digits", space, metric="val_loss", mode="min", search="tpe",
             search_options={"n_startp": 3}, storage_path=str(tmp_path))
    with pytest.raises(SpecError, match="scheduler_options.eta"):
        tune("tuneorch_examples.digits_mlp:train_digits", space, metric="val_loss", mode="min", scheduler="asha",
             scheduler_options={"eta": 1}, storage_path=str(tmp_path))
    # PBT's options that name parameters are checked against the experiment's space.
    with pytest.raises(SpecError, match="scheduler_options.mutable.*'momentum'"):
        tune("tuneorch_examples.digits_mlp:train_digits", space, metric="val_loss", mode="min", scheduler="pbt",
             scheduler_options={"mutable": ["momentum"]}, storage_path=str(tmp_path))
    assert list(tmp_path.iterdir()) == []
