"""Held-out evaluation: the best configuration re-trained on seeds that tuning never saw.

The best trial of a tuning run is the best of many draws, each on the tuning seed: its value
is optimistically biased (selection on noise, and on that one seed). Eimer, Lindauer and
Raileanu, "Hyperparameters in Reinforcement Learning and How To Tune Them", ICML 2023
(Sec. 5 and their recommendations) therefore tune on one set of seeds and report the chosen
configuration's performance on a disjoint set. This module does that after the main run:

* the best trial's configuration is trained again, once per held-out seed, as one small Ray
  Tune run (``<experiment>-held-out`` beside the experiment folder), written into the
  config at ``seed_key`` (the key the trainable reads its seed from; ``a/b`` for nested);
* for a PBT trial the configuration is a *schedule* (``PBTScheduler.config_schedule``):
  each held-out trial starts with its first config and switches at the recorded steps,
  continuing from its own checkpoint (:class:`schedulers.replay.ReplayScheduler`), so
  it retrains from scratch what the population found, without cloning anybody;
* each held-out trial's last reported ``metric`` (the same scope as the best trial's) is
  its value; the result reports the tuning value and the held-out values (per seed, mean,
  sample standard deviation); MLflow's parent run gets ``held_out.*`` metrics.

Options (``ExperimentSpec.held_out_seeds`` and ``seed_key``) are checked by
:func:`check_options` before Ray starts.
"""

from __future__ import annotations

import logging
import math
import numbers
import os
import statistics
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

from orchestrator import cluster
from orchestrator.errors import SpecError
from orchestrator.redaction import trial_dirname, trial_name

logger = logging.getLogger(__name__)

MAX_SEEDS = 1000
SUFFIX = "-held-out"


# ---- options ---------------------------------------------------------------------------------


def check_options(held_out_seeds: Any, seed_key: Any, space: Any) -> list[int] | None:
    """The held-out seeds as a list (``None``: no held-out evaluation), or a
    :class:`~orchestrator.errors.SpecError` naming the parameter, the rule, the value and the fix.

    ``space`` is the experiment's :class:`search_algs.space.Space`: ``seed_key`` must not
    be a tuned parameter, and a constant at ``seed_key`` (the tuning seed) must not be
    among the held-out seeds.
    """
    if not isinstance(seed_key, str) or not seed_key or seed_key.startswith("/") or seed_key.endswith("/") \
            or "//" in seed_key:
        raise SpecError(f"seed_key: must be the config key the trainable reads its seed from (nested keys "
                        f"as 'a/b'), got {seed_key!r}; e.g. seed_key: seed")
    if held_out_seeds is None:
        return None
    if isinstance(held_out_seeds, (str, bytes, Mapping)) or not isinstance(held_out_seeds, Sequence):
        raise SpecError(f"held_out_seeds: must be a list of integer seeds >= 0 or null, got "
                        f"{held_out_seeds!r}; e.g. held_out_seeds: [101, 102, 103]")
    if not held_out_seeds:
        raise SpecError("held_out_seeds: must hold at least one seed, got []; e.g. held_out_seeds: "
                        "[101, 102, 103], or leave it out (null) for no held-out evaluation")
    if len(held_out_seeds) > MAX_SEEDS:
        raise SpecError(f"held_out_seeds: at most {MAX_SEEDS} seeds, got {len(held_out_seeds)}; "
                        f"use fewer seeds (each is one full training run)")
    seeds = []
    for s in held_out_seeds:
        if isinstance(s, bool) or not isinstance(s, numbers.Integral) or s < 0:
            raise SpecError(f"held_out_seeds: every seed must be an integer >= 0, got {s!r} in "
                            f"{list(held_out_seeds)!r}; e.g. held_out_seeds: [101, 102, 103]")
        seeds.append(int(s))
    repeated = sorted({s for s in seeds if seeds.count(s) > 1})
    if repeated:
        raise SpecError(f"held_out_seeds: seeds must be distinct, got {seeds!r} (repeated {repeated}); "
                        f"list each seed once")
    names = list(getattr(space, "names", []) or [])
    if seed_key in names:
        raise SpecError(f"seed_key: {seed_key!r} is a tuned parameter of the space; the held-out "
                        f"evaluation sets it to each held-out seed, so it must be a constant (or "
                        f"absent); make {seed_key!r} a constant (e.g. {seed_key}: 0) or name another "
                        f"key with seed_key")
    found, tuning_seed = _lookup(getattr(space, "template", None), seed_key)
    if found and tuning_seed in seeds:
        raise SpecError(f"held_out_seeds: {seeds!r} contains {tuning_seed!r}, the seed tuning used "
                        f"(space constant {seed_key!r}); held-out seeds must be seeds not used for "
                        f"tuning, so drop {tuning_seed!r} or tune on another seed")
    return seeds


def _lookup(config: Any, key: str) -> tuple[bool, Any]:
    node = config
    for part in key.split("/"):
        if not isinstance(node, Mapping) or part not in node:
            return False, None
        node = node[part]
    return True, node


def _without(config: Mapping, key: str) -> dict:
    """A copy of ``config`` without ``key`` (``a/b``: nested)."""
    head, _, rest = key.partition("/")
    out = dict(config)
    if rest and isinstance(out.get(head), Mapping):
        out[head] = _without(out[head], rest)
    elif not rest:
        out.pop(head, None)
    return out


def _set(config: dict, key: str, value: Any) -> dict:
    parts = key.split("/")
    node = config
    for part in parts[:-1]:
        child = node.get(part)
        if not isinstance(child, dict):
            child = node[part] = {}
        node = child
    node[parts[-1]] = value
    return config


# ---- the result --------------------------------------------------------------------------------


@dataclass
class HeldOutResult:
    """The best configuration re-trained on held-out seeds.

    Attributes:
        seeds: the held-out seeds, in order.
        values: ``{seed: last reported metric}`` (``None``: that run failed or reported no
            finite value; see ``errors``).
        mean, std: over the finite values (sample standard deviation; ``None`` below 2).
        tuning_value: the best trial's value in the tuning run (``TuningResult.best_metric``).
        trial_id: the best trial, whose configuration was re-trained.
        schedule: ``[(t, config), ...]`` replayed (one entry: a fixed configuration).
        exact: every config switch happened at its recorded step (see ``schedulers.replay``).
        experiment_path: the held-out Tune run's folder.
        errors: ``{seed: message}`` of the runs that failed.
    """

    metric: str
    mode: str
    seed_key: str
    seeds: list
    values: dict = field(default_factory=dict)
    mean: float | None = None
    std: float | None = None
    tuning_value: float | None = None
    trial_id: str | None = None
    schedule: list = field(default_factory=list)
    exact: bool = True
    experiment_path: str | None = None
    errors: dict = field(default_factory=dict)
    note: str | None = None

    def summary_rows(self) -> list[tuple[str, str]]:
        """Rows for :meth:`orchestrator.api.TuningResult.summary`."""
        head = f"{self.metric} on {len(self.seeds)} seeds not used for tuning ({self.seed_key})"
        if self.mean is None:
            return [("held-out", f"{head}: none ({self.note or 'no run finished'})")]
        spread = f" +- {self.std:.4g} (std)" if self.std is not None else ""
        tuning = f"{self.tuning_value:.6g}" if self.tuning_value is not None else "?"
        rows = [("held-out", f"{head}: mean {self.mean:.6g}{spread}; tuning value {tuning}")]
        if len(self.schedule) > 1:
            rows.append(("  replayed", f"PBT schedule of {self.trial_id}: {len(self.schedule) - 1} "
                                       f"config switches" + ("" if self.exact else " (not all on time)")))
        for seed in self.seeds:
            value = self.values.get(seed)
            rows.append((f"  seed {seed}", f"{value:.6g}" if value is not None
                         else f"failed: {(self.errors.get(seed) or '?').strip().splitlines()[-1][:100]}"))
        return rows

    def metrics(self) -> dict[str, float]:
        """``held_out.*`` metrics for MLflow."""
        out = {}
        if self.mean is not None:
            out["held_out.mean"] = self.mean
        if self.std is not None:
            out["held_out.std"] = self.std
        if self.tuning_value is not None:
            out["held_out.tuning_value"] = self.tuning_value
        for seed, value in self.values.items():
            if value is not None:
                out[f"held_out.seed_{seed}"] = value
        out["held_out.failed"] = float(len(self.errors))
        return out


# ---- the evaluation ----------------------------------------------------------------------------


def schedule_of(scheduler: Any, trial_id: str | None, best_config: Mapping) -> list[tuple[float, dict]]:
    """The config schedule of ``trial_id`` when ``scheduler`` keeps one (our PBT), else the
    fixed ``best_config``: ``[(0.0, best_config)]``."""
    fn = getattr(scheduler, "config_schedule", None)
    if callable(fn) and trial_id is not None:
        try:
            schedule = [(float(t), dict(c)) for t, c in fn(trial_id)]
        except (KeyError, ValueError) as exc:  # e.g. the trial is not in the policy
            logger.warning("held-out evaluation: no config schedule for trial %s (%s); re-training its "
                           "final config instead", trial_id, exc)
        else:
            if schedule:
                return schedule
    return [(0.0, dict(best_config))]


def evaluate(spec: Any, result: Any, scheduler: Any = None, *, verbose: int = 0) -> HeldOutResult:
    """Re-train ``result``'s best configuration on ``spec.held_out_seeds``; log ``held_out.*``
    metrics into the MLflow parent run when tracking is on. ``scheduler`` is the one the tuning
    run ended with (after a resume: the restored one); our PBT's config schedule is replayed. A
    failure of the held-out run is reported in the result (``note``/``errors``), never raised:
    the tuning result stands."""
    seeds = list(spec.held_out_seeds)
    seed_key = getattr(spec, "seed_key", "seed") or "seed"
    out = HeldOutResult(metric=spec.metric, mode=spec.mode, seed_key=seed_key, seeds=seeds,
                        tuning_value=result.best_metric, trial_id=result.best_trial_id)
    if result.best_config is None:
        out.note = "the tuning run has no best trial"
        return out
    out.schedule = schedule_of(scheduler, result.best_trial_id, result.best_config)
    if len(out.schedule) == 1 and type(scheduler).__name__ in ("PopulationBasedTraining", "PB2"):
        logger.warning("held-out evaluation: Ray's %s keeps no config schedule, so the best trial's final "
                       "config is re-trained as a fixed config; use scheduler='pbt' (ours) to replay the "
                       "schedule", type(scheduler).__name__)
    try:
        _run(spec, result, out, verbose)
    except Exception as exc:  # noqa: BLE001 - reported in the result and the summary
        logger.warning("held-out evaluation failed (%s: %s)", type(exc).__name__, exc)
        out.note = f"the held-out run failed: {type(exc).__name__}: {exc}"
    _log_mlflow(result, out)
    return out


def _run(spec: Any, result: Any, out: HeldOutResult, verbose: int) -> None:
    from ray import tune as ray_tune

    from schedulers.replay import ReplayScheduler, merge_config

    first = merge_config(result.best_config, out.schedule[0][1])
    param_space = _set(first, out.seed_key, ray_tune.grid_search(out.seeds))
    # The schedule holds the tuning seed (a space constant): switches must keep the held-out one.
    switches = [(t, _without(c, out.seed_key)) for t, c in out.schedule[1:]]
    replay = ReplayScheduler(switches) if switches else None
    base = result.experiment_path.rstrip("/")
    if "://" in base:
        storage_path, name = base.rsplit("/", 1)
    else:
        storage_path, name = os.path.split(base)
    name += SUFFIX
    tuner = ray_tune.Tuner(
        ray_tune.with_resources(spec.load_trainable(), cluster.placement(spec.resources)),
        param_space=param_space,
        tune_config=ray_tune.TuneConfig(metric=spec.metric, mode=spec.mode, scheduler=replay,
                                        max_concurrent_trials=spec.max_concurrent, reuse_actors=True,
                                        # folders named by trial id, never by config values
                                        trial_name_creator=trial_name, trial_dirname_creator=trial_dirname),
        run_config=ray_tune.RunConfig(
            name=name, storage_path=storage_path, stop=spec.stop, verbose=verbose,
            failure_config=ray_tune.FailureConfig(max_failures=spec.max_failures),
            checkpoint_config=ray_tune.CheckpointConfig(num_to_keep=spec.keep_checkpoints)),
    )
    grid = tuner.fit()
    out.experiment_path = f"{storage_path.rstrip('/')}/{name}" if "://" in storage_path \
        else os.path.join(storage_path, name)
    for r in grid:
        found, seed = _lookup(r.config or {}, out.seed_key)
        if not found:
            continue
        value = (r.metrics or {}).get(spec.metric)
        ok = isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value)
        out.values[seed] = float(value) if ok else None
        if r.error is not None:
            out.errors[seed] = str(r.error)
        elif not ok:
            out.errors[seed] = f"no finite {spec.metric!r} reported (last: {value!r})"
    finite = [out.values[s] for s in out.seeds if out.values.get(s) is not None]
    out.mean = statistics.fmean(finite) if finite else None
    out.std = statistics.stdev(finite) if len(finite) >= 2 else None
    out.exact = replay is None or replay.exact()
    if not finite:
        out.note = "no held-out run reported a finite value"


def _log_mlflow(result: Any, out: HeldOutResult) -> None:
    if not result.tracking_uri or not result.mlflow_run_id:
        return
    try:
        import time

        from mlflow import MlflowClient
        from mlflow.entities import Metric, Param

        client = MlflowClient(result.tracking_uri)
        now = int(time.time() * 1000)
        client.log_batch(result.mlflow_run_id, metrics=[Metric(k, float(v), now, 0) for k, v in out.metrics().items()])
    except Exception as exc:  # noqa: BLE001 - the records are extra; the result stands
        logger.warning("held-out metrics not logged to MLflow (%s: %s)", type(exc).__name__, exc)
        return
    try:  # params are immutable: a second evaluation (after a resume) with other seeds keeps the first
        client.log_batch(result.mlflow_run_id, params=[Param("held_out.seeds", ",".join(map(str, out.seeds))),
                                                       Param("held_out.seed_key", out.seed_key)])
    except Exception as exc:  # noqa: BLE001
        logger.warning("held-out params not logged to MLflow (%s: %s)", type(exc).__name__, exc)
