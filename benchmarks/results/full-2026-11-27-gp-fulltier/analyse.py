"""The tables of BENCHMARKS.md section H from the merged result set (and run B's, for the
GP-EI vs qLogNEI count over both):  python analyse.py results.json [B's results.json.gz]"""
import gzip, json, sys
import numpy as np
sys.path.insert(0, "/work/main")
from benchmarks import report


def load(path):
    return json.load(gzip.open(path) if path.endswith(".gz") else open(path))


data = load(sys.argv[1])
s = report.summary(data)
opts, probs, tab = s["optimizers"], s["problems"], s["table"]


def med(p, o, t=tab):
    row = t.get((p, o))
    return float(np.median(list(row["100%"].values()))) if row and row["100%"] else None


print("| problem | " + " | ".join(opts) + " |")
print("|---|" + "---|" * len(opts))
for p in probs:
    star = "" if s["optima"][p][1] else "*"
    meds = {o: med(p, o) for o in opts}
    if all(v is None for v in meds.values()):
        continue
    best = min(v for v in meds.values() if v is not None)
    tol = data["problems"][p]["tol"]
    cells = []
    for o in opts:
        row = tab.get((p, o))
        if not row:
            skipped = any(k["problem"] == p and k["optimizer"] == o for k in data["skips"])
            cells.append("cannot (categorical)" if skipped else "not run")
            continue
        xs = list(row["100%"].values())
        c = report._cell(xs)
        if meds[o] <= best + tol:
            c = "**" + c.replace(" [", "** [", 1)
        if len(xs) < data["meta"]["seeds"]:
            c += f" ({len(xs)} seeds)"
        cells.append(c)
    print(f"| {p}{star} | " + " | ".join(cells) + " |")
print()


def pair(a, b, problems, t=tab, d=data):
    rows, lower, higher, tie = [], 0, 0, 0
    for p in problems:
        ma, mb = med(p, a, t), med(p, b, t)
        if ma is None or mb is None:
            continue
        tol = d["problems"][p]["tol"]
        w, ti, l = report.paired_outcomes(t[(p, a)]["100%"], t[(p, b)]["100%"], tol)
        verdict = "tie" if abs(ma - mb) <= tol else ("lower" if ma < mb else "higher")
        lower, higher, tie = lower + (verdict == "lower"), higher + (verdict == "higher"), tie + (verdict == "tie")
        rows.append(f"{p}: {report._fmt(ma)} vs {report._fmt(mb)} ({verdict}; seeds {w}/{ti}/{l})")
    return rows, (lower, tie, higher)


for a, b in [("gp-ei", "botorch-qlognei"), ("gp-ei", "tpe"), ("kg", "gp-ei"), ("gp-ei", "optuna-gp")]:
    rows, c = pair(a, b, probs)
    print(f"{a} vs {b}: median lower/tie/higher {c[0]}/{c[1]}/{c[2]}")
    for r in rows:
        print("   ", r)
if len(sys.argv) > 2:
    bd = load(sys.argv[2])
    bs = report.summary(bd)
    rows, c = pair("gp-ei", "botorch-qlognei", bs["problems"], bs["table"], bd)
    print(f"run B gp-ei vs botorch-qlognei: median lower/tie/higher {c[0]}/{c[1]}/{c[2]}")
    for r in rows:
        print("   ", r)

# normalised regret at 100% over the problems where every optimiser ran (qLogNEI's 9)
common = [p for p in probs if all((p, o) in s["norm_per_problem"] for o in opts)]
print(f"\nnormalised regret @100% over the {len(common)} problems every optimiser ran ({', '.join(common)}):")
for o in opts:
    print(f"  {o}: {report._fmt(report.geometric_mean(s['norm_per_problem'][(p, o)] for p in common))}")
