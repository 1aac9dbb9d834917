"""PBT benchmark: our PBT vs Ray's ``PopulationBasedTraining`` vs no PBT, on the PBT paper's toy
problem, through real Ray Tune (``python -m benchmarks pbt``).

Problem: :class:`benchmarks.problems.PBTToy` (Jaderberg et al. 2017, Sec. 4.1 / Fig. 2):
maximise ``Q = 1.2 - |theta|^2`` while training sees the surrogate
``1.2 - (h0 theta0^2 + h1 theta1^2)``; lr 0.05, theta starts at (0.9, 0.9). The population
is the paper's two members, twice: ``h = (1, 0), (0, 1), (1, 0), (0, 1)``; with a fixed ``h``
none of them can get past ``Q = 0.39``. Each member is a trial of :func:`toy_trainable`
(one ``training_iteration`` = one step, a checkpoint every ``interval`` steps) stopped after
``steps`` steps; ``population`` trials run side by side (``num_cpus / population`` CPU each).

Schedulers, same options where both have them (exploit/explore every ``interval`` steps,
quantile 0.25, resample probability ``resample``, perturbation factors 0.8 / 1.2):

* ``ours``: :class:`schedulers.pbt.PBTScheduler` (asynchronous), initial population served by
  our ``RandomSearch(points_to_evaluate=...)``, seeded with the run's seed;
* ``ray``: ``ray.tune.schedulers.PopulationBasedTraining`` with
  ``hyperparam_mutations = {h0, h1: tune.uniform(0, 1)}`` (it refuses searchers: the
  population comes from ``param_space``); it draws from Python's and numpy's global
  generators, which are seeded with the run's seed before the run. Unlike ours it does not
  clip a perturbed value into the domain (``1.0 * 1.2 = 1.2``);
* ``ours-sync``, ``ray-sync``: the same in synchronous mode (members wait for each other at
  every interval and are ranked together);
* ``fifo``: no PBT (Tune's FIFO): the population trains with its initial ``h``.

Every run has a wall-time limit (``time_limit_s``, Tune's ``time_budget_s``): a run that hits
it (e.g. trials left paused for ever) is reported as an error.

Recorded per run: every result the driver receives (trial, ``training_iteration``, Q), the
number of exploits, wall seconds. Reported per scheduler over seeds: **steps to Q >= target**
(the first ``training_iteration`` at which any member reports Q >= ``target``, 1.19 by default;
an exploited member inherits its donor's iteration, so this counts steps along the lineage;
"never" counts as +inf in the median), **final best Q** (the best member's last Q), the best
Q ever reported and the steps trained by the whole population (results).
"""

from __future__ import annotations

import json
import math
import os
import random
import statistics
import tempfile
import time
import traceback
from dataclasses import asdict, dataclass, field
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from benchmarks.runner import json_logger_only
from schedulers import _ray_private

SCHEDULERS = ("ours", "ray", "ours-sync", "ray-sync", "fifo")
DESCRIPTIONS = {
    "ours": "schedulers.pbt.PBTScheduler (asynchronous), population from RandomSearch(points_to_evaluate)",
    "ray": "ray.tune.schedulers.PopulationBasedTraining (asynchronous), hyperparam_mutations h0, h1: "
           "tune.uniform(0, 1)",
    "ours-sync": "schedulers.pbt.PBTScheduler(synchronous=True): generations with a barrier",
    "ray-sync": "ray.tune.schedulers.PopulationBasedTraining(synch=True)",
    "fifo": "no PBT (FIFOScheduler): every member keeps its initial h",
}
METRIC, MODE = "Q", "max"


# ---- the trainable -------------------------------------------------------------------------

def toy_trainable(config: dict) -> None:
    """The toy problem, one step per report, until Tune stops it; a checkpoint every
    ``config["checkpoint_every"]`` steps; ``h`` is read from ``config`` after restoring."""
    from ray import tune

    from benchmarks.problems import PBTToy

    theta, step = PBTToy.theta0, 0
    checkpoint = tune.get_checkpoint()
    if checkpoint is not None:
        with checkpoint.as_directory() as d, open(os.path.join(d, "toy.json")) as f:
            state = json.load(f)
        theta, step = tuple(state["theta"]), int(state["step"])
    h = {"h0": float(config["h0"]), "h1": float(config["h1"])}
    every = int(config.get("checkpoint_every", 1))
    while True:
        step += 1
        theta = PBTToy.step(theta, h)
        metrics = {METRIC: PBTToy.q(theta), "step": step}
        if step % every:
            tune.report(metrics)
            continue
        with tempfile.TemporaryDirectory() as d:
            with open(os.path.join(d, "toy.json"), "w") as f:
                json.dump({"theta": list(theta), "step": step}, f)
            tune.report(metrics, checkpoint=tune.Checkpoint.from_directory(d))


def population(size: int) -> list[dict]:
    """The paper's two members, repeated: (1, 0), (0, 1), (1, 0), ..."""
    from benchmarks.problems import PBTToy

    return [dict(PBTToy.paper_population[k % 2]) for k in range(size)]


# ---- one run through Tune ------------------------------------------------------------------

@dataclass
class PBTRun:
    scheduler: str
    seed: int
    events: list = field(default_factory=list)  # [trial_id, training_iteration, Q] in arrival order
    exploits: int = 0
    wall_s: float = 0.0
    error: str | None = None


def _recorder():
    from ray.tune import Callback

    class Recorder(Callback):
        def __init__(self):
            self.events: list = []

        def on_trial_result(self, iteration, trials, trial, result, **info):
            self.events.append([trial.trial_id, int(result["training_iteration"]), float(result[METRIC])])

    return Recorder()


def make_scheduler(name: str, seed: int, interval: int = 4, resample: float = 0.25) -> Any:
    """The scheduler called ``name`` (``None``: Tune's FIFO)."""
    if name in ("ours", "ours-sync"):
        from schedulers.pbt import PBTScheduler

        return PBTScheduler(time_attr="training_iteration", metric=METRIC, mode=MODE,
                            perturbation_interval=interval, quantile_fraction=0.25,
                            resample_probability=resample, perturbation_factors=(0.8, 1.2), seed=seed,
                            synchronous=name == "ours-sync")
    if name in ("ray", "ray-sync"):
        from ray import tune
        from ray.tune.schedulers import PopulationBasedTraining

        return PopulationBasedTraining(time_attr="training_iteration", perturbation_interval=interval,
                                       hyperparam_mutations={"h0": tune.uniform(0.0, 1.0),
                                                             "h1": tune.uniform(0.0, 1.0)},
                                       quantile_fraction=0.25, resample_probability=resample,
                                       perturbation_factors=(1.2, 0.8), synch=name == "ray-sync")
    if name == "fifo":
        return None
    raise KeyError(f"unknown scheduler {name!r}; known: {', '.join(SCHEDULERS)}")


def run_one(scheduler: str, seed: int, steps: int = 80, size: int = 4, interval: int = 4,
            resample: float = 0.25, num_cpus: int = 2, time_limit_s: float = 300.0,
            log: Callable[[str], None] = print) -> PBTRun:
    """One population under ``scheduler`` (Ray must be running)."""
    from ray import tune
    from ray.tune.search import ConcurrencyLimiter

    from benchmarks.problems import PBTToy
    from search_algs.random_search import RandomSearch

    from ray.tune.logger import JsonLoggerCallback

    rec, recorder = PBTRun(scheduler, seed), _recorder()
    sched = make_scheduler(scheduler, seed, interval, resample)
    const = {"checkpoint_every": interval}
    points = [{**p, **const} for p in population(size)]
    if scheduler.startswith("ray"):  # no searcher allowed: the population is a grid (x size/2 samples)
        param_space = {"h0": tune.grid_search([1.0, 0.0]),
                       "h1": tune.sample_from(lambda config: 1.0 - config["h0"]), **const}
        search_alg, num_samples = None, size // 2
        random.seed(seed)  # Ray's PBT draws from the global generators
        np.random.seed(seed)
    else:
        param_space = {}
        searcher = RandomSearch(space={**PBTToy.template, **const}, metric=METRIC, mode=MODE,
                                points_to_evaluate=points, seed=seed)
        search_alg, num_samples = ConcurrencyLimiter(searcher, max_concurrent=size), size
    t0 = time.perf_counter()
    try:
        with json_logger_only(), tempfile.TemporaryDirectory(prefix="bench-pbt-") as storage:
            tuner = tune.Tuner(
                tune.with_resources(toy_trainable, {"cpu": num_cpus / size}),
                param_space=param_space,
                tune_config=tune.TuneConfig(metric=METRIC, mode=MODE, num_samples=num_samples,
                                            search_alg=search_alg, scheduler=sched, reuse_actors=True,
                                            time_budget_s=time_limit_s,
                                            max_concurrent_trials=size if search_alg is None else None),
                run_config=tune.RunConfig(storage_path=storage, name=f"pbt_{scheduler}_{seed}", verbose=0,
                                          callbacks=[recorder, JsonLoggerCallback()], stop={"training_iteration": steps}),
            )
            grid = tuner.fit()
            rec.wall_s = time.perf_counter() - t0
            errors = [str(r.error) for r in grid if r.error is not None]
            if errors:
                rec.error = f"{len(errors)} trial(s) failed; first: {errors[0][:300]}"
            elif rec.wall_s >= 0.98 * time_limit_s:
                rec.error = f"hit the time limit of {time_limit_s:.0f} s"
    except Exception as e:  # noqa: BLE001 - recorded on the run and shown in the report
        rec.wall_s = time.perf_counter() - t0
        rec.error = f"{type(e).__name__}: {e}"
        log(f"FAILED {scheduler} seed {seed}:\n{traceback.format_exc()}")
    rec.events = recorder.events
    if scheduler.startswith("ours"):
        try:
            rec.exploits = len(sched.lineage())
        except ValueError:  # no trial was ever added (the run failed at once)
            rec.exploits = 0
    elif scheduler.startswith("ray"):
        rec.exploits = _ray_private.ray_pbt_exploits(sched)
    return rec


# ---- metrics (pure) ------------------------------------------------------------------------

def steps_to(events: Sequence, target: float) -> float:
    """The first ``training_iteration`` at which a member reported ``Q >= target`` (inf: never)."""
    hits = [it for _, it, q in events if q >= target]
    return float(min(hits)) if hits else math.inf


def final_best(events: Sequence) -> float:
    """The best member's last Q (NaN counts as -inf)."""
    last: dict[str, float] = {}
    for tid, _, q in events:
        last[tid] = -math.inf if math.isnan(q) else q
    return max(last.values()) if last else -math.inf


def best_ever(events: Sequence) -> float:
    return max((q for _, _, q in events if not math.isnan(q)), default=-math.inf)


def summarise(data: Mapping) -> dict:
    target = data["meta"]["target"]
    per: dict[str, list[dict]] = {}
    for run in data["runs"]:
        ev = run["events"]
        per.setdefault(run["scheduler"], []).append({
            "seed": run["seed"], "steps_to_target": steps_to(ev, target), "final_best": final_best(ev),
            "best_ever": best_ever(ev), "results": len(ev), "exploits": run["exploits"],
            "wall_s": run["wall_s"], "error": run["error"]})
    out = {}
    for name, rows in per.items():
        rows.sort(key=lambda r: r["seed"])
        ok = [r for r in rows if not r["error"]]
        out[name] = {
            "per_seed": rows,
            "n": len(ok),
            "median_steps": statistics.median([r["steps_to_target"] for r in ok]) if ok else math.nan,
            "reached": sum(math.isfinite(r["steps_to_target"]) for r in ok),
            "median_final": statistics.median([r["final_best"] for r in ok]) if ok else math.nan,
            "median_best_ever": statistics.median([r["best_ever"] for r in ok]) if ok else math.nan,
            "median_exploits": statistics.median([r["exploits"] for r in ok]) if ok else math.nan,
            "median_wall_s": statistics.median([r["wall_s"] for r in ok]) if ok else math.nan,
        }
    return out


# ---- the whole benchmark -------------------------------------------------------------------

def run_benchmark(command: str, seeds: int = 5, schedulers: Sequence[str] = SCHEDULERS, steps: int = 80,
                  size: int = 4, interval: int = 4, resample: float = 0.25, target: float = 1.19,
                  num_cpus: int = 2, time_limit_s: float = 300.0, log: Callable[[str], None] = print) -> dict:
    from benchmarks import peers, runner
    from benchmarks.tune_mode import local_ray

    unknown = [s for s in schedulers if s not in SCHEDULERS]
    if unknown or not schedulers:
        raise runner.SelectionError(f"unknown or no scheduler(s) {list(unknown)}; known: {', '.join(SCHEDULERS)}")
    if size < 2 or size % 2:
        raise runner.SelectionError(f"--population must be an even number >= 2 (the paper's two members, "
                                    f"repeated), got {size}")
    t_start = time.perf_counter()
    data = {
        "meta": {
            "kind": "pbt", "title": "PBT on the PBT paper's toy problem",
            "command": command, "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
            "machine": runner.machine(), "git": runner.git_revision(),
            "versions": peers.versions(("ray", "numpy")),
            "seeds": seeds, "steps": steps, "population": size, "interval": interval, "resample": resample,
            "target": target, "num_cpus": num_cpus, "schedulers": list(schedulers), "time_limit_s": time_limit_s,
            "descriptions": {s: DESCRIPTIONS[s] for s in schedulers},
            "load_avg_start": _loadavg(),
        },
        "runs": [],
    }
    with local_ray(num_cpus):
        for seed in range(seeds):
            order = list(schedulers)
            k = seed % len(order)  # rotate, so drifting load does not always hit the same one
            for s in order[k:] + order[:k]:
                rec = run_one(s, seed, steps, size, interval, resample, num_cpus, time_limit_s, log)
                data["runs"].append(asdict(rec))
                reached = steps_to(rec.events, target)
                log(f"{s:>5} seed {seed}: {len(rec.events):4d} results, {rec.exploits:3d} exploits, "
                    f"Q >= {target} at {'never' if math.isinf(reached) else int(reached)}, final best "
                    f"{final_best(rec.events):.4f}, {rec.wall_s:5.1f} s" + (f"  ({rec.error})" if rec.error else ""))
    data["meta"]["load_avg_end"] = _loadavg()
    data["meta"]["wall_s"] = time.perf_counter() - t_start
    return data


def _loadavg() -> list[float] | None:
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return None



# ---- the digits MLP: a learned learning-rate schedule vs the best fixed configuration --------

DIGITS_SCHEDULERS = ("pbt", "fixed")  # the default pair; "ray" (Ray's PBT), "pbt-sync" on request
DIGITS_ALL_SCHEDULERS = ("pbt", "fixed", "ray", "pbt-sync")
DIGITS_DESCRIPTIONS = {
    "pbt": "schedulers.pbt.PBTScheduler: exploit/explore the mutable hyperparameters every `interval` epochs",
    "fixed": "FIFO: each member keeps its initial config; the best of them is the best fixed trial",
    "ray": "ray.tune.schedulers.PopulationBasedTraining (asynchronous), the same initial configs (a grid), "
           "hyperparam_mutations over the mutable hyperparameters' ranges",
    "pbt-sync": "schedulers.pbt.PBTScheduler(synchronous=True): members wait for each other at every interval "
                "and are ranked and cloned at the same epoch",
}
DIGITS_EXTRA_LABELS = {  # scheduler -> (table title, ratio label, "X lower")
    "ray": ("Ray's `PopulationBasedTraining` (asynchronous)", "Ray's PBT", "Ray's"),
    "pbt-sync": ("Our PBT with `synchronous=True`", "synchronous PBT", "synchronous PBT"),
}
DIGITS_VAL_FRACTION = 0.4  # of the images held out of training: half validation, half test
LABEL_NOISE_SEED = 12345  # which training labels are replaced: fixed, the same data set for every seed


@dataclass(frozen=True)
class DigitsProblem:
    """A digits-MLP set-up of the PBT benchmark: the tuned ranges (``lr`` always), the constants
    of every member, and which hyperparameters PBT may change."""

    name: str
    lr: tuple[float, float]
    momentum: tuple[float, float] | float  # a range (tuned) or a constant
    hidden: int
    batch_size: int
    label_noise: float  # fraction of the training labels replaced by a uniform random class
    text: str

    @property
    def mutable(self) -> list[str]:
        return ["lr", "momentum"] if isinstance(self.momentum, tuple) else ["lr"]


DIGITS_PROBLEMS = {
    "digits": DigitsProblem(
        "digits", (1e-3, 0.3), (0.0, 0.95), 64, 64, 0.0,
        "the digits MLP (hidden 64, 2 layers, batch 64, SGD; lr log[1e-3, 0.3] and momentum [0, 0.95] tuned)"),
    "digits-noisy": DigitsProblem(
        "digits-noisy", (1e-3, 1.0), 0.0, 16, 8, 0.3,
        "the digits MLP with noisy training labels (30% of the training labels replaced by a uniform "
        "random class; validation and test labels clean), hidden 16, 2 layers, batch 8, plain SGD "
        "(momentum 0); lr log[1e-3, 1] tuned"),
}


def digits_problem(name: str) -> DigitsProblem:
    try:
        return DIGITS_PROBLEMS[name]
    except KeyError:
        raise KeyError(f"unknown digits problem {name!r}; known: {', '.join(DIGITS_PROBLEMS)}") from None


def digits_template(seed: int, epochs: int, problem: str = "digits") -> dict:
    """The space of ``problem``: ``lr`` (and for ``digits`` ``momentum``) tuned and explored by
    PBT; the architecture, batch size, label noise, epochs and trial seed are constants."""
    from search_algs.space import Float

    p = digits_problem(problem)
    momentum = Float(*p.momentum) if isinstance(p.momentum, tuple) else float(p.momentum)
    out = {"lr": Float(*p.lr, log=True), "momentum": momentum, "hidden": p.hidden, "layers": 2,
           "dropout": 0.0, "batch_size": p.batch_size, "epochs": int(epochs), "seed": int(seed)}
    if p.label_noise:
        out["label_noise"] = float(p.label_noise)
    return out


def initial_configs(seed: int, epochs: int, size: int, problem: str = "digits") -> list[dict]:
    """The ``size`` configs our seeded ``RandomSearch`` gives a population of ``seed`` (the same
    set Tune gets from it, in suggestion order): Ray's PBT, which refuses searchers, gets them
    as a grid."""
    from search_algs.random_search import RandomSearch

    searcher = RandomSearch(space=digits_template(seed, epochs, problem), metric="val_loss", mode="min", seed=seed)
    return [searcher.suggest(f"init_{k}") for k in range(size)]


def noisy_labels(y: np.ndarray, fraction: float, seed: int = LABEL_NOISE_SEED) -> np.ndarray:
    """``y`` with about ``fraction`` of its entries replaced by a uniform random class (0-9; it may
    draw the true one), chosen by a fixed generator."""
    if fraction <= 0:
        return y
    rng = np.random.default_rng(seed)
    y = np.array(y, copy=True)
    hit = rng.random(len(y)) < fraction
    y[hit] = rng.integers(0, 10, int(hit.sum()))
    return y


def digits_splits(val_fraction: float = DIGITS_VAL_FRACTION):
    """``(train, val, test)`` of the digits images: ``tuneorch_examples.digits_mlp.load_digits_split``'s
    fixed shuffle and standardisation, its held-out part cut in two: the first half validates
    (PBT and the choice of the best member see it), the second is a test set nobody selects on."""
    from tuneorch_examples.digits_mlp import load_digits_split

    train, (x, y) = load_digits_split(val_fraction=val_fraction)
    half = len(x) // 2
    return train, (x[:half], y[:half]), (x[half:], y[half:])


def digits_trainable(config: dict) -> None:
    """``tuneorch_examples.digits_mlp.train_digits`` (same model, SGD, batches, checkpoint and resume,
    lr and momentum read from ``config`` after restoring) on :func:`digits_splits`: it also
    reports ``test_loss`` and ``test_accuracy`` on the test half, and the ``lr`` and
    ``momentum`` the epoch was trained with. ``config["label_noise"]`` (default 0): that
    fraction of the training labels is replaced by :func:`noisy_labels` (validation and test
    labels stay clean)."""
    import torch
    from ray import tune
    from torch import nn

    from tuneorch_examples.digits_mlp import build_model

    torch.set_num_threads(1)
    seed = int(config.get("seed", 0))
    torch.manual_seed(seed)
    (xt, yt), val, test = digits_splits()
    yt = noisy_labels(yt, float(config.get("label_noise", 0.0)))  # training labels only
    (xt, yt), (xv, yv), (xs, ys) = [tuple(map(torch.from_numpy, part)) for part in ((xt, yt), val, test)]
    model = build_model(int(config["hidden"]), int(config.get("layers", 2)), float(config.get("dropout", 0.0)))
    lr, momentum = float(config["lr"]), float(config.get("momentum", 0.9))
    optimizer = torch.optim.SGD(model.parameters(), lr=lr, momentum=momentum)
    loss_fn = nn.CrossEntropyLoss()
    epochs, batch_size = int(config.get("epochs", 10)), int(config.get("batch_size", 64))
    generator = torch.Generator().manual_seed(seed)
    start = 0
    checkpoint = tune.get_checkpoint()
    if checkpoint is not None:
        with checkpoint.as_directory() as d:
            state = torch.load(os.path.join(d, "state.pt"), map_location="cpu", weights_only=False)
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        for group in optimizer.param_groups:  # PBT may have changed lr/momentum: the config wins
            group["lr"], group["momentum"] = lr, momentum
        generator.set_state(state["generator"])
        start = state["epoch"]
    for epoch in range(start, epochs):
        model.train()
        order = torch.randperm(len(xt), generator=generator)
        for i in range(0, len(order), batch_size):
            idx = order[i:i + batch_size]
            optimizer.zero_grad()
            loss_fn(model(xt[idx]), yt[idx]).backward()
            optimizer.step()
        model.eval()
        with torch.no_grad():
            lv, ls = model(xv), model(xs)
            metrics = {"val_loss": float(loss_fn(lv, yv)), "val_accuracy": float((lv.argmax(1) == yv).float().mean()),
                       "test_loss": float(loss_fn(ls, ys)), "test_accuracy": float((ls.argmax(1) == ys).float().mean()),
                       "lr": lr, "momentum": momentum, "epoch": epoch + 1}
        with tempfile.TemporaryDirectory() as d:
            torch.save({"model": model.state_dict(), "optimizer": optimizer.state_dict(),
                        "generator": generator.get_state(), "epoch": epoch + 1}, os.path.join(d, "state.pt"))
            tune.report(metrics, checkpoint=tune.Checkpoint.from_directory(d))


DIGITS_FIELDS = ("val_loss", "val_accuracy", "test_loss", "test_accuracy", "lr", "momentum")


def _digits_recorder():
    from ray.tune import Callback

    class Recorder(Callback):
        def __init__(self):
            self.events: list = []  # [trial_id, training_iteration, *DIGITS_FIELDS]
            self.configs: dict = {}

        def on_trial_start(self, iteration, trials, trial, **info):
            # the starting config: by the time callbacks see a result, Ray's PBT may already have
            # changed trial.config in its own on_trial_result (an exploit at the first result)
            self.configs.setdefault(trial.trial_id, {k: trial.config[k] for k in ("lr", "momentum")})

        def on_trial_result(self, iteration, trials, trial, result, **info):
            self.configs.setdefault(trial.trial_id, {k: trial.config[k] for k in ("lr", "momentum")})
            self.events.append([trial.trial_id, int(result["training_iteration"])]
                               + [float(result[k]) for k in DIGITS_FIELDS])

    return Recorder()


def _ray_digits_scheduler(problem: DigitsProblem, interval: int):
    from ray import tune
    from ray.tune.schedulers import PopulationBasedTraining

    mutations = {"lr": tune.loguniform(*problem.lr)}
    if isinstance(problem.momentum, tuple):
        mutations["momentum"] = tune.uniform(*problem.momentum)
    return PopulationBasedTraining(time_attr="training_iteration", perturbation_interval=interval,
                                   hyperparam_mutations=mutations, quantile_fraction=0.25,
                                   resample_probability=0.25, perturbation_factors=(1.2, 0.8))


def run_digits_one(scheduler: str, seed: int, epochs: int = 12, size: int = 4, interval: int = 3,
                   num_cpus: int = 2, time_limit_s: float = 600.0, log: Callable[[str], None] = print,
                   problem: str = "digits") -> dict:
    """``size`` members of :func:`digits_trainable` for ``epochs`` epochs: under PBT, or fixed
    (FIFO). The initial configs come from our ``RandomSearch`` seeded with ``seed``: all
    schedulers of one seed start from the same ``size`` configs (recorded; Ray's PBT, which
    refuses searchers, gets them as a grid, :func:`initial_configs`). PBT (asynchronous,
    as in Jaderberg et al. 2017) ranks by ``val_loss`` every ``interval`` epochs: the bottom 25%
    clone a top-25% member and perturb its mutable hyperparameters (``problem``'s: lr, and
    momentum on ``digits``) by 0.8 or 1.2 (resampled from the space with probability 0.25).
    For our PBT the replayable config schedule of the member that ends best is recorded
    (``schedule``: ``[[t, lr, momentum], ...]``)."""
    from ray import tune
    from ray.tune.logger import JsonLoggerCallback
    from ray.tune.search import ConcurrencyLimiter

    from search_algs.random_search import RandomSearch

    if scheduler not in DIGITS_ALL_SCHEDULERS:
        raise KeyError(f"unknown scheduler {scheduler!r}; known: {', '.join(DIGITS_ALL_SCHEDULERS)}")
    spec = digits_problem(problem)
    recorder = _digits_recorder()
    run = {"scheduler": scheduler, "seed": seed, "events": [], "configs": {}, "exploits": 0,
           "wall_s": 0.0, "error": None, "schedule": None}
    sched = None
    template = digits_template(seed, epochs, problem)
    if scheduler in ("pbt", "pbt-sync"):
        from schedulers.pbt import PBTScheduler

        sched = PBTScheduler(metric="val_loss", mode="min", perturbation_interval=interval,
                             quantile_fraction=0.25, resample_probability=0.25, perturbation_factors=(0.8, 1.2),
                             mutable=spec.mutable, seed=seed, synchronous=scheduler == "pbt-sync")
    if scheduler == "ray":
        configs = initial_configs(seed, epochs, size, problem)
        sched = _ray_digits_scheduler(spec, interval)
        param_space = {k: v for k, v in configs[0].items() if k not in ("lr", "momentum")}
        param_space["member"] = tune.grid_search(list(range(size)))
        param_space["lr"] = tune.sample_from(lambda c: configs[c["member"]]["lr"])
        param_space["momentum"] = tune.sample_from(lambda c: configs[c["member"]]["momentum"])
        search_alg, num_samples = None, 1
        random.seed(seed)  # Ray's PBT draws from the global generators
        np.random.seed(seed)
    else:
        param_space = {}
        searcher = RandomSearch(space=template, metric="val_loss", mode="min", seed=seed)
        search_alg, num_samples = ConcurrencyLimiter(searcher, max_concurrent=size), size
    t0 = time.perf_counter()
    try:
        with json_logger_only(), tempfile.TemporaryDirectory(prefix="bench-pbt-digits-") as storage:
            tuner = tune.Tuner(
                tune.with_resources(digits_trainable, {"cpu": num_cpus / size}),
                param_space=param_space,
                tune_config=tune.TuneConfig(metric="val_loss", mode="min", num_samples=num_samples,
                                            search_alg=search_alg, scheduler=sched, reuse_actors=True,
                                            time_budget_s=time_limit_s,
                                            max_concurrent_trials=size if search_alg is None else None),
                run_config=tune.RunConfig(storage_path=storage, name=f"digits_{scheduler}_{seed}", verbose=0,
                                          callbacks=[recorder, JsonLoggerCallback()]),
            )
            grid = tuner.fit()
            run["wall_s"] = time.perf_counter() - t0
            errors = [str(r.error) for r in grid if r.error is not None]
            if errors:
                run["error"] = f"{len(errors)} trial(s) failed; first: {errors[0][:300]}"
            elif run["wall_s"] >= 0.98 * time_limit_s:
                run["error"] = f"hit the time limit of {time_limit_s:.0f} s"
    except Exception as e:  # noqa: BLE001 - recorded on the run and shown in the report
        run["wall_s"] = time.perf_counter() - t0
        run["error"] = f"{type(e).__name__}: {e}"
        log(f"FAILED digits {scheduler} seed {seed}:\n{traceback.format_exc()}")
    run["events"], run["configs"] = recorder.events, recorder.configs
    if scheduler == "ray":
        run["exploits"] = _ray_private.ray_pbt_exploits(sched)
    elif sched is not None:
        try:
            run["exploits"] = len(sched.lineage())
            best = digits_best_member(run["events"])
            if best is not None:
                run["schedule"] = [[t, float(c["lr"]), float(c["momentum"])]
                                   for t, c in sched.config_schedule(best)]
        except (ValueError, KeyError):
            pass
    return run


def _last_rows(events: Sequence) -> dict:
    """Each member's last event, its ``val_loss`` NaN -> inf."""
    last: dict = {}
    for ev in events:
        last[ev[0]] = [ev[0], ev[1], math.inf if math.isnan(ev[2]) else ev[2], *ev[3:]]
    return last


def digits_best_member(events: Sequence) -> str | None:
    """The trial id of the member with the lowest last ``val_loss`` (the one a user picks)."""
    last = _last_rows(events)
    return min(last, key=lambda tid: last[tid][2]) if last else None


def digits_final(events: Sequence) -> tuple[float, float]:
    """``(val_loss, val_accuracy)`` of the member with the lowest last ``val_loss``."""
    best = digits_best_member(events)
    return tuple(_last_rows(events)[best][2:4]) if best is not None else (math.inf, math.nan)


def digits_final_test(events: Sequence) -> tuple[float, float]:
    """``(test_loss, test_accuracy)`` of that member (NaN when the events carry no test metrics)."""
    best = digits_best_member(events)
    row = _last_rows(events)[best] if best is not None else []
    return (float(row[4]), float(row[5])) if len(row) >= 6 else (math.nan, math.nan)


def run_digits_benchmark(command: str, seeds: int = 5, epochs: int = 12, size: int = 4, interval: int = 3,
                         num_cpus: int = 2, time_limit_s: float = 600.0,
                         log: Callable[[str], None] = print, first_seed: int = 0, problem: str = "digits",
                         schedulers: Sequence[str] = DIGITS_SCHEDULERS) -> dict:
    """Seeds ``first_seed .. first_seed + seeds - 1``, each: every scheduler from the same configs."""
    from benchmarks import peers, runner
    from benchmarks.tune_mode import local_ray

    schedulers = list(schedulers)
    unknown = [s for s in schedulers if s not in DIGITS_ALL_SCHEDULERS]
    if unknown or not {"pbt", "pbt-sync"} & set(schedulers) or "fixed" not in schedulers:
        raise runner.SelectionError(f"digits schedulers must include fixed and pbt or pbt-sync, from "
                                    f"{', '.join(DIGITS_ALL_SCHEDULERS)}; got {schedulers}")
    if problem not in DIGITS_PROBLEMS:
        raise runner.SelectionError(f"unknown digits problem {problem!r}; known: {', '.join(DIGITS_PROBLEMS)}")
    spec = digits_problem(problem)
    t_start = time.perf_counter()
    data = {
        "meta": {
            "kind": "pbt-digits", "title": "PBT vs the best fixed configuration on the digits MLP"
            + ("" if problem == "digits" else f" ({problem})"),
            "command": command, "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
            "machine": runner.machine(), "git": runner.git_revision(),
            "versions": peers.versions(("ray", "torch", "numpy", "scikit-learn")),
            "seeds": seeds, "first_seed": first_seed, "epochs": epochs, "population": size,
            "interval": interval, "num_cpus": num_cpus, "problem": problem, "problem_text": spec.text,
            "mutable": spec.mutable,
            "split": {"val_fraction_held_out": DIGITS_VAL_FRACTION, "test": "second half of the held-out part"},
            "schedulers": schedulers, "descriptions": {s: DIGITS_DESCRIPTIONS[s] for s in schedulers},
            "time_limit_s": time_limit_s, "load_avg_start": _loadavg(),
        },
        "runs": [],
    }
    with local_ray(num_cpus):
        for seed in range(first_seed, first_seed + seeds):
            k = seed % len(schedulers)  # rotate, so drifting load does not always hit the same one
            for s in schedulers[k:] + schedulers[:k]:
                run = run_digits_one(s, seed, epochs, size, interval, num_cpus, time_limit_s, log, problem)
                data["runs"].append(run)
                loss, acc = digits_final(run["events"])
                test_loss, test_acc = digits_final_test(run["events"])
                log(f"digits {s:>5} seed {seed}: {len(run['events']):3d} epochs, {run['exploits']:2d} exploits, "
                    f"best final val_loss {loss:.4f} (accuracy {acc:.4f}), its test_loss {test_loss:.4f} "
                    f"(accuracy {test_acc:.4f}), {run['wall_s']:5.1f} s"
                    + (f"  ({run['error']})" if run["error"] else ""))
    data["meta"]["load_avg_end"] = _loadavg()
    data["meta"]["wall_s"] = time.perf_counter() - t_start
    return data


def sign_test_p(wins: int, n: int) -> float:
    """Two-sided exact sign test: the chance of a split at least as uneven as ``wins`` of ``n``
    under a fair coin (ties left out by the caller)."""
    if n <= 0:
        return math.nan
    k = min(wins, n - wins)
    return min(1.0, 2 * sum(math.comb(n, i) for i in range(k + 1)) / 2 ** n)


def _schedule_text(schedule: Sequence | None) -> str:
    """``lr`` over epochs of a config schedule, e.g. ``0.052 (0-) 0.042 (6-)``."""
    if not schedule:
        return ""
    return " ".join(f"{lr:.3g}@{t:g}" for t, lr, _ in schedule)


def _ratio_line(label: str, pairs: Sequence[tuple[float, float]]) -> str:
    """``a / b`` over seeds: median, range, how often ``a < b``, the sign test's p."""
    r = [a / b for a, b in pairs]
    wins, ties = sum(a < b for a, b in pairs), sum(a == b for a, b in pairs)
    return (f"{label}: median {statistics.median(r):.3f} (min {min(r):.3f}, max {max(r):.3f}), PBT lower in "
            f"{wins} of {len(r)} seeds" + (f" ({ties} tied)" if ties else "")
            + f", sign test p = {sign_test_p(wins, len(r) - ties):.3g}")


def render_digits_held_out(data: Mapping) -> str:
    """The table of a run with a test split (events carry test metrics, learning rates)."""
    meta = data["meta"]
    runs = {(r["scheduler"], r["seed"]): r for r in data["runs"]}
    n, e = meta["population"], meta["epochs"]
    text = meta.get("problem_text", "the digits MLP: hidden 64, 2 layers, batch 64, SGD; lr log[1e-3, 0.3] and "
                                    "momentum [0, 0.95] tuned")
    mutable = " and ".join(meta.get("mutable", ["lr", "momentum"]))
    primary = "pbt" if any(r["scheduler"] == "pbt" for r in data["runs"]) else "pbt-sync"
    out = [f"## {meta['title']}", "",
           f"- command: `{meta['command']}`",
           f"- date: {meta['date']}; wall time {meta.get('wall_s', 0):.0f} s; load average "
           f"{meta.get('load_avg_start')} -> {meta.get('load_avg_end')}",
           f"- machine: {meta['machine']}; code: {meta['git']}",
           "- versions: " + ", ".join(f"{k} {v}" for k, v in meta["versions"].items()),
           f"- `benchmarks.pbt.digits_trainable`, {text}; train 60% / validation 20% / test 20% of the images; "
           f"population {n} x {e} epochs (budget {n * e} epochs); initial configs from our seeded RandomSearch "
           f"(the same {n} for every scheduler); PBT ({'asynchronous' if primary == 'pbt' else 'synchronous'}) ranks on val_loss and exploits/explores "
           f"{mutable} every {meta['interval']} epochs (quantile 0.25, factors 0.8/1.2, resample 0.25); "
           f"{meta['seeds']} seeds",
           "- value: the member with the lowest last `val_loss` (what a user would pick); its `val_loss`, and "
           "its `test_loss` / `test_accuracy` on the test split that neither PBT nor the choice saw", "",
           "| seed | val_loss PBT | val_loss fixed | test_loss PBT | test_loss fixed | test acc. PBT | test acc. "
           "fixed | exploits | epochs PBT | PBT winner's lr schedule (lr@epoch) |",
           "|---|---|---|---|---|---|---|---|---|---|"]
    extras = [x for x in DIGITS_EXTRA_LABELS if x != primary and any(r["scheduler"] == x for r in data["runs"])]
    val, test = [], []
    extra_pairs = {x: ([], [], []) for x in extras}  # val pairs, test pairs, table rows
    for seed in sorted({r["seed"] for r in data["runs"]}):
        p, f = runs.get((primary, seed)), runs.get(("fixed", seed))
        if p is None or f is None:
            continue
        (pl, _), (fl, _) = digits_final(p["events"]), digits_final(f["events"])
        (ptl, pta), (ftl, fta) = digits_final_test(p["events"]), digits_final_test(f["events"])
        bad = p["error"] or f["error"]
        if not bad:
            val.append((pl, fl))
            test.append((ptl, ftl))
        out.append(f"| {seed} | {pl:.4f} | {fl:.4f} | {ptl:.4f} | {ftl:.4f} | {pta:.4f} | {fta:.4f} | "
                   f"{p['exploits']} | {len(p['events'])} | {_schedule_text(p.get('schedule'))} |"
                   + (f" error: {bad}" if bad else ""))
        for x in extras:
            r = runs.get((x, seed))
            if r is None:
                continue
            xv, xt, rows = extra_pairs[x]
            (rl, _), (rtl, rta) = digits_final(r["events"]), digits_final_test(r["events"])
            if not (bad or r["error"]):
                xv.append((rl, fl))
                xt.append((rtl, ftl))
            rows.append(f"| {seed} | {rl:.4f} | {fl:.4f} | {rtl:.4f} | {ftl:.4f} | {rta:.4f} | {r['exploits']} "
                        f"| {len(r['events'])} | {_schedule_text(r.get('schedule'))} |"
                        + (f" error: {r['error']}" if r["error"] else ""))
    if val:
        out += ["", "PBT / best fixed, " + _ratio_line("val_loss", val) + "; " + _ratio_line("test_loss", test) + ".",
                "", f"Medians over seeds: val_loss PBT {statistics.median(a for a, _ in val):.4f}, fixed "
                    f"{statistics.median(b for _, b in val):.4f}; test_loss PBT {statistics.median(a for a, _ in test):.4f}, "
                    f"fixed {statistics.median(b for _, b in test):.4f}."]
    for x in extras:
        xv, xt, rows = extra_pairs[x]
        if not rows:
            continue
        title, label, who = DIGITS_EXTRA_LABELS[x]
        out += ["", f"{title}, same initial configs, vs the same best fixed trial:",
                "", f"| seed | val_loss {label} | val_loss fixed | test_loss {label} | test_loss fixed | test acc. "
                    f"{label} | exploits | epochs | winner's lr schedule (ours only) |",
                "|---|---|---|---|---|---|---|---|---|", *rows]
        if xv:
            out += ["", f"{label} / best fixed, " + _ratio_line("val_loss", xv).replace("PBT lower", f"{who} lower")
                    + "; " + _ratio_line("test_loss", xt).replace("PBT lower", f"{who} lower") + "; medians: "
                    f"val_loss {statistics.median(a for a, _ in xv):.4f}, test_loss "
                    f"{statistics.median(a for a, _ in xt):.4f}."]
    return "\n".join(out)


def render_digits(data: Mapping) -> str:
    meta = data["meta"]
    if "split" in meta:
        return render_digits_held_out(data)
    runs = {(r["scheduler"], r["seed"]): r for r in data["runs"]}
    out = [f"## {meta['title']}", "",
           f"- command: `{meta['command']}`",
           f"- date: {meta['date']}; wall time {meta.get('wall_s', 0):.0f} s; load average "
           f"{meta.get('load_avg_start')} -> {meta.get('load_avg_end')}",
           f"- machine: {meta['machine']}; code: {meta['git']}",
           "- versions: " + ", ".join(f"{k} {v}" for k, v in meta["versions"].items()),
           f"- `tuneorch_examples.digits_mlp.train_digits` (hidden 64, 2 layers, batch 64, no dropout), population "
           f"{meta['population']} x {meta['epochs']} epochs; lr log[1e-3, 0.3] and momentum [0, 0.95] from "
           f"our seeded RandomSearch (the same {meta['population']} initial configs for both); PBT explores "
           f"lr and momentum every {meta['interval']} epochs; {meta['seeds']} seeds",
           "- value: the lowest last `val_loss` among the members (all train to the last epoch), and that "
           "member's `val_accuracy`", "",
           "| seed | PBT val_loss | fixed val_loss | PBT accuracy | fixed accuracy | PBT exploits | PBT epochs "
           "| fixed epochs |", "|---|---|---|---|---|---|---|---|"]
    ratios, wins = [], 0
    for seed in range(meta["seeds"]):
        p, f = runs.get(("pbt", seed)), runs.get(("fixed", seed))
        if p is None or f is None:
            continue
        (pl, pa), (fl, fa) = digits_final(p["events"]), digits_final(f["events"])
        bad = p["error"] or f["error"]
        if not bad:
            ratios.append(pl / fl)
            wins += pl < fl
        out.append(f"| {seed} | {pl:.4f} | {fl:.4f} | {pa:.4f} | {fa:.4f} | {p['exploits']} | {len(p['events'])} "
                   f"| {len(f['events'])} |" + (f" error: {bad}" if bad else ""))
    if ratios:
        out += ["", f"PBT's val_loss / the best fixed trial's: median {statistics.median(ratios):.3f} "
                    f"(min {min(ratios):.3f}, max {max(ratios):.3f}); PBT lower in {wins} of {len(ratios)} seeds."]
    return "\n".join(out)

# ---- report --------------------------------------------------------------------------------

def _steps(x: float) -> str:
    return "never" if math.isinf(x) else ("n/a" if math.isnan(x) else f"{x:g}")


def render(data: Mapping) -> str:
    meta = data["meta"]
    if meta.get("kind") == "pbt-digits":
        return render_digits(data)
    s = summarise(data)
    out = [f"## {meta['title']}", "",
           f"- command: `{meta['command']}`",
           f"- date: {meta['date']}; wall time {meta.get('wall_s', 0):.0f} s; load average "
           f"{meta.get('load_avg_start')} -> {meta.get('load_avg_end')}",
           f"- machine: {meta['machine']}; code: {meta['git']}",
           "- versions: " + ", ".join(f"{k} {v}" for k, v in meta["versions"].items()),
           f"- population {meta['population']} (h = (1, 0), (0, 1), ...), {meta['steps']} steps, exploit/explore "
           f"every {meta['interval']} steps, resample probability {meta['resample']}, quantile 0.25, "
           f"factors 0.8/1.2; {meta['seeds']} seeds; target Q >= {meta['target']}",
           ""]
    for name in meta["schedulers"]:
        out.append(f"- `{name}`: {meta['descriptions'][name]}")
    out += ["", f"| scheduler | steps to Q >= {meta['target']} (median) | per seed | reached | final best Q "
                f"(median) | best Q ever (median) | exploits (median) | wall s (median) |",
            "|---|---|---|---|---|---|---|---|"]
    for name in meta["schedulers"]:
        r = s.get(name)
        if r is None:
            continue
        seeds = ", ".join(_steps(x["steps_to_target"]) for x in r["per_seed"])
        out.append(f"| {name} | {_steps(r['median_steps'])} | {seeds} | {r['reached']}/{r['n']} | "
                   f"{r['median_final']:.4f} | {r['median_best_ever']:.4f} | {r['median_exploits']:g} | "
                   f"{r['median_wall_s']:.1f} |")
    failures = [f"{name} seed {x['seed']}: {x['error']}" for name, r in s.items() for x in r["per_seed"] if x["error"]]
    if failures:
        out += ["", "Failures:"] + [f"- {f}" for f in failures]
    return "\n".join(out)


def write(data: Mapping, out_dir: str) -> tuple[str, str]:
    from benchmarks.runner import write_results

    return write_results(data, out_dir, render)
