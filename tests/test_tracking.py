"""MLflow tracking: a real Tune run, an outage, replays, a resume after a driver crash.

Server tests use the session fixture ``mlflow_server`` (a real ``mlflow server``); the sqlite tests
use one module-wide database without a server. Hooks are driven directly with small stand-in
trials where Tune adds nothing but time.
"""

from __future__ import annotations

import json
import math
import os
import pickle
import select
import socket
import subprocess
import sys
import threading
import time
from types import SimpleNamespace

import pytest

from orchestrator.tracking import (
    PARENT_TAG,
    RUN_UID_TAG,
    TRIAL_UID_TAG,
    MLflowTracking,
    TrackingUnavailableError,
    default_tracking_uri,
    replay_outbox,
)
from orchestrator.tracking.outbox import OUTBOX_FILE, OutboxLock, read_json

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


# ----- helpers ----------------------------------------------------------------------------------

def _client(uri):
    from mlflow import MlflowClient

    return MlflowClient(uri)


def _runs(uri, experiment_name):
    client = _client(uri)
    exp = client.get_experiment_by_name(experiment_name)
    return client.search_runs([exp.experiment_id], max_results=1000)


def _children(runs, parent_id):
    return {r.data.tags["trial_id"]: r for r in runs if r.data.tags.get(PARENT_TAG) == parent_id}


def _history(uri, run_id, key):
    return sorted((m.step, m.value, m.timestamp) for m in _client(uri).get_metric_history(run_id, key))


def _trial(trial_id, config, step=0):
    return SimpleNamespace(trial_id=trial_id, config=config,
                           last_result={"training_iteration": step} if step else {})


def _report(tracker, trial, step, **metrics):
    tracker.on_trial_result(iteration=0, trials=[trial], trial=trial,
                            result={"training_iteration": step, "done": False, "pid": 1,
                                    "config": trial.config, **metrics})
    trial.last_result = {"training_iteration": step}  # Tune updates it after the callbacks


class TcpProxy:
    """127.0.0.1:<port> -> target port; ``down()`` refuses and cuts connections, ``up()`` serves."""

    def __init__(self, target_port: int):
        self.target_port = target_port
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.uri = f"http://127.0.0.1:{self.port}"
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._socks: list[socket.socket] = []
        self._lock = threading.Lock()
        self._lose_reply: tuple[bytes, int] = (b"", 0)

    def lose_replies(self, marker: bytes, times: int) -> None:
        """The next ``times`` requests containing ``marker`` reach the server, but the connection
        is cut before the reply: what a client sees when a request timed out after the server
        did the work."""
        self._lose_reply = (marker, times)

    def up(self) -> None:
        self._stop.clear()
        self._listener = socket.socket()
        self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._listener.bind(("127.0.0.1", self.port))
        self._listener.listen(64)
        self._listener.settimeout(0.1)
        self._spawn(self._accept)

    def down(self) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(5)
        self._threads = []
        self._listener.close()
        with self._lock:
            for s in self._socks:
                s.close()
            self._socks = []

    def _spawn(self, fn, *args):
        t = threading.Thread(target=fn, args=args, daemon=True)
        self._threads.append(t)
        t.start()

    def _accept(self):
        while not self._stop.is_set():
            try:
                conn, _ = self._listener.accept()
            except (socket.timeout, OSError):
                continue
            upstream = socket.create_connection(("127.0.0.1", self.target_port))
            with self._lock:
                self._socks += [conn, upstream]
            self._spawn(self._pump, conn, upstream)

    def _pump(self, a, b):
        try:
            while not self._stop.is_set():
                ready, _, _ = select.select([a, b], [], [], 0.1)
                for src in ready:
                    data = src.recv(65536)
                    if not data:
                        return
                    (b if src is a else a).sendall(data)
                    marker, times = self._lose_reply
                    if src is a and times and marker in data:
                        self._lose_reply = (marker, times - 1)
                        select.select([b], [], [], 10.0)  # the server has answered: it did the work
                        return
        except OSError:
            return
        finally:
            a.close()
            b.close()


@pytest.fixture(scope="module")
def sqlite_uri(tmp_path_factory):
    """One sqlite store for the module (creating one costs seconds of migrations)."""
    return default_tracking_uri(str(tmp_path_factory.mktemp("sqlite_store")))


# ----- a real Tune run --------------------------------------------------------------------------

def _trainable(config):
    from ray import tune

    for i in range(3):
        if config["x"] == 3 and i == 1:  # one trial fails after its first report
            raise RuntimeError("boom on purpose")
        tune.report({"loss": (config["x"] - 2) ** 2 + 1.0 / (i + 1), "note": "not a number",
                     "extra": {"acc": i / 3}})


@pytest.mark.slow
def test_tune_run_is_recorded_as_parent_and_children(mlflow_server_process, ray_local, mlflow_server,
                                                     tmp_path):
    from ray import tune

    tracker = MLflowTracking(mlflow_server, "tune-e2e", run_name="grid", outbox_dir=str(tmp_path / "ob"),
                             params={"search": "grid", "space": {"x": "1..3"}}, tags={"owner": "tests"},
                             linger_s=0.05)
    parent_id = tracker.start()
    assert tracker.parent_run_id == parent_id and tracker.experiment_id
    tuner = tune.Tuner(
        _trainable,
        param_space={"x": tune.grid_search([1, 2, 3]), "opt": {"lr": 0.01}},
        tune_config=tune.TuneConfig(metric="loss", mode="min"),
        run_config=tune.RunConfig(name="e2e", storage_path=str(tmp_path / "ray"),
                                  callbacks=[tracker], verbose=0),
    )
    results = tuner.fit()
    best = results.get_best_result()
    tracker.finish(best.config, best.metrics["loss"], "loss")

    runs = _runs(mlflow_server, "tune-e2e")
    parents = [r for r in runs if PARENT_TAG not in r.data.tags]
    assert [p.info.run_id for p in parents] == [parent_id]
    parent = parents[0]
    assert parent.info.status == "FINISHED" and parent.info.run_name == "grid"
    assert parent.data.params == {"search": "grid", "space/x": "1..3"}
    assert parent.data.tags["owner"] == "tests"
    assert parent.data.tags["best_config/x"] == "2" and parent.data.tags["best_metric_name"] == "loss"
    assert json.loads(parent.data.tags["best_config"])["opt"] == {"lr": 0.01}
    assert parent.data.metrics["best/loss"] == pytest.approx(1.0 / 3)

    children = _children(runs, parent_id)
    assert len(children) == 3
    by_x = {c.data.params["x"]: c for c in children.values()}
    assert sorted(by_x) == ["1", "2", "3"]
    for trial_id, child in children.items():
        assert child.info.run_name == trial_id
        assert child.data.tags[TRIAL_UID_TAG].endswith(f"/{trial_id}")
        assert child.data.params["opt/lr"] == "0.01"
        assert "note" not in child.data.metrics and "pid" not in child.data.metrics
        assert "training_iteration" not in child.data.metrics
    for x, child in by_x.items():
        steps = [s for s, _, _ in _history(mlflow_server, child.info.run_id, "loss")]
        if x == "3":
            assert child.info.status == "FAILED" and steps == [1]
            assert "boom on purpose" in child.data.tags["error"]
        else:
            assert child.info.status == "FINISHED" and steps == [1, 2, 3]
            acc = _history(mlflow_server, child.info.run_id, "extra/acc")
            assert [(s, v) for s, v, _ in acc] == [(1, 0.0), (2, pytest.approx(1 / 3)),
                                                   (3, pytest.approx(2 / 3))]
    assert tracker.parent_run_id == parent_id and tracker.delivered  # still readable after finish
    tracker.finish(None, None, "loss", status="FAILED")  # a second finish changes nothing
    assert _client(mlflow_server).get_run(parent_id).info.status == "FINISHED"


# ----- outage -----------------------------------------------------------------------------------

@pytest.mark.slow
def test_outage_delays_records_without_losing_or_duplicating(mlflow_server, tmp_path, monkeypatch):
    # MLflow's own retries off (the default here is 2, ~3 s per failing call): the sender retries.
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    proxy = TcpProxy(int(mlflow_server.rsplit(":", 1)[1]))
    proxy.up()
    tracker = MLflowTracking(proxy.uri, "outage", outbox_dir=str(tmp_path / "ob"),
                             max_backoff_s=1.0, linger_s=0.05, drain_timeout_s=60)
    parent_id = tracker.start()
    trials = [_trial(f"t{i}", {"i": i}) for i in range(3)]
    for t in trials:
        tracker.on_trial_start(iteration=0, trials=trials, trial=t)
    _report(tracker, trials[0], 1, loss=1.0)
    assert tracker.flush(30)

    proxy.down()
    latencies = []
    for step in range(2, 6):
        for t in trials:
            t0 = time.perf_counter()
            _report(tracker, t, step, loss=1.0 / step)
            latencies.append(time.perf_counter() - t0)
    tracker.on_trial_complete(iteration=0, trials=trials, trial=trials[0])
    tracker.on_trial_error(iteration=0, trials=trials, trial=trials[1])
    deadline = time.monotonic() + 20
    while tracker.stats.transient_failures == 0 and time.monotonic() < deadline:
        time.sleep(0.1)
    assert tracker.stats.transient_failures >= 1
    assert not tracker.flush(0.5)  # nothing can be delivered while the server is away
    assert max(latencies) < 0.25, f"a hook blocked during the outage: {max(latencies):.3f} s"

    proxy.up()
    try:
        tracker.finish({"i": 0}, 0.2, "loss")
    finally:
        proxy.down()

    runs = _runs(mlflow_server, "outage")
    children = _children(runs, parent_id)
    assert sorted(children) == ["t0", "t1", "t2"]
    assert {k: c.info.status for k, c in children.items()} == {
        "t0": "FINISHED", "t1": "FAILED", "t2": "KILLED"}
    assert [s for s, _, _ in _history(mlflow_server, children["t0"].info.run_id, "loss")] == [1, 2, 3, 4, 5]
    for name in ("t1", "t2"):
        assert [s for s, _, _ in _history(mlflow_server, children[name].info.run_id, "loss")] == [2, 3, 4, 5]
    parent = next(r for r in runs if r.info.run_id == parent_id)
    assert parent.info.status == "FINISHED" and parent.data.metrics["best/loss"] == 0.2


def test_start_fails_fast_and_releases_the_outbox_when_the_server_is_down(tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{s.getsockname()[1]}"
    tracker = MLflowTracking(dead, "nowhere", outbox_dir=str(tmp_path / "ob"), start_timeout_s=1)
    t0 = time.monotonic()
    with pytest.raises(TrackingUnavailableError, match="tracking_uri"):
        tracker.start()
    assert time.monotonic() - t0 < 15
    OutboxLock(str(tmp_path / "ob")).close()  # not left locked


def test_a_retried_create_run_leaves_one_run_per_trial(mlflow_server, tmp_path):
    # The client's retry (MLFLOW_HTTP_REQUEST_MAX_RETRIES=2, set by start()) re-sends a create_run
    # whose reply was lost although the server made the run: a second run with the same tags.
    proxy = TcpProxy(int(mlflow_server.rsplit(":", 1)[1]))
    proxy.up()
    proxy.lose_replies(b"/runs/create", times=2)  # the parent's and the first child's
    try:
        tracker = MLflowTracking(proxy.uri, "lost-replies", outbox_dir=str(tmp_path / "ob"), linger_s=0.05)
        parent_id = tracker.start()
        trials = [_trial(f"t{i}", {"i": i}) for i in range(2)]
        for t in trials:
            tracker.on_trial_start(iteration=0, trials=trials, trial=t)
            _report(tracker, t, 1, loss=1.0)
            tracker.on_trial_complete(iteration=0, trials=trials, trial=t)
        tracker.finish({"i": 0}, 1.0, "loss")
    finally:
        proxy.down()
    assert proxy._lose_reply[1] == 0  # both replies were lost, so both creates were retried

    runs = _runs(mlflow_server, "lost-replies")
    parents = [r for r in runs if PARENT_TAG not in r.data.tags]
    assert [p.info.run_id for p in parents] == [parent_id]
    children = [r for r in runs if r.data.tags.get(PARENT_TAG) == parent_id]
    assert sorted(c.data.tags["trial_id"] for c in children) == ["t0", "t1"], \
        [(c.info.run_id, c.data.tags.get("trial_id")) for c in runs]
    for c in children:
        assert [s for s, _, _ in _history(mlflow_server, c.info.run_id, "loss")] == [1]
        assert c.info.status == "FINISHED"


# ----- sqlite store without a server: replay, PBT, limits, pickling ----------------------------

def test_a_duplicate_child_run_is_merged_into_one_at_finish(sqlite_uri, tmp_path, caplog):
    """Two runs for one trial (seen in a crash-and-resume test, cause not pinned down): at finish
    the oldest keeps every point and the end status, the copy is deleted."""
    from mlflow.entities import Metric

    tracker = MLflowTracking(sqlite_uri, "dup-child", outbox_dir=str(tmp_path / "ob"), linger_s=0.0)
    parent_id = tracker.start()
    trials = [_trial("a", {"lr": 0.1}), _trial("b", {"lr": 0.2})]
    for t in trials:
        tracker.on_trial_start(iteration=0, trials=trials, trial=t)
    _report(tracker, trials[0], 1, loss=1.0)
    assert tracker.flush(30)
    client = _client(sqlite_uri)
    original = _children(_runs(sqlite_uri, "dup-child"), parent_id)["a"]
    copy = client.create_run(original.info.experiment_id, run_name="a", start_time=original.info.start_time + 1,
                             tags={k: v for k, v in original.data.tags.items() if not k.startswith("mlflow.r")})
    client.log_batch(copy.info.run_id, metrics=[Metric("loss", 0.5, 5, 2)])  # a step only the copy has
    client.set_terminated(copy.info.run_id, status="FINISHED", end_time=6)
    _report(tracker, trials[1], 1, loss=2.0)
    tracker.on_trial_complete(iteration=0, trials=trials, trial=trials[1])
    with caplog.at_level("WARNING"):
        tracker.finish({"lr": 0.1}, 0.5, "loss")

    runs = _runs(sqlite_uri, "dup-child")
    children = [r for r in runs if r.data.tags.get(PARENT_TAG) == parent_id]
    assert sorted(c.data.tags["trial_id"] for c in children) == ["a", "b"]
    kept = next(c for c in children if c.data.tags["trial_id"] == "a")
    assert kept.info.run_id == original.info.run_id and kept.info.status == "FINISHED"
    assert [s for s, _, _ in _history(sqlite_uri, kept.info.run_id, "loss")] == [1, 2]
    assert client.get_run(copy.info.run_id).info.lifecycle_stage == "deleted"
    assert "had 2 child runs; merged into the oldest" in caplog.text


def test_replaying_an_outbox_twice_lands_each_point_once(sqlite_uri, tmp_path):
    outbox = str(tmp_path / "ob")
    tracker = MLflowTracking(sqlite_uri, "replay", outbox_dir=outbox, params={"n": 2}, linger_s=0.0)
    parent_id = tracker.start()
    trials = [_trial("a", {"lr": 0.1}), _trial("b", {"lr": 0.2})]
    for t in trials:
        tracker.on_trial_start(iteration=0, trials=trials, trial=t)
        for step in (1, 2, 3):
            _report(tracker, t, step, loss=step * 0.5, acc=0.25)
    tracker.on_trial_complete(iteration=0, trials=trials, trial=trials[0])
    tracker.finish({"lr": 0.1}, 0.5, "loss")

    def snapshot():
        runs = _runs(sqlite_uri, "replay")
        return {r.data.tags.get("trial_id", "parent"): (
            r.info.run_id, r.info.status, r.data.params,
            {k: _history(sqlite_uri, r.info.run_id, k) for k in r.data.metrics})
            for r in runs}

    before = snapshot()
    assert len(before) == 3 and before["parent"][0] == parent_id
    assert [s for s, _, _ in before["a"][3]["loss"]] == [1, 2, 3]
    assert before["b"][1] == "KILLED"
    for _ in range(2):
        stats = replay_outbox(outbox, from_start=True)
        assert stats.runs_created == 0 and stats.rejected == 0 and stats.metric_points > 0
        assert snapshot() == before


def test_config_changes_limits_and_odd_values_do_not_crash(sqlite_uri, tmp_path):
    tracker = MLflowTracking(sqlite_uri, "pbt-and-limits", outbox_dir=str(tmp_path / "ob"),
                             linger_s=0.0)
    parent_id = tracker.start()
    wide = {f"p{i:03d}": i for i in range(150)}
    trial = _trial("pbt_0", {"lr": 0.1, "wide": wide})
    tracker.on_trial_start(iteration=0, trials=[trial], trial=trial)
    many = {f"k{i:04d}": float(i) for i in range(1200)}
    _report(tracker, trial, 1, many=many, **{"bad key(1)": 1.0, "nan": float("nan"), "s": "str",
                                             "b": True, "none": None, "list": [1, 2]})
    # PBT: the config changes; once seen in a result, once after a restart.
    trial.config = {"lr": 0.2, "wide": wide}
    _report(tracker, trial, 2, loss=0.5)
    trial.config = {"lr": 0.4, "wide": wide}
    tracker.on_trial_start(iteration=0, trials=[trial], trial=trial)

    # Tune pickles callbacks (tuner.pkl); a copy attaches to the same session and parent run.
    copy = pickle.loads(pickle.dumps(tracker))
    assert copy.parent_run_id is None
    _report(copy, trial, 3, loss=0.25)
    assert copy.parent_run_id == parent_id
    copy.on_trial_complete(iteration=0, trials=[trial], trial=trial)
    tracker.finish(None, None, "loss")
    assert tracker.delivered and tracker.stats.rejected == 0 and copy.parent_run_id == parent_id

    child = _children(_runs(sqlite_uri, "pbt-and-limits"), parent_id)["pbt_0"]
    assert child.info.status == "FINISHED"
    assert child.data.params["lr"] == "0.1" and len(child.data.params) == 151
    assert json.loads(child.data.tags["config_history/1"]) == {"lr": "0.2"}
    assert json.loads(child.data.tags["config_history/2"]) == {"lr": "0.4"}
    metrics = child.data.metrics
    assert sum(k.startswith("many/") for k in metrics) == 1200
    assert metrics["bad key_1_"] == 1.0 and math.isnan(metrics["nan"])
    assert not {"s", "b", "none", "list"} & set(metrics)
    assert [s for s, _, _ in _history(sqlite_uri, child.info.run_id, "loss")] == [2, 3]
    outbox = str(tmp_path / "ob")
    assert not os.path.exists(os.path.join(outbox, "rejected.jsonl"))


def test_a_run_deleted_in_the_ui_does_not_stall_delivery(sqlite_uri, tmp_path):
    tracker = MLflowTracking(sqlite_uri, "deleted-run", outbox_dir=str(tmp_path / "ob"), linger_s=0.0,
                             drain_timeout_s=30)
    parent_id = tracker.start()
    a, b = _trial("a", {"v": 1}), _trial("b", {"v": 2})
    for t in (a, b):
        tracker.on_trial_start(iteration=0, trials=[a, b], trial=t)
        _report(tracker, t, 1, loss=1.0)
    assert tracker.flush(30)
    _client(sqlite_uri).delete_run(_children(_runs(sqlite_uri, "deleted-run"), parent_id)["a"].info.run_id)
    for t in (a, b):
        _report(tracker, t, 2, loss=0.5)
        tracker.on_trial_complete(iteration=0, trials=[a, b], trial=t)
    tracker.finish(None, None, "loss")
    assert tracker.delivered and tracker.stats.rejected >= 1
    runs = _runs(sqlite_uri, "deleted-run")
    child_b = _children(runs, parent_id)["b"]
    assert child_b.info.status == "FINISHED"
    assert [s for s, _, _ in _history(sqlite_uri, child_b.info.run_id, "loss")] == [1, 2]
    assert next(r for r in runs if r.info.run_id == parent_id).info.status == "FINISHED"
    with open(tmp_path / "ob" / "rejected.jsonl") as f:
        assert all(json.loads(line)["error"] for line in f)


@pytest.mark.parametrize("raw, clean", [
    ("loss", "loss"), ("val/loss", "val/loss"), ("a//b/", "a/b"), ("./a", "_/a"), ("..", "__"),
    ("loss(val)", "loss_val_"), ("x:y", "x_y"), ("ünï", "ünï"), ("k" * 300, "k" * 250),
])
def test_clean_key_gives_names_mlflow_accepts(raw, clean):
    from mlflow.utils.validation import _validate_metric_name

    from orchestrator.tracking.sender import clean_key

    assert clean_key(raw) == clean
    _validate_metric_name(clean)


# ----- resume after a driver crash --------------------------------------------------------------

_CRASHING_DRIVER = r"""
import os, sys
from types import SimpleNamespace
from orchestrator.tracking import MLflowTracking
uri, outbox = sys.argv[1], sys.argv[2]
tr = MLflowTracking(uri, "resume", run_name="first", outbox_dir=outbox, linger_s=0.5)
print(tr.start(), flush=True)
trials = [SimpleNamespace(trial_id=t, config={"t": t}, last_result={}) for t in ("t0", "t1")]
def report(t, step):
    tr.on_trial_result(iteration=0, trials=trials, trial=t,
                       result={"training_iteration": step, "loss": 1.0 / step})
for t in trials:
    tr.on_trial_start(iteration=0, trials=trials, trial=t)
    for step in (1, 2, 3):
        report(t, step)
assert tr.flush(60)
for step in (4, 5):
    report(trials[0], step)
tr.on_trial_complete(iteration=0, trials=trials, trial=trials[0])
os._exit(3)  # the driver dies: the last records are in the outbox, not in MLflow
"""


@pytest.mark.slow
def test_resume_after_a_driver_crash_finds_the_same_runs(mlflow_server, tmp_path):
    outbox = str(tmp_path / "ob")
    proc = subprocess.run([sys.executable, "-c", _CRASHING_DRIVER, mlflow_server, outbox],
                          capture_output=True, text=True, timeout=120, cwd=REPO,
                          env=dict(os.environ, PYTHONPATH=REPO))
    assert proc.returncode == 3, proc.stderr[-3000:]
    first_parent = proc.stdout.split()[0]
    size = os.path.getsize(os.path.join(outbox, OUTBOX_FILE))
    committed = read_json(os.path.join(outbox, "committed"))["offset"]
    assert committed < size  # records were left undelivered by the crash
    with open(os.path.join(outbox, OUTBOX_FILE), "ab") as f:
        f.write(b'{"k":"metrics","trial":"t1","ts":1,"st')  # a torn last line

    tracker = MLflowTracking(mlflow_server, "resume", run_name="second", outbox_dir=outbox,
                             linger_s=0.05)
    assert tracker.start() == first_parent
    t1 = _trial("t1", {"t": "t1"}, step=3)
    t2 = _trial("t2", {"t": "t2"})
    for t in (t1, t2):
        tracker.on_trial_start(iteration=0, trials=[t1, t2], trial=t)
    for step in (4, 5):
        _report(tracker, t1, step, loss=1.0 / step)
    _report(tracker, t2, 1, loss=1.0)
    for t in (t1, t2):
        tracker.on_trial_complete(iteration=0, trials=[t1, t2], trial=t)
    tracker.finish({"t": "t0"}, 0.2, "loss")

    runs = _runs(mlflow_server, "resume")
    parents = [r for r in runs if PARENT_TAG not in r.data.tags]
    assert [p.info.run_id for p in parents] == [first_parent]
    assert parents[0].info.run_name == "first" and parents[0].info.status == "FINISHED"
    assert parents[0].data.tags[RUN_UID_TAG] == tracker_run_uid(outbox)
    children = _children(runs, first_parent)
    assert sorted(children) == ["t0", "t1", "t2"]
    assert all(c.info.status == "FINISHED" for c in children.values())
    for name, steps in (("t0", [1, 2, 3, 4, 5]), ("t1", [1, 2, 3, 4, 5]), ("t2", [1])):
        assert [s for s, _, _ in _history(mlflow_server, children[name].info.run_id, "loss")] == steps


def tracker_run_uid(outbox):
    return read_json(os.path.join(outbox, "state.json"))["run_uid"]


# ----- measurements (printed; run with -s) ------------------------------------------------------

@pytest.mark.skipif(not os.environ.get("TRACKING_BENCH"), reason="measurement; TRACKING_BENCH=1 -s")
@pytest.mark.parametrize("fsync", [True, False])
def test_measure_hook_latency_and_delivery_throughput(mlflow_server, tmp_path, fsync):
    """20 trials x 50 results x 10 metrics through the real server; prints the numbers."""
    tracker = MLflowTracking(mlflow_server, "throughput", outbox_dir=str(tmp_path / "ob"),
                             fsync=fsync, linger_s=0.2)
    tracker.start()
    trials = [_trial(f"t{i}", {"i": i, "lr": 0.01}) for i in range(20)]
    for t in trials:
        tracker.on_trial_start(iteration=0, trials=trials, trial=t)
    metrics = {f"m{j}": 0.5 for j in range(10)}
    lat = []
    t_start = time.perf_counter()
    for step in range(1, 51):
        for t in trials:
            t0 = time.perf_counter()
            _report(tracker, t, step, **metrics)
            lat.append(time.perf_counter() - t0)
    hooks_s = time.perf_counter() - t_start
    assert tracker.flush(120)
    total_s = time.perf_counter() - t_start
    stats = tracker.stats
    lat.sort()
    print(f"\nfsync={fsync}: on_trial_result p50 {lat[len(lat) // 2] * 1e3:.2f} ms, "
          f"p99 {lat[int(len(lat) * 0.99)] * 1e3:.2f} ms over {len(lat)} calls; "
          f"{stats.metric_points} points in {stats.batches} log_batch calls, "
          f"mean {sum(stats.batch_seconds) / len(stats.batch_seconds) * 1e3:.1f} ms per call, "
          f"{stats.metric_points / sum(stats.batch_seconds):.0f} points/s inside log_batch; "
          f"hooks took {hooks_s:.2f} s, all delivered {total_s:.2f} s after the first hook")
    assert stats.metric_points >= 20 * 50 * 10
    assert lat[len(lat) // 2] < 0.05
    tracker.finish(None, None, "m0")


def test_a_resumed_trial_records_each_result_of_its_history_once_whatever_its_steps(sqlite_uri, tmp_path):
    """Results are identified by their place in the trial's history, not by their step: a PBT
    clone repeats steps (here 3, 4 after 4), and after a kill the resume's reconciler says from
    which result the trial goes on (``rewind``); the results it reports again are not recorded
    twice, the clone's repeated steps are."""
    outbox = str(tmp_path / "ob")
    first = MLflowTracking(sqlite_uri, "ordinals", outbox_dir=outbox, linger_s=0.0)
    first.start()
    trial = _trial("p", {"h": 0.5})
    first.on_trial_start(iteration=0, trials=[trial], trial=trial)
    for step, q in ((1, 0.1), (2, 0.2), (3, 0.3), (4, 0.4), (3, 0.35)):  # exploit: back to step 2
        _report(first, trial, step, Q=q)
        time.sleep(0.003)  # one result per millisecond: MLflow's order is the timestamps'
    assert first.flush(30)
    first.close()  # the driver dies: nothing ends

    second = MLflowTracking(sqlite_uri, "ordinals", outbox_dir=outbox, linger_s=0.0)
    second.start()
    second.rewind("p", 4)  # result.json kept 4 rows: the re-run starts with the 5th (step 3 again)
    trial = _trial("p", {"h": 0.5}, step=2)
    second.on_trial_start(iteration=0, trials=[trial], trial=trial)
    for step, q in ((3, 0.35), (4, 0.45), (3, 0.36)):
        _report(second, trial, step, Q=q)
        time.sleep(0.003)
    second.finish(None, None, "Q")
    (run,) = [r for r in _runs(sqlite_uri, "ordinals") if r.data.tags.get("trial_id") == "p"]
    got = sorted(_client(sqlite_uri).get_metric_history(run.info.run_id, "Q"), key=lambda m: m.timestamp)
    assert [(m.step, m.value) for m in got] == [(1, 0.1), (2, 0.2), (3, 0.3), (4, 0.4), (3, 0.35),
                                                (4, 0.45), (3, 0.36)]


def test_threads_of_a_session_left_open_are_stopped_at_exit(tmp_path):
    """A process that started a tracker and never finished it (a run that raised) stops the
    sender and fdatasync threads at exit, before the interpreter tears down (daemon threads
    waking during teardown can crash it), and exits 0."""
    import subprocess
    import sys
    import textwrap

    script = textwrap.dedent(f"""
        import atexit, threading
        # Registered first, so it runs after tuneorch's handler (atexit runs in reverse order).
        atexit.register(lambda: print("alive at exit:", sorted(t.name for t in threading.enumerate()
                                                         if t.name in ("mlflow-outbox-sender", "outbox-fdatasync"))))
        from orchestrator.tracking import MLflowTracking
        tracker = MLflowTracking("sqlite:///{tmp_path}/mlflow.db", "left-open", outbox_dir="{tmp_path}/ob")
        tracker.start()
        print("started:", sorted(t.name for t in threading.enumerate()
                                 if t.name in ("mlflow-outbox-sender", "outbox-fdatasync")))
    """)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120,
                          cwd=str(tmp_path), env={**os.environ, "PYTHONPATH": os.path.dirname(os.path.dirname(os.path.abspath(__file__)))})
    assert done.returncode == 0, done.stderr[-2000:]
    assert "started: ['mlflow-outbox-sender', 'outbox-fdatasync']" in done.stdout, done.stdout
    assert "alive at exit: []" in done.stdout, done.stdout
