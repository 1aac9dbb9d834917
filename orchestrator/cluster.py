"""Where trials run: connecting to Ray, and checking resource requests against the cluster.

A request is checked against the alive nodes and, on an autoscaling cluster, against the node
types the autoscaler may still add (:func:`node_types`): a GPU trial is accepted on a cluster
whose GPU workers are scaled to zero, and the default concurrency counts the cluster at its
largest, so the pending trials are what makes the autoscaler add nodes.
"""

from __future__ import annotations

import json
import logging
import math
import os
from typing import Any

from orchestrator import _ray_private
from orchestrator.errors import SpecError

logger = logging.getLogger(__name__)

#: JSON ``{"type": {"resources": {"CPU": 8, "GPU": 1}, "max_workers": 4}, ...}`` or the path of a
#: cluster-launcher YAML: the worker node types an autoscaler can add (KubeRay manifests set it).
NODE_TYPES_ENV = "TUNEORCH_NODE_TYPES"
#: Where the cluster launcher leaves the autoscaling config on its head node.
BOOTSTRAP_CONFIG = "~/ray_bootstrap_config.yaml"

_joined_address: str | None = None  # the address connect() joined ("local": a private Ray)


def connect(address: str | None, ray_logs: bool = True) -> None:
    """Start or join Ray.

    ``ray_logs=False`` (``verbose`` below 2) keeps Ray's own INFO lines in the workers ("Checkpoint
    successfully created", "Restored on ... from checkpoint") out of the console; the trainable's
    prints and warnings still come through.

    ``None`` joins the cluster named by ``RAY_ADDRESS`` when it is set (as under ``ray job
    submit`` and KubeRay's RayJob), else starts a private local Ray (never attaching to
    somebody else's ``ray start`` cluster on this host). ``"auto"`` joins the cluster of
    this node; ``"ray://host:10001"`` connects through Ray Client.

    A private local Ray listens on 127.0.0.1 only, every port of it (GCS, raylet, object
    manager, workers, dashboard): nobody else on the network can submit work to it. To serve
    other machines, start a cluster (``ray start --head``) and pass its address.

    Secrets (``ExperimentSpec.secrets``) are environment variables, never config values: a
    local Ray's workers inherit this process's environment; on a joined cluster they come from
    the nodes' own environment (KubeRay: a Secret, see ``deploy/``). They are deliberately not
    sent as the job's ``runtime_env``, which Ray shows to everyone in its dashboard's job page.
    :func:`check_secrets_reach_workers` proves the workers see them.
    """
    import ray

    from schedulers._ray_private import loopback_node

    global _joined_address

    if ray.is_initialized():
        return
    if address is None:
        address = os.environ.get("RAY_ADDRESS") or "local"
    _joined_address = address
    quiet = {} if ray_logs or address.startswith("ray://") else {
        "logging_config": ray.LoggingConfig(log_level="WARNING")}
    if address == "local":
        # Local workers inherit the driver's environment: let them import trainables from the
        # working directory the way the driver does (``tuneorch run`` from a project folder).
        paths = [os.getcwd()] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
        os.environ["PYTHONPATH"] = os.pathsep.join(dict.fromkeys(paths))
        with loopback_node():
            ray.init(address=address, configure_logging=False, log_to_driver=True, dashboard_host="127.0.0.1",
                     **quiet)
        return
    ray.init(address=address, configure_logging=False, log_to_driver=True, **quiet)


def check_secrets_reach_workers(secrets: list[str] | None) -> None:
    """Raise :class:`SpecError` when a worker cannot see one of the ``secrets`` variables.

    It happens when Ray was started before the variables were set (a caller's own
    ``ray.init``), or on a joined cluster whose nodes lack them. One tiny task; only names
    travel, never a value.
    """
    if not secrets:
        return
    import ray

    @ray.remote(num_cpus=0)
    def visible(names: list[str]) -> list[str]:
        return [name for name in names if name in os.environ]

    seen = set(ray.get(visible.remote(list(secrets)), timeout=120))
    missing = [name for name in secrets if name not in seen]
    if missing:
        raise SpecError(
            f"secrets: the Ray workers do not see the environment variables {missing}, which the "
            f"driver has; set them before Ray starts (a local Ray that tuneorch starts inherits "
            f"the driver's environment) or, on a cluster, in every node's environment (KubeRay: "
            f"env from a Secret, see deploy/)"
        )


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


def node_types() -> list[dict]:
    """Worker node types an autoscaler may add: ``[{"name", "resources", "max_workers"}]``.

    From, in order: ``$TUNEORCH_NODE_TYPES`` (JSON, or the path of a cluster YAML); the cluster
    config an autoscaler reported to Ray's GCS; ``~/ray_bootstrap_config.yaml`` when this
    process joined an existing cluster (the cluster launcher's head, where ``ray submit``
    runs the driver). ``[]`` when none is known: only the alive nodes count.
    """
    raw = os.environ.get(NODE_TYPES_ENV, "").strip()
    if raw:
        return _node_types_from_env(raw)
    types = _node_types_from_gcs()
    if types:
        return types
    path = os.path.expanduser(BOOTSTRAP_CONFIG)
    if _joined_address not in (None, "local") and os.path.isfile(path):
        try:
            return node_types_from_cluster_config(_load_yaml(path))
        except Exception as exc:  # noqa: BLE001 - an unreadable file only costs the forecast
            logger.warning("ignoring %s: %s", path, exc)
    return []


def node_types_from_cluster_config(config: dict) -> list[dict]:
    """The worker node types of a cluster-launcher config (the head's own type left out)."""
    head = config.get("head_node_type")
    cap = config.get("max_workers")
    out = []
    for name, node_type in (config.get("available_node_types") or {}).items():
        if name == head:
            continue
        max_workers = int(node_type.get("max_workers", cap if cap is not None else 0))
        entry = {"name": name, "resources": dict(node_type.get("resources") or {}),
                 "max_workers": max_workers if cap is None else min(max_workers, int(cap))}
        if cap is not None:
            entry["cluster_max_workers"] = int(cap)  # all worker types together
        out.append(entry)
    return out


def _node_types_from_env(raw: str) -> list[dict]:
    if not raw.lstrip().startswith("{"):
        return node_types_from_cluster_config(_load_yaml(os.path.expanduser(raw)))
    try:
        data = json.loads(raw)
    except ValueError as exc:
        raise SpecError(f"${NODE_TYPES_ENV}: not valid JSON ({exc}); expected "
                        f'{{"gpu-workers": {{"resources": {{"CPU": 8, "GPU": 1}}, "max_workers": 4}}}}') from None
    if not isinstance(data, dict) or not all(isinstance(v, dict) for v in data.values()):
        raise SpecError(f"${NODE_TYPES_ENV}: expected a mapping of node type -> {{resources, max_workers}}, got {raw!r}")
    return [{"name": name, "resources": dict(v.get("resources") or {}), "max_workers": int(v.get("max_workers", 0))}
            for name, v in data.items()]


def _node_types_from_gcs() -> list[dict]:
    return [{"name": group["name"] or "?", "resources": group["resources"],
             "max_workers": 10**6 if group["max_count"] < 0 else group["max_count"]}  # -1: unbounded
            for group in _ray_private.autoscaler_node_groups() if group["max_count"] != 0]


def _load_yaml(path: str) -> dict:
    import yaml

    with open(path) as f:
        return yaml.safe_load(f) or {}


def _fits(node: dict, demand: dict) -> bool:
    return all(node.get(k, 0) >= v for k, v in demand.items())


def _per_node(node: dict, demand: dict) -> int:
    return min(int(math.floor(node.get(k, 0) / v + 1e-9)) for k, v in demand.items())


def bundles(resources: dict) -> list[dict]:
    """Resource bundles of one trial: one, or the trial's own CPU plus one per worker."""
    demand = _demand(resources)
    if not resources.get("workers"):
        return [demand]
    return [{"CPU": 1.0}] + [dict(demand) for _ in range(resources["workers"])]


def _check_bundles(resources: dict) -> None:
    """Multi-worker trials: every bundle (STRICT_PACK: their sum) must fit some alive node;
    STRICT_SPREAD needs as many nodes as bundles."""
    parts, strategy = bundles(resources), resources["strategy"]
    alive = nodes()
    if strategy == "STRICT_PACK":
        total: dict = {}
        for bundle in parts:
            for k, v in bundle.items():
                total[k] = total.get(k, 0) + v
        parts = [total]
    missing = [b for b in parts if not any(_fits(n, b) for n in alive)]
    enough_nodes = strategy != "STRICT_SPREAD" or sum(_fits(n, parts[-1]) for n in alive) >= len(parts)
    if not missing and enough_nodes:
        return
    shown = "; ".join(f"node {n['node_id']}: CPU={_fmt(n.get('CPU', 0), 'CPU')}, GPU={_fmt(n.get('GPU', 0), 'GPU')}"
                      for n in alive)
    need = missing[0] if missing else f"{len(parts)} distinct nodes each holding {parts[-1]}"
    raise SpecError(
        f"resources: a trial with {resources['workers']} workers placed {strategy} needs {need}, "
        f"which the cluster cannot give (it has {shown}); lower the per-worker request, use fewer "
        f"workers or a looser strategy (PACK/SPREAD), or add nodes"
    )


def check_resources(resources: dict) -> None:
    """Refuse a per-trial request that no alive node, nor any node type an autoscaler can add,
    can ever hold, naming what there is."""
    if resources.get("workers"):
        return _check_bundles(resources)
    demand = _demand(resources)
    available = nodes()
    if any(_fits(node, demand) for node in available):
        return
    types = [t for t in node_types() if t["max_workers"] > 0]
    fitting = [t["name"] for t in types if _fits(t["resources"], demand)]
    if fitting:
        logger.info("no alive node holds a trial asking for %s yet; the autoscaler can add %s",
                    demand, ", ".join(fitting))
        return
    keys = sorted(set(demand) | {"CPU", "GPU"})
    shown = "; ".join(
        f"node {n['node_id']}: " + ", ".join(f"{k}={_fmt(n.get(k, 0), k)}" for k in keys)
        for n in available
    )
    if types:
        shown += "; and node types the autoscaler can add: " + "; ".join(
            f"{t['name']} (up to {t['max_workers']}): " + ", ".join(f"{k}={_fmt(t['resources'].get(k, 0), k)}" for k in keys)
            for t in types
        )
    raise SpecError(
        f"resources: no node can hold one trial asking for "
        f"{', '.join(f'{k}={_fmt(v, k)}' for k, v in demand.items())}; the cluster has {shown}; "
        f"lower the per-trial request or add a node that has it"
    )


def trials_that_fit(resources: dict) -> int:
    """How many trials of this size the cluster holds at once (at least 1).

    The alive nodes; on an autoscaling cluster whose node types are known, the head plus every
    worker type at its ``max_workers`` (largest holders first, within the cluster-wide cap),
    if that is more.
    """
    if resources.get("workers"):  # several bundles: count by the cluster's totals
        need: dict = {}
        for bundle in bundles(resources):
            for k, v in bundle.items():
                need[k] = need.get(k, 0) + v
        have: dict = {}
        for node in nodes():
            for k in need:
                have[k] = have.get(k, 0) + node.get(k, 0)
        return max(1, _per_node(have, need))
    demand = _demand(resources)
    alive = nodes()
    total = sum(_per_node(node, demand) for node in alive)
    types = node_types()
    if types:
        head = [n for n in alive if n.get("node:__internal_head__")]
        forecast = sum(_per_node(n, demand) for n in head)
        budget = next((t["cluster_max_workers"] for t in types if "cluster_max_workers" in t), None)
        for t in sorted(types, key=lambda t: -_per_node(t["resources"], demand)):
            count = t["max_workers"] if budget is None else min(t["max_workers"], budget)
            forecast += count * _per_node(t["resources"], demand)
            if budget is not None:
                budget -= count
        total = max(total, forecast)
    return max(total, 1)


def placement(resources: dict) -> Any:
    """The per-trial request in the form ``tune.with_resources`` takes: a dict, or for
    multi-worker trials a ``PlacementGroupFactory`` (the trial's CPU bundle first)."""
    if resources.get("workers"):
        from ray.tune import PlacementGroupFactory

        return PlacementGroupFactory(bundles(resources), strategy=resources["strategy"])
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
