"""NaN/inf is a failure everywhere: a trial whose last value of the tuned metric is NaN or
infinite is ERROR (orchestrator.outcome) with the reason in the summary, ``result.trials``,
``result.errors``, the Parquet trials table, and FAILED with an ``error_reason`` in MLflow."""

from __future__ import annotations

import math

import pandas as pd
import pyarrow.parquet as pq
import pytest
from ray import tune as ray_tune

from orchestrator import tune
from orchestrator.export import tables
from orchestrator.outcome import nonfinite_failure
from search_algs import Categorical, Float


def ends_as_told(config):
    """Three steps of a falling loss; the last one is NaN, inf or a number, as ``end`` says."""
    for step in (1, 2, 3):
        value = config["x"] + 1.0 / step
        if step == 3 and config["end"] != "ok":
            value = float(config["end"])
        ray_tune.report({"val_loss": value})


@pytest.mark.parametrize("result, failure", [
    ({"val_loss": float("nan"), "training_iteration": 3}, "val_loss was nan at step 3: counted as a failure"),
    ({"val_loss": float("-inf"), "training_iteration": 1}, "val_loss was -inf at step 1: counted as a failure"),
    ({"val_loss": 0.5, "training_iteration": 3}, None),
    ({"val_loss": 1, "training_iteration": 3}, None),
    ({"other": float("nan")}, None),  # no value of the metric: Tune itself stops such a trial
    ({"val_loss": "nan?"}, None),
    (None, None),
])
def test_a_nonfinite_last_value_is_a_failure(result, failure):
    assert nonfinite_failure(result, "val_loss") == failure


def test_nan_and_inf_last_values_are_failures_in_every_record(ray_local, mlflow_server, tmp_path):
    from mlflow import MlflowClient

    ends = ["nan", "inf", "ok"]
    result = tune(ends_as_told, {"x": Float(0.0, 1.0), "end": Categorical(ends)}, metric="val_loss",
                  mode="min", num_samples=3, max_concurrent=2, seed=0, resources={"cpu": 0.5},
                  points_to_evaluate=[{"x": 0.5, "end": end} for end in ends],
                  tracking_uri=mlflow_server, storage_path=str(tmp_path / "runs"), name="nan-failure",
                  verbose=0)
    frame = result.trials.set_index("config/end")
    assert sorted(frame.index) == sorted(ends)
    ids = {end: frame.loc[end, "trial_id"] for end in ends}
    expected = {"nan": "val_loss was nan at step 3: counted as a failure",
                "inf": "val_loss was inf at step 3: counted as a failure"}

    # result.trials and result.errors
    assert frame.loc["ok", "status"] == "TERMINATED" and pd.isna(frame.loc["ok", "error"])
    for end, message in expected.items():
        assert frame.loc[end, "status"] == "ERROR" and frame.loc[end, "error"] == message
    assert result.errors == {ids[end]: message for end, message in expected.items()}
    # never the best, whatever the mode
    assert result.best_trial_id == ids["ok"] and math.isfinite(result.best_metric)

    # the summary
    summary = result.summary()
    assert "2 error, 1 terminated" in summary, summary
    for end, message in expected.items():
        assert f"error {ids[end]}" in summary and message in summary, summary

    # MLflow: child runs FAILED with the reason, the good one FINISHED
    client = MlflowClient(mlflow_server)
    children = {r.data.tags.get("trial_id"): r for r in client.search_runs(
        [result.mlflow_experiment_id], f"tags.mlflow.parentRunId = '{result.mlflow_run_id}'")}
    assert set(children) == set(ids.values())
    assert children[ids["ok"]].info.status == "FINISHED"
    assert "error_reason" not in children[ids["ok"]].data.tags
    for end, message in expected.items():
        child = children[ids[end]]
        assert child.info.status == "FAILED", (end, child.info.status)
        assert child.data.tags["error_reason"] == message and child.data.tags["error"] == message

    # Parquet, through the API and read back from the experiment folder alone
    parquet = pq.read_table(result.export_parquet(str(tmp_path / "export"))["trials"]).to_pandas()
    parquet = parquet.set_index("trial_id")
    assert parquet.loc[ids["ok"], "status"] == "TERMINATED" and pd.isna(parquet.loc[ids["ok"], "error"])
    for end, message in expected.items():
        assert parquet.loc[ids[end], "status"] == "ERROR" and parquet.loc[ids[end], "error"] == message
    # spec.json counts the same statuses
    assert dict(result.trials["status"].value_counts()) == {"ERROR": 2, "TERMINATED": 1}


def test_parquet_statuses_without_the_outcomes_file(tmp_path):
    """An experiment whose driver died before its end: statuses from Tune's own files."""
    import json

    experiment = tmp_path / "exp"
    for name, lines, error in (("t_a", [{"loss": 1.0, "done": True}], None),
                               ("t_b", [{"loss": 1.0, "done": False}], "Traceback\nValueError: boom"),
                               ("t_c", [{"loss": 2.0, "done": False}], None)):
        (experiment / name).mkdir(parents=True)
        (experiment / name / "result.json").write_text("\n".join(
            json.dumps({**line, "trial_id": name[-1], "training_iteration": 1, "config": {}}) for line in lines))
        if error:
            (experiment / name / "error.txt").write_text(error)
    rows = {r["trial_id"]: r for r in tables(str(experiment))["trials"].to_pylist()}
    assert (rows["a"]["status"], rows["a"]["error"]) == ("TERMINATED", None)
    assert (rows["b"]["status"], rows["b"]["error"]) == ("ERROR", "ValueError: boom")
    assert (rows["c"]["status"], rows["c"]["error"]) == (None, None)  # unfinished: not guessed
