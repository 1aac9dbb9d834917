"""Artifacts of a finished tuning run, uploaded to its MLflow parent run.

:func:`log_run_artifacts` runs on the driver after ``MLflowTracking.finish`` and puts on the
parent run:

==================================  ===========================================================
``spec.json``                       the experiment (``ExperimentSpec.summary()``, the other
                                    settings, the search space as ``Space.describe()``) and
                                    the outcome (best trial, config, metric, trial statuses)
``tables/{trials,metrics,param_history}.parquet``
                                    the tables of :func:`orchestrator.export.export_parquet`
``plots/optimization_history.png``  each trial's last ``metric`` in creation order, and the
                                    best so far
``plots/parallel_coordinates.png``  one line per trial through its config values (numeric and
                                    categorical axes; constant ones left out), coloured by the
                                    last ``metric``
``plots/learning_curves.png``       ``metric`` against ``training_iteration`` for every trial
``plots/pbt_lineage.png``,          only when there is a lineage (a PBT scheduler exposing
``pbt_lineage.json``                ``lineage()``, or records passed in): who cloned whom, when
``best_checkpoint/``                the best trial's latest checkpoint directory; with a remote
                                    experiment path (``s3://`` ...) nothing is copied, the tag
                                    ``tuneorch.best_checkpoint`` holds its URI (it is set in
                                    both cases)
a logged model + registry version   only with ``register_model`` (see below)
==================================  ===========================================================

and ends with the tag ``tuneorch.artifacts``: ``complete`` or ``incomplete: <what is missing>``.

Best effort, but loud: nothing here raises. Every part that could not be made or uploaded is
named in a warning (``orchestrator.tracking.artifacts`` logger), in the returned
:class:`ArtifactReport` and, if the server still answers, in that tag. When an upload fails
and the tracking server no longer answers, the remaining parts are skipped at once (and
named) instead of each waiting through the client's retries. The MLflow client's retries are
limited as in :mod:`orchestrator.tracking.mlflow_callback` (``MLFLOW_ENV_DEFAULTS``).

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
before the run when the trainable's module has no ``load_model``.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import sys
import tempfile
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Mapping, Sequence

from orchestrator.redaction import is_secret_name, redact_config, redact_space_rows

logger = logging.getLogger(__name__)

CHAMPION_ALIAS = "champion"
ARTIFACTS_TAG = "tuneorch.artifacts"
BEST_CHECKPOINT_TAG = "tuneorch.best_checkpoint"
REGISTERED_TAG = "tuneorch.registered_model"
TABLES = ("trials", "metrics", "param_history")
PLOTS = ("optimization_history", "parallel_coordinates", "learning_curves")


@dataclass
class ArtifactReport:
    """What :func:`log_run_artifacts` did. ``failed`` maps each part not uploaded to the reason."""

    run_id: str | None
    uploaded: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)  # nothing to upload, not an error
    best_checkpoint: str | None = None
    model_uri: str | None = None
    model_version: str | None = None
    seconds: float = 0.0

    @property
    def complete(self) -> bool:
        return not self.failed


class _Nothing(Exception):
    """A part that has nothing to show (e.g. no trial reported the metric)."""


# ----- entry points ------------------------------------------------------------------------


def log_run_artifacts(tracking_uri: str, parent_run_id: str, experiment_path: str, result: Any, *,
                      spec: Any = None, lineage: Iterable | None = None,
                      register_model: str | None = None, client: Any = None) -> ArtifactReport:
    """Upload the artifacts of a finished run to its parent run; never raises.

    Args:
        tracking_uri, parent_run_id: where (``TuningResult.tracking_uri`` / ``mlflow_run_id``).
        experiment_path: the experiment directory or URI (``TuningResult.experiment_path``).
        result: the :class:`orchestrator.api.TuningResult`.
        spec: the :class:`ExperimentSpec`; read back from the experiment directory when None.
        lineage: PBT exploit records, each ``(target, donor, step, old_config, new_config)``,
            a mapping with those keys (``time``/``target_config`` accepted too) or an object
            with such attributes or a ``to_json()``. ``None``: no lineage plot.
        register_model: registered model name; defaults to ``spec.register_model``.
        client: an ``MlflowClient`` to use (default: one for ``tracking_uri``).
    """
    report = ArtifactReport(parent_run_id)
    start = time.monotonic()
    try:
        _Run(tracking_uri, parent_run_id, experiment_path, result, spec, lineage, register_model,
             client, report).go()
    except Exception as exc:  # noqa: BLE001 - a bug here must not fail a finished tuning run
        report.failed.setdefault("artifacts", f"{type(exc).__name__}: {exc}")
        logger.warning("MLflow artifacts: stopped by an unexpected error (%s: %s)",
                       type(exc).__name__, exc, exc_info=True)
    report.seconds = time.monotonic() - start
    if report.failed:
        logger.warning(
            "MLflow artifacts of run %s on %s are incomplete; not uploaded: %s. The experiment "
            "directory %s still holds everything (tables: tuneorch export)",
            parent_run_id, tracking_uri,
            "; ".join(f"{k} ({v})" for k, v in report.failed.items()), experiment_path)
    else:
        logger.info("MLflow artifacts of run %s (%.1f s): %s", parent_run_id, report.seconds,
                    ", ".join(report.uploaded))
    return report


def lineage_of(source: Any) -> list | None:
    """The PBT lineage of a scheduler (or of the scheduler inside a ``ray.tune.Tuner``).

    A scheduler has a lineage when it exposes ``lineage()`` (directly, or on its ``policy`` /
    ``core`` attribute); anything else gives ``None``.
    """
    scheduler = source
    inner = getattr(source, "_local_tuner", None)  # a Tuner: Ray keeps the scheduler in there
    if inner is not None:
        scheduler = getattr(getattr(inner, "_tune_config", None), "scheduler", None)
    for candidate in (scheduler, getattr(scheduler, "policy", None), getattr(scheduler, "core", None)):
        fn = getattr(candidate, "lineage", None)
        if callable(fn):
            try:
                return list(fn())
            except Exception as exc:  # noqa: BLE001
                logger.warning("MLflow artifacts: the scheduler's lineage() failed (%s); no "
                               "lineage plot", exc)
                return None
    return None


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


# ----- the work ----------------------------------------------------------------------------


class _Run:
    def __init__(self, uri, run_id, experiment_path, result, spec, lineage, register_model, client,
                 report: ArtifactReport):
        self.uri, self.run_id, self.path, self.result = uri, run_id, experiment_path, result
        self.spec, self.lineage, self.client, self.report = spec, lineage, client, report
        self.register_model = register_model
        self.metric = getattr(result, "metric", None) or getattr(spec, "metric", None)
        self.mode = getattr(result, "mode", None) or getattr(spec, "mode", "min")
        self.frames: dict[str, Any] = {}

    def go(self) -> None:
        from orchestrator.tracking.mlflow_callback import MLFLOW_ENV_DEFAULTS

        for key, value in MLFLOW_ENV_DEFAULTS.items():
            os.environ.setdefault(key, value)
        if self.client is None:
            from mlflow import MlflowClient

            self.client = MlflowClient(self.uri)
        if self.spec is None:
            self.spec = _read_spec(self.path)
        if self.register_model is None:
            self.register_model = getattr(self.spec, "register_model", None)
        if self.lineage is not None:
            self.lineage = list(self.lineage)  # normalised in its own step: a bad record is named

        with tempfile.TemporaryDirectory(prefix="tuneorch-artifacts-") as stage:
            self.stage = stage
            steps: list[tuple[str, Callable[[], None]]] = [
                ("spec.json", self._spec_json),
                ("tables/", self._tables),
                ("plots/", self._plots),
            ]
            if self.lineage:
                steps.append(("pbt_lineage", self._lineage))
            steps.append(("best_checkpoint", self._checkpoint))
            if self.register_model:
                steps.append((f"model (register as {self.register_model!r})", self._model))
            try:
                self._probe()
            except Exception as exc:  # noqa: BLE001
                reason = f"tracking server unreachable: {_short(exc)}"
                for name, _ in steps:
                    self.report.failed[name] = reason
                return
            for i, (name, step) in enumerate(steps):
                try:
                    step()
                except _Nothing as why:
                    self.report.skipped[name] = str(why)
                    logger.info("MLflow artifacts: no %s (%s)", name, why)
                except Exception as exc:  # noqa: BLE001 - best effort, named below
                    self.report.failed[name] = _short(exc)
                    logger.warning("MLflow artifacts: %s not uploaded to run %s (%s)", name,
                                   self.run_id, _short(exc), exc_info=not _is_network(exc))
                    try:
                        self._probe()
                    except Exception as down:  # noqa: BLE001
                        for rest, _ in steps[i + 1:]:
                            self.report.failed[rest] = (f"skipped: tracking server unreachable "
                                                        f"({_short(down)})")
                        return
            self._final_tag()

    def _probe(self) -> None:
        self.client.get_run(self.run_id)

    def _upload(self, local: str, artifact_path: str | None = None) -> None:
        if os.path.isdir(local):
            self.client.log_artifacts(self.run_id, local, artifact_path)
        else:
            self.client.log_artifact(self.run_id, local, artifact_path)

    def _done(self, name: str) -> None:
        self.report.uploaded.append(name)

    # ----- the parts -------------------------------------------------------------------------

    def _spec_json(self) -> None:
        path = os.path.join(self.stage, "spec.json")
        with open(path, "w") as f:
            json.dump(spec_document(self.spec, self.result, self.path), f, indent=2,
                      default=_json_default)
        self._upload(path)
        self._done("spec.json")

    def _tables(self) -> None:
        from orchestrator.export import export_parquet

        out = os.path.join(self.stage, "tables")
        written = export_parquet(self.path, out)
        self._read_frames(written)
        self._upload(out, "tables")
        self._done("tables/")

    def _read_frames(self, written: Mapping[str, str]) -> None:
        import pyarrow.parquet as pq

        for name, path in written.items():
            table = pq.read_table(path)
            frame = table.to_pandas()
            for column in frame.columns:  # dictionary-encoded columns come back categorical
                if str(frame[column].dtype) == "category":
                    frame[column] = frame[column].astype(object)
            self.frames[name] = frame

    def _plots(self) -> None:
        if "trials" not in self.frames:
            raise RuntimeError("no tables to plot (see tables/)")
        if not self.metric:
            raise RuntimeError("no metric known")
        out = os.path.join(self.stage, "plots")
        os.makedirs(out, exist_ok=True)
        space = _space_rows(self.spec)
        order = creation_order(self.result, self.frames.get("metrics"))
        makers = {
            "optimization_history": lambda p: plot_optimization_history(
                self.frames["trials"], self.metric, self.mode, p, order),
            "parallel_coordinates": lambda p: plot_parallel_coordinates(
                self.frames["trials"], self.metric, self.mode, p, space),
            "learning_curves": lambda p: plot_learning_curves(
                self.frames["metrics"], self.metric, self.mode, p,
                best_trial=getattr(self.result, "best_trial_id", None), order=order),
        }
        made, broken = [], {}
        for name, make in makers.items():
            try:
                make(os.path.join(out, f"{name}.png"))
                made.append(f"plots/{name}.png")
            except _Nothing as why:
                self.report.skipped[f"plots/{name}.png"] = str(why)
            except Exception as exc:  # noqa: BLE001
                broken[f"plots/{name}.png"] = _short(exc)
                logger.warning("MLflow artifacts: plots/%s.png not made (%s)", name, _short(exc),
                               exc_info=True)
        if made:
            self._upload(out, "plots")
            self.report.uploaded.extend(made)
        self.report.failed.update(broken)

    def _lineage(self) -> None:
        self.lineage = normalise_lineage(self.lineage)
        path = os.path.join(self.stage, "pbt_lineage.json")
        with open(path, "w") as f:
            json.dump(self.lineage, f, indent=2, default=_json_default)
        self._upload(path)
        self._done("pbt_lineage.json")
        png = os.path.join(self.stage, "pbt_lineage.png")
        plot_pbt_lineage(self.lineage, self.frames.get("metrics"), self.metric, self.mode, png,
                         creation_order(self.result, self.frames.get("metrics")))
        self._upload(png, "plots")
        self._done("plots/pbt_lineage.png")

    def _checkpoint(self) -> None:
        checkpoint = best_checkpoint(self.result, self.path)
        if checkpoint is None:
            raise _Nothing("the best trial left no checkpoint"
                           if getattr(self.result, "best_trial_id", None) else "no best trial")
        self.checkpoint = checkpoint
        local = _is_local(checkpoint)
        uri = checkpoint.path if local else _uri(checkpoint)
        self.report.best_checkpoint = uri
        self.client.set_tag(self.run_id, BEST_CHECKPOINT_TAG, uri)
        if not local:
            self._done(f"tag {BEST_CHECKPOINT_TAG}")  # remote storage: the URI, not a copy
            return
        self._upload(checkpoint.path, "best_checkpoint")
        self._done("best_checkpoint/")

    def _model(self) -> None:
        if getattr(self.result, "best_config", None) is None:
            raise RuntimeError("no best trial to register")
        checkpoint = getattr(self, "checkpoint", None) or best_checkpoint(self.result, self.path)
        if checkpoint is None:
            raise RuntimeError("the best trial left no checkpoint to load the model from")
        trainable = getattr(self.spec, "trainable", None)
        loader = find_model_loader(trainable)
        if loader is None:
            raise RuntimeError(f"the module of trainable {trainable!r} defines no "
                               f"load_model(checkpoint_dir, config)")
        example_fn = getattr(sys.modules.get(loader.__module__), "model_input_example", None)
        version = log_and_register_model(
            self.uri, self.run_id, checkpoint, dict(self.result.best_config), loader,
            self.register_model, input_example_fn=example_fn if callable(example_fn) else None,
            report=self.report)
        self.client.set_tag(self.run_id, REGISTERED_TAG, f"{self.register_model}/{version}")
        self._done(f"model {self.register_model!r} version {version} @{CHAMPION_ALIAS}")

    def _final_tag(self) -> None:
        value = ("complete" if not self.report.failed
                 else "incomplete: " + ", ".join(self.report.failed))
        try:
            self.client.set_tag(self.run_id, ARTIFACTS_TAG, value[:5000])
        except Exception as exc:  # noqa: BLE001
            logger.warning("MLflow artifacts: tag %s not set (%s)", ARTIFACTS_TAG, _short(exc))


# ----- spec.json ---------------------------------------------------------------------------


def spec_document(spec: Any, result: Any, experiment_path: str) -> dict:
    """The content of ``spec.json``."""
    doc: dict[str, Any] = {}
    if spec is not None:
        # Values under secret-looking keys are masked everywhere in it, a tuned choice's
        # candidates included (orchestrator.redaction).
        doc["summary"] = redact_config(spec.summary())
        space = getattr(spec, "space", None)
        doc["space"] = redact_space_rows(space.describe() if hasattr(space, "describe") else space)
        doc["settings"] = redact_config({key: getattr(spec, key, None) for key in (
            "stop", "time_budget_s", "points_to_evaluate", "max_failures", "keep_checkpoints",
            "storage_path", "address", "tracking_uri", "register_model", "secrets")})
    trials = getattr(result, "trials", None)
    statuses = {}
    if trials is not None and len(trials) and "status" in trials:
        statuses = {str(k): int(v) for k, v in trials["status"].value_counts().items()}
    doc["result"] = {
        "experiment_path": experiment_path,
        "metric": getattr(result, "metric", None),
        "mode": getattr(result, "mode", None),
        "best_trial_id": getattr(result, "best_trial_id", None),
        "best_metric": getattr(result, "best_metric", None),
        "best_config": redact_config(getattr(result, "best_config", None)),
        "trials": int(len(trials)) if trials is not None else None,
        "statuses": statuses,
        "errors": {str(k): (str(v).strip().splitlines() or [""])[-1][:500]
                   for k, v in (getattr(result, "errors", None) or {}).items()},
        "note": getattr(result, "note", None),
    }
    return doc


def _read_spec(experiment_path: str) -> Any:
    try:
        from orchestrator.api import _load_spec

        return _load_spec(experiment_path)
    except Exception as exc:  # noqa: BLE001
        logger.warning("MLflow artifacts: no spec found in %s (%s); spec.json holds the result only",
                       experiment_path, _short(exc))
        return None


def _space_rows(spec: Any) -> dict[str, dict]:
    space = getattr(spec, "space", None)
    try:
        return {row["name"]: row for row in space.describe()}
    except Exception:  # noqa: BLE001 - a plot without log axes is still a plot
        return {}


def _json_default(value: Any) -> Any:
    if hasattr(value, "item"):
        try:
            return value.item()
        except Exception:  # noqa: BLE001
            pass
    if isinstance(value, (set, frozenset, tuple)):
        return list(value)
    if hasattr(value, "tolist"):
        return value.tolist()
    return str(value)


# ----- checkpoints and the model -----------------------------------------------------------


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

    from orchestrator.export import _filesystem

    fs, root = _filesystem(experiment_path)
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


def _is_local(checkpoint: Any) -> bool:
    fs = getattr(checkpoint, "filesystem", None)
    return fs is None or getattr(fs, "type_name", "local") == "local"


def _uri(checkpoint: Any) -> str:
    fs = checkpoint.filesystem
    scheme = {"s3": "s3", "gcs": "gs", "hdfs": "hdfs"}.get(getattr(fs, "type_name", ""), None)
    path = checkpoint.path
    return f"{scheme}://{path}" if scheme and "://" not in path else path


def log_and_register_model(tracking_uri: str, run_id: str, checkpoint: Any, config: dict,
                           loader: Callable, name: str, *, input_example_fn: Callable | None = None,
                           alias: str = CHAMPION_ALIAS, report: ArtifactReport | None = None,
                           await_s: float = 120.0) -> str:
    """Load the model of ``checkpoint`` with ``loader``, log it on ``run_id``, register it as a
    new version of ``name`` with ``alias``; returns the version. Raises on any failure."""
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
    with _tracking_uri(tracking_uri):
        client = MlflowClient(tracking_uri, registry_uri=tracking_uri)
        # Created here, in the run's experiment: log_model alone would put it in the fluent
        # API's current experiment (Default, with its artifacts under ./mlruns for a database).
        run = client.get_run(run_id)
        where = checkpoint.path if _is_local(checkpoint) else _uri(checkpoint)
        logged = client.create_logged_model(
            run.info.experiment_id, name="model", source_run_id=run_id,
            params=dict(run.data.params), tags={"tuneorch.checkpoint": where[:5000]})
        info = mlflow.pytorch.log_model(
            model, name="model", run_id=run_id, model_id=logged.model_id,
            pip_requirements=_pip_requirements(),  # given: no inference subprocess
            **kwargs)
        if report is not None:
            report.model_uri = info.model_uri
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
    if report is not None:
        report.model_version = str(version.version)
    return str(version.version)


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
def _tracking_uri(uri: str):
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


# ----- lineage -----------------------------------------------------------------------------


def normalise_lineage(records: Iterable) -> list[dict]:
    """Lineage records as ``{"target", "donor", "step", "donor_step", "old_config", "new_config"}``
    (plus any other key of a mapping record, e.g. PBTScheduler's ``operations``)."""
    out = []
    for record in records:
        if hasattr(record, "to_json"):
            record = record.to_json()
        extra = dict(record) if isinstance(record, Mapping) else {}  # operations, generation...
        if isinstance(record, (tuple, list)):
            if len(record) != 5:
                raise ValueError(f"lineage: a record is (target, donor, step, old_config, "
                                 f"new_config), got {record!r}")
            target, donor, step, old, new = record
            donor_step = step
        else:
            get = (record.get if isinstance(record, Mapping)
                   else lambda key, default=None: getattr(record, key, default))
            target, donor = get("target"), get("donor")
            step = get("step", get("time"))
            donor_step = get("donor_step", get("donor_time", step))
            old = get("old_config", get("target_config"))
            new = get("new_config")
        for key in ("time", "donor_time", "target_config"):  # renamed below
            extra.pop(key, None)
        out.append({**extra, "target": str(target), "donor": str(donor), "step": step,
                    "donor_step": donor_step, "old_config": dict(old or {}),
                    "new_config": dict(new or {})})
    return out


# ----- plots -------------------------------------------------------------------------------
# matplotlib's object API with the Agg canvas: no pyplot, so the user's backend is untouched.


def _figure(width: float, height: float):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=100, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def creation_order(result: Any, metrics: Any = None) -> list[str]:
    """Trial ids in the order Tune created them: the order of ``result.trials`` (Tune's trial
    list), then any other trial by its first report (Ray 2.60's trial ids are random hex)."""
    ids: list[str] = []
    trials = getattr(result, "trials", None)
    if trials is not None and len(trials) and "trial_id" in trials:
        ids = [str(t) for t in trials["trial_id"] if t is not None]
    if metrics is not None and len(metrics):
        first = metrics.groupby(metrics["trial_id"].astype(str))["timestamp"].min()
        ids += [t for t, _ in sorted(first.items(), key=lambda kv: (kv[1], kv[0])) if t not in ids]
    return list(dict.fromkeys(ids))


def _order_key(order: Sequence[str] | None) -> Callable[[Any], tuple]:
    rank = {t: i for i, t in enumerate(order or [])}
    return lambda trial_id: (rank.get(str(trial_id), len(rank)), str(trial_id))


def _numbers(values) -> "Any":
    import numpy as np
    import pandas as pd

    return pd.to_numeric(pd.Series(values), errors="coerce").to_numpy(dtype=float, na_value=np.nan)


def _cmap(mode: str):
    from matplotlib import colormaps

    return colormaps["viridis_r" if mode == "min" else "viridis"]  # better = brighter


def plot_optimization_history(trials: Any, metric: str, mode: str, path: str,
                              order: Sequence[str] | None = None) -> None:
    """Each trial's last ``metric`` in creation order (``order``), and the best so far."""
    import numpy as np

    if trials is None or not len(trials) or metric not in trials:
        raise _Nothing(f"no trial reported {metric!r}")
    key = _order_key(order)
    frame = trials.iloc[sorted(range(len(trials)), key=lambda i: key(trials["trial_id"].iloc[i]))]
    values = _numbers(frame[metric])
    x = np.arange(1, len(values) + 1)
    finite = np.isfinite(values)
    if not finite.any():
        raise _Nothing(f"no trial reported a finite {metric!r}")
    fill = np.inf if mode == "min" else -np.inf
    best = (np.minimum if mode == "min" else np.maximum).accumulate(np.where(finite, values, fill))
    best[~np.isfinite(best)] = np.nan
    fig = _figure(7, 4.2)
    ax = fig.add_subplot()
    ax.scatter(x[finite], values[finite], s=22, color="C0", label=f"trial ({metric}, last report)")
    if (~finite).any():
        ax.scatter(x[~finite], np.full((~finite).sum(), np.nanmax(values[finite]) if mode == "min"
                                       else np.nanmin(values[finite])),
                   marker="x", color="grey", label="no finite value")
    ax.step(x, best, where="post", color="C3", lw=2, label=f"best so far ({mode})")
    from matplotlib.ticker import MaxNLocator

    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("trial (creation order)")
    ax.set_ylabel(metric)
    overall = np.nanmin(best) if mode == "min" else np.nanmax(best)
    ax.set_title(f"Optimisation history: {len(values)} trials, best {metric} = {overall:.4g}")
    ax.grid(alpha=0.3)
    ax.legend(loc="best", fontsize=8)
    fig.savefig(path)


def _axis(values: Any, name: str, space_row: dict | None) -> dict | None:
    """Positions in [0, 1] (NaN when missing) and tick labels of one parallel-coordinates axis."""
    import numpy as np
    import pandas as pd

    series = pd.Series(list(values), dtype=object)
    present = series.notna() & series.map(lambda v: not (isinstance(v, float) and math.isnan(v)))
    series = series.map(lambda v: json.dumps(v, default=str) if isinstance(v, (list, dict))
                        else v.tolist() if hasattr(v, "tolist") and not np.isscalar(v) else v)
    kept = series[present]
    if kept.map(str).nunique() <= 1:
        return None  # constant (or empty): nothing to compare
    numeric = (space_row or {}).get("type") != "categorical" and all(
        isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, (bool, np.bool_))
        for v in kept)
    positions = np.full(len(series), np.nan)
    if numeric:
        raw = kept.astype(float).to_numpy()
        log = bool(space_row and space_row.get("log")) and (raw > 0).all()
        scaled = np.log10(raw) if log else raw
        lo, hi = float(np.min(scaled)), float(np.max(scaled))
        positions[present.to_numpy()] = (scaled - lo) / (hi - lo)
        ticks = [(0.0, f"{np.min(raw):.3g}"), (1.0, f"{np.max(raw):.3g}")]
        mid = 10 ** ((lo + hi) / 2) if log else (lo + hi) / 2
        ticks.append((0.5, f"{mid:.3g}"))
        label = f"{name} (log)" if log else name
    else:
        labels = kept.map(str)
        order = list(dict.fromkeys(str(c) for c in (space_row or {}).get("choices", [])))
        order = [c for c in order if c in set(labels)] + sorted(set(labels) - set(order))
        place = {c: (i / (len(order) - 1) if len(order) > 1 else 0.5) for i, c in enumerate(order)}
        positions[present.to_numpy()] = labels.map(place).to_numpy(dtype=float)
        ticks = [(place[c], c[:18]) for c in order]
        label = name
    return {"label": label, "pos": positions, "ticks": ticks}


def plot_parallel_coordinates(trials: Any, metric: str, mode: str, path: str,
                              space: Mapping[str, dict] | None = None) -> None:
    """One line per trial through its config values, coloured by its last ``metric``."""
    import numpy as np
    from matplotlib.cm import ScalarMappable
    from matplotlib.colors import Normalize

    if trials is None or not len(trials):
        raise _Nothing("no trials")
    space = space or {}
    axes = []
    for column in trials.columns:
        if column.startswith("config/") and not is_secret_name(column):
            name = column[len("config/"):]
            axis = _axis(trials[column], name, space.get(name))
            if axis is not None:
                axes.append(axis)
    values = _numbers(trials[metric]) if metric in trials else np.full(len(trials), np.nan)
    finite = np.isfinite(values)
    if finite.any():
        lo, hi = float(values[finite].min()), float(values[finite].max())
        span = (hi - lo) or 1.0
        metric_pos = np.where(finite, (values - lo) / span if hi > lo else 0.5, np.nan)
        axes.append({"label": metric, "pos": metric_pos,
                     "ticks": [(0.0, f"{lo:.4g}"), (1.0, f"{hi:.4g}")] if hi > lo else [(0.5, f"{lo:.4g}")]})
    if not axes:
        raise _Nothing("every config value is the same and no metric was reported")
    fig = _figure(max(6.0, 1.6 * len(axes) + 2), 4.5)
    ax = fig.add_subplot()
    cmap = _cmap(mode)
    norm = Normalize(vmin=values[finite].min(), vmax=values[finite].max()) if finite.any() else None
    xs = np.arange(len(axes))
    ys = np.array([a["pos"] for a in axes]).T  # trial x axis
    better_last = np.argsort(np.where(finite, values, np.inf if mode == "max" else -np.inf))
    if mode == "min":
        better_last = better_last[::-1]
    for i in better_last:
        color = cmap(norm(values[i])) if finite[i] and norm is not None else "lightgrey"
        ax.plot(xs, ys[i], color=color, lw=1.4, alpha=0.85, marker="o", ms=2.5)
    for j, axis in enumerate(axes):
        ax.axvline(j, color="black", lw=0.8)
        for pos, text in axis["ticks"]:
            ax.text(j + 0.03, pos, text, fontsize=7, va="center", ha="left",
                    bbox={"facecolor": "white", "alpha": 0.6, "lw": 0, "pad": 0.5})
    ax.set_xticks(xs, [a["label"] for a in axes], rotation=20, ha="right", fontsize=8)
    ax.set_yticks([])
    ax.set_ylim(-0.06, 1.06)
    ax.set_xlim(-0.2, len(axes) - 0.5)
    ax.set_title(f"Parallel coordinates: {len(trials)} trials, colour = {metric} (last report)")
    if norm is not None:
        fig.colorbar(ScalarMappable(norm=norm, cmap=cmap), ax=ax, label=metric)
    fig.savefig(path)


def plot_learning_curves(metrics: Any, metric: str, mode: str, path: str,
                         best_trial: str | None = None, order: Sequence[str] | None = None) -> None:
    """``metric`` against ``training_iteration`` for every trial (the best one in black)."""
    import numpy as np
    from matplotlib.cm import ScalarMappable
    from matplotlib.colors import Normalize

    if metrics is None or not len(metrics):
        raise _Nothing("no metrics reported")
    rows = metrics[metrics["key"].astype(str) == metric]
    if not len(rows):
        raise _Nothing(f"no trial reported {metric!r}")
    curves = {}
    for trial_id, group in rows.groupby(rows["trial_id"].astype(str), sort=False):
        # a PBT clone reports the steps after the cloned checkpoint again: keep the latest
        by = ["step", "timestamp"] if "timestamp" in group else ["step"]
        group = group.sort_values(by, kind="stable").drop_duplicates("step", keep="last")
        curves[trial_id] = (group["step"].to_numpy(dtype=float), group["value"].to_numpy(dtype=float))
    finals = {t: (v[np.isfinite(v)][-1] if np.isfinite(v).any() else np.nan) for t, (_, v) in curves.items()}
    fig = _figure(7, 4.2)
    ax = fig.add_subplot()
    few = len(curves) <= 10
    finite = [v for v in finals.values() if np.isfinite(v)]
    cmap = _cmap(mode)
    norm = Normalize(vmin=min(finite), vmax=max(finite)) if finite and not few else None
    for k, trial_id in enumerate(sorted(curves, key=_order_key(order))):
        steps, values = curves[trial_id]
        is_best = trial_id == str(best_trial)
        if is_best:
            color = "black"
        elif norm is not None and np.isfinite(finals[trial_id]):
            color = cmap(norm(finals[trial_id]))
        else:
            color = f"C{k % 10}" if few else "lightgrey"
        ax.plot(steps, values, color=color, lw=2.2 if is_best else 1.1, alpha=0.9,
                marker="o" if len(steps) <= 30 else None, ms=3,
                label=(f"{trial_id} (best)" if is_best else trial_id) if few or is_best else None,
                zorder=3 if is_best else 2)
    from matplotlib.ticker import MaxNLocator

    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("training_iteration")
    ax.set_ylabel(metric)
    ax.set_title(f"Learning curves: {len(curves)} trials")
    ax.grid(alpha=0.3)
    if few or best_trial:
        ax.legend(fontsize=7, loc="best")
    if norm is not None:
        fig.colorbar(ScalarMappable(norm=norm, cmap=cmap), ax=ax, label=f"{metric} (last report)")
    fig.savefig(path)


def plot_pbt_lineage(lineage: list[dict], metrics: Any, metric: str | None, mode: str,
                     path: str, order: Sequence[str] | None = None) -> None:
    """One row per trial over training_iteration (dots coloured by ``metric``); per exploit an
    arrow from the donor to the target at the step of the cloned checkpoint (where the target
    continues), an x at the step where the target was exploited, and the config changes."""
    import numpy as np
    from matplotlib.cm import ScalarMappable
    from matplotlib.colors import Normalize

    trial_ids = set()
    for record in lineage:
        trial_ids.update((record["target"], record["donor"]))
    rows = None
    if metrics is not None and len(metrics) and metric:
        rows = metrics[metrics["key"].astype(str) == metric]
        trial_ids.update(rows["trial_id"].astype(str))
    order = sorted(trial_ids, key=_order_key(order))
    y = {t: i for i, t in enumerate(order)}
    fig = _figure(8, max(3.0, 0.45 * len(order) + 1.5))
    ax = fig.add_subplot()
    cmap, norm = _cmap(mode), None
    if rows is not None and len(rows):
        values = rows["value"].to_numpy(dtype=float)
        finite = np.isfinite(values)
        if finite.any():
            norm = Normalize(vmin=values[finite].min(), vmax=values[finite].max())
        for trial_id, group in rows.groupby(rows["trial_id"].astype(str), sort=False):
            steps, vals = group["step"].to_numpy(dtype=float), group["value"].to_numpy(dtype=float)
            ax.hlines(y[trial_id], steps.min(), steps.max(), color="lightgrey", lw=1, zorder=1)
            ok = np.isfinite(vals)
            ax.scatter(steps[ok], np.full(ok.sum(), y[trial_id]), c=vals[ok], cmap=cmap, norm=norm,
                       s=18, zorder=2)
    label_exploits = len(lineage) <= 40
    for record in lineage:
        step = _as_float(record["step"])
        donor_step = _as_float(record["donor_step"], step)
        if step is None:
            continue
        # the target continues from the donor's checkpoint: arrow at donor_step; x where it was
        # exploited (its later reports repeat the steps in between)
        target, donor = y[record["target"]], y[record["donor"]]
        ax.annotate("", xy=(donor_step, target), xytext=(donor_step, donor),
                    arrowprops={"arrowstyle": "->", "color": "C3", "lw": 1.3}, zorder=3)
        if step != donor_step:
            ax.plot([donor_step, step], [target, target], color="C3", lw=0.8, ls=":", zorder=3)
            ax.scatter([step], [target], marker="x", color="C3", s=30, zorder=4)
        if label_exploits:
            ax.text(donor_step, target + 0.18, _changes(record["old_config"], record["new_config"]),
                    fontsize=6, color="C3", ha="center", va="bottom")
    ax.set_yticks(range(len(order)), order, fontsize=7)
    ax.set_ylim(-0.7, len(order) - 0.3)
    ax.set_xlabel("training_iteration")
    n = len(lineage)
    ax.set_title(f"PBT lineage: {n} exploit{'' if n == 1 else 's'} (arrow: donor -> target, "
                 f"x: exploited at)", fontsize=10)
    ax.grid(axis="x", alpha=0.3)
    if norm is not None:
        fig.colorbar(ScalarMappable(norm=norm, cmap=cmap), ax=ax, label=metric)
    fig.savefig(path)


def _as_float(value: Any, default: float | None = None) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return default
    return number if math.isfinite(number) else default


def _changes(old: Mapping, new: Mapping, limit: int = 3) -> str:
    def fmt(v):
        return f"{v:.3g}" if isinstance(v, float) else str(v)[:10]

    keys = [k for k in new if old.get(k) != new[k]]
    text = ", ".join(f"{k}: {fmt(old.get(k))}->{fmt(new[k])}" for k in keys[:limit])
    return text + (f" +{len(keys) - limit}" if len(keys) > limit else "")


# ----- errors ------------------------------------------------------------------------------


def _short(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0][:300] if text else ''}"


def _is_network(exc: BaseException) -> bool:
    import requests

    return isinstance(exc, (requests.exceptions.RequestException, ConnectionError, TimeoutError)) \
        or "Max retries exceeded" in str(exc) or "API request to" in str(exc)
