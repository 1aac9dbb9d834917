"""Every use of Ray internals by the orchestrator, in one place (Ray 2.60).

The orchestrator needs a few things Ray's public API does not offer: what a ``Tuner`` ran with
(its scheduler and search algorithm, read back after ``Tuner.restore``), fresh callbacks for a
restored ``Tuner``, every trial of a ``ResultGrid`` (trials that failed before reporting
included), the node types an autoscaler may add, and where Tune stages an experiment on the
driver. Keeping them here means a Ray upgrade breaks one file, and :func:`verify` (run by
``tests/test_layering.py``) fails loudly, naming what moved. The scheduler-side internals
(PBT, exact resume, the loopback node) live in ``schedulers/_ray_private.py``.

What is used, and why:

* ``Tuner._local_tuner`` (a ``ray.tune.impl.tuner_internal.TunerInternal``; ``None`` under Ray
  Client, where ``_remote_tuner`` holds an actor instead) and its ``_tune_config``: the
  scheduler and search algorithm the Tuner runs, which after ``Tuner.restore`` are the
  restored ones, not the objects this process built.
* ``TunerInternal.get_run_config()``: the ``RunConfig`` a restored Tuner unpickled, whose
  callbacks would replay a stale state; Ray has no public setter.
* ``ResultGrid._experiment_analysis.trials``: the ``Trial`` objects behind a result grid, with
  their status and id; ``ResultGrid`` itself drops trials without results.
* ``ray._private.state.state.get_cluster_config()``: the autoscaler's ``ClusterConfig``
  (``node_group_configs``: ``name``, ``resources``, ``max_count``) reported to the GCS.
* ``Trial.run_metadata.last_result``: what a trial last reported. The public
  ``Trial.last_result`` of a trial that has not reported yet blocks the driver on a
  ``ray.get`` of its actor's default result (38 ms per trial start, on the driver, in the
  scale benchmark: the MLflow tracker reads the step at every trial start).
* Tune's driver staging folder layout, ``<ray temp root>/session_*/artifacts/<timestamp>/
  <experiment name>/driver_artifacts`` (``StorageContext.experiment_driver_staging_path``):
  where the driver wrote the experiment before uploading it, read when a dead driver's
  snapshot must be repaired.
"""

from __future__ import annotations

import glob
import inspect
import os
import tempfile
from typing import Any

# One pinned Ray series and one error for both checked modules.
from schedulers._ray_private import RAY_SERIES, RayInternalsChanged


def verify() -> None:
    """Raise :class:`RayInternalsChanged` naming every internal used here that is missing or changed."""
    import ray
    from ray.tune import ResultGrid, Tuner

    problems: list[str] = []
    if not ray.__version__.startswith(RAY_SERIES + "."):
        problems.append(f"Ray {ray.__version__} is installed, these internals were checked against "
                        f"{RAY_SERIES}.x")
    try:
        from ray._private import state
        from ray.core.generated import autoscaler_pb2
        from ray.train._internal.storage import StorageContext
        from ray.tune.impl.tuner_internal import TunerInternal
    except ImportError as exc:
        raise RayInternalsChanged(f"orchestrator/_ray_private.py: an import moved: {exc}") from None
    if "self._local_tuner = " not in inspect.getsource(Tuner.__init__):
        problems.append("Tuner.__init__ no longer keeps its TunerInternal in _local_tuner")
    internal_init = inspect.getsource(TunerInternal.__init__)
    if "self._tune_config = " not in internal_init:
        problems.append("TunerInternal.__init__ no longer keeps the TuneConfig in _tune_config")
    if "return self._run_config" not in inspect.getsource(TunerInternal.get_run_config):
        problems.append("TunerInternal.get_run_config no longer returns the RunConfig it runs with")
    if "self._experiment_analysis = " not in inspect.getsource(ResultGrid.__init__):
        problems.append("ResultGrid.__init__ no longer keeps its ExperimentAnalysis in _experiment_analysis")
    if not callable(getattr(getattr(state, "state", None), "get_cluster_config", None)):
        problems.append("ray._private.state.state.get_cluster_config is gone")
    groups = autoscaler_pb2.NodeGroupConfig.DESCRIPTOR.fields_by_name
    missing = [name for name in ("name", "resources", "max_count") if name not in groups]
    if missing or "node_group_configs" not in autoscaler_pb2.ClusterConfig.DESCRIPTOR.fields_by_name:
        problems.append(f"autoscaler ClusterConfig.node_group_configs lost fields {missing or ['node_group_configs']}")
    layout = inspect.getsource(StorageContext.experiment_driver_staging_path.fget) \
        + inspect.getsource(StorageContext._get_session_path)
    if '"driver_artifacts"' not in layout or "_get_ray_train_session_dir()" not in layout:
        problems.append("StorageContext.experiment_driver_staging_path is no longer "
                        "<session>/artifacts/<timestamp>/<experiment>/driver_artifacts")
    from ray.tune.experiment import Trial
    from ray.tune.trainable.metadata import _TrainingRunMetadata

    if "self.run_metadata = " not in inspect.getsource(Trial.__init__) \
            or "last_result" not in inspect.getsource(_TrainingRunMetadata.__init__):
        problems.append("Trial.run_metadata.last_result is gone")
    if problems:
        raise RayInternalsChanged(
            "orchestrator/_ray_private.py: Ray internals used by the orchestrator changed: "
            + "; ".join(problems) + ". Update orchestrator/_ray_private.py for this Ray version or "
            "install ray==2.60.*")


# ---- a Tuner and its results -----------------------------------------------------------------


def reported_result(trial: Any) -> dict:
    """What ``trial`` last reported (``{}`` before its first result), without waiting on its actor;
    objects that are not Tune trials give their ``last_result``."""
    metadata = getattr(trial, "run_metadata", None)
    result = getattr(metadata, "last_result", None) if metadata is not None else getattr(trial, "last_result", None)
    return result if isinstance(result, dict) else {}


def scheduler_of(tuner: Any) -> Any:
    """The scheduler a ``ray.tune.Tuner`` runs with (the restored one after ``Tuner.restore``);
    ``None`` when it cannot be read (Ray Client, or not a Tuner)."""
    return getattr(_tune_config_of(tuner), "scheduler", None)


def search_alg_of(tuner: Any) -> Any:
    """The search algorithm a ``ray.tune.Tuner`` runs with (after ``Tuner.restore``: the restored
    one, its state included); ``None`` when it cannot be read."""
    return getattr(_tune_config_of(tuner), "search_alg", None)


def _tune_config_of(tuner: Any) -> Any:
    return getattr(getattr(tuner, "_local_tuner", None), "_tune_config", None)


def run_config_of(tuner: Any) -> Any:
    """The ``RunConfig`` a ``ray.tune.Tuner`` runs with; after ``Tuner.restore`` it is the
    unpickled one of the first run, which this returns to be changed in place."""
    return tuner._local_tuner.get_run_config()


def set_callbacks(tuner: Any, callbacks: list) -> None:
    """Give a restored Tuner fresh callbacks: the pickled ``RunConfig``'s tracker would replay a
    stale state."""
    run_config_of(tuner).callbacks = callbacks


def trials_of(grid: Any) -> list:
    """The ``Trial`` objects behind a ``ResultGrid``, in the grid's order, or ``[]`` when it has
    none (a grid built by hand)."""
    return list(getattr(getattr(grid, "_experiment_analysis", None), "trials", None) or [])


# ---- the cluster -----------------------------------------------------------------------------


def autoscaler_node_groups() -> list[dict]:
    """The node groups the autoscaler reported to Ray's GCS: ``[{"name", "resources",
    "max_count"}]`` (``max_count`` -1: unbounded); ``[]`` when Ray is not started, no autoscaler
    reported one, or the private call failed (then the forecast is just unknown)."""
    try:
        import ray

        if not ray.is_initialized():
            return []
        config = ray._private.state.state.get_cluster_config()
    except Exception:  # noqa: BLE001 - absent or changed means "unknown"; verify() names the change
        return []
    if config is None:
        return []
    return [{"name": group.name, "resources": {k: float(v) for k, v in group.resources.items()},
             "max_count": int(group.max_count)} for group in config.node_group_configs]


# ---- Tune's staging folders on the driver ----------------------------------------------------


def ray_temp_roots() -> list[str]:
    """Where Ray keeps its session folders on this machine: ``$RAY_TMPDIR``, ``/tmp/ray``, and
    ``ray`` under Python's temporary folder."""
    candidates = (os.environ.get("RAY_TMPDIR"), "/tmp/ray", os.path.join(tempfile.gettempdir(), "ray"))
    return list(dict.fromkeys(p for p in candidates if p))


def driver_staging_folders(experiment_name: str, roots: list[str] | None = None) -> list[str]:
    """Every driver staging folder of the experiment named ``experiment_name`` left in Ray's
    session folders under ``roots`` (default :func:`ray_temp_roots`), one per driver that ran it,
    oldest first: ``<root>/session_*/artifacts/*/<experiment_name>/driver_artifacts``."""
    found = [folder for root in (roots or ray_temp_roots()) for folder in glob.glob(os.path.join(
        glob.escape(root), "session_*", "artifacts", "*", glob.escape(experiment_name), "driver_artifacts"))
        if os.path.isdir(folder)]
    return sorted(dict.fromkeys(found), key=os.path.getmtime)


def scheduler_budget(scheduler: Any) -> tuple[str | None, Any]:
    """``(time_attr, max_t)`` of a trial scheduler: Ray 2.60's ASHA and HyperBand keep them as
    ``_time_attr`` / ``_max_t`` only (ours have the same names); ``(None, None)`` when absent."""
    return getattr(scheduler, "_time_attr", None), getattr(scheduler, "_max_t", None)
