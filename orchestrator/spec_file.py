"""The experiment spec as a data file, ``<experiment>/tuneorch-spec.json``, read back by resume.

An experiment folder is data: it is copied, shared and synced from buckets. Reading it must
never run code, so the spec is JSON, not a pickle: plain fields as they are, the search space
with each domain tagged (``{"__domain__": "float", ...}``, labels kept so parameter names stay
exactly as they were), and the trainable by its import path (``package.module:function``). A
trainable that has no import path (a function defined in ``__main__``, a lambda, a closure)
is named in the file but refused at resume, with the way to make it importable.

Searcher and scheduler *objects* (a Ray ``Searcher`` passed to ``tune()``) are recorded by
class name only: Tune restores those objects from its own state on resume; the spec only
needs to say that there was one. Their registry names (``"tpe"``) are kept as they are.
"""

from __future__ import annotations

import dataclasses
import importlib
import json
import os
from typing import Any

from orchestrator.spec import ExperimentSpec, SpecError
from search_algs.space import Categorical, Float, Int, Space

SPEC_FILE = "tuneorch-spec.json"
#: The pickle earlier versions wrote; never read (it could run any code): see load_spec.
LEGACY_SPEC_FILE = "tuneorch-spec.pkl"
FORMAT = 1

_DOMAIN = "__domain__"
_TUPLE = "__tuple__"
_OBJECT = "__object__"  # something that is not data: its type and repr, for the message


class ResumeSpecError(SpecError):
    """The saved spec cannot be turned back into a runnable experiment."""


# ---- writing -----------------------------------------------------------------------------

def to_data(spec: ExperimentSpec) -> dict:
    """Plain JSON data for ``spec`` (see the module docstring for what each field becomes)."""
    fields = {}
    for f in dataclasses.fields(spec):
        value = getattr(spec, f.name)
        if f.name == "trainable":
            fields[f.name] = _trainable_path(value)
        elif f.name == "space":
            fields[f.name] = _encode(value.template if isinstance(value, Space) else value)
        elif f.name in ("search", "scheduler") and not (value is None or isinstance(value, str)):
            fields[f.name] = {_OBJECT: _qualname(type(value))}
        else:
            fields[f.name] = _encode(value)
    return {"format": FORMAT, "spec": fields}


def save_spec(spec: ExperimentSpec, experiment_path: str) -> None:
    """Write ``<experiment_path>/tuneorch-spec.json`` (local path or any pyarrow.fs URI)."""
    fs, path = _filesystem(experiment_path)
    fs.create_dir(path, recursive=True)
    # Key order is kept: the order of the space is the order of its parameters.
    text = json.dumps(to_data(spec), indent=1, allow_nan=True)
    with fs.open_output_stream(f"{path}/{SPEC_FILE}") as f:
        f.write(text.encode("utf-8"))


def _trainable_path(trainable: Any) -> Any:
    """``module:qualname`` when importing it gives back this very object, else an object marker."""
    if isinstance(trainable, str):
        return trainable
    module = getattr(trainable, "__module__", None)
    qualname = getattr(trainable, "__qualname__", None)
    if module and qualname and module != "__main__" and "<" not in qualname:
        try:
            target = importlib.import_module(module)
            for part in qualname.split("."):
                target = getattr(target, part)
        except Exception:  # noqa: BLE001 - not importable by name: recorded as an object
            target = None
        if target is trainable:
            return f"{module}:{qualname}"
    return {_OBJECT: f"{module or '?'}:{qualname or type(trainable).__name__}"}


def _encode(value: Any) -> Any:
    if isinstance(value, Float):
        return {_DOMAIN: "float", "low": value.low, "high": value.high, "log": value.log,
                "step": value.step, "label": value.label}
    if isinstance(value, Int):
        return {_DOMAIN: "int", "low": value.low, "high": value.high, "log": value.log,
                "step": value.step, "label": value.label}
    if isinstance(value, Categorical):
        return {_DOMAIN: "categorical", "choices": [_encode(c) for c in value.choices],
                "weights": None if value.weights is None else list(value.weights), "label": value.label}
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        return value
    if isinstance(value, dict):
        if any(not isinstance(k, str) for k in value):
            return {_OBJECT: f"dict with non-string keys: {value!r}"[:200]}
        return {k: _encode(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_encode(v) for v in value]
    if isinstance(value, tuple):
        return {_TUPLE: [_encode(v) for v in value]}
    item = getattr(value, "item", None)  # numpy scalars
    if callable(item) and type(value).__module__ == "numpy":
        return _encode(item())
    return {_OBJECT: f"{_qualname(type(value))}: {value!r}"[:200]}


# ---- reading -----------------------------------------------------------------------------

def load_spec(experiment_path: str) -> ExperimentSpec:
    """The spec of an experiment, from its JSON file; raises :class:`ResumeSpecError` when it is
    missing, malformed, or names a trainable that cannot be imported."""
    fs, path = _filesystem(experiment_path)
    try:
        with fs.open_input_stream(f"{path}/{SPEC_FILE}") as f:
            raw = f.read()
    except (FileNotFoundError, OSError):
        legacy = _exists(fs, f"{path}/{LEGACY_SPEC_FILE}")
        raise ResumeSpecError(
            f"resume: {experiment_path!r} holds no {SPEC_FILE}; "
            + (f"it was written by an older tuneorch as a pickle ({LEGACY_SPEC_FILE}), which resume "
               f"no longer reads because unpickling a file from a folder runs any code in it; "
               f"start the experiment again" if legacy else
               "give the experiment directory that 'tuneorch run' printed (it ends in <name>-<date>-<time>)")
        ) from None
    try:
        data = json.loads(raw.decode("utf-8"))
        fields = data["spec"]
        if data.get("format") != FORMAT or not isinstance(fields, dict):
            raise ValueError(f"format {data.get('format')!r}")
    except (UnicodeDecodeError, ValueError, KeyError, TypeError) as exc:
        raise ResumeSpecError(
            f"resume: {experiment_path}/{SPEC_FILE} is not a tuneorch spec ({type(exc).__name__}: "
            f"{str(exc)[:200]}); it may be damaged: restore it from a copy or start the experiment again"
        ) from None
    known = {f.name for f in dataclasses.fields(ExperimentSpec)}
    values = {k: v for k, v in fields.items() if k in known}
    trainable = values.get("trainable")
    if isinstance(trainable, dict):
        raise ResumeSpecError(
            f"resume: the trainable {trainable.get(_OBJECT)!r} was passed as a Python object that "
            f"cannot be imported by name (defined in __main__, a lambda or a closure), so resume "
            f"cannot find it; move it into a module on the PYTHONPATH and run with "
            f"trainable 'package.module:function'"
        )
    try:
        values["space"] = Space.of(_decode(values["space"]))
    except Exception as exc:  # noqa: BLE001 - whatever is wrong, the file is the cause
        raise ResumeSpecError(
            f"resume: the search space in {experiment_path}/{SPEC_FILE} cannot be read back "
            f"({type(exc).__name__}: {str(exc)[:300]}); start the experiment again"
        ) from None
    for key in [k for k in values if k != "space"]:
        values[key] = _decode(values[key])
    for key in ("search", "scheduler"):
        if isinstance(fields.get(key), dict):  # an object: Tune restores it from its own state
            values[key] = None
    return ExperimentSpec(**values)


def _decode(value: Any) -> Any:
    if isinstance(value, list):
        return [_decode(v) for v in value]
    if not isinstance(value, dict):
        return value
    kind = value.get(_DOMAIN)
    if kind == "float":
        return Float(value["low"], value["high"], log=value["log"], step=value["step"], label=value["label"])
    if kind == "int":
        return Int(value["low"], value["high"], log=value["log"], step=value["step"], label=value["label"])
    if kind == "categorical":
        return Categorical([_decode(c) for c in value["choices"]], value["weights"], label=value["label"])
    if _TUPLE in value and len(value) == 1:
        return tuple(_decode(v) for v in value[_TUPLE])
    if _OBJECT in value and len(value) == 1:
        return None  # not data when it was saved; nothing on resume reads these fields
    return {k: _decode(v) for k, v in value.items()}


# ---- helpers -----------------------------------------------------------------------------

def _filesystem(experiment_path: str):
    import pyarrow.fs

    uri = experiment_path if "://" in experiment_path else "file://" + os.path.abspath(experiment_path)
    return pyarrow.fs.FileSystem.from_uri(uri)


def _exists(fs: Any, path: str) -> bool:
    import pyarrow.fs

    try:
        return fs.get_file_info(path).type != pyarrow.fs.FileType.NotFound
    except OSError:
        return False


def _qualname(cls: type) -> str:
    return f"{cls.__module__}:{cls.__qualname__}"
