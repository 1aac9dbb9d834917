"""Trial faults the user should understand at a glance: hangs, lost workers, out of memory.

Tune retries a failed trial from its last checkpoint (``max_failures``) and tells the searcher
when it finally fails; what it does not do is notice a trial that hangs (it waits forever) or
say *why* a worker vanished. This module adds both:

* :class:`HangWatchdog`, a driver-side Tune callback: a running trial that reports nothing for
  ``report_timeout_s`` seconds is hung; its worker actor is killed, which Tune treats as any
  other trial failure (retried from the last checkpoint, then marked failed). Killing from the
  driver works whatever the trainable is stuck in (a deadlocked collective, a C extension
  holding the GIL) where a thread inside the worker could not interrupt it.
* :func:`explain_error`, which turns the error text of a failed trial into one line saying what
  most likely happened and what to do (shown in the summary and recorded in MLflow).
"""

from __future__ import annotations

import logging
import os
import pickle
import re
import time
from typing import Any, Callable

from ray.tune import Callback

from orchestrator import _ray_private
from search_algs.errors import TuneorchError

logger = logging.getLogger(__name__)


class HangWatchdog(Callback):
    """Kill the worker of a trial that reports nothing for ``report_timeout_s`` seconds.

    The clock of a trial starts when its worker starts (so setup time before the first report
    counts: choose a timeout above it) and restarts at every result. ``hung`` maps the ids of
    the trials killed for hanging to the reason; :func:`explain_error` and the MLflow tracker
    read it.
    """

    def __init__(self, report_timeout_s: float, clock: Any = time.monotonic):
        if not report_timeout_s > 0:
            raise ValueError(f"report_timeout_s: must be a positive number of seconds, got {report_timeout_s!r}")
        self.report_timeout_s = float(report_timeout_s)
        self.clock = clock
        self.hung: dict[str, str] = {}
        self._last_seen: dict[str, float] = {}

    def __getstate__(self) -> dict:  # Tune pickles callbacks with the experiment: no live clocks
        return {"report_timeout_s": self.report_timeout_s, "hung": dict(self.hung)}

    def __setstate__(self, state: dict) -> None:
        self.__init__(state["report_timeout_s"])
        self.hung.update(state["hung"])

    def on_trial_start(self, iteration: int, trials: list, trial: Any, **info) -> None:
        self._last_seen[trial.trial_id] = self.clock()

    def on_trial_result(self, iteration: int, trials: list, trial: Any, result: dict, **info) -> None:
        self._last_seen[trial.trial_id] = self.clock()

    def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info) -> None:
        self._last_seen.pop(trial.trial_id, None)

    on_trial_error = on_trial_recover = on_trial_complete

    def on_step_begin(self, iteration: int, trials: list, **info) -> None:
        now = self.clock()
        for trial in trials:
            since = self._last_seen.get(trial.trial_id)
            if since is None or trial.status != "RUNNING" or now - since <= self.report_timeout_s:
                continue
            self._last_seen.pop(trial.trial_id)
            reason = (f"hung: reported nothing for {now - since:.0f} s (report_timeout_s="
                      f"{self.report_timeout_s:g}); its worker was killed")
            self.hung[trial.trial_id] = reason
            logger.warning("trial %s %s; Tune retries it from its last checkpoint if max_failures allows",
                           trial.trial_id, reason)
            self._kill(trial)

    @staticmethod
    def _kill(trial: Any) -> None:
        import ray

        # Tune keeps the actor handle on the trial's temporary state (Ray 2.60; checked by
        # tests/test_faults.py): killing it fails the trial like a lost worker would.
        actor = getattr(getattr(trial, "temporary_state", None), "ray_actor", None)
        if actor is None:
            logger.warning("trial %s is hung but has no worker handle to kill; it keeps waiting", trial.trial_id)
            return
        ray.kill(actor, no_restart=True)


_EXPLANATIONS = (
    (re.compile(r"CUDA out of memory|torch\.cuda\.OutOfMemoryError|OutOfMemoryError|"
                r"running low on memory|MemoryError|can't allocate memory|Unable to allocate|"
                r"std::bad_alloc", re.I),
     "out of memory: the trial asked for more memory than its node had; lower the batch or model "
     "size, or give each trial more (resources.memory / resources.gpu) so fewer share a node"),
    (re.compile(r"SIGKILL|exit code -9|exit_code=-9|killed by signal 9|The actor died unexpectedly|"
                r"worker (process )?(has )?died|ActorDiedError|Worker unexpectedly exits", re.I),
     "the trial's worker process died (killed: most often the kernel's out-of-memory killer, Ray's "
     "memory monitor or a lost node); see `dmesg` and the raylet logs under the Ray session directory"),
)


def explain_error(message: str | None, hung_reason: str | None = None) -> str | None:
    """One line saying what most likely caused a trial failure, or ``None`` when the error
    text speaks for itself (an exception raised by the trainable)."""
    if hung_reason:
        return f"{hung_reason}; raise report_timeout_s if the trial is only slow"
    if not message:
        return None
    for pattern, explanation in _EXPLANATIONS:
        if pattern.search(message):
            return explanation
    return None


class ResumeError(TuneorchError, RuntimeError):
    """An experiment cannot be resumed as it is; the message says what to do."""


STATE_PATTERN = "experiment_state-*.json"


def repair_experiment_state(experiment_path: str, ray_temp_roots: list[str] | None = None,
                            trusted: Callable[[str], bool] | None = None) -> str | None:
    """Make the newest Tune experiment snapshot whole and self-consistent before a resume; return
    the staging folder whose copy was put back, or ``None`` when nothing needed repair.

    A snapshot is three files with one session suffix: ``experiment_state-<s>.json`` (the trials),
    ``search_gen_state-<s>.json`` (a pickle, despite its name, holding how many trials the search
    has created) and ``searcher-state-<s>.pkl`` (the searcher). Tune rewrites them in place, first
    in the driver's staging folder (under Ray's session directory), then copies them one by one
    into the experiment folder, from a background thread. A driver killed meanwhile leaves the
    experiment folder with

    * a file cut off: the resume would not know which trials had finished;
    * files from two moments: seen here, a search counting six trials beside a trial list of five,
      so the resume never ran the sixth;
    * the whole snapshot one step behind: a trial started just before the crash is not in it, so
      the resume creates it again under a new id (and MLflow gets a run for each).

    The staging copy is complete and at least as new (Tune writes it before copying it), so when
    it differs from the experiment folder's and is itself consistent, it is put back. Local
    experiment folders only.
    """
    import glob
    import shutil
    import tempfile

    if "://" in experiment_path and not experiment_path.startswith("file://"):
        return None
    folder = experiment_path.removeprefix("file://")
    _keep_tuner_state_whole(folder)
    snapshots = sorted(glob.glob(os.path.join(folder, STATE_PATTERN)))
    if not snapshots:
        return None
    newest = snapshots[-1]
    session = os.path.basename(newest)[len("experiment_state-"):-len(".json")]
    roots = ray_temp_roots or _ray_private.ray_temp_roots()
    staged = [d for d in staging_folders(folder, roots) if os.path.isfile(os.path.join(d, os.path.basename(newest)))]
    if trusted is not None:
        # A staging copy written after the last seal (the driver died between Tune writing it and
        # the sealing callback) is not put back: resume would refuse it. The experiment folder's
        # own, sealed copy then stands; it lacks only trials that had not started yet.
        staged = [d for d in staged if trusted(d)]
    problems = {d: _snapshot_problem(d, session) for d in staged}
    problem = _snapshot_problem(folder, session)
    # A consistent staging copy wins; a whole but inconsistent one only replaces a cut-off file.
    staged = [d for d in staged if problems[d] is None] or (
        [d for d in staged if not problems[d].startswith("cut off")] if problem and problem.startswith("cut off")
        else [])
    staged.sort(key=lambda d: os.path.getmtime(os.path.join(d, os.path.basename(newest))))
    if not staged:
        if problem is None:
            return None
        if problem.startswith("cut off"):
            older = f" the previous snapshot {os.path.basename(snapshots[-2])} (trials since then run again)," \
                if len(snapshots) > 1 else ""
            raise ResumeError(
                f"resume: {newest} was cut off when the driver died while writing it, and no intact copy "
                f"is left in Ray's session folders ({', '.join(roots)}); to resume from{older or ' scratch'} "
                f"delete that file and run the resume again"
            )
        logger.warning("resume: the snapshot in %s is %s, and no intact copy is left in Ray's session "
                       "folders (%s); the resume may skip a trial or run one twice", folder, problem,
                       ", ".join(roots))
        return None
    source = staged[-1]
    files = _snapshot_files(source, session)
    if problem is None and all(_same_bytes(os.path.join(source, f), os.path.join(folder, f)) for f in files):
        return None
    for f in files:
        fd, tmp = tempfile.mkstemp(dir=folder, prefix=".repair-")
        os.close(fd)
        shutil.copyfile(os.path.join(source, f), tmp)
        os.replace(tmp, os.path.join(folder, f))
    logger.warning("resume: the snapshot in %s was %s when the driver died; put back Tune's staging "
                   "copy from %s", folder, problem or "behind Tune's staging copy", source)
    return source


TUNER_FILE = "tuner.pkl"
TUNER_BACKUP = "tuner.pkl.whole"


def _keep_tuner_state_whole(folder: str) -> None:
    """``Tuner.restore`` rewrites ``tuner.pkl`` in place: a driver killed while a resume writes it
    leaves it empty, and no later resume could read the experiment. Each resume therefore keeps a
    copy of the whole file, and puts it back when the file is cut off."""
    import shutil
    import tempfile

    path, backup = os.path.join(folder, TUNER_FILE), os.path.join(folder, TUNER_BACKUP)
    if not os.path.exists(path) and not os.path.exists(backup):
        return
    whole, source, target = _pickle_whole(path), path, backup
    if not whole:
        if not _pickle_whole(backup):
            return
        source, target = backup, path
        logger.warning("resume: %s was cut off when the driver died; put back its last whole copy", path)
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=".repair-")
    os.close(fd)
    shutil.copyfile(source, tmp)
    os.replace(tmp, target)


def _pickle_whole(path: str) -> bool:
    try:
        with open(path, "rb") as f:
            _OpaqueUnpickler(f).load()
    except OSError:
        return False
    except (EOFError, pickle.UnpicklingError):
        return False
    except Exception:  # noqa: BLE001 - readable to its end for all we can tell
        return True
    return True


def staging_folders(experiment_path: str, ray_temp_roots: list[str] | None = None) -> list[str]:
    """Tune's driver staging folders of this experiment left in Ray's session folders (one per
    driver that ran it), oldest first: ``<root>/session_*/artifacts/*/<name>/driver_artifacts``.
    The driver writes each trial's ``result.json`` there at every result; the experiment folder
    gets a copy only with each snapshot upload."""
    folder = experiment_path.removeprefix("file://").rstrip("/")
    return _ray_private.driver_staging_folders(os.path.basename(folder), ray_temp_roots)


def _snapshot_files(folder: str, session: str) -> list[str]:
    """The snapshot files of ``session`` in ``folder`` (trials, search, searcher, callbacks)."""
    return sorted(f for f in os.listdir(folder)
                  if f.endswith((f"-{session}.json", f"-{session}.pkl")) and os.path.isfile(os.path.join(folder, f)))


def _snapshot_problem(folder: str, session: str) -> str | None:
    """What is wrong with the snapshot of ``session`` in ``folder``, or ``None``."""
    import json

    try:
        with open(os.path.join(folder, f"experiment_state-{session}.json"), encoding="utf-8") as f:
            trials = len(json.load(f)["trial_data"])
    except (OSError, ValueError, KeyError, TypeError):
        return "cut off (experiment_state unreadable)"
    search_state = os.path.join(folder, f"search_gen_state-{session}.json")
    if not os.path.exists(search_state):
        return None  # no search generator state: nothing to be consistent with
    try:
        with open(search_state, "rb") as f:
            counter = _OpaqueUnpickler(f).load()["counter"]
    except (EOFError, pickle.UnpicklingError):
        return "cut off (search_gen_state ends early)"
    except Exception:  # noqa: BLE001 - unreadable here for another reason: not judged
        return None
    if counter != trials:
        return f"inconsistent (the search had created {counter} trials, the trial list holds {trials})"
    return None


class _Opaque:
    """Stands in for every class in a Tune pickle: the counter is a plain int and the user's
    trainable (referenced by the pickled Experiment) need not be importable here."""

    def __new__(cls, *args: Any, **kwargs: Any) -> "_Opaque":
        return object.__new__(cls)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        pass

    def __setstate__(self, state: Any) -> None:
        pass

    def __call__(self, *args: Any, **kwargs: Any) -> "_Opaque":
        return _Opaque()


class _OpaqueUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        return _Opaque


def _same_bytes(a: str, b: str) -> bool:
    try:
        with open(a, "rb") as fa, open(b, "rb") as fb:
            return fa.read() == fb.read()
    except OSError:
        return False


def _is_json(path: str) -> bool:
    import json

    try:
        with open(path, encoding="utf-8") as f:
            json.load(f)
        return True
    except (OSError, ValueError):
        return False
