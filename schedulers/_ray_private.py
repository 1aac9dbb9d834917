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

import contextlib
import inspect
import os
import re
import shutil
from typing import Any, Mapping, Optional

import ray

RAY_SERIES = "2.60"
# A result's checkpoint folder (ray.train._internal.storage: "checkpoint_%06d"), named in
# the result under this key by the function trainable's session.
_CHECKPOINT_DIR_NAME = "checkpoint_dir_name"
_CHECKPOINT_NAME = re.compile(r"checkpoint_(\d+)")


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
    from ray.train import constants as train_constants
    from ray.train._internal.storage import StorageContext
    if getattr(train_constants, "CHECKPOINT_DIR_NAME", None) != _CHECKPOINT_DIR_NAME:
        problems.append("ray.train.constants.CHECKPOINT_DIR_NAME is no longer 'checkpoint_dir_name'")
    if not _CHECKPOINT_NAME.fullmatch(StorageContext._make_checkpoint_dir_name(7) or ""):
        problems.append("StorageContext no longer names checkpoint folders checkpoint_<index>")
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
    for name in ("_latest_checkpoint_result", "_checkpoint_results", "checkpoint_config", "latest_checkpoint_result"):
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


def pause_without_saving(tune_controller: Any, trial: Any, result: Optional[Mapping] = None) -> None:
    """Stop a running trial and mark it PAUSED without taking a checkpoint.

    A function trainable writes the checkpoint it reports with ``result`` into its folder
    before Tune registers it, and pausing now means Tune never does; the trial's
    ``StorageContext.current_checkpoint_index`` then still names that folder, and the trial's
    next start (a PBT clone) would write its first checkpoint over it. ``result.json`` keeps
    pointing there, and a resume after a driver kill restarted the trial from the clone's
    state under its old config (seen in the PBT kill test). So the index moves past it."""
    match = _CHECKPOINT_NAME.fullmatch(str((result or {}).get(_CHECKPOINT_DIR_NAME) or ""))
    if match:
        trial.storage.current_checkpoint_index = max(int(trial.storage.current_checkpoint_index),
                                                     int(match.group(1)) + 1)
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


def experiment_folder(trial: Any) -> Optional[str]:
    """The experiment folder on this machine's disk, or ``None`` when storage is remote
    (``StorageContext.experiment_fs_path`` on a pyarrow ``LocalFileSystem``)."""
    import pyarrow.fs

    storage = getattr(trial, "storage", None)
    if storage is None or not isinstance(storage.storage_filesystem, pyarrow.fs.LocalFileSystem):
        return None
    return storage.experiment_fs_path


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


@contextlib.contextmanager
def loopback_node():
    """Make a Ray started inside this block put its node, and every server of it, on 127.0.0.1.

    Ray resolves a requested ``127.0.0.1`` node address to the host's outward address
    (``services.resolve_ip_for_localhost``), so GCS, raylet, object manager and workers would
    listen on every interface. The one switch that keeps them on loopback is the one Ray uses on
    laptops: with ``ray_constants.ENABLE_RAY_CLUSTER`` off, ``services.get_node_ip_address``
    returns the loopback address, and the C++ servers bind to the node address they are given.
    The constant is read at import time, hence both the module attribute (this process) and the
    environment variable (the processes Ray starts now, which inherit it). Checked by
    ``tests/test_loopback.py``, which lists the listening sockets of a Ray started this way.
    """
    from ray._private import ray_constants

    saved_constant = ray_constants.ENABLE_RAY_CLUSTER
    saved_env = os.environ.get(ray_constants.ENABLE_RAY_CLUSTERS_ENV_VAR)
    ray_constants.ENABLE_RAY_CLUSTER = False
    os.environ[ray_constants.ENABLE_RAY_CLUSTERS_ENV_VAR] = "0"
    try:
        yield
    finally:
        ray_constants.ENABLE_RAY_CLUSTER = saved_constant
        if saved_env is None:
            os.environ.pop(ray_constants.ENABLE_RAY_CLUSTERS_ENV_VAR, None)
        else:
            os.environ[ray_constants.ENABLE_RAY_CLUSTERS_ENV_VAR] = saved_env



# ---- exact resume after a SIGKILL (orchestrator/reconcile.py) -------------------------------


#: Result key Tune sets on a result that carries a checkpoint (``ray.tune.result.SHOULD_CHECKPOINT``).
_SHOULD_CHECKPOINT = "should_checkpoint"


@contextlib.contextmanager
def exact_resume_hooks(on_restored: Any = None):
    """Inside this block, Tune's controller (``ray/tune/execution/tune_controller.py``)

    * takes an experiment snapshot (``TuneController.checkpoint(force=True, wait=True)``) before
      it registers the first checkpoint of a trial that no forced snapshot holds yet: before it
      processes a result that carries a checkpoint (``_on_training_result``, ahead of the
      loggers, the callbacks and the save) and before it asks a trial to save
      (``_schedule_trial_save``: class trainables, PBT). ``wait``: the upload into the experiment
      folder completes first, so the folder's own (sealed) snapshot holds the trial even when the
      driver dies while writing the next one into staging (resume never puts back an unsealed
      staging copy). One snapshot covers every trial the controller holds then, so the trials
      created since the previous one share it;
    * calls ``on_restored(controller, trials)`` on the trials that ``TuneController.resume``
      read back from the snapshot (``_restore_trials``), before the searcher is restored and
      before any trial is handed to the scheduler (``_requeue_restored_trials`` ->
      ``add_trial`` -> ``on_trial_add``); it returns the trials to resume.

    The guarantee: a trial that has a checkpoint is in the experiment folder's snapshot, so a
    resume continues it from that checkpoint (``orchestrator.reconcile`` adopts checkpoints newer
    than the snapshot) and never re-creates it from scratch. Tune's periodic snapshot
    (``TUNE_GLOBAL_CHECKPOINT_S``, 10 s or more) alone would leave every trial started since then
    out of the resume. A trial that has not checkpointed yet may be missing from the snapshot
    when the driver dies: the resume drops its folder and MLflow run (``orchestrator.reconcile``)
    and the searcher creates the trial again; only its results since its start are redone, as
    they would be for a trial that had been in the snapshot without a checkpoint.

    Cost: one forced snapshot is O(trials) (Tune serialises every trial and uploads its staging
    folder). Forcing one for every new trial, as this hook did before (right after the searcher
    created trials), made a run of N trials O(N^2): at N = 1000 it was the largest item of the
    driver's profile. Now trials that never checkpoint cost no forced snapshot, and trials
    created between two snapshots share the next one.

    The patch is on the class, for the length of the block, in this process only.
    """
    from ray.tune.execution.tune_controller import TuneController

    original_queue = TuneController._maybe_update_trial_queue
    original_restore = TuneController._restore_trials
    original_result = TuneController._on_training_result
    original_save = TuneController._schedule_trial_save

    def _unsnapshotted(self) -> set:
        """Ids of the trials created since this controller's last forced snapshot."""
        found = self.__dict__.get("_tuneorch_unsnapshotted")
        if found is None:
            found = self.__dict__["_tuneorch_unsnapshotted"] = set()
        return found

    def _snapshot_holding(self, trial) -> None:
        pending = _unsnapshotted(self)
        if trial.trial_id in pending:
            self.checkpoint(force=True, wait=True)
            pending.clear()  # the snapshot serialised every trial the controller holds

    def _maybe_update_trial_queue(self):
        before = len(self._trials)
        original_queue(self)
        if len(self._trials) > before:
            _unsnapshotted(self).update(t.trial_id for t in self._trials[before:])

    def _on_training_result(self, trial, result):
        results = result if isinstance(result, list) else [result]
        if any(isinstance(r, dict) and r.get(_SHOULD_CHECKPOINT) for r in results):
            _snapshot_holding(self, trial)
        return original_result(self, trial, result)

    def _schedule_trial_save(self, trial, result=None):  # Ray's signature: PBT's verify() checks it
        _snapshot_holding(self, trial)
        return original_save(self, trial, result)

    def _restore_trials(self, experiment_state):
        trials = original_restore(self, experiment_state)
        if on_restored is not None:
            trials = on_restored(self, trials)
        return trials

    TuneController._maybe_update_trial_queue = _maybe_update_trial_queue
    TuneController._restore_trials = _restore_trials
    TuneController._on_training_result = _on_training_result
    TuneController._schedule_trial_save = _schedule_trial_save
    try:
        yield
    finally:
        TuneController._maybe_update_trial_queue = original_queue
        TuneController._restore_trials = original_restore
        TuneController._on_training_result = original_result
        TuneController._schedule_trial_save = original_save


def verify_exact_resume_hooks() -> None:
    """Fail loudly when the controller code :func:`exact_resume_hooks` relies on moved."""
    from ray.tune import result as tune_result
    from ray.tune.execution.tune_controller import TuneController

    problems = []
    step = inspect.getsource(TuneController.step)
    if step.find("_maybe_update_trial_queue()") < 0 or not (
            step.find("_maybe_update_trial_queue()") < step.find("_maybe_add_actors()")):
        problems.append("TuneController.step no longer adds trials before starting actors")
    resume = inspect.getsource(TuneController.resume)
    if not (0 <= resume.find("_restore_trials(") < resume.find("restore_from_dir")
            < resume.find("_requeue_restored_trials(")):
        problems.append("TuneController.resume no longer restores trials, then the searcher, then requeues")
    if "force" not in inspect.signature(TuneController.checkpoint).parameters:
        problems.append("TuneController.checkpoint lost its force parameter")
    if getattr(tune_result, "SHOULD_CHECKPOINT", None) != _SHOULD_CHECKPOINT:
        problems.append("ray.tune.result.SHOULD_CHECKPOINT is no longer 'should_checkpoint'")
    if tuple(inspect.signature(TuneController._on_training_result).parameters) != ("self", "trial", "result"):
        problems.append("TuneController._on_training_result is no longer (trial, result)")
    process = inspect.getsource(TuneController._process_trial_result)
    if not (0 <= process.find("callbacks.on_trial_result") < process.find("_checkpoint_trial_if_needed")):
        problems.append("TuneController._process_trial_result no longer calls the callbacks before it "
                        "registers the result's checkpoint")
    if "_schedule_trial_save" not in inspect.getsource(TuneController._checkpoint_trial_if_needed):
        problems.append("TuneController._checkpoint_trial_if_needed no longer saves via _schedule_trial_save")
    if problems:
        raise RayInternalsChanged("schedulers/_ray_private.py: " + "; ".join(problems))


def trial_folder(trial: Any) -> Optional[str]:
    """The trial's folder on its storage (``StorageContext.trial_fs_path``), or None before
    Tune named it (``Trial.init_local_path`` names it when the trial first starts)."""
    storage = getattr(trial, "storage", None)
    if storage is None or not getattr(storage, "trial_dir_name", None):
        return None
    return storage.trial_fs_path


def trial_dir_name(trial: Any) -> Optional[str]:
    storage = getattr(trial, "storage", None)
    return getattr(storage, "trial_dir_name", None) if storage is not None else None


def adopt_checkpoint(trial: Any, path: str, metrics: dict, config: Optional[dict], next_index: int) -> None:
    """Make a restored trial continue from ``path``, a checkpoint it wrote after Tune's last
    snapshot, as if the snapshot had recorded it: the checkpoint result it restarts from
    (see :func:`restart_from`), the config it had then (PBT may have changed it), and
    ``StorageContext.current_checkpoint_index`` (``Trial.on_checkpoint`` keeps it one past the
    newest checkpoint; the trainable names its next checkpoint folder from it, so no folder
    already on disk is overwritten)."""
    from ray.tune import Checkpoint

    checkpoint = Checkpoint(path, filesystem=trial.storage.storage_filesystem)
    restart_from(trial, checkpoint, metrics)
    if config is not None and config != trial.config:
        trial.set_config(config)
    trial.storage.current_checkpoint_index = max(int(trial.storage.current_checkpoint_index), int(next_index))
    trial.run_metadata.last_result = dict(metrics)
    trial.invalidate_json_state()
    trial.run_metadata.invalidate_cache()


def forget_missing_checkpoints(trial: Any) -> list[str]:
    """Drop from a restored trial's checkpoint list (``_CheckpointManager._checkpoint_results``)
    the local checkpoints whose folders are gone; return their paths. Tune deletes checkpoints
    beyond ``num_to_keep`` as new ones arrive; a driver killed after such a deletion and before
    its next snapshot comes back listing them, and the next deletion then stops at the first one
    (``_delete_fs_path`` raises on a missing path): Tune logs "Error handling checkpoint" and
    the older checkpoints are never deleted."""
    manager = trial.run_metadata.checkpoint_manager
    gone = []
    kept = []
    for result in manager._checkpoint_results:
        checkpoint = result.checkpoint
        local = getattr(checkpoint.filesystem, "type_name", None) == "local"
        if local and not os.path.isdir(checkpoint.path) and result is not manager._latest_checkpoint_result:
            gone.append(checkpoint.path)
        else:
            kept.append(result)
    manager._checkpoint_results = kept
    return gone


def latest_checkpoint_path(trial: Any) -> Optional[str]:
    result = trial.latest_checkpoint_result
    if result is None or result.checkpoint is None:
        return None
    return result.checkpoint.path


def ray_pbt_exploits(scheduler: Any) -> int:
    """How many exploits Ray's own ``PopulationBasedTraining`` made (its ``_num_perturbations``
    counter; Ray 2.60 has no public one). The benchmarks compare it with ours."""
    return int(getattr(scheduler, "_num_perturbations", 0))


def set_trial_dir_name(trial: Any, name: str) -> None:
    """Give a restored trial that Tune had not named yet the folder it had before the restore
    (``Trial.init_local_path`` only names a trial whose ``relative_logdir`` is empty)."""
    trial.relative_logdir = name
    trial.storage.trial_dir_name = name
    trial.invalidate_json_state()


@contextlib.contextmanager
def keep_local_result_files():
    """Inside this block, a trial that starts again in this driver keeps its staging copies of
    ``result.json`` / ``progress.csv`` instead of Tune's download of the experiment folder's.

    Tune's loggers (``ray/tune/logger/logger.py``, ``LoggerCallback._restore_from_remote``, called
    by ``log_trial_start``) copy the trial's files from the experiment folder over the staging
    copies whenever a trial with a checkpoint starts, also when it restarts in the same driver
    (a PBT exploit pauses and restarts it). The experiment folder only holds what the last
    experiment snapshot uploaded, so every result the trial reported since then was lost from its
    ``result.json`` (though delivered to the callbacks, MLflow included). Where the staging copy
    exists, this driver wrote it and it is the newest; only a trial without one (the first start
    after a resume: ``orchestrator.reconcile`` prepares the experiment folder's copy) copies the
    experiment folder's, whether or not Tune knows a checkpoint of the trial itself.
    Checked by :func:`verify_keep_local_result_files`."""
    from ray.tune.logger.logger import LoggerCallback

    original = LoggerCallback._restore_from_remote

    def _restore_from_remote(self, file_name, trial):
        local = os.path.join(trial.local_path, file_name)
        if os.path.isfile(local):
            return
        storage = trial.storage
        if getattr(storage.storage_filesystem, "type_name", None) == "local":
            # Tune downloads only for a trial whose own checkpoint it knows (``trial.checkpoint``);
            # a trial restarting from a cloned or adopted checkpoint then began a new, empty file
            # and its earlier results were lost from it (seen in the kill test with PBT). What the
            # experiment folder holds is what orchestrator.reconcile kept for the restart (it
            # removes the file of a trial that starts from scratch), so it is always the start.
            remote = os.path.join(storage.trial_fs_path, file_name)
            if os.path.isfile(remote):
                shutil.copyfile(remote, local)
            return
        return original(self, file_name, trial)

    LoggerCallback._restore_from_remote = _restore_from_remote
    try:
        yield
    finally:
        LoggerCallback._restore_from_remote = original


def verify_keep_local_result_files() -> None:
    from ray.tune.logger.json import JsonLoggerCallback
    from ray.tune.logger.logger import LoggerCallback

    if tuple(inspect.signature(LoggerCallback._restore_from_remote).parameters) != ("self", "file_name", "trial") \
            or "_restore_from_remote" not in inspect.getsource(JsonLoggerCallback.log_trial_start):
        raise RayInternalsChanged("schedulers/_ray_private.py: Tune's loggers no longer restore their "
                                  "files with LoggerCallback._restore_from_remote(file_name, trial)")
