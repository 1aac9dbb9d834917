"""A CI-sized scale run (issue #21): over a hundred trivial trials through the whole stack.

Correctness only, no timing: ``python -m benchmarks scale`` (our stack alone: TPE, FIFO, MLflow
tracking into a real ``mlflow server`` on 127.0.0.1, sealed experiment snapshots) runs 120 trials
of 2 results, 4 at once, in its own process with its own local Ray; then it resumes the finished
experiment. Every point a trial reported reaches MLflow exactly once, before and after the
resume, the resume finds every trial, and the driver's memory stays bounded.
"""

from __future__ import annotations

import json
import os
import pathlib
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
TRIALS, RESULTS = 120, 2


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_a_few_hundred_trials_deliver_every_point_once_and_resume(tmp_path):
    out = tmp_path / "out"
    command = [sys.executable, "-m", "benchmarks", "scale", "--trials", str(TRIALS), "--results", str(RESULTS),
               "--sleep", "0", "--concurrency", "4", "--setups", "ours", "--out", str(out),
               "--workdir", str(tmp_path / "work")]
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=880,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    (run,) = json.loads((out / "results.json").read_text())["runs"]
    assert run["setup"] == "ours" and run["trials"] == TRIALS and run["errors"] == 0
    assert run["results_reported"] == TRIALS * RESULTS
    # Each result carries the metric and Tune's numbers: the tracker records every one, once.
    assert run["points_reported"] >= TRIALS * RESULTS
    assert run["points_delivered"] == run["points_reported"], run["mlflow"]
    assert run["mlflow"]["child_runs"] == run["mlflow"]["distinct_trials"] == TRIALS
    assert run["resume_trials"] == TRIALS
    assert run["points_delivered_after_resume"] == run["points_reported"]
    # Bounded memory: the driver (Ray, MLflow client, pandas, torch imported) stays well under 2 GiB.
    assert run["rss_peak"] < 1.5 * 2**30 and run["resume_rss_peak"] < 1.5 * 2**30
