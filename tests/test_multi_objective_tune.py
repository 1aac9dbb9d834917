"""Two objectives and a constraint through tune() on a real local Ray: MOTPE + multi-objective
ASHA, MLflow (sqlite) tags and artifact, Parquet columns, the summary."""

from __future__ import annotations

import math

import pyarrow.parquet as pq

from orchestrator import tune
from search_algs import Float


def zdt1_constrained(config):
    from ray import tune as ray_tune

    x0, x1 = config["x0"], config["x1"]
    for step in range(1, 5):
        g = 1 + 9 * x1 + 1.0 / step  # improves with training
        ray_tune.report({"f1": x0, "f2": g * (1 - math.sqrt(x0 / g)), "memory_gb": 20 * x1})


def test_two_objectives_and_a_constraint_end_to_end(ray_local, tmp_path):
    from mlflow import MlflowClient

    result = tune(zdt1_constrained, {"x0": Float(0.0, 1.0), "x1": Float(0.0, 1.0)},
                  metric=["f1", "f2"], mode=["min", "min"], constraints=["memory_gb <= 12"],
                  search="tpe", search_options={"n_startup": 4},
                  scheduler="asha", scheduler_options={"max_t": 4, "grace_period": 1, "eta": 2},
                  num_samples=12, max_concurrent=2, seed=0, storage_path=str(tmp_path), verbose=0)
    trials = result.trials
    assert {"pareto_rank", "feasible"} <= set(trials.columns)
    front = result.pareto_front
    assert len(front) >= 1 and {"trial_id", "f1", "f2", "config/x0", "config/x1"} <= set(front.columns)
    infeasible = set(trials.loc[trials["memory_gb"] > 12, "trial_id"])
    assert infeasible.isdisjoint(front["trial_id"])  # a constraint-violating trial is never on the front
    assert all(trials.loc[trials["trial_id"].isin(front["trial_id"]), "pareto_rank"] == 0)
    assert result.best_trial_id in set(front["trial_id"]) and result.best_config["x1"] * 20 <= 12
    assert set(result.best_metric) == {"f1", "f2"}
    assert result.hypervolume > 0 and len(result.reference_point) == 2
    text = result.summary(width=120)
    assert "pareto front" in text and "hypervolume" in text and "best (pareto)" in text

    table = pq.read_table(result.export_parquet(str(tmp_path / "parquet"))["trials"]).to_pandas()
    assert {"pareto_rank", "feasible"} <= set(table.columns)
    assert set(table.loc[table["pareto_rank"] == 0, "trial_id"]) == set(front["trial_id"])
    assert not table.loc[table["memory_gb"] > 12, "feasible"].any()

    client = MlflowClient(result.tracking_uri)
    parent = client.get_run(result.mlflow_run_id)
    assert parent.data.metrics["hypervolume"] > 0 and "best/f1" in parent.data.metrics
    assert "pareto_front.csv" in [a.path for a in client.list_artifacts(result.mlflow_run_id)]
    children = client.search_runs([parent.info.experiment_id],
                                  filter_string=f"tags.mlflow.parentRunId = '{result.mlflow_run_id}'")
    assert len(children) == len(trials)
    for child in children:
        tags = child.data.tags
        assert tags["tuneorch.feasible"] in ("true", "false") and "tuneorch.pareto_rank" in tags
        if tags["trial_id"] in set(front["trial_id"]):
            assert tags["tuneorch.pareto_rank"] == "0" and tags["tuneorch.feasible"] == "true"


def report_without_memory(config):
    from ray import tune as ray_tune

    ray_tune.report({"f1": config["x0"], "f2": 1 - config["x0"]})


def test_a_constraint_metric_never_reported_is_named(ray_local, tmp_path):
    import pytest

    from search_algs.errors import TuneorchError

    with pytest.raises(Exception) as info:
        tune(report_without_memory, {"x0": Float(0.0, 1.0)}, metric=["f1", "f2"], mode=["min", "min"],
             constraints=["memory_gb <= 12"], search="random", num_samples=2, seed=0,
             storage_path=str(tmp_path), tracking_uri="", verbose=0)
    text = f"{info.value} {info.value.__cause__}"
    assert "memory_gb" in text and "memory_gb <= 12" in text and "'f1'" in text, text
