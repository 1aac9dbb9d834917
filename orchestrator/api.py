"""The Python tuning API: ``orchestrator.tune(...)`` and ``orchestrator.run(spec)``.

``run`` turns a validated :class:`ExperimentSpec` into a Ray Tune experiment: it connects to
(or starts) Ray, checks that the cluster can ever hold one trial, builds the searcher and
scheduler (by registry name or as given), bounds concurrency, records into MLflow and
returns a :class:`TuningResult`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import difflib
import inspect
import logging
import math
import os
import re
import signal
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from orchestrator import _ray_private, cluster, console, pareto_records, state_seal
from orchestrator.components import build_scheduler, build_searcher
from orchestrator.errors import SpecError
from orchestrator.export import export_parquet, write_outcomes
from orchestrator.faults import HangWatchdog, explain_error, repair_experiment_state
from orchestrator.held_out import evaluate as evaluate_held_out
from orchestrator.outcome import FAILED, FINISHED, STOP_REASON_KEY, nonfinite_failure, stop_reason_of
from orchestrator.reconcile import make_reconciler
from orchestrator.redaction import redact_config, trial_dirname, trial_name
from orchestrator.spec import REQUIRED_FIELD_HINTS, ExperimentSpec
from orchestrator.spec_file import load_spec, save_spec
from orchestrator.tracking import MLflowTracking, artifact_log, default_tracking_uri
from orchestrator.tracking.lineage import lineage_of
from orchestrator.tracking.preflight import check_reachable as check_tracking_reachable
from schedulers._ray_private import exact_resume_hooks, keep_local_result_files
from search_algs.errors import TuneorchError
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
        pareto_front: with several objectives or constraints, the non-dominated feasible trials
            (pandas DataFrame: ``trial_id``, one column per objective, ``config/...``), sorted by
            the first objective; ``trials`` then has ``pareto_rank`` and ``feasible`` columns.
            ``best_config`` is the front's knee point (closest to the ideal point once each
            objective is scaled to the front's range), or with ``select: {metric, mode}`` the
            front trial best by that objective; ``best_metric`` is then ``{objective: value}``.
        hypervolume, reference_point: the front's hypervolume against ``reference_point`` (the
            spec's, else the worst value per objective plus 10% of its range), in the users'
            units (see :mod:`orchestrator.pareto_records`).
        hypervolume_history: ``[(trials ended, timestamp ms, hypervolume)]`` as the trials
            ended, at each trial that changed it (the parent MLflow run's ``hypervolume`` metric).
        registered_model: with ``register_model``, where the best trial's model went:
            ``{"name", "version", "alias", "error"}`` (version and alias None when it failed).
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
    pareto_front: Any = None
    hypervolume: float | None = None
    reference_point: list | None = None
    hypervolume_history: list = field(default_factory=list)
    registered_model: dict | None = None

    def export_parquet(self, out: str | None = None) -> dict[str, str]:
        """Write trials/metrics/param_history Parquet tables (see :mod:`orchestrator.export`)."""
        return export_parquet(self.experiment_path, out)

    def summary(self, width: int | None = None) -> str:
        """A human-readable table of the outcome (values under secret-looking keys as ``***``),
        ``width`` columns at most (default: the terminal's, 80 when not a terminal): config
        values are abbreviated, sentences, paths and commands continue on the next lines."""
        if isinstance(self.metric, (list, tuple)) or self.pareto_front is not None:
            chosen = ", ".join(f"{k} = {v:.6g}" for k, v in self.best_metric.items()) \
                if isinstance(self.best_metric, dict) else f"none: {self.note or 'no feasible trial'}"
            rows = [("best (pareto)", chosen), ("best trial", self.best_trial_id or "none")]
        else:
            rows = [
                ("best metric", f"{self.metric} = {self.best_metric:.6g}" if self.best_metric is not None
                 else f"none: {self.note or 'no trial reported it'}"),
                ("best trial", self.best_trial_id or "none"),
            ]
        for key, value in sorted(_flatten(redact_config(self.best_config or {})).items()):
            rows.append((f"  {key}", _short(value), "cut"))
        if self.recommended_config is not None and self.recommended_config != self.best_config:
            rows.append(("searcher recommends", "(best posterior mean; the objective looks noisy)"))
            for key, value in sorted(_flatten(redact_config(self.recommended_config)).items()):
                rows.append((f"  {key}", _short(value), "cut"))
        if self.held_out is not None:
            rows.extend(self.held_out.summary_rows())
        rows.append(("trials", _trial_counts(self.trials)))
        if self.pareto_front is not None:
            objectives = list(self.metric) if isinstance(self.metric, (list, tuple)) else [self.metric]
            rows.extend(pareto_records.summary_rows(self.pareto_front, self.hypervolume,
                                                    self.reference_point, objectives))
        if self.cache_hits:
            rows.append(("cached", f"{len(self.cache_hits)} proposals equal to a trained config: "
                                   f"its result was reused, not retrained"))
        for trial_id, message in sorted(self.errors.items()):
            rows.append((f"  error {trial_id}", message.strip().splitlines()[-1][:200] if message else "?"))
        experiment = console.shorter_path(self.experiment_path)
        rows.append(("experiment", experiment))
        rows.append(("resume with", f"tuneorch resume {experiment}"))
        if self.tracking_uri:
            rows.append(("mlflow records", console.shorter_uri(self.tracking_uri)))
            if self.mlflow_run_id:
                rows.append(("mlflow parent run", self.mlflow_run_id))
            url = mlflow_run_url(self.tracking_uri, self.mlflow_experiment_id, self.mlflow_run_id)
            if self.tracking_uri.startswith(("http://", "https://")):
                rows.append(("open the run", url or self.tracking_uri))
            else:
                rows.append(("open the UI", ui_command(self.tracking_uri)))
                rows.append(("then browse", url or UI_ADDRESS))
            if self.registered_model:
                ui_base = (self.tracking_uri if self.tracking_uri.startswith(("http://", "https://"))
                           else UI_ADDRESS)
                rows.extend(console.registered_model_rows(ui_base=ui_base, **self.registered_model))
        return console.table(rows, width)


#: Where ``tuneorch ui`` serves by default.
UI_ADDRESS = "http://127.0.0.1:5000"


def mlflow_run_url(tracking_uri: str, experiment_id: str | None, run_id: str | None) -> str | None:
    """The MLflow UI page of a run: on the tracking server itself for an http(s) URI, else on
    the ``tuneorch ui`` server (:data:`UI_ADDRESS`)."""
    if not experiment_id or not run_id:
        return None
    base = tracking_uri.rstrip("/") if tracking_uri.startswith(("http://", "https://")) else UI_ADDRESS
    # MLflow 3's UI shows its GenAI view of a run unless the page asks for the training one.
    return f"{base}/#/experiments/{experiment_id}/runs/{run_id}?workflowType=machine_learning"


def ui_command(tracking_uri: str) -> str:
    if tracking_uri.startswith(("http://", "https://")):
        return f"browse {tracking_uri}"
    return f"tuneorch ui --tracking-uri {console.shorter_uri(tracking_uri)}"


def _trial_counts(trials: Any) -> str:
    """``3 terminated, 2 stopped early (rung 3), 1 error``: the statuses of
    :mod:`orchestrator.outcome`, with the trials stopped early counted apart from those that ran
    to their end."""
    if trials is None or not len(trials):
        return "none"
    reasons = trials["stop_reason"] if "stop_reason" in trials else [None] * len(trials)
    statuses: Counter = Counter()
    early: Counter = Counter()
    for status, reason in zip(trials["status"], reasons):
        if status == FINISHED and isinstance(reason, str) and reason:
            early[reason] += 1
        else:
            statuses[str(status)] += 1
    parts = [f"{n} {s.lower()}" for s, n in sorted(statuses.items())]
    if early:
        if len(early) == 1:
            (reason, n), = early.items()
            parts.append(f"{n} stopped early ({reason})")
        else:
            detail = ", ".join(f"{r}: {n}" for r, n in sorted(early.items(), key=lambda i: _rung_order(i[0])))
            parts.append(f"{sum(early.values())} stopped early ({detail})")
    return ", ".join(parts)


def _rung_order(reason: str) -> tuple:
    tail = reason.rsplit(" ", 1)[-1].rsplit("=", 1)[-1]
    try:
        return (0, float(tail), reason)
    except ValueError:
        return (1, 0.0, reason)


def tune(trainable: Any, space: Any, *, verbose: int = 1, callbacks: list | None = None,
         **fields: Any) -> TuningResult:
    """Tune ``trainable`` over ``space``; every other keyword is a field of :class:`ExperimentSpec`
    (``metric`` and ``mode`` are required), with the field's default when left out.

    ``search`` and ``scheduler`` are registry names (``orchestrator.registry``) or objects:
    this project's searchers and schedulers, or any Ray Tune ``Searcher``/``TrialScheduler``.
    ``address=None`` starts a local Ray; ``"auto"`` or ``"ray://host:10001"`` joins a cluster.
    ``tracking_uri=None`` records into ``sqlite:///<storage_path>/mlflow.db``; ``""`` turns
    MLflow off. ``register_model="name"`` registers the best trial's model in MLflow (alias
    ``champion``); the trainable's module must define ``load_model(checkpoint_dir, config)``
    (see :mod:`orchestrator.tracking.model_registry`). ``held_out_seeds=[101, 102]``
    re-trains the best config (PBT: its config schedule) on each of those seeds, set at
    ``seed_key`` in the config, and reports both numbers (``TuningResult.held_out``).
    ``secrets=["API_KEY"]`` names environment variables of the driver that reach the trainable
    as environment variables, never through the config. ``None`` for ``search_options``,
    ``scheduler_options`` or ``resources`` means the field's default.

    Not spec fields: ``verbose`` (0 quiet, 1 our console, 2 and up Ray's own output too) and
    ``callbacks``, extra Ray Tune callbacks (they run on the driver, next to the MLflow tracker).

    Every argument is checked before Ray starts (:meth:`ExperimentSpec.validate`, inside
    :func:`run`); an unknown keyword or a bad value raises a
    :class:`~search_algs.errors.TuneorchError` (mostly its subclass ``SpecError``).
    """
    return run(spec_of_arguments(trainable=trainable, space=space, **fields), verbose=verbose,
               callbacks=callbacks)  # run validates, as for every entry point


#: tune()'s keywords besides the spec's fields.
RUN_KEYWORDS = ("verbose", "callbacks")
SPEC_FIELDS = {f.name: f for f in dataclasses.fields(ExperimentSpec)}


def spec_of_arguments(**arguments: Any) -> ExperimentSpec:
    """The (not yet validated) :class:`ExperimentSpec` of :func:`tune`'s keyword arguments: an
    unknown keyword or a missing required field is a :class:`SpecError` naming it."""
    for name in arguments:
        if name not in SPEC_FIELDS:
            near = difflib.get_close_matches(name, list(SPEC_FIELDS) + list(RUN_KEYWORDS), n=3, cutoff=0.6)
            hint = f"did you mean {' or '.join(map(repr, near))}? " if near else ""
            raise SpecError(f"tune(): unknown keyword argument {name!r}; {hint}tune() takes the fields of "
                            f"ExperimentSpec {sorted(SPEC_FIELDS)} and {list(RUN_KEYWORDS)}")
    for name in ("metric", "mode"):
        if name not in arguments:
            raise SpecError(f"tune(): {name} is required; {REQUIRED_FIELD_HINTS[name]}")
    # None means the field's default for the mapping fields, as tune() always accepted it.
    given = {name: value for name, value in arguments.items()
             if value is not None or SPEC_FIELDS[name].default_factory is dataclasses.MISSING}
    return ExperimentSpec(**given)


def _signature_of_tune() -> inspect.Signature:
    """tune()'s signature as help() and editors show it: the spec's fields with their defaults."""
    empty = inspect.Parameter.empty
    params = [inspect.Parameter(name, inspect.Parameter.POSITIONAL_OR_KEYWORD) for name in ("trainable", "space")]
    for name, f in SPEC_FIELDS.items():
        if name in ("trainable", "space"):
            continue
        default = f.default if f.default is not dataclasses.MISSING else (
            None if f.default_factory is not dataclasses.MISSING else empty)
        annotation = f.type if f.default_factory is dataclasses.MISSING else f"{f.type} | None"
        params.append(inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=default,
                                        annotation=annotation))
    params += [inspect.Parameter("verbose", inspect.Parameter.KEYWORD_ONLY, default=1, annotation="int"),
               inspect.Parameter("callbacks", inspect.Parameter.KEYWORD_ONLY, default=None,
                                 annotation="list | None")]
    return inspect.Signature(params, return_annotation="TuningResult")


tune.__signature__ = _signature_of_tune()


def run(spec: ExperimentSpec, verbose: int = 1, callbacks: list | None = None) -> TuningResult:
    """Run a validated experiment to its end and return what it found.

    Every run gets its own experiment directory, ``<storage_path>/<name>-<UTC time>``,
    which holds Tune's state, the checkpoints, the spec and the tracking outbox, and which
    :func:`resume` takes. ``spec`` itself is left as it was given.
    """
    from ray import tune as ray_tune
    from ray.tune.search import ConcurrencyLimiter

    # The run's own copy: validation and the run fill in fields (the space as a Space, the
    # concurrency, the tracking URI); the caller's spec stays as it was given.
    spec = dataclasses.replace(spec)
    spec.validate()  # the one pre-flight (validate, run, tune): every check before Ray starts
    trainable = spec.load_trainable()
    storage_path = cluster.storage_uri(spec.storage_path)
    run_name = f"{spec.name}-{time.strftime('%Y%m%d-%H%M%S', time.gmtime())}"
    experiment_path = _join(storage_path, run_name)

    # Searcher and scheduler first: their options are checked before Ray starts.
    searcher, param_space = build_searcher(spec)
    scheduler = build_scheduler(spec, experiment_path)

    check_tracking_reachable(spec.tracking_uri)  # a server that is down: refused before Ray starts
    cluster.connect(spec.address, ray_logs=verbose >= 2)
    cluster.check_secrets_reach_workers(getattr(spec, "secrets", None))
    cluster.check_resources(spec.resources)
    max_concurrent = spec.max_concurrent = spec.max_concurrent or cluster.trials_that_fit(spec.resources)
    save_spec(spec, experiment_path)  # as data, for resume (orchestrator/spec_file.py)
    spec.tracking_uri = _resolved_tracking_uri(spec, storage_path)  # after saving: resume resolves it again
    tracker = _make_tracker(spec, experiment_path, run_name)
    watchdog = HangWatchdog(spec.report_timeout_s) if spec.report_timeout_s else None
    cache = ResultCache(searcher, spec.space) if spec.caches_results() else None

    tuner = ray_tune.Tuner(
        ray_tune.with_resources(trainable, cluster.placement(spec.resources)),
        param_space=param_space,
        tune_config=ray_tune.TuneConfig(
            # several objectives or constraints: the searcher and scheduler carry them (Tune's
            # own metric is one string)
            metric=None if spec.pareto else spec.metric, mode=None if spec.pareto else spec.mode,
            search_alg=ConcurrencyLimiter(cache or searcher, max_concurrent=max_concurrent),
            scheduler=scheduler, num_samples=spec.num_samples, time_budget_s=spec.time_budget_s,
            # A paused/exploited/promoted trial restarts in a warm actor instead of a new process
            # (Ray 2.60 defaults to False): PBT and ASHA promotion pause trials all the time.
            reuse_actors=True,
            # Tune's default names carry the config (``..._api_key=...,lr=0.1_<date>``): ours
            # carry none (orchestrator.redaction.trial_dirname).
            trial_name_creator=trial_name, trial_dirname_creator=trial_dirname,
        ),
        run_config=ray_tune.RunConfig(
            name=run_name, storage_path=storage_path, stop=spec.stop,
            # The stop recorder and our console first (orchestrator/console.py): the trackers
            # after them read the stop reasons. Ray's own output only with verbose >= 2.
            callbacks=console.callbacks_for(verbose, metric=spec.objectives[0], mode=spec.modes[0],
                                            num_samples=spec.num_samples, time_budget_s=spec.time_budget_s,
                                            scheduler=scheduler, stop=spec.stop)
            + _own_callbacks(watchdog, tracker, experiment_path) + list(callbacks or []),
            failure_config=ray_tune.FailureConfig(max_failures=spec.max_failures),
            checkpoint_config=ray_tune.CheckpointConfig(num_to_keep=spec.keep_checkpoints),
            verbose=console.ray_verbose(verbose),
        ),
    )
    if "://" not in experiment_path:  # the Tuner has just written tuner.pkl: resume checks its seal
        state_seal.seal(experiment_path, names=["tuner.pkl"])
    return _fit(tuner, spec, experiment_path, tracker, searcher, watchdog)


def _own_callbacks(watchdog: HangWatchdog | None, tracker: Any, experiment_path: str) -> list:
    # The watchdog comes first: the tracker records the reason it found for a failure. The
    # sealer signs each experiment snapshot, so that a resume never unpickles a foreign file.
    # Tune's JSON and CSV loggers write result.json and progress.csv (the export and a resume
    # read them); its TensorBoard logger is left out (see _without_tensorboard).
    from ray.tune.logger import CSVLoggerCallback, JsonLoggerCallback

    if tracker is not None and watchdog is not None:
        tracker.error_notes = watchdog.hung
    return ([c for c in (watchdog, tracker) if c is not None] + [state_seal.StateSealer(experiment_path)]
            + [JsonLoggerCallback(), CSVLoggerCallback()])


@contextlib.contextmanager
def _without_tensorboard():
    """Tune adds its JSON, CSV and TensorBoard loggers to every run unless told not to
    (``TUNE_DISABLE_AUTO_CALLBACK_LOGGERS``, read when ``fit`` starts); we pass the first two
    ourselves. The TensorBoard event files cost the driver time at every result (10,000-trial
    runs: issue #21) and duplicate what MLflow records. A user who
    wants them passes ``ray.tune.logger.TBXLoggerCallback()`` in ``callbacks``."""
    saved = os.environ.get("TUNE_DISABLE_AUTO_CALLBACK_LOGGERS")
    os.environ["TUNE_DISABLE_AUTO_CALLBACK_LOGGERS"] = "1"
    try:
        yield
    finally:
        if saved is None:
            os.environ.pop("TUNE_DISABLE_AUTO_CALLBACK_LOGGERS", None)
        else:
            os.environ["TUNE_DISABLE_AUTO_CALLBACK_LOGGERS"] = saved


def resume(experiment_path: str, verbose: int = 1) -> TuningResult:
    """Continue an experiment whose driver stopped (Ctrl-C, crash, lost node).

    Unfinished trials continue from their last checkpoint, errored ones are retried, the
    searcher continues its sequence from its saved state and the tracker finds its MLflow
    runs again instead of creating new ones.
    """
    from ray import tune as ray_tune

    experiment_path = cluster.storage_uri(experiment_path).rstrip("/")
    spec = load_spec(experiment_path)
    storage_path, run_name = experiment_path.rsplit("/", 1)
    local = experiment_path.removeprefix("file://")
    repair_experiment_state(experiment_path, trusted=lambda staged: state_seal.sealed(staged, local))
    state_seal.verify(experiment_path)  # before Ray starts and Tune unpickles anything of the folder
    check_tracking_reachable(spec.tracking_uri)
    cluster.connect(spec.address, ray_logs=verbose >= 2)
    cluster.check_secrets_reach_workers(getattr(spec, "secrets", None))
    spec.tracking_uri = _resolved_tracking_uri(spec, storage_path)
    tracker = _make_tracker(spec, experiment_path, run_name)
    # Our searchers take the space themselves (Tune gets an empty param_space); a searcher passed
    # as an object comes back from Tune's own state, param_space included.
    param_space = build_searcher(spec)[1] if isinstance(spec.search, str) else None
    tuner = ray_tune.Tuner.restore(
        experiment_path,
        trainable=ray_tune.with_resources(spec.load_trainable(), cluster.placement(spec.resources)),
        resume_unfinished=True, resume_errored=True, param_space=param_space or None,
    )
    if "://" not in experiment_path:  # Tune's restore has just rewritten tuner.pkl: seal it again
        state_seal.seal(experiment_path, names=["tuner.pkl"])
    watchdog = HangWatchdog(spec.report_timeout_s) if spec.report_timeout_s else None
    # The restored RunConfig's callbacks would replay a stale state: fresh ones instead.
    _ray_private.set_callbacks(tuner, console.callbacks_for_restored(tuner, spec, verbose)
                               + _own_callbacks(watchdog, tracker, experiment_path))
    # Inside Tune's restore: adopt what the trials did after Tune's last snapshot (newer
    # checkpoints, their folders), remove the folders and MLflow runs of trials it lacks.
    return _fit(tuner, spec, experiment_path, tracker, watchdog=watchdog,
                on_restored=make_reconciler(experiment_path, tracker))


class TrialReportError(TuneorchError, RuntimeError):
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
         searcher: Any = None, watchdog: HangWatchdog | None = None,
         on_restored: Any = None) -> TuningResult:
    try:
        # Tune snapshots whenever the searcher creates trials, so a driver killed at any moment
        # leaves no started trial outside the snapshot (see schedulers/_ray_private.py).
        # Tune's loggers keep a restarted trial's newest result.json (schedulers/_ray_private.py).
        with (_watch_interrupts() as interrupts, exact_resume_hooks(on_restored), keep_local_result_files(),
              _without_tensorboard()):
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
        extra = {"cache_hits": len(result.cache_hits)}
        trial_tags, history = None, None
        if result.pareto_front is not None:
            # The hypervolume as trials ended (MLflow charts it by step); its last point is the final one.
            history = {"hypervolume": result.hypervolume_history} if result.hypervolume_history else None
            trial_tags = _pareto_tags(result.trials)
        tracker.finish(result.best_config, result.best_metric, spec.metric,
                       status="FINISHED" if not result.interrupted else "KILLED",
                       extra_metrics=extra, trial_tags=trial_tags, parent_history=history)
        if result.pareto_front is not None and result.mlflow_run_id:
            _log_pareto_front(spec.tracking_uri, result.mlflow_run_id, experiment_path, result.pareto_front)
        if result.mlflow_run_id:  # spec, tables, plots, best checkpoint, model: never fails the run
            try:
                report = artifact_log.log_run_artifacts(
                    spec.tracking_uri, result.mlflow_run_id, experiment_path, result, spec=spec,
                    lineage=lineage_of(_ray_private.scheduler_of(tuner)))
                if spec.register_model:
                    error = next((v for k, v in report.failed.items() if k.startswith("model")), None)
                    result.registered_model = {
                        "name": spec.register_model, "version": report.model_version,
                        "alias": artifact_log.CHAMPION_ALIAS if report.model_version else None,
                        "error": error}
            except Exception as exc:  # noqa: BLE001
                logger.warning("MLflow artifacts not uploaded (%s: %s)", type(exc).__name__, exc)
    if getattr(spec, "held_out_seeds", None) and not result.interrupted:
        result.held_out = evaluate_held_out(spec, result, _ray_private.scheduler_of(tuner))
    if result.interrupted:
        print(f"The run stopped before its end; continue it with: tuneorch resume {experiment_path}")
    return result


def _pareto_tags(trials: Any) -> dict:
    """``{trial_id: {tuneorch.pareto_rank, tuneorch.feasible}}`` for the child runs."""
    out = {}
    for row in trials.to_dict("records"):
        try:
            rank = str(int(row.get("pareto_rank")))
        except (TypeError, ValueError):  # None / pandas NA: infeasible or failed, no rank
            rank = "none"
        out[str(row["trial_id"])] = {"tuneorch.pareto_rank": rank,
                                     "tuneorch.feasible": str(bool(row.get("feasible"))).lower()}
    return out


def _log_pareto_front(tracking_uri: str, run_id: str, experiment_path: str, front: Any) -> None:
    """``pareto_front.csv`` beside the experiment and as an artifact of the parent run (never fails
    the run)."""
    try:
        local = experiment_path.removeprefix("file://")
        if "://" in local:
            import tempfile

            local = tempfile.mkdtemp(prefix="tuneorch-pareto-")
        path = os.path.join(local, "pareto_front.csv")
        front.to_csv(path, index=False)
        from mlflow import MlflowClient

        MlflowClient(tracking_uri).log_artifact(run_id, path)
    except Exception as exc:  # noqa: BLE001 - a record is extra; the result stands
        logger.warning("pareto_front.csv not uploaded to MLflow (%s: %s)", type(exc).__name__, exc)


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
    trials = _ray_private.trials_of(grid)
    return any(getattr(t, "status", "TERMINATED") not in ("TERMINATED", "ERROR") for t in trials)


def _join(base: str, name: str) -> str:
    return f"{base.rstrip('/')}/{name}" if "://" in base else os.path.join(base, name)


def _resolved_tracking_uri(spec: ExperimentSpec, storage_path: str) -> str:
    """The MLflow tracking URI the run records into: the spec's, ``""`` for none, or by default
    the sqlite store beside the runs (:func:`orchestrator.tracking.default_tracking_uri`)."""
    if spec.tracking_uri is not None:
        return spec.tracking_uri
    if "://" in storage_path and not storage_path.startswith("file://"):
        raise SpecError(
            f"tracking_uri: storage_path {spec.storage_path!r} is remote, so no local sqlite store can "
            f"live beside it; set tracking_uri to your MLflow server (or '' to turn tracking off)"
        )
    return default_tracking_uri(storage_path.removeprefix("file://"))


def _make_tracker(spec: ExperimentSpec, experiment_path: str, run_name: str):
    """The MLflow tracker of the run, started; ``None`` with tracking off."""
    if spec.tracking_uri == "":
        return None
    summary = spec.summary()
    params = {k: v for k, v in summary.items() if k not in ("resources", "search_options", "scheduler_options")}
    params.update({f"resources.{k}": v for k, v in summary["resources"].items() if v not in (None, {})})
    params.update({f"search.{k}": v for k, v in summary["search_options"].items()})
    params.update({f"scheduler.{k}": v for k, v in summary["scheduler_options"].items()})
    tags = {"tuneorch.experiment_path": experiment_path, "tuneorch.versions": cluster.versions()}
    # The outbox must be a local directory; with remote storage it lives in the home folder.
    outbox_dir = (os.path.join(experiment_path, "mlflow-outbox") if "://" not in experiment_path
                  else os.path.join(os.path.expanduser("~/.tuneorch/outbox"), run_name))
    tracker = MLflowTracking(spec.tracking_uri, spec.name, run_name=run_name, outbox_dir=outbox_dir, params=params, tags=tags)
    tracker.start()
    return tracker


def trials_table(grid: Any, metric: str | None = None):
    """One row per trial, including those that failed before reporting anything.

    (``ResultGrid.get_dataframe`` drops trials without results.) Statuses are those of
    :mod:`orchestrator.outcome`: with ``metric``, an ended trial whose last value of it is NaN or
    infinite is ``ERROR`` with the reason as its error, like a trial that raised. ``stop_reason``
    is set for a ``TERMINATED`` trial the scheduler stopped early (``rung 3``), else ``None``.
    """
    import pandas as pd

    rows, errors = [], {}
    trials = _ray_private.trials_of(grid) or [None] * len(grid)
    for trial, result in zip(trials, grid):
        metrics = dict(result.metrics or {})
        trial_id = getattr(trial, "trial_id", None) or metrics.get("trial_id")
        row = {k: v for k, v in metrics.items()
               if k not in ("config", STOP_REASON_KEY) and not isinstance(v, dict)}
        row.update({f"config/{k}": v for k, v in _flatten(result.config or {}).items()})
        row["trial_id"] = trial_id
        row["status"] = getattr(trial, "status", None) or (FAILED if result.error else FINISHED)
        row["stop_reason"] = None
        row["error"] = None
        if result.error is not None:
            errors[trial_id] = row["error"] = str(result.error)
        elif row["status"] == FINISHED:
            failure = next(filter(None, (nonfinite_failure(metrics, m) for m in (
                metric if isinstance(metric, (list, tuple)) else [metric]))), None)
            if failure:
                row["status"] = FAILED
                errors[trial_id] = row["error"] = failure
            else:
                row["stop_reason"] = stop_reason_of(metrics)
        rows.append(row)
    return pd.DataFrame(rows), errors


def _cache_hits(tuner: Any) -> list:
    """The proposals the result cache answered, from the search algorithm Tune ran (after a
    resume that is the restored one, not the object built in :func:`run`)."""
    search_alg = _ray_private.search_alg_of(tuner)
    while search_alg is not None and not isinstance(search_alg, ResultCache):
        search_alg = search_alg.__dict__.get("searcher")
    return list(search_alg.hits) if search_alg is not None else []


def _collect(grid: Any, spec: ExperimentSpec, experiment_path: str, tracker: Any,
             hung: dict | None = None) -> TuningResult:
    frame, errors = trials_table(grid, spec.metric)
    for trial_id, message in errors.items():
        # Say what most likely happened (hang, out of memory, a killed worker) before the raw error.
        reason = explain_error(message, (hung or {}).get(trial_id))
        if reason:
            errors[trial_id] = f"{message.rstrip()}\n{reason}"
            frame.loc[frame["trial_id"] == trial_id, "error"] = errors[trial_id]
    try:  # the statuses and errors as decided here, for `tuneorch export` (orchestrator.export)
        write_outcomes(experiment_path, spec.metric, frame)
    except Exception as exc:  # noqa: BLE001 - the export then falls back to Tune's statuses
        logger.warning("trial outcomes not written to %s (%s: %s)", experiment_path, type(exc).__name__, exc)
    best_config = best_metric = best_trial = None
    if spec.pareto:
        configs = {getattr(t, "trial_id", None) or (r.metrics or {}).get("trial_id"): r.config
                   for t, r in zip(_ray_private.trials_of(grid) or [None] * len(grid), grid)}
        outcome = pareto_records.pareto_outcome(frame, configs, spec)
        try:
            write_outcomes(experiment_path, spec.metric, frame)
        except Exception as exc:  # noqa: BLE001
            logger.warning("trial outcomes not written to %s (%s: %s)", experiment_path, type(exc).__name__, exc)
        return TuningResult(
            best_config=outcome.best_config, best_metric=outcome.best_values, best_trial_id=outcome.best_trial_id,
            metric=spec.metric, mode=spec.mode, trials=frame, experiment_path=experiment_path,
            tracking_uri=spec.tracking_uri or None, mlflow_run_id=getattr(tracker, "parent_run_id", None),
            mlflow_experiment_id=getattr(tracker, "experiment_id", None), errors=errors, result_grid=grid,
            note=None if outcome.best_config is not None else "no feasible trial reported every objective",
            pareto_front=outcome.front, hypervolume=outcome.hypervolume, reference_point=outcome.reference_point,
            hypervolume_history=outcome.hypervolume_history)
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
