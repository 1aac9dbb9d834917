"""Artifacts on the MLflow parent run at the end of a tuning run (orchestrator/tracking/artifact_log.py,
plots.py, lineage.py, model_registry.py).

One short real tune of the digits MLP (3 trials, 2 epochs) against the session's real MLflow
server, with ``register_model``, feeds most tests; the failure tests point the uploads at a
dead server or at a client that refuses them.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import tempfile
import time
import uuid

import pytest

from orchestrator import tune
from orchestrator.spec import ExperimentSpec, SpecError
from orchestrator.tracking import artifact_log, model_registry, plots
from orchestrator.tracking.lineage import lineage_of, normalise_lineage
from search_algs import Categorical, Float, Int

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
DIGITS_SPACE = {"lr": Float(0.02, 0.3, log=True), "hidden": Int(16, 48), "layers": Categorical([1, 2]),
                "momentum": 0.9, "epochs": 2}


def quick_steps(config):
    """Two checkpointed steps, no torch: for the runs whose model does not matter."""
    from ray import tune as ray_tune

    for step in (1, 2):
        with tempfile.TemporaryDirectory() as directory:
            with open(os.path.join(directory, "step.json"), "w") as f:
                json.dump({"step": step}, f)
            ray_tune.report({"loss": (config["x"] - 0.3) ** 2 + 1.0 / step},
                            checkpoint=ray_tune.Checkpoint.from_directory(directory))


def _client(uri):
    from mlflow import MlflowClient

    return MlflowClient(uri)


def _all_artifacts(client, run_id, path=None):
    out = []
    for item in client.list_artifacts(run_id, path):
        if item.is_dir:
            out += _all_artifacts(client, run_id, item.path)
        else:
            out.append((item.path, item.file_size))
    return out


def _dead_uri():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{s.getsockname()[1]}"  # closed when the block ends: refused


@pytest.fixture(scope="module")
def digits_run(mlflow_server_process, ray_local, mlflow_server, tmp_path_factory):
    model_name = f"digits-{uuid.uuid4().hex[:8]}"
    reports = []
    original = artifact_log.log_run_artifacts

    def recording(*args, **kwargs):
        reports.append(original(*args, **kwargs))
        return reports[-1]

    artifact_log.log_run_artifacts = recording  # the API looks it up at call time
    start = time.monotonic()
    try:
        result = tune("tuneorch_examples.digits_mlp:train_digits", DIGITS_SPACE, metric="val_loss", mode="min",
                      num_samples=3, max_concurrent=2, seed=1, tracking_uri=mlflow_server,
                      storage_path=str(tmp_path_factory.mktemp("digits")), name="artifacts-digits",
                      register_model=model_name, verbose=0)
    finally:
        artifact_log.log_run_artifacts = original
    seconds = time.monotonic() - start
    print(f"\ndigits tune: {seconds:.1f} s, of which artifacts and model registration: "
          f"{reports[0].seconds:.1f} s")
    assert reports[0].complete, reports[0].failed
    assert result.best_trial_id is not None and result.mlflow_run_id
    return result, model_name


# ----- the real run ----------------------------------------------------------------------


def test_parent_run_holds_spec_tables_plots_and_best_checkpoint(digits_run, mlflow_server, tmp_path):
    import pyarrow.parquet as pq

    result, model_name = digits_run
    client = _client(mlflow_server)
    run_id = result.mlflow_run_id
    files = dict(_all_artifacts(client, run_id))

    local = client.download_artifacts(run_id, "spec.json", str(tmp_path))
    with open(local) as f:
        spec = json.load(f)
    assert spec["summary"]["trainable"] == "tuneorch_examples.digits_mlp:train_digits"
    assert spec["summary"]["metric"] == "val_loss" and spec["summary"]["num_samples"] == 3
    space = {row["name"]: row for row in spec["space"]}
    assert space["lr"] == {"name": "lr", "type": "float", "low": 0.02, "high": 0.3, "log": True, "step": None}
    assert space["layers"]["choices"] == [1, 2]
    assert spec["settings"]["register_model"] == model_name
    assert spec["result"]["best_trial_id"] == result.best_trial_id
    assert spec["result"]["best_metric"] == pytest.approx(result.best_metric)
    assert spec["result"]["best_config"]["hidden"] == result.best_config["hidden"]
    assert spec["result"]["statuses"] == {"TERMINATED": 3}

    for name in ("trials", "metrics", "param_history"):
        assert files.get(f"tables/{name}.parquet", 0) > 0, sorted(files)
    tables_dir = client.download_artifacts(run_id, "tables", str(tmp_path))
    trials = pq.read_table(os.path.join(tables_dir, "trials.parquet")).to_pandas()
    metrics = pq.read_table(os.path.join(tables_dir, "metrics.parquet")).to_pandas()
    history = pq.read_table(os.path.join(tables_dir, "param_history.parquet")).to_pandas()
    assert sorted(trials["trial_id"]) == sorted(result.trials["trial_id"])
    assert len(metrics[metrics["key"] == "val_loss"]) == 3 * 2
    assert set(history["key"]) >= {"lr", "hidden", "layers"}

    for name in ("optimization_history", "parallel_coordinates", "learning_curves"):
        path = f"plots/{name}.png"
        assert files.get(path, 0) > 2000, sorted(files)
        with open(client.download_artifacts(run_id, path, str(tmp_path)), "rb") as f:
            assert f.read(8) == PNG_MAGIC
    assert "plots/pbt_lineage.png" not in files  # no PBT, no lineage

    assert files.get("best_checkpoint/state.pt", 0) > 1000, sorted(files)
    run = client.get_run(run_id)
    best_dir = run.data.tags[artifact_log.BEST_CHECKPOINT_TAG]
    assert result.best_trial_id in best_dir and os.path.basename(best_dir).startswith("checkpoint_")
    assert run.data.tags[artifact_log.ARTIFACTS_TAG] == "complete"
    assert run.info.status == "FINISHED"  # logging the model did not reopen the run


def test_best_model_is_registered_as_champion_and_predicts(digits_run, mlflow_server):
    import mlflow.pytorch
    import torch

    from tuneorch_examples.digits_mlp import load_digits_split, load_model

    result, model_name = digits_run
    client = _client(mlflow_server)
    version = client.get_model_version_by_alias(model_name, "champion")
    assert version.run_id == result.mlflow_run_id and version.status == "READY"
    assert client.get_run(result.mlflow_run_id).data.tags[artifact_log.REGISTERED_TAG] == \
        f"{model_name}/{version.version}"
    assert version.source.startswith("models:/m-")  # a logged model (MLflow 3), not a run path
    logged = client.get_logged_model(version.source.removeprefix("models:/"))
    assert logged.experiment_id == result.mlflow_experiment_id
    assert logged.source_run_id == result.mlflow_run_id
    with model_registry.using_tracking_uri(mlflow_server):
        model = mlflow.pytorch.load_model(f"models:/{model_name}@champion")
    _, (x_val, y_val) = load_digits_split()
    with torch.no_grad():
        logits = model(torch.from_numpy(x_val))
    assert tuple(logits.shape) == (len(x_val), 10)
    # the very weights of the best checkpoint
    checkpoint = client.get_run(result.mlflow_run_id).data.tags[artifact_log.BEST_CHECKPOINT_TAG]
    with torch.no_grad():
        expected = load_model(checkpoint, result.best_config)(torch.from_numpy(x_val))
    assert torch.equal(logits, expected)
    assert float((logits.argmax(1) == torch.from_numpy(y_val)).float().mean()) > 0.5


def test_lineage_records_give_a_lineage_plot(digits_run, mlflow_server, tmp_path):
    result, _ = digits_run
    client = _client(mlflow_server)
    run_id = client.create_run(result.mlflow_experiment_id, run_name="lineage").info.run_id
    a, b, c = sorted(result.trials["trial_id"])
    records = [
        (a, b, 1, {"lr": 0.1, "hidden": 20}, {"lr": 0.12, "hidden": 20}),  # the brief's tuple form
        {"target": c, "donor": b, "time": 2, "donor_time": 1,            # the PBT core's JSON form
         "target_config": {"lr": 0.05}, "new_config": {"lr": 0.04}},
    ]
    spec = ExperimentSpec("tuneorch_examples.digits_mlp:train_digits", DIGITS_SPACE, "val_loss", "min")
    report = artifact_log.log_run_artifacts(mlflow_server, run_id, result.experiment_path, result,
                                         spec=spec, lineage=records)
    assert report.complete, report.failed
    files = dict(_all_artifacts(client, run_id))
    assert files.get("plots/pbt_lineage.png", 0) > 2000
    with open(client.download_artifacts(run_id, "pbt_lineage.json", str(tmp_path))) as f:
        lineage = json.load(f)
    assert [(r["target"], r["donor"], r["step"], r["donor_step"]) for r in lineage] == \
        [(a, b, 1, 1), (c, b, 2, 1)]
    assert lineage[0]["new_config"] == {"lr": 0.12, "hidden": 20}
    assert report.model_version is None  # register_model is the spec's, and this spec has none


def test_remote_checkpoint_is_a_tag_and_storage_is_searched_without_a_grid(digits_run, mlflow_server):
    """With remote storage (here: a checkpoint whose filesystem says s3) only the URI is kept;
    without a result grid the best checkpoint is found in the experiment directory."""
    from types import SimpleNamespace

    result, _ = digits_run
    found = model_registry.best_checkpoint(SimpleNamespace(best_trial_id=result.best_trial_id, result_grid=None),
                                      result.experiment_path)
    expected = next(r.checkpoint for r in result.result_grid if r.metrics["trial_id"] == result.best_trial_id)
    assert found is not None and found.path == expected.path

    remote = SimpleNamespace(path="bucket/runs/exp/trial/checkpoint_000001",
                             filesystem=SimpleNamespace(type_name="s3"))
    fake = SimpleNamespace(**{k: getattr(result, k) for k in (
        "best_trial_id", "best_config", "best_metric", "metric", "mode", "trials", "errors", "note")},
        result_grid=[SimpleNamespace(metrics={"trial_id": result.best_trial_id}, checkpoint=remote)])
    client = _client(mlflow_server)
    run_id = client.create_run(result.mlflow_experiment_id, run_name="remote").info.run_id
    spec = ExperimentSpec("tuneorch_examples.digits_mlp:train_digits", DIGITS_SPACE, "val_loss", "min")
    report = artifact_log.log_run_artifacts(mlflow_server, run_id, result.experiment_path, fake, spec=spec)
    assert report.complete, report.failed
    assert f"tag {artifact_log.BEST_CHECKPOINT_TAG}" in report.uploaded
    assert client.get_run(run_id).data.tags[artifact_log.BEST_CHECKPOINT_TAG] == \
        "s3://bucket/runs/exp/trial/checkpoint_000001"
    assert not any(p.startswith("best_checkpoint") for p, _ in _all_artifacts(client, run_id))


def test_plots_take_pbt_repeats_choices_gaps_and_odd_ids(tmp_path):
    """The plot functions alone: steps reported twice (a PBT clone), string choices, a
    conditional parameter missing in some trials, a non-finite metric, ids without order."""
    import numpy as np
    import pandas as pd

    ids = ["f3", "0a", "c1", "9b"]
    metrics = pd.DataFrame(
        [(t, s, 100 + 10 * k + s, "loss", 1.0 / (s + k)) for k, t in enumerate(ids) for s in range(1, 7)]
        + [("c1", s, 200 + s, "loss", 0.05 / s) for s in (4, 5, 6)],  # c1 cloned at 3, re-reports 4..6
        columns=["trial_id", "step", "timestamp", "key", "value"])
    trials = pd.DataFrame({"trial_id": ids, "loss": [0.2, np.nan, 0.01, 0.15],
                           "config/lr": [1e-3, 1e-2, 3e-2, 1e-4],
                           "config/opt": ["adam", "sgd", "adam", "rms"],
                           "config/depth": [2.0, np.nan, 3.0, np.nan], "config/epochs": [6, 6, 6, 6]})
    space = {"lr": {"type": "float", "log": True},
             "opt": {"type": "categorical", "choices": ["sgd", "adam", "rms"]}}
    lineage = normalise_lineage([("c1", "f3", 3, {"lr": 0.01}, {"lr": 0.03})])
    paths = {name: str(tmp_path / f"{name}.png") for name in ("history", "parallel", "curves", "lineage")}
    plots.plot_optimization_history(trials, "loss", "min", paths["history"], order=ids)
    plots.plot_parallel_coordinates(trials, "loss", "min", paths["parallel"], space)
    plots.plot_learning_curves(metrics, "loss", "min", paths["curves"], best_trial="c1", order=ids)
    plots.plot_pbt_lineage(lineage, metrics, "loss", "min", paths["lineage"], order=ids)
    for path in paths.values():
        with open(path, "rb") as f:
            assert f.read(8) == PNG_MAGIC and os.path.getsize(path) > 2000
    with pytest.raises(plots.NothingToPlot):
        plots.plot_learning_curves(metrics, "accuracy", "max", str(tmp_path / "none.png"))
    assert plots.creation_order(None, metrics) == ["f3", "0a", "c1", "9b"]  # by first report


def test_lineage_of_finds_a_schedulers_lineage():
    class Policy:
        def lineage(self):
            return [("t1", "t0", 4, {}, {})]

    class Adapter:
        policy = Policy()

    assert lineage_of(Policy()) == [("t1", "t0", 4, {}, {})]
    assert lineage_of(Adapter()) == [("t1", "t0", 4, {}, {})]
    assert lineage_of(object()) is None
    record = {"seq": 0, "target": "t1", "donor": "t0", "time": 8.0, "donor_time": 6.0,
              "target_config": {"lr": 0.1}, "donor_config": {"lr": 0.2}, "new_config": {"lr": 0.24},
              "operations": {"lr": "perturb*1.2"}, "generation": None}  # PBTScheduler.lineage()
    assert normalise_lineage([record]) == [{
        "seq": 0, "target": "t1", "donor": "t0", "step": 8.0, "donor_step": 6.0,
        "old_config": {"lr": 0.1}, "donor_config": {"lr": 0.2}, "new_config": {"lr": 0.24},
        "operations": {"lr": "perturb*1.2"}, "generation": None}]
    with pytest.raises(ValueError, match="target, donor, step"):
        normalise_lineage([("t1", "t0")])


# ----- failures: loud, never fatal -------------------------------------------------------


def test_dead_server_logs_a_warning_naming_each_part(digits_run, caplog):
    result, _ = digits_run
    caplog.set_level(logging.WARNING, logger="orchestrator.tracking.artifact_log")
    start = time.monotonic()
    report = artifact_log.log_run_artifacts(_dead_uri(), result.mlflow_run_id, result.experiment_path, result)
    assert time.monotonic() - start < 30
    assert not report.uploaded
    assert set(report.failed) >= {"spec.json", "tables/", "plots/", "best_checkpoint"}
    assert any(k.startswith("model") for k in report.failed)  # the spec read back asks for one
    text = caplog.text
    assert "incomplete" in text and "spec.json" in text and "best_checkpoint" in text
    assert "tracking server unreachable" in text


def test_refused_uploads_are_named_and_the_rest_still_goes(digits_run, mlflow_server, caplog):
    from mlflow import MlflowClient

    result, _ = digits_run
    client = _client(mlflow_server)
    run_id = client.create_run(result.mlflow_experiment_id, run_name="refused").info.run_id

    class RefusesPlots(MlflowClient):
        def log_artifacts(self, run_id, local_dir, artifact_path=None):
            if artifact_path == "plots":
                raise PermissionError("artifact store said no")
            return super().log_artifacts(run_id, local_dir, artifact_path)

    caplog.set_level(logging.WARNING, logger="orchestrator.tracking.artifact_log")
    spec = ExperimentSpec("tuneorch_examples.digits_mlp:train_digits", DIGITS_SPACE, "val_loss", "min")
    report = artifact_log.log_run_artifacts(mlflow_server, run_id, result.experiment_path, result,
                                         spec=spec, client=RefusesPlots(mlflow_server))
    assert list(report.failed) == ["plots/"] and "artifact store said no" in report.failed["plots/"]
    assert "spec.json" in report.uploaded and "best_checkpoint/" in report.uploaded
    assert "plots/ not uploaded" in caplog.text
    files = dict(_all_artifacts(client, run_id))
    assert "tables/trials.parquet" in files and not any(p.startswith("plots/") for p in files)
    assert client.get_run(run_id).data.tags[artifact_log.ARTIFACTS_TAG] == "incomplete: plots/"


def test_a_run_whose_artifacts_fail_still_returns_its_result(ray_local, mlflow_server, tmp_path,
                                                             monkeypatch, caplog):
    original = artifact_log.log_run_artifacts
    dead = _dead_uri()
    monkeypatch.setattr(artifact_log, "log_run_artifacts",
                        lambda uri, *args, **kwargs: original(dead, *args, **kwargs))
    caplog.set_level(logging.WARNING, logger="orchestrator.tracking.artifact_log")
    result = tune(quick_steps, {"x": Float(0.0, 1.0)}, metric="loss", mode="min", num_samples=1,
                  tracking_uri=mlflow_server, storage_path=str(tmp_path),
                  name="artifacts-dead", verbose=0)
    assert result.best_metric is not None and len(result.trials) == 1
    assert "incomplete" in caplog.text and "tracking server unreachable" in caplog.text
    run = _client(mlflow_server).get_run(result.mlflow_run_id)
    assert run.info.status == "FINISHED" and artifact_log.ARTIFACTS_TAG not in run.data.tags


# ----- the model protocol -----------------------------------------------------------------


def test_register_model_needs_load_model_and_tracking():
    base = {"space": {"x": {"type": "float", "low": 0, "high": 1}}, "metric": "loss", "mode": "min"}
    with pytest.raises(SpecError, match=r"the trainable's module 'trainables' defines no load_model"):
        ExperimentSpec.from_dict({**base, "trainable": "trainables:slow_steps", "register_model": "m"})
    with pytest.raises(SpecError, match="defines no load_model"):  # refused before Ray starts
        tune(quick_steps, {"x": Float(0.0, 1.0)}, metric="loss", mode="min", register_model="m")
    for bad in ("", "a/b", "a:b", " m", 3, "."):
        with pytest.raises(SpecError, match="register_model: must be a registered model name"):
            ExperimentSpec.from_dict({**base, "trainable": "tuneorch_examples.digits_mlp:train_digits",
                                      "register_model": bad})
    with pytest.raises(SpecError, match="needs MLflow tracking"):
        ExperimentSpec.from_dict({**base, "trainable": "tuneorch_examples.digits_mlp:train_digits",
                                  "register_model": "m", "tracking_uri": ""})
    spec = ExperimentSpec.from_dict({**base, "trainable": "tuneorch_examples.digits_mlp:train_digits",
                                     "register_model": "digits"})
    assert spec.register_model == "digits"


def test_input_example_makes_a_pt2_model(mlflow_server, tmp_path):
    """``model_input_example`` in the trainable's module: saved with torch.export, no pickle."""
    import mlflow.pytorch
    import torch
    from ray.tune import Checkpoint

    from tuneorch_examples.digits_mlp import build_model, load_model

    config = {"hidden": 8, "layers": 1, "dropout": 0.0}
    torch.manual_seed(0)
    net = build_model(**config)
    torch.save({"model": net.state_dict()}, tmp_path / "state.pt")
    client = _client(mlflow_server)
    experiment = client.get_experiment_by_name("artifacts-pt2") or client.get_experiment(
        client.create_experiment("artifacts-pt2"))
    run_id = client.create_run(experiment.experiment_id).info.run_id
    name = f"pt2-{uuid.uuid4().hex[:8]}"
    version = model_registry.log_and_register_model(
        mlflow_server, run_id, Checkpoint.from_directory(str(tmp_path)), config, load_model, name,
        input_example_fn=lambda cfg: torch.zeros(4, 64)).version
    with model_registry.using_tracking_uri(mlflow_server):
        loaded = mlflow.pytorch.load_model(f"models:/{name}@champion")
        files = [f.path for f in mlflow.artifacts.list_artifacts(f"models:/{name}/{version}/data")] \
            if hasattr(mlflow.artifacts, "list_artifacts") else []
    x = torch.randn(5, 64)
    with torch.no_grad():
        assert torch.allclose(loaded(x), net(x), atol=1e-6)
    assert not any(p.endswith("model.pth") for p in files)  # pt2, not a pickled module
