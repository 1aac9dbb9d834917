"""PBT survives a SIGKILLed driver: ``tuneorch resume`` reads its state file back, the
exploits made before the kill stay in the lineage, and no trial retrains from scratch.

Built like ``tests/test_resume.py``: the first run is a separate driver process (it starts
its own local Ray) that is killed with its whole process group once PBT has exploited;
the resume runs in this process on the session's Ray (``ray_local``).
"""

from __future__ import annotations

import glob
import json
import logging
import os
import pathlib
import signal
import subprocess
import sys
import textwrap
import time

import pytest

import orchestrator
from schedulers.core.pbt import PBT
from search_algs import Float
from trainables import toy_replay

ROOT = pathlib.Path(__file__).resolve().parents[1]
STEPS = 60


def starts(log_dir: pathlib.Path) -> dict[str, list[int]]:
    """``{trial_id: [step each start began from]}`` as logged by ``trainables.pbt_toy``."""
    out = {}
    for path in log_dir.glob("*.starts"):
        out[path.stem] = [int(line) for line in path.read_text().split()]
    return out


def fresh_snapshot(storage: pathlib.Path, seen: tuple | None) -> tuple | None:
    """``(mtime, text)`` of Tune's experiment state file when it changed since ``seen`` and
    reads as whole JSON; else None."""
    paths = glob.glob(str(storage / "pbt-resume-*" / "experiment_state-*.json"))
    if not paths:
        return None
    try:
        mtime = os.stat(paths[0]).st_mtime_ns
        if seen is not None and mtime == seen[0]:
            return None
        text = pathlib.Path(paths[0]).read_text()
        json.loads(text)
    except (OSError, ValueError):
        return None
    return mtime, text


def read_state(path: str) -> dict | None:
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None  # not written yet


def policy_of(state: dict) -> PBT:
    """A PBT policy holding ``state`` (built with the options it was written with)."""
    options = dict(state["options"])
    params = options.pop("params")
    assert params == ["h0", "h1"]
    space = {"h0": Float(0.0, 1.0), "h1": Float(0.0, 1.0)}
    policy = PBT(space, context=state["context"], **options)
    policy.load_dict(state)
    return policy


@pytest.mark.slow
@pytest.mark.timeout(300)  # ~45 s at load average 9 on 2 cores
def test_pbt_resumes_after_the_driver_is_killed(ray_local, tmp_path, caplog):
    log_dir = tmp_path / "starts"
    log_dir.mkdir()
    storage = tmp_path / "runs"
    # keep_checkpoints=None: Tune forces no extra experiment snapshots, so they come every
    # TUNE_GLOBAL_CHECKPOINT_S = 2 s, and the driver is killed just after one (Tune writes its
    # experiment state in place, not atomically: a kill in the middle of a write would leave
    # it unreadable and Tune would start the experiment afresh).
    script = textwrap.dedent(f"""
        from orchestrator.api import run
        from orchestrator.spec import ExperimentSpec
        from search_algs import Float
        from trainables import pbt_toy
        space = {{"h0": Float(0.0, 1.0), "h1": Float(0.0, 1.0), "checkpoint_every": 2, "sleep": 0.15,
                  "log_dir": {str(log_dir)!r}}}
        population = [{{"h0": 1.0, "h1": 0.0}}, {{"h0": 0.0, "h1": 1.0}}, {{"h0": 0.8, "h1": 0.0}},
                      {{"h0": 0.0, "h1": 0.8}}]
        spec = ExperimentSpec(pbt_toy, space, metric="Q", mode="max", search="random", scheduler="pbt",
                              scheduler_options={{"perturbation_interval": 4, "resample_probability": 0.5}},
                              points_to_evaluate=population, num_samples=4, max_concurrent=4,
                              resources={{"cpu": 0.5}}, seed=3, stop={{"training_iteration": {STEPS}}},
                              storage_path={str(storage)!r}, tracking_uri="", name="pbt-resume",
                              keep_checkpoints=None)
        spec.validate()
        run(spec, verbose=0)
    """)
    env = {**os.environ, "TUNE_GLOBAL_CHECKPOINT_S": "2"}
    driver = subprocess.Popen([sys.executable, "-c", script], cwd=ROOT / "tests", env=env,
                              start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.time() + 120
    before, seen = None, None
    try:
        while True:
            assert driver.poll() is None, driver.stderr.read().decode()[-3000:]
            assert time.time() < deadline, "the first run made no exploit in time"
            paths = glob.glob(str(storage / "pbt-resume-*" / "pbt-state.json"))
            before = read_state(paths[0]) if paths else None
            ready = (before is not None and before["lineage"] and len(before["members"]) == 4
                     and all((m["time"] or 0) >= 6 for m in before["members"].values()))
            snapshot = fresh_snapshot(storage, seen)
            if snapshot is not None:
                seen = snapshot
                if ready and "@pbt" in snapshot[1]:
                    break  # a readable snapshot that holds an exploit, the next one ~2 s away
            time.sleep(0.05)
    finally:
        os.killpg(driver.pid, signal.SIGKILL)  # the driver and the Ray it started, by process group
        driver.wait()
    before = read_state(paths[0])  # the last state written before the kill
    started_before = starts(log_dir)
    assert len(before["lineage"]) >= 1
    assert len(started_before) == 4 and all(s[0] == 0 for s in started_before.values())
    assert max(m["time"] or 0 for m in before["members"].values()) < STEPS, "killed too late"

    (experiment,) = [p for p in storage.iterdir() if p.is_dir()]
    with caplog.at_level(logging.INFO, logger="schedulers.pbt"):  # also catches the undo warnings
        result = orchestrator.resume(str(experiment), verbose=0)
    assert any("PBTScheduler: loaded 4 members" in r.getMessage() for r in caplog.records)

    # Every trial ran to the end.
    assert len(result.trials) == 4 and (result.trials["status"] == "TERMINATED").all()
    assert (result.trials["training_iteration"] == STEPS).all()

    # The state file was read back, not started afresh: the exploits before the kill lead the
    # lineage after it, and each member's scores before the kill lead its scores after it. (An
    # exploit made after Tune's last experiment snapshot is undone, with a warning: Tune restarts
    # its target from its own checkpoint. Rare here: Tune snapshots at every step.)
    undone = [r.args[0] for r in caplog.records if "without its exploit" in r.getMessage()]
    after = read_state(os.path.join(experiment, "pbt-state.json"))

    def unnumbered(records):
        return [{k: v for k, v in r.items() if k != "seq"} for r in records]

    kept = unnumbered(before["lineage"])
    kept = [r for r in kept if not (r["target"] in undone and r == [x for x in kept if x["target"] == r["target"]][-1])]
    assert len(before["lineage"]) - len(kept) == len(undone)
    assert unnumbered(after["lineage"])[:len(kept)] == kept
    assert set(after["members"]) == set(before["members"])
    for tid, member in before["members"].items():
        again = after["members"][tid]
        assert again["scores"][:len(member["scores"])] == member["scores"], tid
        assert again["order"] == member["order"] and again["initial"] == member["initial"]
        assert again["exploits"] >= member["exploits"] - undone.count(tid)

    # No trial retrained from scratch after the kill: every start since then began from a checkpoint.
    started_after = starts(log_dir)
    for tid, steps in started_after.items():
        new = steps[len(started_before[tid]):]
        assert new and all(step > 0 for step in new), (tid, steps, started_before[tid])

    # Every checkpoint a result names holds that result's state: a trial's exploit never wrote
    # the clone's first checkpoint over the one it had just reported (a resume from that folder
    # once restarted the trial from its donor's state under its own config).
    for trial_dir in (p for p in pathlib.Path(experiment).iterdir() if (p / "result.json").is_file()):
        for row in map(json.loads, (trial_dir / "result.json").read_text().splitlines()):
            name = row.get("checkpoint_dir_name")
            if name and (trial_dir / name).is_dir():
                assert json.loads((trial_dir / name / "toy.json").read_text())["step"] == row["step"], \
                    (trial_dir.name, name, row["step"])

    # The lineage is what really happened: training each trial from scratch along its config
    # schedule gives the Q it reported last, exploits before and after the kill included.
    policy = policy_of(after)
    final = dict(zip(result.trials["trial_id"], result.trials["Q"]))
    for tid, q in final.items():
        schedule = [(t, policy.to_config(c)) for t, c in policy.config_schedule(tid)]
        assert toy_replay(schedule, STEPS) == pytest.approx(q, abs=1e-12), (tid, schedule)
    print(f"\nPBT resume: {len(before['lineage'])} exploits before the kill, {len(after['lineage'])} "
          f"after; starts per trial {started_after}")
