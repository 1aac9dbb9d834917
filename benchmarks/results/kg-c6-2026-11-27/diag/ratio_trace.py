"""Scratch diagnostic of BENCHMARKS.md C6: the fitted noise-to-signal ratio at every model-based step of
KG's harness runs. Run: python diag/ratio_trace.py PROBLEM[,PROBLEM] SEEDS"""
import sys, numpy as np
import os
ROOT = os.path.dirname(os.path.abspath(__file__))
while not os.path.exists(os.path.join(ROOT, "pyproject.toml")):  # the repository root
    ROOT = os.path.dirname(ROOT)
sys.path.insert(0, ROOT)
from benchmarks import harness, peers, runner
from benchmarks.problems import get_problem
from search_algs.core import kg as kgmod
runner._single_thread_torch()
TRACE = []
orig = kgmod.KnowledgeGradient._suggest
def grab(self, U, losses, rng, pending):
    out = orig(self, U, losses, rng, pending)
    if out is not None: TRACE.append(out.info["noise_ratio"])
    return out
kgmod.KnowledgeGradient._suggest = grab
spec = peers.optimizer_specs()["kg"]
for prob in sys.argv[1].split(","):
    p = get_problem(prob)
    for seed in range(int(sys.argv[2])):
        TRACE.clear(); harness.run_one(p, spec, seed, 50)
        t = np.array(TRACE)
        print(f"{prob} s{seed}: steps {len(t)}, ratio >1e-3 in {np.mean(t > 1e-3):.0%}; at n~15,25,35,50: " + " ".join(f"{t[i]:.1e}" for i in (4, 14, 24, len(t) - 1)), flush=True)
