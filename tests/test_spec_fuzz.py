"""Fuzzing the spec parser: any input either validates or raises SpecError, never anything else."""

from __future__ import annotations

import dataclasses

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from orchestrator.spec import ExperimentSpec, SpecError

FIELDS = [f.name for f in dataclasses.fields(ExperimentSpec)]

scalars = st.one_of(
    st.none(), st.booleans(), st.integers(-10, 10**6), st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=12), st.sampled_from(["min", "max", "random", "fifo", "float", "int", "choice",
                                           "tuneorch_examples.digits_mlp:train_digits", "log", "1e-3"]),
)
values = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.dictionaries(st.sampled_from(["type", "low", "high", "log", "step", "values", "weights",
                                         "name", "cpu", "gpu", "lr", "x"]) | st.text(max_size=5),
                        inner, max_size=5),
    ),
    max_leaves=12,
)
leaf_domains = st.fixed_dictionaries(
    {"type": st.sampled_from(["float", "int", "choice", "uniform", "randint", "bogus"])},
    optional={"low": scalars, "high": scalars, "log": scalars, "step": scalars, "values": values},
)
specs = st.dictionaries(
    st.sampled_from(FIELDS + ["extra", "num_sample"]),
    values,
    max_size=len(FIELDS),
).map(lambda d: {**{"trainable": "tuneorch_examples.digits_mlp:train_digits", "metric": "m", "mode": "min",
                    "space": {"x": {"type": "float", "low": 0, "high": 1}}}, **d})


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(specs)
def test_any_spec_mapping_validates_or_raises_spec_error(data):
    try:
        ExperimentSpec.from_dict(data)
    except SpecError as exc:
        assert str(exc)  # a message, never empty


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.dictionaries(st.text(min_size=1, max_size=6), leaf_domains | values, min_size=1, max_size=4))
def test_any_space_validates_or_raises_spec_error(space):
    data = {"trainable": "tuneorch_examples.digits_mlp:train_digits", "metric": "m", "mode": "max", "space": space}
    try:
        spec = ExperimentSpec.from_dict(data)
    except SpecError as exc:
        assert str(exc).startswith("space:") or "space" in str(exc)
    else:
        assert spec.space.dim >= 1


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=200))
def test_any_yaml_text_validates_or_raises_spec_error(tmp_path_factory, text):
    path = tmp_path_factory.mktemp("fuzz") / "spec.yaml"
    path.write_text(text)
    try:
        ExperimentSpec.from_yaml(str(path))
    except SpecError:
        pass
