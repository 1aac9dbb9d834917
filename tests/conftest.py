"""Shared fixtures: one local Ray instance for the whole test session.

Ray is started with ``address="local"`` so tests never attach to somebody else's cluster on
this host, and it is shut down (only our own processes) at the end.
"""

from __future__ import annotations

import os
import pathlib

import pytest

_TESTS = pathlib.Path(__file__).resolve().parent
# Ray workers started here inherit this environment: they import trainables defined in test
# modules (``test_api.quadratic``) and in the project the same way the driver does.
os.environ["PYTHONPATH"] = os.pathsep.join(
    p for p in (str(_TESTS), str(_TESTS.parent), os.environ.get("PYTHONPATH", "")) if p
)

os.environ.setdefault("RAY_DEDUP_LOGS", "0")
os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")


@pytest.fixture(autouse=True)
def _environment_restored():
    """Each test leaves the process environment as it found it. Library code run in-process
    (a benchmark that sets TUNE_DISABLE_AUTO_CALLBACK_LOGGERS) would otherwise change how every
    later Tune run in this session behaves (no result.json, so no export)."""
    saved = dict(os.environ)
    yield
    if os.environ != saved:
        os.environ.clear()
        os.environ.update(saved)


@pytest.fixture(scope="session")
def ray_local():
    """A real local Ray with 2 CPUs, shared by every test that needs one."""
    import ray

    if not ray.is_initialized():
        ray.init(address="local", num_cpus=2, num_gpus=0, include_dashboard=False,
                 log_to_driver=False, configure_logging=False)
    yield ray
    ray.shutdown()


# ----- MLflow tracking server (tests/test_tracking.py) ------------------------------------------

import signal  # noqa: E402
import socket  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
import urllib.request  # noqa: E402


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class MlflowServerProcess:
    """``mlflow server`` on 127.0.0.1 with a sqlite store under ``workdir``, in its own process group.

    The job runner is off and one uvicorn worker serves (FACTS.md: ~0.75 GB less than the
    defaults). ``stop()`` ends the whole process group: killing only the parent leaves workers
    serving.
    """

    def __init__(self, workdir: str, port: int | None = None):
        self.workdir = workdir
        self.port = port or _free_port()
        self.uri = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen | None = None
        self.log_path = os.path.join(workdir, "server.log")

    def start(self, timeout_s: float = 120.0) -> str:
        self.spawn()
        return self.wait_healthy(timeout_s)

    def spawn(self) -> None:
        """Start the process without waiting (a fresh sqlite store takes ~5-20 s to migrate)."""
        os.makedirs(os.path.join(self.workdir, "artifacts"), exist_ok=True)
        env = dict(os.environ, MLFLOW_SERVER_ENABLE_JOB_EXECUTION="false")
        cmd = [sys.executable, "-m", "mlflow", "server", "--host", "127.0.0.1",
               "--port", str(self.port),
               "--backend-store-uri", f"sqlite:///{self.workdir}/mlflow.db",
               "--artifacts-destination", f"{self.workdir}/artifacts", "--workers", "1"]
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env,
                                         start_new_session=True, cwd=self.workdir)

    def wait_healthy(self, timeout_s: float = 120.0) -> str:
        """Poll ``/health``; returns the URI, or stops the server and raises with its log tail."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                break
            try:
                with urllib.request.urlopen(f"{self.uri}/health", timeout=2) as r:
                    if r.status == 200:
                        return self.uri
            except OSError:
                pass
            time.sleep(0.25)
        self.stop()
        with open(self.log_path, errors="replace") as f:
            tail = f.read()[-3000:]
        raise RuntimeError(f"mlflow server on port {self.port} not healthy within {timeout_s} s "
                           f"(exit code {self.proc.returncode}); log tail:\n{tail}")

    def stop(self) -> None:
        if self.proc is None:
            return
        try:
            pgid = os.getpgid(self.proc.pid)
        except ProcessLookupError:
            pgid = None
        if pgid is not None and pgid == self.proc.pid:  # our own group, never the test runner's
            for sig, wait_s in ((signal.SIGTERM, 10), (signal.SIGKILL, 5)):
                try:
                    os.killpg(pgid, sig)
                except ProcessLookupError:
                    break
                try:
                    self.proc.wait(wait_s)
                    # workers may outlive the parent for a moment: wait for the group to empty
                    end = time.monotonic() + wait_s
                    while time.monotonic() < end:
                        os.killpg(pgid, 0)
                        time.sleep(0.1)
                except (subprocess.TimeoutExpired, ProcessLookupError):
                    pass
                try:
                    os.killpg(pgid, 0)
                except ProcessLookupError:
                    break
        self.proc.wait(5)
        self.proc = None


@pytest.fixture(scope="session")
def mlflow_server_process(tmp_path_factory):
    """The server process, spawned but maybe not healthy yet. Request it before slow fixtures
    (e.g. ``ray_local``) to let the server boot meanwhile; use ``mlflow_server`` for the URI."""
    server = MlflowServerProcess(str(tmp_path_factory.mktemp("mlflow_server")))
    server.spawn()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def mlflow_server(mlflow_server_process):
    """URI of a real MLflow server (sqlite store, local artifacts) shared by the session."""
    return mlflow_server_process.wait_healthy()
