"""C6 tables: TRUE regret at the recommendation after 50 evaluations, median [IQR], and paired
seeds against gp-ei (w/t/l, tie within the problem's tolerance; Wilcoxon signed-rank p).
Usage: table.py RESULT_SET_OR_DIR ...  (results.json[.gz], runs.jsonl.gz, or folders of per-run JSONs)"""
import glob, gzip, json, os, statistics, sys
ROOT = os.path.dirname(os.path.abspath(__file__))
while not os.path.exists(os.path.join(ROOT, "pyproject.toml")):  # the repository root, wherever this lies
    ROOT = os.path.dirname(ROOT)
sys.path.insert(0, ROOT)
from scipy.stats import wilcoxon
from benchmarks.problems import get_problem

runs = []
for path in sys.argv[1:]:
    if os.path.isdir(path):
        runs += [json.load(open(f)) for f in sorted(glob.glob(os.path.join(path, "*.json")))]
    elif path.endswith(".jsonl.gz"):  # one run per line (this section's packed runs)
        runs += [json.loads(line) for line in gzip.open(path, "rt")]
    else:
        runs += json.load(gzip.open(path) if path.endswith(".gz") else open(path))["runs"]
val = {}
for r in runs:  # a later file's run replaces an earlier one (same problem, optimiser, seed)
    if not r.get("error"):
        val[(r["problem"], r["optimizer"], r["seed"])] = r["incumbent"]["50"]
for p in sorted({k[0] for k in val}):
    prob = get_problem(p)
    opt = prob.optimum() if callable(prob.optimum) else prob.optimum
    empirical = opt is None
    if empirical:
        opt = min(r["true"][i] for r in runs if r["problem"] == p for i in range(len(r["true"])))
    tol = prob.tol or 0.0
    print(f"\n{p}{' (regret to the best TRUE value in the set)' if empirical else ''}, tolerance {tol:g}")
    for o in sorted({k[1] for k in val if k[0] == p}):
        seeds = sorted(s for (pp, oo, s) in val if pp == p and oo == o)
        xs = [val[(p, o, s)] - opt for s in seeds]
        q = statistics.quantiles(xs, n=4) if len(xs) > 1 else [xs[0]] * 3
        line = f"  {o:14s} seeds {seeds[0]}-{seeds[-1]} ({len(xs)}): {statistics.median(xs):.3g} [{q[0]:.3g}, {q[2]:.3g}]"
        common = [s for s in seeds if (p, "gp-ei", s) in val]
        if o != "gp-ei" and common:
            d = [val[(p, o, s)] - val[(p, "gp-ei", s)] for s in common]
            w, l = sum(x < -tol for x in d), sum(x > tol for x in d)
            pv = wilcoxon(d).pvalue if len(d) >= 6 and any(d) else float("nan")
            line += f"  vs gp-ei {w}/{len(d) - w - l}/{l} (p = {pv:.2f})"
        print(line)
