"""Scratch: (problem, optimiser) seed by seed through harness.run_one (the code path of
`python -m benchmarks run`); variants of KG defined here (core_options), one JSON line per run."""
import json, os, sys, time
sys.path.insert(0, os.getcwd())
from benchmarks import harness, peers, runner
from benchmarks.problems import get_problem

runner._single_thread_torch()
V = {
    "kg-cp": dict(decision_set="observed"),
    "kg-wide": dict(decision_set="wide"),
    "kg-auto001": dict(observed_below=0.001),
    "kg-auto003": dict(observed_below=0.003),
}
problems, opts, seeds, out = sys.argv[1].split(","), sys.argv[2].split(","), [int(s) for s in sys.argv[3].split(",")], sys.argv[4]
specs = peers.optimizer_specs()
for name, co in V.items():
    specs[name] = peers._variant(name, "kg", name, core_options=co)
for pb in problems:
    p = get_problem(pb)
    for o in opts:
        for s in seeds:
            t0 = time.perf_counter()
            rec = harness.run_one(p, specs[o], s, 50)
            with open(out, "a") as f:
                f.write(json.dumps(rec.to_json()) + "\n")
            print(f"{pb} {o} seed {s}: {time.perf_counter() - t0:.0f} s, inc50 {rec.incumbent.get('50')} {rec.error or ''}", flush=True)
