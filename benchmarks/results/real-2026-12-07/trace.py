"""Trace one (problem, optimiser, seed) run the way harness.run_one makes it (same seeds), recording
the configs, observed/TRUE values and, for GP-EI/KG, the fitted noise-to-signal ratio per suggestion."""
import sys, json
import os; sys.path.insert(0, os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", "..")))
import numpy as np
from benchmarks import harness, peers, runner
from benchmarks.problems import get_problem
import search_algs.core.optimize as co
log = []
_orig = co.resolve_noise
def spy(mode, gp, threshold=1e-3):
    r = _orig(mode, gp, threshold)
    try:
        log.append({"ratio": float(gp.noise_ratio()), "noisy": bool(r), "theta": np.asarray(gp.theta).round(3).tolist() if hasattr(gp, "theta") else None})
    except Exception as e:
        log.append({"err": str(e)})
    return r
co.resolve_noise = spy
runner._single_thread_torch()
pname, oname, seed = sys.argv[1], sys.argv[2], int(sys.argv[3])
p = get_problem(pname); spec = peers.optimizer_specs()[oname]
noise, opt_seed = harness.run_seeds(p.name, seed)
opt = spec.build(p.space, opt_seed)
rows = []
for i in range(50):
    tok, flat = opt.ask(); cfg = p.space.to_config(flat)
    obs, true = p.evaluate(cfg, noise); opt.tell(tok, obs)
    rows.append({"i": i, "cfg": cfg, "row": p.row(cfg), "obs": obs, "true": true, "log": log[-1] if log else None})
    log_len = len(log)
rec = opt.recommend() if p.noisy else None
rec_true = p.value(p.space.to_config(rec)) if rec else None
json.dump({"rows": rows, "rec": rec, "rec_true": rec_true, "optimum": p.optimum, "spylog": log}, open(f"trace-{pname}-{oname}-{seed}.json", "w"), default=str)
trs = [r["true"] for r in rows]
print(pname, oname, seed, "distinct rows", len({r["row"] for r in rows}), "best true evaluated", min(trs) - p.optimum,
      "recommended regret", None if rec_true is None else rec_true - p.optimum,
      "best-observed regret", trs[int(np.argmin([r['obs'] for r in rows]))] - p.optimum)
