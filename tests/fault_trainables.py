"""Trainables that misbehave on purpose (hang, run out of memory, lose their worker), plus a
counting one for the result cache; importable by Ray workers (tests/ is on their path)."""

from __future__ import annotations

import json
import os
import signal
import tempfile
import time

from ray import tune


def resume_step() -> int:
    checkpoint = tune.get_checkpoint()
    if checkpoint is None:
        return 0
    with checkpoint.as_directory() as directory, open(os.path.join(directory, "step.json")) as f:
        return json.load(f)["step"]


def checkpointed_step(config: dict, step: int) -> None:
    """Leave a marker for a step really run, then report it with a checkpoint."""
    with open(os.path.join(config["log_dir"], f"{config['x']:.12f}-{step}"), "w"):
        pass
    with tempfile.TemporaryDirectory() as directory:
        with open(os.path.join(directory, "step.json"), "w") as f:
            json.dump({"step": step}, f)
        tune.report({"loss": config["x"] + 1.0 / step}, checkpoint=tune.Checkpoint.from_directory(directory))


def _misbehaves(config: dict, what: str) -> bool:
    """True the first time (``config["times"]`` times) this config reaches its bad step."""
    flag = os.path.join(config["log_dir"], f"{config['x']:.12f}-{what}")
    count = int(open(flag).read()) if os.path.exists(flag) else 0
    if count >= config.get("times", 1):
        return False
    with open(flag, "w") as f:
        f.write(str(count + 1))
    return True


def hangs(config):
    """Three checkpointed steps; before step 2 it hangs (``times`` times), e.g. a deadlock."""
    for step in range(resume_step() + 1, 4):
        if step == 2 and _misbehaves(config, "hung"):
            time.sleep(3600)
        checkpointed_step(config, step)


def runs_out_of_memory(config):
    """Before step 2 it asks for an allocation no machine has (a real failed allocation)."""
    import numpy as np

    for step in range(resume_step() + 1, 4):
        if step == 2 and _misbehaves(config, "oom"):
            np.ones(2**60, dtype=np.uint8)  # 1 EiB: the allocator refuses -> MemoryError
        checkpointed_step(config, step)


def loses_its_worker(config):
    """Before step 2 its process is SIGKILLed, as the kernel's OOM killer would do it."""
    for step in range(resume_step() + 1, 4):
        if step == 2 and _misbehaves(config, "killed"):
            os.kill(os.getpid(), signal.SIGKILL)
        checkpointed_step(config, step)


def counts_trainings(config):
    """A deterministic function of the config; one marker file per training run."""
    with open(os.path.join(config["log_dir"], f"run-{time.time_ns()}-{os.getpid()}"), "w") as f:
        json.dump({k: v for k, v in config.items() if k != "log_dir"}, f)
    tune.report({"loss": (config["n"] - 3) ** 2 + (0.5 if config["kind"] == "b" else 0.0)})


def needs_its_key(config):
    """Fails unless it receives the real credential: redaction is for the records only."""
    if config["api_key"] != "sk-live-0123456789":
        raise RuntimeError(f"the trainable got {config['api_key']!r} instead of its key")
    tune.report({"loss": config["x"]})
