"""Delivers outbox records to MLflow with ``MlflowClient.log_batch``, idempotently.

Records (written by ``mlflow_callback.py``; ``trial`` is a Tune trial id, ``None`` means the
parent run; ``ts`` is the client time in ms taken when the hook ran):

``{"k": "child",   "trial", "ts", "step", "params": {flat key: str}}``  trial (re)started / config seen
``{"k": "metrics", "trial", "ts", "step", "n", "m": {flat key: float}}`` one reported result, the
                                                                        trial's ``n``-th (0-based)
``{"k": "tags",    "trial", "t": {key: str}}``
``{"k": "end",     "trial", "ts", "status", "t": {key: str}}``          trial finished or failed
``{"k": "drop",    "trial", "ts"}``                                     trial not in the resumed
                                                                        experiment: its child runs deleted
``{"k": "rewind",  "trial", "ts", "n"}``                               resumed trial goes on from its
                                                                        ``n``-th result (the tracker's
                                                                        account; nothing to deliver)
``{"k": "reopen",  "ts"}``                                              parent resumed: RUNNING again
``{"k": "finish",  "ts", "status"}``                                    children still RUNNING -> KILLED,
                                                                        then the parent ends

Why replaying is safe (the sender may re-deliver everything after its last commit):

* a metric point is stored once per (run, key, value, timestamp, step), and the timestamp is the
  one recorded at hook time, so a re-sent point is not a new point;
* a child run is looked up by its ``trial_uid`` tag before it is created;
* params are compared with what the run already has: only missing keys are logged, a changed
  value (PBT) becomes a tag ``config_history/<step>`` instead of an error;
* tags overwrite, status changes are replayed in their original order.

Errors: MLflow errors that say the request itself is wrong are permanent. ``INVALID_PARAMETER_VALUE``
or ``BAD_REQUEST`` on a batch: the batch is split until the offending items are isolated, those go
to ``rejected.jsonl`` and the rest is delivered. ``INVALID_STATE`` / ``RESOURCE_DOES_NOT_EXIST``
(a run deleted in the UI): the batch or record goes to ``rejected.jsonl`` whole. Everything else
(connection refused, timeouts, 5xx, auth, our own bugs) is transient: the chunk is retried from the
last commit with exponential backoff, forever, and logged.
"""

from __future__ import annotations

import json
import logging
import numbers
import re
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable

from orchestrator.tracking.outbox import CommitLog, RejectLog, read_records

logger = logging.getLogger(__name__)

# MLflow's limits (mlflow/utils/validation.py, 3.17).
MAX_METRICS_PER_BATCH = 1000
MAX_PARAMS_PER_BATCH = 100
MAX_TAGS_PER_BATCH = 100
MAX_ENTITIES_PER_BATCH = 1000
MAX_KEY_LENGTH = 250
MAX_PARAM_VALUE_LENGTH = 6000
MAX_TAG_VALUE_LENGTH = 8000

TRIAL_UID_TAG = "trial_uid"
TRIAL_ID_TAG = "trial_id"
PARENT_TAG = "mlflow.parentRunId"

_PERMANENT_CODES = {"INVALID_PARAMETER_VALUE", "BAD_REQUEST", "INVALID_STATE",
                    "RESOURCE_DOES_NOT_EXIST"}
# These concern the run (deleted, missing), not one item: the whole batch is refused.
_RUN_LEVEL_CODES = {"INVALID_STATE", "RESOURCE_DOES_NOT_EXIST"}
_BAD_KEY_CHARS = re.compile(r"[^/\w.\- ]")


def clean_key(key: str) -> str:
    """Make ``key`` a valid MLflow metric/param/tag name.

    MLflow accepts alphanumerics, ``_ - . /`` and spaces (colons only off Windows), and refuses
    names that change under path normalisation (``a//b``, ``./a``, ``a/..``). Anything else is
    replaced by ``_``; the result is cut to 250 characters.
    """
    key = _BAD_KEY_CHARS.sub("_", str(key))
    parts = [p if p not in (".", "..") else p.replace(".", "_") for p in key.split("/") if p]
    key = "/".join(parts) or "_"
    return key[:MAX_KEY_LENGTH].rstrip("/") or "_"


def is_permanent(exc: BaseException) -> bool:
    """True when retrying ``exc`` cannot help (the request itself is invalid)."""
    return getattr(exc, "error_code", None) in _PERMANENT_CODES


def _quote(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def runs_tagged(client: Any, experiment_id: str, tag: str, value: str, max_results: int = 10) -> list:
    """Active runs of the experiment whose ``tag`` equals ``value``, oldest first (ties by run
    id, so every caller picks the same one)."""
    found = client.search_runs([experiment_id], filter_string=f"tags.`{tag}` = {_quote(value)}",
                               max_results=max_results, order_by=["attributes.start_time ASC"])
    return sorted(found, key=lambda r: (r.info.start_time or 0, r.info.run_id))


def create_unique_run(client: Any, experiment_id: str, tag: str, value: str, **create_args: Any) -> Any:
    """``client.create_run`` for a run identified by ``tag=value``, and exactly one such run.

    MLflow's HTTP client retries a POST that timed out (``MLFLOW_HTTP_REQUEST_MAX_RETRIES``), and
    a ``create_run`` whose first attempt did commit on the server then makes a second run with the
    same tags (seen once on a loaded machine: a trial with two child runs). The caller looked the
    tag up and found nothing before creating, so every run with it now was made by this call and
    is still empty: keep the oldest, delete the rest.
    """
    run = client.create_run(experiment_id, tags={**create_args.pop("tags", {}), tag: value}, **create_args)
    found = runs_tagged(client, experiment_id, tag, value)
    if len(found) <= 1:
        return run
    keep, extra = found[0], found[1:]
    for dup in extra:
        client.delete_run(dup.info.run_id)
    logger.warning("MLflow made %d runs tagged %s=%s (a retried create_run); kept %s, deleted %s",
                   len(found), tag, value, keep.info.run_id, [d.info.run_id for d in extra])
    return keep


@dataclass
class SenderStats:
    records: int = 0          # records applied (re-deliveries included)
    metric_points: int = 0    # metric points sent (re-deliveries included)
    batches: int = 0          # log_batch calls that succeeded
    runs_created: int = 0
    transient_failures: int = 0
    rejected: int = 0
    last_error: str | None = None
    batch_seconds: list[float] = field(default_factory=list, repr=False)  # last 1000 log_batch times


@dataclass
class _Child:
    run_id: str
    status: str
    params: dict[str, str]


class _Buffer:
    """Pending metrics / params / tags of one run, in arrival order."""

    __slots__ = ("metrics", "params", "tags")

    def __init__(self) -> None:
        self.metrics: list[tuple[str, float, int, int]] = []  # (key, value, ts, step)
        self.params: dict[str, str] = {}
        self.tags: dict[str, str] = {}

    def __bool__(self) -> bool:
        return bool(self.metrics or self.params or self.tags)


class Sender:
    """Reads the outbox from the committed offset and applies it to one parent run's experiment.

    ``pump()`` does one chunk in the calling thread; ``start()`` runs a daemon thread that pumps
    whenever the outbox grows. ``client`` is an ``mlflow.MlflowClient``.
    """

    def __init__(self, client: Any, outbox_path: str, commit_log: CommitLog, reject_log: RejectLog,
                 *, experiment_id: str, parent_run_id: str, run_uid: str, start_offset: int,
                 wake: threading.Event | None = None, max_backoff_s: float = 30.0,
                 linger_s: float = 0.2, chunk_records: int = 5000,
                 durable: Callable[[], int] | None = None):
        self.client = client
        self.outbox_path = outbox_path
        self.commit_log = commit_log
        self.reject_log = reject_log
        self.experiment_id = experiment_id
        self.parent_run_id = parent_run_id
        self.run_uid = run_uid
        self.committed = start_offset
        self.max_backoff_s = max_backoff_s
        self.linger_s = linger_s
        self.chunk_records = chunk_records
        # The end of what the writer has on disk (OutboxWriter.durable_offset): nothing after it
        # is delivered or committed. None: the whole file (a closed outbox).
        self.durable = durable
        self.stats = SenderStats()
        self._wake = wake or threading.Event()
        self._stop = threading.Event()
        self._progress = threading.Condition()
        self._children: dict[str, _Child] = {}
        self._thread: threading.Thread | None = None

    # ----- thread ---------------------------------------------------------------------------

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="mlflow-outbox-sender", daemon=True)
        self._thread.start()

    def stop(self, timeout_s: float = 10.0) -> bool:
        """Ask the thread to stop after its current call; True if it ended within ``timeout_s``."""
        self._stop.set()
        self._wake.set()
        if self._thread is None:
            return True
        self._thread.join(timeout_s)
        return not self._thread.is_alive()

    def wait_delivered(self, offset: int, timeout_s: float) -> bool:
        """Block until everything before ``offset`` is committed, or ``timeout_s`` passes."""
        deadline = time.monotonic() + timeout_s
        with self._progress:
            while self.committed < offset:
                left = deadline - time.monotonic()
                if left <= 0 or (self._thread is not None and not self._thread.is_alive()):
                    return False
                self._wake.set()
                self._progress.wait(min(left, 0.5))
        return True

    def _loop(self) -> None:
        backoff = 0.0
        while not self._stop.is_set():
            if backoff:
                self._stop.wait(backoff)
                if self._stop.is_set():
                    return
            else:
                self._wake.wait(1.0)
                if self._stop.is_set():
                    return
                self._wake.clear()
                if self.linger_s:
                    self._stop.wait(self.linger_s)  # let a few more records arrive
            try:
                while self.pump() and not self._stop.is_set():
                    pass
                backoff = 0.0
            except Exception as exc:  # transient: logged, retried from the last commit
                backoff = min(self.max_backoff_s, max(0.5, backoff * 2))
                self._note_failure(exc, backoff)

    def _note_failure(self, exc: BaseException, backoff: float) -> None:
        self.stats.transient_failures += 1
        self.stats.last_error = f"{type(exc).__name__}: {exc}"[:2000]
        self._children.clear()  # what was cached may not have landed: look it up again
        if self.stats.transient_failures <= 3 or self.stats.transient_failures % 20 == 0:
            logger.warning("MLflow delivery failed (%d so far), retrying in %.1f s; records stay "
                           "in the outbox: %s", self.stats.transient_failures, backoff,
                           self.stats.last_error)

    # ----- one chunk ------------------------------------------------------------------------

    def pump(self) -> bool:
        """Deliver one chunk of records after the committed offset; False when there was none.

        Raises on transient errors (nothing after the last commit is considered delivered).
        """
        end = self.durable() if self.durable is not None else None
        chunk = list(read_records(self.outbox_path, self.committed, self.chunk_records, end))
        if not chunk:
            return False
        buffers: dict[str, _Buffer] = {}
        for _end, rec, raw in chunk:
            if rec is None:
                self._reject({"error": "not a JSON object", "line": raw[:4000].decode(errors="replace")})
                continue
            try:
                self._apply(rec, buffers)
            except Exception as exc:
                if not is_permanent(exc):
                    raise
                # e.g. the run was deleted in the UI: this record can never land; go on.
                self._reject({"error": f"{type(exc).__name__}: {str(exc)[:2000]}", "record": rec})
        self._flush_all(buffers)
        self.stats.records += len(chunk)
        end = chunk[-1][0]
        self.commit_log.commit(end, self.parent_run_id)
        with self._progress:
            self.committed = end
            self._progress.notify_all()
        return True

    def _apply(self, rec: dict, buffers: dict[str, _Buffer]) -> None:
        kind = rec.get("k")
        trial = rec.get("trial")
        if kind == "metrics":
            run_id = self._run_for(trial, rec)
            buf = buffers.setdefault(run_id, _Buffer())
            ts, step = int(rec["ts"]), int(rec.get("step", 0))
            for key, value in rec["m"].items():
                buf.metrics.append((clean_key(key), float(value), ts, step))
        elif kind == "tags":
            run_id = self._run_for(trial, rec)
            buf = buffers.setdefault(run_id, _Buffer())
            for key, value in rec["t"].items():
                buf.tags[clean_key(key)] = str(value)[:MAX_TAG_VALUE_LENGTH]
        elif kind == "child":
            self._child_started(rec, buffers)
        elif kind == "end":
            run_id = self._run_for(trial, rec)
            buf = buffers.setdefault(run_id, _Buffer())
            for key, value in (rec.get("t") or {}).items():
                buf.tags[clean_key(key)] = str(value)[:MAX_TAG_VALUE_LENGTH]
            self._flush(run_id, buffers.pop(run_id))
            self.client.set_terminated(run_id, status=rec["status"], end_time=int(rec["ts"]))
            if trial is not None and trial in self._children:
                self._children[trial].status = rec["status"]
        elif kind == "drop":
            self._flush_all(buffers)
            self._drop(trial)
        elif kind == "rewind":
            pass  # bookkeeping of the tracker (which results a resumed trial re-runs)
        elif kind == "reopen":
            self._flush_all(buffers)
            self.client.update_run(self.parent_run_id, status="RUNNING")
        elif kind == "finish":
            self._flush_all(buffers)
            self._finish(rec)
        else:
            self._reject({"error": f"unknown record kind {kind!r}", "record": rec})

    # ----- runs -----------------------------------------------------------------------------

    def trial_uid(self, trial: str) -> str:
        return f"{self.run_uid}/{trial}"

    def _run_for(self, trial: str | None, rec: dict) -> str:
        if trial is None:
            return self.parent_run_id
        return self._child(trial, int(rec.get("ts") or time.time() * 1000)).run_id

    def _child(self, trial: str, ts: int) -> _Child:
        """The child run of ``trial``: cached, else found by its ``trial_uid`` tag, else created."""
        child = self._children.get(trial)
        if child is not None:
            return child
        uid = self.trial_uid(trial)
        found = runs_tagged(self.client, self.experiment_id, TRIAL_UID_TAG, uid)
        if found:
            run = found[0]
            if len(found) > 1:
                logger.warning("trial %s has %d child runs tagged %s=%s; using the oldest, %s",
                               trial, len(found), TRIAL_UID_TAG, uid, run.info.run_id)
            child = _Child(run.info.run_id, run.info.status, dict(run.data.params))
        else:
            run = create_unique_run(
                self.client, self.experiment_id, TRIAL_UID_TAG, uid, start_time=ts, run_name=clean_key(trial),
                tags={PARENT_TAG: self.parent_run_id, TRIAL_ID_TAG: trial},
            )
            self.stats.runs_created += 1
            child = _Child(run.info.run_id, "RUNNING", {})
        self._children[trial] = child
        return child

    def _drop(self, trial: str) -> None:
        """Delete every child run of ``trial`` (a trial the resumed experiment does not hold)."""
        self._children.pop(trial, None)
        for run in runs_tagged(self.client, self.experiment_id, TRIAL_UID_TAG, self.trial_uid(trial)):
            self.client.delete_run(run.info.run_id)
            logger.warning("MLflow: deleted child run %s of trial %s, which the resumed experiment "
                           "does not hold", run.info.run_id, trial)

    def _child_started(self, rec: dict, buffers: dict[str, _Buffer]) -> None:
        trial = rec["trial"]
        child = self._child(trial, int(rec["ts"]))
        if child.status != "RUNNING":
            self._flush(child.run_id, buffers.pop(child.run_id, _Buffer()))
            self.client.update_run(child.run_id, status="RUNNING")
            child.status = "RUNNING"
        buf = buffers.setdefault(child.run_id, _Buffer())
        changed: dict[str, str] = {}
        for key, value in (rec.get("params") or {}).items():
            key = clean_key(key)
            value = str(value)[:MAX_PARAM_VALUE_LENGTH]
            old = child.params.get(key)
            if old is None:
                buf.params[key] = value
                child.params[key] = value  # the cache is dropped if this does not land
            elif old != value:
                changed[key] = value
        if changed:  # params are immutable in MLflow: keep the history as a tag
            step = int(rec.get("step", 0))
            tag = json.dumps(changed, sort_keys=True)[:MAX_TAG_VALUE_LENGTH]
            buf.tags[f"config_history/{step}"] = tag

    def _children_runs(self, extra_filter: str = "") -> list:
        """Every active child run of the parent (all pages)."""
        runs, page_token = [], None
        while True:
            page = self.client.search_runs(
                [self.experiment_id],
                filter_string=f"tags.`{PARENT_TAG}` = {_quote(self.parent_run_id)}{extra_filter}",
                max_results=1000, page_token=page_token,
            )
            runs += list(page)
            page_token = page.token
            if not page_token:
                return runs

    def merge_duplicate_children(self) -> int:
        """One child run per trial, whatever happened: where several active runs carry the same
        ``trial_uid`` (a safety net for crash-and-resume runs and lost create replies), the
        oldest keeps every metric point, param and status of the others, which are then deleted.
        Re-sent points are not doubled (a point is stored once per key, value, time and step).
        Returns how many runs were merged away."""
        groups: dict[str, list] = {}
        for run in self._children_runs():
            uid = run.data.tags.get(TRIAL_UID_TAG)
            if uid:
                groups.setdefault(uid, []).append(run)
        merged = 0
        for uid, runs in groups.items():
            if len(runs) < 2:
                continue
            runs.sort(key=lambda r: (r.info.start_time or 0, r.info.run_id))
            keep, extra = runs[0], runs[1:]
            buf = _Buffer()
            for dup in extra:
                for key in dup.data.metrics:
                    buf.metrics += [(key, m.value, m.timestamp, m.step)
                                    for m in self.client.get_metric_history(dup.info.run_id, key)]
                buf.params.update({k: v for k, v in dup.data.params.items() if k not in keep.data.params})
            self._flush(keep.info.run_id, buf)
            ended = [d for d in extra if d.info.status != "RUNNING"]
            if keep.info.status == "RUNNING" and ended:  # the trial's end went to a copy
                last = max(ended, key=lambda d: d.info.end_time or 0)
                self.client.set_terminated(keep.info.run_id, status=last.info.status, end_time=last.info.end_time)
            for dup in extra:
                self.client.delete_run(dup.info.run_id)
            merged += len(extra)
            logger.warning("MLflow: trial %s had %d child runs; merged into the oldest, %s (deleted %s)",
                           uid, len(runs), keep.info.run_id, [d.info.run_id for d in extra])
            trial = keep.data.tags.get(TRIAL_ID_TAG)
            if trial is not None:
                self._children.pop(trial, None)  # looked up again if needed
        return merged

    def _finish(self, rec: dict) -> None:
        status, ts = rec["status"], int(rec["ts"])
        self.merge_duplicate_children()
        for run in self._children_runs(" and attributes.status = 'RUNNING'"):
            self.client.set_terminated(run.info.run_id, status="KILLED", end_time=ts)
        for child in self._children.values():
            if child.status == "RUNNING":
                child.status = "KILLED"
        self.client.set_terminated(self.parent_run_id, status=status, end_time=ts)

    # ----- batches --------------------------------------------------------------------------

    def _flush_all(self, buffers: dict[str, _Buffer]) -> None:
        while buffers:
            run_id, buf = buffers.popitem()
            self._flush(run_id, buf)

    def _flush(self, run_id: str, buf: _Buffer) -> None:
        """Send ``buf`` in batches within MLflow's per-call limits."""
        params = list(buf.params.items())
        tags = list(buf.tags.items())
        metrics = buf.metrics
        while params or tags or metrics:
            p, params = params[:MAX_PARAMS_PER_BATCH], params[MAX_PARAMS_PER_BATCH:]
            t, tags = tags[:MAX_TAGS_PER_BATCH], tags[MAX_TAGS_PER_BATCH:]
            room = min(MAX_METRICS_PER_BATCH, MAX_ENTITIES_PER_BATCH - len(p) - len(t))
            m, metrics = metrics[:room], metrics[room:]
            self._send(run_id, m, p, t)

    def _send(self, run_id: str, metrics: list, params: list, tags: list) -> None:
        from mlflow.entities import Metric, Param, RunTag

        t0 = time.perf_counter()
        try:
            self.client.log_batch(
                run_id,
                metrics=[Metric(k, v, ts, step) for k, v, ts, step in metrics],
                params=[Param(k, v) for k, v in params],
                tags=[RunTag(k, v) for k, v in tags],
                synchronous=True,
            )
        except Exception as exc:
            if not is_permanent(exc):
                raise
            items = len(metrics) + len(params) + len(tags)
            if items <= 1 or getattr(exc, "error_code", None) in _RUN_LEVEL_CODES:
                self._reject({"run_id": run_id, "error": str(exc)[:2000], "metrics": metrics,
                              "params": params, "tags": tags})
                return
            # Bisect to isolate what the server refuses; re-sending what already landed is safe.
            for part in (metrics[: len(metrics) // 2], metrics[len(metrics) // 2:]):
                if part:
                    self._send(run_id, part, [], [])
            for i in range(len(params)):
                self._send(run_id, [], params[i:i + 1], [])
            for i in range(len(tags)):
                self._send(run_id, [], [], tags[i:i + 1])
            return
        self.stats.batches += 1
        self.stats.metric_points += len(metrics)
        self.stats.batch_seconds.append(time.perf_counter() - t0)
        del self.stats.batch_seconds[:-1000]

    def _reject(self, entry: dict) -> None:
        self.reject_log.add(entry)
        self.stats.rejected += 1
        logger.error("MLflow refused a tracking record for good (kept in %s): %s",
                     self.reject_log.path, str(entry.get("error"))[:500])


def as_metric_value(value: Any) -> float | None:
    """``float(value)`` for real numbers (NaN and inf included; MLflow stores them), else ``None``.

    Booleans (Python or numpy) are not metrics; strings, lists, tensors and ``None`` are skipped.
    """
    if isinstance(value, bool) or type(value).__name__ == "bool_":
        return None
    if isinstance(value, numbers.Real):
        return float(value)
    return None
