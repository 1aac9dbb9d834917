"""Trials placed on a real 2-node Ray cluster with fake GPUs (``ray.cluster_utils.Cluster``).

The cluster is a head and one worker node on this machine, each ``num_cpus=2, num_gpus=2``
(fake GPUs: Ray only sets ``CUDA_VISIBLE_DEVICES``). ``orchestrator.tune`` joins it by its
address. Because a process can ``ray.init`` only once and the session fixture ``ray_local``
may already have done so in the pytest process, the whole scenario runs ONCE in a child
process (its own process group, killed as a group on timeout) that writes what it saw as
JSON; the tests below assert on that record.

Every trial waits at a file barrier until all trials of its run have started, so the trials
compared below really ran at the same time.
"""

from __future__ import annotations

import json
import os
import pathlib
import shutil
import signal
import subprocess
import sys
import tempfile
import time

import pytest

TESTS = pathlib.Path(__file__).resolve().parent
ROOT = TESTS.parent
SCENARIO_TIMEOUT_S = 240


# ----- the trainable (imported by Ray workers as test_multinode.gpu_probe) -------------------

def gpu_probe(config):
    """Report which node and which (fake) GPU this trial got; wait for its peers first."""
    import ray
    from ray import tune as ray_tune

    barrier = pathlib.Path(config["barrier_dir"])
    started = time.time()
    (barrier / f"{os.getpid()}-{started:.6f}").touch()
    deadline = started + config["barrier_timeout_s"]
    while len(list(barrier.iterdir())) < config["peers"] and time.time() < deadline:
        time.sleep(0.1)
    peers_seen = len(list(barrier.iterdir()))
    ray_tune.report({
        "score": float(config["x"]),
        "cuda_visible_devices": os.environ.get("CUDA_VISIBLE_DEVICES", ""),
        "gpu_ids": ",".join(str(g) for g in ray.get_gpu_ids()),
        "node_id": ray.get_runtime_context().get_node_id(),
        "peers_seen": peers_seen,
        "start": started,
        "end": time.time(),
    })


def checkpointed_steps(config):
    """Four checkpointed steps of 0.6 s; reports its node; leaves a marker per step it ran.

    A marker names the trial (x), the step, the node, the step this attempt restored from, and the attempt.
    """
    import json as json_
    import tempfile as tempfile_

    import ray
    from ray import tune as ray_tune

    start = 0
    checkpoint = ray_tune.get_checkpoint()
    if checkpoint is not None:
        with checkpoint.as_directory() as directory:
            start = json_.loads(pathlib.Path(directory, "step.json").read_text())["step"]
    node = ray.get_runtime_context().get_node_id()
    attempt = time.time_ns()  # orders the attempts of one trial (one clock: one machine)
    for step in range(start + 1, 5):
        time.sleep(0.6)
        (pathlib.Path(config["marker_dir"]) / f"{config['x']:.12f}-{step}-{node}-{start}-{attempt}").touch()
        with tempfile_.TemporaryDirectory() as directory:
            pathlib.Path(directory, "step.json").write_text(json_.dumps({"step": step}))
            ray_tune.report({"score": float(config["x"]), "node_id": node},
                            checkpoint=ray_tune.Checkpoint.from_directory(directory))


_CLUSTER = None  # the scenario's Cluster (driver side), for the node-loss callback


def _remove_worker_node(node_id: str) -> None:
    worker = next(n for n in _CLUSTER.worker_nodes if n.node_id == node_id)
    _CLUSTER.remove_node(worker, allow_graceful=False)


try:
    from ray.tune import Callback as _TuneCallback
except ImportError:  # pragma: no cover - ray is a dependency
    _TuneCallback = object


class LoseWorkerNode(_TuneCallback):
    """Removes the worker node (not gracefully) once a trial on it has checkpointed 2 steps.

    A module-level class, so Tune pickles it by reference (not the Cluster it reaches).
    """

    def __init__(self, node_id: str):
        self.node_id = node_id
        self.removed = False

    def on_trial_result(self, iteration, trials, trial, result, **info):
        if not self.removed and result.get("node_id") == self.node_id and result.get("training_iteration", 0) >= 2:
            self.removed = True
            _remove_worker_node(self.node_id)


def _node_loss_run(address: str, work: pathlib.Path, worker_node_id: str) -> dict:
    from orchestrator import tune
    from search_algs import Float

    markers = work / "markers-node-loss"
    markers.mkdir()
    lose_node = LoseWorkerNode(worker_node_id)
    result = tune(checkpointed_steps, {"x": Float(0.0, 1.0), "marker_dir": str(markers)}, metric="score",
                  mode="max", num_samples=4, max_concurrent=4, resources={"cpu": 1}, max_failures=3,
                  address=address, storage_path=str(work / "runs"), name="node-loss", tracking_uri="",
                  verbose=0, callbacks=[lose_node])
    frame = result.trials.reindex(columns=["trial_id", "status", "error", "training_iteration", "config/x"])
    return {"trials": json.loads(frame.to_json(orient="records")),
            "markers": sorted(p.name for p in markers.iterdir()),
            "removed": lose_node.removed}


# ----- the scenario, run in a child process ---------------------------------------------------

def _probe_run(address: str, work: pathlib.Path, name: str, resources: dict, trials: int) -> list[dict]:
    from orchestrator import tune
    from search_algs import Float

    barrier = work / f"barrier-{name}"
    barrier.mkdir()
    space = {"x": Float(0.0, 1.0), "barrier_dir": str(barrier), "peers": trials, "barrier_timeout_s": 40.0}
    result = tune(gpu_probe, space, metric="score", mode="max", num_samples=trials, resources=resources,
                  address=address, storage_path=str(work / "runs"), name=name, tracking_uri="", verbose=0)
    columns = ["trial_id", "status", "error", "cuda_visible_devices", "gpu_ids", "node_id", "peers_seen",
               "start", "end"]
    frame = result.trials.reindex(columns=columns)
    return json.loads(frame.to_json(orient="records"))


def scenario(out_path: str) -> None:
    """Start the 2-node cluster, run the three cases, write what happened to ``out_path``."""
    import ray
    from ray.cluster_utils import Cluster

    from orchestrator import cluster as orch_cluster
    from orchestrator.spec import SpecError

    work = pathlib.Path(out_path).parent
    record: dict = {"timings": {}}
    t0 = time.monotonic()
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 2, "num_gpus": 2, "include_dashboard": False})
    try:
        cluster.add_node(num_cpus=2, num_gpus=2)
        cluster.wait_for_nodes()
        record["timings"]["cluster_up_s"] = round(time.monotonic() - t0, 1)
        record["address"] = cluster.address
        record["cluster_node_ids"] = sorted(n.node_id for n in cluster.list_all_nodes())

        t = time.monotonic()
        record["whole_gpu"] = _probe_run(cluster.address, work, "whole-gpu", {"cpu": 1, "gpu": 1}, 4)
        record["timings"]["whole_gpu_s"] = round(time.monotonic() - t, 1)
        record["nodes"] = orch_cluster.nodes()

        t = time.monotonic()
        record["half_gpu"] = _probe_run(cluster.address, work, "half-gpu", {"cpu": 1, "gpu": 0.5}, 4)
        record["timings"]["half_gpu_s"] = round(time.monotonic() - t, 1)

        t = time.monotonic()
        try:
            _probe_run(cluster.address, work, "too-big", {"cpu": 1, "gpu": 3}, 1)
            record["too_big"] = {"raised": None}
        except SpecError as exc:
            record["too_big"] = {"raised": "SpecError", "message": str(exc)}
        except Exception as exc:  # noqa: BLE001 - recorded, the test says what was wrong
            record["too_big"] = {"raised": type(exc).__name__, "message": str(exc)}
        record["timings"]["too_big_s"] = round(time.monotonic() - t, 1)

        global _CLUSTER
        _CLUSTER = cluster
        worker_id = cluster.worker_nodes and next(iter(cluster.worker_nodes)).node_id
        record["lost_node_id"] = worker_id
        t = time.monotonic()
        record["node_loss"] = _node_loss_run(cluster.address, work, worker_id)
        record["timings"]["node_loss_s"] = round(time.monotonic() - t, 1)
    finally:
        ray.shutdown()
        cluster.shutdown()
    record["timings"]["total_s"] = round(time.monotonic() - t0, 1)
    with open(out_path, "w") as f:
        json.dump(record, f, indent=1)


# ----- the tests --------------------------------------------------------------------------

@pytest.fixture(scope="module")
def multinode(tmp_path_factory):
    """Run :func:`scenario` once in a child process and return its record."""
    work = tmp_path_factory.mktemp("multinode")
    out = work / "record.json"
    env = dict(os.environ)
    env.pop("RAY_ADDRESS", None)  # the scenario names its own cluster
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(TESTS), str(ROOT), env.get("PYTHONPATH", "")) if p)
    env.setdefault("RAY_DEDUP_LOGS", "0")
    env.setdefault("RAY_AIR_NEW_OUTPUT", "0")
    # A private Ray temp dir (short: Unix socket paths): the cluster's sessions and its
    # `ray_current_cluster` address file live there, so nobody's `ray.init("auto")` on this host
    # attaches to the test cluster while it runs.
    ray_tmp = tempfile.mkdtemp(prefix="tuneorch-mn-", dir="/tmp")
    env["RAY_TMPDIR"] = ray_tmp
    log_path = work / "scenario.log"
    code = f"import test_multinode; test_multinode.scenario({str(out)!r})"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen([sys.executable, "-c", code], cwd=str(work), env=env, stdout=log,
                                stderr=subprocess.STDOUT, start_new_session=True)
        try:
            proc.wait(SCENARIO_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            _kill_group(proc)
    tail = log_path.read_text(errors="replace")[-4000:]
    _kill_group(proc)  # Ray processes the child left behind, if any (its own group only)
    shutil.rmtree(ray_tmp, ignore_errors=True)
    if proc.returncode != 0 or not out.exists():
        pytest.fail(f"multi-node scenario failed (exit code {proc.returncode}); log tail:\n{tail}")
    record = json.loads(out.read_text())
    print("multi-node timings:", record["timings"])
    return record


def _kill_group(proc: subprocess.Popen) -> None:
    """End the child's process group (created by us with start_new_session), nothing else."""
    try:
        pgid = os.getpgid(proc.pid)
    except ProcessLookupError:
        pgid = proc.pid
    if pgid != proc.pid or pgid == os.getpgid(0):
        return
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(pgid, sig)
        except ProcessLookupError:
            return
        time.sleep(1.0)
    try:
        proc.wait(5)
    except subprocess.TimeoutExpired:
        pass


def _overlap(rows: list[dict]) -> bool:
    """All trials were running at one moment (each started before any ended)."""
    return max(r["start"] for r in rows) < min(r["end"] for r in rows)


def test_whole_gpu_trials_get_distinct_gpus_on_both_nodes(multinode):
    rows = multinode["whole_gpu"]
    assert len(rows) == 4
    assert all(r["status"] == "TERMINATED" and not r["error"] for r in rows), rows
    assert all(r["peers_seen"] == 4 for r in rows), "the 4 trials did not all run at once"
    assert _overlap(rows)
    # every trial sees exactly one GPU, the one Ray assigned it
    for r in rows:
        assert r["cuda_visible_devices"] == r["gpu_ids"] and r["cuda_visible_devices"] in ("0", "1"), r
    # both nodes are used, and on each node the concurrent trials hold different GPUs
    used_nodes = {r["node_id"] for r in rows}
    assert used_nodes == set(multinode["cluster_node_ids"])
    pairs = [(r["node_id"], r["cuda_visible_devices"]) for r in rows]
    assert len(set(pairs)) == 4, pairs


def test_fractional_gpu_trials_share_one_gpu(multinode):
    rows = multinode["half_gpu"]
    assert len(rows) == 4
    assert all(r["status"] == "TERMINATED" and not r["error"] for r in rows), rows
    assert all(r["peers_seen"] == 4 for r in rows), "the 4 trials did not all run at once"
    assert _overlap(rows)
    by_gpu: dict = {}
    for r in rows:
        by_gpu.setdefault((r["node_id"], r["cuda_visible_devices"]), []).append(r["trial_id"])
    # two half-GPU trials on one GPU of each node; never more than 1.0 GPU on one device
    assert {len(v) for v in by_gpu.values()} == {2}, by_gpu
    assert len({node for node, _ in by_gpu}) == 2, by_gpu


def test_request_no_node_holds_fails_naming_every_node(multinode):
    outcome = multinode["too_big"]
    assert outcome["raised"] == "SpecError", outcome
    message = outcome["message"]
    assert "GPU=3" in message
    for node in multinode["nodes"]:
        assert f"node {node['node_id']}: CPU=2, GPU=2" in message, message
    assert len(multinode["nodes"]) == 2


# ----- autoscaling clusters: node types the autoscaler can still add (no Ray needed) ---------

from orchestrator import cluster as orch_cluster  # noqa: E402
from orchestrator.spec import SpecError, normalise_resources  # noqa: E402

HEAD_ONLY = [{"node_id": "head00000000", "CPU": 0.0, "memory": 8 * 2**30, "node:__internal_head__": 1.0}]


@pytest.fixture
def head_only(monkeypatch):
    """An autoscaling cluster scaled to zero: only a head without CPUs for trials is alive."""
    monkeypatch.setattr(orch_cluster, "nodes", lambda: [dict(n) for n in HEAD_ONLY])
    monkeypatch.setattr(orch_cluster, "_node_types_from_gcs", lambda: [])
    monkeypatch.delenv(orch_cluster.NODE_TYPES_ENV, raising=False)
    monkeypatch.setattr(orch_cluster, "_joined_address", None)


def _res(**kw):
    return normalise_resources(kw)


def test_gpu_trials_accepted_on_a_cluster_scaled_to_zero(head_only, monkeypatch):
    monkeypatch.setenv(orch_cluster.NODE_TYPES_ENV, str(ROOT / "deploy" / "cluster" / "aws-gpu.yaml"))
    orch_cluster.check_resources(_res(cpu=1, gpu=1))  # no GPU node alive, but one can be added
    # at its largest: 2 x g5.12xlarge (4 GPUs) + 4 x g5.2xlarge (1 GPU) = 12 one-GPU trials
    assert orch_cluster.trials_that_fit(_res(cpu=1, gpu=1)) == 12
    assert orch_cluster.trials_that_fit(_res(cpu=4, gpu=0)) == 2 * 12 + 4 * 2 + 4 * 2
    with pytest.raises(SpecError) as info:
        orch_cluster.check_resources(_res(cpu=1, gpu=8))
    message = str(info.value)
    assert "node head00000000: CPU=0, GPU=0" in message
    assert "gpu-4x-a10g (up to 2): CPU=48, GPU=4" in message and "cpu-worker (up to 4)" in message


def test_cluster_wide_max_workers_caps_the_forecast(head_only, monkeypatch, tmp_path):
    config = {"max_workers": 3, "head_node_type": "head", "available_node_types": {
        "head": {"resources": {"CPU": 0}, "node_config": {}, "max_workers": 0},
        "small": {"resources": {"CPU": 4, "GPU": 1}, "node_config": {}, "max_workers": 10},
        "big": {"resources": {"CPU": 16, "GPU": 4}, "node_config": {}, "max_workers": 2}}}
    path = tmp_path / "ray_bootstrap_config.yaml"
    path.write_text(json.dumps(config))
    monkeypatch.setattr(orch_cluster, "BOOTSTRAP_CONFIG", str(path))
    # the bootstrap file counts only for a driver that joined a cluster, not a private local Ray
    monkeypatch.setattr(orch_cluster, "_joined_address", "local")
    assert orch_cluster.node_types() == []
    assert orch_cluster.trials_that_fit(_res(cpu=1, gpu=1)) == 1
    monkeypatch.setattr(orch_cluster, "_joined_address", "auto")
    assert {t["name"] for t in orch_cluster.node_types()} == {"small", "big"}
    assert orch_cluster.trials_that_fit(_res(cpu=1, gpu=1)) == 2 * 4 + 1 * 1  # 3 nodes: 2 big, 1 small


def test_node_types_as_json(head_only, monkeypatch):
    monkeypatch.setenv(orch_cluster.NODE_TYPES_ENV, json.dumps(
        {"gpu-workers": {"resources": {"CPU": 4, "GPU": 1, "memory": 16 * 2**30}, "max_workers": 3}}))
    orch_cluster.check_resources(_res(cpu=2, gpu=0.5))
    assert orch_cluster.trials_that_fit(_res(cpu=2, gpu=0.5)) == 3 * 2
    monkeypatch.setenv(orch_cluster.NODE_TYPES_ENV, "{not json")
    with pytest.raises(SpecError, match="TUNEORCH_NODE_TYPES"):
        orch_cluster.node_types()


def test_without_node_types_only_alive_nodes_count(monkeypatch):
    alive = [{"node_id": "a", "CPU": 2.0, "GPU": 2.0}, {"node_id": "b", "CPU": 2.0, "GPU": 2.0}]
    monkeypatch.setattr(orch_cluster, "nodes", lambda: alive)
    monkeypatch.setattr(orch_cluster, "node_types", lambda: [])
    assert orch_cluster.trials_that_fit(_res(cpu=1, gpu=0.5)) == 4
    assert orch_cluster.trials_that_fit(_res(cpu=0.5, gpu=0.5)) == 8
    with pytest.raises(SpecError, match=r"node a: CPU=2, GPU=2; node b: CPU=2, GPU=2;"):
        orch_cluster.check_resources(_res(cpu=1, gpu=3))


def test_a_node_lost_mid_run_loses_nothing(multinode):
    """The worker node is removed while trials run on it: they restart from their checkpoints."""
    loss = multinode["node_loss"]
    lost = multinode["lost_node_id"]
    assert loss["removed"], loss
    assert all(t["status"] == "TERMINATED" and t["training_iteration"] == 4 for t in loss["trials"]), loss
    attempts: dict[str, dict[int, tuple[str, int, list[int]]]] = {}  # x -> attempt -> (node, start, steps)
    for name in loss["markers"]:
        x, step, node, start, attempt = name.split("-")
        node_, start_, steps = attempts.setdefault(x, {}).setdefault(int(attempt), (node, int(start), []))
        assert (node_, start_) == (node, int(start)), name
        steps.append(int(step))
    assert len(attempts) == 4
    nodes = {x: {node for node, _, _ in by_attempt.values()} for x, by_attempt in attempts.items()}
    moved = [x for x in attempts if lost in nodes[x] and len(nodes[x]) == 2]
    assert moved, "no trial was running on the lost node and moved to the head"
    for x in attempts:
        history = [attempts[x][a] for a in sorted(attempts[x])]
        assert sorted({s for _, _, steps in history for s in steps}) == [1, 2, 3, 4], history
        reached = 0
        for node, start, steps in history:
            # Each attempt resumes from the last checkpoint: at most the step whose report was in flight
            # when its attempt died (marker written, checkpoint not yet registered) is trained again.
            assert start >= reached - 1, (x, history)
            assert steps == list(range(start + 1, start + 1 + len(steps))), (x, history)
            reached = max(reached, *steps)
    # A trial that had reported two checkpoints on the lost node (the removal's trigger) resumed on the
    # head from step 1 or later, never from scratch.
    trigger = [x for x in moved if max(s for n, _, steps in attempts[x].values() if n == lost for s in steps) >= 2]
    assert trigger, attempts
    for x in trigger:
        restarts = [start for a, (node, start, _) in sorted(attempts[x].items()) if node != lost]
        assert restarts and min(restarts) >= 1, attempts[x]
