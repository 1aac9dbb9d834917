"""Scheduler benchmark (issue 7): FIFO vs our ASHA (stopping, promotion) vs Ray's ASHA.

Problem: ``tuneorch_examples.digits_mlp.train_digits`` (a torch MLP on scikit-learn's digits that reports
``val_loss`` after every epoch and checkpoints every epoch, so the promotion variant can pause
and resume it), trained for at most ``max_t`` epochs (27), ``grace_period`` 1, ``eta`` 3.
Every run goes through ``ray.tune.Tuner`` with ``concurrency`` trials at once (CPU
``cpus / concurrency`` each on a local Ray of ``cpus`` CPUs) and ``n_trials`` trials. The configs
come from our seeded ``RandomSearch``: every scheduler of one seed sees the same ``n_trials``
configs (recorded and checked). Dropout is fixed at 0 and the trial seed is a constant of the
run, so a config's learning curve is deterministic (also across a pause and resume): the
schedulers differ only in which trials they let train how long.

Recorded per run, in the order the driver received them: every result (trial, epoch,
``val_loss``). From them (all pure functions below, tested on hand-made data):

* **epochs** consumed: the number of results (one result = one trained epoch).
* **latest-epoch incumbent**: the lowest ``val_loss`` among the trials at their latest epoch
  (NaN counts as +inf); **final regret** uses it after the last result.
* **recommended**: the trial that trained longest (``max_t`` when any reached it) with the lowest
  last ``val_loss``; its ``val_loss``.
* **completed incumbent** after ``e`` epochs: the lowest final ``val_loss`` among the trials that
  have reached ``max_t`` (+inf before any has): what the run would recommend if stopped there.
  Unlike the latest-epoch incumbent it cannot dip on a running trial that later overfits, so the
  curve and the comparisons at equal epochs use it.
* **reference optimum** of a seed: the lowest ``val_loss`` of any trial at any epoch in that
  seed's FIFO run (FIFO trains every config to ``max_t``, so no other run of the seed can see a
  lower value). **regret** = value - reference (>= 0); FIFO's own final regret is > 0 when its
  best config is better at some earlier epoch than at ``max_t``.
* regret of the completed incumbent at 25/50/100% of FIFO's epochs (a run that ended earlier
  keeps its final one); **epochs to FIFO's final regret**: the first ``e`` at which the
  completed incumbent is at most FIFO's final recommended value, as a fraction of FIFO's epochs.
* ours vs Ray's ASHA per seed: final regret, and the completed incumbents after the same number
  of epochs (the smaller of the two runs' totals).
* wall seconds of ``Tuner.fit``.

Medians [IQR] over seeds. The scheduler order is rotated from seed to seed, so drifting load on
a shared machine does not always hit the same scheduler.

Decision overhead (:func:`decision_overhead`): our pure policy (``schedulers.core.asha.ASHA``,
stopping variant) is fed a synthetic asynchronous stream (``concurrency`` live trials, each
reporting a noisy decreasing curve, a stopped or finished one replaced by a new one) until it has
recorded ``n_results`` results; then each of the next ``window`` ``on_result`` calls is timed
(``perf_counter_ns``). The same is done for Ray's ``ASHAScheduler.on_trial_result`` and for our
Tune adapter (``schedulers.asha.ASHAScheduler.on_trial_result``, which also writes its state file
after every change), both given the same kind of stream.
"""

from __future__ import annotations

import contextlib
import math
import os
import tempfile
import time
import traceback
from dataclasses import asdict, dataclass, field
from typing import Any, Callable, Iterable, Mapping, Sequence

import numpy as np

from benchmarks.runner import json_logger_only

SCHEDULERS = ("fifo", "asha", "asha-promotion", "ray-asha")
DESCRIPTIONS = {
    "fifo": "Tune's FIFOScheduler: every trial trains max_t epochs",
    "asha": "ours: schedulers.asha.ASHAScheduler(variant='stopping')",
    "asha-promotion": ("ours: schedulers.asha.ASHAScheduler(variant='promotion') "
                       "(pause at rungs, resume from checkpoint)"),
    "ray-asha": "ray.tune.schedulers.ASHAScheduler(reduction_factor=eta, brackets=1)",
}
OURS = ("asha", "asha-promotion")
FRACTIONS = (0.25, 0.5, 1.0)
FRACTION_LABELS = ("25%", "50%", "100%")
METRIC, MODE = "val_loss", "min"
TOL = 1e-9  # the same config gives bit-identical curves: values equal or they differ


# ---- the problem ---------------------------------------------------------------------------

def space_template(seed: int, max_t: int = 27) -> dict:
    """Search space of ``train_digits``; ``epochs`` and the trial ``seed`` are constants."""
    from search_algs.space import Categorical, Float, Int

    return {
        "lr": Float(1e-3, 1.0, log=True),
        "momentum": Float(0.5, 0.99),
        "hidden": Int(16, 128, log=True),
        "layers": Int(1, 3),
        "batch_size": Categorical([32, 64, 128]),
        "dropout": 0.0,
        "epochs": int(max_t),
        "seed": int(seed),
    }


def make_scheduler(name: str, seed: int, max_t: int = 27, grace_period: int = 1, eta: int = 3) -> Any:
    """The scheduler called ``name`` (``None`` for FIFO: Tune's default)."""
    if name == "fifo":
        return None
    if name in OURS:
        from schedulers.asha import ASHAScheduler

        return ASHAScheduler(time_attr="training_iteration", metric=METRIC, mode=MODE, max_t=max_t,
                             grace_period=grace_period, eta=eta, brackets=1,
                             variant="stopping" if name == "asha" else "promotion", seed=seed)
    if name == "ray-asha":
        from ray.tune.schedulers import ASHAScheduler as RayASHA

        return RayASHA(time_attr="training_iteration", max_t=max_t, grace_period=grace_period,
                       reduction_factor=eta, brackets=1)
    raise KeyError(f"unknown scheduler {name!r}; known: {', '.join(SCHEDULERS)}")


# ---- one run through Tune ------------------------------------------------------------------

@dataclass
class SchedRun:
    scheduler: str
    seed: int
    n_trials: int
    events: list = field(default_factory=list)  # [trial_id, epoch, val_loss] in arrival order
    configs: dict = field(default_factory=dict)  # trial_id -> config
    wall_s: float = 0.0
    error: str | None = None
    timed_out: bool = False

    def to_json(self) -> dict:
        return asdict(self)


def _recorder():
    from ray.tune import Callback

    class Recorder(Callback):
        """Every result the driver receives, in order (callbacks run in the driver)."""

        def __init__(self):
            self.events: list = []
            self.configs: dict = {}

        def on_trial_result(self, iteration, trials, trial, result, **info):
            self.configs.setdefault(trial.trial_id, dict(trial.config))
            self.events.append([trial.trial_id, int(result["training_iteration"]),
                                _as_float(result.get(METRIC))])

    return Recorder()


def _as_float(x: Any) -> float:
    try:
        return float(x)
    except (TypeError, ValueError):
        return math.nan


def run_one(scheduler: str, seed: int, n_trials: int, concurrency: int = 4, num_cpus: int = 2,
            max_t: int = 27, grace_period: int = 1, eta: int = 3, time_limit_s: float = 900.0,
            log: Callable[[str], None] = print) -> SchedRun:
    """``n_trials`` trials of ``train_digits`` under ``scheduler`` (Ray must be running)."""
    from ray import tune
    from ray.tune.search import ConcurrencyLimiter

    from tuneorch_examples.digits_mlp import train_digits
    from search_algs.random_search import RandomSearch
    from search_algs.space import Space

    from ray.tune.logger import JsonLoggerCallback

    rec = SchedRun(scheduler, seed, n_trials)
    recorder = _recorder()
    t0 = time.perf_counter()
    try:
        with json_logger_only(), tempfile.TemporaryDirectory(prefix="bench-sched-") as storage:
            searcher = ConcurrencyLimiter(
                RandomSearch(Space.of(space_template(seed, max_t)), metric=METRIC, mode=MODE, seed=seed),
                max_concurrent=concurrency)
            tuner = tune.Tuner(
                tune.with_resources(train_digits, {"cpu": num_cpus / concurrency}),
                tune_config=tune.TuneConfig(
                    search_alg=searcher, scheduler=make_scheduler(scheduler, seed, max_t, grace_period, eta),
                    num_samples=n_trials, metric=METRIC, mode=MODE, time_budget_s=time_limit_s,
                    reuse_actors=True),  # a new trial gets a worker with torch already imported
                run_config=tune.RunConfig(
                    storage_path=storage, name=f"sched_{scheduler}_{seed}", verbose=0,
                    callbacks=[recorder, JsonLoggerCallback()]),
            )
            t0 = time.perf_counter()
            grid = tuner.fit()
            rec.wall_s = time.perf_counter() - t0
            errors = [str(r.error) for r in grid if r.error is not None]
            if errors:
                rec.error = f"{len(errors)} trial(s) failed; first: {errors[0][:300]}"
    except Exception as e:  # noqa: BLE001 - recorded on the run and shown in the report
        rec.wall_s = time.perf_counter() - t0
        rec.error = f"{type(e).__name__}: {e}"
        log(f"FAILED {scheduler} seed {seed}:\n{traceback.format_exc()}")
    rec.events = recorder.events
    rec.configs = recorder.configs
    rec.timed_out = rec.wall_s >= 0.98 * time_limit_s
    if rec.timed_out and not rec.error:
        rec.error = f"hit the time limit of {time_limit_s:.0f} s"
    return rec


# ---- metrics (pure) ------------------------------------------------------------------------

def _loss(v: float) -> float:
    v = float(v)
    return math.inf if math.isnan(v) else v


def total_epochs(events: Sequence) -> int:
    return len(events)


def incumbent_trajectory(events: Sequence) -> list[float]:
    """After each result: the lowest value among the trials at their latest epoch (NaN = +inf)."""
    latest: dict[str, float] = {}
    out = []
    for tid, _t, v in events:
        latest[tid] = _loss(v)
        out.append(min(latest.values()))
    return out


def completed_trajectory(events: Sequence, max_t: int) -> list[float]:
    """After each result: the lowest value among the trials that have reached ``max_t`` epochs
    (+inf while none has): what the run would recommend if it were stopped there."""
    best = math.inf
    out = []
    for _tid, t, v in events:
        if int(t) >= max_t:
            best = min(best, _loss(v))
        out.append(best)
    return out


def last_results(events: Sequence) -> dict[str, tuple[int, float]]:
    """``{trial_id: (epoch, value)}`` of each trial's last result."""
    out: dict[str, tuple[int, float]] = {}
    for tid, t, v in events:
        out[tid] = (int(t), _loss(v))
    return out


def best_last(events: Sequence) -> float:
    """Lowest value among the trials at their last epoch."""
    last = last_results(events)
    return min(v for _, v in last.values()) if last else math.inf


def recommended(events: Sequence) -> tuple[str | None, float]:
    """``(trial_id, value)``: among the trials that trained longest, the lowest last value."""
    last = last_results(events)
    if not last:
        return None, math.inf
    longest = max(t for t, _ in last.values())
    tid = min((tid for tid, (t, _) in last.items() if t == longest), key=lambda k: (last[k][1], k))
    return tid, last[tid][1]


def reference_optimum(fifo_events: Sequence) -> float:
    """Lowest value of any trial at any epoch of the FIFO run."""
    return min((_loss(v) for _, _, v in fifo_events), default=math.inf)


def regret(value: float, reference: float) -> float:
    if math.isinf(value) and value > 0:
        return math.inf
    return float(value) - float(reference)


def budgets(fifo_total: int, fractions: Sequence[float] = FRACTIONS) -> list[int]:
    return [max(1, int(math.ceil(f * fifo_total))) for f in fractions]


def incumbent_at(trajectory: Sequence[float], epochs: int) -> float:
    """The incumbent after ``epochs`` results (the final one when the run had fewer)."""
    if not trajectory:
        return math.inf
    return trajectory[min(epochs, len(trajectory)) - 1]


def epochs_to_reach(trajectory: Sequence[float], target: float, tol: float = TOL) -> int | None:
    """First number of epochs after which the incumbent is <= ``target`` (None: never)."""
    for i, v in enumerate(trajectory):
        if v <= target + tol:
            return i + 1
    return None


def run_metrics(events: Sequence, reference: float, fifo_total: int, fifo_final: float, max_t: int) -> dict:
    """Every per-run number of the report (see the module docstring). ``fifo_final``: the
    FIFO run's final recommended value (the target); the budgets are fractions of ``fifo_total``."""
    latest = incumbent_trajectory(events)
    final = latest[-1] if latest else math.inf
    _, rec_value = recommended(events)
    traj = completed_trajectory(events, max_t)
    reach = epochs_to_reach(traj, fifo_final)
    return {
        "epochs": total_epochs(events),
        "epochs_frac": total_epochs(events) / fifo_total if fifo_total else math.nan,
        "final": final,
        "regret": regret(final, reference),
        "recommended": rec_value,
        "regret_recommended": regret(rec_value, reference),
        "regret_at": {lab: regret(incumbent_at(traj, b), reference)
                      for lab, b in zip(FRACTION_LABELS, budgets(fifo_total))},
        "epochs_to_fifo_final": reach,
        "frac_to_fifo_final": (reach / fifo_total) if reach is not None and fifo_total else None,
    }


def paired_at_common_epochs(events_a: Sequence, events_b: Sequence, reference: float,
                            max_t: int) -> tuple[float, float, int]:
    """Regret of the completed-trial incumbents of two runs after the same number of epochs
    (the smaller of the two totals), and that number."""
    e = min(len(events_a), len(events_b))
    if e == 0:
        return math.inf, math.inf, 0
    return (regret(completed_trajectory(events_a, max_t)[e - 1], reference),
            regret(completed_trajectory(events_b, max_t)[e - 1], reference), e)


def config_key(config: Mapping) -> str:
    return repr(sorted((k, round(v, 12) if isinstance(v, float) else v) for k, v in config.items()))


def summarise(data: Mapping) -> dict:
    """Per-seed metrics and medians per scheduler, from the raw runs."""
    runs = [r for r in data["runs"]]
    by = {(r["scheduler"], r["seed"]): r for r in runs}
    seeds = sorted({r["seed"] for r in runs})
    scheds = [s for s in data["meta"]["schedulers"] if any(r["scheduler"] == s for r in runs)]
    per: dict[str, dict[int, dict]] = {s: {} for s in scheds}
    notes: list[str] = []
    max_t = int(data["meta"]["max_t"])
    for seed in seeds:
        fifo = by.get(("fifo", seed))
        if fifo is None or fifo.get("error") or not fifo["events"]:
            notes.append(f"seed {seed}: no complete FIFO run, so no reference: seed left out")
            continue
        ref = reference_optimum(fifo["events"])
        fifo_total = total_epochs(fifo["events"])
        fifo_final = completed_trajectory(fifo["events"], max_t)[-1]
        fifo_configs = sorted(config_key(c) for c in fifo["configs"].values())
        for s in scheds:
            r = by.get((s, seed))
            if r is None:
                continue
            if r.get("error"):
                notes.append(f"{s} seed {seed}: {r['error']}")
                continue
            m = run_metrics(r["events"], ref, fifo_total, fifo_final, max_t)
            m["wall_s"] = r["wall_s"]
            m["same_configs"] = sorted(config_key(c) for c in r["configs"].values()) == fifo_configs
            if not m["same_configs"]:
                notes.append(f"{s} seed {seed}: its configs differ from FIFO's (a trial that never reported?)")
            per[s][seed] = m
    med = {}
    for s in scheds:
        ms = list(per[s].values())
        if not ms:
            continue
        reach = [m["frac_to_fifo_final"] for m in ms]
        med[s] = {
            "n": len(ms),
            "epochs": _q([m["epochs"] for m in ms]),
            "epochs_frac": _q([m["epochs_frac"] for m in ms]),
            "regret": _q([m["regret"] for m in ms]),
            "regret_recommended": _q([m["regret_recommended"] for m in ms]),
            "regret_at": {lab: _q([m["regret_at"][lab] for m in ms]) for lab in FRACTION_LABELS},
            # a seed that never reached FIFO's final regret counts as +inf
            "frac_to_fifo_final": _q([math.inf if x is None else x for x in reach]),
            "reached": sum(x is not None for x in reach),
            "within_third": sum(x is not None and x <= 1 / 3 + 1e-12 for x in reach),
            "wall_s": _q([m["wall_s"] for m in ms]),
        }
    pairs = {}
    for a in OURS:
        for b in ("ray-asha",):
            rows = []
            for seed in seeds:
                ra, rb = by.get((a, seed)), by.get((b, seed))
                if seed not in per.get(a, {}) or seed not in per.get(b, {}):
                    continue
                ref = reference_optimum(by[("fifo", seed)]["events"])
                ga, gb, e = paired_at_common_epochs(ra["events"], rb["events"], ref, max_t)
                rows.append({"seed": seed, "regret_a": per[a][seed]["regret"], "regret_b": per[b][seed]["regret"],
                             "epochs_a": per[a][seed]["epochs"], "epochs_b": per[b][seed]["epochs"],
                             "common_epochs": e, "common_a": ga, "common_b": gb})
            if rows:
                pairs[(a, b)] = rows
    return {"per_seed": per, "median": med, "pairs": pairs, "notes": notes, "seeds": seeds}


def _q(xs: Sequence[float]) -> tuple[float, float, float]:
    """``(median, q1, q3)``; an infinite value sorts last (numpy's percentile would give NaN)."""
    xs = sorted(float(x) for x in xs)
    if not xs:
        return (math.nan, math.nan, math.nan)

    def pct(p: float) -> float:
        pos = p * (len(xs) - 1)
        lo, hi = int(math.floor(pos)), int(math.ceil(pos))
        if lo == hi or xs[lo] == xs[hi]:
            return xs[lo]
        if math.isinf(xs[hi]):
            return math.inf
        return xs[lo] + (xs[hi] - xs[lo]) * (pos - lo)

    return pct(0.5), pct(0.25), pct(0.75)


def wtl(pairs: Iterable[tuple[float, float]], tol: float = TOL) -> tuple[int, int, int]:
    """``(wins, ties, losses)`` of the first of each pair (lower is better)."""
    w = t = l = 0
    for a, b in pairs:
        if abs(a - b) <= tol or (math.isinf(a) and math.isinf(b)):
            t += 1
        elif a < b:
            w += 1
        else:
            l += 1
    return w, t, l


# ---- decision overhead ---------------------------------------------------------------------

class _Stream:
    """A synthetic asynchronous result stream: ``concurrency`` live trials; each step one of them
    (chosen at random) reports its next epoch; a stopped or finished trial is replaced."""

    def __init__(self, seed: int, concurrency: int):
        self.rng = np.random.default_rng(seed)
        self.concurrency = concurrency
        self.live: dict[str, list] = {}  # id -> [epoch, quality]
        self.next_id = 0

    def fill(self, on_new: Callable[[str], None]) -> None:
        while len(self.live) < self.concurrency:
            tid = f"t{self.next_id:07d}"
            self.next_id += 1
            self.live[tid] = [0, float(self.rng.uniform(0.05, 1.0))]
            on_new(tid)

    def step(self) -> tuple[str, int, float]:
        ids = list(self.live)
        tid = ids[int(self.rng.integers(len(ids)))]
        state = self.live[tid]
        state[0] += 1
        t = state[0]
        value = state[1] + 1.0 / (t + 1) + 0.02 * float(self.rng.normal())
        return tid, t, value

    def end(self, tid: str) -> None:
        self.live.pop(tid, None)


class _FakeTrial:
    """What the schedulers' hooks read of a trial when they see a plain result."""

    def __init__(self, trial_id: str):
        self.trial_id = trial_id
        self.status = "RUNNING"
        self.checkpoint = None


def _percentiles_us(ns: Sequence[int]) -> dict:
    if not ns:
        return {"n": 0, "median_us": math.nan, "p95_us": math.nan}
    a = np.asarray(ns, dtype=float) / 1e3
    return {"n": int(len(a)), "median_us": float(np.median(a)), "p95_us": float(np.percentile(a, 95))}


def decision_overhead(n_results: int = 10_000, window: int = 1000, seed: int = 0, concurrency: int = 4,
                      max_t: int = 27, grace_period: int = 1, eta: int = 3,
                      which: Sequence[str] = ("ours-core", "ray-asha", "ours-adapter"),
                      adapter_window: int | None = None) -> dict:
    """Microseconds per ``on_result`` decision once ``n_results`` results are recorded.

    ``ours-core``: ``schedulers.core.asha.ASHA.on_result`` (stopping variant), the pure policy.
    ``ray-asha``: ``ray.tune.schedulers.ASHAScheduler.on_trial_result``.
    ``ours-adapter``: ``schedulers.asha.ASHAScheduler.on_trial_result`` (Tune adapter, writing its
    state file after every change); it is warmed up through its core (no file writes), then timed
    for ``adapter_window`` calls (default ``window``).
    Reported for every call of the window and for the calls that recorded a rung arrival.
    """
    out = {"n_results": n_results, "window": window, "concurrency": concurrency, "max_t": max_t,
           "grace_period": grace_period, "eta": eta, "seed": seed, "results": {}}
    for name in which:
        if name == "ours-core":
            out["results"][name] = _overhead_ours(n_results, window, seed, concurrency, max_t, grace_period, eta,
                                                  adapter=False)
        elif name == "ours-adapter":
            out["results"][name] = _overhead_ours(n_results, adapter_window or window, seed, concurrency, max_t,
                                                  grace_period, eta, adapter=True)
        elif name == "ray-asha":
            out["results"][name] = _overhead_ray(n_results, window, seed, concurrency, max_t, grace_period, eta)
        else:
            raise KeyError(f"unknown overhead target {name!r}")
    return out


def _overhead_ours(n_results, window, seed, concurrency, max_t, grace_period, eta, adapter: bool) -> dict:
    from schedulers.core.asha import ASHA, Action

    core = ASHA(grace_period, eta, max_t, 1, "min", "stopping", seed,
                context={"metric": "loss", "time_attr": "training_iteration"})
    stream = _Stream(seed, concurrency)
    tmp = None
    sched = None
    decide = core.on_result
    all_ns: list[int] = []
    arrival_ns: list[int] = []
    count = 0
    try:
        while count < n_results + window:
            if count == n_results and adapter:
                from schedulers.asha import ASHAScheduler

                tmp = tempfile.TemporaryDirectory(prefix="bench-asha-state-")
                sched = ASHAScheduler(time_attr="training_iteration", metric="loss", mode="min", max_t=max_t,
                                      grace_period=grace_period, eta=eta, seed=seed,
                                      state_path=os.path.join(tmp.name, "asha_state.json"))
                sched._core = core  # the warmed-up history; the adapter writes it from now on
                sched._saved_version = None
                sched._persist()  # the first write of the whole history is not a decision
            if sched is not None:  # as in Tune: new trials come in through the adapter's hook
                stream.fill(lambda tid: sched.on_trial_add(None, _FakeTrial(tid)))
            else:
                stream.fill(core.add)
            tid, t, value = stream.step()
            level = core.trials[tid].level
            if sched is not None:
                trial, result = _FakeTrial(tid), {"training_iteration": t, "loss": value}
                t0 = time.perf_counter_ns()
                action = sched.on_trial_result(None, trial, result)
                dt = time.perf_counter_ns() - t0
                stop = action == "STOP"
            else:
                t0 = time.perf_counter_ns()
                action = decide(tid, t, value)
                dt = time.perf_counter_ns() - t0
                stop = action is Action.STOP
            if count >= n_results:
                all_ns.append(dt)
                if core.trials[tid].level != level:
                    arrival_ns.append(dt)
            count += 1
            if stop:
                if sched is not None:
                    sched.on_trial_complete(None, _FakeTrial(tid), {})
                else:
                    core.on_complete(tid)
                stream.end(tid)
    finally:
        if tmp is not None:
            tmp.cleanup()
    records = sum(len(s.rungs) for s in core.trials.values())
    return {"all": _percentiles_us(all_ns), "arrivals": _percentiles_us(arrival_ns),
            "trials": len(core.trials), "rung_records": records}


def _overhead_ray(n_results, window, seed, concurrency, max_t, grace_period, eta) -> dict:
    from ray.tune.schedulers import ASHAScheduler as RayASHA

    np.random.seed(seed)  # Ray draws brackets from numpy's global generator (one bracket here)
    sched = RayASHA(time_attr="training_iteration", metric="loss", mode="min", max_t=max_t,
                    grace_period=grace_period, reduction_factor=eta, brackets=1)
    bracket = sched._brackets[0]
    trials: dict[str, _FakeTrial] = {}
    stream = _Stream(seed, concurrency)

    def add(tid: str) -> None:
        trials[tid] = _FakeTrial(tid)
        sched.on_trial_add(None, trials[tid])

    def n_recorded() -> int:
        return sum(len(rec) for _, rec in bracket._rungs)

    all_ns: list[int] = []
    arrival_ns: list[int] = []
    count = 0
    while count < n_results + window:
        stream.fill(add)
        tid, t, value = stream.step()
        before = n_recorded() if count >= n_results else 0
        result = {"training_iteration": t, "loss": value}
        t0 = time.perf_counter_ns()
        action = sched.on_trial_result(None, trials[tid], result)
        dt = time.perf_counter_ns() - t0
        if count >= n_results:
            all_ns.append(dt)
            if n_recorded() != before:
                arrival_ns.append(dt)
        count += 1
        if action == "STOP":
            sched.on_trial_complete(None, trials[tid], result)
            stream.end(tid)
    return {"all": _percentiles_us(all_ns), "arrivals": _percentiles_us(arrival_ns),
            "trials": stream.next_id, "rung_records": n_recorded()}


# ---- the whole benchmark -------------------------------------------------------------------

def run_benchmark(command: str, seeds: int = 3, n_trials: int = 27, schedulers: Sequence[str] = SCHEDULERS,
                  concurrency: int = 4, num_cpus: int = 2, max_t: int = 27, grace_period: int = 1, eta: int = 3,
                  time_limit_s: float = 900.0, overhead: bool = True, overhead_results: int = 10_000,
                  overhead_window: int = 1000, tune: bool = True, log: Callable[[str], None] = print) -> dict:
    from benchmarks import peers, runner

    unknown = [s for s in schedulers if s not in SCHEDULERS]
    if unknown:
        raise runner.SelectionError(f"unknown scheduler(s) {unknown}; known: {', '.join(SCHEDULERS)}")
    if tune and "fifo" not in schedulers:
        raise runner.SelectionError("the FIFO run is the reference of every regret: keep 'fifo' in --schedulers")
    t_start = time.perf_counter()
    data = {
        "meta": {
            "kind": "schedulers",
            "title": "Schedulers on the MLP-on-digits learning curve",
            "command": command,
            "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
            "machine": runner.machine(),
            "git": runner.git_revision(),
            "versions": peers.versions(("ray", "torch", "numpy", "scikit-learn")),
            "seeds": seeds, "n_trials": n_trials, "concurrency": concurrency, "num_cpus": num_cpus,
            "max_t": max_t, "grace_period": grace_period, "eta": eta, "metric": METRIC,
            "schedulers": list(schedulers), "descriptions": {s: DESCRIPTIONS[s] for s in schedulers},
            "space": {k: _describe(v) for k, v in space_template(0, max_t).items() if k != "seed"},
            "time_limit_s": time_limit_s, "load_avg_start": _loadavg(),
        },
        "runs": [],
        "overhead": None,
    }
    if overhead:
        log(f"decision overhead at {overhead_results} results ...")
        data["overhead"] = decision_overhead(overhead_results, overhead_window, seed=0, concurrency=concurrency,
                                             max_t=max_t, grace_period=grace_period, eta=eta,
                                             adapter_window=min(overhead_window, 100))
    from benchmarks.tune_mode import local_ray

    with local_ray(num_cpus) if tune else _nothing():
        for seed in range(seeds if tune else 0):
            order = list(schedulers)
            k = seed % len(order)
            order = order[k:] + order[:k]
            for s in order:
                rec = run_one(s, seed, n_trials, concurrency, num_cpus, max_t, grace_period, eta, time_limit_s, log)
                data["runs"].append(rec.to_json())
                log(f"{s:>15} seed {seed}: {len(rec.events):4d} epochs, {len(rec.configs):3d} trials, "
                    f"{rec.wall_s:6.1f} s" + (f"  ({rec.error})" if rec.error else ""))
    data["meta"]["load_avg_end"] = _loadavg()
    data["meta"]["wall_s"] = time.perf_counter() - t_start
    return data


def _describe(domain: Any) -> str:
    from search_algs.space import Categorical

    if isinstance(domain, Categorical):
        return "{" + ", ".join(map(str, domain.choices)) + "}"
    if hasattr(domain, "low"):
        return ("log" if domain.log else "") + f"[{domain.low:g}, {domain.high:g}]"
    return repr(domain)


@contextlib.contextmanager
def _nothing():
    yield


def _loadavg() -> list[float] | None:
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return None


# ---- report --------------------------------------------------------------------------------

def _f(x: float | None, digits: int = 3) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "n/a"
    if math.isinf(x):
        return "inf"
    if x == 0:
        return "0"
    return f"{x:.{digits}g}"


def _cell(q: tuple[float, float, float], digits: int = 3) -> str:
    med, q1, q3 = q
    return f"{_f(med, digits)} [{_f(q1, digits)}, {_f(q3, digits)}]"


def render(data: Mapping) -> str:
    meta = data["meta"]
    s = summarise(data)
    out: list[str] = []
    add = out.append
    add(f"## {meta['title']}\n")
    add(f"- command: `{meta['command']}`")
    add(f"- date: {meta['date']}; wall time {meta.get('wall_s', 0):.0f} s; load average at start/end "
        f"{meta.get('load_avg_start')} / {meta.get('load_avg_end')}")
    add(f"- machine: {meta['machine']}; code: {meta['git']}")
    add("- versions: " + ", ".join(f"{k} {v}" for k, v in meta["versions"].items()))
    add(f"- problem: `tuneorch_examples.digits_mlp.train_digits` (MLP on digits, `{meta['metric']}` after every epoch, "
        f"checkpoint every epoch), max_t = {meta['max_t']} epochs, grace_period = {meta['grace_period']}, "
        f"eta = {meta['eta']}; space: " + ", ".join(f"{k}={v}" for k, v in meta["space"].items()))
    add(f"- {meta['n_trials']} trials per run, {meta['concurrency']} at a time (CPU "
        f"{meta['num_cpus'] / meta['concurrency']:g} each on a local Ray of {meta['num_cpus']} CPUs), "
        f"configs from our RandomSearch seeded by the seed (the same configs for every scheduler); "
        f"seeds: {meta['seeds']}")
    add("- regret = value - the lowest val_loss of any trial at any epoch of the same seed's FIFO run. "
        "Final regret: the lowest val_loss among the trials at their last epoch; recommended: the lowest "
        "last val_loss among the trials that trained longest (max_t). Regret @x% and the epochs to FIFO's "
        "final regret use the *completed* incumbent: the best trial that has reached max_t so far "
        "(inf before one has). Median [IQR] over seeds.")
    add("")
    med = s["median"]
    if med:
        add("### Regret against epochs\n")
        add("| scheduler | epochs | / FIFO's | final regret | recommended's regret | "
            "regret @25% | @50% | @100% of FIFO's epochs | epochs to FIFO's final regret (/ FIFO's) | "
            "seeds reaching it (<= 1/3) | wall s |")
        add("|---|---|---|---|---|---|---|---|---|---|---|")
        for name in meta["schedulers"]:
            m = med.get(name)
            if not m:
                continue
            add(f"| {name} | {_f(m['epochs'][0], 4)} | {_f(m['epochs_frac'][0])} | {_cell(m['regret'])} | "
                f"{_cell(m['regret_recommended'])} | "
                + " | ".join(_cell(m["regret_at"][lab]) for lab in FRACTION_LABELS)
                + f" | {_cell(m['frac_to_fifo_final'])} | {m['reached']}/{m['n']} ({m['within_third']}) | "
                f"{_f(m['wall_s'][0], 3)} |")
        add("")
        add("Per seed (epochs, final regret, fraction of FIFO's epochs to reach FIFO's final regret):\n")
        add("| scheduler | " + " | ".join(f"seed {x}" for x in s["seeds"]) + " |")
        add("|---|" + "---|" * len(s["seeds"]))
        for name in meta["schedulers"]:
            cells = []
            for seed in s["seeds"]:
                m = s["per_seed"].get(name, {}).get(seed)
                cells.append("n/a" if m is None else
                             f"{m['epochs']}, {_f(m['regret'])}, {_f(m['frac_to_fifo_final'])}")
            add(f"| {name} | " + " | ".join(cells) + " |")
        add("")
    if s["pairs"]:
        add("### Ours vs Ray's ASHA, paired per seed\n")
        add("Final regret (each run's own epochs) and regret of both completed incumbents after the same number "
            "of epochs (the smaller of the two totals); w/t/l = ours lower / equal / higher.\n")
        add("| ours | vs | final regret w/t/l | epochs ours / theirs (median) | at equal epochs w/t/l |")
        add("|---|---|---|---|---|")
        for (a, b), rows in s["pairs"].items():
            fw = wtl((r["regret_a"], r["regret_b"]) for r in rows)
            cw = wtl((r["common_a"], r["common_b"]) for r in rows)
            ratio = float(np.median([r["epochs_a"] / r["epochs_b"] for r in rows]))
            add(f"| {a} | {b} | {fw[0]}/{fw[1]}/{fw[2]} | {ratio:.2f} | {cw[0]}/{cw[1]}/{cw[2]} |")
        add("")
    ov = data.get("overhead")
    if ov:
        add(f"### Decision overhead at {ov['n_results']} recorded results\n")
        add(f"Synthetic asynchronous stream ({ov['concurrency']} live trials, max_t {ov['max_t']}, "
            f"grace {ov['grace_period']}, eta {ov['eta']}, stopping rule); each of the next calls timed "
            f"(perf_counter_ns); 'arrivals' = the calls that recorded a rung entry.\n")
        add("| implementation | calls timed | median µs | p95 µs | arrivals | arrival median µs | "
            "arrival p95 µs | trials | rung records |")
        add("|---|---|---|---|---|---|---|---|---|")
        labels = {"ours-core": "ours: core `ASHA.on_result`",
                  "ray-asha": "Ray `ASHAScheduler.on_trial_result`",
                  "ours-adapter": "ours: Tune adapter `on_trial_result` (+ state file)"}
        for name, r in ov["results"].items():
            a, b = r["all"], r["arrivals"]
            add(f"| {labels.get(name, name)} | {a['n']} | {_f(a['median_us'])} | {_f(a['p95_us'])} | {b['n']} | "
                f"{_f(b['median_us'])} | {_f(b['p95_us'])} | {r['trials']} | {r['rung_records']} |")
        add("")
    if s["notes"]:
        add("### Notes, failures\n")
        for n in s["notes"]:
            add(f"- {n}")
        add("")
    return "\n".join(out)


def write(data: Mapping, out_dir: str) -> tuple[str, str]:
    from benchmarks.runner import write_results

    return write_results(data, out_dir, render)
