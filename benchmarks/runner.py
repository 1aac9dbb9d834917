"""Put a benchmark together: choose problems and optimisers, run, write JSON + Markdown.

The result set is plain data (``results.json``)::

    {"meta": {command, date, machine, versions, seeds, budgets, optimizers, kinds, ...},
     "problems": {name: {optimum, noise_std, tol, dim, description, tags}},
     "runs": [RunRecord...], "skips": [...], "cost": [CostRecord...],
     "tune": [RunRecord...], "overhead": {...} | null}

and :func:`benchmarks.report.render` turns it into ``results.md``.
"""

from __future__ import annotations

import contextlib
import datetime
import json
import os
import platform
import sys
import time
from dataclasses import asdict
from typing import Callable, Sequence

from benchmarks import harness, peers, report
from benchmarks.problems import get_problem, problem_available
from benchmarks.suites import Suite


class SelectionError(ValueError):
    """An unknown problem or optimiser name on the command line."""


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            names = [line.split(":", 1)[1].strip() for line in f if line.startswith("model name")]
        if names:
            cpu = names[0]
    except OSError:
        pass
    return (f"{platform.node()}: {cpu}, {os.cpu_count()} logical CPUs, {platform.system()} "
            f"{platform.release()}, Python {platform.python_version()}")


def git_revision() -> str:
    """``<short commit>`` of the working tree, ``+dirty`` when it has uncommitted changes."""
    import subprocess

    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                              check=True, timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], capture_output=True,
                               text=True, check=True, timeout=10).stdout.strip()
        return head + ("+dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def select_optimizers(names: Sequence[str] | None, cheap_only: bool,
                      log: Callable[[str], None] = print) -> list[peers.OptimizerSpec]:
    """The requested optimisers (default: all; ``cheap_only``: ours + the cheap peers). Unknown
    names raise; known ones whose packages are missing are dropped with a message."""
    specs = peers.optimizer_specs()
    if names:
        unknown = [n for n in names if n not in specs]
        if unknown:
            raise SelectionError(f"unknown optimiser(s) {unknown}; known: {sorted(specs)}")
        chosen = [specs[n] for n in names]
    else:
        chosen = [s for s in specs.values() if s.in_tiers and (s.cheap or not cheap_only)]
    out = []
    for s in chosen:
        why = s.missing()
        if why:
            log(f"SKIPPING optimiser {s.name}: {why}")
        else:
            out.append(s)
    return out


def select_problems(names: Sequence[str], log: Callable[[str], None] = print) -> list:
    out = []
    for n in names:
        ok, why = problem_available(n)
        if not ok and why.startswith("unknown problem"):
            raise SelectionError(why)
        if not ok:
            log(f"SKIPPING problem {n}: {why}")
            continue
        out.append(get_problem(n))
    return out


def new_result_set(command: str, title: str, seeds: int, budgets: dict, specs, problems) -> dict:
    return {
        "meta": {
            "title": title,
            "command": command,
            "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
            "machine": machine(),
            "git": git_revision(),
            "versions": peers.versions(),
            "seeds": seeds,
            "budgets": budgets,
            "optimizers": [s.name for s in specs],
            "kinds": {s.name: s.kind for s in specs},
            "descriptions": {s.name: s.description for s in specs},
            "torch_threads": 1,
        },
        "problems": {
            p.name: {"optimum": p.optimum, "noise_std": p.noise_std, "tol": p.tol, "dim": p.space.dim,
                     "description": p.description, "tags": list(p.tags)}
            for p in problems
        },
        "runs": [], "skips": [], "cost": [], "tune": [], "overhead": None,
    }


@contextlib.contextmanager
def json_logger_only():
    """Of Tune's automatic per-result loggers (JSON, CSV, TensorBoard) only the JSON one is kept
    (the result grid reads it; the driver shares 2 busy cores with the trials): Tune's environment
    variable, set for the block and restored after it, so it never leaks into other Tune runs
    of the same process (a leaked one made every later run write no ``result.json``)."""
    key = "TUNE_DISABLE_AUTO_CALLBACK_LOGGERS"
    before = os.environ.get(key)
    os.environ[key] = "1"
    try:
        yield
    finally:
        if before is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = before


def _single_thread_torch() -> None:
    """One torch thread: CPU-time comparisons stay fair on a shared 2-core machine."""
    try:
        import torch

        torch.set_num_threads(1)
    except ImportError:
        pass


def run_suite(suite: Suite, optimizers: Sequence[str] | None = None, problems: Sequence[str] | None = None,
              seeds: int | None = None, budget: int | None = None, cost: bool = True,
              tune: bool = True, overhead: bool = True, command: str = "",
              log: Callable[[str], None] = print, in_flight: int = 1, first_seed: int = 0) -> dict:
    """Run a tier (with command-line overrides) and return its result set. ``in_flight`` > 1:
    the harness keeps that many trials running (see :func:`benchmarks.harness.run_one`). Seeds
    ``first_seed .. first_seed + seeds - 1`` (a later part of a run, to ``merge`` with the first)."""
    _single_thread_torch()
    t0 = time.perf_counter()
    specs = select_optimizers(optimizers or suite.optimizers, suite.cheap_only and not optimizers, log)
    probs = select_problems(problems or suite.problems, log)
    n_seeds = seeds if seeds is not None else suite.seeds
    budgets = {p.name: budget if budget is not None else suite.budgets.get(p.name, suite.budget) for p in probs}
    title = f"{suite.name} tier" + (f", {in_flight} trials in flight" if in_flight > 1 else "")
    data = new_result_set(command, title, n_seeds, budgets, specs, probs)
    data["meta"]["in_flight"] = in_flight
    data["meta"]["first_seed"] = first_seed

    only = {} if optimizers else suite.only  # naming optimisers explicitly lifts the tier's limits
    records, skips = harness.run_grid(probs, specs, list(range(first_seed, first_seed + n_seeds)), budgets, log=log, only=only,
                                      in_flight=in_flight)
    data["runs"] = [r.to_json() for r in records]
    data["skips"] = [asdict(s) for s in skips]

    if cost and suite.cost_sizes:
        cp = get_problem(suite.cost_problem)
        for s in specs:
            if s.refuses(cp.space):
                continue
            t1 = time.perf_counter()
            data["cost"] += [c.to_json() for c in harness.measure_cost(cp, s, suite.cost_sizes, suite.cost_reps, log=log)]
            log(f"cost {s.name:>16} on {cp.name}: n={list(suite.cost_sizes)} in {time.perf_counter() - t1:.1f} s")

    ours = [s.name for s in specs if (s.kind == "ours" and s.in_tiers) or s.name.startswith("ray-")]
    want_tune = tune and suite.tune_problems and suite.tune_seeds
    want_overhead = overhead and suite.overhead_trials
    if want_tune or want_overhead:
        from benchmarks.tune_mode import local_ray, measure_overhead, run_tune

        with local_ray():  # one Ray for every Tune run of the tier
            for pname in suite.tune_problems if want_tune else ():
                for o in ours:
                    if peers.optimizer_specs()[o].refuses(get_problem(pname).space):
                        continue
                    for seed in range(suite.tune_seeds):
                        rec = run_tune(pname, o, seed, suite.tune_budget, suite.tune_concurrency)
                        data["tune"].append(rec.to_json())
                        log(f"tune {pname} {o} seed {seed}: {rec.wall_s:.1f} s")
            if want_overhead:
                data["overhead"] = measure_overhead(suite.overhead_trials, "random", repeats=suite.overhead_repeats)
    data["meta"]["wall_s"] = time.perf_counter() - t0
    return data


def write_results(data: dict, out_dir: str, render=None) -> tuple[str, str]:
    """``results.json`` (machine-readable) and ``results.md`` (``render(data)``, by default the
    harness report) in ``out_dir``; every benchmark command writes its results this way."""
    os.makedirs(out_dir, exist_ok=True)
    js, md = os.path.join(out_dir, "results.json"), os.path.join(out_dir, "results.md")
    with open(js, "w") as f:
        json.dump(data, f, separators=(",", ":"), default=float)
    with open(md, "w") as f:
        f.write((render or report.render)(data) + "\n")
    return js, md


def header(data: dict) -> str:
    meta = data["meta"]
    lines = [f"command: {meta['command']}", f"date:    {meta['date']}", f"machine: {meta['machine']}",
             f"code:    {meta.get('git', '?')}",
             "versions: " + ", ".join(f"{k} {v}" for k, v in meta["versions"].items())]
    return "\n".join(lines)


def command_line(argv: Sequence[str]) -> str:
    return "python -m benchmarks " + " ".join(argv)


def default_out(name: str) -> str:
    return os.path.join("bench-results", f"{name}-{datetime.datetime.now().strftime('%Y%m%d-%H%M%S')}")


def eprint(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)
