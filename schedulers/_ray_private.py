"""Every use of Ray Tune internals by this project's schedulers, in one place (Ray 2.60).

Population Based Training needs what Ray Tune's scheduler interface does not offer: stop a
running trial without saving it, make a trial restart from *another* trial's checkpoint,
change a trial's config, and ask a class Trainable for a checkpoint now. Ray's own
``PopulationBasedTraining`` (``ray/tune/schedulers/pbt.py``) reaches the same internals.
Keeping them here means a Ray upgrade breaks one file, and :func:`verify` (run once when a
scheduler starts, and by ``tests/test_pbt_tune.py``) fails loudly, naming what moved,
instead of a run silently retraining from scratch.

What is used, and why:

* ``TuneController.pause_trial(trial, should_checkpoint=False)`` (whitelisted on the
  controller wrapper schedulers receive): stop the target of an exploit without saving
  its own, about-to-be-discarded state.
* ``TuneController._schedule_trial_save(trial)``: a class Trainable only checkpoints when
  Tune asks it to; this asks for one at a decision point so the trial can be cloned.
  Function trainables are never asked (they report their checkpoints themselves, and a
  second save of one report would register it twice).
* ``trial.run_metadata.checkpoint_manager._latest_checkpoint_result``: the checkpoint
  result a PAUSED trial restarts from (``Trial.latest_checkpoint_result`` reads it); set to
  the donor's ``(checkpoint, metrics)`` so the target restarts from the donor's weights and
  inherits its ``training_iteration``. ``run_metadata.invalidate_cache()`` makes the next
  experiment snapshot record it (so a resumed experiment restarts from it too).
* ``ray.train._internal.session._TrainingResult``: the (checkpoint, metrics) pair above.
* ``checkpoint_manager.checkpoint_config.num_to_keep``: when Tune may delete old
  checkpoints, a cloned one is copied first (ray issues 9036, 27790).
* ``Trial.set_config`` / ``Trial.set_experiment_tag``: DeveloperAPI setters that also
  invalidate the trial's cached JSON state.
* ``trial.storage.experiment_driver_staging_path``: the driver-side experiment folder
  that Tune syncs to storage, where the scheduler state file goes by default. A restore
  copies the experiment folder's root ``*.json`` files into it (and later uploads them
  back): :func:`drop_staged_copy` removes the stale copy of a state file kept elsewhere.
"""

from __future__ import annotations

import inspect
from typing import Any, Optional

import ray

RAY_SERIES = "2.60"


class RayInternalsChanged(RuntimeError):
    """The installed Ray lacks an internal this project relies on."""


def verify() -> None:
    """Raise :class:`RayInternalsChanged` naming every internal that is missing or changed."""
    problems: list[str] = []
    if not ray.__version__.startswith(RAY_SERIES + "."):
        problems.append(f"Ray {ray.__version__} is installed, these internals were checked against "
                        f"{RAY_SERIES}.x")
    try:
        from ray.train._internal.checkpoint_manager import _CheckpointManager
        from ray.train._internal.session import _TrainingResult
        from ray.tune.execution.tune_controller import TuneController, _FakeRayTrialExecutor
        from ray.tune.experiment import Trial
        from ray.tune.trainable.metadata import _TrainingRunMetadata
    except ImportError as exc:
        raise RayInternalsChanged(f"schedulers/_ray_private.py: an import moved: {exc}") from None

    def needs(owner: Any, name: str, params: tuple[str, ...] = ()) -> None:
        attr = getattr(owner, name, None)
        if attr is None:
            problems.append(f"{owner.__name__}.{name} is gone")
            return
        if params:
            got = tuple(inspect.signature(attr).parameters)
            missing = [p for p in params if p not in got]
            if missing:
                problems.append(f"{owner.__name__}.{name} lost parameters {missing} (has {list(got)})")

    needs(TuneController, "pause_trial", ("trial", "should_checkpoint"))
    needs(TuneController, "_schedule_trial_save", ("trial", "result"))
    needs(TuneController, "get_trials")
    needs(_FakeRayTrialExecutor, "pause_trial")
    wrapped = inspect.getsource(TuneController._wrapped)
    for name in ("pause_trial", "_schedule_trial_save", "get_trials"):
        if f'"{name}"' not in wrapped:
            problems.append(f"TuneController._wrapped no longer lets schedulers call {name}")
    needs(Trial, "set_config", ("config",))
    needs(Trial, "set_experiment_tag", ("experiment_tag",))
    needs(Trial, "latest_checkpoint_result")
    needs(Trial, "get_trainable_cls")
    needs(_TrainingRunMetadata, "invalidate_cache")
    manager = _CheckpointManager(None)
    for name in ("_latest_checkpoint_result", "checkpoint_config", "latest_checkpoint_result"):
        if not hasattr(manager, name):
            problems.append(f"_CheckpointManager has no attribute {name}")
    if "_latest_checkpoint_result" not in inspect.getsource(_CheckpointManager.latest_checkpoint_result.fget):
        problems.append("_CheckpointManager.latest_checkpoint_result no longer reads _latest_checkpoint_result")
    if "latest_checkpoint_result" not in inspect.getsource(TuneController._schedule_trial_restore):
        problems.append("TuneController._schedule_trial_restore no longer restores from "
                        "trial.latest_checkpoint_result")
    if tuple(inspect.signature(_TrainingResult).parameters) != ("checkpoint", "metrics"):
        problems.append(f"_TrainingResult takes {list(inspect.signature(_TrainingResult).parameters)}, "
                        f"not (checkpoint, metrics)")
    from ray.train._internal.storage import StorageContext
    if not isinstance(getattr(StorageContext, "experiment_driver_staging_path", None), property):
        problems.append("StorageContext.experiment_driver_staging_path is gone")
    from ray.tune.execution.experiment_state import _ExperimentCheckpointManager
    sync_down = inspect.getsource(_ExperimentCheckpointManager.sync_down_experiment_state)
    if '.endswith(".json")' not in sync_down or "experiment_driver_staging_path" not in sync_down:
        problems.append("_ExperimentCheckpointManager.sync_down_experiment_state no longer copies the "
                        "experiment folder's *.json files into the driver staging folder (see "
                        "drop_staged_copy)")
    if problems:
        raise RayInternalsChanged(
            "schedulers/_ray_private.py: Ray internals used by the PBT scheduler changed: "
            + "; ".join(problems) + ". Update schedulers/_ray_private.py for this Ray version "
            "(compare with ray/tune/schedulers/pbt.py) or install ray==2.60.*")


# ---- the calls ---------------------------------------------------------------------------


def pause_without_saving(tune_controller: Any, trial: Any) -> None:
    """Stop a running trial and mark it PAUSED without taking a checkpoint."""
    tune_controller.pause_trial(trial, should_checkpoint=False)


def request_save(tune_controller: Any, trial: Any) -> None:
    """Ask a running class Trainable to save now (the checkpoint is registered later)."""
    tune_controller._schedule_trial_save(trial)


def latest_checkpoint(trial: Any) -> Optional[tuple[Any, dict]]:
    """``(checkpoint, metrics)`` the trial would restart from now, or ``None``."""
    result = trial.latest_checkpoint_result
    if result is None or result.checkpoint is None:
        return None
    return result.checkpoint, dict(result.metrics or {})


def restart_from(trial: Any, checkpoint: Any, metrics: dict) -> None:
    """Make a PAUSED trial restart from ``checkpoint`` (another trial's), with ``metrics``
    (``training_iteration`` etc.) as if it had reported them there."""
    from ray.train._internal.session import _TrainingResult

    trial.run_metadata.checkpoint_manager._latest_checkpoint_result = _TrainingResult(
        checkpoint=checkpoint, metrics=dict(metrics))
    trial.run_metadata.invalidate_cache()


def set_config(trial: Any, config: dict, experiment_tag: str) -> None:
    trial.set_experiment_tag(experiment_tag)
    trial.set_config(config)


def num_to_keep(trial: Any) -> Optional[int]:
    """``CheckpointConfig.num_to_keep`` of the trial (``None``: Tune deletes none)."""
    return trial.run_metadata.checkpoint_manager.checkpoint_config.num_to_keep


def experiment_staging_dir(trial: Any) -> Optional[str]:
    storage = getattr(trial, "storage", None)
    return None if storage is None else storage.experiment_driver_staging_path


def drop_staged_copy(trial: Any, state_path: str) -> bool:
    """Remove the stale copy of a scheduler state file that a restore put in the driver
    staging folder; True if there was one.

    Restoring an experiment (``TuneController.resume`` ->
    ``_ExperimentCheckpointManager.sync_down_experiment_state``) copies every ``*.json``
    at the experiment folder's root into the driver staging folder, and every later
    experiment checkpoint uploads that folder back to the experiment folder. A state file
    that a scheduler writes straight into the experiment folder (``state_path``) would so
    be overwritten, again and again, by the copy taken at the restore. Only a file of the
    same name is removed, and only when ``state_path`` is not itself in the staging folder.
    """
    import os

    staging = experiment_staging_dir(trial)
    if staging is None or "://" in staging:
        return False
    local = state_path[len("file://"):] if state_path.startswith("file://") else state_path
    copy = os.path.join(staging, os.path.basename(local))
    if os.path.abspath(copy) == os.path.abspath(local) or not os.path.exists(copy):
        return False
    os.remove(copy)
    return True


def is_function_trainable(trial: Any) -> bool:
    """Whether the trial runs a function trainable (it checkpoints only when it reports one)."""
    from ray.tune.trainable import FunctionTrainable

    cls = trial.get_trainable_cls()
    return cls is None or issubclass(cls, FunctionTrainable)
