"""Make a resumed experiment agree with what really happened before its driver died.

Tune restores an experiment from its last snapshot (the trial list, each trial's newest
checkpoint, the searcher). Everything a trial did after that snapshot is on disk, though: the
checkpoints its worker wrote into its folder, and the results the driver appended to its
``result.json`` in Tune's staging folder (``/tmp/ray/session_*/artifacts/.../driver_artifacts``,
uploaded to the experiment folder only with the next snapshot). Left alone, a resume

* restarts such a trial from an older checkpoint (or from scratch) although it has a newer one;
* keeps the results it is about to report again in ``result.json`` (the export then holds a
  step twice), or loses the ones reported since the last upload;
* leaves the folder and the MLflow child run of a trial the snapshot does not know (a trial
  Tune will create again under a new id) beside the new one.

:func:`reconcile_restored_trials` runs inside Tune's restore, on the trials read back from
the snapshot, before any of them reaches the scheduler or starts
(``schedulers._ray_private.exact_resume_hooks``). For each trial it adopts the newest
checkpoint the trial wrote into its own folder after the snapshot (with the config it had
then: PBT may have changed it), gives a trial that was named after the snapshot its existing
folder back, and writes the freshest ``result.json``/``progress.csv`` into the experiment
folder cut after the step the trial restarts from (the steps after it are reported again).
Folders of trials the snapshot does not hold are removed, and so are their MLflow child runs
(through the tracker's outbox, so a replay lands the same end state). Since the controller
snapshots before it registers a trial's first checkpoint (the other half of the hooks), such a
trial had no checkpoint: the searcher, restored to the same snapshot, creates it again, and it
would have started from scratch anyway.

Local experiment folders only; on remote storage the resume is Tune's own.
"""

from __future__ import annotations

import copy
import json
import logging
import os
import re
import shutil
import tempfile
from typing import Any, Callable

from schedulers import _ray_private

logger = logging.getLogger(__name__)

RESULT_FILE = "result.json"
PROGRESS_FILE = "progress.csv"
_CHECKPOINT = re.compile(r"^checkpoint_(\d+)$")
_TRIAL_FILES = ("params.json", RESULT_FILE)


def make_reconciler(experiment_path: str, tracker: Any = None,
                    ray_temp_roots: list[str] | None = None) -> Callable[[Any, list], list]:
    """The ``on_restored`` hook for :func:`schedulers._ray_private.exact_resume_hooks`."""

    def on_restored(controller: Any, trials: list) -> list:
        try:
            reconcile_restored_trials(experiment_path, trials, tracker, ray_temp_roots)
        except Exception:  # noqa: BLE001 - reconciling is a repair: Tune's own resume still works
            logger.exception("resume: could not reconcile the trials of %s with their folders; "
                             "resuming from Tune's snapshot as it is", experiment_path)
        return trials

    return on_restored


def reconcile_restored_trials(experiment_path: str, trials: list, tracker: Any = None,
                              ray_temp_roots: list[str] | None = None) -> dict:
    """Adopt newer checkpoints and folders for ``trials`` (Tune's restored Trial objects, changed
    in place), remove orphan folders and MLflow children. Returns what was done:
    ``{"adopted": {trial_id: checkpoint folder}, "renamed": {trial_id: folder},
    "orphans": [folder names], "dropped_runs": [trial ids], "kept_results": {trial_id: n}}``.

    The invariant kept with the tracker: a trial's history is the sequence of its reported
    results, numbered 0, 1, ...; its final ``result.json`` holds each number once, in order, and
    MLflow holds each number once (the tracker's outbox records the number with each result).
    A trial that runs again continues its history after the ``n`` rows its ``result.json``
    keeps here (``kept_results``; told to the tracker as ``tracker.rewind(trial_id, n)``); the
    results it reports again (those after the checkpoint it restarts from) get the numbers they
    had, and the tracker does not record a number twice. Steps do not identify results: a PBT
    clone inherits its donor's ``training_iteration``, so a trial's steps repeat and jump."""
    from orchestrator.faults import staging_folders

    done: dict = {"adopted": {}, "renamed": {}, "orphans": [], "dropped_runs": [], "kept_results": {}}
    by_id = {t.trial_id: t for t in trials}
    if tracker is not None and hasattr(tracker, "drop_trials_except"):
        done["dropped_runs"] = tracker.drop_trials_except(set(by_id))
    if "://" in experiment_path and not experiment_path.startswith("file://"):
        return done
    folder = experiment_path.removeprefix("file://")
    if not trials or getattr(trials[0].storage.storage_filesystem, "type_name", "local") != "local":
        return done
    staging = staging_folders(folder, ray_temp_roots)
    names = {n for n in os.listdir(folder) if _is_trial_folder(os.path.join(folder, n))}
    names |= {n for s in staging for n in os.listdir(s) if _is_trial_folder(os.path.join(s, n))}

    owned_by_name = {_ray_private.trial_dir_name(t): t for t in trials if _ray_private.trial_dir_name(t)}
    keep_paths = {os.path.normpath(p) for p in (_ray_private.latest_checkpoint_path(t) for t in trials) if p}
    for name in sorted(names):
        source = _freshest(name, folder, staging, RESULT_FILE)
        rows = _read_rows(source) if source else []
        logger.debug("resume: %s: %d results in %s", name, len(rows), source)
        trial = owned_by_name.get(name)
        if trial is None:
            tid = next((r.get("trial_id") for r in rows if r.get("trial_id")), None)
            if tid is None:  # never reported: the folder name is all there is
                matches = [t for i, t in by_id.items() if re.search(rf"(^|_){re.escape(i)}(_|$)", name)]
                tid = matches[0].trial_id if len(matches) == 1 else None
            candidate = by_id.get(tid)
            named = _ray_private.trial_dir_name(candidate) if candidate is not None else None
            if candidate is not None and (not named or _stand_in_name(named, name, folder, staging)):
                # Named after the snapshot: it gets its folder (and the checkpoints in it) back.
                if named:
                    owned_by_name.pop(named, None)
                    for copy_path in [os.path.join(d, named) for d in [folder, *staging]]:
                        if os.path.isdir(copy_path) and not os.listdir(copy_path):
                            os.rmdir(copy_path)
                _ray_private.set_trial_dir_name(candidate, name)
                owned_by_name[name] = trial = candidate
                done["renamed"][candidate.trial_id] = name
        if trial is None and not any(os.path.isdir(os.path.join(d, name)) for d in [folder, *staging]):
            continue  # a stand-in folder removed above
        if trial is None:
            path = os.path.join(folder, name)
            if any(p.startswith(os.path.normpath(path) + os.sep) for p in keep_paths):
                continue  # holds a checkpoint a restored trial restarts from (a PBT donor's)
            # Its staging copies too: a resume in the same Ray session uploads that folder again.
            for copy_path in [path, *(os.path.join(s, name) for s in staging)]:
                if os.path.isdir(copy_path):
                    shutil.rmtree(copy_path, ignore_errors=True)
            done["orphans"].append(name)
            logger.warning("resume: removed trial folder %s: its trial is not in Tune's snapshot "
                           "(%d results; the search creates it again)", name, len(rows))
            continue
        _ray_private.forget_missing_checkpoints(trial)
        adopted = _adopt_newest_checkpoint(trial, os.path.join(folder, name), rows)
        if adopted:
            done["adopted"][trial.trial_id] = adopted
        kept = _put_back_results(trial, name, folder, staging, rows)
        if kept is not None:
            done["kept_results"][trial.trial_id] = kept
            if tracker is not None and hasattr(tracker, "rewind"):
                tracker.rewind(trial.trial_id, kept)
    if done["adopted"] or done["renamed"] or done["orphans"]:
        logger.warning("resume: reconciled Tune's snapshot with the trial folders: adopted newer "
                       "checkpoints %s, folders %s, removed orphan folders %s, MLflow runs of %s",
                       done["adopted"], done["renamed"], done["orphans"], done["dropped_runs"])
    logger.info("resume: results each trial's history keeps: %s", done["kept_results"])
    return done


def _stand_in_name(named: str, name: str, folder: str, staging: list[str]) -> bool:
    """Whether ``named`` is the empty stand-in that Tune's restore gave a trial its snapshot
    had not named: ``Trial.init_local_path`` (run by ``TuneController._restore_trials``) finds
    the trial's real folder ``name`` in the staging folder and picks ``<name>_<4 hex>``."""
    if not re.fullmatch(re.escape(name) + r"_[0-9a-f]{4}", named):
        return False
    return all(not os.listdir(p) for p in (os.path.join(d, named) for d in [folder, *staging]) if os.path.isdir(p))


def _is_trial_folder(path: str) -> bool:
    if not os.path.isdir(path):
        return False
    try:
        entries = os.listdir(path)
    except OSError:
        return False
    # An empty folder is one Tune made when the trial started, killed before anything was written
    # into it: left alone, the restored trial would be named into a copy (``<name>_<4 hex>``).
    return not entries or any(e in _TRIAL_FILES or _CHECKPOINT.match(e) for e in entries)


def _freshest(name: str, folder: str, staging: list[str], file_name: str) -> str | None:
    """The freshest copy of ``<trial folder>/<file_name>``: the one holding the most whole lines,
    then the newest. The staging copies are written at every result, the experiment folder's at
    each upload; a driver killed during an upload leaves the experiment folder's copy cut off
    though newest (seen in the kill test: an empty ``result.json`` won and the trial's history
    restarted at 0). Between two resumes a trial's files only grow (a resume cuts them in the
    experiment folder and removes the staging copies), so more whole lines means fresher."""
    paths = [p for p in (os.path.join(d, name, file_name) for d in [folder, *staging]) if os.path.isfile(p)]
    if not paths:
        return None
    return max(paths, key=lambda p: (_whole_lines(p), os.path.getmtime(p), os.path.getsize(p)))


def _whole_lines(path: str) -> int:
    try:
        with open(path, "rb") as f:
            return f.read().count(b"\n")
    except OSError:
        return 0


def _read_rows(path: str) -> list[dict]:
    rows = []
    try:
        with open(path, encoding="utf-8") as f:
            for line in f:
                if not line.endswith("\n"):
                    break  # torn by the kill
                try:
                    row = json.loads(line)
                except ValueError:
                    break
                if isinstance(row, dict):
                    rows.append(row)
    except OSError:
        return []
    return rows


def _checkpoint_index(name: Any) -> int | None:
    match = _CHECKPOINT.match(name) if isinstance(name, str) else None
    return int(match.group(1)) if match else None


def _adopt_newest_checkpoint(trial: Any, trial_path: str, rows: list[dict]) -> str | None:
    """Restart ``trial`` from the newest checkpoint it registered after the snapshot."""
    start = max(0, int(getattr(trial.storage, "current_checkpoint_index", 0) or 0))
    on_disk = [i for i in (_checkpoint_index(e) for e in os.listdir(trial_path)) if i is not None] \
        if os.path.isdir(trial_path) else []
    best = None
    for row in rows:
        index = _checkpoint_index(row.get("checkpoint_dir_name"))
        if index is not None and index >= start and os.path.isdir(os.path.join(trial_path, row["checkpoint_dir_name"])):
            best = row
    if best is None:
        return None
    path = os.path.join(trial_path, best["checkpoint_dir_name"])
    known = _ray_private.latest_checkpoint_path(trial)
    if known and os.path.normpath(known) == os.path.normpath(path):
        return None
    metrics = {k: v for k, v in best.items() if k != "config"}
    config = _merged_config(trial.config, best.get("config"))
    _ray_private.adopt_checkpoint(trial, path, metrics, config, max(on_disk, default=-1) + 1)
    return best["checkpoint_dir_name"]


def _merged_config(current: dict, reported: Any) -> dict | None:
    """``current`` with the leaves that ``reported`` (the config as the trial had it at that
    result, read from JSON) holds differently; values written redacted are not taken."""
    from orchestrator.redaction import REDACTED

    if not isinstance(reported, dict):
        return None
    merged = copy.deepcopy(current)
    changed = False

    def walk(into: dict, source: dict) -> None:
        nonlocal changed
        for key, value in source.items():
            if key not in into:
                continue
            if isinstance(value, dict) and isinstance(into[key], dict):
                walk(into[key], value)
            elif value != REDACTED and _as_json(value) != _as_json(into[key]):
                into[key] = value
                changed = True

    walk(merged, reported)
    return merged if changed else None


def _as_json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, default=str)


def _put_back_results(trial: Any, name: str, folder: str, staging: list[str], rows: list[dict]) -> int | None:
    """Write the freshest ``result.json`` (and ``progress.csv``) into the experiment folder, cut
    after the result of the checkpoint the trial restarts from, and remove the staging copies:
    Tune copies the experiment folder's files into its staging folder when a trial restarts
    from a checkpoint (``LoggerCallback._restore_from_remote``) and appends to them. Returns how
    many results the trial's history keeps (its next result is that number), ``None`` for a
    trial that does not run again."""
    if trial.status == "TERMINATED":
        return None  # not run again: its files are whole
    known = _ray_private.latest_checkpoint_path(trial)
    trial_path = os.path.normpath(os.path.join(folder, name))
    stale = [os.path.join(s, name, f) for s in staging for f in (RESULT_FILE, PROGRESS_FILE)]
    if not known:
        # From scratch: its history starts again, and its files with it (the restart copies the
        # experiment folder's files when it has no staging copy).
        _remove(stale + [os.path.join(trial_path, f) for f in (RESULT_FILE, PROGRESS_FILE)])
        return 0
    kept = rows
    if os.path.dirname(os.path.normpath(known)) == trial_path:
        ckpt = os.path.basename(os.path.normpath(known))
        cut = max((i for i, r in enumerate(rows) if r.get("checkpoint_dir_name") == ckpt), default=None)
        if cut is not None:
            kept = rows[: cut + 1]
    # else: from another trial's checkpoint (a PBT exploit the snapshot holds): the trial's own
    # results all stay, the clone's follow them.
    _write_if_changed(os.path.join(trial_path, RESULT_FILE),
                      "".join(json.dumps(r) + "\n" for r in kept))
    progress = _freshest(name, folder, staging, PROGRESS_FILE)
    if progress:
        with open(progress, encoding="utf-8") as f:
            lines = [ln for ln in f.read().splitlines(keepends=True) if ln.endswith("\n")]
        if lines and len(lines) - 1 >= len(kept):
            _write_if_changed(os.path.join(trial_path, PROGRESS_FILE), "".join(lines[: len(kept) + 1]))
    for extra in ("params.json", "params.pkl"):
        target = os.path.join(trial_path, extra)
        source = _freshest(name, folder, staging, extra)
        if source and not os.path.exists(target):
            shutil.copyfile(source, target)
    # The restart copies the experiment folder's files (a resume in the killed driver's Ray
    # session would otherwise find its uncut staging copies and append to them).
    _remove([p for p in stale if os.path.normpath(os.path.dirname(p)) != trial_path])
    return len(kept)


def _remove(paths: list[str]) -> None:
    for path in paths:
        if os.path.isfile(path):
            os.remove(path)


def _write_if_changed(path: str, text: str) -> None:
    try:
        with open(path, encoding="utf-8") as f:
            if f.read() == text:
                return
    except OSError:
        pass
    os.makedirs(os.path.dirname(path), exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=os.path.dirname(path), prefix=".reconcile-")
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(text)
    os.replace(tmp, path)
