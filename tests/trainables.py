"""Small real trainables shared by the integration tests (importable by Ray workers)."""

from __future__ import annotations

import json
import os
import tempfile
import time

from ray import tune


def slow_steps(config):
    """Three checkpointed steps of 0.4 s; leaves one marker file per step it really ran."""
    start = 0
    checkpoint = tune.get_checkpoint()
    if checkpoint is not None:
        with checkpoint.as_directory() as directory:
            with open(os.path.join(directory, "step.json")) as f:
                start = json.load(f)["step"]
    for step in range(start + 1, 4):
        time.sleep(0.4)
        with open(os.path.join(config["log_dir"], f"{config['x']:.12f}-{step}"), "w"):
            pass
        with tempfile.TemporaryDirectory() as directory:
            with open(os.path.join(directory, "step.json"), "w") as f:
                json.dump({"step": step}, f)
            tune.report({"loss": (config["x"] - 0.3) ** 2 + 1.0 / step},
                        checkpoint=tune.Checkpoint.from_directory(directory))


def crashes_once(config):
    """Fails at its second step the first time it runs; leaves one marker per step it ran."""
    from fault_trainables import checkpointed_step, resume_step

    crash_flag = os.path.join(config["log_dir"], f"{config['x']:.12f}-crashed")
    for step in range(resume_step() + 1, 4):
        if step == 2 and not os.path.exists(crash_flag):
            open(crash_flag, "w").close()
            raise RuntimeError("simulated node failure")
        checkpointed_step(config, step)


def reports_nan_in_a_region(config):
    tune.report({"loss": float("nan") if config["x"] > 0.5 else config["x"]})


# ---- the PBT paper's toy problem (Jaderberg et al. 2017, Sec. 4.1) ---------------------------

def toy_theta0(seed=None):
    """Start of the toy problem's weights: (0.9, 0.9), or a seeded draw around it."""
    import numpy as np

    if seed is None:
        return np.array([0.9, 0.9])
    return 0.9 + np.random.default_rng(int(seed)).uniform(-0.05, 0.05, 2)


def toy_replay(schedule, steps, seed=None):
    """Q after ``steps`` steps trained from scratch along ``schedule`` = [(t_k, config_k)]
    (config_k applies to the steps after t_k), starting from ``toy_theta0(seed)``."""
    import numpy as np

    theta = toy_theta0(seed)
    for step in range(1, steps + 1):
        config = [c for t, c in schedule if t < step][-1]
        theta = theta + 0.05 * (-2.0 * np.array([config["h0"], config["h1"]]) * theta)
    return 1.2 - float(theta @ theta)


def pbt_toy(config):
    """The PBT toy problem as a checkpointing trainable that runs until Tune stops it.

    theta starts at ``toy_theta0(config.get("seed"))``; each step is gradient ascent (lr 0.05)
    on the surrogate 1.2 - (h0 theta0^2 + h1 theta1^2) with h read from ``config`` after
    restoring; it reports the true Q = 1.2 - |theta|^2 and ``step`` every step, with a
    checkpoint every ``config["checkpoint_every"]`` steps, sleeping ``config["sleep"]`` s per
    step. With ``config["log_dir"]``, every start appends the step it starts from (0: from
    scratch) to ``<log_dir>/<trial id>.starts``.
    """
    import numpy as np

    theta, step = toy_theta0(config.get("seed")), 0
    checkpoint = tune.get_checkpoint()
    if checkpoint is not None:
        with checkpoint.as_directory() as d, open(os.path.join(d, "toy.json")) as f:
            state = json.load(f)
        theta, step = np.array(state["theta"]), state["step"]
    if config.get("log_dir"):
        with open(os.path.join(config["log_dir"], f"{tune.get_context().get_trial_id()}.starts"), "a") as f:
            f.write(f"{step}\n")
    h = np.array([config["h0"], config["h1"]])
    every = int(config.get("checkpoint_every", 1))
    while True:
        step += 1
        time.sleep(float(config.get("sleep", 0.0)))
        theta = theta + 0.05 * (-2.0 * h * theta)
        metrics = {"Q": 1.2 - float(theta @ theta), "step": step}
        if step % every:
            tune.report(metrics)
            continue
        with tempfile.TemporaryDirectory() as d:
            with open(os.path.join(d, "toy.json"), "w") as f:
                json.dump({"theta": theta.tolist(), "step": step}, f)
            tune.report(metrics, checkpoint=tune.Checkpoint.from_directory(d))
