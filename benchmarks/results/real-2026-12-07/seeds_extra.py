"""Seeds 5..9 of the real tier (harness.run_one: the code path and seed pairing of
`python -m benchmarks run --suite real --seeds 10 --budget 50`), written as a result set that
`python -m benchmarks merge` unites with the 5-seed run."""
import sys, time
import os; sys.path.insert(0, os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", "..")))
from benchmarks import harness, peers, runner
from benchmarks.problems import TABULAR_PROBLEMS, get_problem

opts = sys.argv[1].split(","); out = sys.argv[2]
first, last = 5, 9
runner._single_thread_torch()
specs = runner.select_optimizers(opts, False)
probs = [get_problem(n) for n in TABULAR_PROBLEMS]
cmd = f"python benchmarks/results/real-2026-12-07/seeds_extra.py {sys.argv[1]} {out}  # seeds {first}-{last} of --suite real --budget 50"
data = runner.new_result_set(cmd, "real tier (seeds 5-9)", 10, {p.name: 50 for p in probs}, specs, probs)
data["meta"]["in_flight"] = 1
t0 = time.perf_counter()
for p in probs:
    for s in specs:
        t1 = time.perf_counter()
        for seed in range(first, last + 1):
            data["runs"].append(harness.run_one(p, s, seed, 50).to_json())
        print(f"{p.name:>28} {s.name:>12}: seeds {first}-{last} in {time.perf_counter()-t1:.1f} s", flush=True)
data["meta"]["wall_s"] = time.perf_counter() - t0
print(runner.write_results(data, out))
