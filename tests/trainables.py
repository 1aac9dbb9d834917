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
