"""The experiment spec: one object behind the Python API, the YAML files and the CLI.

Everything a user can type is checked here, on the driver, before Ray starts: each problem
becomes one :class:`SpecError` naming the field, the constraint, the value received and the
fix. :meth:`ExperimentSpec.validate` is the one pre-flight: ``tuneorch validate``, ``tuneorch
run``, ``orchestrator.tune()`` and ``orchestrator.run(spec)`` all call it, and it builds the
searcher and scheduler with their options (:mod:`orchestrator.components`) so that validate
and run cannot disagree.
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
from orchestrator.components import check_components
from orchestrator.errors import SpecError
from orchestrator.held_out import check_options as check_held_out
from orchestrator.redaction import is_secret_name
from orchestrator.tracking.model_registry import find_model_loader
from search_algs.errors import SpaceError, describe_value
from search_algs.space import Categorical, Space, _contains_domain, _is_domain


RESOURCE_KEYS = {"cpu", "gpu", "memory", "custom", "workers", "strategy"}
PLACEMENT_STRATEGIES = ("PACK", "SPREAD", "STRICT_PACK", "STRICT_SPREAD")

# More trials than this is a typo or a wish for "until the budget ends", which time_budget_s says.
MAX_NUM_SAMPLES = 1_000_000
# No count, seed or size a spec holds is anywhere near this; beyond it a number is a typo (and
# Python cannot even print one of more than 4300 digits).
HUGE_INT = 10**40
MAX_SEED = 2**63 - 1

# Keys Tune puts in every result, which `stop` may name besides the trainable's own metrics.
TUNE_RESULT_KEYS = (
    "training_iteration", "time_total_s", "time_this_iter_s", "time_since_restore",
    "iterations_since_restore", "timesteps_total", "episodes_total", "timesteps_since_restore",
    "episode_reward_mean",
)

# tracking_uri schemes MLflow's stores accept (database schemes may carry a driver: mysql+pymysql).
TRACKING_SCHEMES = ("http", "https", "sqlite", "postgresql", "mysql", "mssql", "file", "databricks",
                    "databricks-uc", "uc")
# storage_path schemes pyarrow's filesystems (which Ray Tune uses) understand.
STORAGE_SCHEMES = ("file", "s3", "gs", "gcs", "hdfs", "viewfs", "abfs", "abfss", "az", "mock", "memory")

ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


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
    # Names of environment variables set on the driver that hold credentials: they reach the
    # trainable as environment variables (orchestrator/cluster.py), never through the config,
    # which Ray writes into trial folder names and the experiment folder.
    secrets: list | None = None
    # Multi-objective and constrained tuning: ``metric`` and ``mode`` may be lists (one mode per
    # objective); ``constraints`` are strings "METRIC OP BOUND" (OP: <=, >=, <, >), also with one
    # objective; a trial is feasible when every one holds. ``select: {metric, mode}`` picks
    # best_config from the Pareto front by one objective (default: the knee point);
    # ``reference_point`` (one number per objective, user's units) for the hypervolume (default:
    # the worst value per objective plus 10% of its range). See search_algs/core/pareto.py.
    constraints: list | None = None
    select: dict | None = None
    reference_point: list | None = None

    # ---- objectives (one or several) ------------------------------------------------------

    @property
    def objectives(self) -> list[str]:
        """The objectives as a list (one entry for a single metric)."""
        return list(self.metric) if isinstance(self.metric, (list, tuple)) else [self.metric]

    @property
    def modes(self) -> list[str]:
        return list(self.mode) if isinstance(self.mode, (list, tuple)) else [self.mode]

    @property
    def multi_objective(self) -> bool:
        return isinstance(self.metric, (list, tuple)) and len(self.metric) > 1

    @property
    def pareto(self) -> bool:
        """Whether the run ranks trials by Pareto dominance and feasibility (several objectives
        or constraints): the searcher and the scheduler must support it."""
        return self.multi_objective or bool(self.constraints)

    def parsed_constraints(self) -> list:
        from search_algs.core.pareto import parse_constraint

        return [parse_constraint(c) for c in self.constraints or []]

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
            if _is_empty(data.get(required)):
                raise SpecError(f"{source}: '{required}' is required; {REQUIRED_FIELD_HINTS[required]}")
        for key in ("search", "scheduler"):  # `search: {name: tpe, n_startup: 5}` form
            value = data.get(key)
            if isinstance(value, Mapping):
                if "name" not in value:
                    raise SpecError(
                        f"{source}: '{key}' as a mapping needs a 'name', got {_show(dict(value))}; "
                        f"e.g. {key}: {{name: {'tpe, n_startup: 5' if key == 'search' else 'asha, max_t: 10'}}}"
                    )
                separate = data.get(f"{key}_options")
                if separate is not None and not isinstance(separate, Mapping):
                    raise SpecError(f"{key}_options: must be a mapping of options, got {_show(separate)}; "
                                    f"e.g. {key}_options: {{}}")
                options = dict(value)
                data[key] = options.pop("name")
                data[f"{key}_options"] = {**options, **dict(separate or {})}
        spec = cls(**data)
        spec.validate()
        return spec

    @classmethod
    def from_yaml(cls, path: str, overrides: list[str] | None = None) -> "ExperimentSpec":
        if not os.path.exists(path):
            raise SpecError(f"spec file {path!r} does not exist; give the path of a YAML experiment spec")
        try:
            with open(path, "rb") as f:
                raw = f.read()
        except OSError as exc:
            raise SpecError(
                f"spec file {path!r} cannot be read ({exc.strerror or exc}); give the path of a readable "
                f"YAML file, e.g. examples/digits_mlp.yaml"
            ) from None
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise SpecError(
                f"spec file {path!r} is not UTF-8 text (byte {raw[exc.start]:#04x} at offset {exc.start}); "
                f"is it the right file? give a YAML text file, e.g. examples/digits_mlp.yaml"
            ) from None
        try:
            data = yaml.load(text, Loader=_SpecLoader)
        except yaml.YAMLError as exc:
            raise SpecError(f"spec file {path!r} is not valid YAML: {exc}") from None
        except RecursionError:
            raise SpecError(f"spec file {path!r} nests too deeply to be a spec; see examples/digits_mlp.yaml") from None
        if data is None:
            raise SpecError(f"spec file {path!r} is empty; see examples/digits_mlp.yaml for the fields")
        if not isinstance(data, Mapping):
            raise SpecError(f"spec file {path!r}: expected a mapping of fields at the top, got {type(data).__name__}")
        for item in overrides or []:
            apply_override(data, item)
        _refuse_huge_numbers(data, "")
        return cls.from_dict(data, source=f"spec file {path!r}")

    # ---- validation --------------------------------------------------------------------

    def validate(self) -> None:
        """Check every field; raise :class:`SpecError` on the first problem.

        The one pre-flight of every entry point: it also builds the searcher and the scheduler
        with their options (throw-away objects, no files written) and checks
        ``points_to_evaluate`` against the space, so nothing it accepts is refused once Ray runs.
        """
        for f in dataclasses.fields(self):
            _refuse_huge_numbers(getattr(self, f.name), f.name)
        if not isinstance(self.name, str) or not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.\-]*", self.name):
            raise SpecError(
                f"name: must be letters, digits, '_', '-' or '.', got {self.name!r}; e.g. name: digits-mlp"
            )
        self._check_objectives()
        if isinstance(self.num_samples, bool) or not isinstance(self.num_samples, int) or self.num_samples <= 0:
            raise SpecError(f"num_samples: must be a positive integer, got {_show(self.num_samples)}; e.g. num_samples: 20")
        if self.num_samples > MAX_NUM_SAMPLES:
            raise SpecError(
                f"num_samples: at most {MAX_NUM_SAMPLES:,} trials, got {_show(self.num_samples)}; use a smaller "
                f"number, or to tune until a deadline set time_budget_s (seconds) with num_samples: {MAX_NUM_SAMPLES}"
            )
        if self.max_concurrent is not None and (
            isinstance(self.max_concurrent, bool) or not isinstance(self.max_concurrent, int) or self.max_concurrent <= 0
        ):
            raise SpecError(
                f"max_concurrent: must be a positive integer or left out (fills the cluster), got {self.max_concurrent!r}"
            )
        if self.seed is not None and (isinstance(self.seed, bool) or not isinstance(self.seed, int)
                                      or not 0 <= self.seed <= MAX_SEED):
            raise SpecError(f"seed: must be a non-negative integer (at most 2**63 - 1) or null, got {_show(self.seed)}; e.g. seed: 0")
        if isinstance(self.max_failures, bool) or not isinstance(self.max_failures, int) or self.max_failures < -1:
            raise SpecError(f"max_failures: must be an integer >= 0 (or -1 for unlimited), got {self.max_failures!r}")
        if self.keep_checkpoints is not None and (
            isinstance(self.keep_checkpoints, bool) or not isinstance(self.keep_checkpoints, int) or self.keep_checkpoints < 1
        ):
            raise SpecError(
                f"keep_checkpoints: must be a positive integer (checkpoints kept per trial) or null "
                f"(keep all), got {self.keep_checkpoints!r}"
            )
        if self.time_budget_s is not None and (
            isinstance(self.time_budget_s, bool) or not isinstance(self.time_budget_s, (int, float))
            or not math.isfinite(self.time_budget_s) or self.time_budget_s <= 0
        ):
            raise SpecError(
                f"time_budget_s: must be a positive, finite number of seconds or null (no limit), got "
                f"{_show(self.time_budget_s)}; e.g. time_budget_s: 3600"
            )
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
        self._check_stop()
        self._check_storage_path()
        self._check_tracking_uri()
        self._check_secrets()
        if self.address is not None and not isinstance(self.address, str):
            raise SpecError(f"address: must be null, 'auto', 'local' or 'ray://host:port', got {self.address!r}")
        for key in ("search_options", "scheduler_options"):
            options = getattr(self, key)
            if not isinstance(options, Mapping):
                raise SpecError(f"{key}: must be a mapping of options, got {_show(options)}; e.g. {key}: {{}}")
            bad = [k for k in options if not isinstance(k, str) or not k.isidentifier()]
            if bad:
                raise SpecError(f"{key}: option names must be identifiers, got {_show(bad[0])}; "
                                f"see the {key.split('_')[0]}'s class docstring for its options")
        self.resources = normalise_resources(self.resources)
        self._check_space()
        self._check_secret_values()
        self._check_points()
        self.held_out_seeds = check_held_out(self.held_out_seeds, self.seed_key, self.space)
        self._check_choice("search", self.search, registry.SEARCHERS, "ray.tune.search.Searcher")
        self._check_choice("scheduler", self.scheduler, registry.SCHEDULERS, "ray.tune.schedulers.TrialScheduler")
        self._check_pareto_components()
        self.load_trainable()
        self._check_register_model()
        check_components(self)  # the searcher and scheduler, built with their options

    def _check_objectives(self) -> None:
        """``metric``/``mode`` (one or a list each), ``constraints``, ``select``, ``reference_point``."""
        metric, mode = self.metric, self.mode
        if isinstance(metric, (list, tuple)) and len(metric) == 1 and isinstance(mode, (list, tuple)) \
                and len(mode) == 1:
            self.metric, self.mode = metric, mode = metric[0], mode[0]  # one objective: as today
        if isinstance(metric, (list, tuple)):
            for m in metric:
                if not isinstance(m, str) or not m:
                    raise SpecError(f"metric: every objective must be the name of a reported metric, got "
                                    f"{_show(m)} in {_show(list(metric))}; e.g. metric: [val_loss, latency_ms]")
            dupes = sorted({m for m in metric if list(metric).count(m) > 1})
            if dupes:
                raise SpecError(f"metric: {dupes[0]!r} is listed twice in {_show(list(metric))}; list each "
                                f"objective once")
            if not isinstance(mode, (list, tuple)) or len(mode) != len(metric):
                got = f"{len(mode)} modes" if isinstance(mode, (list, tuple)) else f"mode {_show(mode)}"
                raise SpecError(f"mode: {len(metric)} objectives {_show(list(metric))} need one mode each, got "
                                f"{got}; write mode: [{', '.join(['min'] * len(metric))}] (min or max per objective)")
            bad = [m for m in mode if m not in ("min", "max")]
            if bad:
                raise SpecError(f"mode: each entry must be 'min' or 'max', got {_show(bad[0])} in {_show(list(mode))}")
        else:
            if not isinstance(metric, str) or not metric:
                raise SpecError(f"metric: must be the name of a reported metric, got {metric!r}")
            if isinstance(mode, (list, tuple)):
                raise SpecError(f"mode: a list of modes {_show(list(mode))} needs a list of metrics of the same "
                                f"length, got metric {metric!r}; write mode: min (one objective) or metric: "
                                f"[{metric}, ...]")
            if mode not in ("min", "max"):
                raise SpecError(f"mode: must be 'min' or 'max', got {mode!r}; use mode: min or mode: max")
        constraints = self.constraints
        if constraints is not None:
            if isinstance(constraints, str):
                constraints = self.constraints = [constraints]
            if not isinstance(constraints, (list, tuple)):
                raise SpecError(f"constraints: must be a list of strings 'METRIC OP BOUND', got "
                                f"{_show(constraints)}; e.g. constraints: ['memory_gb <= 16']")
            from search_algs.core.pareto import parse_constraint

            for i, text in enumerate(constraints):
                try:
                    parse_constraint(text)
                except ValueError as exc:
                    raise SpecError(f"constraints[{i}]: {exc}") from None
        if self.select is not None:
            sel = self.select
            if not self.multi_objective:
                raise SpecError(f"select: picks best_config among the Pareto front of several objectives, but "
                                f"metric is {self.metric!r}; drop select or give metric a list")
            if not isinstance(sel, Mapping) or set(sel) - {"metric", "mode"} or sel.get("metric") not in \
                    self.objectives or sel.get("mode", "min") not in ("min", "max"):
                raise SpecError(f"select: must be {{metric: <one of {self.objectives}>, mode: min|max}}, got "
                                f"{_show(sel)}; e.g. select: {{metric: {self.objectives[0]}, mode: "
                                f"{self.modes[0]}}}, or leave it out for the knee point")
        if self.reference_point is not None:
            ref = self.reference_point
            if not self.multi_objective or not isinstance(ref, (list, tuple)) or len(ref) != len(self.objectives) \
                    or any(isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) for v in ref):
                raise SpecError(f"reference_point: must be one finite number per objective "
                                f"{self.objectives} (in their own units, worse than every value you care "
                                f"about), got {_show(ref)}; or leave it out (worst observed + 10% of the range)")

    def _check_pareto_components(self) -> None:
        """Several objectives or constraints: only searchers and schedulers that rank by Pareto
        dominance and feasibility can run them (search_algs/multi_objective.py, ASHA)."""
        if not self.pareto:
            return
        from orchestrator.components import PARETO_SCHEDULERS, PARETO_SEARCHERS

        what = (f"several objectives {self.objectives}" if self.multi_objective
                else f"constraints {list(self.constraints)}")
        search = self.search
        name = search if isinstance(search, str) else type(search).__name__
        if (isinstance(search, str) and search not in PARETO_SEARCHERS) or (
                not isinstance(search, str) and type(search).__name__ != "MultiObjectiveSearch"):
            raise SpecError(f"search: {name!r} cannot tune {what} (it ranks trials by one number); the "
                            f"searchers that can are {list(PARETO_SEARCHERS)}: write search: tpe "
                            f"(multi-objective TPE), search: gp-ei (ParEGO GP-EI) or search: random")
        scheduler = self.scheduler
        sname = scheduler if isinstance(scheduler, str) or scheduler is None else type(scheduler).__name__
        if (isinstance(scheduler, str) and scheduler not in PARETO_SCHEDULERS) or (
                scheduler is not None and not isinstance(scheduler, str)
                and type(scheduler).__name__ != "ASHAScheduler"):
            raise SpecError(f"scheduler: {sname!r} cannot tune {what} (it compares trials by one number); "
                            f"the schedulers that can are {list(PARETO_SCHEDULERS)}: write scheduler: asha "
                            f"(promotion by Pareto rank) or scheduler: fifo")
        if self.held_out_seeds:
            raise SpecError(f"held_out_seeds: re-training the best config is defined for one objective, but "
                            f"this run tunes {what}; drop held_out_seeds")

    def _check_register_model(self) -> None:
        """``register_model`` needs MLflow and the trainable module's ``load_model`` (see
        ``orchestrator/tracking/model_registry.py``): refused here, before anything runs."""
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
        except RecursionError:
            raise SpecError("space: nests too deeply (over Python's recursion limit); flatten it") from None

    def _check_points(self) -> None:
        """``points_to_evaluate`` against the space: a misspelt key would be dropped and a value
        outside its domain would fail inside the searcher, once Ray runs."""
        points = self.points_to_evaluate
        if points is None:
            return
        if isinstance(points, (str, bytes, Mapping)) or not isinstance(points, (list, tuple)):
            raise SpecError(
                f"points_to_evaluate: must be a list of (partial) configs or null, got {_show(points)}; "
                f"e.g. points_to_evaluate: [{{{self.space.names[0]}: ...}}]"
            )
        if len(points) > self.num_samples:
            raise SpecError(
                f"points_to_evaluate: {len(points)} points but num_samples is {self.num_samples}, so "
                f"{len(points) - self.num_samples} would never run; raise num_samples to at least {len(points)} "
                f"or drop points"
            )
        for i, point in enumerate(points):
            try:
                self.space.check_point(point)
            except SpaceError as exc:
                raise SpecError(f"points_to_evaluate[{i}]: {exc} (point {_show(point)})") from None

    def _check_stop(self) -> None:
        """``stop`` is handed to Tune, which stops a trial when ``result[key] >= value``; a key the
        trainable never reports is never reached, so a misspelt one would silently not stop."""
        if self.stop is None:
            return
        if not isinstance(self.stop, Mapping):
            raise SpecError(f"stop: must be a mapping like {{training_iteration: 10}}, got {_show(self.stop)}")
        known = set(TUNE_RESULT_KEYS) | set(self.objectives) | {c.metric for c in self.parsed_constraints()}
        for key, value in self.stop.items():
            if not isinstance(key, str) or not key:
                raise SpecError(f"stop: keys must be result keys (strings), got {_show(key)}; "
                                f"e.g. stop: {{training_iteration: 10}}")
            if isinstance(value, bool) or not isinstance(value, (int, float)) or math.isnan(value):
                raise SpecError(
                    f"stop.{key}: must be a number (the trial stops once result[{key!r}] >= it), got "
                    f"{_show(value)}; e.g. stop: {{{key}: 10}}"
                )
            if key not in known:
                near = _closest(key, known, cutoff=0.8)
                if near is not None:
                    raise SpecError(
                        f"stop.{key}: {key!r} is not a key Tune or the metric reports, so this limit would "
                        f"never be reached (got stop: {_show(dict(self.stop))}); did you mean {near!r}? "
                        f"write stop: {{{near}: {_show(value)}}}"
                    )

    def _check_storage_path(self) -> None:
        path = self.storage_path
        if not isinstance(path, str) or not path.strip() or "\x00" in path:
            raise SpecError(f"storage_path: must be a directory path or URI, got {_show(path)}; "
                            f"e.g. storage_path: ./runs or s3://bucket/runs")
        if "://" in path:
            scheme = path.split("://", 1)[0].lower()
            rest = path.split("://", 1)[1]
            if scheme not in STORAGE_SCHEMES or (scheme != "file" and not rest.strip("/")):
                raise SpecError(
                    f"storage_path: {path!r} is not a URI Ray Tune can write to; use a local directory or "
                    f"one of the schemes {list(STORAGE_SCHEMES)} with a bucket/path, e.g. s3://bucket/runs"
                )
            return
        local = os.path.abspath(os.path.expanduser(path))
        if os.path.exists(local) and not os.path.isdir(local):
            raise SpecError(f"storage_path: {path!r} exists and is not a directory; give a directory "
                            f"(it is created when missing), e.g. storage_path: ./runs")
        parent = local
        while not os.path.exists(parent):  # the nearest existing ancestor must be a writable folder
            parent = os.path.dirname(parent)
        if not os.path.isdir(parent):
            raise SpecError(f"storage_path: {path!r} lies under {parent!r}, which is a file, not a directory; "
                            f"give a directory path")
        if not os.access(parent, os.W_OK | os.X_OK):
            raise SpecError(f"storage_path: {path!r} cannot be created or written ({parent!r} is not writable "
                            f"by this user); choose a writable directory, e.g. storage_path: ./runs")

    def _check_tracking_uri(self) -> None:
        """MLflow accepts many stores; a typo (``htp://``, ``http//host``) would otherwise fail after
        Ray started, or worse, become a local folder named ``http:``."""
        uri = self.tracking_uri
        if uri is None or uri == "":
            return
        fix = (f"use one of the schemes {list(TRACKING_SCHEMES)} (e.g. http://127.0.0.1:5000 or "
               f"sqlite:///runs/mlflow.db), null for a local sqlite store beside the runs, or '' for no tracking")
        if not isinstance(uri, str) or uri != uri.strip() or any(c.isspace() or not c.isprintable() for c in uri):
            raise SpecError(f"tracking_uri: must be an MLflow tracking URI without spaces, got {_show(uri)}; {fix}")
        if uri in ("databricks", "databricks-uc", "uc"):  # the workspace of the default profile
            return
        from urllib.parse import urlsplit

        try:
            parts = urlsplit(uri)
            port = parts.port  # raises on a port that is not a number
        except ValueError as exc:
            raise SpecError(f"tracking_uri: {uri!r} is malformed ({exc}); {fix}") from None
        scheme = parts.scheme.lower()
        base = scheme.split("+", 1)[0]
        if base not in TRACKING_SCHEMES or ("+" in scheme and base not in ("postgresql", "mysql", "mssql")):
            raise SpecError(f"tracking_uri: unknown scheme {scheme + ':' if scheme else 'none'} in {uri!r}; {fix}")
        if base in ("http", "https", "postgresql", "mysql", "mssql") and not parts.hostname:
            raise SpecError(f"tracking_uri: {uri!r} names no host; write {base}://HOST[:PORT]..., e.g. "
                            f"http://127.0.0.1:5000")
        if port is not None and not 0 < port < 65536:
            raise SpecError(f"tracking_uri: port {port} in {uri!r} is not in 1..65535; {fix}")
        if base == "sqlite" and not uri.lower().startswith("sqlite:///"):
            raise SpecError(f"tracking_uri: {uri!r}: a sqlite URI is sqlite:///relative/path.db or "
                            f"sqlite:////absolute/path.db (three or four slashes)")

    def _check_secrets(self) -> None:
        names = self.secrets
        if names is None:
            return
        if isinstance(names, (str, bytes, Mapping)) or not isinstance(names, (list, tuple)):
            raise SpecError(
                f"secrets: must be a list of environment variable names, got {_show(names)}; "
                f"e.g. secrets: [WANDB_API_KEY]"
            )
        for name in names:
            if not isinstance(name, str) or not ENV_NAME.fullmatch(name):
                raise SpecError(
                    f"secrets: {_show(name)} is not an environment variable name (letters, digits and '_', "
                    f"not starting with a digit); list the variables' names, never their values, e.g. secrets: [API_KEY]"
                )
        dupes = sorted({n for n in names if list(names).count(n) > 1})
        if dupes:
            raise SpecError(f"secrets: {dupes} listed twice in {_show(list(names))}; list each variable once")
        missing = [n for n in names if n not in os.environ]
        if missing:
            raise SpecError(
                f"secrets: environment variable {missing[0]!r} is not set on this driver (secrets: "
                f"{_show(list(names))}); export it before starting (export {missing[0]}=...) or drop it from secrets"
            )

    def _check_secret_values(self) -> None:
        """A string under a secret-looking key of the space would be a credential in the config,
        which Ray writes into trial folder names and the experiment folder: refused, with the way
        that keeps it out (an environment variable listed under ``secrets``)."""
        for path, key, value in _string_leaves(self.space.template, ""):
            if is_secret_name(key):
                var = re.sub(r"[^A-Za-z0-9_]", "_", key).upper()
                raise SpecError(
                    f"space.{path.replace('/', '.')}: looks like a credential (a string "
                    f"{'among the choices' if isinstance(value, Categorical) else 'value'} under {key!r}); "
                    f"config values are written by Ray into the experiment folder and trial names; put it "
                    f"in an environment variable and list it under secrets: [{var}], then read os.environ"
                    f"[{var!r}] in the trainable (not a credential? rename the key: names with a "
                    f"part like key, token, password, secret or auth are treated as credentials)"
                )

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
                f"e.g. trainable: tuneorch_examples.digits_mlp:train_digits"
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


REQUIRED_FIELD_HINTS = {
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
        value = yaml.load(raw, Loader=_SpecLoader)
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


def _closest(key: str, known: set[str], cutoff: float = 0.6) -> str | None:
    import difflib

    matches = difflib.get_close_matches(key, sorted(known), n=1, cutoff=cutoff)
    return matches[0] if matches else None


def _show(value: Any) -> str:
    """``repr`` for a message, short and never raising (see ``describe_value``)."""
    return describe_value(value)


def _is_empty(value: Any) -> bool:
    return value is None or (isinstance(value, (str, Mapping, list, tuple)) and len(value) == 0)


class _HugeInt:
    """An integer literal of more than 4300 digits in a YAML file: Python refuses to parse it
    (CVE-2020-10735's limit), so the loader keeps its text and validation names its field."""

    def __init__(self, text: str):
        self.text = text

    def __repr__(self) -> str:
        digits = sum(c.isdigit() for c in self.text)
        return f"{self.text.lstrip('+-')[:8]}... (an integer of {digits} digits)"


class _SpecLoader(yaml.SafeLoader):
    """``yaml.SafeLoader`` that reads an over-long integer as :class:`_HugeInt`, not a traceback."""

    def construct_yaml_int(self, node):
        try:
            return super().construct_yaml_int(node)
        except ValueError:
            return _HugeInt(str(node.value))


_SpecLoader.add_constructor("tag:yaml.org,2002:int", _SpecLoader.construct_yaml_int)


def _refuse_huge_numbers(value: Any, path: str) -> None:
    """No count, bound or seed of a spec is anywhere near 10**40: such a number is a typo, and
    one of more than 4300 digits cannot even be printed in a message by the field's own check."""
    if isinstance(value, _HugeInt) or (isinstance(value, int) and not isinstance(value, bool)
                                       and abs(value) >= HUGE_INT):
        raise SpecError(
            f"{path or 'spec'}: the number {_show(value) if not isinstance(value, _HugeInt) else repr(value)} is "
            f"far too large for any field of a spec; write a number below 10**40 (check for a typo)"
        )
    if isinstance(value, Mapping):
        for key, sub in value.items():
            _refuse_huge_numbers(sub, f"{path}.{key}" if path else str(key))
    elif isinstance(value, (list, tuple)):
        for k, sub in enumerate(value):
            _refuse_huge_numbers(sub, f"{path}[{k}]")


def _string_leaves(node: Any, path: str):
    """``(path, key, value)`` for each string constant and each categorical with a string
    choice in a template; ``key`` is the innermost mapping key above it."""
    key = path.rsplit("/", 1)[-1]
    if _is_domain(node):
        if isinstance(node, Categorical):
            if any(isinstance(c, str) for c in node.choices):
                yield path, key, node
            for k, choice in enumerate(node.choices):
                if _contains_domain(choice) or isinstance(choice, (Mapping, list, tuple)):
                    yield from _string_leaves(choice, path)
        return
    if isinstance(node, str):
        if path:
            yield path, key, node
    elif isinstance(node, Mapping):
        for k, sub in node.items():
            yield from _string_leaves(sub, f"{path}/{k}" if path else str(k))
    elif isinstance(node, (list, tuple)):
        for sub in node:
            yield from _string_leaves(sub, path)


def _qualname(obj: Any) -> str:
    return f"{getattr(obj, '__module__', '?')}:{getattr(obj, '__qualname__', type(obj).__name__)}"
