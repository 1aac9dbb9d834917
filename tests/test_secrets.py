"""Secrets never leave the trainable: a run whose trainable uses a secret from ``secrets=[...]``
leaves none of its bytes in the experiment folder, the MLflow store and artifacts, the Parquet
export or what the run printed; and values under secret-looking config keys are ``***`` in the
summary and ``spec.json`` even when they are tuned choices (defence in depth)."""

from __future__ import annotations

import json
import os
import pathlib
import uuid

import pytest
from ray import tune as ray_tune

from orchestrator import tune
from search_algs import Categorical, Float

SECRET_VAR = "TUNEORCH_TEST_SECRET"
SECRET = f"sk-live-{uuid.uuid4().hex}"
# Set when this module is imported, i.e. before the session's Ray starts: a local Ray's workers
# inherit the environment Ray started with (the test process's), as they inherit the driver's
# in `tuneorch run`. The autouse fixture of conftest keeps it for the session.
os.environ[SECRET_VAR] = SECRET


def uses_its_secret(config):
    """Needs the secret to work (its length is part of the loss), as a real client would."""
    secret = os.environ[SECRET_VAR]
    assert secret.startswith("sk-live-")
    for step in (1, 2):
        ray_tune.report({"loss": config["x"] + config["api_key"] / 1000 + len(secret) * 0.0 + 1.0 / step,
                         "secret_length": len(secret)})


def _files_holding(root: pathlib.Path, needle: bytes) -> list[str]:
    found = []
    for path in sorted(root.rglob("*")):
        if path.is_file() and not path.is_symlink():
            if needle in path.read_bytes():
                found.append(str(path))
    return found


@pytest.mark.slow
def test_no_secret_byte_anywhere_after_a_run(ray_local, mlflow_server_process, mlflow_server, tmp_path, capfd,
                                             monkeypatch):
    from mlflow import MlflowClient

    monkeypatch.setenv(SECRET_VAR, SECRET)  # (already set at import, see above)
    # api_key: a secret-looking key holding non-string values, tuned as a choice (validation
    # allows it: it is not a string); every record must show *** for it.
    space = {"x": Float(0.0, 1.0), "api_key": Categorical([111, 222]), "layers": 2}
    result = tune(uses_its_secret, space, metric="loss", mode="min", num_samples=3, max_concurrent=2, seed=0,
                  resources={"cpu": 0.5}, secrets=[SECRET_VAR], tracking_uri=mlflow_server,
                  storage_path=str(tmp_path / "runs"), name="secrets", verbose=1)
    export_dir = tmp_path / "export"
    result.export_parquet(str(export_dir))
    summary = result.summary()
    print(summary)
    out, err = capfd.readouterr()

    # The trainable had the secret, and the run is complete.
    assert not result.errors and len(result.trials) == 3
    assert set(result.trials["secret_length"]) == {len(SECRET)}
    assert result.best_config["api_key"] in (111, 222)

    # 1. The byte search: every file under every place the run wrote, and what it printed.
    needle = SECRET.encode()
    server_dir = pathlib.Path(mlflow_server_process.workdir)  # its sqlite store + artifacts
    places = {"experiment folder": pathlib.Path(result.experiment_path), "mlflow server store": server_dir,
              "parquet export": export_dir}
    searched = {name: sum(1 for p in root.rglob("*") if p.is_file()) for name, root in places.items()}
    assert all(searched.values()), searched
    found = {name: _files_holding(root, needle) for name, root in places.items()}
    assert found == {name: [] for name in places}, found
    assert needle not in out.encode() and needle not in err.encode()
    assert result.trials.shape[0] and SECRET not in result.trials.to_json()
    # nor the name of the variable mapped to a value anywhere but in the spec
    assert not any(part in out for part in (f"{SECRET_VAR}={SECRET}", SECRET[8:]))

    # 2. Trial folders carry no config value in their names.
    folders = [p.name for p in pathlib.Path(result.experiment_path).iterdir() if p.is_dir()]
    trial_folders = [f for f in folders if f.startswith("uses_its_secret_")]
    assert len(trial_folders) == 3, folders
    assert all("=" not in f and "api_key" not in f and "0." not in f for f in trial_folders), trial_folders
    assert sorted(f[len("uses_its_secret_"):] for f in trial_folders) == sorted(result.trials["trial_id"])

    # 3. Defence in depth: the secret-looking key's values are *** in the summary and spec.json.
    best_row = [line for line in summary.splitlines() if line.strip().startswith("api_key")]
    assert best_row and best_row[0].rstrip().endswith("| ***"), summary
    client = MlflowClient(mlflow_server)
    spec_json = json.loads(pathlib.Path(client.download_artifacts(
        result.mlflow_run_id, "spec.json", str(tmp_path / "dl"))).read_text())
    (row,) = [r for r in spec_json["space"] if r["name"] == "api_key"]
    assert row["choices"] == ["***", "***"], row
    assert spec_json["result"]["best_config"]["api_key"] == "***"
    assert spec_json["settings"]["secrets"] == [SECRET_VAR]
    # MLflow params and tags of every run, and the Parquet tables
    for run in client.search_runs([result.mlflow_experiment_id]):
        for key, value in {**run.data.params, **run.data.tags}.items():
            if key.split("/")[-1] == "api_key":
                assert value == "***", (run.info.run_id, key, value)
    import pyarrow.parquet as pq

    trials = pq.read_table(str(export_dir / "trials.parquet")).to_pandas()
    assert set(trials["config/api_key"]) == {"***"}
    assert all('"api_key": "***"' in text for text in trials["config_json"])
    history = pq.read_table(str(export_dir / "param_history.parquet")).to_pandas()
    assert set(history[history["key"] == "api_key"]["value_json"]) == {'"***"'}
