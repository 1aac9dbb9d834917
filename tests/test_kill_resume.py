"""A driver SIGKILLed at a random moment, then ``tuneorch resume``: the end state is exact.

Each case starts a driver process (``tests/kill_resume_driver.py``: its own local Ray, MLflow
in a sqlite store), kills its whole process group with SIGKILL at a moment drawn by a seeded
generator (right after the k-th trial start or the k-th step any trial ran, read from the
markers the trainable writes, plus a random delay, so that some kills land in Tune's snapshot,
between a trial's start and the next snapshot, during an exploit or during MLflow delivery),
resumes in a second process and checks against the real MLflow store:

* one parent run, exactly one child run per trial, and the trials are ``num_samples``;
* every reported result exactly once: per trial, the results in MLflow (in the order they were
  recorded) are the rows of the trial's final ``result.json`` (same steps, same values, same
  order), and so are the rows of the Parquet export (``tuneorch export``). On PBT a clone inherits
  its donor's ``training_iteration``, so a trial's steps repeat and jump: a result is its place
  in the trial's history, not its step (``orchestrator/reconcile.py``). On ASHA the steps are
  also 1, 2, ... n, each once;
* no trial that had a checkpoint before the kill restarted from scratch, nor (ASHA) from a
  checkpoint older than its newest one;
* every trial folder belongs to a trial of the final experiment.
"""

from __future__ import annotations

import glob
import json
import os
import pathlib
import random
import signal
import subprocess
import sys
import time

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
TESTS = ROOT / "tests"
SEED = 20240517
# The drivers join the test session's Ray (``ray_local``) instead of starting their own: a Ray
# start costs 10-25 s on 2 busy cores. A killed driver's trial actors are ended by Ray with its job.
RAY_ADDRESS: str | None = None
CASES = 5  # kills per scheduler


def _moments(scheduler: str) -> list[tuple[str, int, float]]:
    """``(marker kind, k, delay s)``: kill ``delay`` s after the k-th new trial start or step."""
    rng = random.Random(f"{SEED}-{scheduler}")
    out = []
    for _ in range(CASES):
        if rng.random() < 0.4:
            out.append(("start", rng.randint(1, 3), round(rng.uniform(0.0, 1.0), 3)))
        else:
            out.append(("step", rng.randint(2, 10), round(rng.uniform(0.0, 0.6), 3)))
    return out


def _markers(log_dir: pathlib.Path, kind: str) -> dict[str, list[int]]:
    out = {}
    for path in log_dir.glob(f"*.{kind}"):
        out[path.name[: -len(kind) - 1]] = [int(x) for x in path.read_text().split()]
    return out


def _env() -> dict:
    env = {k: v for k, v in os.environ.items() if k != "TUNE_GLOBAL_CHECKPOINT_S"}
    if RAY_ADDRESS:
        env["RAY_ADDRESS"] = RAY_ADDRESS
    env["PYTHONPATH"] = os.pathsep.join([str(TESTS), str(ROOT), env.get("PYTHONPATH", "")])
    env["RAY_DEDUP_LOGS"] = "0"
    return env


def _count(log_dir: pathlib.Path, kind: str) -> int:
    return sum(len(v) for v in _markers(log_dir, kind).values())


def _segment(mode: str, case_file: pathlib.Path, moment: tuple | None, log_dir: pathlib.Path,
             err_path: pathlib.Path) -> str:
    """Run the driver (``run`` or ``resume``); with ``moment``, SIGKILL it (and its process
    group) then, else wait for its end. Returns what happened."""
    with open(err_path, "wb") as err:
        driver = subprocess.Popen([sys.executable, str(TESTS / "kill_resume_driver.py"), mode, str(case_file)],
                                  cwd=TESTS, env=_env(), start_new_session=True, stdout=subprocess.DEVNULL,
                                  stderr=err)
        try:
            if moment is None:
                driver.wait(timeout=300)
                return f"ended ({driver.returncode})"
            kind, k, delay = moment
            base = _count(log_dir, kind + "s")
            deadline = time.time() + 200
            while _count(log_dir, kind + "s") < base + k:
                if driver.poll() is not None:
                    return f"ended before the kill ({driver.returncode})"
                assert time.time() < deadline, "the driver made no progress"
                time.sleep(0.02)
            time.sleep(delay)
            return "killed" if driver.poll() is None else f"ended before the kill ({driver.returncode})"
        finally:
            try:
                os.killpg(driver.pid, signal.SIGKILL)  # the driver and whatever it started
            except ProcessLookupError:
                pass
            driver.wait()


def _failure_text(err_path: pathlib.Path) -> str:
    """The driver's last traceback and the end of its output: the console's lines would push the
    traceback out of a plain tail."""
    text = err_path.read_text(errors="replace")
    start = text.rfind("Traceback (most recent call last)")
    return (text[start:start + 6000] + "\n...\n" if start >= 0 else "") + text[-2000:]


def _checkpointed_before(experiment: pathlib.Path) -> dict[str, int]:
    """{trial id: newest step whose checkpoint the driver had registered}, from every copy of the
    trials' result.json (the driver's staging copies under /tmp/ray included)."""
    name = experiment.name
    paths = glob.glob(str(experiment / "*" / "result.json")) + glob.glob(
        f"/tmp/ray/session_*/artifacts/*/{glob.escape(name)}/driver_artifacts/*/result.json")
    out: dict[str, int] = {}
    for path in paths:
        try:
            text = pathlib.Path(path).read_text()
        except FileNotFoundError:  # a staging copy removed since the glob: the other copies count
            continue
        for line in text.splitlines():
            try:
                row = json.loads(line)
            except ValueError:
                continue
            if row.get("checkpoint_dir_name"):
                tid = row["trial_id"]
                out[tid] = max(out.get(tid, 0), int(row["training_iteration"]))
    return out


def _check(case: dict, result: dict, experiment: pathlib.Path, log_dir: pathlib.Path,
           kills: list[tuple[dict, dict]]) -> list[str]:
    from mlflow import MlflowClient

    problems = []
    trials = result["trials"]
    if len(trials) != case["num_samples"]:
        problems.append(f"{len(trials)} trials, not {case['num_samples']}")
    client = MlflowClient(result["tracking_uri"])
    runs = client.search_runs([result["experiment_id"]], max_results=1000)
    parents = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == result["parent"]]
    if len(parents) != 1:
        problems.append(f"{len(parents)} parent runs")
    child_trials = sorted(r.data.tags.get("trial_id") for r in children)
    if child_trials != trials:
        problems.append(f"{len(children)} children for {len(trials)} trials "
                        f"(extra {sorted(set(child_trials) - set(trials))}, "
                        f"dup {sorted({t for t in child_trials if child_trials.count(t) > 1})})")
    metric = "loss" if case["scheduler"] == "asha" else "Q"
    from orchestrator.export import export_parquet
    import pyarrow.parquet as pq

    exported: dict[str, list] = {}
    table = pq.read_table(export_parquet(str(experiment), str(experiment.parent.parent / "parquet"))["metrics"]).to_pylist()
    for row in table:
        if row["key"] == metric:
            exported.setdefault(row["trial_id"], []).append((row["step"], row["value"]))
    folders = {p.name: p for p in experiment.iterdir() if p.is_dir() and (p / "params.json").exists()}
    owned = {}
    checked = case.setdefault("checked", [0, 0])  # trials, results compared
    for name, path in folders.items():
        rows = [json.loads(x) for x in (path / "result.json").read_text().splitlines()] \
            if (path / "result.json").exists() else []
        tid = rows[0]["trial_id"] if rows else None
        owned[name] = tid
        if tid not in trials:
            problems.append(f"orphan trial folder {name} (trial {tid})")
            continue
        run = next((r for r in children if r.data.tags.get("trial_id") == tid), None)
        if run is None:
            continue
        history = sorted(client.get_metric_history(run.info.run_id, metric), key=lambda m: (m.timestamp, m.step))
        recorded = [(m.step, m.value) for m in history]
        reported = [(int(r["training_iteration"]), float(r[metric])) for r in rows]
        checked[0] += 1
        checked[1] += len(reported)
        if recorded != reported:
            problems.append(f"trial {tid}: MLflow results (step, {metric}) {recorded} != result.json's {reported}")
        if sorted(exported.get(tid, [])) != sorted(reported):
            problems.append(f"trial {tid}: Parquet export {sorted(exported.get(tid, []))} != result.json's "
                            f"{sorted(reported)}")
        reported = [step for step, _ in reported]
        if case["scheduler"] == "asha" and reported != list(range(1, len(reported) + 1)):
            problems.append(f"trial {tid}: result.json steps {reported}")
    if sorted(t for t in owned.values() if t) != trials:
        problems.append(f"trial folders hold {sorted(t for t in owned.values() if t)}, trials are {trials}")
    starts = _markers(log_dir, "starts")
    for k, (starts_before, checkpointed) in enumerate(kills):
        for tid, had in checkpointed.items():
            following = starts.get(tid, [])[len(starts_before.get(tid, [])):][:1]  # its next start
            if tid not in trials:
                problems.append(f"kill {k}: trial {tid} had a checkpoint at step {had} and is gone")
            elif following and following[0] == 0:
                problems.append(f"kill {k}: trial {tid} had a checkpoint at step {had} and retrained from "
                                f"scratch: starts {starts[tid]}")
            elif following and case["scheduler"] == "asha" and following[0] < had:
                problems.append(f"kill {k}: trial {tid} restarted from step {following[0]}, had a checkpoint at {had}")
    return problems


def _kill_chain(scheduler: str, tmp: pathlib.Path) -> tuple[list[str], list[str]]:
    """One experiment, killed at each moment of :func:`_moments` (the first run, then every resume
    of it), then resumed to its end. Returns (problems, report lines)."""
    log_dir = tmp / "markers"
    log_dir.mkdir(parents=True)
    storage = tmp / "runs"
    case = {"scheduler": scheduler, "num_samples": 14 if scheduler == "asha" else 4,
            "max_concurrent": 4, "seed": 7, "steps": 8 if scheduler == "asha" else 40, "sleep": 0.15,
            "storage": str(storage), "tracking_uri": f"sqlite:///{tmp}/mlflow.db", "name": f"kill-{scheduler}",
            "log_dir": str(log_dir), "result": str(tmp / "result.json")}
    case_file = tmp / "case.json"
    case_file.write_text(json.dumps(case))
    kills, report = [], []
    for i, moment in enumerate(_moments(scheduler)):
        outcome = _segment("run" if i == 0 else "resume", case_file, moment, log_dir, tmp / f"segment{i}.err")
        if i == 0:
            (experiment,) = [p for p in storage.iterdir() if p.is_dir()]
            case["experiment"] = str(experiment)
            case_file.write_text(json.dumps(case))
        assert not outcome.startswith("ended") or outcome.endswith("(0)"), \
            _failure_text(tmp / f"segment{i}.err")
        checkpointed = _checkpointed_before(experiment)
        kills.append((_markers(log_dir, "starts"), checkpointed))
        report.append(f"{scheduler} kill {i} at {moment}: {outcome}; trials started {len(kills[-1][0])}, "
                      f"with a checkpoint {len(checkpointed)}")
    outcome = _segment("resume", case_file, None, log_dir, tmp / "final.err")
    assert outcome == "ended (0)", _failure_text(tmp / "final.err")
    result = json.loads((tmp / "result.json").read_text())
    problems = _check(case, result, experiment, log_dir, kills)
    report.append(f"{scheduler} final: {len(result['trials'])} trials, statuses {sorted(set(result['statuses']))}, "
                  f"results compared (MLflow, result.json, Parquet) for {case['checked'][0]} trials: "
                  f"{case['checked'][1]}")
    return problems, report


@pytest.mark.slow
@pytest.mark.timeout(900)
@pytest.mark.parametrize("scheduler", ["asha", "pbt"])
def test_resume_after_a_sigkill_at_random_moments_is_exact(ray_local, tmp_path, scheduler):
    global RAY_ADDRESS
    RAY_ADDRESS = ray_local.get_runtime_context().gcs_address
    problems, report = _kill_chain(scheduler, tmp_path)
    print("\n" + "\n".join(report))
    assert not problems, "\n".join(problems + report)
