"""MLflow on a real PostgreSQL, as deploy/kuberay runs it: a tuning run's records arrive.

The test starts PostgreSQL itself: ``initdb`` into a temporary folder, the server on a free port
of 127.0.0.1 with password authentication (scram-sha-256), and ``mlflow server`` on it with the
URI the Kubernetes manifests use (``postgresql+psycopg2://``). A small tuning run (three trials
of a tiny trainable, on the session's Ray) tracks to that server; the parent run, one child run
per trial and their metric histories must be in the database, read back through MlflowClient.
Both servers are stopped by their process ids.

PostgreSQL refuses to run as root: as root the servers run as the ``postgres`` user (which
Debian's package creates), with ``subprocess``'s own ``user=``. The binaries come from PATH or
Debian's ``/usr/lib/postgresql/<version>/bin``; ``make install`` installs them with apt-get where
it can. Where they are missing the test is skipped with the reason (the Makefile writes it to
``<venv>/postgres-missing``).

Measured here (2 cores): initdb ~1 s, PostgreSQL up ~0.2 s, a fresh MLflow database ~15-20 s
(the schema migrations), the run ~15 s.
"""

from __future__ import annotations

import glob
import os
import pathlib
import pwd
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

import pytest

from conftest import MlflowServerProcess

ROOT = pathlib.Path(__file__).resolve().parents[1]


def postgres_bin() -> pathlib.Path | None:
    """The folder of PostgreSQL's server programs (initdb, postgres), newest version first."""
    found = shutil.which("postgres")
    if found and shutil.which("initdb", path=os.path.dirname(os.path.realpath(found))):
        return pathlib.Path(os.path.realpath(found)).parent
    versions = sorted(glob.glob("/usr/lib/postgresql/*/bin/postgres"),
                      key=lambda p: [int(x) if x.isdigit() else 0 for x in p.split("/")[4].split(".")])
    return pathlib.Path(versions[-1]).parent if versions else None


def why_missing() -> str:
    note = pathlib.Path(sys.prefix, "postgres-missing")
    reason = note.read_text().strip() if note.is_file() else "make install was not run here"
    return (f"PostgreSQL's server programs are not installed (looked on PATH and in "
            f"/usr/lib/postgresql/*/bin): {reason}")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Postgres:
    """A PostgreSQL cluster of its own in a temporary folder, on 127.0.0.1:<free port>."""

    def __init__(self, bin_dir: pathlib.Path):
        self.bin = bin_dir
        self.password = secrets.token_hex(16)
        self.user = "mlflow"
        self.port = _free_port()
        self.proc: subprocess.Popen | None = None
        # As root, the programs run as the `postgres` user: the folder must be theirs, and not
        # under pytest's tmp_path (mode 700, root's).
        self.run_as: dict = {}
        if os.geteuid() == 0:
            try:
                owner = pwd.getpwnam("postgres")
            except KeyError:
                pytest.skip("running as root, and PostgreSQL refuses root: there is no 'postgres' user "
                            "to run it as (Debian's postgresql package creates one)")
            self.run_as = {"user": owner.pw_uid, "group": owner.pw_gid, "extra_groups": []}
        self.folder = pathlib.Path(tempfile.mkdtemp(prefix="tuneorch-pg-"))
        if self.run_as:
            os.chown(self.folder, self.run_as["user"], self.run_as["group"])
        self.data = self.folder / "data"
        self.log_path = self.folder / "postgres.log"

    @property
    def uri(self) -> str:
        return f"postgresql+psycopg2://{self.user}:{self.password}@127.0.0.1:{self.port}/mlflow"

    def _as_owner(self, path: pathlib.Path) -> None:
        if self.run_as:
            os.chown(path, self.run_as["user"], self.run_as["group"])

    def start(self, timeout_s: float = 60.0) -> None:
        import psycopg2

        pwfile = self.folder / "pwfile"
        pwfile.write_text(self.password + "\n")
        self._as_owner(pwfile)
        done = subprocess.run(
            [str(self.bin / "initdb"), "-D", str(self.data), "-U", self.user, "--pwfile", str(pwfile),
             "--auth=scram-sha-256", "-E", "UTF8", "--no-sync"],
            cwd=self.folder, capture_output=True, text=True, timeout=120, **self.run_as)
        pwfile.unlink()
        assert done.returncode == 0, f"initdb failed:\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}"
        log = open(self.log_path, "ab")
        self._as_owner(self.log_path)
        # listen on 127.0.0.1 only; the Unix socket in our folder (not /var/run/postgresql);
        # durability off: a test database
        self.proc = subprocess.Popen(
            [str(self.bin / "postgres"), "-D", str(self.data), "-p", str(self.port), "-k", str(self.folder),
             "-c", "listen_addresses=127.0.0.1", "-c", "fsync=off", "-c", "synchronous_commit=off"],
            cwd=self.folder, stdout=log, stderr=subprocess.STDOUT, start_new_session=True, **self.run_as)
        log.close()
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                connection = psycopg2.connect(host="127.0.0.1", port=self.port, user=self.user,
                                              password=self.password, dbname="postgres", connect_timeout=2)
                break
            except psycopg2.OperationalError:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    self.stop()
                    pytest.fail(f"PostgreSQL did not start:\n{self.log_tail()}")
                time.sleep(0.2)
        connection.autocommit = True
        with connection.cursor() as cursor:
            cursor.execute("CREATE DATABASE mlflow")
        connection.close()

    def log_tail(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-3000:]
        except OSError:
            return "(no log)"

    def stop(self) -> None:
        """Fast shutdown (SIGINT to the postmaster, by its pid), then the folder goes."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)  # its own session: its backends only
                self.proc.wait(10)
        self.proc = None
        shutil.rmtree(self.folder, ignore_errors=True)


class PostgresMlflowServer(MlflowServerProcess):
    """conftest's ``mlflow server`` (own process group, /health polling), on PostgreSQL."""

    def __init__(self, workdir: str, backend_uri: str):
        super().__init__(workdir)
        self.backend_uri = backend_uri

    def spawn(self) -> None:
        os.makedirs(os.path.join(self.workdir, "artifacts"), exist_ok=True)
        env = dict(os.environ, MLFLOW_SERVER_ENABLE_JOB_EXECUTION="false")
        cmd = [sys.executable, "-m", "mlflow", "server", "--host", "127.0.0.1", "--port", str(self.port),
               "--backend-store-uri", self.backend_uri, "--serve-artifacts",
               "--artifacts-destination", f"{self.workdir}/artifacts", "--workers", "1"]
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env,
                                         start_new_session=True, cwd=self.workdir)


@pytest.fixture
def postgres():
    bin_dir = postgres_bin()
    if bin_dir is None:
        pytest.skip(why_missing())
    pytest.importorskip("psycopg2", reason="psycopg2-binary (the test extra: pip install -e '.[test]')")
    server = Postgres(bin_dir)
    try:
        server.start()
        yield server
    finally:
        server.stop()


def quadratic(config):
    """Imported by the trials as test_postgres_tracking.quadratic: three reports per trial."""
    from ray import tune as ray_tune

    for step in range(1, 4):
        ray_tune.report({"loss": (config["x"] - 0.3) ** 2 + 1.0 / step, "step": step})


@pytest.mark.slow
def test_a_tuning_run_tracks_to_mlflow_on_postgresql(postgres, ray_local, tmp_path):
    import orchestrator
    from mlflow import MlflowClient
    from search_algs import Float

    server = PostgresMlflowServer(str(tmp_path / "mlflow"), postgres.uri)
    os.makedirs(server.workdir)
    try:
        uri = server.start(timeout_s=240)  # a fresh database: MLflow creates its schema first
        result = orchestrator.tune(
            quadratic, {"x": Float(0.0, 1.0)}, metric="loss", mode="min", name="pg-run",
            num_samples=3, max_concurrent=2, tracking_uri=uri, storage_path=str(tmp_path / "runs"),
            seed=0, verbose=0)
        assert result.mlflow_run_id and result.best_config is not None

        client = MlflowClient(uri)
        experiment = client.get_experiment_by_name("pg-run")
        runs = client.search_runs([experiment.experiment_id], max_results=100)
        parent = next(r for r in runs if r.info.run_id == result.mlflow_run_id)
        children = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id]
        assert parent.info.status == "FINISHED" and "mlflow.parentRunId" not in parent.data.tags
        assert len(children) == 3 and len(runs) == 4, [r.data.tags for r in runs]
        for child in children:
            assert child.info.status == "FINISHED"
            history = client.get_metric_history(child.info.run_id, "loss")
            assert sorted(m.step for m in history) == [1, 2, 3], history
            x = float(child.data.params["x"])
            assert history[-1].value == pytest.approx((x - 0.3) ** 2 + 1 / 3)
        best = min(children, key=lambda r: r.data.metrics["loss"])
        assert result.best_metric == pytest.approx(best.data.metrics["loss"])
        # the records are in PostgreSQL itself, not in a file beside the server
        import psycopg2

        with psycopg2.connect(host="127.0.0.1", port=postgres.port, user=postgres.user,
                              password=postgres.password, dbname="mlflow") as connection:
            with connection.cursor() as cursor:
                cursor.execute("SELECT count(*) FROM runs WHERE experiment_id = %s",
                               (int(experiment.experiment_id),))
                assert cursor.fetchone()[0] == 4
        assert not list(pathlib.Path(server.workdir).glob("*.db"))
    finally:
        server.stop()
