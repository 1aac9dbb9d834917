"""An MLflow server that is down when a run starts: refused within seconds, before Ray starts."""

from __future__ import annotations

import http.server
import socket
import threading
import time

import pytest

import orchestrator
from orchestrator import cluster
from orchestrator.tracking import TrackingUnavailableError
from orchestrator.tracking.preflight import check_reachable
from search_algs import Float


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]  # closed again when the block ends: nothing listens there


@pytest.fixture
def no_ray(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("Ray would start")

    monkeypatch.setattr(cluster, "connect", refuse)


def test_a_down_server_is_refused_before_ray_starts(no_ray, tmp_path):
    uri = f"http://127.0.0.1:{_closed_port()}"
    started = time.monotonic()
    with pytest.raises(TrackingUnavailableError) as info:
        orchestrator.tune("test_api:quadratic", {"x": Float(0.0, 1.0)}, metric="loss", mode="min",
                          num_samples=1, tracking_uri=uri, storage_path=str(tmp_path), verbose=0)
    took = time.monotonic() - started
    message = str(info.value)
    assert uri in message and "does not answer" in message and "mlflow server" in message
    assert "nothing was started" in message
    assert took < 30, took  # seconds, not the tracker's minute of retries


def test_the_cli_prints_one_line_and_exits_2(no_ray, tmp_path, capsys):
    from orchestrator.cli import main

    spec = tmp_path / "spec.yaml"
    spec.write_text(
        "trainable: test_api:quadratic\nmetric: loss\nmode: min\nnum_samples: 1\n"
        f"storage_path: {tmp_path}\ntracking_uri: http://127.0.0.1:{_closed_port()}\n"
        "space:\n  x: {type: float, low: 0.0, high: 1.0}\n"
    )
    code = main(["run", str(spec), "--quiet"])
    err = capsys.readouterr().err
    assert code == 2
    assert err.startswith("tuneorch: error: tracking_uri: the MLflow server at")
    assert "Traceback" not in err


class _Health(http.server.BaseHTTPRequestHandler):
    status = 200

    def do_GET(self):  # noqa: N802 - the stdlib's name
        self.send_response(self.status)
        self.end_headers()
        self.wfile.write(b"OK")

    def log_message(self, *args):
        pass


@pytest.mark.parametrize("status, reachable", [(200, True), (403, True), (503, False)])
def test_what_counts_as_an_answer(status, reachable):
    handler = type("Handler", (_Health,), {"status": status})
    server = http.server.HTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        uri = f"http://127.0.0.1:{server.server_address[1]}"
        if reachable:
            check_reachable(uri, timeout_s=2)
        else:
            with pytest.raises(TrackingUnavailableError, match="HTTP 503"):
                check_reachable(uri, timeout_s=1)
    finally:
        server.shutdown()
        server.server_close()


@pytest.mark.parametrize("uri", [None, "", "sqlite:///tmp/x.db"])
def test_local_stores_and_tracking_off_need_no_server(uri):
    check_reachable(uri, timeout_s=0.1)
