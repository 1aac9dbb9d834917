"""The Python tuning API: ``orchestrator.tune(...)`` and ``orchestrator.run(spec)``.

``run`` turns a validated :class:`ExperimentSpec` into a Ray Tune experiment: it connects to
(or starts) Ray, checks that the cluster can ever hold one trial, builds the searcher and
scheduler (by registry name or as given), bounds concurrency, records into MLflow and
returns a :class:`TuningResult`.
"""

from __future__ import annotations

import contextlib
import inspect
import logging
import math
import os
import re
import signal
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from orchestrator import cluster, registry
from orchestrator.faults import HangWatchdog, explain_error, repair_experiment_state
from orchestrator.spec import ExperimentSpec, SpecError
from search_algs.base import SpaceSearcher
from search_algs.converters import to_ray_param_space
from search_algs.errors import SpaceError
from search_algs.result_cache import ResultCache

logger = logging.getLogger(__name__)


@dataclass
class TuningResult:
    """What a tuning run produced.

    Attributes:
        best_config: config of the best trial (by its last reported ``metric``).
        best_metric: that trial's last ``metric`` value.
        best_trial_id: its Tune trial id.
        trials: one row per trial (pandas DataFrame): config columns ``config/...``, last
            results, ``trial_id``, ``status``, ``error``.
        experiment_path: the experiment directory (``tuneorch resume`` takes it).
        tracking_uri, mlflow_run_id: where the MLflow records are.
        errors: ``{trial_id: error message}`` of the trials that failed.
        recommended_config: the searcher's own recommendation when it makes one (model-based
            searchers on noisy objectives: the best posterior mean, which may differ from the
            best observed trial); ``None`` otherwise.
        held_out: with ``held_out_seeds``, the best config re-trained on those seeds
            (:class:`orchestrator.held_out.HeldOutResult`: per seed, mean, std, tuning value).
    """

    best_config: dict | None
    best_metric: float | None
    best_trial_id: str | None
    metric: str
    mode: str
    trials: Any
    experiment_path: str
    tracking_uri: str | None
    mlflow_run_id: str | None
    mlflow_experiment_id: str | None
    errors: dict = field(default_factory=dict)
    result_grid: Any = None
    note: str | None = None
    held_out: Any = None
    recommended_config: dict | None = None
    cache_hits: list = field(default_factory=list)
    interrupted: bool = False  # stopped before its end (Ctrl-C, time budget): resume continues it

    def export_parquet(self, out: str | None = None) -> dict[str, str]:
        """Write trials/metrics/param_history Parquet tables (see :mod:`orchestrator.export`)."""
        from orchestrator.export import export_parquet

        return export_parquet(self.experiment_path, out)

    def summary(self) -> str:
        """A human-readable table of the outcome."""
        rows = [
            ("best metric", f"{self.metric} = {self.best_metric:.6g}" if self.best_metric is not None
             else f"none: {self.note or 'no trial reported it'}"),
            ("best trial", self.best_trial_id or "none"),
        ]
        for key, value in sorted(_flatten(self.best_config or {}).items()):
            rows.append((f"  {key}", _short(value)))
        if self.recommended_config is not None and self.recommended_config != self.best_config:
            rows.append(("searcher recommends", "(best posterior mean; the objective looks noisy)"))
            for key, value in sorted(_flatten(self.recommended_config).items()):
                rows.append((f"  {key}", _short(value)))
        if self.held_out is not None:
            rows.extend(self.held_out.summary_rows())
        statuses = self.trials["status"].value_counts().to_dict() if self.trials is not None and len(self.trials) else {}
        rows.append(("trials", ", ".join(f"{n} {s.lower()}" for s, n in sorted(statuses.items())) or "none"))
        if self.cache_hits:
            rows.append(("cached", f"{len(self.cache_hits)} proposals equal to a trained config: "
                                   f"its result was reused, not retrained"))
        for trial_id, message in sorted(self.errors.items()):
            rows.append((f"  error {trial_id}", message.strip().splitlines()[-1][:200] if message else "?"))
        rows.append(("experiment", self.experiment_path))
        rows.append(("resume with", f"tuneorch resume {self.experiment_path}"))
        if self.tracking_uri:
            rows.append(("mlflow records", self.tracking_uri))
            if self.mlflow_run_id:
                rows.append(("mlflow parent run", self.mlflow_run_id))
            rows.append(("open the UI", ui_command(self.tracking_uri)))
        width = max(len(k) for k, _ in rows)
        line = "-" * (width + 3 + max(len(str(v)) for _, v in rows))
        return "\n".join([line] + [f"{k.ljust(width)} | {v}" for k, v in rows] + [line])


def ui_command(tracking_uri: str) -> str:
    if tracking_uri.startswith(("http://", "https://")):
        return f"browse {tracking_uri}"
    return f"tuneorch ui --tracking-uri {tracking_uri}   (then browse http://127.0.0.1:5000)"


def tune(
    trainable: Any,
    space: Any,
    *,
    metric: str,
    mode: str,
    search: Any = "random",
    scheduler: Any = "fifo",
    num_samples: int = 10,
    max_concurrent: int | None = None,
    resources: dict | None = None,
    seed: int | None = 0,
    tracking_uri: str | None = None,
    storage_path: str = "./runs",
    address: str | None = None,
    name: str = "tune",
    search_options: dict | None = None,
    scheduler_options: dict | None = None,
    max_failures: int = 0,
    stop: dict | None = None,
    time_budget_s: float | None = None,
    points_to_evaluate: list | None = None,
    register_model: str | None = None,
    held_out_seeds: list | None = None,
    seed_key: str = "seed",
    verbose: int = 1,
    callbacks: list | None = None,
    report_timeout_s: float | None = None,
    cache_results: bool | None = None,
) -> TuningResult:
    """Tune ``trainable`` over ``space``; see :class:`ExperimentSpec` for every argument.

    ``search`` and ``scheduler`` are registry names (``orchestrator.registry``) or objects:
    this project's searchers and schedulers, or any Ray Tune ``Searcher``/``TrialScheduler``.
    ``address=None`` starts a local Ray; ``"auto"`` or ``"ray://host:10001"`` joins a cluster.
    ``tracking_uri=None`` records into ``sqlite:///<storage_path>/mlflow.db``; ``""`` turns
    MLflow off. ``register_model="name"`` registers the best trial's model in MLflow (alias
    ``champion``); the trainable's module must define ``load_model(checkpoint_dir, config)``
    (see :mod:`orchestrator.tracking.artifacts`). ``callbacks`` are extra Ray Tune callbacks
    (they run on the driver, next to the MLflow tracker). ``held_out_seeds=[101, 102]``
    re-trains the best config (PBT: its config schedule) on each of those seeds, set at
    ``seed_key`` in the config, and reports both numbers (``TuningResult.held_out``).
    """
    spec = ExperimentSpec(
        trainable=trainable, space=space, metric=metric, mode=mode, name=name, search=search,
        search_options=dict(search_options or {}), scheduler=scheduler,
        scheduler_options=dict(scheduler_options or {}), num_samples=num_samples,
        max_concurrent=max_concurrent, resources=resources if resources is not None else {"cpu": 1, "gpu": 0},
        seed=seed, tracking_uri=tracking_uri, storage_path=storage_path, address=address,
        max_failures=max_failures, stop=stop, time_budget_s=time_budget_s,
        points_to_evaluate=points_to_evaluate, register_model=register_model,
        held_out_seeds=held_out_seeds, seed_key=seed_key,
        report_timeout_s=report_timeout_s, cache_results=cache_results,
    )
    spec.validate()
    return run(spec, verbose=verbose, callbacks=callbacks)


def build_searcher(spec: ExperimentSpec) -> tuple[Any, dict]:
    """The searcher for ``spec`` and the ``param_space`` to give Tune alongside it.

    Our searchers receive the space directly (conditional spaces included) and Tune gets an
    empty ``param_space``; a foreign Ray ``Searcher`` gets the space as Ray domains.
    """
    from ray.tune.search import Searcher

    search = spec.search
    if isinstance(search, str):
        cls = registry.searcher_class(search)
        try:
            search = cls(space=spec.space, metric=spec.metric, mode=spec.mode, seed=spec.seed,
                         points_to_evaluate=spec.points_to_evaluate, **spec.search_options)
        except TypeError as exc:
            raise SpecError(f"search_options for {spec.search!r}: {exc}; see {cls.__name__}'s docstring") from None
        return search, {}
    if isinstance(search, SpaceSearcher):
        if search.space is None:
            search.space = spec.space
        if search.metric is None:
            search._metric, search._mode = spec.metric, spec.mode
        return search, {}
    if isinstance(search, Searcher):
        try:
            return search, to_ray_param_space(spec.space.template)
        except SpaceError as exc:
            raise SpecError(f"space: {exc}") from None
    raise SpecError(
        f"search: expected a registry name {sorted(registry.SEARCHERS)} or a ray.tune.search.Searcher, "
        f"got {type(search).__name__}"
    )


def build_scheduler(spec: ExperimentSpec, experiment_path: str) -> Any:
    from ray.tune.schedulers import FIFOScheduler, TrialScheduler

    scheduler = spec.scheduler
    if scheduler is None:
        return FIFOScheduler()
    if isinstance(scheduler, str):
        cls = registry.scheduler_class(scheduler)
        if cls is None:
            return FIFOScheduler()
        options = dict(spec.scheduler_options)
        accepted = inspect.signature(cls).parameters
        if "state_path" in accepted and "://" not in experiment_path:
            # Tune never saves scheduler state: ours persist it here, beside the experiment.
            options.setdefault("state_path", os.path.join(experiment_path, f"{scheduler}-state.json"))
        if "seed" in accepted:
            options.setdefault("seed", spec.seed)
        if "space" in accepted:  # options naming parameters (PBT's mutable) are checked against it now
            options.setdefault("space", spec.space)
        try:
            return cls(**options)
        except TypeError as exc:
            raise SpecError(f"scheduler_options for {spec.scheduler!r}: {exc}; see {cls.__name__}'s docstring") from None
    if isinstance(scheduler, TrialScheduler):
        return scheduler
    raise SpecError(
        f"scheduler: expected a registry name {sorted(registry.SCHEDULERS)} or a TrialScheduler, "
        f"got {type(scheduler).__name__}"
    )


SPEC_FILE = "tuneorch-spec.pkl"


def run(spec: ExperimentSpec, verbose: int = 1, callbacks: list | None = None) -> TuningResult:
    """Run a validated experiment to its end and return what it found.

    Every run gets its own experiment directory, ``<storage_path>/<name>-<UTC time>``,
    which holds Tune's state, the checkpoints, the spec and the tracking outbox, and which
    :func:`resume` takes.
    """
    from ray import tune as ray_tune
    from ray.tune.search import ConcurrencyLimiter

    trainable = spec.load_trainable()
    storage_path = cluster.storage_uri(spec.storage_path)
    run_name = f"{spec.name}-{time.strftime('%Y%m%d-%H%M%S', time.gmtime())}"
    experiment_path = _join(storage_path, run_name)

    # Searcher and scheduler first: their options are checked before Ray starts.
    searcher, param_space = build_searcher(spec)
    scheduler = build_scheduler(spec, experiment_path)

    cluster.connect(spec.address)
    cluster.check_resources(spec.resources)
    max_concurrent = spec.max_concurrent or cluster.trials_that_fit(spec.resources)
    spec.max_concurrent = max_concurrent
    _save_spec(spec, experiment_path)
    tracker = _make_tracker(spec, storage_path, experiment_path, run_name)
    watchdog = HangWatchdog(spec.report_timeout_s) if spec.report_timeout_s else None
    cache = ResultCache(searcher, spec.space) if spec.caches_results() else None

    tuner = ray_tune.Tuner(
        ray_tune.with_resources(trainable, cluster.placement(spec.resources)),
        param_space=param_space,
        tune_config=ray_tune.TuneConfig(
            metric=spec.metric, mode=spec.mode,
            search_alg=ConcurrencyLimiter(cache or searcher, max_concurrent=max_concurrent),
            scheduler=scheduler, num_samples=spec.num_samples, time_budget_s=spec.time_budget_s,
            # A paused/exploited/promoted trial restarts in a warm actor instead of a new process
            # (Ray 2.60 defaults to False): PBT and ASHA promotion pause trials all the time.
            reuse_actors=True,
        ),
        run_config=ray_tune.RunConfig(
            name=run_name, storage_path=storage_path, stop=spec.stop,
            callbacks=_own_callbacks(watchdog, tracker) + list(callbacks or []),
            failure_config=ray_tune.FailureConfig(max_failures=spec.max_failures),
            checkpoint_config=ray_tune.CheckpointConfig(num_to_keep=spec.keep_checkpoints),
            verbose=verbose,
        ),
    )
    return _fit(tuner, spec, experiment_path, tracker, searcher, watchdog)


def _own_callbacks(watchdog: HangWatchdog | None, tracker: Any) -> list:
    # The watchdog comes first: the tracker records the reason it found for a failure.
    if tracker is not None and watchdog is not None:
        tracker.error_notes = watchdog.hung
    return [c for c in (watchdog, tracker) if c is not None]


def resume(experiment_path: str, verbose: int = 1) -> TuningResult:
    """Continue an experiment whose driver stopped (Ctrl-C, crash, lost node).

    Unfinished trials continue from their last checkpoint, errored ones are retried, the
    searcher continues its sequence from its saved state and the tracker finds its MLflow
    runs again instead of creating new ones.
    """
    from ray import tune as ray_tune

    experiment_path = cluster.storage_uri(experiment_path).rstrip("/")
    spec = _load_spec(experiment_path)
    storage_path, run_name = experiment_path.rsplit("/", 1)
    repair_experiment_state(experiment_path)
    cluster.connect(spec.address)
    tracker = _make_tracker(spec, storage_path, experiment_path, run_name)
    _, param_space = build_searcher(spec)
    tuner = ray_tune.Tuner.restore(
        experiment_path,
        trainable=ray_tune.with_resources(spec.load_trainable(), cluster.placement(spec.resources)),
        resume_unfinished=True, resume_errored=True, param_space=param_space or None,
    )
    watchdog = HangWatchdog(spec.report_timeout_s) if spec.report_timeout_s else None
    _replace_callbacks(tuner, _own_callbacks(watchdog, tracker))
    return _fit(tuner, spec, experiment_path, tracker, watchdog=watchdog)


def _replace_callbacks(tuner: Any, callbacks: list) -> None:
    """Give a restored Tuner fresh callbacks.

    ``Tuner.restore`` brings back the pickled RunConfig, whose tracker would replay a stale
    state; Ray has no public way to swap it, so this reaches into the Tuner (one place).
    """
    run_config = tuner._local_tuner.get_run_config()
    run_config.callbacks = callbacks


class TrialReportError(RuntimeError):
    """A trainable reported results the experiment cannot use (e.g. without the metric)."""


# Keys Tune adds to every result: not the user's to choose as a metric.
_AUTO_RESULT_KEYS = {
    "timestamp", "checkpoint_dir_name", "done", "training_iteration", "trial_id", "date",
    "time_this_iter_s", "time_total_s", "pid", "hostname", "node_ip", "time_since_restore",
    "iterations_since_restore", "experiment_tag", "should_checkpoint",
}


def _explain_tune_error(exc: BaseException, spec: ExperimentSpec) -> BaseException | None:
    """Our own clear error for a Tune failure whose cause is the user's reporting."""
    text = str(exc)
    if "did not include the specified metric" not in text:
        return None
    reported = text.split("Result:", 1)[1] if "Result:" in text else ""
    keys = [k for k in dict.fromkeys(re.findall(r"'([^']+)':", reported))
            if k not in _AUTO_RESULT_KEYS and not k.startswith("config/")]
    return TrialReportError(
        f"metric: the trainable reported {keys} but not {spec.metric!r}; report it "
        f"(tune.report({{{spec.metric!r}: value}})) or set metric to one of the reported keys"
    )


def _fit(tuner: Any, spec: ExperimentSpec, experiment_path: str, tracker: Any,
         searcher: Any = None, watchdog: HangWatchdog | None = None) -> TuningResult:
    try:
        with _watch_interrupts() as interrupts:
            grid = tuner.fit()
    except BaseException as exc:
        if tracker is not None:
            tracker.finish(None, None, spec.metric, status="FAILED")
        clearer = _explain_tune_error(exc, spec)
        if clearer is not None:
            raise clearer from None
        raise
    result = _collect(grid, spec, experiment_path, tracker, watchdog.hung if watchdog else {})
    result.cache_hits = _cache_hits(tuner)
    result.interrupted = interrupts["interrupted"] or _interrupted(grid)
    recommend = getattr(searcher, "recommend", None)
    if callable(recommend):
        try:
            result.recommended_config = recommend()
        except Exception as exc:  # noqa: BLE001 - a recommendation is extra; the result stands
            logger.warning("the searcher could not recommend a config (%s: %s)", type(exc).__name__, exc)
    if tracker is not None:
        tracker.finish(result.best_config, result.best_metric, spec.metric,
                       status="FINISHED" if not result.interrupted else "KILLED",
                       extra_metrics={"cache_hits": len(result.cache_hits)})
        if result.mlflow_run_id:  # spec, tables, plots, best checkpoint, model: never fails the run
            try:
                from orchestrator.tracking.artifacts import lineage_of, log_run_artifacts

                log_run_artifacts(spec.tracking_uri, result.mlflow_run_id, experiment_path, result,
                                  spec=spec, lineage=lineage_of(tuner))
            except Exception as exc:  # noqa: BLE001
                logger.warning("MLflow artifacts not uploaded (%s: %s)", type(exc).__name__, exc)
    if getattr(spec, "held_out_seeds", None) and not result.interrupted:
        from orchestrator.held_out import evaluate as evaluate_held_out

        result.held_out = evaluate_held_out(spec, result, tuner)
    if result.interrupted:
        print(f"The run stopped before its end; continue it with: tuneorch resume {experiment_path}")
    return result


@contextlib.contextmanager
def _watch_interrupts():
    """Tell whether Tune ended the run on Ctrl-C; Tune keeps that to itself.

    Tune's handler, installed inside ``fit``, puts back the handler it found on the first
    Ctrl-C and stops gracefully; a second Ctrl-C then reaches that handler, which raises
    ``KeyboardInterrupt`` as Python's default does. So when ours is back in place after the
    fit, Tune was interrupted.
    """
    state = {"interrupted": False}
    if threading.current_thread() is not threading.main_thread():
        yield state  # signal handlers live in the main thread only; neither Tune nor we install one
        return

    def after_first_ctrl_c(signum, frame):
        state["interrupted"] = True
        signal.default_int_handler(signum, frame)

    previous = signal.signal(signal.SIGINT, after_first_ctrl_c)
    try:
        yield state
    finally:
        tune_installs = os.environ.get("TUNE_DISABLE_SIGINT_HANDLER", "0") in ("", "0")
        if tune_installs and signal.getsignal(signal.SIGINT) is after_first_ctrl_c:
            state["interrupted"] = True
        signal.signal(signal.SIGINT, previous)


def _interrupted(grid: Any) -> bool:
    trials = getattr(getattr(grid, "_experiment_analysis", None), "trials", None) or []
    return any(getattr(t, "status", "TERMINATED") not in ("TERMINATED", "ERROR") for t in trials)


def _join(base: str, name: str) -> str:
    return f"{base.rstrip('/')}/{name}" if "://" in base else os.path.join(base, name)


def _save_spec(spec: ExperimentSpec, experiment_path: str) -> None:
    """Keep the spec (cloudpickled: it may hold callables and searcher objects) for resume."""
    import pyarrow.fs
    import ray.cloudpickle as cloudpickle

    fs, path = pyarrow.fs.FileSystem.from_uri(experiment_path if "://" in experiment_path else "file://" + experiment_path)
    fs.create_dir(path, recursive=True)
    with fs.open_output_stream(f"{path}/{SPEC_FILE}") as f:
        f.write(cloudpickle.dumps(spec))


def _load_spec(experiment_path: str) -> ExperimentSpec:
    import pyarrow.fs
    import ray.cloudpickle as cloudpickle

    fs, path = pyarrow.fs.FileSystem.from_uri(experiment_path if "://" in experiment_path else "file://" + experiment_path)
    try:
        with fs.open_input_stream(f"{path}/{SPEC_FILE}") as f:
            return cloudpickle.loads(f.read())
    except FileNotFoundError:
        raise SpecError(
            f"resume: {experiment_path!r} holds no {SPEC_FILE}; give the experiment directory that "
            f"'tuneorch run' printed (it ends in <name>-<date>-<time>)"
        ) from None


def _make_tracker(spec: ExperimentSpec, storage_path: str, experiment_path: str, run_name: str):
    if spec.tracking_uri == "":
        return None
    from orchestrator.tracking import MLflowTracking, default_tracking_uri

    if "://" in storage_path and not storage_path.startswith("file://") and spec.tracking_uri is None:
        raise SpecError(
            f"tracking_uri: storage_path {spec.storage_path!r} is remote, so no local sqlite store can "
            f"live beside it; set tracking_uri to your MLflow server (or '' to turn tracking off)"
        )
    uri = spec.tracking_uri or default_tracking_uri(storage_path.removeprefix("file://"))
    spec.tracking_uri = uri
    summary = spec.summary()
    params = {k: v for k, v in summary.items() if k not in ("resources", "search_options", "scheduler_options")}
    params.update({f"resources.{k}": v for k, v in summary["resources"].items() if v not in (None, {})})
    params.update({f"search.{k}": v for k, v in summary["search_options"].items()})
    params.update({f"scheduler.{k}": v for k, v in summary["scheduler_options"].items()})
    tags = {"tuneorch.experiment_path": experiment_path, "tuneorch.versions": cluster.versions()}
    # The outbox must be a local directory; with remote storage it lives in the home folder.
    outbox_dir = (os.path.join(experiment_path, "mlflow-outbox") if "://" not in experiment_path
                  else os.path.join(os.path.expanduser("~/.tuneorch/outbox"), run_name))
    tracker = MLflowTracking(uri, spec.name, run_name=run_name, outbox_dir=outbox_dir, params=params, tags=tags)
    tracker.start()
    return tracker


def trials_table(grid: Any):
    """One row per trial, including those that failed before reporting anything.

    (``ResultGrid.get_dataframe`` drops trials without results.)
    """
    import pandas as pd

    rows, errors = [], {}
    trials = getattr(getattr(grid, "_experiment_analysis", None), "trials", None) or [None] * len(grid)
    for trial, result in zip(trials, grid):
        metrics = dict(result.metrics or {})
        trial_id = getattr(trial, "trial_id", None) or metrics.get("trial_id")
        row = {k: v for k, v in metrics.items() if k != "config" and not isinstance(v, dict)}
        row.update({f"config/{k}": v for k, v in _flatten(result.config or {}).items()})
        row["trial_id"] = trial_id
        row["status"] = getattr(trial, "status", None) or ("ERROR" if result.error else "TERMINATED")
        row["error"] = None
        if result.error is not None:
            errors[trial_id] = row["error"] = str(result.error)
        rows.append(row)
    return pd.DataFrame(rows), errors


def _cache_hits(tuner: Any) -> list:
    """The proposals the result cache answered, from the search algorithm Tune ran (after a
    resume that is the restored one, not the object built in :func:`run`)."""
    try:
        search_alg = tuner._local_tuner._tune_config.search_alg
    except AttributeError:
        return []
    while search_alg is not None and not isinstance(search_alg, ResultCache):
        search_alg = search_alg.__dict__.get("searcher")
    return list(search_alg.hits) if search_alg is not None else []


def _collect(grid: Any, spec: ExperimentSpec, experiment_path: str, tracker: Any,
             hung: dict | None = None) -> TuningResult:
    frame, errors = trials_table(grid)
    for trial_id, message in errors.items():
        # Say what most likely happened (hang, out of memory, a killed worker) before the raw error.
        reason = explain_error(message, (hung or {}).get(trial_id))
        if reason:
            errors[trial_id] = f"{message.rstrip()}\n{reason}"
            frame.loc[frame["trial_id"] == trial_id, "error"] = errors[trial_id]
    best_config = best_metric = best_trial = None
    try:
        best = grid.get_best_result(metric=spec.metric, mode=spec.mode, scope="last",
                                    filter_nan_and_inf=True)
        value = (best.metrics or {}).get(spec.metric)
        if value is not None and math.isfinite(float(value)):
            best_config, best_metric = best.config, float(value)
            best_trial = (best.metrics or {}).get("trial_id")
    except (RuntimeError, TypeError, ValueError):
        pass  # no trial reported a usable value of the metric: the note says why
    note = None
    if best_config is None and len(frame):
        seen = frame[spec.metric].dropna().tolist()[:3] if spec.metric in frame else []
        note = (f"no trial reported a finite number for {spec.metric!r} (values seen: {seen!r}); "
                f"report a float" if seen else f"no trial reported {spec.metric!r}")
    return TuningResult(
        best_config=best_config, best_metric=best_metric, best_trial_id=best_trial,
        metric=spec.metric, mode=spec.mode, trials=frame, experiment_path=experiment_path,
        tracking_uri=spec.tracking_uri or None,
        mlflow_run_id=getattr(tracker, "parent_run_id", None),
        mlflow_experiment_id=getattr(tracker, "experiment_id", None),
        errors=errors, result_grid=grid, note=note,
    )


def _flatten(config: dict, prefix: str = "") -> dict:
    out = {}
    for key, value in config.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(_flatten(value, name + "/"))
        else:
            out[name] = value
    return out


def _short(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.6g}"
    return str(value)
