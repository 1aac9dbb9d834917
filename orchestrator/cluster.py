"""Where trials run: connecting to Ray, and checking resource requests against the cluster."""

from __future__ import annotations

import logging
import math
import os
from typing import Any

from orchestrator.spec import SpecError

logger = logging.getLogger(__name__)


def connect(address: str | None) -> None:
    """Start or join Ray.

    ``None`` joins the cluster named by ``RAY_ADDRESS`` when it is set (as under ``ray job
    submit`` and KubeRay's RayJob), else starts a private local Ray (never attaching to
    somebody else's ``ray start`` cluster on this host). ``"auto"`` joins the cluster of
    this node; ``"ray://host:10001"`` connects through Ray Client.
    """
    import ray

    if ray.is_initialized():
        return
    if address is None:
        address = os.environ.get("RAY_ADDRESS") or "local"
    if address == "local":
        # Local workers inherit the driver's environment: let them import trainables from the
        # working directory the way the driver does (``tuneorch run`` from a project folder).
        paths = [os.getcwd()] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
        os.environ["PYTHONPATH"] = os.pathsep.join(dict.fromkeys(paths))
    ray.init(address=address, configure_logging=False, log_to_driver=True)


def nodes() -> list[dict]:
    """Resources of the alive nodes: ``[{"node_id", "CPU", "GPU", "memory", ...}]``."""
    import ray

    out = []
    for node in ray.nodes():
        if node.get("Alive"):
            out.append({"node_id": node["NodeID"][:12], **node.get("Resources", {})})
    return out


def _demand(resources: dict) -> dict:
    demand = {"CPU": resources["cpu"], "GPU": resources["gpu"]}
    if resources.get("memory"):
        demand["memory"] = resources["memory"]
    demand.update(resources.get("custom") or {})
    return {k: v for k, v in demand.items() if v}


def check_resources(resources: dict) -> None:
    """Refuse a per-trial request that no alive node can ever hold, naming what there is."""
    demand = _demand(resources)
    available = nodes()
    if any(all(node.get(k, 0) >= v for k, v in demand.items()) for node in available):
        return
    shown = "; ".join(
        f"node {n['node_id']}: " + ", ".join(f"{k}={_fmt(n.get(k, 0), k)}" for k in sorted(set(demand) | {"CPU", "GPU"}))
        for n in available
    )
    raise SpecError(
        f"resources: no node can hold one trial asking for "
        f"{', '.join(f'{k}={_fmt(v, k)}' for k, v in demand.items())}; the cluster has {shown}; "
        f"lower the per-trial request or add a node that has it"
    )


def trials_that_fit(resources: dict) -> int:
    """How many trials of this size the alive nodes hold at once (at least 1)."""
    demand = _demand(resources)
    total = 0
    for node in nodes():
        total += min(int(math.floor(node.get(k, 0) / v + 1e-9)) for k, v in demand.items())
    return max(total, 1)


def placement(resources: dict) -> dict:
    """The per-trial request in the form ``tune.with_resources`` takes."""
    out = {"cpu": resources["cpu"], "gpu": resources["gpu"]}
    if resources.get("memory"):
        out["memory"] = resources["memory"]
    out.update(resources.get("custom") or {})
    return out


def storage_uri(path: str) -> str:
    """Absolute local path, or the URI unchanged (``s3://``, ``gs://``, ``file://`` ...)."""
    if "://" in path:
        return path
    return os.path.abspath(os.path.expanduser(path))


def versions() -> str:
    from importlib.metadata import PackageNotFoundError, version

    parts = []
    for package in ("tuneorch", "ray", "torch", "mlflow", "hyperopt", "numpy", "pyarrow"):
        try:
            parts.append(f"{package}={version(package)}")
        except PackageNotFoundError:
            pass
    return " ".join(parts)


def _fmt(value: Any, key: str) -> str:
    if key == "memory":
        return f"{value / 2**30:.1f}GiB"
    return f"{value:g}" if isinstance(value, float) else str(value)
