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
    assert parent.data.metrics["hypervolume"] == result.hypervolume and "best/f1" in parent.data.metrics
    check_hypervolume_history(client, result.mlflow_run_id, result.hypervolume, len(trials))
    assert "pareto_front.csv" in [a.path for a in client.list_artifacts(result.mlflow_run_id)]
    assert "plots/pareto_front.png" in [a.path for a in client.list_artifacts(result.mlflow_run_id, "plots")]
    children = client.search_runs([parent.info.experiment_id],
                                  filter_string=f"tags.mlflow.parentRunId = '{result.mlflow_run_id}'")
    assert len(children) == len(trials)
    for child in children:
        tags = child.data.tags
        assert tags["tuneorch.feasible"] in ("true", "false") and "tuneorch.pareto_rank" in tags
        if tags["trial_id"] in set(front["trial_id"]):
            assert tags["tuneorch.pareto_rank"] == "0" and tags["tuneorch.feasible"] == "true"


def check_hypervolume_history(client, run_id: str, final: float, trials: int) -> None:
    """The parent's ``hypervolume`` metric: one point per trial that changed the front, steps
    counting the trials ended, never decreasing, ending at the final hypervolume."""
    history = sorted(client.get_metric_history(run_id, "hypervolume"), key=lambda m: m.step)
    steps, values = [m.step for m in history], [m.value for m in history]
    assert len(history) >= 2 and steps == sorted(set(steps)) and 1 <= steps[0] and steps[-1] == trials
    assert all(b >= a for a, b in zip(values, values[1:])) and values[-1] == final


def test_the_cli_runs_two_objectives_and_a_constraint_from_yaml(ray_local, tmp_path, capsys):
    """The same problem through ``tuneorch run spec.yaml``: lists in YAML, the summary printed,
    the records in MLflow (sqlite under the storage path)."""
    from mlflow import MlflowClient

    from orchestrator.cli import main

    spec = tmp_path / "spec.yaml"
    spec.write_text(
        "trainable: test_multi_objective_tune:zdt1_constrained\n"
        "metric: [f1, f2]\nmode: [min, min]\nconstraints: ['memory_gb <= 12']\n"
        "search: tpe\nsearch_options: {n_startup: 4}\nnum_samples: 8\nmax_concurrent: 2\nseed: 1\n"
        f"storage_path: {tmp_path / 'runs'}\nname: mo-cli\n"
        "space:\n  x0: {type: float, low: 0.0, high: 1.0}\n  x1: {type: float, low: 0.0, high: 1.0}\n")
    assert main(["run", str(spec)]) == 0
    out = capsys.readouterr().out
    assert "pareto front" in out and "hypervolume" in out and "best (pareto)" in out
    (experiment,) = (tmp_path / "runs").glob("mo-cli-*")
    front = (experiment / "pareto_front.csv").read_text().splitlines()
    assert front[0].startswith("trial_id,f1,f2") and len(front) >= 2
    uris = [line.split()[-1] for line in out.splitlines() if "sqlite:" in line]
    client = MlflowClient(uris[0] if uris else f"sqlite:///{tmp_path / 'runs' / 'mlflow.db'}")
    (parent,) = [r for r in client.search_runs([e.experiment_id for e in client.search_experiments()])
                 if "mlflow.parentRunId" not in r.data.tags]
    final = parent.data.metrics["hypervolume"]
    assert final > 0 and f"{final:.6g}" in out
    check_hypervolume_history(client, parent.info.run_id, final, 8)
    assert "plots/pareto_front.png" in [a.path for a in client.list_artifacts(parent.info.run_id, "plots")]


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
