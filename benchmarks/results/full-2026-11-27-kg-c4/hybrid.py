"""Scratch: two hybrid decision sets of KG by monkeypatching the core (not in the package)."""
import json, os, sys, time
sys.path.insert(0, os.getcwd())
import numpy as np
from benchmarks import harness, peers, runner
from benchmarks.problems import get_problem
from search_algs.core import kg as kgmod
from search_algs.core.optimize import _perturb
runner._single_thread_torch()
MODE = sys.argv[1]
orig_ds = kgmod.KnowledgeGradient.decision_set
orig_cand = kgmod.KnowledgeGradient.candidates
def ds(self, gp):
    if MODE == "alternate":
        return "wide" if gp.n % 2 == 0 else "observed"
    return "wide"
def cand(self, model, n_observed, centres, rng):
    if MODE == "local":  # observed + neighbours of the incumbents, no Sobol, no mean minimiser
        return np.concatenate([model.U[:n_observed].numpy(), _perturb(centres, self.dims, self.options.n_neighbours, rng)])
    return orig_cand(self, model, n_observed, centres, rng)
kgmod.KnowledgeGradient.decision_set = ds
kgmod.KnowledgeGradient.candidates = cand
spec = peers._variant("kg-" + MODE, "kg", "")
for pb in sys.argv[2].split(","):
    p = get_problem(pb)
    for s in [int(x) for x in sys.argv[3].split(",")]:
        t0 = time.perf_counter()
        rec = harness.run_one(p, spec, s, 50)
        rec.optimizer = "kg-" + MODE
        with open(sys.argv[4], "a") as f:
            f.write(json.dumps(rec.to_json()) + "\n")
        print(pb, MODE, s, f"{time.perf_counter()-t0:.0f}s", rec.incumbent["50"] - p.optimum, flush=True)
