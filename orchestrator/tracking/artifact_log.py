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
                                    best so far (the plots: :mod:`orchestrator.tracking.plots`)
``plots/parallel_coordinates.png``  one line per trial through its config values (numeric and
                                    categorical axes; constant ones left out), coloured by the
                                    last ``metric``
``plots/learning_curves.png``       ``metric`` against ``training_iteration`` for every trial
``plots/pbt_lineage.png``,          only when there is a lineage (a PBT scheduler exposing
``pbt_lineage.json``                ``lineage()``, or records passed in): who cloned whom, when
                                    (:mod:`orchestrator.tracking.lineage`)
``best_checkpoint/``                the best trial's latest checkpoint directory; with a remote
                                    experiment path (``s3://`` ...) nothing is copied, the tag
                                    ``tuneorch.best_checkpoint`` holds its URI (it is set in
                                    both cases)
a logged model + registry version   only with ``register_model``
                                    (:mod:`orchestrator.tracking.model_registry`)
==================================  ===========================================================

and ends with the tag ``tuneorch.artifacts``: ``complete`` or ``incomplete: <what is missing>``.

Best effort, but loud: nothing here raises. Every part that could not be made or uploaded is
named in a warning (``orchestrator.tracking.artifact_log`` logger), in the returned
:class:`ArtifactReport` and, if the server still answers, in that tag. When an upload fails
and the tracking server no longer answers, the remaining parts are skipped at once (and
named) instead of each waiting through the client's retries. The MLflow client's retries are
limited as in :mod:`orchestrator.tracking.mlflow_callback` (``MLFLOW_ENV_DEFAULTS``).
"""

from __future__ import annotations

import json
import logging
import os
import sys
import tempfile
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Mapping

from orchestrator.export import export_parquet
from orchestrator.redaction import redact_config, redact_space_rows
from orchestrator.spec_file import load_spec
from orchestrator.tracking.lineage import normalise_lineage
from orchestrator.tracking.mlflow_callback import MLFLOW_ENV_DEFAULTS
from orchestrator.tracking.model_registry import (CHAMPION_ALIAS, best_checkpoint, checkpoint_uri,
                                                  find_model_loader, is_local, log_and_register_model)
from orchestrator.tracking.plots import (NothingToPlot, creation_order, plot_learning_curves,
                                         plot_optimization_history, plot_parallel_coordinates, plot_pareto_front,
                                         plot_pbt_lineage)

logger = logging.getLogger(__name__)

ARTIFACTS_TAG = "tuneorch.artifacts"
BEST_CHECKPOINT_TAG = "tuneorch.best_checkpoint"
REGISTERED_TAG = "tuneorch.registered_model"


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


class _NothingToUpload(Exception):
    """A part that has nothing to show (e.g. the best trial left no checkpoint)."""


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
                except (_NothingToUpload, NothingToPlot) as why:
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
        # Several objectives: each plot once per objective, named after it.
        several = isinstance(self.metric, (list, tuple))
        pairs = list(zip(self.metric, self.mode)) if several else [(self.metric, self.mode)]
        makers = {}
        for metric, mode in pairs:
            suffix = f"_{metric}" if several else ""
            makers.update({
                f"optimization_history{suffix}": lambda p, m=metric, d=mode: plot_optimization_history(
                    self.frames["trials"], m, d, p, order),
                f"parallel_coordinates{suffix}": lambda p, m=metric, d=mode: plot_parallel_coordinates(
                    self.frames["trials"], m, d, p, space),
                f"learning_curves{suffix}": lambda p, m=metric, d=mode: plot_learning_curves(
                    self.frames["metrics"], m, d, p,
                    best_trial=getattr(self.result, "best_trial_id", None), order=order),
            })
        if several:
            makers["pareto_front"] = lambda p: plot_pareto_front(self.frames["trials"], list(self.metric),
                                                                 list(self.mode), p)
        made, broken = [], {}
        for name, make in makers.items():
            try:
                make(os.path.join(out, f"{name}.png"))
                made.append(f"plots/{name}.png")
            except NothingToPlot as why:
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
            raise _NothingToUpload("the best trial left no checkpoint"
                           if getattr(self.result, "best_trial_id", None) else "no best trial")
        self.checkpoint = checkpoint
        local = is_local(checkpoint)
        uri = checkpoint.path if local else checkpoint_uri(checkpoint)
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
        registered = log_and_register_model(
            self.uri, self.run_id, checkpoint, dict(self.result.best_config), loader,
            self.register_model, input_example_fn=example_fn if callable(example_fn) else None)
        self.report.model_uri, self.report.model_version = registered.model_uri, registered.version
        self.client.set_tag(self.run_id, REGISTERED_TAG, f"{registered.name}/{registered.version}")
        self._done(f"model {registered.name!r} version {registered.version} @{CHAMPION_ALIAS}")

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
        return load_spec(experiment_path)
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


# ----- errors ------------------------------------------------------------------------------


def _short(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0][:300] if text else ''}"


def _is_network(exc: BaseException) -> bool:
    import requests

    return isinstance(exc, (requests.exceptions.RequestException, ConnectionError, TimeoutError)) \
        or "Max retries exceeded" in str(exc) or "API request to" in str(exc)
