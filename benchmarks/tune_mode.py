"""Through real Ray Tune: K concurrent trials, and the orchestration overhead.

:func:`run_tune` runs one of our searchers (by registry name) through ``Tuner.fit`` with a
``ConcurrencyLimiter`` of ``K``, so up to K trials are pending when the searcher suggests (what a
cluster does to it). Each trial evaluates the problem once and reports the observed and the TRUE
value; the completion order gives the regret at 25/50/100% of the budget, as in the sequential
harness. Ray's own ``HyperOptSearch`` / ``OptunaSearch`` (``ray-hyperopt``, ``ray-optuna``) run the
same way on non-conditional spaces.

:func:`measure_overhead` times N trivial trials through Tune twice per repeat, alternating: our
searcher (in a ``ConcurrencyLimiter`` of the cluster's CPU count) + FIFO, and Tune's default
``BasicVariantGenerator`` + FIFO on the same space. The ratio of the medians is the overhead.

Ray is started with ``ray.init(address="local", ...)`` (never attaching to someone else's
cluster) and shut down afterwards if this module started it.
"""

from __future__ import annotations

import contextlib
import os
import statistics
import tempfile
import time
import zlib
from typing import Any, Iterator

import numpy as np

from benchmarks.harness import RunRecord, checkpoints, run_seeds
from benchmarks.problems import get_problem

os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
os.environ.setdefault("RAY_DEDUP_LOGS", "0")


@contextlib.contextmanager
def local_ray(num_cpus: int = 2) -> Iterator[Any]:
    """A local Ray for the duration (reuses one this process already started)."""
    import ray

    started = False
    if not ray.is_initialized():
        ray.init(address="local", num_cpus=num_cpus, num_gpus=0, include_dashboard=False,
                 log_to_driver=False, configure_logging=False)
        started = True
    try:
        yield ray
    finally:
        if started:
            ray.shutdown()


def _trial(config: dict, problem_name: str, seed: int, sleep_s: float) -> None:
    """One trial: evaluate the problem once. The noise is drawn from a generator seeded by the
    run seed and the config itself, so a config's noise does not depend on scheduling."""
    from ray import tune

    problem = get_problem(problem_name)
    flat = problem.space.to_flat(config)
    key = zlib.crc32(repr(sorted(flat.items())).encode())
    rng = np.random.default_rng([seed, key])
    if sleep_s:
        time.sleep(sleep_s)
    observed, true = problem.evaluate(problem.space.to_config(flat), rng)
    tune.report({"loss": observed, "true": true, "finished_at": time.time()})


def _trivial(config: dict) -> None:
    from ray import tune

    tune.report({"loss": 0.0})


def _searcher(name: str, space: Any, seed: int) -> Any:
    if name in ("ray-hyperopt", "ray-optuna"):
        from search_algs.converters import to_ray_param_space

        if name == "ray-hyperopt":
            from ray.tune.search.hyperopt import HyperOptSearch

            return HyperOptSearch(to_ray_param_space(space.template), metric="loss", mode="min",
                                  random_state_seed=seed)
        from ray.tune.search.optuna import OptunaSearch

        return OptunaSearch(to_ray_param_space(space.template), metric="loss", mode="min", seed=seed)
    from orchestrator.registry import searcher_class

    return searcher_class(name)(space=space, metric="loss", mode="min", seed=seed)


def run_tune(problem_name: str, optimizer: str, seed: int, budget: int, concurrency: int,
             sleep_s: float = 0.0, num_cpus: int = 2) -> RunRecord:
    """``budget`` trials of ``optimizer`` (a registry name, or ``ray-hyperopt``/``ray-optuna``)
    through Tune with ``concurrency`` trials in flight."""
    from ray import tune
    from ray.tune.search import ConcurrencyLimiter

    problem = get_problem(problem_name)
    _, opt_seed = run_seeds(problem_name, seed)
    rec = RunRecord(problem_name, optimizer, seed, budget, mode=f"tune-K{concurrency}")
    wall0, cpu0 = time.perf_counter(), time.process_time()
    with local_ray(num_cpus) as _, tempfile.TemporaryDirectory() as storage:
        searcher = ConcurrencyLimiter(_searcher(optimizer, problem.space, opt_seed), max_concurrent=concurrency)
        trainable = tune.with_resources(
            tune.with_parameters(_trial, problem_name=problem_name, seed=seed, sleep_s=sleep_s),
            {"cpu": num_cpus / concurrency},
        )
        tuner = tune.Tuner(
            trainable,
            # A warm worker per slot, as orchestrator.api runs trials: without it every trial
            # starts a new process (~2 s here), which dwarfs the searcher.
            tune_config=tune.TuneConfig(search_alg=searcher, num_samples=budget, metric="loss", mode="min",
                                        reuse_actors=True),
            run_config=tune.RunConfig(storage_path=storage, name="bench", verbose=0),
        )
        grid = tuner.fit()
        rows = sorted(
            (r.metrics["finished_at"], r.metrics["loss"], r.metrics["true"])
            for r in grid if r.error is None and r.metrics and "loss" in r.metrics
        )
        errors = [str(r.error) for r in grid if r.error is not None]
    rec.observed = [float(o) for _, o, _ in rows]
    rec.true = [float(t) for _, _, t in rows]
    if errors:
        rec.error = f"{len(errors)} trial(s) failed; first: {errors[0][:300]}"
    for n in checkpoints(budget):
        if n <= len(rec.true):
            i = int(np.argmin(rec.observed[:n]))
            rec.incumbent[str(n)] = rec.true[i] if problem.noisy else float(np.min(rec.true[:n]))
            rec.incumbent_source[str(n)] = "best-observed"
    rec.wall_s = time.perf_counter() - wall0
    rec.cpu_s = time.process_time() - cpu0
    return rec


def measure_overhead(n_trials: int, optimizer: str = "random", problem_name: str = "branin",
                     repeats: int = 2, num_cpus: int = 2, seed: int = 0) -> dict:
    """Wall seconds of ``n_trials`` trivial trials: ours vs Tune's default generator, alternating."""
    from ray import tune
    from ray.tune.search import ConcurrencyLimiter

    from search_algs.converters import to_ray_param_space

    problem = get_problem(problem_name)
    walls: dict[str, list[float]] = {"ours": [], "default": []}
    with local_ray(num_cpus) as _, tempfile.TemporaryDirectory() as storage:
        for r in range(repeats):
            for which in ("default", "ours"):
                if which == "ours":
                    alg = ConcurrencyLimiter(_searcher(optimizer, problem.space, seed + r), max_concurrent=num_cpus)
                    kwargs = dict(tune_config=tune.TuneConfig(search_alg=alg, num_samples=n_trials,
                                                              metric="loss", mode="min"))
                else:
                    kwargs = dict(param_space=to_ray_param_space(problem.space.template),
                                  tune_config=tune.TuneConfig(num_samples=n_trials, metric="loss", mode="min"))
                tuner = tune.Tuner(_trivial, run_config=tune.RunConfig(
                    storage_path=storage, name=f"overhead_{which}_{r}", verbose=0), **kwargs)
                t0 = time.perf_counter()
                grid = tuner.fit()
                walls[which].append(time.perf_counter() - t0)
                if grid.num_errors:
                    raise RuntimeError(f"overhead run '{which}' had {grid.num_errors} failed trivial trials")
    ours, default = statistics.median(walls["ours"]), statistics.median(walls["default"])
    return {
        "optimizer": optimizer, "problem": problem_name, "n_trials": n_trials, "repeats": repeats,
        "num_cpus": num_cpus, "wall_s": walls, "median_ours_s": ours, "median_default_s": default,
        "ratio": ours / default,
    }
