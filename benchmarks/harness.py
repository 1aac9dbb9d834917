"""Run optimisers on problems, sequentially, and record everything the report needs.

One run = (problem, optimiser, seed, budget): ``budget`` rounds of ask -> evaluate -> tell.
Recorded per evaluation: the observed and the TRUE value and the CPU seconds
(``time.process_time``) of ``ask`` and ``tell``. At 25%, 50% and 100% of the budget the
*incumbent* is recorded: the optimiser's own recommendation where it exposes one and the problem
is noisy, else the best observed point; its TRUE value is what the regret is computed from.

Seeding (pairing): run seed ``s`` on problem ``P`` gives every optimiser the same noise stream
``default_rng([s, crc32(P)])`` and the same integer seed drawn from ``default_rng([s, crc32(P), 1])``.
"""

from __future__ import annotations

import math
import sys
import time
import traceback
import zlib
from dataclasses import asdict, dataclass, field
from typing import Any, Callable, Sequence

import numpy as np

from benchmarks.peers import Optimizer, OptimizerSpec
from benchmarks.problems import Problem

FRACTIONS = (0.25, 0.5, 1.0)


def checkpoints(budget: int, fractions: Sequence[float] = FRACTIONS) -> list[int]:
    """Evaluation counts at which the incumbent is recorded (at least 1 each)."""
    return [max(1, int(math.ceil(f * budget))) for f in fractions]


def run_seeds(problem_name: str, seed: int) -> tuple[np.random.Generator, int]:
    """``(noise generator, optimiser seed)`` for one run; identical for every optimiser."""
    key = zlib.crc32(problem_name.encode())
    noise = np.random.default_rng([seed, key])
    opt_seed = int(np.random.default_rng([seed, key, 1]).integers(2 ** 31 - 1))
    return noise, opt_seed


@dataclass
class RunRecord:
    problem: str
    optimizer: str
    seed: int
    budget: int
    observed: list[float] = field(default_factory=list)
    true: list[float] = field(default_factory=list)
    ask_cpu: list[float] = field(default_factory=list)
    tell_cpu: list[float] = field(default_factory=list)
    incumbent: dict[str, float] = field(default_factory=dict)  # str(n evals) -> TRUE value
    incumbent_source: dict[str, str] = field(default_factory=dict)  # "optimizer" | "best-observed"
    wall_s: float = 0.0
    cpu_s: float = 0.0
    error: str | None = None
    mode: str = "sequential"  # or "tune-K<concurrency>"

    def to_json(self) -> dict:
        return asdict(self)

    @classmethod
    def from_json(cls, d: dict) -> "RunRecord":
        return cls(**d)


def incumbent_true(problem: Problem, observed: Sequence[float], true: Sequence[float],
                   flats: Sequence[dict], n: int, recommended: dict | None) -> tuple[float, str]:
    """TRUE value of the incumbent after ``n`` evaluations and where it came from.

    Noiseless: the best value observed (observed == true). Noisy: the TRUE value at the
    optimiser's recommendation if it gave one, else at the best observed point.
    """
    if not problem.noisy:
        return float(np.min(true[:n])), "best-observed"
    if recommended is not None:
        return problem.value(problem.space.to_config(recommended)), "optimizer"
    i = int(np.argmin(observed[:n]))
    return float(true[i]), "best-observed"


def run_one(problem: Problem, spec: OptimizerSpec, seed: int, budget: int,
            log: Callable[[str], None] | None = None, in_flight: int = 1) -> RunRecord:
    """One run. An optimiser that raises ends its run with ``error`` set (and the traceback
    logged); the tables then show the run as failed rather than hiding it.

    ``in_flight`` > 1 simulates that many concurrent trials of equal duration without a
    cluster, as Tune runs them: ``in_flight`` asks first, then each completed trial (oldest
    first) is told and a new one asked, so every suggestion is made with ``in_flight - 1``
    trials still pending. Evaluations are counted in completion order. The same seeds and
    noise draws as a sequential run (``mode`` tells them apart)."""
    rec = RunRecord(problem.name, spec.name, seed, budget,
                    mode="sequential" if in_flight == 1 else f"in-flight-K{in_flight}")
    noise, opt_seed = run_seeds(problem.name, seed)
    space = problem.space
    marks = set(checkpoints(budget))
    flats: list[dict] = []
    running: list[tuple[Any, dict, float]] = []  # (token, flat, ask CPU s), oldest first
    asked = 0
    wall0, cpu0 = time.perf_counter(), time.process_time()
    try:
        opt: Optimizer = spec.build(space, opt_seed)
        for i in range(1, budget + 1):
            while asked < budget and len(running) < in_flight:
                t0 = time.process_time()
                token, flat = opt.ask()
                running.append((token, flat, time.process_time() - t0))
                asked += 1
            token, flat, ask_cpu = running.pop(0)
            config = space.to_config(flat)
            space.to_flat(config)  # raises SpaceError if the optimiser left the space
            observed, true = problem.evaluate(config, noise)
            t2 = time.process_time()
            opt.tell(token, observed)
            t3 = time.process_time()
            rec.ask_cpu.append(ask_cpu)
            rec.tell_cpu.append(t3 - t2)
            rec.observed.append(observed)
            rec.true.append(true)
            flats.append(flat)
            if i in marks:
                recommended = opt.recommend() if problem.noisy else None
                value, source = incumbent_true(problem, rec.observed, rec.true, flats, i, recommended)
                rec.incumbent[str(i)] = value
                rec.incumbent_source[str(i)] = source
    except Exception as e:  # noqa: BLE001 - recorded on the run, shown in the tables, logged in full
        rec.error = f"{type(e).__name__}: {e}"
        (log or _stderr)(f"FAILED {problem.name} / {spec.name} / seed {seed}:\n{traceback.format_exc()}")
    rec.wall_s = time.perf_counter() - wall0
    rec.cpu_s = time.process_time() - cpu0
    return rec


def _stderr(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


@dataclass
class Skip:
    problem: str
    optimizer: str
    reason: str


def run_grid(problems: Sequence[Problem], specs: Sequence[OptimizerSpec], seeds: Sequence[int],
             budgets: dict[str, int], log: Callable[[str], None] = print,
             only: dict[str, Sequence[str]] | None = None,
             in_flight: int = 1) -> tuple[list[RunRecord], list[Skip]]:
    """Every (problem, optimiser, seed); refused combinations become :class:`Skip` entries.
    ``only`` limits an optimiser to some problems (an expensive one in a big tier);
    ``in_flight``: concurrent trials (see :func:`run_one`), for optimisers that take them."""
    records, skips = [], []
    only = only or {}
    for problem in problems:
        for spec in specs:
            reason = spec.missing() or spec.refuses(problem.space)
            if not reason and in_flight > 1 and not spec.concurrent:
                reason = "its adapter asks one trial at a time (no concurrent trials)"
            if not reason and spec.name in only and problem.name not in only[spec.name]:
                reason = f"limited to {', '.join(only[spec.name])} in this tier (cost)"
            if reason:
                skips.append(Skip(problem.name, spec.name, reason))
                log(f"skip {spec.name} on {problem.name}: {reason}")
                continue
            t0 = time.perf_counter()
            for seed in seeds:
                records.append(run_one(problem, spec, seed, budgets[problem.name], log=log, in_flight=in_flight))
            done = [r for r in records[-len(seeds):]]
            failed = sum(r.error is not None for r in done)
            log(f"{problem.name:>20} {spec.name:>16}: {len(seeds)} seeds x {budgets[problem.name]} evals "
                f"in {time.perf_counter() - t0:6.1f} s" + (f"  ({failed} FAILED)" if failed else ""))
    return records, skips


# ---- suggestion cost at fixed history sizes -----------------------------------------------------

@dataclass
class CostRecord:
    optimizer: str
    problem: str
    n_history: int
    ask_cpu: list[float]
    error: str | None = None

    def to_json(self) -> dict:
        return asdict(self)


def measure_cost(problem: Problem, spec: OptimizerSpec, sizes: Sequence[int], reps: int, seed: int = 0,
                 log: Callable[[str], None] = print) -> list[CostRecord]:
    """CPU seconds of ``ask`` after ``n`` observations, for each ``n`` in ``sizes``: a fresh
    optimiser is warm-started with ``n`` random points of the problem (``Optimizer.warm``), then
    ``reps`` ask/tell rounds are timed (the history grows from n to n + reps - 1)."""
    out = []
    _warm_up(problem, spec, max(sizes), seed)
    for n in sizes:
        rng = np.random.default_rng([seed, n])
        noise, opt_seed = run_seeds(problem.name, seed)
        flats = [problem.space.sample_flat(rng) for _ in range(n)]
        values = [problem.evaluate(problem.space.to_config(f), noise)[0] for f in flats]
        times: list[float] = []
        try:
            opt = spec.build(problem.space, opt_seed)
            try:
                opt.warm(flats, values)
            except NotImplementedError:
                log(f"cost {spec.name}: no warm start (add_evaluated_point) to inject a history; not measured")
                out.append(CostRecord(spec.name, problem.name, n, [], "no warm start"))
                continue
            for _ in range(reps):
                t0 = time.process_time()
                token, flat = opt.ask()
                times.append(time.process_time() - t0)
                opt.tell(token, problem.evaluate(problem.space.to_config(flat), noise)[0])
            out.append(CostRecord(spec.name, problem.name, n, times))
        except Exception as e:  # noqa: BLE001 - recorded and logged
            log(f"FAILED cost {spec.name} n={n}:\n{traceback.format_exc()}")
            out.append(CostRecord(spec.name, problem.name, n, times, f"{type(e).__name__}: {e}"))
    return out


def _warm_up(problem: Problem, spec: OptimizerSpec, n: int, seed: int) -> None:
    """One untimed ask past the optimiser's start-up phase, so that one-time imports and
    compilation are not counted as the cost of the first measured suggestion."""
    rng = np.random.default_rng([seed, 2 ** 31])
    flats = [problem.space.sample_flat(rng) for _ in range(min(n, 30))]
    try:
        opt = spec.build(problem.space, 0)
        opt.warm(flats, [problem.value(problem.space.to_config(f)) for f in flats])
        opt.ask()
    except Exception:  # noqa: BLE001 - the measured rounds below report any real failure
        pass
