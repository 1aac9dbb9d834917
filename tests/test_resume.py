"""A run whose driver is SIGKILLed continues with `resume`: nothing repeated, nothing lost."""

from __future__ import annotations

import os
import pathlib
import signal
import subprocess
import sys
import textwrap
import time

import pytest

import orchestrator
from mlflow import MlflowClient
from search_algs import Float
from trainables import slow_steps

ROOT = pathlib.Path(__file__).resolve().parents[1]


def markers(log_dir: pathlib.Path) -> dict[str, set[int]]:
    runs: dict[str, set[int]] = {}
    for path in log_dir.iterdir():
        x, step = path.name.rsplit("-", 1)
        runs.setdefault(x, set()).add(int(step))
    return runs


@pytest.mark.slow
def test_resume_after_the_driver_is_killed(ray_local, tmp_path):
    log_dir = tmp_path / "markers"
    log_dir.mkdir()
    storage = tmp_path / "runs"
    script = textwrap.dedent(f"""
        import orchestrator
        from search_algs import Float
        from trainables import slow_steps
        orchestrator.tune(slow_steps, {{"x": Float(0.0, 1.0), "log_dir": {str(log_dir)!r}}},
                          metric="loss", mode="min", num_samples=6, max_concurrent=2,
                          resources={{"cpu": 0.5}}, seed=5, storage_path={str(storage)!r},
                          name="resume-me", verbose=0)
    """)
    env = {**os.environ, "TUNE_GLOBAL_CHECKPOINT_S": "0"}
    driver = subprocess.Popen([sys.executable, "-c", script], cwd=ROOT / "tests", env=env,
                              start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.time() + 120
    try:
        while sum(steps == {1, 2, 3} for steps in markers(log_dir).values()) < 2:
            assert driver.poll() is None, driver.stderr.read().decode()[-3000:]
            assert time.time() < deadline, "the first run made no progress"
            time.sleep(0.2)
    finally:
        os.killpg(driver.pid, signal.SIGKILL)  # the driver and the Ray it started, by process group
        driver.wait()
    before = markers(log_dir)
    finished_before = {x for x, steps in before.items() if steps == {1, 2, 3}}
    assert 2 <= len(finished_before) < 6

    (experiment,) = [p for p in storage.iterdir() if p.is_dir()]
    result = orchestrator.resume(str(experiment), verbose=0)

    after = markers(log_dir)
    assert len(result.trials) == 6 and (result.trials["status"] == "TERMINATED").all()
    assert len(set(result.trials["config/x"])) == 6, "the searcher repeated a suggestion"
    assert len(after) == 6 and all(steps == {1, 2, 3} for steps in after.values())
    # Trials that had finished were not trained again (their markers did not change).
    assert all(after[x] == before[x] for x in finished_before)
    assert result.best_metric == pytest.approx(result.trials["loss"].min())

    # The same seed without the crash suggests the same configs.
    other_log = tmp_path / "other"
    other_log.mkdir()
    uninterrupted = orchestrator.tune(
        slow_steps, {"x": Float(0.0, 1.0), "log_dir": str(other_log)}, metric="loss", mode="min",
        num_samples=6, max_concurrent=2, resources={"cpu": 0.5}, seed=5, storage_path=str(tmp_path / "clean"),
        tracking_uri="", name="resume-me", verbose=0)
    assert sorted(uninterrupted.trials["config/x"]) == sorted(result.trials["config/x"])

    # MLflow: one parent run, one child per trial, every step of every trial exactly once.
    client = MlflowClient(result.tracking_uri)
    runs = client.search_runs([result.mlflow_experiment_id])
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == result.mlflow_run_id]
    # (Seen twice in full runs: 8 runs. Most likely cause, now repaired before the resume and tested
    # above: the experiment folder's snapshot was a step behind Tune's staging copy, so a trial started
    # before the kill was created again under a new id. The message names every run if it recurs.)
    assert len(runs) == 7 and len(children) == 6, "\n".join(sorted(
        f"{r.info.run_name} uid={r.data.tags.get('trial_uid')} parent={r.data.tags.get('mlflow.parentRunId')} "
        f"status={r.info.status} start={r.info.start_time} metrics={sorted(r.data.metrics)}" for r in runs))
    assert all(r.info.status == "FINISHED" for r in runs)
    for child in children:
        steps = [m.step for m in client.get_metric_history(child.info.run_id, "loss")]
        assert sorted(steps) == [1, 2, 3], steps


@pytest.mark.slow
def test_ctrl_c_stops_gracefully_and_says_how_to_resume(ray_local, tmp_path):
    log_dir = tmp_path / "markers"
    log_dir.mkdir()
    spec = tmp_path / "spec.yaml"
    spec.write_text(textwrap.dedent(f"""
        name: ctrl-c
        trainable: trainables:slow_steps
        metric: loss
        mode: min
        space:
          x: {{type: float, low: 0.0, high: 1.0}}
          log_dir: {str(log_dir)!r}
        num_samples: 6
        max_concurrent: 2
        resources: {{cpu: 1}}
        storage_path: {str(tmp_path / "runs")!r}
        tracking_uri: ''
    """))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "tests")])}
    cli = subprocess.Popen([sys.executable, "-m", "orchestrator.cli", "run", str(spec), "--quiet"],
                           cwd=ROOT / "tests", env=env, start_new_session=True,
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.time() + 120
        while not any(steps == {1, 2, 3} for steps in markers(log_dir).values()):
            assert cli.poll() is None and time.time() < deadline, "the run made no progress"
            time.sleep(0.2)
        # A terminal's Ctrl-C: SIGINT to the whole foreground process group, once.
        os.killpg(cli.pid, signal.SIGINT)
        output, _ = cli.communicate(timeout=120)
    finally:
        try:
            os.killpg(cli.pid, signal.SIGKILL)  # whatever the CLI started and left behind
        except ProcessLookupError:
            pass
        cli.wait()
    (experiment,) = [p for p in (tmp_path / "runs").iterdir() if p.is_dir()]
    assert cli.returncode == 130, output[-3000:]
    assert f"continue it with: tuneorch resume {experiment}" in output
    assert "Traceback" not in output, output[-3000:]
    assert len(markers(log_dir)) < 6

    result = orchestrator.resume(str(experiment), verbose=0)
    assert len(result.trials) == 6 and (result.trials["status"] == "TERMINATED").all()
    assert not result.interrupted


def finished_run(tmp_path: pathlib.Path, name: str, num_samples: int, max_concurrent: int, seed: int):
    """A small finished run of ``slow_steps`` (no MLflow): ``(result, marker folder)``."""
    log_dir = tmp_path / "markers"
    log_dir.mkdir()
    result = orchestrator.tune(slow_steps, {"x": Float(0.0, 1.0), "log_dir": str(log_dir)}, metric="loss",
                               mode="min", num_samples=num_samples, max_concurrent=max_concurrent,
                               resources={"cpu": 0.5}, seed=seed, storage_path=str(tmp_path / "runs"),
                               tracking_uri="", name=name, verbose=0)
    return result, log_dir


@pytest.mark.parametrize("crash", ["files from two moments", "one step behind"])
def test_a_snapshot_left_inconsistent_or_behind_by_the_crash_is_put_back_from_staging(ray_local, tmp_path, crash):
    """Tune copies its snapshot files into the experiment folder one by one, in the background.
    Seen in CI: a driver killed meanwhile left a search that had created 6 trials beside a trial
    list of 5, and the resume never ran the sixth; a snapshot one step behind makes the resume
    create a started trial again under a new id (and a second MLflow run for it)."""
    import json

    from ray import cloudpickle

    first, log_dir = finished_run(tmp_path, "behind", num_samples=3, max_concurrent=1, seed=3)
    before = markers(log_dir)
    ids = sorted(first.trials["trial_id"])
    folder = pathlib.Path(first.experiment_path)
    (trials_file,) = folder.glob("experiment_state-*.json")
    (search_file,) = folder.glob("search_gen_state-*.json")
    state = json.loads(trials_file.read_text())
    state["trial_data"] = state["trial_data"][:-1]  # the last trial had not reached this copy yet
    trials_file.write_text(json.dumps(state))
    if crash == "one step behind":
        with open(search_file, "rb") as f:
            search = cloudpickle.load(f)
        search["counter"] -= 1
        with open(search_file, "wb") as f:
            cloudpickle.dump(search, f)

    result = orchestrator.resume(first.experiment_path, verbose=0)
    assert sorted(result.trials["trial_id"]) == ids  # the same three trials, none lost, none new
    assert (result.trials["status"] == "TERMINATED").all()
    assert markers(log_dir) == before  # nothing was trained again


def test_a_snapshot_cut_off_by_the_crash_is_repaired_from_tunes_staging_copy(ray_local, tmp_path):
    from orchestrator.faults import ResumeError, repair_experiment_state

    first, log_dir = finished_run(tmp_path, "cut-off", num_samples=2, max_concurrent=2, seed=1)
    before = markers(log_dir)
    (snapshot,) = pathlib.Path(first.experiment_path).glob("experiment_state-*.json")
    whole = snapshot.read_bytes()
    snapshot.write_bytes(whole[: len(whole) // 2])  # the driver died while Tune copied it here

    result = orchestrator.resume(first.experiment_path, verbose=0)
    assert snapshot.read_bytes() == whole
    assert (result.trials["status"] == "TERMINATED").all() and len(result.trials) == 2
    assert markers(log_dir) == before  # nothing was trained again

    # Without an intact copy anywhere: a clear refusal, not a silent start from scratch.
    newest = max(pathlib.Path(first.experiment_path).glob("experiment_state-*.json"))  # the resume's own
    newest.write_bytes(newest.read_bytes()[:100])
    with pytest.raises(ResumeError, match=r"was cut off when the driver died.*delete that file"):
        repair_experiment_state(first.experiment_path, ray_temp_roots=[str(tmp_path / "no-ray-here")])
    assert repair_experiment_state(str(tmp_path)) is None  # no snapshot: nothing to repair
