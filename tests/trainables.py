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
    start = 0
    checkpoint = tune.get_checkpoint()
    if checkpoint is not None:
        with checkpoint.as_directory() as directory:
            with open(os.path.join(directory, "step.json")) as f:
                start = json.load(f)["step"]
    crash_flag = os.path.join(config["log_dir"], f"{config['x']:.12f}-crashed")
    for step in range(start + 1, 4):
        if step == 2 and not os.path.exists(crash_flag):
            open(crash_flag, "w").close()
            raise RuntimeError("simulated node failure")
        with open(os.path.join(config["log_dir"], f"{config['x']:.12f}-{step}"), "w"):
            pass
        with tempfile.TemporaryDirectory() as directory:
            with open(os.path.join(directory, "step.json"), "w") as f:
                json.dump({"step": step}, f)
            tune.report({"loss": config["x"] + 1.0 / step}, checkpoint=tune.Checkpoint.from_directory(directory))


def reports_nan_in_a_region(config):
    tune.report({"loss": float("nan") if config["x"] > 0.5 else config["x"]})
