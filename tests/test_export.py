"""Parquet export of a real run: the tables agree with what Tune recorded."""

from __future__ import annotations

import pathlib

import pyarrow.parquet as pq
import pytest

from orchestrator import tune
from orchestrator.cli import main
from search_algs import Categorical, Float
from trainables import slow_steps


def test_export_writes_trials_metrics_and_param_history(ray_local, tmp_path, capsys):
    log_dir = tmp_path / "markers"
    log_dir.mkdir()
    space = {"x": Float(0.0, 1.0), "kind": Categorical([1, "two"]), "log_dir": str(log_dir)}
    result = tune(slow_steps, space, metric="loss", mode="min", num_samples=3, max_concurrent=2, seed=2,
                  resources={"cpu": 0.5}, storage_path=str(tmp_path / "runs"), tracking_uri="", verbose=0)
    paths = result.export_parquet(str(tmp_path / "out"))

    trials = pq.read_table(paths["trials"]).to_pandas().set_index("trial_id")
    assert set(trials.index) == set(result.trials["trial_id"])
    for _, row in result.trials.iterrows():
        assert trials.loc[row["trial_id"], "loss"] == pytest.approx(row["loss"])
        assert trials.loc[row["trial_id"], "config/x"] == pytest.approx(row["config/x"])
    # Mixed int/str choices cannot share one Parquet type: they become JSON text.
    assert set(trials["config/kind"]) <= {"1", '"two"'}

    metrics = pq.read_table(paths["metrics"]).to_pandas()
    losses = metrics[metrics["key"] == "loss"]
    assert len(losses) == 3 * 3 and sorted(set(losses["step"])) == [1, 2, 3]
    history = pq.read_table(paths["param_history"]).to_pandas()
    assert set(history["key"]) == {"x", "kind", "log_dir"} and (history["step"] == 1).all()

    # Each trial folder holds Tune's result.json and progress.csv (what the export reads), and no
    # TensorBoard event files: MLflow records the same metrics (orchestrator.api._without_tensorboard).
    folders = [p for p in pathlib.Path(result.experiment_path).iterdir() if (p / "params.json").is_file()]
    assert len(folders) == 3
    for folder in folders:
        assert (folder / "result.json").is_file() and (folder / "progress.csv").is_file()
        assert not list(folder.glob("events.out.tfevents*")), folder

    assert main(["export", result.experiment_path]) == 0
    assert "metrics:" in capsys.readouterr().out
    assert (tmp_path / "runs").exists()
