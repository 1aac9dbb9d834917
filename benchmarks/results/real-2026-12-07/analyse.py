import json, sys, gzip, numpy as np
import os; sys.path.insert(0, os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", "..")))
from benchmarks import report
path = sys.argv[1]
data = json.load(gzip.open(path,"rt") if path.endswith(".gz") else open(path))
s = report.summary(data)
opts = [o for o in ["random","tpe","optuna-tpe","gp-ei","optuna-gp","kg"] if o in s["optimizers"]]
print("| problem | " + " | ".join(opts) + " |")
print("|---|" + "---|"*len(opts))
for p in s["problems"]:
    cells=[]
    meds={o: np.median(list(s["table"][(p,o)]["100%"].values())) for o in opts if (p,o) in s["table"]}
    best=min(meds.values())
    for o in opts:
        m=meds.get(o)
        c=report._fmt(m) if m is not None else "n/a"
        cells.append(f"**{c}**" if m is not None and m==best else c)
    print(f"| {p} | " + " | ".join(cells) + " |")
print()
print("| optimiser | norm. regret @100% | CPU s/ask median | p95 |")
print("|---|---|---|---|")
for o in opts:
    med,p95,k=s["cpu"][o]
    print(f"| {o} | {report._fmt(s['norm'][o]['100%'])} | {med:.3g} | {p95:.3g} |")
print()
tol={p: float(data["problems"][p]["tol"]) for p in data["problems"]}
for a,b in [("gp-ei","optuna-gp"),("tpe","optuna-tpe"),("kg","optuna-gp"),("gp-ei","random"),("tpe","random")]:
    if (a,b) not in s["wtl"]: continue
    print(f"\n{a} vs {b}: problems W/T/L {s['wtl'][(a,b)][0]}, seeds w/t/l {s['wtl'][(a,b)][1]}")
    mw=mt=ml=0
    for p in s["problems"]:
        ra=s["table"][(p,a)]["100%"]; rb=s["table"][(p,b)]["100%"]
        v,pv=report.verdict(ra,rb,tol[p]); w,t,l=report.paired_outcomes(ra,rb,tol[p])
        ma,mb=np.median(list(ra.values())),np.median(list(rb.values()))
        mv = "tie" if abs(ma-mb)<=tol[p] else ("win" if ma<mb else "loss")
        mw+=mv=="win"; mt+=mv=="tie"; ml+=mv=="loss"
        ratio = (max(ma,tol[p])/max(mb,tol[p]))
        print(f"  {p:28s} {a} {report._fmt(ma):>9} {b} {report._fmt(mb):>9} ratio {ratio:6.2f} median:{mv:4s} wilcoxon:{v} p={pv:.3g} seeds {w}/{t}/{l}")
    print(f"  by median: {mw}/{mt}/{ml}")
