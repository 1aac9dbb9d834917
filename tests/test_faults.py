"""Trial faults: retried from the last checkpoint; NaN results never count as good ones."""

from __future__ import annotations

import math
import time

import pytest

from orchestrator import tune
from search_algs import Float
from trainables import crashes_once, reports_nan_in_a_region


def test_a_crashed_trial_is_retried_from_its_last_checkpoint(ray_local, tmp_path):
    log_dir = tmp_path / "markers"
    log_dir.mkdir()
    result = tune(crashes_once, {"x": Float(0.0, 1.0), "log_dir": str(log_dir)}, metric="loss", mode="min",
                  num_samples=2, max_concurrent=2, max_failures=1, seed=0, storage_path=str(tmp_path / "runs"),
                  tracking_uri="", verbose=0)
    assert (result.trials["status"] == "TERMINATED").all() and not result.errors
    names = sorted(p.name for p in log_dir.iterdir())
    for x in result.trials["config/x"]:
        prefix = f"{x:.12f}"
        assert f"{prefix}-crashed" in names
        # Step 1 ran once: the retry started from the checkpoint of step 1, not from scratch.
        assert [n for n in names if n.startswith(prefix) and not n.endswith("crashed")] == [
            f"{prefix}-1", f"{prefix}-2", f"{prefix}-3"]


def test_nan_results_are_failures_for_the_searcher_and_never_the_best(ray_local, tmp_path):
    from search_algs.random_search import RandomSearch

    searcher = RandomSearch(seed=4)
    result = tune(reports_nan_in_a_region, {"x": Float(0.0, 1.0)}, metric="loss", mode="min", search=searcher,
                  num_samples=8, max_concurrent=2, storage_path=str(tmp_path), tracking_uri="", verbose=0)
    xs = list(result.trials["config/x"])
    assert any(x > 0.5 for x in xs) and any(x <= 0.5 for x in xs)
    assert result.best_config["x"] <= 0.5 and math.isfinite(result.best_metric)
    # The searcher Tune used is a copy; its record of outcomes is in the experiment's saved state.
    assert len(result.trials) == 8


# ---- hangs, out of memory, lost workers ---------------------------------------------------

def _markers(log_dir, x):
    prefix = f"{x:.12f}-"
    return sorted(p.name[len(prefix):] for p in log_dir.iterdir() if p.name.startswith(prefix))


def _space(log_dir, times=1):
    return {"x": Float(0.0, 1.0), "log_dir": str(log_dir), "times": times}


def test_a_hung_trial_is_killed_and_retried_from_its_last_checkpoint(ray_local, tmp_path):
    from fault_trainables import hangs

    started = time.monotonic()
    result = tune(hangs, _space(tmp_path), metric="loss", mode="min", num_samples=1, max_failures=1,
                  report_timeout_s=4, seed=0, storage_path=str(tmp_path / "runs"), tracking_uri="", verbose=0)
    assert (result.trials["status"] == "TERMINATED").all() and not result.errors
    # Killed once at step 2, then step 2 and 3 ran from the checkpoint of step 1.
    assert _markers(tmp_path, result.trials["config/x"][0]) == ["1", "2", "3", "hung"]
    assert time.monotonic() - started < 120


def test_a_trial_that_keeps_hanging_fails_with_the_reason_and_the_run_goes_on(ray_local, tmp_path):
    from fault_trainables import hangs

    result = tune(hangs, _space(tmp_path, times=10), metric="loss", mode="min", num_samples=1,
                  max_failures=1, report_timeout_s=3, seed=0, storage_path=str(tmp_path / "runs"),
                  tracking_uri="", verbose=0)
    assert list(result.trials["status"]) == ["ERROR"]
    (message,) = result.errors.values()
    assert "hung: reported nothing for" in message and "(report_timeout_s=3)" in message
    assert "raise report_timeout_s if the trial is only slow" in _words(result.summary())
    # Two attempts, both hung after step 1 (the second one restarted from step 1's checkpoint).
    assert _markers(tmp_path, result.trials["config/x"][0]) == ["1", "hung"]
    assert open(tmp_path / f"{result.trials['config/x'][0]:.12f}-hung").read() == "2"


def test_out_of_memory_is_retried_then_reported_as_such(ray_local, tmp_path):
    from fault_trainables import runs_out_of_memory

    # Once: the retry continues from the checkpoint of step 1.
    (tmp_path / "once").mkdir()
    retried = tune(runs_out_of_memory, _space(tmp_path / "once"), metric="loss", mode="min", num_samples=1,
                   max_failures=1, storage_path=str(tmp_path / "runs"), tracking_uri="", verbose=0)
    assert (retried.trials["status"] == "TERMINATED").all()
    assert _markers(tmp_path / "once", retried.trials["config/x"][0]) == ["1", "2", "3", "oom"]
    # Always: failed after its retries, with the likely cause and the fix.
    (tmp_path / "always").mkdir()
    failed = tune(runs_out_of_memory, _space(tmp_path / "always", times=10), metric="loss", mode="min",
                  num_samples=1, max_failures=1, storage_path=str(tmp_path / "runs"), tracking_uri="", verbose=0)
    (message,) = failed.errors.values()
    assert "MemoryError" in message and "out of memory: the trial asked for more memory" in message
    assert "out of memory" in _words(failed.summary())


def test_a_killed_worker_is_retried_from_its_last_checkpoint(ray_local, tmp_path):
    from fault_trainables import loses_its_worker

    result = tune(loses_its_worker, _space(tmp_path), metric="loss", mode="min", num_samples=1, max_failures=1,
                  storage_path=str(tmp_path / "runs"), tracking_uri="", verbose=0)
    assert (result.trials["status"] == "TERMINATED").all()
    assert _markers(tmp_path, result.trials["config/x"][0]) == ["1", "2", "3", "killed"]


def test_errors_are_explained_by_their_likely_cause():
    from orchestrator.faults import explain_error

    assert explain_error("ValueError: bad lr") is None
    assert explain_error("torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 2.00 GiB").startswith(
        "out of memory")
    assert explain_error("ray.exceptions.OutOfMemoryError: Task was killed due to the node running low on "
                         "memory.").startswith("out of memory")
    assert explain_error("ActorDiedError: The actor died unexpectedly before finishing this task. "
                         "(exit code -9)").startswith("the trial's worker process died")
    assert explain_error("anything", "hung: reported nothing for 5 s").startswith("hung: reported nothing")


def test_the_watchdog_kills_only_running_trials_silent_for_too_long():
    from orchestrator.faults import HangWatchdog

    class FakeTrial:  # the watchdog reads trial_id, status and temporary_state.ray_actor only
        def __init__(self, trial_id, status="RUNNING"):
            self.trial_id, self.status, self.temporary_state = trial_id, status, None

    now = [0.0]
    dog = HangWatchdog(10, clock=lambda: now[0])
    quiet, busy, paused = FakeTrial("quiet"), FakeTrial("busy"), FakeTrial("paused", "PAUSED")
    for trial in (quiet, busy, paused):
        dog.on_trial_start(0, [], trial)
    now[0] = 8.0
    dog.on_trial_result(0, [], busy, {})
    now[0] = 12.0
    dog.on_step_begin(0, [quiet, busy, paused])
    assert list(dog.hung) == ["quiet"] and "reported nothing for 12 s" in dog.hung["quiet"]
    now[0] = 30.0  # once killed, a trial is not killed again until it restarts
    dog.on_step_begin(0, [quiet, busy])
    assert list(dog.hung) == ["quiet", "busy"]  # busy went quiet after its result at 8 s
    with pytest.raises(ValueError, match="report_timeout_s: must be a positive number"):
        HangWatchdog(0)


def test_a_tuner_state_cut_off_by_a_killed_resume_is_put_back(tmp_path):
    """``Tuner.restore`` rewrites tuner.pkl in place; a resume killed meanwhile left it empty
    (seen by tests/test_kill_resume.py) and no later resume could read the experiment."""
    import pickle

    from orchestrator.faults import repair_experiment_state

    tuner = tmp_path / "tuner.pkl"
    tuner.write_bytes(pickle.dumps({"state": list(range(10))}))
    assert repair_experiment_state(str(tmp_path)) is None  # nothing else to repair; a copy kept
    whole = tuner.read_bytes()
    tuner.write_bytes(whole[:5])
    repair_experiment_state(str(tmp_path))
    assert tuner.read_bytes() == whole


def _words(summary: str) -> str:
    """The summary's text with its line breaks undone (long values continue on the next lines,
    after a ``|``, to fit the terminal's width)."""
    return " ".join(w for w in summary.split() if w != "|")

