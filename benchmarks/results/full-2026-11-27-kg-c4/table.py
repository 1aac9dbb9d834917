"""C4 tables: median [IQR] of TRUE regret at 50 evaluations, paired seed w/t/l (report's rules)."""
import gzip, json, sys
import numpy as np
sys.path.insert(0, "/work/main")
from benchmarks import report
d = json.load(gzip.open(sys.argv[1]) if sys.argv[1].endswith(".gz") else open(sys.argv[1]))
opt = report.optima(d)
tab = report.regret_table(d["runs"], opt)
probs = list(d["problems"])
opts = d["meta"]["optimizers"]
tol = {p: d["problems"][p]["tol"] for p in probs}
print("| problem | " + " | ".join(opts) + " |")
for p in probs:
    cells = []
    for o in opts:
        r = tab.get((p, o), {}).get("100%", {})
        cells.append(report._cell(list(r.values())) + f" (n={len(r)})")
    print(f"| {p} | " + " | ".join(cells) + " |")
pairs = [("kg", "gp-ei"), ("kg", "kg-wide"), ("kg-wide", "gp-ei")]
print()
print("| problem | " + " | ".join(f"{a} vs {b}" for a, b in pairs) + " |")
for p in probs:
    cells = []
    for a, b in pairs:
        A, B = tab.get((p, a), {}).get("100%", {}), tab.get((p, b), {}).get("100%", {})
        w, t, l = report.paired_outcomes(A, B, tol[p])
        v, pv = report.verdict(A, B, tol[p])
        cells.append(f"{w}/{t}/{l} ({v}{'' if np.isnan(pv) else f', p={pv:.2g}'})")
    print(f"| {p} | " + " | ".join(cells) + " |")
if "-v" in sys.argv:
    for p in probs:
        for o in opts:
            r = tab.get((p, o), {}).get("100%", {})
            print(p, o, {s: round(v, 3) for s, v in sorted(r.items())})
