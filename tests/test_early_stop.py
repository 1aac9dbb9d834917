"""Early stops are visible everywhere: summary, ``result.trials``, MLflow child tags, Parquet."""

from __future__ import annotations

import pyarrow.parquet as pq

from orchestrator import tune
from orchestrator.tracking import TRIAL_ID_TAG
from search_algs import Float
from test_console import steps

def _text(value):
    """A stop reason, ``None`` for a missing one (pandas may hold it as NaN)."""
    return value if isinstance(value, str) else None


POINTS = [{"x": 0.3, "steps": 4}, {"x": 0.95, "steps": 4}, {"x": 0.9, "steps": 4}, {"x": 0.31, "steps": 4}]


def test_trials_stopped_by_asha_show_as_stopped_early_in_the_four_places(ray_local, tmp_path):
    # One trial at a time in a fixed order: the first (best) runs to max_t; 0.95 and 0.9 are the
    # worst at their rung and stopped there; 0.31 is second at rung 1 and 2 of 4 (eta=2): goes on.
    result = tune(steps, {"x": Float(0.0, 1.0), "steps": 4}, metric="loss", mode="min",
                  search="random", scheduler="asha",
                  scheduler_options={"max_t": 4, "grace_period": 1, "eta": 2},
                  points_to_evaluate=POINTS, num_samples=4, max_concurrent=1, seed=0,
                  storage_path=str(tmp_path / "runs"), verbose=0)
    frame = result.trials.set_index("config/x")
    assert list(frame["status"]) == ["TERMINATED"] * 4
    reasons = {x: _text(frame.loc[x, "stop_reason"]) for x in frame.index}
    assert reasons[0.3] is None and reasons[0.31] is None  # ran to max_t
    assert reasons[0.95] == "rung 1" and frame.loc[0.95, "training_iteration"] == 1
    assert reasons[0.9] is not None and reasons[0.9].startswith("rung ")
    assert int(frame.loc[0.9, "training_iteration"]) == int(float(reasons[0.9].split()[1]))
    early = {frame.loc[x, "trial_id"]: r for x, r in reasons.items() if r}

    # summary
    words = " ".join(w for w in result.summary(80).split() if w != "|")
    assert "2 terminated, 2 stopped early (rung 1: 1, rung 2: 1)" in words \
        or "2 terminated, 2 stopped early (rung 1)" in words, words

    # Parquet
    tables = result.export_parquet()
    parquet = pq.read_table(tables["trials"]).to_pandas()
    assert {t: _text(r) for t, r in zip(parquet["trial_id"], parquet["stop_reason"])} == \
        {tid: early.get(tid) for tid in parquet["trial_id"]}
    assert set(parquet["status"]) == {"TERMINATED"}

    # MLflow: FINISHED children, the early ones tagged
    from mlflow import MlflowClient

    client = MlflowClient(result.tracking_uri)
    children = client.search_runs([result.mlflow_experiment_id],
                                  f"tags.mlflow.parentRunId = '{result.mlflow_run_id}'")
    tags = {run.data.tags[TRIAL_ID_TAG]: run.data.tags.get("tuneorch.stop_reason") for run in children}
    assert tags == {tid: early.get(tid) for tid in result.trials["trial_id"]}
    assert {run.info.status for run in children} == {"FINISHED"}
    # the experiment opens on its runs (MLflow 3's UI reads this tag)
    experiment = client.get_experiment(result.mlflow_experiment_id)
    assert experiment.tags.get("mlflow.experimentKind") == "custom_model_development"
    assert f"/#/experiments/{result.mlflow_experiment_id}/runs/{result.mlflow_run_id}" in result.summary(80)


def test_a_fifo_run_stopped_by_a_stop_condition_is_not_early(ray_local, tmp_path):
    result = tune(steps, {"x": Float(0.0, 1.0), "steps": 10}, metric="loss", mode="min",
                  num_samples=2, max_concurrent=1, stop={"training_iteration": 2}, seed=0,
                  storage_path=str(tmp_path / "runs"), tracking_uri="", verbose=0)
    assert [_text(r) for r in result.trials["stop_reason"]] == [None, None]
    assert list(result.trials["training_iteration"]) == [2, 2]
    assert "stopped early" not in result.summary(80)


def test_early_stop_reason_for_ray_schedulers():
    from types import SimpleNamespace

    from ray.tune.schedulers import AsyncHyperBandScheduler, FIFOScheduler

    from orchestrator.outcome import early_stop_reason

    asha = AsyncHyperBandScheduler(max_t=9, grace_period=1, reduction_factor=3)
    trial = SimpleNamespace(trial_id="t", stopping_criterion={})
    assert early_stop_reason(asha, trial, {"training_iteration": 3, "done": True}) == "training_iteration=3"
    assert early_stop_reason(asha, trial, {"training_iteration": 9, "done": True}) is None  # max_t
    assert early_stop_reason(FIFOScheduler(), trial, {"training_iteration": 3, "done": True}) is None
    stopped = SimpleNamespace(trial_id="t", stopping_criterion={"training_iteration": 3})
    assert early_stop_reason(asha, stopped, {"training_iteration": 3, "done": True}) is None
