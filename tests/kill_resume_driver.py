"""Driver of tests/test_kill_resume.py: ``python kill_resume_driver.py run|resume CASE.json``.

``run`` starts an experiment (its own local Ray, MLflow in a local sqlite store) that the test
kills with SIGKILL; ``resume`` continues it with ``orchestrator.resume``. The trainable below is
importable by Ray's workers (tests/ is on their PYTHONPATH).
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time

from ray import tune


def _log(config: dict, kind: str, text: str) -> None:
    """One line appended to ``<log_dir>/<trial id>.<kind>`` (one write: whole lines)."""
    trial_id = tune.get_context().get_trial_id()
    with open(os.path.join(config["log_dir"], f"{trial_id}.{kind}"), "a") as f:
        f.write(text + "\n")


def counts(config):
    """``config["steps"]`` steps of ``sleep`` s, a checkpoint with every report. Leaves markers:
    ``<trial>.starts`` (the step each start restored from, 0 = scratch) and ``<trial>.steps``
    (each step run)."""
    step, total = 0, 0.0
    checkpoint = tune.get_checkpoint()
    if checkpoint is not None:
        with checkpoint.as_directory() as d, open(os.path.join(d, "state.json")) as f:
            state = json.load(f)
        step, total = state["step"], state["total"]
    _log(config, "starts", str(step))
    while step < config["steps"]:
        step += 1
        time.sleep(config["sleep"])
        total += (config["x"] - 0.3) ** 2 / step
        _log(config, "steps", str(step))
        with tempfile.TemporaryDirectory() as d:
            with open(os.path.join(d, "state.json"), "w") as f:
                json.dump({"step": step, "total": total}, f)
            tune.report({"loss": total + 1.0 / step}, checkpoint=tune.Checkpoint.from_directory(d))


def pbt_steps(config):
    """The PBT paper's toy problem (``trainables.pbt_toy``), a checkpoint with every report, and
    the markers of :func:`counts`."""
    import numpy as np

    from trainables import toy_theta0

    theta, step = toy_theta0(), 0
    checkpoint = tune.get_checkpoint()
    if checkpoint is not None:
        with checkpoint.as_directory() as d, open(os.path.join(d, "toy.json")) as f:
            state = json.load(f)
        theta, step = np.array(state["theta"]), state["step"]
    _log(config, "starts", str(step))
    h = np.array([config["h0"], config["h1"]])
    while True:
        step += 1
        time.sleep(config["sleep"])
        theta = theta + 0.05 * (-2.0 * h * theta)
        _log(config, "steps", str(step))
        with tempfile.TemporaryDirectory() as d:
            with open(os.path.join(d, "toy.json"), "w") as f:
                json.dump({"theta": theta.tolist(), "step": step}, f)
            tune.report({"Q": 1.2 - float(theta @ theta)}, checkpoint=tune.Checkpoint.from_directory(d))


def spec_of(case: dict):
    from orchestrator.spec import ExperimentSpec
    from search_algs import Float

    common = dict(num_samples=case["num_samples"], max_concurrent=case["max_concurrent"],
                  resources={"cpu": 0.5}, seed=case["seed"], storage_path=case["storage"],
                  tracking_uri=case["tracking_uri"], name=case["name"], keep_checkpoints=2)
    if case["scheduler"] == "asha":
        space = {"x": Float(0.0, 1.0), "steps": case["steps"], "sleep": case["sleep"], "log_dir": case["log_dir"]}
        return ExperimentSpec("kill_resume_driver:counts", space, metric="loss", mode="min", search="random",
                              scheduler="asha", scheduler_options={"max_t": case["steps"], "grace_period": 2,
                                                                   "eta": 2}, **common)
    space = {"h0": Float(0.0, 1.0), "h1": Float(0.0, 1.0), "sleep": case["sleep"], "log_dir": case["log_dir"]}
    return ExperimentSpec("kill_resume_driver:pbt_steps", space, metric="Q", mode="max", search="random", scheduler="pbt",
                          scheduler_options={"perturbation_interval": 3, "resample_probability": 0.5},
                          stop={"training_iteration": case["steps"]}, **common)


def main() -> None:
    mode, case_file = sys.argv[1], sys.argv[2]
    with open(case_file) as f:
        case = json.load(f)
    if os.environ.get("KILL_RESUME_BASELINE"):  # measure the code before the fix: no hooks
        import contextlib

        from schedulers import _ray_private

        _ray_private.exact_resume_hooks = lambda *a, **k: contextlib.nullcontext()
    if mode == "run":
        from orchestrator.api import run

        spec = spec_of(case)
        spec.validate()
        run(spec, verbose=0)
    else:
        import orchestrator

        result = orchestrator.resume(case["experiment"], verbose=0)
        out = {"trials": sorted(result.trials["trial_id"]), "statuses": sorted(result.trials["status"]),
               "parent": result.mlflow_run_id, "experiment_id": result.mlflow_experiment_id,
               "tracking_uri": result.tracking_uri, "interrupted": result.interrupted}
        with open(case["result"], "w") as f:
            json.dump(out, f)


if __name__ == "__main__":
    main()
