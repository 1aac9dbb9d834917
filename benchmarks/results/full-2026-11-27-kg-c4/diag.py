"""Diagnose where KG samples vs GP-EI on noisy BBOB (issue #6, C4). Scratch; harness path, same seeds."""
import json, sys, math, time
import numpy as np, torch
sys.path.insert(0, "/work/main")
from benchmarks import harness, peers, runner
from benchmarks.problems import get_problem
from search_algs.core import kg as kgmod, optimize as optmod
from search_algs.core.gp import DTYPE, standardise
from search_algs.core.acquisition import LogEI, incumbent
from scipy.stats import qmc

runner._single_thread_torch()
LOG = []

def dmin(u, P):
    return float(np.sqrt(((P - u) ** 2).sum(1)).min()) if len(P) else float('nan')

orig_kg = kgmod.KnowledgeGradient._suggest
def kg_suggest(self, U, losses, rng, pending):
    st = rng.bit_generator.state
    out = orig_kg(self, U, losses, rng, pending)
    if out is None: return out
    # rebuild the state (no rng use that matters: use a private rng)
    r2 = np.random.default_rng(123)
    U_, loss, ok = self._split(U, losses)
    y, _, _ = standardise(loss[ok])
    from search_algs.core.gp import GP
    gp = GP(U_[ok], y, self.theta, self.levels)
    with torch.no_grad():
        mean_obs = gp.posterior(gp.U)[0].numpy()
    order = np.argsort(mean_obs, kind="stable")
    centres = U_[ok][order[:self.options.n_best]]
    inc = centres[0]
    C = self.candidates(gp, gp.n, centres, r2)
    acqf = kgmod.LogKG(gp, C)
    # global screen: 4096 sobol, KG values; best global vs chosen
    raw = qmc.Sobol(5 if len(self.dims)==5 else len(self.dims), scramble=True, seed=7).random_base2(12)
    kv = acqf.numpy(raw)
    # local: perturbations of centres
    loc = optmod._perturb(centres, self.dims, 512, r2)
    lv = acqf.numpy(loc)
    # EI at the same state (noisy incumbent)
    tau = incumbent(gp, noisy=True)
    ei = LogEI(gp, tau)
    u_ei, v_ei = optmod.optimize_acqf(ei, self.dims, r2, centres=centres, options=optmod.OptimizeOptions())
    # KG with x's own line only (EI on the posterior mean vs a*)
    a, b = acqf.lines(torch.as_tensor(out.u[None], dtype=DTYPE))
    with torch.no_grad():
        own = kgmod.log_envelope_gain(torch.stack([torch.tensor([acqf.best], dtype=DTYPE), a[0, -1:]], 1),
                                      torch.stack([torch.zeros(1, dtype=DTYPE), b[0, -1:]], 1))
        mu_u, var_u = gp.posterior(torch.as_tensor(out.u[None], dtype=DTYPE))
    # KG value of the EI point
    kg_at_ei = float(acqf.numpy(u_ei[None])[0])
    LOG.append(dict(opt="kg", n=int(ok.sum()), ls=gp.lengthscales().round(3).tolist(),
                    noise_ratio=gp.noise_ratio(), sf=float(gp.signal_var),
                    d_inc=dmin(out.u, inc[None]), d_obs=dmin(out.u, U_[ok]), logkg=out.log_kg,
                    best_global=float(kv.max()), best_local=float(lv.max()),
                    frac_global_within1=float(np.mean(kv > kv.max() - 1.0)),
                    d_inc_global_best=dmin(raw[np.argmax(kv)], inc[None]),
                    own_line=float(own[0]), mu_u=float(mu_u[0]), sd_u=float(var_u[0].sqrt()),
                    a_star=acqf.best, tau=tau, d_inc_ei=dmin(u_ei, inc[None]), d_obs_ei=dmin(u_ei, U_[ok]),
                    kg_at_ei=kg_at_ei, logei=v_ei, y_min=float(y.min()),
                    d_meanmin=dmin(C[gp.n + (len(C) - gp.n - 32 - 1) if False else gp.n + 128], inc[None])))
    return out

orig_ei = optmod.GPEI._suggest
def ei_suggest(self, U, losses, rng, pending):
    out = orig_ei(self, U, losses, rng, pending)
    if out is None or type(self) is not optmod.GPEI: return out
    U_, loss, ok = self._split(U, losses)
    y, _, _ = standardise(loss[ok])
    from search_algs.core.gp import GP
    gp = GP(U_[ok], y, self.theta, self.levels)
    with torch.no_grad():
        mean_obs = gp.posterior(gp.U)[0].numpy()
    inc = U_[ok][np.argmin(mean_obs)]
    LOG.append(dict(opt="gp-ei", n=int(ok.sum()), ls=gp.lengthscales().round(3).tolist(),
                    noise_ratio=gp.noise_ratio(), d_inc=dmin(out.u, inc[None]), d_obs=dmin(out.u, U_[ok]),
                    noisy=out.noisy))
    return out

kgmod.KnowledgeGradient._suggest = kg_suggest
optmod.GPEI._suggest = ei_suggest

problem, opts, seeds, outp = sys.argv[1], sys.argv[2].split(","), [int(s) for s in sys.argv[3].split(",")], sys.argv[4]
p = get_problem(problem)
res = []
for o in opts:
    for s in seeds:
        LOG.clear()
        t0 = time.time()
        rec = harness.run_one(p, peers.optimizer_specs()[o], s, 50)
        res.append(dict(opt=o, seed=s, true=rec.true, observed=rec.observed, inc=rec.incumbent, log=list(LOG)))
        print(problem, o, s, "%.0fs" % (time.time() - t0), "rec", rec.incumbent.get("50"), "best true", min(rec.true), flush=True)
json.dump(dict(problem=problem, optimum=p.optimum, runs=res), open(outp, "w"))
