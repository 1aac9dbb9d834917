"""Parquet tables of an experiment, read from the results Tune writes in the experiment directory.

Three tables, written with pyarrow (to a local folder or any ``pyarrow.fs`` URI):

* ``trials.parquet``: one row per trial: ``trial_id``, ``status``, ``stop_reason`` and ``error``
  (the vocabulary of :mod:`orchestrator.outcome`: ``TERMINATED``, ``ERROR`` for a trial that
  raised or whose last value of the tuned metric is NaN/inf, ...; ``stop_reason`` such as
  ``rung 3`` for a trial the scheduler stopped early, else null), ``iterations``, the last value of every numeric
  metric, and the config (flattened ``config/a/b`` columns plus ``config_json``).

The statuses are those the run decided (``tuneorch-trials.json``, written at the end of every
``run``/``resume``); for an experiment whose driver died before that, a trial with an
``error.txt`` is ``ERROR``, one whose last result is final is ``TERMINATED``, others ``None``.
Values under secret-looking config keys are ``***`` (:mod:`orchestrator.redaction`).
* ``metrics.parquet``: the long table ``(trial_id, step, timestamp, key, value)`` of every
  numeric value every trial reported, sorted by trial, step and key.
* ``param_history.parquet``: ``(trial_id, step, key, value)`` of config values whenever they
  changed during a trial (PBT's explore steps); one row per parameter at the first step.
"""

from __future__ import annotations

import json
import posixpath
from typing import Any, Iterator

import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from orchestrator.outcome import FAILED, FINISHED, STOP_REASON_KEY, nonfinite_failure, stop_reason_of
from orchestrator.errors import SpecError
from orchestrator.redaction import redact_config

OUTCOMES_FILE = "tuneorch-trials.json"

# Keys Tune adds to every result that are bookkeeping, not metrics.
_NOT_METRICS = {"trial_id", "date", "hostname", "node_ip", "pid", "done", "should_checkpoint",
                "checkpoint_dir_name", "timestamp", "config", "experiment_tag", STOP_REASON_KEY}


def filesystem(uri: str) -> tuple[pafs.FileSystem, str]:
    """The pyarrow filesystem of ``uri`` (a local path or any ``pyarrow.fs`` URI) and the path on it."""
    return pafs.FileSystem.from_uri(uri if "://" in uri else "file://" + posixpath.abspath(uri))


def write_outcomes(experiment_path: str, metric: str, frame: Any) -> None:
    """Keep each trial's status, stop reason and error (``TuningResult.trials``) beside the
    experiment."""
    outcomes = {}
    for row in frame.to_dict("records") if frame is not None and len(frame) else []:
        if row.get("trial_id") is not None:
            error, reason = row.get("error"), row.get("stop_reason")
            outcomes[str(row["trial_id"])] = {
                "status": row.get("status"),
                "stop_reason": reason if isinstance(reason, str) and reason else None,
                "error": None if error is None or error != error else str(error)}
            if "feasible" in row:  # several objectives or constraints (orchestrator/pareto_records.py)
                outcomes[str(row["trial_id"])].update(feasible=bool(row["feasible"]),
                                                       pareto_rank=_int_or_none(row.get("pareto_rank")))
    fs, root = filesystem(experiment_path)
    with fs.open_output_stream(f"{root}/{OUTCOMES_FILE}") as f:
        f.write(json.dumps({"metric": metric, "trials": outcomes}, indent=1, sort_keys=True).encode())


def _int_or_none(value: Any) -> int | None:
    try:
        return int(value)  # None, NaN and pandas' NA are no rank
    except (TypeError, ValueError):
        return None


def _read_outcomes(experiment_path: str) -> dict:
    fs, root = filesystem(experiment_path)
    try:
        with fs.open_input_stream(f"{root}/{OUTCOMES_FILE}") as f:
            data = json.loads(f.read().decode())
    except (FileNotFoundError, OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _error_file(experiment_path: str, trial_dir: str) -> str | None:
    """The last line of a trial's ``error.txt`` (Tune writes it when the trial raised)."""
    fs, root = filesystem(experiment_path)
    try:
        with fs.open_input_stream(f"{root}/{trial_dir}/error.txt") as f:
            lines = f.read().decode(errors="replace").strip().splitlines()
    except (FileNotFoundError, OSError):
        return None
    return lines[-1] if lines else "failed (empty error.txt)"


def _results(experiment_path: str) -> Iterator[tuple[str, list[dict]]]:
    """(trial directory name, its results in order) for every trial of the experiment."""
    fs, root = filesystem(experiment_path)
    infos = fs.get_file_info(pafs.FileSelector(root, recursive=False, allow_not_found=True))
    if not infos:
        raise SpecError(f"export: {experiment_path!r} holds no experiment; give the directory 'tuneorch run' printed")
    for info in sorted(infos, key=lambda i: i.path):
        if info.type != pafs.FileType.Directory:
            continue
        path = f"{info.path}/result.json"
        if fs.get_file_info(path).type != pafs.FileType.File:
            continue
        with fs.open_input_stream(path) as f:
            lines = f.read().decode().splitlines()
        yield posixpath.basename(info.path), [json.loads(line) for line in lines if line.strip()]


def _flatten(value: Any, prefix: str) -> dict[str, Any]:
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for key, sub in value.items():
            out.update(_flatten(sub, f"{prefix}/{key}" if prefix else str(key)))
        return out
    return {prefix: value}


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value)  # NaN/inf kept: a diverged trial is data too


def tables(experiment_path: str) -> dict[str, pa.Table]:
    trials, metric_rows, history_rows = [], [], []
    outcomes = _read_outcomes(experiment_path)
    known, tuned_metric = outcomes.get("trials") or {}, outcomes.get("metric")
    for trial_dir, results in _results(experiment_path):
        if not results:
            continue
        trial_id = results[-1].get("trial_id")
        last_config: dict[str, Any] = {}
        last_metrics: dict[str, float] = {}
        for result in results:
            step = result.get("training_iteration")
            timestamp = result.get("timestamp")
            for key, value in _flatten({k: v for k, v in result.items() if k not in _NOT_METRICS}, "").items():
                number = _number(value)
                if number is not None:
                    metric_rows.append((trial_id, step, timestamp, key, number))
                    last_metrics[key] = number
            config = _flatten(redact_config(result.get("config") or {}), "")
            for key, value in config.items():
                if key not in last_config or last_config[key] != value:
                    history_rows.append((trial_id, step, key, json.dumps(value, default=str)))
            last_config = config
        status, reason, error = _outcome(known.get(str(trial_id)), results[-1], tuned_metric,
                                         lambda: _error_file(experiment_path, trial_dir))
        known_row = known.get(str(trial_id)) if isinstance(known.get(str(trial_id)), dict) else {}
        pareto = {k: known_row[k] for k in ("pareto_rank", "feasible") if k in known_row}
        row = {"trial_id": trial_id, "status": status, "stop_reason": reason, "error": error,
               "iterations": results[-1].get("training_iteration"), **pareto, **last_metrics,
               "config_json": json.dumps(redact_config(results[-1].get("config") or {}), default=str,
                                         sort_keys=True)}
        row.update({f"config/{k}": v for k, v in last_config.items()})
        trials.append(row)
    seen = {str(row["trial_id"]) for row in trials}
    for trial_id, outcome in sorted(known.items()):  # failed before its first report
        if trial_id not in seen and isinstance(outcome, dict):
            trials.append({"trial_id": trial_id, "status": outcome.get("status"),
                           "stop_reason": outcome.get("stop_reason"), "error": outcome.get("error")})

    metric_rows.sort(key=lambda r: (str(r[0]), r[1] or 0, r[3]))  # sort before dictionary-encoding
    metrics = pa.table({
        "trial_id": pa.array([r[0] for r in metric_rows], pa.string()).dictionary_encode(),
        "step": pa.array([r[1] for r in metric_rows], pa.int64()),
        "timestamp": pa.array([r[2] for r in metric_rows], pa.int64()),
        "key": pa.array([r[3] for r in metric_rows], pa.string()).dictionary_encode(),
        "value": pa.array([r[4] for r in metric_rows], pa.float64()),
    })
    history = pa.table({
        "trial_id": pa.array([r[0] for r in history_rows], pa.string()),
        "step": pa.array([r[1] for r in history_rows], pa.int64()),
        "key": pa.array([r[2] for r in history_rows], pa.string()),
        "value_json": pa.array([r[3] for r in history_rows], pa.string()),
    })
    return {"trials": _trials_table(trials), "metrics": metrics, "param_history": history}


def _outcome(known: dict | None, last: dict, metric: str | None,
             error_file) -> tuple[str | None, str | None, str | None]:
    """``(status, stop_reason, error)`` of a trial: as the run decided, else from its files."""
    if isinstance(known, dict) and known.get("status"):
        reason = known.get("stop_reason") if "stop_reason" in known else (
            stop_reason_of(last) if known["status"] == FINISHED else None)
        return known["status"], reason, known.get("error")
    error = error_file()
    if error is not None:
        return FAILED, None, error
    failure = next(filter(None, (nonfinite_failure(last, m) for m in (
        metric if isinstance(metric, list) else [metric]))), None)
    if failure:
        return FAILED, None, failure
    return (FINISHED if last.get("done") else None), stop_reason_of(last) if last.get("done") else None, None


_TEXT_COLUMNS = ("status", "stop_reason", "error")


def _trials_table(rows: list[dict]) -> pa.Table:
    """Typed columns where a column holds one type; JSON text where it mixes (e.g. choices)."""
    columns = list(dict.fromkeys(k for row in rows for k in row))
    arrays = {}
    for column in columns:
        values = [row.get(column) for row in rows]
        if column in _TEXT_COLUMNS:  # typed as text also when every value is null
            arrays[column] = pa.array([None if v is None else str(v) for v in values], pa.string())
            continue
        try:
            arrays[column] = pa.array(values)
        except (pa.ArrowInvalid, pa.ArrowTypeError):
            arrays[column] = pa.array([None if v is None else json.dumps(v, default=str) for v in values], pa.string())
    return pa.table(arrays)


def export_parquet(experiment_path: str, out: str | None = None) -> dict[str, str]:
    """Write the three tables under ``out`` (default: ``<experiment>/parquet``); return their paths."""
    out = out or posixpath.join(experiment_path, "parquet")
    fs, root = filesystem(out)
    fs.create_dir(root, recursive=True)
    written = {}
    for name, table in tables(experiment_path).items():
        path = f"{root}/{name}.parquet"
        pq.write_table(table, path, filesystem=fs)
        written[name] = path
    return written
