"""Suggestion cost at chosen history sizes, on its own (the tiers measure n <= 1000 only).

    python -m benchmarks.cost --optimizers gp-ei --problem hartmann6 --sizes 500,2000 --reps 3

For each optimiser and each ``n``: :func:`benchmarks.harness.measure_cost` (a fresh optimiser
warm-started with ``n`` random evaluations, then ``reps`` timed asks, CPU seconds of this
process, torch on one thread). Prints one line per (optimiser, n) with the median, the max and
every timed ask, and writes the result set (``cost`` filled, no runs) to ``--out`` like the other
commands, so ``python -m benchmarks report`` renders it.
"""

from __future__ import annotations

import argparse
import sys
import time
from typing import Sequence

import numpy as np

from benchmarks import harness, runner
from benchmarks.problems import get_problem


def _sizes(text: str) -> list[int]:
    sizes = [int(t) for t in text.split(",") if t.strip()]
    if not sizes or min(sizes) < 1:
        raise argparse.ArgumentTypeError(f"sizes must be positive integers, got {text!r}")
    return sizes


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.cost", description=__doc__.split("\n\n")[0])
    ap.add_argument("--optimizers", default="gp-ei", help="comma-separated names (python -m benchmarks list)")
    ap.add_argument("--problem", default="hartmann6")
    ap.add_argument("--sizes", type=_sizes, default=[50, 500, 2000], help="history sizes n, comma-separated")
    ap.add_argument("--reps", type=int, default=3, help="timed asks per size")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", help="output directory (default bench-results/cost-<time>)")
    return ap


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    if args.reps < 1:
        print(f"error: --reps must be >= 1, got {args.reps}", file=sys.stderr)
        return 2
    runner._single_thread_torch()
    command = "python -m benchmarks.cost " + " ".join(argv)
    try:
        specs = runner.select_optimizers([n.strip() for n in args.optimizers.split(",") if n.strip()], False)
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
    data["meta"]["wall_s"] = time.perf_counter() - t0
    js, md = runner.write_results(data, args.out or runner.default_out("cost"))
    print(f"wrote {js} and {md}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
