"""The spec saved beside an experiment is data: it round-trips, and resume never runs code from it."""

from __future__ import annotations

import json
import pickle

import pytest

import orchestrator
from orchestrator.spec import ExperimentSpec, SpecError
from orchestrator.spec_file import LEGACY_SPEC_FILE, SPEC_FILE, load_spec, save_spec, to_data
from search_algs import Categorical, Float, Int


def quadratic(config):  # importable as test_spec_file:quadratic (tests/ is on the path)
    return {"loss": (config["x"] - 0.3) ** 2}


def _spec(**overrides) -> ExperimentSpec:
    fields = dict(
        trainable=quadratic,
        space={"x": Float(-1.0, 1.0), "lr": Float(1e-4, 0.1, log=True, step=None),
               "depth": Int(1, 9, step=2), "opt": Categorical(["adam", {"sgd_momentum": Float(0.0, 0.9)}]),
               "shape": (3, 4), "name": "fixed", "nested": {"units": Int(8, 64, log=True)}},
        metric="loss", mode="min", name="round-trip", search="tpe", search_options={"n_startup": 5},
        scheduler="asha", scheduler_options={"max_t": 9}, num_samples=7, seed=3,
        points_to_evaluate=[{"x": 0.1}], stop={"training_iteration": 5}, tracking_uri="",
        held_out_seeds=None, report_timeout_s=30.0,
    )
    fields.update(overrides)
    spec = ExperimentSpec(**fields)
    spec.validate()
    return spec


def test_a_spec_round_trips_through_its_data_file(tmp_path):
    spec = _spec()
    save_spec(spec, str(tmp_path))
    text = (tmp_path / SPEC_FILE).read_text()
    json.loads(text)  # plain JSON, readable by anyone
    back = load_spec(str(tmp_path))
    assert back.trainable == "test_spec_file:quadratic"
    assert back.load_trainable() is quadratic
    assert back.space.names == spec.space.names
    assert [p.domain for p in back.space.params] == [p.domain for p in spec.space.params]
    assert back.space.template["shape"] == (3, 4)
    for name in ("metric", "mode", "name", "search", "search_options", "scheduler", "scheduler_options",
                 "num_samples", "seed", "points_to_evaluate", "stop", "resources", "report_timeout_s"):
        assert getattr(back, name) == getattr(spec, name), name


def test_searcher_objects_are_recorded_by_class_only(tmp_path):
    from search_algs.tpe import TPESearch

    spec = _spec(search=TPESearch(), search_options={})
    data = to_data(spec)
    assert data["spec"]["search"] == {"__object__": "search_algs.tpe:TPESearch"}
    save_spec(spec, str(tmp_path))
    assert load_spec(str(tmp_path)).search is None  # Tune restores the object from its own state


def test_a_trainable_from_main_is_refused_at_resume_with_the_way_out(tmp_path):
    def local_trainable(config):
        return {"loss": 0.0}

    spec = _spec(trainable=local_trainable)
    save_spec(spec, str(tmp_path))
    with pytest.raises(SpecError) as info:
        orchestrator.resume(str(tmp_path))
    message = str(info.value)
    assert "local_trainable" in message and "cannot be imported by name" in message
    assert "package.module:function" in message


def test_resume_never_unpickles_a_crafted_folder(tmp_path):
    """An attacker's pickle in the experiment folder: resume refuses it without reading it."""
    marker = tmp_path / "pwned"

    class Payload:
        def __reduce__(self):
            return (open, (str(marker), "w"))

    (tmp_path / LEGACY_SPEC_FILE).write_bytes(pickle.dumps(Payload()))
    pickle.loads((tmp_path / LEGACY_SPEC_FILE).read_bytes()).close()  # the payload does work...
    marker.unlink()
    with pytest.raises(SpecError, match="no longer reads"):
        orchestrator.resume(str(tmp_path))
    assert not marker.exists()  # ...but resume never ran it


@pytest.mark.parametrize("content, expected", [
    (b"\x80\x04\x95garbage", "not a tuneorch spec"),
    (b'{"format": 99, "spec": {}}', "not a tuneorch spec"),
    (b"[1, 2]", "not a tuneorch spec"),
])
def test_a_damaged_spec_file_is_refused_clearly(tmp_path, content, expected):
    (tmp_path / SPEC_FILE).write_bytes(content)
    with pytest.raises(SpecError, match=expected):
        orchestrator.resume(str(tmp_path))


def test_a_missing_spec_names_the_folder_to_give(tmp_path):
    with pytest.raises(SpecError, match="experiment directory that 'tuneorch run' printed"):
        orchestrator.resume(str(tmp_path))
