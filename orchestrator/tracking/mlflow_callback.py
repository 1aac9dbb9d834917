"""MLflow tracking of a tuning run as a Ray Tune callback: one parent run, one child run per trial.

Layout in MLflow: one experiment per study (``experiment_name``); one parent run per tuning run
(tagged ``tuneorch.run_uid``); one child run per trial (tags ``mlflow.parentRunId``, ``trial_id``,
``trial_uid``; run name = trial id) holding the trial's flattened config as params (``a/b`` keys,
logged once), every numeric reported metric with ``step = training_iteration`` and its final
status.

What is different from Ray's own ``MLflowLoggerCallback``:

* Tune's hooks never wait on HTTP. They append one JSON line to a local outbox (``outbox.py``);
  a sender thread (``sender.py``) delivers it with ``log_batch``. A tracking-server outage only
  delays records; a driver crash loses nothing that a hook had written (``fsync=True`` also covers
  a machine crash, but for the records of the group ``fdatasync`` in flight, a few ms), and the next
  ``MLflowTracking`` on the same ``outbox_dir`` delivers the rest.
* Replays are idempotent: client-side timestamps, child runs found again by ``trial_uid``.
* A resumed tuning run (same ``outbox_dir``) finds its parent and children instead of duplicating
  them, also when Tune hands the hooks an unpickled copy of this callback (``Tuner.restore``).
* A config that changes later (PBT) does not crash: params keep their first value and each change
  is a tag ``config_history/<training_iteration>`` holding the changed keys as JSON.
* Non-numeric reported values (strings, lists, tensors, ``None``, booleans) are skipped.

Side effect: ``start()`` sets ``MLFLOW_HTTP_REQUEST_MAX_RETRIES=2``,
``MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR=1``, ``MLFLOW_HTTP_REQUEST_TIMEOUT=30`` and
``MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT=true`` in this process unless they are already set
(``MLFLOW_ENV_DEFAULTS``). MLflow reads them per call for every client in the process; there is
no per-client setting. Without them one call to a dead server blocks the sender ~244 s; the
sender retries on its own anyway.
"""

from __future__ import annotations

import atexit
import json
import logging
import os
import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import Any, Callable, TypeVar

from ray.tune import Callback

from orchestrator._ray_private import reported_result
from orchestrator.faults import explain_error
from orchestrator.outcome import STOP_REASON_TAG, nonfinite_failure, stop_reason_of
from orchestrator.redaction import REDACTED, is_secret_name, redact_config

from orchestrator.tracking.outbox import (
    STATE_FILE,
    CommitLog,
    OutboxLock,
    OutboxWriter,
    RejectLog,
    read_json,
    read_records,
    write_json_atomic,
)
from orchestrator.tracking.sender import (
    MAX_PARAM_VALUE_LENGTH,
    MAX_PARAMS_PER_BATCH,
    MAX_TAG_VALUE_LENGTH,
    Sender,
    SenderStats,
    as_metric_value,
    clean_key,
    create_unique_run,
    is_permanent,
    runs_tagged,
)
from search_algs.errors import TuneorchError

logger = logging.getLogger(__name__)

RUN_UID_TAG = "tuneorch.run_uid"
STATUSES = ("FINISHED", "FAILED", "KILLED")

#: Keys of a Tune result that are bookkeeping, not metrics (``training_iteration`` is the step).
SKIPPED_RESULT_KEYS = frozenset({
    "config", "done", "training_iteration", "trial_id", "experiment_id", "experiment_tag", "date",
    "timestamp", "pid", "hostname", "node_ip", "should_checkpoint", "checkpoint_dir_name",
    "iterations_since_restore", "time_since_restore", "timesteps_since_restore",
})

#: Set in this process by start() unless already set (MLflow reads them per call, process-wide).
MLFLOW_ENV_DEFAULTS = {
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "2",   # default 7: ~244 s blocked in one call
    "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
    "MLFLOW_HTTP_REQUEST_TIMEOUT": "30",      # default 120
    # set_terminated() otherwise prints two "View run" lines and costs an extra GET per run
    "MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT": "true",
}


class TrackingError(TuneorchError, RuntimeError):
    """Tracking cannot start or go on as configured."""


class TrackingUnavailableError(TrackingError):
    """The tracking server did not answer within the start timeout."""


def default_tracking_uri(base_dir: str) -> str:
    """``sqlite:///<abs base_dir>/mlflow.db`` (MLflow 3's default store; creates ``base_dir``)."""
    base = os.path.abspath(os.path.expanduser(base_dir))
    os.makedirs(base, exist_ok=True)
    return f"sqlite:///{base}/mlflow.db"


def flatten_params(config: Any, prefix: str = "") -> dict[str, str]:
    """Nested dicts become ``a/b`` keys; every value becomes its ``str`` (cut to 6000 chars).

    Values under secret-looking names (``api_key``, ``password``...) become ``***``
    (:mod:`orchestrator.redaction`): the trainable gets them, the records do not.
    """
    out: dict[str, str] = {}
    if not isinstance(config, dict):
        return out
    for key, value in config.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            out.update(flatten_params(value, f"{name}/"))
        else:
            out[name] = REDACTED if is_secret_name(name) and value not in (None, "") \
                else str(value)[:MAX_PARAM_VALUE_LENGTH]
    return out


def flatten_metrics(result: dict, prefix: str = "", skip: frozenset = SKIPPED_RESULT_KEYS
                    ) -> dict[str, float]:
    """Numeric values of a Tune result as ``a/b`` keys; bookkeeping keys and non-numbers left out."""
    out: dict[str, float] = {}
    for key, value in result.items():
        if not prefix and key in skip:
            continue
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(flatten_metrics(value, f"{name}/", skip))
            continue
        number = as_metric_value(value)
        if number is not None:
            out[name] = number
    return out


def _now_ms() -> int:
    return int(time.time() * 1000)


T = TypeVar("T")


def _with_retries(what: str, fn: Callable[[], T], timeout_s: float, uri: str) -> T:
    deadline = time.monotonic() + timeout_s
    delay = 0.5
    while True:
        try:
            return fn()
        except TrackingError:
            raise
        except Exception as exc:
            if is_permanent(exc):
                raise
            if time.monotonic() + delay > deadline:
                raise TrackingUnavailableError(
                    f"tracking_uri: {what} on {uri!r} failed for {timeout_s:.0f} s "
                    f"(last error: {type(exc).__name__}: {str(exc)[:500]}); start the MLflow "
                    f"server, fix the URI, or use default_tracking_uri(base_dir) for a local store"
                ) from exc
            logger.warning("%s on %s failed (%s); retrying in %.1f s", what, uri, exc, delay)
            time.sleep(delay)
            delay = min(delay * 2, 10.0)


@dataclass
class _Session:
    """What one process holds for one outbox directory; shared by every tracker on that directory."""

    outbox_dir: str
    tracking_uri: str
    experiment_name: str
    experiment_id: str
    parent_run_id: str
    run_uid: str
    lock: OutboxLock
    writer: OutboxWriter
    sender: Sender
    closed: bool = False
    finished: bool = False
    # {trial id: last step} recorded by an earlier process on this outbox: the fallback rule
    # for a resumed trial the reconciler said nothing about (remote storage): a result whose
    # step is not past it is a re-run, not recorded again.
    recorded_steps: dict = field(default_factory=dict)
    # {trial id: results recorded} (ordinals 0..n-1, counted over every process on this outbox).
    recorded_results: dict = field(default_factory=dict)
    # {trial id: ordinal of its next result}, set by rewind() (the resume's reconciler) and
    # counted up by each result in this process.
    next_result: dict = field(default_factory=dict)


_SESSIONS: dict[str, _Session] = {}
_SESSIONS_LOCK = threading.RLock()


@atexit.register
def _stop_open_sessions() -> None:
    """At interpreter exit, stop the sender and fdatasync threads of sessions still open (a run
    that raised before ``finish``, a tracker never finished). They are daemon threads that wake up
    on their own (the sender every second): one running while the interpreter tears its modules
    down can crash the process (a segfault after the last line of a pytest run was seen once).
    Their records are in the outbox: the next ``start()`` on it delivers them."""
    with _SESSIONS_LOCK:
        sessions = list(_SESSIONS.values())
    for session in sessions:
        try:
            session.sender.stop(2.0)
            session.writer.close()
        except Exception:  # noqa: BLE001 - exiting: nothing left to report to
            pass


@dataclass
class _TrialSeen:
    params: dict[str, str]
    ended: bool = False
    results: int = 0


def _steps_recorded(outbox_path: str) -> tuple[dict[str, int], dict[str, int]]:
    """``({trial: last step}, {trial: results recorded})`` of an existing outbox (empty for a
    new one).

    A trial's results are identified by their ordinal ``n`` in the trial's history (the row of
    its ``result.json``), not by their step: a PBT clone inherits its donor's
    ``training_iteration``, so one trial's steps repeat and jump. Every ordinal below the
    count was recorded exactly once (records of an older outbox without ``n`` count in order);
    a ``drop`` forgets the trial."""
    steps: dict[str, int] = {}
    results: dict[str, int] = {}
    for _, record, _ in read_records(outbox_path, 0, max_records=2**62):
        kind = (record or {}).get("k")
        trial = (record or {}).get("trial")
        if kind == "drop":
            steps.pop(trial, None)
            results.pop(trial, None)
        elif kind == "metrics" and trial is not None:
            if isinstance(record.get("step"), int):
                steps[trial] = max(steps.get(trial, 0), record["step"])
            n = record.get("n")
            n = n if isinstance(n, int) and not isinstance(n, bool) else results.get(trial, 0)
            results[trial] = max(results.get(trial, 0), n + 1)
    return steps, results


class MLflowTracking(Callback):
    """Records a tuning run in MLflow without blocking Tune's driver loop.

    Args:
        tracking_uri: ``http://host:port`` of an MLflow server, or a database URI such as
            ``default_tracking_uri(base_dir)``.
        experiment_name: the study; created if missing.
        run_name: name of the parent run (MLflow picks one when ``None``; on resume the run
            keeps the name it was created with).
        outbox_dir: local directory for the outbox; one per tuning run. Reusing it resumes the
            same parent run (and its children).
        params: logged on the parent run (nested dicts flattened to ``a/b``).
        tags: set on the parent run.
        fsync: make every record durable (``fdatasync``), so it survives a machine crash. Each
            record is handed to the OS before the hook returns (it survives a crash of the
            driver process); a background thread of the outbox syncs what was written (group
            commit: the hook no longer waits 2-4 ms for its own ``fdatasync``), and the sender
            delivers only records already on disk. A machine crash can lose the records of the
            ``fdatasync`` in flight (a few ms). With ``False`` nothing is synced.
        drain_timeout_s: how long ``finish()`` waits for the outbox to be delivered.
        start_timeout_s: how long ``start()`` retries reaching the tracking server.
        max_backoff_s: longest pause between the sender's retries during an outage.
        linger_s: the sender waits this long after new records arrive, to batch them.

    Use: ``start()`` on the driver before ``Tuner.fit`` (hooks call it too if it was not called),
    pass the object in ``RunConfig(callbacks=[...])``, then ``finish(...)`` after the fit.
    """

    def __init__(self, tracking_uri: str, experiment_name: str, *, run_name: str | None = None,
                 outbox_dir: str, params: dict | None = None, tags: dict | None = None,
                 fsync: bool = True, drain_timeout_s: float = 60.0, start_timeout_s: float = 60.0,
                 max_backoff_s: float = 30.0, linger_s: float = 0.2):
        if not isinstance(tracking_uri, str) or not tracking_uri:
            raise ValueError(f"tracking_uri: must be a non-empty string, got {tracking_uri!r}; "
                             f"use default_tracking_uri(base_dir) for a local store")
        if not isinstance(experiment_name, str) or not experiment_name.strip():
            raise ValueError(f"experiment_name: must be a non-empty string, got {experiment_name!r}")
        if not isinstance(outbox_dir, (str, os.PathLike)) or not str(outbox_dir):
            raise ValueError(f"outbox_dir: must be a directory path, got {outbox_dir!r}")
        for name, value in (("params", params), ("tags", tags)):
            if value is not None and not isinstance(value, dict):
                raise ValueError(f"{name}: must be a dict or None, got {type(value).__name__}")
        for name, value in (("drain_timeout_s", drain_timeout_s), ("start_timeout_s", start_timeout_s),
                            ("max_backoff_s", max_backoff_s), ("linger_s", linger_s)):
            if not isinstance(value, (int, float)) or value < 0:
                raise ValueError(f"{name}: must be a number >= 0, got {value!r}")
        self.tracking_uri = tracking_uri
        self.experiment_name = experiment_name
        self.run_name = run_name
        self.outbox_dir = os.path.abspath(os.fspath(outbox_dir))
        self.params = dict(params or {})
        self.tags = dict(tags or {})
        self.fsync = fsync
        self.drain_timeout_s = float(drain_timeout_s)
        self.start_timeout_s = float(start_timeout_s)
        self.max_backoff_s = float(max_backoff_s)
        self.linger_s = float(linger_s)
        self._session: _Session | None = None
        self._trials: dict[str, _TrialSeen] = {}
        # {trial_id: why it failed} from the hang watchdog (orchestrator.faults), shared with it.
        self.error_notes: dict[str, str] = {}

    # Tune pickles the callback into tuner.pkl; only the configuration travels.
    _RUNTIME = ("_session", "_trials")

    def __getstate__(self) -> dict:
        return {k: v for k, v in self.__dict__.items() if k not in self._RUNTIME}

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self._session = None
        self._trials = {}

    # ----- public API -----------------------------------------------------------------------

    # The ids and counters stay readable after finish(); None before start().

    @property
    def parent_run_id(self) -> str | None:
        return self._session.parent_run_id if self._session else None

    @property
    def experiment_id(self) -> str | None:
        return self._session.experiment_id if self._session else None

    @property
    def run_uid(self) -> str | None:
        return self._session.run_uid if self._session else None

    @property
    def stats(self) -> SenderStats | None:
        """Delivery counters of the sender (records, batches, failures, rejected)."""
        return self._session.sender.stats if self._session else None

    @property
    def delivered(self) -> bool:
        """True when every record written so far has been delivered."""
        s = self._session
        return s is not None and s.sender.committed >= s.writer.end_offset

    def start(self) -> str:
        """Create the parent run, or find it again (tag ``tuneorch.run_uid``); returns its id.

        Blocks until the tracking server answers (up to ``start_timeout_s``, then raises
        ``TrackingUnavailableError``). Starts the sender, which first delivers whatever an
        earlier process left in the outbox.
        """
        with _SESSIONS_LOCK:
            session = _SESSIONS.get(self.outbox_dir)
            if session is not None and not session.closed:
                if (session.tracking_uri, session.experiment_name) != (self.tracking_uri,
                                                                       self.experiment_name):
                    raise TrackingError(
                        f"outbox_dir: {self.outbox_dir!r} is already used in this process for "
                        f"experiment {session.experiment_name!r} on {session.tracking_uri!r}; "
                        f"got experiment {self.experiment_name!r} on {self.tracking_uri!r}")
                self._session = session
                return session.parent_run_id
            session = self._open_session()
            _SESSIONS[self.outbox_dir] = session
            self._session = session
        logger.info("MLflow tracking: experiment %s, parent run %s, outbox %s",
                    session.experiment_id, session.parent_run_id, self.outbox_dir)
        return session.parent_run_id

    def flush(self, timeout_s: float | None = None) -> bool:
        """Wait until every record written so far is delivered; False on timeout."""
        session = self._require_session("flush")
        timeout = self.drain_timeout_s if timeout_s is None else timeout_s
        return session.sender.wait_delivered(session.writer.end_offset, timeout)

    def finish(self, best_config: dict | None, best_metric: float | dict | None, metric: str | list,
               status: str = "FINISHED", extra_metrics: dict | None = None,
               trial_tags: dict | None = None, parent_history: dict | None = None) -> None:
        """Log the best result on the parent, deliver the outbox, end every run.

        ``best_config`` goes to tags ``best_config`` (JSON) and ``best_config/<key>``; ``best_metric``
        to the metric ``best/<metric>``; ``extra_metrics`` (e.g. ``cache_hits``) go to the parent too. Children still RUNNING end as KILLED; the parent ends
        with ``status``. Several objectives: ``metric`` is their list and ``best_metric``
        ``{objective: value}`` (metrics ``best/<objective>``). ``trial_tags`` ``{trial_id: {tag:
        value}}`` go to the child runs (e.g. ``tuneorch.pareto_rank``). ``parent_history``
        ``{name: [(step, timestamp ms or None, value)]}``: metric histories of the parent (e.g. the
        hypervolume as trials ended). If the outbox is not delivered within ``drain_timeout_s`` the records
        stay in ``outbox_dir`` (a warning says how much) and the next ``start()`` on that
        directory, or ``replay_outbox``, delivers them.
        """
        if status not in STATUSES:
            raise ValueError(f"status: must be one of {STATUSES}, got {status!r}")
        metrics = list(metric) if isinstance(metric, (list, tuple)) else [metric]
        if not metrics or not all(isinstance(m, str) and m for m in metrics):
            raise ValueError(f"metric: must be the name of the tuned metric, got {metric!r}")
        if self._session is not None and self._session.finished:
            logger.warning("MLflow tracking: finish() called again for parent run %s; ignored",
                           self._session.parent_run_id)
            return
        session = self._ensure_started()
        ts = _now_ms()
        tags = {"best_metric_name": ",".join(metrics)}
        if best_config is not None:
            tags["best_config"] = json.dumps(redact_config(best_config), sort_keys=True,
                                             default=str)[:MAX_TAG_VALUE_LENGTH]
            for key, value in flatten_params(best_config).items():
                tags[f"best_config/{key}"] = value[:MAX_TAG_VALUE_LENGTH]
        session.writer.append({"k": "tags", "trial": None, "t": tags})
        for trial_id, child_tags in (trial_tags or {}).items():
            if trial_id in self._trials:
                session.writer.append({"k": "tags", "trial": trial_id, "t": dict(child_tags)})
        parent_metrics = {k: as_metric_value(v) for k, v in (extra_metrics or {}).items()}
        best = best_metric if isinstance(best_metric, dict) else {metrics[0]: best_metric}
        for name, value in best.items():
            parent_metrics[f"best/{name}"] = as_metric_value(value)
        parent_metrics = {k: v for k, v in parent_metrics.items() if v is not None}
        if parent_metrics:
            session.writer.append({"k": "metrics", "trial": None, "ts": ts, "step": 0, "m": parent_metrics})
        for name, points in (parent_history or {}).items():
            for step, when, value in points:
                value = as_metric_value(value)
                if value is not None:
                    session.writer.append({"k": "metrics", "trial": None, "ts": int(when or ts),
                                           "step": int(step), "m": {name: value}})
        end = session.writer.append({"k": "finish", "ts": ts, "status": status})
        delivered = session.sender.wait_delivered(end, self.drain_timeout_s)
        if not delivered:
            left = session.writer.end_offset - session.sender.committed
            logger.warning(
                "MLflow tracking: %d bytes of records not delivered after %.0f s (last error: %s); "
                "they stay in %s and are delivered by the next MLflowTracking.start() on that "
                "directory or by orchestrator.tracking.replay_outbox(%r)",
                left, self.drain_timeout_s, session.sender.stats.last_error, self.outbox_dir,
                self.outbox_dir)
        if session.sender.stats.rejected:
            logger.error("MLflow tracking: %d items were refused by the server; see %s",
                         session.sender.stats.rejected, session.sender.reject_log.path)
        session.finished = True
        self._close_session(session)

    def close(self) -> None:
        """Stop delivering without ending any run (the outbox keeps what is not delivered)."""
        if self._session is not None and not self._session.closed:
            self._close_session(self._session)

    def drop_trials_except(self, keep: set) -> list[str]:
        """Delete the child runs of the trials this outbox recorded that are not in ``keep``;
        returns their ids.

        A resume calls it with the trials Tune restored: a trial recorded here but absent from
        Tune's snapshot is created again by the search under a new id, so its old child run
        would be a second run for one trial. The deletion is a ``drop`` record in the outbox
        (delivered in order, so a replay from the start ends with the same runs).
        """
        session = self._ensure_started()
        seen: list[str] = []
        for _, record, _ in read_records(session.writer.path, 0, max_records=2**62):
            trial = (record or {}).get("trial")
            if (record or {}).get("k") == "drop":
                if trial in seen:
                    seen.remove(trial)
            elif trial is not None and trial not in seen:
                seen.append(trial)
        dropped = [t for t in seen if t not in keep]
        for trial in dropped:
            session.writer.append({"k": "drop", "trial": trial, "ts": _now_ms()})
            session.recorded_steps.pop(trial, None)
            session.recorded_results.pop(trial, None)
            session.next_result.pop(trial, None)
            self._trials.pop(trial, None)
        return dropped

    def rewind(self, trial_id: str, results: int) -> None:
        """The resumed ``trial_id`` continues its history after its first ``results`` results
        (the rows the resume kept in its ``result.json``; ``orchestrator.reconcile``): its next
        result is number ``results``. Results numbered below what this outbox recorded are
        re-runs and are not recorded again. A ``rewind`` record keeps the outbox the account of
        it (the sender ignores it)."""
        session = self._ensure_started()
        results = max(0, int(results))
        session.writer.append({"k": "rewind", "trial": trial_id, "ts": _now_ms(), "n": results})
        session.next_result[trial_id] = results
        session.recorded_steps.pop(trial_id, None)

    # ----- Tune hooks (driver thread; no network) -------------------------------------------

    def setup(self, stop=None, num_samples=None, total_num_samples=None, **info):
        self._ensure_started()

    def on_trial_start(self, iteration: int, trials: list, trial: Any, **info):
        self._see_trial(trial)

    def on_trial_result(self, iteration: int, trials: list, trial: Any, result: dict, **info):
        step = result.get("training_iteration")
        seen = self._trials.get(trial.trial_id)
        if isinstance(step, bool) or not isinstance(step, int):
            step = (seen.results if seen else 0) + 1
        # A config seen first in this result was in effect from this step: changed after step - 1.
        session = self._see_trial(trial, changed_after=step - 1)
        seen = self._trials[trial.trial_id]
        seen.results += 1
        metrics = flatten_metrics(result)
        tid = trial.trial_id
        # The result's ordinal in the trial's history: the row Tune appends it as to result.json.
        n = session.next_result.get(tid)
        if n is None and tid in session.recorded_steps:
            # Resumed without a rewind() (no reconciler: remote storage): by step, as Tune re-runs
            # the steps after the checkpoint it restarts from.
            if step <= session.recorded_steps[tid]:
                return
            n = session.recorded_results.get(tid, 0)
        elif n is None:
            n = session.recorded_results.get(tid, 0)
        session.recorded_steps.pop(tid, None)
        session.next_result[tid] = n + 1
        if n < session.recorded_results.get(tid, 0):
            return  # re-run after a resume: this row of its history was recorded before the kill
        session.recorded_results[tid] = n + 1
        if metrics:
            session.writer.append({"k": "metrics", "trial": tid, "ts": _now_ms(),
                                   "step": step, "n": n, "m": metrics})

    def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info):
        # A trial whose last value of the tuned metric is NaN/inf ended, but failed
        # (orchestrator.outcome): FAILED with the reason, like the summary and the tables.
        failure = nonfinite_failure(getattr(trial, "last_result", None), _tuned_metric(self))
        if failure:
            self._end_trial(trial, "FAILED", {"error": failure, "error_reason": failure})
        else:
            # Stopped early by the scheduler (orchestrator.console.StopRecorder, which runs
            # before this callback, wrote the reason into the last result): FINISHED + a tag.
            reason = stop_reason_of(getattr(trial, "last_result", None))
            self._end_trial(trial, "FINISHED", {STOP_REASON_TAG: reason} if reason else {})

    def on_trial_error(self, iteration: int, trials: list, trial: Any, **info):
        tags = {}
        error_file = getattr(trial, "error_file", None)
        if error_file:
            tags["error_file"] = error_file
            try:
                with open(error_file, encoding="utf-8", errors="replace") as f:
                    tags["error"] = f.read()[-4000:]
            except OSError as exc:
                tags["error"] = f"(error file unreadable: {exc})"
        reason = explain_error(tags.get("error"), self.error_notes.get(getattr(trial, "trial_id", None)))
        if reason:
            tags["error_reason"] = reason
        self._end_trial(trial, "FAILED", tags)

    # ----- internals ------------------------------------------------------------------------

    def _require_session(self, what: str) -> _Session:
        if self._session is None or self._session.closed:
            raise TrackingError(f"{what}: call start() first")
        return self._session

    def _ensure_started(self) -> _Session:
        if self._session is None or self._session.closed:
            self._session = None
            self._trials = {}
            self.start()
        return self._session

    def _see_trial(self, trial: Any, changed_after: int | None = None) -> _Session:
        """Emit a ``child`` record when a trial is new, restarted after it ended, or re-configured.

        The record's ``step`` is the last training iteration done before the (possibly new)
        config: ``changed_after``, else the trial's last result (Tune updates it after the hooks).
        """
        session = self._ensure_started()
        params = flatten_params(getattr(trial, "config", None) or {})
        seen = self._trials.get(trial.trial_id)
        if seen is None or seen.ended or seen.params != params:
            step = changed_after
            if step is None:
                step = reported_result(trial).get("training_iteration", 0)
            session.writer.append({"k": "child", "trial": trial.trial_id, "ts": _now_ms(),
                                   "step": step if isinstance(step, int) else 0, "params": params})
            results = seen.results if seen else 0
            self._trials[trial.trial_id] = seen = _TrialSeen(params, False, results)
        return session

    def _end_trial(self, trial: Any, status: str, tags: dict) -> None:
        session = self._see_trial(trial)
        session.writer.append({"k": "end", "trial": trial.trial_id, "ts": _now_ms(),
                               "status": status, "t": tags})
        self._trials[trial.trial_id].ended = True

    def _close_session(self, session: _Session) -> None:
        with _SESSIONS_LOCK:
            if not session.sender.stop(10.0):
                logger.warning("MLflow sender still in a call after 10 s; left to finish on its own")
            session.writer.close()
            session.lock.close()
            session.closed = True
            if _SESSIONS.get(session.outbox_dir) is session:
                del _SESSIONS[session.outbox_dir]

    def _open_session(self) -> _Session:
        for key, value in MLFLOW_ENV_DEFAULTS.items():
            os.environ.setdefault(key, value)
        from mlflow import MlflowClient

        lock = OutboxLock(self.outbox_dir)
        try:
            state_path = os.path.join(self.outbox_dir, STATE_FILE)
            state = read_json(state_path) or {}
            run_uid = str(self.tags.get(RUN_UID_TAG) or state.get("run_uid") or uuid.uuid4().hex)
            if state.get("run_uid") != run_uid:
                state = {"run_uid": run_uid}
                write_json_atomic(state_path, state)  # before the run exists: a crash finds it
            client = MlflowClient(self.tracking_uri)
            experiment_id = _with_retries("get or create the experiment",
                                          lambda: self._experiment(client), self.start_timeout_s,
                                          self.tracking_uri)
            parent_run_id, resumed = _with_retries(
                "find or create the parent run",
                lambda: self._parent(client, experiment_id, run_uid),
                self.start_timeout_s, self.tracking_uri)
            writer = OutboxWriter(self.outbox_dir, fsync=self.fsync)
            recorded_steps, recorded_results = _steps_recorded(writer.path)
            if resumed:
                writer.append({"k": "reopen", "ts": _now_ms()})
            commit_log = CommitLog(self.outbox_dir)
            sender = Sender(MlflowClient(self.tracking_uri), writer.path, commit_log,
                            RejectLog(self.outbox_dir), experiment_id=experiment_id,
                            parent_run_id=parent_run_id, run_uid=run_uid,
                            start_offset=commit_log.load(parent_run_id), wake=writer.appended,
                            max_backoff_s=self.max_backoff_s, linger_s=self.linger_s,
                            durable=lambda: writer.durable_offset)
            sender.start()
            write_json_atomic(state_path, {
                "run_uid": run_uid, "parent_run_id": parent_run_id,
                "experiment_id": experiment_id, "experiment_name": self.experiment_name,
                "tracking_uri": self.tracking_uri,
            })
        except BaseException:
            lock.close()
            raise
        return _Session(self.outbox_dir, self.tracking_uri, self.experiment_name, experiment_id,
                        parent_run_id, run_uid, lock, writer, sender, recorded_steps=recorded_steps,
                        recorded_results=recorded_results)

    def _experiment(self, client: Any) -> str:
        from mlflow.exceptions import MlflowException

        exp = client.get_experiment_by_name(self.experiment_name)
        if exp is None:
            try:
                return client.create_experiment(self.experiment_name,
                                                artifact_location=self._artifact_location(),
                                                tags={EXPERIMENT_KIND_TAG: EXPERIMENT_KIND})
            except MlflowException as exc:
                if exc.error_code != "RESOURCE_ALREADY_EXISTS":
                    raise
                exp = client.get_experiment_by_name(self.experiment_name)
        if exp.lifecycle_stage != "active":
            raise TrackingError(
                f"experiment_name: {self.experiment_name!r} is a deleted experiment (id "
                f"{exp.experiment_id}); restore it with MlflowClient().restore_experiment"
                f"({exp.experiment_id!r}) or choose another name")
        if EXPERIMENT_KIND_TAG not in (exp.tags or {}):  # made before we set it; a kind chosen in the UI stays
            client.set_experiment_tag(exp.experiment_id, EXPERIMENT_KIND_TAG, EXPERIMENT_KIND)
        return exp.experiment_id

    def _artifact_location(self) -> str | None:
        """Next to the database for a sqlite store (MLflow would use ./mlruns of the cwd)."""
        prefix = "sqlite:///"
        if self.tracking_uri.startswith(prefix):
            db_dir = os.path.dirname(os.path.abspath(self.tracking_uri[len(prefix):]))
            return "file://" + os.path.join(db_dir, "mlartifacts")
        return None

    def _parent(self, client: Any, experiment_id: str, run_uid: str) -> tuple[str, bool]:
        runs = runs_tagged(client, experiment_id, RUN_UID_TAG, run_uid)
        params = {clean_key(k): v for k, v in flatten_params(self.params).items()}
        if runs:
            run = runs[0]
            existing = run.data.params
            missing = {k: v for k, v in params.items() if k not in existing}
            changed = {k: v for k, v in params.items() if k in existing and existing[k] != v}
            if changed:
                logger.warning("resumed parent run %s: params %s differ from the first start; "
                               "kept the first values, the new ones are tags resume_params/<key>",
                               run.info.run_id, sorted(changed))
            self._log_params(client, run.info.run_id, missing,
                             {f"resume_params/{k}": v[:MAX_TAG_VALUE_LENGTH] for k, v in changed.items()})
            return run.info.run_id, True
        tags = {clean_key(k): str(v)[:MAX_TAG_VALUE_LENGTH] for k, v in self.tags.items()}
        run = create_unique_run(client, experiment_id, RUN_UID_TAG, run_uid, run_name=self.run_name, tags=tags)
        self._log_params(client, run.info.run_id, params, {})
        return run.info.run_id, False

    @staticmethod
    def _log_params(client: Any, run_id: str, params: dict, tags: dict) -> None:
        from mlflow.entities import Param, RunTag

        items = list(params.items())
        tag_items = list(tags.items())
        while items or tag_items:
            p, items = items[:MAX_PARAMS_PER_BATCH], items[MAX_PARAMS_PER_BATCH:]
            t, tag_items = tag_items[:MAX_PARAMS_PER_BATCH], tag_items[MAX_PARAMS_PER_BATCH:]
            client.log_batch(run_id, params=[Param(k, v) for k, v in p],
                             tags=[RunTag(k, v) for k, v in t], synchronous=True)


def replay_outbox(outbox_dir: str, tracking_uri: str | None = None, *, from_start: bool = False,
                  timeout_s: float = 300.0) -> SenderStats:
    """Deliver an outbox in this thread (no Tune, no hooks) and return the delivery counters.

    Uses the parent run recorded in ``<outbox_dir>/state.json``; ``tracking_uri`` defaults to
    the one recorded there. ``from_start=True`` re-delivers everything (idempotent). Raises
    ``TrackingUnavailableError`` if the outbox is not delivered within ``timeout_s``.
    """
    from mlflow import MlflowClient

    outbox_dir = os.path.abspath(outbox_dir)
    state = read_json(os.path.join(outbox_dir, STATE_FILE))
    if not state or "parent_run_id" not in state:
        raise TrackingError(f"outbox_dir: {outbox_dir!r} has no {STATE_FILE} with a parent run; "
                            f"it was never started")
    uri = tracking_uri or state["tracking_uri"]
    for key, value in MLFLOW_ENV_DEFAULTS.items():
        os.environ.setdefault(key, value)
    lock = OutboxLock(outbox_dir)
    try:
        writer = OutboxWriter(outbox_dir, fsync=True)  # repairs a torn tail
        end = writer.end_offset
        writer.close()
        commit_log = CommitLog(outbox_dir)
        sender = Sender(MlflowClient(uri), writer.path, commit_log, RejectLog(outbox_dir),
                        experiment_id=state["experiment_id"], parent_run_id=state["parent_run_id"],
                        run_uid=state["run_uid"],
                        start_offset=0 if from_start else commit_log.load(state["parent_run_id"]))
        deadline = time.monotonic() + timeout_s
        delay = 0.5
        while sender.committed < end:
            try:
                sender.pump()
                delay = 0.5
            except Exception as exc:
                if time.monotonic() + delay > deadline:
                    raise TrackingUnavailableError(
                        f"replay_outbox: {end - sender.committed} bytes of {outbox_dir!r} not "
                        f"delivered to {uri!r} within {timeout_s:.0f} s (last error: {exc})") from exc
                sender._note_failure(exc, delay)
                time.sleep(delay)
                delay = min(delay * 2, 10.0)
        return sender.stats
    finally:
        lock.close()


def _tuned_metric(tracker: MLflowTracking) -> str | None:
    """The metric the run tunes: ``tracker.metric`` when set, else the parent run's ``metric``
    param (``orchestrator.api`` logs ``ExperimentSpec.summary()``, which holds it)."""
    metric = tracker.__dict__.get("metric") or (tracker.params or {}).get("metric")
    return metric if isinstance(metric, str) and metric else None


#: MLflow 3's UI reads this experiment tag to choose an experiment's pages: ``genai_development``
#: (the default it infers: traces, token usage overview) or ``custom_model_development`` (the
#: runs table, model training). Tuning runs are model training; the tag is set when we create
#: an experiment, and on an existing one of ours that lacks it (never changed once set).
EXPERIMENT_KIND_TAG = "mlflow.experimentKind"
EXPERIMENT_KIND = "custom_model_development"

