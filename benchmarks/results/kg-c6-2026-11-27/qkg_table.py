"""KG vs BoTorch qKG (and GP-EI) on every seed where qKG ran: TRUE regret at 50, medians and
paired w/t/l. Usage: qkg_table.py C3_results.json.gz C4_results.json.gz RUNS_DIR"""
import glob, gzip, json, os, statistics, sys
ROOT = os.path.dirname(os.path.abspath(__file__))
while not os.path.exists(os.path.join(ROOT, "pyproject.toml")):  # the repository root, wherever this lies
    ROOT = os.path.dirname(ROOT)
sys.path.insert(0, ROOT)
from scipy.stats import wilcoxon

from benchmarks.problems import get_problem

runs = []
for path in sys.argv[1:]:  # later files replace earlier runs (C4's kg replaces C3's old default)
    runs += ([json.load(open(f)) for f in sorted(glob.glob(os.path.join(path, "*.json")))] if os.path.isdir(path)
             else [json.loads(line) for line in gzip.open(path, "rt")] if path.endswith(".jsonl.gz")
             else json.load(gzip.open(path))["runs"])
val = {(r["problem"], r["optimizer"], r["seed"]): r for r in runs if not r.get("error")}
print("| problem | seeds | botorch-qkg | kg | gp-ei | kg vs qkg (w/t/l) | gp-ei vs qkg | CPU s per model-based ask, qKG | kg |")
print("|---|---|---|---|---|---|---|---|---|")
for p in sorted({k[0] for k in val if k[1] == "botorch-qkg"}):
    prob = get_problem(p)
    opt = prob.optimum() if callable(prob.optimum) else prob.optimum
    if opt is None:
        opt = min(min(r["true"]) for (pp, _, _), r in val.items() if pp == p)
    tol = prob.tol or 0.0
    seeds = sorted(s for (pp, o, s) in val if pp == p and o == "botorch-qkg" and (p, "kg", s) in val)
    reg = {o: [val[(p, o, s)]["incumbent"]["50"] - opt for s in seeds] for o in ("botorch-qkg", "kg", "gp-ei")}
    def wtl(a, b):
        d = [x - y for x, y in zip(reg[a], reg[b])]
        p_value = wilcoxon(d).pvalue if len(d) >= 6 and any(d) else float("nan")
        return (f"{sum(x < -tol for x in d)}/{sum(abs(x) <= tol for x in d)}/{sum(x > tol for x in d)}"
                f" (p = {p_value:.2f})")
    cpu = {o: statistics.median(c for s in seeds for c in val[(p, o, s)]["ask_cpu"][10:])  # model-based asks
           for o in ("botorch-qkg", "kg")}
    print(f"| {p} | {','.join(map(str, seeds))} | {statistics.median(reg['botorch-qkg']):.3g} | "
          f"{statistics.median(reg['kg']):.3g} | {statistics.median(reg['gp-ei']):.3g} | {wtl('kg', 'botorch-qkg')} | "
          f"{wtl('gp-ei', 'botorch-qkg')} | {cpu['botorch-qkg']:.2g} | {cpu['kg']:.2g} |")
