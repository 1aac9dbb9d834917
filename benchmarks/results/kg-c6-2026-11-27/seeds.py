"""Run (problem, optimiser) seed by seed with the harness's run_one, one JSON per finished run
(identical to `python -m benchmarks run ... --seeds N` for those seeds: same run_seeds pairing, same
code path), so that finished seeds survive a time limit.
Usage: seeds.py PROBLEM OPT1,OPT2 FIRST LAST OUTDIR"""
import json, os, sys, time
ROOT = os.path.dirname(os.path.abspath(__file__))
while not os.path.exists(os.path.join(ROOT, "pyproject.toml")):  # the repository root, wherever this lies
    ROOT = os.path.dirname(ROOT)
sys.path.insert(0, ROOT)
from benchmarks import harness, peers, runner
from benchmarks.problems import get_problem

runner._single_thread_torch()
problem, opts = sys.argv[1], sys.argv[2].split(",")
seeds = range(int(sys.argv[3]), int(sys.argv[4]) + 1)
out = sys.argv[5]
os.makedirs(out, exist_ok=True)
p = get_problem(problem)
for s in seeds:
    for opt in opts:
        path = f"{out}/{problem}__{opt}__{s}.json"
        if os.path.exists(path):
            continue
        spec = peers.optimizer_specs()[opt]
        t0 = time.perf_counter()
        rec = harness.run_one(p, spec, s, 50)
        with open(path, "w") as f:
            json.dump(rec.to_json(), f)
        print(f"{problem} {opt} seed {s}: {time.perf_counter() - t0:.0f} s wall, {rec.cpu_s:.0f} s CPU, "
              f"incumbent {rec.incumbent} {rec.error or ''}", flush=True)
