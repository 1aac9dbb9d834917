"""The console (orchestrator/console.py), the summary's width, and the CLI verbs' errors."""

from __future__ import annotations

import io
import os
import pathlib
import re
import socket
import subprocess
import sys
from types import SimpleNamespace

import pandas as pd
import pytest

from orchestrator.api import TuningResult
from orchestrator.console import Console, fit, table
from orchestrator.outcome import STOP_REASON_KEY

ROOT = pathlib.Path(__file__).resolve().parents[1]
TESTS = pathlib.Path(__file__).resolve().parent
ESCAPE = re.compile(r"\x1b|\r")


def steps(config):
    """A trivial trainable: ``steps`` reports of a loss that is lowest near x = 0.3."""
    from ray import tune

    for i in range(1, int(config["steps"]) + 1):
        tune.report({"loss": (config["x"] - 0.3) ** 2 + 1.0 / i})


LONG = {"learning_rate_of_the_optimizer": 0.000123456789, "hidden_units_per_layer": 1024,
        "a_very_long_parameter_name_indeed": "a-very-long-categorical-value-" * 4,
        "nested": {"dropout_probability": 0.25, "api_key": "sk-secret-value"}, "seed": 3}


def _trial(index: int, status: str, config: dict, last: dict) -> SimpleNamespace:
    return SimpleNamespace(trial_id=f"abcdef12_{index:05d}", status=status, config=config, last_result=last)


def _drive(console: Console, n: int = 6) -> str:
    trials = [_trial(i, "PENDING", dict(LONG, x=0.1 * i), {}) for i in range(n)]
    console.setup(total_num_samples=n)
    for i, trial in enumerate(trials):
        trial.status = "RUNNING"
        console.on_step_begin(i, trials)
        result = {"loss": 1.0 / (i + 1), "training_iteration": 3}
        console.on_trial_result(i, trials, trial, result)
        trial.last_result = dict(result)
        if i % 3 == 1:
            trial.last_result[STOP_REASON_KEY] = "rung 1"
        trial.status = "ERROR" if i == n - 1 else "TERMINATED"
        (console.on_trial_error if i == n - 1 else console.on_trial_complete)(i, trials, trial)
    console.on_experiment_end(trials)
    return console.stream.getvalue()


@pytest.mark.parametrize("width", [60, 80, 120])
def test_console_lines_never_exceed_the_width_with_long_configs(width):
    text = _drive(Console("loss", "min", num_samples=6, stream=io.StringIO(), width=width, tty=False))
    lines = text.splitlines()
    assert lines and all(len(line) <= width for line in lines), [l for l in lines if len(l) > width]
    assert "sk-secret-value" not in text  # redacted, like everywhere else
    assert any("ETA" in line and "done" in line for line in lines)
    assert any("2 early" in line or "2 stopped early" in line for line in lines)
    assert any(line.startswith("trial") for line in lines)  # the table's header


@pytest.mark.parametrize("width", [60, 80, 120])
def test_the_live_bar_fits_too(width):
    text = _drive(Console("loss", "min", num_samples=6, stream=io.StringIO(), width=width, tty=True))
    for line in re.split(r"[\r\n]", re.sub(r"\x1b\[[0-9;]*[A-Za-z]", "", text)):
        assert len(line) <= width, line


def test_plain_lines_without_a_terminal_have_no_escape_codes():
    text = _drive(Console("loss", "min", num_samples=6, stream=io.StringIO()))  # StringIO: no TTY
    assert not ESCAPE.search(text)
    progress = [line for line in text.splitlines() if "ETA" in line]
    assert progress and re.match(r"6/6 done \(1 failed, 2 (stopped )?early\)", progress[-1].split("] ", 1)[1])


def test_the_hyperparameter_columns_come_from_the_trials_configs():
    text = _drive(Console("loss", "min", num_samples=6, stream=io.StringIO(), width=120, tty=False))
    header = next(line for line in text.splitlines() if line.startswith("trial"))
    assert "x" in header.split() and "loss" in header.split()  # x varies: it comes first


def test_fit_and_table_never_wrap():
    assert fit("abcdef", 4) == "abc~" and fit("abc", 4) == "abc"
    rows = [("best metric", "loss = 0.1"), ("  long", "v" * 200, "cut"),
            ("error", "word " * 60), ("experiment", "/a/very/" + "long" * 30 + "/path")]
    for width in (60, 80, 120):
        lines = table(rows, width).splitlines()
        assert all(len(line) <= width for line in lines if "longlong" not in line)
    assert ("word " * 60).split() == " ".join(table(rows, 60).split("error", 1)[1].split("experiment")[0]
                                              .replace("|", " ").split()).split()


def _result(**kw) -> TuningResult:
    trials = pd.DataFrame({"trial_id": ["a", "b", "c", "d"],
                           "status": ["TERMINATED", "TERMINATED", "TERMINATED", "ERROR"],
                           "stop_reason": [None, "rung 1", "rung 3", None]})
    base = dict(best_config=LONG, best_metric=0.1234, best_trial_id="abcdef12_00001", metric="loss",
                mode="min", trials=trials, experiment_path="/tmp/" + "x" * 90 + "/tune-20260101-000000",
                tracking_uri="http://127.0.0.1:5000", mlflow_run_id="0" * 32, mlflow_experiment_id="12",
                errors={"d": "Traceback...\nValueError: " + "bad value " * 30})
    base.update(kw)
    return TuningResult(**base)


@pytest.mark.parametrize("width", [60, 80, 120])
def test_the_summary_fits_the_width(width):
    text = _result().summary(width)
    long_words = [w for w in text.split() if len(w) > width - 2]  # a path longer than the line
    assert all(len(line) <= width for line in text.splitlines() if not any(w in line for w in long_words))
    words = " ".join(w for w in text.split() if w != "|")  # continuation lines start with "|"
    assert "1 error, 1 terminated, 2 stopped early (rung 1: 1, rung 3: 1)" in words
    assert "sk-secret-value" not in text


def test_the_summary_links_the_parent_run():
    text = _result().summary(80)
    assert "http://127.0.0.1:5000/#/experiments/12/runs/" + "0" * 32 in text
    local = _result(tracking_uri="sqlite:////tmp/runs/mlflow.db").summary(80)
    assert "tuneorch ui --tracking-uri sqlite:////tmp/runs/mlflow.db" in local
    assert "http://127.0.0.1:5000/#/experiments/12/runs/" + "0" * 32 in local


# ----- the CLI, for real ---------------------------------------------------------------------

def _cli(*args: str, cwd: pathlib.Path, columns: int = 80, timeout: int = 300) -> subprocess.CompletedProcess:
    env = {**os.environ, "COLUMNS": str(columns), "PYTHONPATH": os.pathsep.join([str(ROOT), str(TESTS)])}
    env.pop("RAY_ADDRESS", None)
    return subprocess.run([sys.executable, "-m", "orchestrator.cli", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=timeout)


SPEC = """\
name: console
trainable: test_console:steps
metric: loss
mode: min
space:
  x: {type: float, low: 0.0, high: 1.0}
  steps: 4
search: random
scheduler: {name: asha, max_t: 4, grace_period: 1, eta: 2}
points_to_evaluate: [{x: 0.3, steps: 4}, {x: 0.95, steps: 4}, {x: 0.9, steps: 4}]
num_samples: 3
max_concurrent: 1
resources: {cpu: 1, gpu: 0}
seed: 0
storage_path: ./runs
tracking_uri: ""
"""


@pytest.fixture(scope="module")
def cli_run(tmp_path_factory):
    work = tmp_path_factory.mktemp("console")
    (work / "spec.yaml").write_text(SPEC)
    done = _cli("run", "spec.yaml", cwd=work)
    return work, done


def test_a_real_run_prints_80_columns_with_progress_and_eta(cli_run):
    work, done = cli_run
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    lines = done.stdout.splitlines()
    print(done.stdout)
    assert all(len(line) <= 80 for line in lines), [l for l in lines if len(l) > 80]
    assert not ESCAPE.search(done.stdout)  # captured: not a terminal
    assert any("ETA" in line and "/3 done" in line for line in lines)
    assert "Trial status" not in done.stdout and "Trial " not in done.stdout  # no Ray boxes/tables
    assert "snapshotting" not in done.stdout + done.stderr
    assert "stopped early" in done.stdout  # the summary counts them
    assert "best metric" in done.stdout and "resume with" in done.stdout


def test_quiet_prints_the_summary_alone(cli_run):
    work, _ = cli_run
    done = _cli("run", "spec.yaml", "--quiet", cwd=work)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    lines = done.stdout.strip().splitlines()
    assert lines[0] == lines[-1] and set(lines[0]) == {"-"}, done.stdout  # the table and nothing else
    assert all(" | " in line or line.endswith("|") or line.startswith("  ") for line in lines[1:-1])


# ----- clear errors in every verb ------------------------------------------------------------

def _refused(done: subprocess.CompletedProcess, words: str) -> None:
    assert done.returncode == 2, done.stdout + done.stderr
    assert done.stderr.startswith("tuneorch: error: ") and words in done.stderr, done.stderr
    assert "Traceback" not in done.stderr


def test_export_resume_of_missing_or_foreign_folders_exit_2_and_create_nothing(tmp_path):
    (tmp_path / "foreign").mkdir()
    for verb in ("export", "resume"):
        _refused(_cli(verb, "missing", cwd=tmp_path), "does not exist")
        _refused(_cli(verb, "foreign", cwd=tmp_path), "holds no Tune experiment")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["foreign"]
    assert not any((tmp_path / "foreign").iterdir())


def test_ui_refuses_bad_stores_and_a_busy_port(tmp_path):
    _refused(_cli("ui", "--tracking-uri", f"sqlite:///{tmp_path}/nope/mlflow.db", cwd=tmp_path), "does not exist")
    _refused(_cli("ui", "--tracking-uri", f"sqlite:///{tmp_path}/mlflow.db", cwd=tmp_path), "no MLflow database")
    _refused(_cli("ui", "--tracking-uri", "bogus://x", cwd=tmp_path), "unknown scheme")
    _refused(_cli("ui", "--tracking-uri", "http://127.0.0.1:1", cwd=tmp_path), "MLflow server already")
    (tmp_path / "mlflow.db").write_bytes(b"")
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        _refused(_cli("ui", "--tracking-uri", "sqlite:///mlflow.db", "--port", str(port), cwd=tmp_path),
                 "another program uses the port")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mlflow.db"]


def test_counts_follow_the_trials_in_flight_and_match_a_full_count():
    """``Console.counts`` tallies each trial once when it ends and then skips it; over a random
    life of 300 trials (created in batches, running, paused, ended early, failed) it agrees with
    counting the whole list at every step."""
    import numpy as np

    rng = np.random.default_rng(0)
    console = Console("loss", "min", num_samples=300, stream=io.StringIO(), width=80, tty=False)
    trials: list = []

    def full_count() -> dict:
        c = {"done": 0, "running": 0, "paused": 0, "pending": 300 - len(trials), "failed": 0, "early": 0,
             "total": 300}
        for t in trials:
            if t.status in ("TERMINATED", "ERROR"):
                c["done"] += 1
                c["failed"] += t.status == "ERROR"
                c["early"] += t.status == "TERMINATED" and STOP_REASON_KEY in t.last_result
            else:
                c[{"RUNNING": "running", "PAUSED": "paused"}.get(t.status, "pending")] += 1
        return c

    while len(trials) < 300 or any(t.status not in ("TERMINATED", "ERROR") for t in trials):
        if len(trials) < 300 and rng.random() < 0.3:
            trials.extend(SimpleNamespace(trial_id=str(len(trials) + k), status="PENDING", last_result={})
                          for k in range(min(300 - len(trials), int(rng.integers(1, 4)))))
        for t in trials:
            if t.status in ("TERMINATED", "ERROR") or rng.random() < 0.6:
                continue
            t.status = str(rng.choice(["RUNNING", "PAUSED", "TERMINATED", "ERROR", "PENDING"]))
            if t.status == "TERMINATED" and rng.random() < 0.3:
                t.last_result = {STOP_REASON_KEY: "asha rung 1"}
        console._trials = trials
        assert console.counts() == full_count()
    assert console.counts()["done"] == 300
    console._trials = trials[:10]  # a new list (another run): counted afresh
    assert console.counts()["done"] == 10
