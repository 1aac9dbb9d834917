"""Is the tracking server there? Asked once, before Ray starts.

A run needs its MLflow parent run before the first trial (every record of the outbox names
it), so a server that is down when the run starts is refused here within seconds, with the
URI and the ways out, instead of after Ray has started and the tracker has retried for a
minute. A server that goes down *during* a run is a different matter: the outbox keeps the
records and the sender delivers them when it is back (``sender.py``).
"""

from __future__ import annotations

import time
import urllib.error
import urllib.request

from orchestrator.tracking.mlflow_callback import TrackingUnavailableError

#: How long the pre-flight keeps asking: a server restarting right now gets this long.
PREFLIGHT_TIMEOUT_S = 5.0


def check_reachable(tracking_uri: str | None, timeout_s: float = PREFLIGHT_TIMEOUT_S) -> None:
    """Raise :class:`TrackingUnavailableError` when an HTTP(S) tracking server does not answer.

    Database and file stores (``sqlite:///...``) are opened by the tracker itself; only a
    server can be down. ``None`` or ``""`` (a local store, or tracking off) pass.
    """
    if not tracking_uri or not tracking_uri.startswith(("http://", "https://")):
        return
    health = tracking_uri.rstrip("/") + "/health"
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            with urllib.request.urlopen(health, timeout=max(0.5, min(2.0, timeout_s))) as response:
                if response.status < 500:
                    return
                problem = f"HTTP {response.status}"
        except urllib.error.HTTPError as exc:
            if exc.code < 500:  # answered (auth, 404 behind a proxy): the server is there
                return
            problem = f"HTTP {exc.code}"
        except (urllib.error.URLError, OSError) as exc:
            problem = f"{type(getattr(exc, 'reason', exc)).__name__}: {getattr(exc, 'reason', exc)}"
        if time.monotonic() + 0.5 > deadline:
            raise TrackingUnavailableError(
                f"tracking_uri: the MLflow server at {tracking_uri!r} does not answer "
                f"(GET /health for {timeout_s:.0f} s: {problem}); nothing was started. Start the "
                f"server (mlflow server --host 127.0.0.1 --port PORT), fix tracking_uri, or leave "
                f"it out to record into a local sqlite store (tracking_uri: '' turns MLflow off)"
            )
        time.sleep(0.5)
