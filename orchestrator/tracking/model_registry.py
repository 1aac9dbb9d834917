"""The best trial's checkpoint and its model in MLflow's model registry.

Registering the best model (``register_model="name"``) uses one explicit protocol, nothing
guessed: the module that defines the trainable defines

    ``load_model(checkpoint_dir: str, config: dict) -> torch.nn.Module``

which rebuilds the model of one of its own checkpoints (``examples/digits_mlp.py`` has one).
The model of the best trial's latest checkpoint is logged with ``mlflow.pytorch.log_model``
on the parent run (as ``model``), registered as a new version of ``name`` and given the alias
``champion`` (``models:/name@champion`` loads it). By default MLflow's ``pickle`` format is
used, so a loader needs the model's classes importable (plain ``torch.nn`` layers always
are). If the module also defines ``model_input_example(config) -> tensor or ndarray`` (a
small batch, more than one row), the model is saved as ``pt2`` (``torch.export``, no pickle)
with a signature inferred from that example. ``ExperimentSpec`` refuses ``register_model``
before the run when the trainable's module has no ``load_model`` (:func:`find_model_loader`).
"""

from __future__ import annotations

import contextlib
import os
import sys
import time
from dataclasses import dataclass
from typing import Any, Callable

from orchestrator.export import filesystem

CHAMPION_ALIAS = "champion"


@dataclass(frozen=True)
class RegisteredModel:
    """A model version :func:`log_and_register_model` created: ``models:/<name>/<version>``."""

    name: str
    version: str
    model_uri: str  # the logged model (``models:/m-...``) the version points at


def find_model_loader(trainable: Any) -> Callable | None:
    """``load_model`` of the module defining ``trainable`` (``"module:attr"`` or an object)."""
    import importlib

    modules = []
    if isinstance(trainable, str):
        name = trainable.partition(":")[0]
        try:
            modules.append(importlib.import_module(name))
        except Exception:  # noqa: BLE001 - the spec reports bad trainables itself
            return None
        trainable = getattr(modules[0], trainable.partition(":")[2], None)
    target = getattr(trainable, "func", trainable)  # functools.partial
    module_name = getattr(target, "__module__", None)
    if module_name and module_name in sys.modules:
        modules.append(sys.modules[module_name])
    for module in modules:
        loader = getattr(module, "load_model", None)
        if callable(loader):
            return loader
    return None


def best_checkpoint(result: Any, experiment_path: str) -> Any:
    """The best trial's latest ``ray.tune.Checkpoint`` (``None`` when it has none)."""
    best_id = getattr(result, "best_trial_id", None)
    if best_id is None:
        return None
    for trial_result in getattr(result, "result_grid", None) or []:
        if (trial_result.metrics or {}).get("trial_id") == best_id:
            if trial_result.checkpoint is not None:
                return trial_result.checkpoint
            break
    return _checkpoint_from_storage(experiment_path, best_id)


def _checkpoint_from_storage(experiment_path: str, trial_id: str) -> Any:
    """Without a result grid: the newest ``checkpoint_*`` of the trial's directory."""
    import pyarrow.fs as pafs
    from ray.tune import Checkpoint

    fs, root = filesystem(experiment_path)
    for info in fs.get_file_info(pafs.FileSelector(root, allow_not_found=True)):
        # Tune names trial directories <trainable>_<trial_id>_<index>_<config>_<date>
        if info.type != pafs.FileType.Directory or f"_{trial_id}_" not in f"{info.base_name}_":
            continue
        children = fs.get_file_info(pafs.FileSelector(info.path, allow_not_found=True))
        checkpoints = sorted(c.path for c in children if c.type == pafs.FileType.Directory
                             and c.base_name.startswith("checkpoint_"))
        if checkpoints:
            return Checkpoint(checkpoints[-1], filesystem=fs)
    return None


def is_local(checkpoint: Any) -> bool:
    fs = getattr(checkpoint, "filesystem", None)
    return fs is None or getattr(fs, "type_name", "local") == "local"


def checkpoint_uri(checkpoint: Any) -> str:
    """The URI of a checkpoint on remote storage (``s3://bucket/...``)."""
    fs = checkpoint.filesystem
    scheme = {"s3": "s3", "gcs": "gs", "hdfs": "hdfs"}.get(getattr(fs, "type_name", ""), None)
    path = checkpoint.path
    return f"{scheme}://{path}" if scheme and "://" not in path else path


def log_and_register_model(tracking_uri: str, run_id: str, checkpoint: Any, config: dict,
                           loader: Callable, name: str, *, input_example_fn: Callable | None = None,
                           alias: str = CHAMPION_ALIAS, await_s: float = 120.0) -> RegisteredModel:
    """Load the model of ``checkpoint`` with ``loader``, log it on ``run_id``, register it as a
    new version of ``name`` with ``alias``. Raises on any failure."""
    import mlflow
    import mlflow.pytorch
    import torch
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    with checkpoint.as_directory() as directory:
        model = loader(directory, dict(config))
    if not isinstance(model, torch.nn.Module):
        raise TypeError(f"load_model returned {type(model).__name__}, not a torch.nn.Module")
    model = model.to("cpu").eval()
    kwargs: dict[str, Any] = {"serialization_format": "pickle"}
    if input_example_fn is not None:
        example = input_example_fn(dict(config))
        if isinstance(example, torch.Tensor):
            example = example.detach().cpu().numpy()
        kwargs = {"serialization_format": "pt2", "input_example": example}
    # The fluent API (log_model) and MLflow's database registry store (it looks the logged
    # model up through a default client) both use the process's tracking URI: point it here.
    with using_tracking_uri(tracking_uri):
        client = MlflowClient(tracking_uri, registry_uri=tracking_uri)
        # Created here, in the run's experiment: log_model alone would put it in the fluent
        # API's current experiment (Default, with its artifacts under ./mlruns for a database).
        run = client.get_run(run_id)
        where = checkpoint.path if is_local(checkpoint) else checkpoint_uri(checkpoint)
        logged = client.create_logged_model(
            run.info.experiment_id, name="model", source_run_id=run_id,
            params=dict(run.data.params), tags={"tuneorch.checkpoint": where[:5000]})
        info = mlflow.pytorch.log_model(
            model, name="model", run_id=run_id, model_id=logged.model_id,
            pip_requirements=_pip_requirements(),  # given: no inference subprocess
            **kwargs)
        try:
            client.create_registered_model(
                name, description="Registered by tuneorch: the best trial of a tuning run")
        except MlflowException as exc:
            if exc.error_code not in ("RESOURCE_ALREADY_EXISTS", "ALREADY_EXISTS"):
                raise
        version = client.create_model_version(name, source=info.model_uri, run_id=run_id,
                                              model_id=info.model_id, await_creation_for=0)
        deadline = time.monotonic() + await_s
        while version.status == "PENDING_REGISTRATION" and time.monotonic() < deadline:
            time.sleep(1.0)
            version = client.get_model_version(name, version.version)
        if version.status != "READY":
            raise RuntimeError(f"model version {name}/{version.version} is {version.status} "
                               f"({version.status_message})")
        client.set_registered_model_alias(name, alias, version.version)
    return RegisteredModel(name, str(version.version), info.model_uri)


def _pip_requirements() -> list[str]:
    """torch and cloudpickle pinned, without a local version label (``+cpu``: not on PyPI)."""
    from importlib.metadata import version

    out = []
    for package in ("torch", "cloudpickle"):
        try:
            out.append(f"{package}=={version(package).split('+')[0]}")
        except Exception:  # noqa: BLE001
            out.append(package)
    return out


@contextlib.contextmanager
def using_tracking_uri(uri: str):
    """Point MLflow's fluent API (``log_model`` takes no client) at ``uri`` for a while, then
    put back the process's tracking URI and ``MLFLOW_TRACKING_URI`` as they were."""
    import mlflow
    from mlflow.tracking._tracking_service import utils

    old, old_env = utils._tracking_uri, os.environ.get("MLFLOW_TRACKING_URI")
    mlflow.set_tracking_uri(uri)
    try:
        yield
    finally:
        mlflow.set_tracking_uri(old)
        if old_env is None:
            os.environ.pop("MLFLOW_TRACKING_URI", None)
        else:
            os.environ["MLFLOW_TRACKING_URI"] = old_env

