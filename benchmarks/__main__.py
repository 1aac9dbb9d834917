"""Command line: ``python -m benchmarks {run,tune,overhead,schedulers,pbt,list,report} ...``.

Examples::

    python -m benchmarks run --suite quick
    python -m benchmarks run --suite full --optimizers random,optuna-gp --problems branin --seeds 5
    python -m benchmarks tune --optimizers random,tpe --problems branin --concurrency 4 --seeds 3 --budget 30
    python -m benchmarks overhead --trials 50 --optimizer random --repeats 2
    python -m benchmarks schedulers --seeds 3 --trials 27
    python -m benchmarks pbt --seeds 5
    python -m benchmarks scale --trials 2000 --results 10 --sleep 0.1 --concurrency 8
    python -m benchmarks list
    python -m benchmarks multi-objective --problems zdt1_d6,branin_currin_c --seeds 10 --budget 100
    python -m benchmarks report bench-results/quick-.../results.json
    python -m benchmarks merge --out bench-results/both bench-results/a/results.json bench-results/b/results.json
    python -m benchmarks run --suite real --optimizers gp-ei --seeds 5 --first-seed 5   # seeds 5-9
    python -m benchmarks compare bench-results/real-.../results.json --pairs gp-ei:optuna-gp,tpe:optuna-tpe
    python -m benchmarks compare before=benchmarks/results/real-2026-12-07/results.json.gz now=bench-results/x/results.json \
        --pairs gp-ei@now:gp-ei@before,gp-ei@now:optuna-gp@before
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import sys
import time
from typing import Sequence

from benchmarks import report, runner
from benchmarks.suites import SUITES


def _names(text: str | None) -> list[str] | None:
    return [t.strip() for t in text.split(",") if t.strip()] if text else None


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text}")
    return value


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="python -m benchmarks", description="Benchmark our searchers against peers.")
    sub = ap.add_subparsers(dest="cmd", required=True)

    run = sub.add_parser("run", help="sequential ask/tell benchmark of a tier")
    run.add_argument("--suite", choices=sorted(SUITES), default="quick")
    run.add_argument("--optimizers", help="comma-separated names (default: the tier's)")
    run.add_argument("--problems", help="comma-separated names (default: the tier's)")
    run.add_argument("--seeds", type=_positive, help="number of seeds (first-seed .. first-seed + N - 1)")
    run.add_argument("--first-seed", type=int, default=0,
                     help="first seed (default 0): more seeds of an earlier run, to `merge` with it")
    run.add_argument("--budget", type=_positive, help="evaluations per run (all problems)")
    run.add_argument("--out", help="output directory (default bench-results/<suite>-<time>)")
    run.add_argument("--no-cost", action="store_true", help="skip the suggestion-cost measurement")
    run.add_argument("--no-tune", action="store_true", help="skip the runs through Ray Tune (full tier)")
    run.add_argument("--no-overhead", action="store_true", help="skip the overhead measurement (full tier)")
    run.add_argument("--in-flight", type=_positive, default=1,
                     help="concurrent trials, simulated without a cluster: each suggestion is made with "
                          "K-1 trials pending (optimisers that take concurrent asks: ours)")

    tune = sub.add_parser("tune", help="our searchers through real Ray Tune with K concurrent trials")
    tune.add_argument("--optimizers", default="random", help="registry names, or ray-hyperopt/ray-optuna")
    tune.add_argument("--problems", default="branin")
    tune.add_argument("--concurrency", type=_positive, default=4)
    tune.add_argument("--seeds", type=_positive, default=3)
    tune.add_argument("--budget", type=_positive, default=30)
    tune.add_argument("--sleep", type=float, default=0.0, help="seconds each trial sleeps (makes pending matter)")
    tune.add_argument("--cpus", type=_positive, default=2)
    tune.add_argument("--out")

    ov = sub.add_parser("overhead", help="N trivial trials: ours vs Tune's default searcher + FIFO")
    ov.add_argument("--trials", type=_positive, default=50)
    ov.add_argument("--optimizer", default="random")
    ov.add_argument("--repeats", type=_positive, default=2)
    ov.add_argument("--cpus", type=_positive, default=2)
    ov.add_argument("--out")

    sch = sub.add_parser("schedulers", help="FIFO vs our ASHA vs Ray's ASHA on the MLP learning curve (Tune)")
    sch.add_argument("--schedulers", default="fifo,asha,asha-promotion,ray-asha",
                     help="comma-separated: fifo (required: the reference), asha, asha-promotion, ray-asha")
    sch.add_argument("--seeds", type=_positive, default=3)
    sch.add_argument("--trials", type=_positive, default=27, help="trials per run")
    sch.add_argument("--concurrency", type=_positive, default=4)
    sch.add_argument("--cpus", type=_positive, default=2)
    sch.add_argument("--max-t", type=_positive, default=27, help="epochs of a full trial")
    sch.add_argument("--grace", type=_positive, default=1)
    sch.add_argument("--eta", type=_positive, default=3)
    sch.add_argument("--time-limit", type=float, default=900.0, help="seconds per Tune run (a guard against hangs)")
    sch.add_argument("--overhead-results", type=_positive, default=10_000,
                     help="recorded results before the decision overhead is timed")
    sch.add_argument("--overhead-window", type=_positive, default=1000, help="decisions timed")
    sch.add_argument("--no-overhead", action="store_true")
    sch.add_argument("--no-tune", action="store_true", help="only the decision overhead")
    sch.add_argument("--render", metavar="RESULTS_JSON", help="re-render the Markdown of a results.json")
    sch.add_argument("--out")

    pbt = sub.add_parser("pbt", help="our PBT vs Ray's PBT vs no PBT on the PBT paper's toy problem (Tune)")
    pbt.add_argument("--problem", choices=("toy", "digits", "digits-noisy"), default="toy",
                     help="toy: the PBT paper's toy problem (ours vs Ray's vs none); digits: the digits MLP, "
                          "PBT vs the best fixed config of the same epoch budget; digits-noisy: the same with "
                          "30%% noisy training labels, a small MLP, batch 8 and plain SGD (a set-up where a "
                          "decaying learning rate pays off; BENCHMARKS.md F3)")
    pbt.add_argument("--epochs", type=_positive, default=12, help="digits: epochs of each member")
    pbt.add_argument("--schedulers", default=None,
                     help="comma-separated; toy: ours, ray, ours-sync, ray-sync, fifo (default: all); digits: "
                          "pbt, fixed, ray (Ray's PBT), pbt-sync (ours, synchronous); default: pbt,fixed")
    pbt.add_argument("--seeds", type=_positive, default=5)
    pbt.add_argument("--first-seed", type=int, default=0, help="digits: run seeds first-seed .. first-seed + seeds - 1")
    pbt.add_argument("--steps", type=_positive, default=80, help="training steps of each member")
    pbt.add_argument("--population", type=_positive, default=4, help="members (even: the paper's two, repeated)")
    pbt.add_argument("--interval", type=_positive, help="steps between exploit/explore decisions "
                                                        "(default: 4 on toy, 3 epochs on digits)")
    pbt.add_argument("--resample", type=float, default=0.25, help="resample probability")
    pbt.add_argument("--target", type=float, default=1.19, help="Q to reach")
    pbt.add_argument("--cpus", type=_positive, default=2)
    pbt.add_argument("--time-limit", type=float, default=300.0, help="seconds per Tune run (a guard against hangs)")
    pbt.add_argument("--render", metavar="RESULTS_JSON", help="re-render the Markdown of a results.json")
    pbt.add_argument("--out")

    scl = sub.add_parser("scale", help="N trivial trials: our full stack (MLflow server, snapshots) vs Tune "
                                       "alone at its fastest, alternating; or --nodes M: a simulated cluster")
    scl.add_argument("--trials", type=_positive, default=200)
    scl.add_argument("--results", type=_positive, default=10, help="results per trial")
    scl.add_argument("--sleep", type=float, default=0.1, help="seconds of sleep before each result")
    scl.add_argument("--concurrency", type=_positive, default=8, help="K: trials at once, on K logical CPUs")
    scl.add_argument("--search", default="tpe")
    scl.add_argument("--scheduler", choices=("fifo", "asha"), default="fifo")
    scl.add_argument("--repeats", type=_positive, default=1, help="bare/ours pairs, alternating")
    scl.add_argument("--setups", default="bare,ours", help="comma-separated: bare, ours")
    scl.add_argument("--seed", type=int, default=0)
    scl.add_argument("--no-resume", action="store_true", help="skip the resume of the finished experiment")
    scl.add_argument("--no-count", action="store_true", help="skip counting the points in MLflow")
    scl.add_argument("--workdir", help="keep experiments and the MLflow store here (default: a temporary folder)")
    scl.add_argument("--cprofile", help="cProfile the driver during our run(s) into this file")
    scl.add_argument("--nodes", type=_positive, help="M >= 2: a simulated M-node cluster with fake GPUs "
                                                    "instead (ours only, one GPU per trial, checkpoints)")
    scl.add_argument("--gpus-per-node", type=_positive, default=2)
    scl.add_argument("--remove-node-at", type=float, help="with --nodes: remove a worker node once this "
                                                          "fraction of the trials ended")
    scl.add_argument("--out", help="output directory (default benchmarks/results/scale-<date>)")

    sub.add_parser("list", help="problems and optimisers, with availability and versions")
    rep = sub.add_parser("report", help="re-render the Markdown of a results.json")
    rep.add_argument("results")

    cmp = sub.add_parser("compare", help="side-by-side tables of chosen optimiser pairs from result sets "
                                         "(medians, Wilcoxon verdicts, seed w/t/l, CPU per suggestion)")
    cmp.add_argument("results", nargs="+", help="results.json(.gz); TAG=PATH names that set's optimisers "
                                                "<name>@TAG (before/after comparisons)")
    cmp.add_argument("--pairs", required=True, help="comma-separated A:B pairs, A judged against B")
    cmp.add_argument("--optimizers", help="columns of the median table (default: those of the pairs)")
    cmp.add_argument("--at", choices=report.FRACTION_LABELS, default="100%", help="budget fraction")

    mrg = sub.add_parser("merge", help="merge several results.json(.gz) of `run` into one result set")
    mrg.add_argument("--out", required=True, help="output directory (results.json and results.md)")
    mrg.add_argument("results", nargs="+")

    from benchmarks import multi_objective

    multi_objective.add_parser(sub)  # python -m benchmarks multi-objective (issue #22)
    return ap


def _load(path: str) -> dict:
    """A results.json, gzipped or not (committed result sets are ``results.json.gz``)."""
    with (gzip.open(path, "rt") if path.endswith(".gz") else open(path)) as f:
        return json.load(f)


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    command = runner.command_line(argv)

    if args.cmd == "list":
        from benchmarks import peers
        from benchmarks.problems import get_problem, problem_available, problem_names

        print("problems:")
        for n in problem_names():
            ok, why = problem_available(n)
            print(f"  {n:22s} " + (get_problem(n).description if ok else f"UNAVAILABLE: {why}"))
        print("optimisers:")
        for s in peers.optimizer_specs().values():
            why = s.missing()
            print(f"  {s.name:22s} {s.kind:5s} " + (s.description if not why else f"UNAVAILABLE: {why}"))
        print("versions: " + ", ".join(f"{k} {v}" for k, v in peers.versions().items()))
        return 0

    if args.cmd == "report":
        print(report.render(_load(args.results)))
        return 0

    if args.cmd == "compare":
        parts = []
        for item in args.results:
            tag, sep, path = item.partition("=")
            parts.append(report.relabel(_load(path), tag) if sep and not item.startswith(("/", ".")) else _load(item))
        pairs = [tuple(p.split(":", 1)) for p in _names(args.pairs) or []]
        if not pairs or any(len(p) != 2 for p in pairs):
            print(f"error: --pairs must be A:B[,C:D...], got {args.pairs!r}", file=sys.stderr)
            return 2
        try:
            print(report.compare(report.merge(parts), pairs, _names(args.optimizers), args.at))
        except ValueError as e:
            print(f"error: {e}", file=sys.stderr)
            return 2
        return 0

    if args.cmd == "merge":
        js, md = runner.write_results(report.merge([_load(path) for path in args.results]), args.out)
        print(f"wrote {js} and {md}")
        return 0

    if args.cmd == "schedulers":
        return _schedulers(args, command)

    if args.cmd == "pbt":
        return _pbt(args, command)

    if args.cmd == "scale":
        return _scale(args, command)

    if args.cmd == "multi-objective":
        from benchmarks import multi_objective

        return multi_objective.main(args, command)

    try:
        if args.cmd == "run":
            suite = SUITES[args.suite]
            out = args.out or runner.default_out(suite.name)
            data = runner.run_suite(
                suite, optimizers=_names(args.optimizers), problems=_names(args.problems), seeds=args.seeds,
                budget=args.budget, cost=not args.no_cost, tune=not args.no_tune,
                overhead=not args.no_overhead, command=command, in_flight=args.in_flight,
                first_seed=args.first_seed,
            )
        elif args.cmd == "tune":
            out = args.out or runner.default_out("tune")
            data = _tune(args, command)
        else:
            out = args.out or runner.default_out("overhead")
            data = _overhead(args, command)
    except runner.SelectionError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    js, md = runner.write_results(data, out)
    print()
    print(runner.header(data))
    print()
    print(report.render(data))
    print(f"\nwrote {js} and {md} ({data['meta']['wall_s']:.0f} s)")
    return 0


def _tune(args, command: str) -> dict:
    from benchmarks.tune_mode import local_ray

    t0 = time.perf_counter()
    specs = runner.select_optimizers(_names(args.optimizers), False)
    probs = runner.select_problems(_names(args.problems))
    data = runner.new_result_set(command, f"Tune mode, K={args.concurrency}", args.seeds,
                                 {p.name: args.budget for p in probs}, specs, probs)
    with local_ray(args.cpus):
        _tune_loop(args, specs, probs, data)
    data["meta"]["wall_s"] = time.perf_counter() - t0
    return data


def _tune_loop(args, specs, probs, data) -> None:
    from benchmarks.tune_mode import run_tune

    for p in probs:
        for s in specs:
            if s.kind != "ours" and not s.name.startswith("ray-"):
                print(f"skip {s.name} in Tune mode: only registry searchers and Ray's wrappers run through Tune")
                continue
            why = s.refuses(p.space)
            if why:
                print(f"skip {s.name} on {p.name}: {why}")
                continue
            for seed in range(args.seeds):
                rec = run_tune(p.name, s.name, seed, args.budget, args.concurrency, args.sleep, args.cpus)
                data["tune"].append(rec.to_json())
                print(f"tune {p.name} {s.name} seed {seed}: {rec.wall_s:.1f} s" + (f" ({rec.error})" if rec.error else ""))


def _overhead(args, command: str) -> dict:
    from benchmarks.problems import get_problem
    from benchmarks.tune_mode import measure_overhead

    t0 = time.perf_counter()
    specs = runner.select_optimizers([args.optimizer], False)
    data = runner.new_result_set(command, "Orchestration overhead", 1, {}, specs, [get_problem("branin")])
    data["overhead"] = measure_overhead(args.trials, args.optimizer, repeats=args.repeats, num_cpus=args.cpus)
    data["meta"]["wall_s"] = time.perf_counter() - t0
    return data


def _schedulers(args, command: str) -> int:
    from benchmarks import schedulers

    if args.render:
        with open(args.render) as f:
            print(schedulers.render(json.load(f)))
        return 0
    try:
        data = schedulers.run_benchmark(
            command, seeds=args.seeds, n_trials=args.trials, schedulers=_names(args.schedulers) or [],
            concurrency=args.concurrency, num_cpus=args.cpus, max_t=args.max_t, grace_period=args.grace,
            eta=args.eta, time_limit_s=args.time_limit, overhead=not args.no_overhead,
            overhead_results=args.overhead_results, overhead_window=args.overhead_window, tune=not args.no_tune,
        )
    except runner.SelectionError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    js, md = schedulers.write(data, args.out or runner.default_out("schedulers"))
    print()
    print(runner.header(data))
    print()
    print(schedulers.render(data))
    print(f"\nwrote {js} and {md} ({data['meta']['wall_s']:.0f} s)")
    return 0


def _pbt(args, command: str) -> int:
    from benchmarks import pbt

    if args.render:
        with open(args.render) as f:
            print(pbt.render(json.load(f)))
        return 0
    try:
        if args.problem.startswith("digits"):
            data = pbt.run_digits_benchmark(command, seeds=args.seeds, epochs=args.epochs, size=args.population,
                                            interval=args.interval or 3,
                                            num_cpus=args.cpus, time_limit_s=args.time_limit,
                                            first_seed=args.first_seed, problem=args.problem,
                                            schedulers=_names(args.schedulers or "pbt,fixed") or [])
        else:
            data = pbt.run_benchmark(command, seeds=args.seeds,
                                     schedulers=_names(args.schedulers or ",".join(pbt.SCHEDULERS)) or [],
                                     steps=args.steps, size=args.population, interval=args.interval or 4,
                                     resample=args.resample, target=args.target, num_cpus=args.cpus,
                                     time_limit_s=args.time_limit)
    except runner.SelectionError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    js, md = pbt.write(data, args.out or runner.default_out("pbt"))
    print()
    print(pbt.render(data))
    print(f"\nwrote {js} and {md} ({data['meta']['wall_s']:.0f} s)")
    return 0


def _scale(args, command: str) -> int:
    from benchmarks import scale

    if args.nodes:
        if args.nodes < 2:
            print(f"error: --nodes must be at least 2, got {args.nodes}", file=sys.stderr)
            return 2
        data = {"meta": {}, "runs": [], "multinode": scale.run_multinode(
            command, trials=args.trials, results=args.results, sleep_s=args.sleep, nodes=args.nodes,
            cpus_per_node=max(1, args.concurrency // args.nodes), gpus_per_node=args.gpus_per_node,
            remove_node_at=args.remove_node_at, seed=args.seed, workdir=args.workdir)}
        data["meta"] = data["multinode"]["meta"]
        out = args.out or scale.default_out() + "-multinode"
        os.makedirs(out, exist_ok=True)
        with open(os.path.join(out, "results.json"), "w") as f:
            json.dump(data, f, indent=1, default=str)
        text = scale.render_multinode(data["multinode"])
        with open(os.path.join(out, "results.md"), "w") as f:
            f.write(text + "\n")
        print(text)
        return 0 if not data["multinode"]["trials_lost"] and not data["multinode"]["bad_gpu_placements"] else 1
    setups = tuple(_names(args.setups) or [])
    if not setups or any(s not in ("bare", "ours") for s in setups):
        print(f"error: --setups must name bare and/or ours, got {args.setups!r}", file=sys.stderr)
        return 2
    data = scale.run_benchmark(command, trials=args.trials, results=args.results, sleep_s=args.sleep,
                               concurrency=args.concurrency, search=args.search, scheduler=args.scheduler,
                               repeats=args.repeats, seed=args.seed, setups=setups, resume=not args.no_resume,
                               count=not args.no_count, workdir=args.workdir, cprofile=args.cprofile)
    js, md = scale.write(data, args.out or scale.default_out())
    print()
    print(scale.render(data))
    print(f"wrote {js} and {md} ({data['meta']['wall_s']:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
