"""Scratch diagnostic of BENCHMARKS.md C6 (run: python diag/loo.py PROBLEMS SEEDS).
For KG's own 50-point trajectories: does leave-one-out CV pick the right noise model?"""
import sys, math, numpy as np, torch
import os
ROOT = os.path.dirname(os.path.abspath(__file__))
while not os.path.exists(os.path.join(ROOT, "pyproject.toml")):  # the repository root
    ROOT = os.path.dirname(ROOT)
sys.path.insert(0, ROOT)
from benchmarks import harness, peers, runner
from benchmarks.problems import get_problem
from search_algs.core import kg as kgmod
from search_algs.core.gp import GPPrior, fit_map, standardise, GP, DTYPE
runner._single_thread_torch()
LAST = {}
orig = kgmod.KnowledgeGradient._suggest
def grab(self, U, losses, rng, pending):
    LAST["U"], LAST["losses"], LAST["levels"] = np.array(U), list(losses), self.levels
    return orig(self, U, losses, rng, pending)
kgmod.KnowledgeGradient._suggest = grab

def loo(gp_theta, U, y, levels):
    gp = GP(U, y, gp_theta, levels)
    n = len(y)
    from search_algs.core.gp import features, squared_differences, matern52, unpack
    th = torch.as_tensor(gp_theta, dtype=DTYPE)
    inv_l2, sf, sn = unpack(th)
    lv = torch.as_tensor(levels, dtype=torch.long)
    Z = features(torch.as_tensor(U, dtype=DTYPE), lv)
    C = sf * matern52(squared_differences(Z, Z, lv) @ inv_l2) + sn * torch.eye(n, dtype=DTYPE)
    Ci = torch.linalg.inv(C)
    yt = torch.as_tensor(y, dtype=DTYPE)
    a = Ci @ yt
    var = 1 / Ci.diagonal()
    resid = a * var  # y_i - mu_-i
    return float((-0.5 * torch.log(2 * math.pi * var) - 0.5 * resid ** 2 / var).sum()), gp.noise_ratio()

priors = {"ours": GPPrior(), "noise4": GPPrior(noise_loc=-4, noise_scale=1, min_noise=1e-4),
          "noise2": GPPrior(noise_loc=-2, noise_scale=1, min_noise=1e-4)}
spec = peers.optimizer_specs()["kg"]
for prob in sys.argv[1].split(","):
    p = get_problem(prob)
    for seed in range(int(sys.argv[2])):
        harness.run_one(p, spec, seed, 50)
        U, losses, levels = LAST["U"], np.array(LAST["losses"], dtype=float), LAST["levels"]
        ok = np.isfinite(losses)
        y, m, s = standardise(losses[ok]); D = len(levels)
        out = f"{prob[:18]:18s} s{seed}:"
        for name, pr in priors.items():
            r = fit_map(U[ok], y, levels, pr, [pr.default_theta(D), pr.short_theta(D)])
            l, ratio = loo(r.theta, U[ok], y, levels)
            out += f" {name}: loo {l:7.2f} ratio {ratio:.1e} |"
        print(out, flush=True)
