"""Scale: N trivial trials through our full stack against Tune alone at its fastest, in one run.

Each trial reports ``R`` results and sleeps ``sleep_s`` before each, so with ``K`` trials at once on
``K`` logical CPUs the ideal wall time is ``N * R * sleep_s / K``. Two set-ups run the same workload,
alternating (``bare``, ``ours``, ``bare``, ``ours``, ... for ``repeats``):

* **bare**: Tune alone at its fastest: ``BasicVariantGenerator`` + FIFO over the same space,
  ``reuse_actors=True``, no callbacks (Tune's default loggers off:
  ``TUNE_DISABLE_AUTO_CALLBACK_LOGGERS=1``), ``verbose=0``.
* **ours**: ``orchestrator.tune`` with our TPE (or any registry searcher) and FIFO or our ASHA,
  MLflow tracking into a real ``mlflow server`` on 127.0.0.1 that this module starts and stops (by
  its process group), experiment snapshots (sealed), console quiet (``verbose=0``).

Reported per run: wall time and wall / ideal, results per second, driver CPU seconds, the driver's
peak RSS during the run (sampled from ``/proc/self/status``), the experiment folder's size; for ours
also MLflow points delivered (counted with ``MlflowClient``: every child run's metric histories)
against the points reported (every numeric value of every row of every trial's ``result.json``, as
the tracker records them), the time of ``TuningResult.summary()`` and of the Parquet export, and the
time of ``orchestrator.resume`` of the finished experiment.

``--nodes M`` (M >= 2) instead runs ours on a simulated cluster (``ray.cluster_utils.Cluster``:
M nodes of K/M logical CPUs and ``--gpus-per-node`` fake GPUs), every trial asking for one GPU and
checkpointing every result; ``--remove-node-at F`` removes one worker node once a fraction F of the
trials ended. Every trial records the node and the GPU ids it saw; the report says how many trials
ended, how many resumed from a checkpoint and whether any GPU was shared or missing.

Ray is started here with ``ray.init(address="local", ...)`` (never attaching to someone else's
cluster) and shut down at the end.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import json
import os
import platform
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from typing import Any, Iterator

os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
os.environ.setdefault("RAY_DEDUP_LOGS", "0")

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
METRIC = "loss"


# ----- the trainable ------------------------------------------------------------------------------


def trivial(config: dict) -> None:
    """``config["results"]`` results, each after ``config["sleep_s"]`` seconds of sleep; with
    ``config["checkpoint"]`` a (tiny) checkpoint with every result, and restarts from the latest.
    With ``config["record_placement"]`` each result also carries the node and the GPUs seen."""
    import ray
    from ray import tune

    results, sleep_s = int(config["results"]), float(config["sleep_s"])
    x, y = float(config["x"]), float(config["y"])
    start = 0
    checkpoint = tune.get_checkpoint() if config.get("checkpoint") else None
    if checkpoint is not None:
        with checkpoint.as_directory() as d, open(os.path.join(d, "step")) as f:
            start = int(f.read())
    extra: dict = {}
    if config.get("record_placement"):
        ctx = ray.get_runtime_context()
        extra = {"node": ctx.get_node_id(), "gpu_ids": json.dumps(sorted(str(g) for g in ray.get_gpu_ids())),
                 "cuda_visible_devices": os.environ.get("CUDA_VISIBLE_DEVICES", ""),
                 "restored_from": start}
    for step in range(start, results):
        time.sleep(sleep_s)
        value = (x - 1.0) ** 2 + (y + 0.5) ** 2 + 1.0 / (step + 1)
        if config.get("checkpoint"):
            with tempfile.TemporaryDirectory() as d:
                with open(os.path.join(d, "step"), "w") as f:
                    f.write(str(step + 1))
                tune.report({METRIC: value, **extra}, checkpoint=tune.Checkpoint.from_directory(d))
        else:
            tune.report({METRIC: value, **extra})


def space(results: int, sleep_s: float, checkpoint: bool = False, record_placement: bool = False) -> dict:
    from ray import tune

    return {"x": tune.uniform(-5.0, 5.0), "y": tune.uniform(-5.0, 5.0), "results": results,
            "sleep_s": sleep_s, "checkpoint": checkpoint, "record_placement": record_placement}


# ----- measuring ----------------------------------------------------------------------------------


def rss_bytes() -> int:
    """The resident set size of this process now (``/proc/self/status``; 0 elsewhere)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


class PeakRSS:
    """The largest RSS of this process seen while the block runs (sampled every ``period_s``)."""

    def __init__(self, period_s: float = 0.2):
        self.period_s = period_s
        self.start = self.peak = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def __enter__(self) -> "PeakRSS":
        self.start = self.peak = rss_bytes()
        self._thread = threading.Thread(target=self._loop, name="peak-rss", daemon=True)
        self._thread.start()
        return self

    def _loop(self) -> None:
        while not self._stop.wait(self.period_s):
            self.peak = max(self.peak, rss_bytes())

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, rss_bytes())


def folder_size(path: str) -> tuple[int, int]:
    """``(bytes, files)`` under ``path``."""
    total = files = 0
    for root, _, names in os.walk(path):
        for name in names:
            try:
                total += os.lstat(os.path.join(root, name)).st_size
                files += 1
            except OSError:
                pass
    return total, files


def reported_points(experiment_path: str) -> tuple[int, int]:
    """``(results, numeric values)`` in every trial's ``result.json`` of the experiment: what the
    tracker had to record (the same keys as ``flatten_metrics`` keeps)."""
    from orchestrator.tracking.mlflow_callback import flatten_metrics

    results = points = 0
    for entry in os.scandir(experiment_path):
        path = os.path.join(entry.path, "result.json")
        if not entry.is_dir() or not os.path.isfile(path):
            continue
        with open(path) as f:
            for line in f:
                if line.strip():
                    results += 1
                    points += len(flatten_metrics(json.loads(line)))
    return results, points


def delivered_points(tracking_uri: str, parent_run_id: str, experiment_id: str, threads: int = 4) -> dict:
    """Points in MLflow under the parent run's children, counted with ``MlflowClient``: every
    metric history of every (active) child run."""
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri)
    runs, token = [], None
    while True:
        page = client.search_runs([experiment_id], filter_string=f"tags.`mlflow.parentRunId` = '{parent_run_id}'",
                                  max_results=1000, page_token=token)
        runs += list(page)
        token = page.token
        if not token:
            break
    jobs = [(run.info.run_id, key) for run in runs for key in run.data.metrics]

    def count(job: tuple[str, str]) -> int:
        return len(client.get_metric_history(*job))

    with concurrent.futures.ThreadPoolExecutor(threads) as pool:
        total = sum(pool.map(count, jobs))
    trial_ids = [run.data.tags.get("trial_id") for run in runs]
    return {"child_runs": len(runs), "distinct_trials": len(set(trial_ids)), "points": total,
            "histories": len(jobs)}


# ----- an MLflow server of our own ----------------------------------------------------------------


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class MlflowServer:
    """``mlflow server`` on 127.0.0.1 (sqlite store under ``workdir``), in its own process group,
    stopped by that group (killing only the parent leaves its workers serving)."""

    def __init__(self, workdir: str, workers: int = 1):
        self.workdir = workdir
        self.workers = workers
        self.port = _free_port()
        self.uri = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen | None = None

    def __enter__(self) -> "MlflowServer":
        import urllib.request

        os.makedirs(os.path.join(self.workdir, "artifacts"), exist_ok=True)
        env = dict(os.environ, MLFLOW_SERVER_ENABLE_JOB_EXECUTION="false")
        cmd = [sys.executable, "-m", "mlflow", "server", "--host", "127.0.0.1", "--port", str(self.port),
               "--backend-store-uri", f"sqlite:///{self.workdir}/mlflow.db",
               "--artifacts-destination", f"{self.workdir}/artifacts", "--workers", str(self.workers)]
        log = open(os.path.join(self.workdir, "server.log"), "ab")
        self.proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env,
                                     start_new_session=True, cwd=self.workdir)
        log.close()
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline and self.proc.poll() is None:
            try:
                with urllib.request.urlopen(f"{self.uri}/health", timeout=2) as r:
                    if r.status == 200:
                        return self
            except OSError:
                time.sleep(0.25)
        self.__exit__()
        raise RuntimeError(f"mlflow server on {self.uri} did not become healthy; see {self.workdir}/server.log")

    def __exit__(self, *exc: Any) -> None:
        if self.proc is None:
            return
        pgid = self.proc.pid  # start_new_session: the group is the server's own
        for sig, wait_s in ((signal.SIGTERM, 10.0), (signal.SIGKILL, 5.0)):
            try:
                os.killpg(pgid, sig)
            except ProcessLookupError:
                break
            end = time.monotonic() + wait_s
            while time.monotonic() < end:
                self.proc.poll()
                try:
                    os.killpg(pgid, 0)
                except ProcessLookupError:
                    break
                time.sleep(0.1)
        self.proc.wait(5)
        self.proc = None


# ----- Ray -------------------------------------------------------------------------------------------


@contextlib.contextmanager
def local_ray(num_cpus: int) -> Iterator[None]:
    """A private local Ray of ``num_cpus`` logical CPUs on 127.0.0.1, shut down afterwards."""
    import ray

    from schedulers._ray_private import loopback_node

    os.environ["PYTHONPATH"] = os.pathsep.join(dict.fromkeys(
        [ROOT] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]))
    if ray.is_initialized():
        raise RuntimeError("scale benchmark: Ray is already running in this process; it starts its own")
    with loopback_node():
        ray.init(address="local", num_cpus=num_cpus, num_gpus=0, include_dashboard=False,
                 log_to_driver=False, configure_logging=False)
    try:
        yield
    finally:
        ray.shutdown()


@contextlib.contextmanager
def _env(**values: str | None) -> Iterator[None]:
    saved = {k: os.environ.get(k) for k in values}
    for k, v in values.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


@contextlib.contextmanager
def _quiet(name: str) -> Iterator[None]:
    import logging

    logger = logging.getLogger(name)
    level = logger.level
    logger.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        logger.setLevel(level)


# ----- the two set-ups ----------------------------------------------------------------------------


def run_bare(storage: str, name: str, n: int, results: int, sleep_s: float, k: int, seed: int) -> dict:
    """Tune alone at its fastest on the workload."""
    import numpy as np
    from ray import tune

    np.random.seed(seed)  # BasicVariantGenerator draws from numpy's global generator
    # Without the loggers the ResultGrid finds no result.json and logs one line per trial.
    with _env(TUNE_DISABLE_AUTO_CALLBACK_LOGGERS="1"), _quiet("ray.tune"), PeakRSS() as rss:
        cpu0, t0 = time.process_time(), time.perf_counter()
        tuner = tune.Tuner(
            trivial, param_space=space(results, sleep_s),
            tune_config=tune.TuneConfig(metric=METRIC, mode="min", num_samples=n, reuse_actors=True),
            run_config=tune.RunConfig(name=name, storage_path=storage, verbose=0, callbacks=[]),
        )
        grid = tuner.fit()
        wall = time.perf_counter() - t0
        cpu = time.process_time() - cpu0
    errors = grid.num_errors
    size, files = folder_size(os.path.join(storage, name))
    del grid, tuner
    return {"setup": "bare", "wall_s": wall, "driver_cpu_s": cpu, "rss_start": rss.start, "rss_peak": rss.peak,
            "errors": errors, "folder_bytes": size, "folder_files": files}


def run_ours(storage: str, name: str, n: int, results: int, sleep_s: float, k: int, seed: int,
             search: str, scheduler: str, tracking_uri: str, *, resume: bool = True, count: bool = True,
             cprofile: str | None = None) -> dict:
    """Our full stack on the workload, then its summary, Parquet export, MLflow count and resume."""
    import orchestrator

    scheduler_options = {"max_t": results, "grace_period": 1} if scheduler == "asha" else {}
    kwargs = dict(metric=METRIC, mode="min", search=search, scheduler=scheduler,
                  scheduler_options=scheduler_options, num_samples=n, max_concurrent=k, seed=seed,
                  tracking_uri=tracking_uri, storage_path=storage, name=name, verbose=0)
    profiler = None
    if cprofile:
        import cProfile

        profiler = cProfile.Profile()
    with PeakRSS() as rss:
        cpu0, t0 = time.process_time(), time.perf_counter()
        if profiler is not None:
            profiler.enable()
        result = orchestrator.tune("benchmarks.scale:trivial", space(results, sleep_s), **kwargs)
        if profiler is not None:
            profiler.disable()
            profiler.dump_stats(cprofile)
        wall = time.perf_counter() - t0
        cpu = time.process_time() - cpu0
    out: dict[str, Any] = {"setup": "ours", "search": search, "scheduler": scheduler, "wall_s": wall,
                           "driver_cpu_s": cpu, "rss_start": rss.start, "rss_peak": rss.peak,
                           "errors": len(result.errors), "trials": len(result.trials),
                           "experiment_path": result.experiment_path}
    path = result.experiment_path
    t0 = time.perf_counter()
    result.summary(width=100)
    out["summary_s"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as parquet:
        result.export_parquet(parquet)
        out["export_s"] = time.perf_counter() - t0
    out["results_reported"], out["points_reported"] = reported_points(path)
    out["folder_bytes"], out["folder_files"] = folder_size(path)
    parent, experiment_id = result.mlflow_run_id, result.mlflow_experiment_id
    del result
    if count:
        t0 = time.perf_counter()
        out["mlflow"] = delivered_points(tracking_uri, parent, experiment_id)
        out["mlflow"]["count_s"] = time.perf_counter() - t0
        out["points_delivered"] = out["mlflow"]["points"]
    if resume:
        with PeakRSS() as rss:
            t0 = time.perf_counter()
            resumed = orchestrator.resume(path, verbose=0)
            out["resume_s"] = time.perf_counter() - t0
        out["resume_rss_peak"] = rss.peak
        out["resume_trials"] = len(resumed.trials)
        del resumed
        if count:  # a resume of a finished run records nothing twice
            out["points_delivered_after_resume"] = delivered_points(tracking_uri, parent, experiment_id)["points"]
    return out


# ----- the benchmark ----------------------------------------------------------------------------


def versions() -> dict:
    import mlflow
    import pyarrow
    import ray

    return {"python": platform.python_version(), "ray": ray.__version__, "mlflow": mlflow.__version__,
            "pyarrow": pyarrow.__version__, "machine": f"{platform.machine()}, {os.cpu_count()} cores",
            "load_1min": os.getloadavg()[0]}


def git_commit() -> str | None:
    try:
        out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True)
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=ROOT,
                               capture_output=True, text=True).stdout.strip()
        return out.stdout.strip() + ("+dirty" if dirty else "")
    except OSError:
        return None


def run_benchmark(command: str, *, trials: int, results: int, sleep_s: float, concurrency: int,
                  search: str = "tpe", scheduler: str = "fifo", repeats: int = 1, seed: int = 0,
                  setups: tuple[str, ...] = ("bare", "ours"), resume: bool = True, count: bool = True,
                  workdir: str | None = None, cprofile: str | None = None, server_workers: int = 1,
                  log=print) -> dict:
    ideal = trials * results * sleep_s / concurrency
    data: dict[str, Any] = {
        "meta": {"command": command, "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"), "commit": git_commit(),
                 "versions": versions(), "trials": trials, "results": results, "sleep_s": sleep_s,
                 "concurrency": concurrency, "search": search, "scheduler": scheduler, "repeats": repeats,
                 "ideal_s": ideal},
        "runs": [],
    }
    t_all = time.perf_counter()
    with contextlib.ExitStack() as stack:
        base = workdir or stack.enter_context(tempfile.TemporaryDirectory(prefix="tuneorch-scale-"))
        os.makedirs(base, exist_ok=True)
        server = stack.enter_context(MlflowServer(os.path.join(base, "mlflow"), workers=server_workers)) \
            if "ours" in setups else None
        stack.enter_context(local_ray(concurrency))
        # Warm-up, not recorded: Ray starts its K workers and imports the trainable's modules.
        run_bare(os.path.join(base, "runs"), "warm-up", 2 * concurrency, 1, 0.0, concurrency, seed)
        for r in range(repeats):
            for setup in setups:
                name = f"scale-{setup}-{r}"
                log(f"[{time.strftime('%H:%M:%S')}] {setup} {r + 1}/{repeats}: {trials} trials x {results} "
                    f"results, K={concurrency} (ideal {ideal:.0f} s)")
                if setup == "bare":
                    rec = run_bare(os.path.join(base, "runs"), name, trials, results, sleep_s, concurrency, seed + r)
                else:
                    rec = run_ours(os.path.join(base, "runs"), name, trials, results, sleep_s, concurrency,
                                   seed + r, search, scheduler, server.uri, resume=resume, count=count,
                                   cprofile=cprofile)
                rec["repeat"] = r
                rec["ideal_s"] = ideal
                rec["wall_over_ideal"] = rec["wall_s"] / ideal if ideal else None
                rec["results_per_s"] = trials * results / rec["wall_s"]
                data["runs"].append(rec)
                over = f"{rec['wall_over_ideal']:.2f}x ideal" if rec["wall_over_ideal"] else "no sleep, no ideal"
                log(f"  {setup}: {rec['wall_s']:.1f} s = {over}, "
                    f"peak RSS {rec['rss_peak'] / 2**20:.0f} MiB"
                    + (f", points {rec.get('points_delivered')}/{rec.get('points_reported')}, resume "
                       f"{rec.get('resume_s', float('nan')):.1f} s" if setup == "ours" else ""))
                with open(os.path.join(base, "partial.json"), "w") as f:
                    json.dump(data, f, indent=1, default=str)
    data["meta"]["wall_s"] = time.perf_counter() - t_all
    data["summary"] = summarise(data)
    return data


def summarise(data: dict) -> dict:
    runs = data["runs"]
    by: dict[str, list[dict]] = {}
    for rec in runs:
        by.setdefault(rec["setup"], []).append(rec)
    out: dict[str, Any] = {}
    for setup, recs in by.items():
        out[setup] = {"median_wall_s": statistics.median(r["wall_s"] for r in recs)}
    pairs = [(b, o) for b in by.get("bare", []) for o in by.get("ours", []) if b["repeat"] == o["repeat"]]
    if pairs:
        ratios = [o["wall_s"] / b["wall_s"] for b, o in pairs]
        out["ours_over_bare"] = ratios
        out["median_ours_over_bare"] = statistics.median(ratios)
    return out


def render(data: dict) -> str:
    m = data["meta"]
    v = m["versions"]
    lines = [
        f"# Scale: {m['trials']} trials x {m['results']} results, {m['sleep_s']} s per result, "
        f"K={m['concurrency']} (ideal {m['ideal_s']:.0f} s)",
        "",
        f"`{m['command']}`  ",
        f"{m['date']}, commit {m.get('commit')}; Python {v['python']}, Ray {v['ray']}, MLflow {v['mlflow']}, "
        f"pyarrow {v['pyarrow']}; {v['machine']}, load {v['load_1min']:.1f} at the start.  ",
        f"ours = `orchestrator.tune` with search={m['search']}, scheduler={m['scheduler']}, MLflow server on "
        f"127.0.0.1, sealed experiment snapshots, verbose=0; bare = Tune alone: BasicVariantGenerator + FIFO, "
        f"reuse_actors=True, no callbacks, no default loggers, verbose=0. Runs alternate.",
        "",
        "| run | setup | wall s | wall/ideal | ours/bare | results/s | driver CPU s | peak RSS MiB | "
        "folder MiB (files) | MLflow points delivered/reported | summary s | export s | resume s |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    bare_wall = {r["repeat"]: r["wall_s"] for r in data["runs"] if r["setup"] == "bare"}
    for r in data["runs"]:
        ratio = (f"{r['wall_s'] / bare_wall[r['repeat']]:.3f}" if r["setup"] != "bare" and r["repeat"] in bare_wall
                 else "")
        points = (f"{r.get('points_delivered', '?')}/{r.get('points_reported', '?')}" if r["setup"] != "bare" else "")
        lines.append(
            f"| {r['repeat'] + 1} | {r['setup']} | {r['wall_s']:.1f} | {_f(r['wall_over_ideal'], 3)} | {ratio} | "
            f"{r['results_per_s']:.1f} | {r['driver_cpu_s']:.0f} | {r['rss_peak'] / 2**20:.0f} | "
            f"{r['folder_bytes'] / 2**20:.1f} ({r['folder_files']}) | {points} | "
            f"{_f(r.get('summary_s'))} | {_f(r.get('export_s'))} | {_f(r.get('resume_s'))} |")
    s = data.get("summary", {})
    if "median_ours_over_bare" in s:
        lines += ["", f"Median ours/bare: {s['median_ours_over_bare']:.3f}."]
    if data.get("multinode"):
        lines += ["", render_multinode(data["multinode"])]
    return "\n".join(lines) + "\n"


def _f(value: Any, digits: int = 2) -> str:
    return "" if value is None else f"{value:.{digits}f}"


def write(data: dict, out: str) -> tuple[str, str]:
    os.makedirs(out, exist_ok=True)
    js, md = os.path.join(out, "results.json"), os.path.join(out, "results.md")
    with open(js, "w") as f:
        json.dump(data, f, indent=1, default=str)
    with open(md, "w") as f:
        f.write(render(data))
    return js, md


def default_out() -> str:
    return os.path.join(ROOT, "benchmarks", "results", f"scale-{time.strftime('%Y-%m-%d')}")


# ----- many nodes, simulated -------------------------------------------------------------------------


def run_multinode(command: str, *, trials: int, results: int, sleep_s: float, nodes: int, cpus_per_node: int,
                  gpus_per_node: int, remove_node_at: float | None, seed: int = 0, search: str = "random",
                  workdir: str | None = None, max_failures: int = 3, log=print) -> dict:
    """Ours on a simulated ``nodes``-node cluster, each trial asking for one (fake) GPU and
    checkpointing every result; one worker node removed once ``remove_node_at`` of the trials ended."""
    import ray
    from ray.cluster_utils import Cluster

    import orchestrator

    os.environ["PYTHONPATH"] = os.pathsep.join(dict.fromkeys(
        [ROOT] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]))
    data: dict[str, Any] = {"meta": {"command": command, "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
                                     "commit": git_commit(), "versions": versions(), "trials": trials,
                                     "results": results, "sleep_s": sleep_s, "nodes": nodes,
                                     "cpus_per_node": cpus_per_node, "gpus_per_node": gpus_per_node,
                                     "remove_node_at": remove_node_at, "search": search}}
    if ray.is_initialized():
        raise RuntimeError("multinode: Ray is already running in this process; it starts its own cluster")
    with contextlib.ExitStack() as stack:
        base = workdir or stack.enter_context(tempfile.TemporaryDirectory(prefix="tuneorch-multinode-"))
        cluster = Cluster(initialize_head=True, head_node_args={
            "num_cpus": cpus_per_node, "num_gpus": gpus_per_node, "resources": {"node0": 1000},
            "include_dashboard": False})
        stack.callback(cluster.shutdown)
        workers = [cluster.add_node(num_cpus=cpus_per_node, num_gpus=gpus_per_node,
                                    resources={f"node{i}": 1000}) for i in range(1, nodes)]
        cluster.wait_for_nodes()
        ray.init(address=cluster.address, log_to_driver=False, configure_logging=False)
        stack.callback(ray.shutdown)
        removed = {"node": None, "at_s": None}
        t0 = time.perf_counter()
        watcher = None
        if remove_node_at is not None and workers:
            watcher = _NodeRemover(cluster, workers[-1], trials, remove_node_at, removed)
        callbacks = [watcher] if watcher is not None else []
        result = orchestrator.tune(
            "benchmarks.scale:trivial", space(results, sleep_s, checkpoint=True, record_placement=True),
            metric=METRIC, mode="min", search=search, num_samples=trials, seed=seed, tracking_uri="",
            storage_path=os.path.join(base, "runs"), name="multinode", verbose=0, max_failures=max_failures,
            resources={"cpu": 1, "gpu": 1}, callbacks=callbacks)
        data["wall_s"] = time.perf_counter() - t0
        data["removed"] = removed
        data.update(check_multinode(result.experiment_path, trials, results, gpus_per_node))
        folders = {e.name for e in os.scandir(result.experiment_path) if e.is_dir()}
        data["trials_without_result_file"] = sorted(
            t for t in result.trials["trial_id"] if not any(t in f for f in folders)
            or not any(os.path.isfile(os.path.join(result.experiment_path, f, "result.json")) for f in folders if t in f))
        data["errors"] = len(result.errors)
        data["error_messages"] = {t: (m or "").strip().splitlines()[-1:] for t, m in result.errors.items()}
        frame = result.trials
        data["statuses"] = frame["status"].value_counts().to_dict() if len(frame) else {}
        data["trials_in_result"] = len(frame)
    data["meta"]["wall_s"] = data["wall_s"]
    return data


def _node_remover_class():
    from ray.tune import Callback

    class NodeRemover(Callback):
        """Removes ``node`` from ``cluster`` (not gracefully) once ``fraction`` of ``trials`` ended.
        Tune calls its callbacks in the driver's main thread, where ``Cluster`` must be used."""

        def __init__(self, cluster, node, trials: int, fraction: float, record: dict):
            self.cluster, self.node, self.record = cluster, node, record
            self.threshold = max(1, int(trials * fraction))
            self.ended = 0
            self.t0 = time.perf_counter()

        def __getstate__(self) -> dict:
            return {}

        def on_trial_complete(self, iteration, trials, trial, **info):
            self.ended += 1
            if self.node is not None and self.ended >= self.threshold:
                self.record["node"] = self.node.node_id
                self.record["at_s"] = time.perf_counter() - self.t0
                self.record["running_then"] = sum(1 for t in trials if t.status == "RUNNING")
                self.cluster.remove_node(self.node, allow_graceful=False)
                self.node = None

    return NodeRemover


def _NodeRemover(*args: Any) -> Any:
    return _node_remover_class()(*args)


def check_multinode(experiment_path: str, trials: int, results: int, gpus_per_node: int) -> dict:
    """What every trial's ``result.json`` says: ended with all its results, restored from a
    checkpoint after the node loss, and where it ran (node, GPU ids) against the GPU requests."""
    rows_by_trial: dict[str, list[dict]] = {}
    for entry in os.scandir(experiment_path):
        path = os.path.join(entry.path, "result.json")
        if entry.is_dir() and os.path.isfile(path):
            with open(path) as f:
                rows = [json.loads(line) for line in f if line.strip()]
            if rows:
                rows_by_trial[rows[0]["trial_id"]] = rows
    complete = [t for t, rows in rows_by_trial.items() if max(r["training_iteration"] for r in rows) >= results]
    resumed = [t for t, rows in rows_by_trial.items() if any(r.get("restored_from", 0) > 0 for r in rows)]
    restarted_from_scratch = [t for t, rows in rows_by_trial.items()
                              if sum(1 for r in rows if r.get("restored_from") == 0 and r["training_iteration"] == 1) > 1]
    bad_gpu = []
    nodes: dict[str, int] = {}
    for t, rows in rows_by_trial.items():
        for r in rows:
            gpus = json.loads(r.get("gpu_ids") or "[]")
            visible = [g for g in (r.get("cuda_visible_devices") or "").split(",") if g]
            if len(gpus) != 1 or visible != gpus or not 0 <= int(gpus[0]) < gpus_per_node:
                bad_gpu.append((t, r.get("node"), gpus, visible))
                break
        nodes[rows[-1].get("node")] = nodes.get(rows[-1].get("node"), 0) + 1
    return {"trials_seen": len(rows_by_trial), "trials_complete": len(complete), "trials_lost": trials - len(complete),
            "trials_resumed_from_checkpoint": len(resumed), "restarted_from_scratch": restarted_from_scratch[:20],
            "bad_gpu_placements": bad_gpu[:20], "trials_per_final_node": nodes}


def render_multinode(d: dict) -> str:
    m = d["meta"]
    return "\n".join([
        f"## Many nodes (simulated): {m['nodes']} nodes x {m['cpus_per_node']} CPUs x {m['gpus_per_node']} fake GPUs, "
        f"{m['trials']} trials x {m['results']} results ({m['sleep_s']} s each), one GPU per trial",
        "",
        "| wall s | node removed at s | trials complete | lost | resumed from checkpoint | restarted from scratch "
        "| bad GPU placements | errors |",
        "|---|---|---|---|---|---|---|---|",
        f"| {d['wall_s']:.1f} | {_f((d.get('removed') or {}).get('at_s'))} | {d['trials_complete']} | "
        f"{d['trials_lost']} | {d['trials_resumed_from_checkpoint']} | {len(d['restarted_from_scratch'])} | "
        f"{len(d['bad_gpu_placements'])} | {d['errors']} |",
    ])
