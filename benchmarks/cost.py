"""Suggestion cost at chosen history sizes, on its own (the tiers measure n <= 1000 only).

    python -m benchmarks.cost --optimizers gp-ei --problem hartmann6 --sizes 500,2000 --reps 3

    python -m benchmarks.cost --optimizers tpe,gp-ei,kg,random --problem hartmann6 \
        --sizes 50,200,1000,5000,10000 --reps 21

For each optimiser and each ``n``: :func:`benchmarks.harness.measure_cost` (a fresh optimiser
warm-started with ``n`` random evaluations, then ``reps`` timed asks, CPU seconds of this
process, torch on one thread). Prints one line per (optimiser, n) with the median, the max and
every timed ask, then the p50 / p95 of the steady state (every ask but the first: the first
after a warm start fits the model from scratch, as a restore does once) and of the first ask,
and writes the result set (``cost`` filled, no runs) to ``--out`` like the other commands, so
``python -m benchmarks report`` renders it. ``--core-options`` passes options to our searchers'
cores (a JSON object, e.g. ``'{"max_model_points": 500}'``; TPE takes them as keywords), to
measure a setting without a registry entry.

``--regret BUDGET`` checks what a setting costs in regret instead: for each optimiser, runs of
``BUDGET`` evaluations (:func:`benchmarks.harness.run_one`, seeds 0 .. ``--seeds`` - 1) on each of
``--problems``, once with the defaults and once with ``--core-options``; prints the final regret
of every seed, the medians and the ask CPU p50 / p95 of both:

    python -m benchmarks.cost --regret 400 --optimizers tpe --problems branin,hartmann6 --seeds 5 \
        --core-options '{"max_set_points": 100}'
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from typing import Sequence

import numpy as np

from benchmarks import harness, peers, runner
from benchmarks.problems import get_problem


def _sizes(text: str) -> list[int]:
    sizes = [int(t) for t in text.split(",") if t.strip()]
    if not sizes or min(sizes) < 1:
        raise argparse.ArgumentTypeError(f"sizes must be positive integers, got {text!r}")
    return sizes


def _json_object(text: str) -> dict:
    try:
        value = json.loads(text)
    except json.JSONDecodeError as e:
        raise argparse.ArgumentTypeError(f"--core-options must be a JSON object, got {text!r} ({e})") from e
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError(f"--core-options must be a JSON object, got {text!r}")
    return value


def percentiles(times: Sequence[float]) -> tuple[float, float]:
    """``(p50, p95)`` of ``times`` (numpy's linear interpolation); NaN when empty."""
    if not len(times):
        return float("nan"), float("nan")
    return float(np.percentile(times, 50)), float(np.percentile(times, 95))


def _with_options(spec: peers.OptimizerSpec, options: dict | None) -> peers.OptimizerSpec:
    """``spec`` building our searcher with ``options`` (peers unchanged)."""
    if not options or spec.kind != "ours":
        return spec
    if spec.name == "tpe":  # TPE takes its options as keywords
        build = peers._build_ours(spec.name, None, **options)
    else:
        build = peers._build_ours(spec.name, options)
    return dataclasses.replace(spec, build=build, description=f"{spec.description} with {options}")


def regret_check(args: argparse.Namespace, argv: Sequence[str]) -> int:
    """``--regret``: final regret and ask cost of the defaults against ``--core-options``."""
    if args.regret < 2 or args.seeds < 1 or not args.core_options:
        print(f"error: --regret needs a BUDGET >= 2 (got {args.regret}), --seeds >= 1 (got {args.seeds}) "
              f"and --core-options to compare with the defaults", file=sys.stderr)
        return 2
    try:
        base = runner.select_optimizers([n.strip() for n in args.optimizers.split(",") if n.strip()], False)
        problems = runner.select_problems([n.strip() for n in args.problems.split(",") if n.strip()])
    except (runner.SelectionError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(f"command: python -m benchmarks.cost {' '.join(argv)}", flush=True)
    for problem in problems:
        for spec in base:
            variant = _with_options(spec, args.core_options)
            finals: dict[str, list[float]] = {}
            for label, s in (("default", spec), (json.dumps(args.core_options), variant)):
                finals[label] = []
                asks: list[float] = []
                for seed in range(args.seeds):
                    rec = harness.run_one(problem, s, seed, args.regret)
                    if rec.error:
                        print(f"{problem.name} {spec.name} {label} seed {seed}: ERROR {rec.error}", flush=True)
                        continue
                    finals[label].append(float(rec.incumbent[str(args.regret)]) - (problem.optimum or 0.0))
                    asks.extend(rec.ask_cpu)
                p50, p95 = percentiles(asks)
                print(f"{problem.name:>10} {spec.name:>6} {label:>28}: regret at {args.regret} median "
                      f"{np.median(finals[label]) if finals[label] else float('nan'):.4g}, per seed "
                      f"[{', '.join(f'{v:.3g}' for v in finals[label])}]; ask CPU p50 {p50 * 1e3:.1f} ms, "
                      f"p95 {p95 * 1e3:.1f} ms", flush=True)
            a, b = finals["default"], finals[json.dumps(args.core_options)]
            if len(a) == len(b):
                better = sum(y < x for x, y in zip(a, b))
                worse = sum(y > x for x, y in zip(a, b))
                print(f"{problem.name:>10} {spec.name:>6}: with the options better on {better} seeds, worse on "
                      f"{worse}, equal on {len(a) - better - worse}", flush=True)
    return 0


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.cost", description=__doc__.split("\n\n")[0])
    ap.add_argument("--optimizers", default="gp-ei", help="comma-separated names (python -m benchmarks list)")
    ap.add_argument("--problem", default="hartmann6")
    ap.add_argument("--sizes", type=_sizes, default=[50, 500, 2000], help="history sizes n, comma-separated")
    ap.add_argument("--reps", type=int, default=3, help="timed asks per size")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", help="output directory (default bench-results/cost-<time>)")
    ap.add_argument("--regret", type=int, default=None, metavar="BUDGET",
                    help="instead of timing: regret of BUDGET-evaluation runs, defaults vs --core-options")
    ap.add_argument("--problems", default="branin,hartmann6", help="with --regret: comma-separated problems")
    ap.add_argument("--seeds", type=int, default=5, help="with --regret: seeds 0 .. N-1")
    ap.add_argument("--core-options", type=_json_object, default=None,
                    help="JSON object of options for our searchers (GP-EI / KG: core options; TPE: keywords)")
    return ap


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    if args.reps < 1:
        print(f"error: --reps must be >= 1, got {args.reps}", file=sys.stderr)
        return 2
    runner._single_thread_torch()
    if args.regret is not None:
        return regret_check(args, argv)
    command = "python -m benchmarks.cost " + " ".join(argv)
    try:
        specs = runner.select_optimizers([n.strip() for n in args.optimizers.split(",") if n.strip()], False)
        specs = [_with_options(spec, args.core_options) for spec in specs]
        [problem] = runner.select_problems([args.problem])
    except (runner.SelectionError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    t0 = time.perf_counter()
    data = runner.new_result_set(command, f"suggestion cost on {problem.name}", 0, {}, specs, [problem])
    print(runner.header(data), flush=True)
    for spec in specs:
        if spec.refuses(problem.space):
            print(f"skip {spec.name} on {problem.name}: {spec.refuses(problem.space)}")
            continue
        for n in args.sizes:  # one size at a time: each line is printed as soon as it is measured
            t1 = time.perf_counter()
            [rec] = harness.measure_cost(problem, spec, [n], args.reps, seed=args.seed)
            data["cost"].append(rec.to_json())
            times = rec.ask_cpu
            status = f"ERROR {rec.error}" if rec.error else ""
            print(f"{spec.name:>16} n={n:5d}: CPU s per ask median {np.median(times) if times else float('nan'):.3g}, "
                  f"max {max(times) if times else float('nan'):.3g}, all [{', '.join(f'{t:.3g}' for t in times)}] "
                  f"({time.perf_counter() - t1:.0f} s wall) {status}", flush=True)
            p50, p95 = percentiles(times[1:])
            print(f"{spec.name:>16} n={n:5d}: steady p50 {p50 * 1e3:.1f} ms, p95 {p95 * 1e3:.1f} ms "
                  f"({max(len(times) - 1, 0)} asks); first ask {times[0] * 1e3 if times else float('nan'):.1f} ms",
                  flush=True)
    data["meta"]["wall_s"] = time.perf_counter() - t0
    js, md = runner.write_results(data, args.out or runner.default_out("cost"))
    print(f"wrote {js} and {md}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
