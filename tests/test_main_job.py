"""The README's main job, end to end: the CLI tunes the torch example and MLflow lists the records."""

from __future__ import annotations

import json
import os
import pathlib
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]


def tuneorch(*args: str, cwd: pathlib.Path, timeout: int = 400) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "orchestrator.cli", *args]
    return subprocess.run(command, cwd=cwd, capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})


@pytest.mark.slow
def test_the_main_job_runs_and_its_records_are_listed_by_mlflow(tmp_path):
    storage = tmp_path / "runs"
    done = tuneorch("run", str(ROOT / "examples" / "digits_mlp.yaml"), "--quiet",
                    "--set", "num_samples=3", "--set", "max_concurrent=2",
                    "--set", "space.epochs=3", "--set", f"storage_path={storage}", cwd=ROOT)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    summary = done.stdout
    # Ray's own INFO lines from the workers stay out of the console below --verbose
    assert "Checkpoint successfully created" not in done.stdout + done.stderr, done.stderr[-2000:]
    for line in ("best metric", "val_loss =", "mlflow records", "open the UI", "resume with", "registered model"):
        assert line in summary, summary
    database = storage / "mlflow.db"
    assert database.exists()

    env = {**os.environ, "MLFLOW_TRACKING_URI": f"sqlite:///{database}"}
    experiment = subprocess.run([sys.executable, "-m", "mlflow", "experiments", "get", "--experiment-name", "digits-mlp"],
                                capture_output=True, text=True, env=env, timeout=120)
    assert experiment.returncode == 0, experiment.stderr
    experiment_id = next(line.split(":", 1)[1].strip() for line in experiment.stdout.splitlines()
                         if line.lower().startswith("experiment id") or line.lower().startswith("experiment_id"))
    runs = subprocess.run([sys.executable, "-m", "mlflow", "runs", "list", "--experiment-id", experiment_id],
                          capture_output=True, text=True, env=env, timeout=120)
    assert runs.returncode == 0, runs.stderr
    listed = [line for line in runs.stdout.splitlines()[2:] if line.strip()]
    assert len(listed) == 1 + 3, runs.stdout  # the parent run and one child run per trial

    # The YAML registers the best trial's model: a version of digits-mlp with the alias champion,
    # made from the parent run (tagged with it), which loads as a torch model.
    from mlflow import MlflowClient

    client = MlflowClient(f"sqlite:///{database}")
    champion = client.get_model_version_by_alias("digits-mlp", "champion")
    assert champion.status == "READY", champion
    parent = client.get_run(champion.run_id)
    assert parent.info.experiment_id == experiment_id and "mlflow.parentRunId" not in parent.data.tags
    assert parent.data.tags["tuneorch.registered_model"] == f"digits-mlp/{champion.version}"
    load = subprocess.run([sys.executable, "-c", "import mlflow, torch; "
                           "m = mlflow.pytorch.load_model('models:/digits-mlp@champion'); "
                           "print(tuple(m(torch.zeros(2, 64)).shape))"],
                          capture_output=True, text=True, env=env, timeout=180)
    assert load.returncode == 0 and load.stdout.strip().endswith("(2, 10)"), load.stderr[-3000:]


def test_the_summary_rows_of_a_registered_model():
    from orchestrator.console import registered_model_rows, table

    rows = registered_model_rows("digits mlp", "3", "champion", "http://127.0.0.1:5000/")
    assert rows == [
        ("registered model", "digits mlp version 3, alias champion"),
        ("load it with", "mlflow.pytorch.load_model('models:/digits mlp@champion')"),
        ("model page", "http://127.0.0.1:5000/#/models/digits%20mlp/versions/3"),
    ]
    assert all(len(line) <= 80 for line in table(rows, 80).splitlines())
    failed = registered_model_rows("digits-mlp", None, "champion", "http://mlflow:5000", error="server down")
    assert failed == [("registered model", "digits-mlp: not registered (server down)")]


def test_validate_reports_bad_specs_without_a_traceback(tmp_path):
    spec = tmp_path / "bad.yaml"
    spec.write_text((ROOT / "examples" / "digits_mlp.yaml").read_text().replace("mode: min", "mode: lowest"))
    done = tuneorch("validate", str(spec), cwd=ROOT, timeout=120)
    assert done.returncode == 2
    assert "mode: must be 'min' or 'max', got 'lowest'" in done.stderr
    assert "Traceback" not in done.stderr


@pytest.mark.slow
def test_pbt_with_a_searcher_from_a_spec_records_its_lineage(tmp_path):
    from mlflow import MlflowClient

    storage = tmp_path / "runs"
    done = tuneorch("run", str(ROOT / "examples" / "digits_mlp_pbt.yaml"), "--quiet",
                    "--set", "space.epochs=6", "--set", "scheduler.perturbation_interval=2",
                    "--set", f"storage_path={storage}", cwd=ROOT)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    client = MlflowClient(f"sqlite:///{storage / 'mlflow.db'}")
    (experiment,) = [e for e in client.search_experiments() if e.name == "digits-mlp-pbt"]
    parents = [r for r in client.search_runs([experiment.experiment_id])
               if "mlflow.parentRunId" not in r.data.tags]
    assert len(parents) == 1
    run_id = parents[0].info.run_id
    artifacts = {a.path for a in client.list_artifacts(run_id)} | {a.path for a in client.list_artifacts(run_id, "plots")}
    assert "spec.json" in artifacts, artifacts
    state = json.loads(next(storage.glob("digits-mlp-pbt-*/pbt-state.json")).read_text())
    # The searcher proposed the population; every member trained to the end (exploits
    # included: a clone continues from the donor's step).
    assert len(state["members"]) == 4
    for member in state["members"].values():
        assert member["ever_checkpointed"] and member["status"] == "finished" and member["time"] == 6.0
    # Whether an exploit happens in 6 epochs depends on the race; when one does, it is recorded
    # everywhere and the clone kept the donor's (immutable) architecture with its weights.
    for exploit in state["lineage"]:
        assert exploit["new_config"]["hidden"] == exploit["donor_config"]["hidden"]
        assert exploit["operations"]["hidden"] == "keep"
    assert ("pbt_lineage.json" in artifacts) == bool(state["lineage"]), artifacts
