"""The experiment spec: one object behind the Python API, the YAML files and the CLI.

Everything a user can type is checked here, on the driver, before Ray starts: each problem
becomes one :class:`SpecError` naming the field, the constraint, the value received and the
fix.
"""

from __future__ import annotations

import dataclasses
import importlib
import inspect
import math
import os
import re
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

import yaml

from orchestrator import registry
from search_algs.errors import SpaceError
from search_algs.space import Space


class SpecError(ValueError):
    """An experiment spec (YAML file, dict or API arguments) is invalid."""


RESOURCE_KEYS = {"cpu", "gpu", "memory", "custom", "workers", "strategy"}
PLACEMENT_STRATEGIES = ("PACK", "SPREAD", "STRICT_PACK", "STRICT_SPREAD")


@dataclass
class ExperimentSpec:
    """What to tune, how, and where to record it. See ``examples/*.yaml`` for the YAML form."""

    trainable: Any
    space: Any
    metric: str
    mode: str
    name: str = "tune"
    search: Any = "random"
    search_options: dict = field(default_factory=dict)
    scheduler: Any = "fifo"
    scheduler_options: dict = field(default_factory=dict)
    num_samples: int = 10
    max_concurrent: int | None = None
    resources: dict = field(default_factory=lambda: {"cpu": 1, "gpu": 0})
    seed: int | None = 0
    tracking_uri: str | None = None
    storage_path: str = "./runs"
    address: str | None = None
    max_failures: int = 0
    keep_checkpoints: int | None = 3
    stop: dict | None = None
    time_budget_s: float | None = None
    points_to_evaluate: list | None = None
    # Re-train the best config (PBT: its config schedule) once per seed not used for tuning,
    # writing the seed into the config at seed_key (orchestrator/held_out.py). None: off.
    held_out_seeds: list | None = None
    seed_key: str = "seed"
    register_model: str | None = None  # registered model name for the best trial's model
    # A running trial that reports nothing for this long is hung: its worker is killed and the
    # trial retried from its last checkpoint (max_failures), then marked failed. None: no limit.
    report_timeout_s: float | None = None
    # Train functionally equal configs once (search_algs/result_cache.py). None: on, except for
    # searchers that treat the objective as noisy (kg, or search_options noise: noisy).
    cache_results: bool | None = None

    # ---- construction ------------------------------------------------------------------

    @classmethod
    def from_dict(cls, data: Mapping, source: str = "spec") -> "ExperimentSpec":
        if not isinstance(data, Mapping):
            raise SpecError(f"{source}: expected a mapping of fields, got {type(data).__name__} {data!r}")
        data = dict(data)
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(map(str, data)) - known)
        if unknown:
            hints = ", ".join(f"{k!r} (did you mean {_closest(k, known)!r}?)" if _closest(k, known) else repr(k)
                              for k in unknown)
            raise SpecError(f"{source}: unknown fields {hints}; known fields are {sorted(known)}")
        for required in ("trainable", "space", "metric", "mode"):
            if data.get(required) in (None, "", {}):
                raise SpecError(f"{source}: '{required}' is required; {_REQUIRED_HINTS[required]}")
        for key in ("search", "scheduler"):  # `search: {name: tpe, n_startup: 5}` form
            value = data.get(key)
            if isinstance(value, Mapping):
                if "name" not in value:
                    raise SpecError(f"{source}: '{key}' as a mapping needs a 'name', got {dict(value)!r}")
                options = dict(value)
                data[key] = options.pop("name")
                data[f"{key}_options"] = {**options, **dict(data.get(f"{key}_options") or {})}
        spec = cls(**data)
        spec.validate()
        return spec

    @classmethod
    def from_yaml(cls, path: str, overrides: list[str] | None = None) -> "ExperimentSpec":
        if not os.path.exists(path):
            raise SpecError(f"spec file {path!r} does not exist; give the path of a YAML experiment spec")
        with open(path) as f:
            try:
                data = yaml.safe_load(f)
            except yaml.YAMLError as exc:
                raise SpecError(f"spec file {path!r} is not valid YAML: {exc}") from None
        if data is None:
            raise SpecError(f"spec file {path!r} is empty; see examples/digits_mlp.yaml for the fields")
        if not isinstance(data, Mapping):
            raise SpecError(f"spec file {path!r}: expected a mapping of fields at the top, got {type(data).__name__}")
        for item in overrides or []:
            apply_override(data, item)
        return cls.from_dict(data, source=f"spec file {path!r}")

    # ---- validation --------------------------------------------------------------------

    def validate(self) -> None:
        """Check every field; raise :class:`SpecError` on the first problem."""
        if not isinstance(self.name, str) or not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.\-]*", self.name):
            raise SpecError(
                f"name: must be letters, digits, '_', '-' or '.', got {self.name!r}; e.g. name: digits-mlp"
            )
        if not isinstance(self.metric, str) or not self.metric:
            raise SpecError(f"metric: must be the name of a reported metric, got {self.metric!r}")
        if self.mode not in ("min", "max"):
            raise SpecError(f"mode: must be 'min' or 'max', got {self.mode!r}; use mode: min or mode: max")
        if isinstance(self.num_samples, bool) or not isinstance(self.num_samples, int) or self.num_samples <= 0:
            raise SpecError(f"num_samples: must be a positive integer, got {self.num_samples!r}; e.g. num_samples: 20")
        if self.max_concurrent is not None and (
            isinstance(self.max_concurrent, bool) or not isinstance(self.max_concurrent, int) or self.max_concurrent <= 0
        ):
            raise SpecError(
                f"max_concurrent: must be a positive integer or left out (fills the cluster), got {self.max_concurrent!r}"
            )
        if self.seed is not None and (isinstance(self.seed, bool) or not isinstance(self.seed, int) or self.seed < 0):
            raise SpecError(f"seed: must be a non-negative integer or null, got {self.seed!r}")
        if isinstance(self.max_failures, bool) or not isinstance(self.max_failures, int) or self.max_failures < -1:
            raise SpecError(f"max_failures: must be an integer >= 0 (or -1 for unlimited), got {self.max_failures!r}")
        if self.keep_checkpoints is not None and (
            isinstance(self.keep_checkpoints, bool) or not isinstance(self.keep_checkpoints, int) or self.keep_checkpoints < 1
        ):
            raise SpecError(
                f"keep_checkpoints: must be a positive integer (checkpoints kept per trial) or null "
                f"(keep all), got {self.keep_checkpoints!r}"
            )
        if self.time_budget_s is not None and not (isinstance(self.time_budget_s, (int, float)) and self.time_budget_s > 0):
            raise SpecError(f"time_budget_s: must be a positive number of seconds, got {self.time_budget_s!r}")
        if self.report_timeout_s is not None and (
            isinstance(self.report_timeout_s, bool) or not isinstance(self.report_timeout_s, (int, float))
            or not math.isfinite(self.report_timeout_s) or self.report_timeout_s <= 0
        ):
            raise SpecError(
                f"report_timeout_s: must be a positive number of seconds (longest a trial may go "
                f"without reporting, setup included) or null, got {self.report_timeout_s!r}; e.g. report_timeout_s: 600"
            )
        if self.cache_results is not None and not isinstance(self.cache_results, bool):
            raise SpecError(f"cache_results: must be true, false or null (automatic), got {self.cache_results!r}")
        if self.cache_results and self._population_based():
            raise SpecError(
                "cache_results: true contradicts scheduler pbt: PBT changes a trial's config while it "
                "trains, so two trials that start from the same config are not the same function; "
                "leave cache_results out (off under PBT) or set it false"
            )
        if self.stop is not None and not isinstance(self.stop, Mapping):
            raise SpecError(f"stop: must be a mapping like {{training_iteration: 10}}, got {self.stop!r}")
        if not isinstance(self.storage_path, str) or not self.storage_path:
            raise SpecError(f"storage_path: must be a directory path or URI, got {self.storage_path!r}")
        if self.address is not None and not isinstance(self.address, str):
            raise SpecError(f"address: must be null, 'auto', 'local' or 'ray://host:port', got {self.address!r}")
        for key in ("search_options", "scheduler_options"):
            if not isinstance(getattr(self, key), Mapping):
                raise SpecError(f"{key}: must be a mapping of options, got {getattr(self, key)!r}")
        self.resources = normalise_resources(self.resources)
        self._check_space()
        from orchestrator.held_out import check_options as check_held_out

        self.held_out_seeds = check_held_out(self.held_out_seeds, self.seed_key, self.space)
        self._check_choice("search", self.search, registry.SEARCHERS, "ray.tune.search.Searcher")
        self._check_choice("scheduler", self.scheduler, registry.SCHEDULERS, "ray.tune.schedulers.TrialScheduler")
        self.load_trainable()
        self._check_register_model()

    def _check_register_model(self) -> None:
        """``register_model`` needs MLflow and the trainable module's ``load_model`` (see
        ``orchestrator/tracking/artifacts.py``): refused here, before anything runs."""
        name = self.register_model
        if name is None:
            return
        if not isinstance(name, str) or not name.strip() or name != name.strip() or "/" in name \
                or ":" in name or name in (".", "..") or len(name) > 256:
            raise SpecError(
                f"register_model: must be a registered model name (no '/' or ':', no surrounding "
                f"spaces, at most 256 characters) or null, got {name!r}; e.g. register_model: digits-mlp"
            )
        if self.tracking_uri == "":
            raise SpecError("register_model: needs MLflow tracking, but tracking_uri is '' (off); "
                            "set tracking_uri (null: a local sqlite store) or drop register_model")
        from orchestrator.tracking.artifacts import find_model_loader

        loader = find_model_loader(self.trainable)
        where = self.trainable.partition(":")[0] if isinstance(self.trainable, str) \
            else getattr(getattr(self.trainable, "func", self.trainable), "__module__", "?")
        if loader is None:
            raise SpecError(
                f"register_model: the trainable's module {where!r} defines no load_model(checkpoint_dir, "
                f"config) -> torch.nn.Module, so the best checkpoint cannot be turned into a model; "
                f"add one (see examples/digits_mlp.py) or drop register_model"
            )
        try:
            inspect.signature(loader).bind("checkpoint_dir", {})
        except TypeError:
            raise SpecError(
                f"register_model: {where}.load_model must take (checkpoint_dir, config), "
                f"got load_model{inspect.signature(loader)}"
            ) from None
        except ValueError:  # no signature to check (a builtin): trust it
            pass

    def _check_space(self) -> None:
        try:
            self.space = Space.of(self.space)
        except SpaceError as exc:
            raise SpecError(f"space: {exc}") from None

    @staticmethod
    def _check_choice(key: str, value: Any, known: Mapping, kind: str) -> None:
        if isinstance(value, str):
            if value not in known:
                raise SpecError(
                    f"{key}: unknown name {value!r}; known names are {sorted(known)} (or pass a {kind} object)"
                )
        elif value is None and key == "scheduler":
            return
        elif isinstance(value, type):
            raise SpecError(f"{key}: pass an instance, not the class {value.__name__}; e.g. {value.__name__}(...)")

    def caches_results(self) -> bool:
        """Whether functionally equal configs are trained once (see ``cache_results``)."""
        if self.cache_results is not None:
            return self.cache_results
        noisy = self.search == "kg" or str(self.search_options.get("noise", "")).lower() == "noisy"
        return not noisy and not self._population_based()

    def _population_based(self) -> bool:
        """Whether the scheduler changes configs during training (ours or Ray's PBT/PB2)."""
        if isinstance(self.scheduler, str):
            return self.scheduler == "pbt"
        return any(cls.__name__ in ("PBTScheduler", "PopulationBasedTraining")
                   for cls in type(self.scheduler).__mro__)

    def load_trainable(self) -> Callable | type:
        """The trainable itself, imported from ``module:attribute`` when given as a string."""
        if not isinstance(self.trainable, str):
            if not callable(self.trainable):
                raise SpecError(f"trainable: must be a function, a Trainable class or 'module:function', got {self.trainable!r}")
            return self.trainable
        module_name, sep, attr = self.trainable.partition(":")
        if not sep or not module_name or not attr:
            raise SpecError(
                f"trainable: must look like 'package.module:function', got {self.trainable!r}; "
                f"e.g. trainable: examples.digits_mlp:train_digits"
            )
        try:
            module = importlib.import_module(module_name)
        except Exception as exc:  # noqa: BLE001 - any import failure is the user's to see
            raise SpecError(
                f"trainable: module {module_name!r} does not import ({type(exc).__name__}: {exc}); "
                f"check the name and that it is on PYTHONPATH (run from the project root or pip install it)"
            ) from None
        if not hasattr(module, attr):
            public = sorted(n for n in dir(module) if not n.startswith("_") and callable(getattr(module, n)))
            raise SpecError(f"trainable: module {module_name!r} has no {attr!r}; it defines {public}")
        return getattr(module, attr)

    def summary(self) -> dict:
        """Plain data describing the run, for logs and MLflow params."""
        return {
            "name": self.name,
            "trainable": self.trainable if isinstance(self.trainable, str) else _qualname(self.trainable),
            "metric": self.metric,
            "mode": self.mode,
            "search": self.search if isinstance(self.search, str) else type(self.search).__name__,
            "scheduler": self.scheduler if isinstance(self.scheduler, str) or self.scheduler is None
            else type(self.scheduler).__name__,
            "num_samples": self.num_samples,
            "max_concurrent": self.max_concurrent,
            "seed": self.seed,
            "resources": self.resources,
            "search_options": dict(self.search_options),
            "scheduler_options": dict(self.scheduler_options),
        }


_REQUIRED_HINTS = {
    "trainable": "give 'package.module:function' (or a callable in the Python API)",
    "space": "give the search space, e.g. lr: {type: float, low: 1.0e-4, high: 0.1, log: true}",
    "metric": "give the name of the metric the trainable reports, e.g. metric: val_loss",
    "mode": "say whether to minimise or maximise the metric: mode: min or mode: max",
}


def normalise_resources(resources: Any) -> dict:
    """``{"cpu": float, "gpu": float, "memory": bytes|None, "custom": {...}}`` from user input."""
    if not isinstance(resources, Mapping):
        raise SpecError(f"resources: must be a mapping like {{cpu: 1, gpu: 0}}, got {resources!r}")
    unknown = set(resources) - RESOURCE_KEYS
    if unknown:
        raise SpecError(f"resources: unknown keys {sorted(unknown)}; allowed are {sorted(RESOURCE_KEYS)}")
    out = {"cpu": resources.get("cpu", 1), "gpu": resources.get("gpu", 0),
           "memory": resources.get("memory"), "custom": dict(resources.get("custom") or {})}
    # A trial that spans several workers (e.g. torch DDP through Ray Train): its own process
    # takes one CPU, each of its `workers` gets cpu/gpu/memory/custom, placed per `strategy`.
    workers, strategy = resources.get("workers", 0), resources.get("strategy", "PACK")
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 0:
        raise SpecError(f"resources.workers: must be an integer >= 0 (0: a one-process trial), got {workers!r}")
    if strategy not in PLACEMENT_STRATEGIES:
        raise SpecError(f"resources.strategy: must be one of {list(PLACEMENT_STRATEGIES)}, got {strategy!r}")
    if workers:
        out.update(workers=workers, strategy=strategy)
    for key in ("cpu", "gpu"):
        value = out[key]
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0 or not math.isfinite(value):
            raise SpecError(f"resources.{key}: must be a number >= 0, got {value!r}")
    if out["cpu"] == 0 and out["gpu"] == 0:
        raise SpecError("resources: a trial needs some cpu or gpu, got cpu=0 and gpu=0; e.g. {cpu: 1}")
    if out["gpu"] > 1 and not float(out["gpu"]).is_integer():
        raise SpecError(f"resources.gpu: fractions are allowed only below 1, got {out['gpu']!r}; use 0.5 or a whole number")
    if out["memory"] is not None and not (isinstance(out["memory"], (int, float)) and out["memory"] > 0):
        raise SpecError(f"resources.memory: must be a positive number of bytes, got {out['memory']!r}")
    for name, amount in out["custom"].items():
        if isinstance(amount, bool) or not isinstance(amount, (int, float)) or amount < 0:
            raise SpecError(f"resources.custom.{name}: must be a number >= 0, got {amount!r}")
    return out


def apply_override(data: dict, item: str) -> None:
    """Apply one ``--set key.sub=value`` (value parsed as YAML) to a spec mapping in place."""
    key, sep, raw = item.partition("=")
    if not sep or not key:
        raise SpecError(f"--set: expected key=value (e.g. --set num_samples=4), got {item!r}")
    try:
        value = yaml.safe_load(raw)
    except yaml.YAMLError:
        value = raw
    parts = key.split(".")
    node = data
    for part in parts[:-1]:
        child = node.get(part)
        if child is None:
            child = node[part] = {}
        if not isinstance(child, dict):
            raise SpecError(f"--set {item!r}: '{part}' holds {child!r}, not a mapping; set the whole field instead")
        node = child
    node[parts[-1]] = value


def _closest(key: str, known: set[str]) -> str | None:
    import difflib

    matches = difflib.get_close_matches(key, sorted(known), n=1, cutoff=0.6)
    return matches[0] if matches else None


def _qualname(obj: Any) -> str:
    return f"{getattr(obj, '__module__', '?')}:{getattr(obj, '__qualname__', type(obj).__name__)}"
