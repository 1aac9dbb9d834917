"""Run (problem, optimiser) seed by seed with the harness's run_one, one JSON per finished run
(identical to `python -m benchmarks run ... --seeds N`: same run_seeds pairing, same code path)."""
import json, os, sys, time
sys.path.insert(0, "/work/main")
from benchmarks import harness, peers, runner
from benchmarks.problems import get_problem

runner._single_thread_torch()
problem, opts, seeds = sys.argv[1], sys.argv[2].split(","), [int(s) for s in sys.argv[3].split(",")]
p = get_problem(problem)
out = f"/work/main/bench-results/c3/seed-runs"
os.makedirs(out, exist_ok=True)
for opt, s in [(o, s) for o in opts for s in seeds]:
    spec = peers.optimizer_specs()[opt]
    t0 = time.perf_counter()
    rec = harness.run_one(p, spec, s, 50)
    with open(f"{out}/{problem}__{opt}__{s}.json", "w") as f:
        json.dump(rec.to_json(), f)
    print(f"{problem} {opt} seed {s}: {time.perf_counter() - t0:.0f} s wall, {rec.cpu_s:.0f} s CPU, "
          f"incumbent {rec.incumbent} {rec.error or ''}", flush=True)
