"""Parquet tables of an experiment, read from the results Tune writes in the experiment directory.

Three tables, written with pyarrow (to a local folder or any ``pyarrow.fs`` URI):

* ``trials.parquet``: one row per trial: ``trial_id``, ``iterations``, the last value of every
  numeric metric, and the config (flattened ``config/a/b`` columns plus ``config_json``).
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

from orchestrator.spec import SpecError
from orchestrator.redaction import redact_config

# Keys Tune adds to every result that are bookkeeping, not metrics.
_NOT_METRICS = {"trial_id", "date", "hostname", "node_ip", "pid", "done", "should_checkpoint",
                "checkpoint_dir_name", "timestamp", "config", "experiment_tag"}


def _filesystem(uri: str) -> tuple[pafs.FileSystem, str]:
    return pafs.FileSystem.from_uri(uri if "://" in uri else "file://" + posixpath.abspath(uri))


def _results(experiment_path: str) -> Iterator[tuple[str, list[dict]]]:
    """(trial directory name, its results in order) for every trial of the experiment."""
    fs, root = _filesystem(experiment_path)
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
    for _, results in _results(experiment_path):
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
        row = {"trial_id": trial_id, "iterations": results[-1].get("training_iteration"), **last_metrics,
               "config_json": json.dumps(redact_config(results[-1].get("config") or {}), default=str,
                                         sort_keys=True)}
        row.update({f"config/{k}": v for k, v in last_config.items()})
        trials.append(row)

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


def _trials_table(rows: list[dict]) -> pa.Table:
    """Typed columns where a column holds one type; JSON text where it mixes (e.g. choices)."""
    columns = list(dict.fromkeys(k for row in rows for k in row))
    arrays = {}
    for column in columns:
        values = [row.get(column) for row in rows]
        try:
            arrays[column] = pa.array(values)
        except (pa.ArrowInvalid, pa.ArrowTypeError):
            arrays[column] = pa.array([None if v is None else json.dumps(v, default=str) for v in values], pa.string())
    return pa.table(arrays)


def export_parquet(experiment_path: str, out: str | None = None) -> dict[str, str]:
    """Write the three tables under ``out`` (default: ``<experiment>/parquet``); return their paths."""
    out = out or posixpath.join(experiment_path, "parquet")
    fs, root = _filesystem(out)
    fs.create_dir(root, recursive=True)
    written = {}
    for name, table in tables(experiment_path).items():
        path = f"{root}/{name}.parquet"
        pq.write_table(table, path, filesystem=fs)
        written[name] = path
    return written
