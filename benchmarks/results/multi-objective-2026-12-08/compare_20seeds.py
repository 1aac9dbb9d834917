"""Re-create compare-20seeds.md (and ablation-gamma10/compare.md's numbers) from the per-problem result
sets of this folder, from the repository root:
PYTHONPATH=. python benchmarks/results/multi-objective-2026-12-08/compare_20seeds.py"""
import gzip
import json
import os

import numpy as np

from benchmarks import multi_objective as mo

R = os.path.dirname(os.path.abspath(__file__))
PROBS = ["zdt1_d6", "zdt2_d6", "branin_currin_c", "mo_hpolib_naval_propulsion", "mo_hpobench_kc1", "mo_nb201_cifar10"]


def load(*parts):
    with gzip.open(os.path.join(R, *parts, "results.json.gz"), "rt") as f:
        return json.load(f)


data = mo.merge([load(p) for p in PROBS] + [load("confirm-seeds10-19", p) for p in PROBS]
                + [load("ablation-gamma10", p) for p in PROBS])
t = mo.hv_table(data)
print("| problem | motpe | motpe-g10 | optuna-motpe | motpe vs optuna-motpe | motpe-g10 vs optuna-motpe | motpe-g10 vs motpe |")
print("|---|---|---|---|---|---|---|")
for p in PROBS:
    med = {o: np.median(list(t[(p, o)]["100%"].values())) for o in ("motpe", "motpe-g10", "optuna-motpe")}
    cells = []
    for a, b in (("motpe", "optuna-motpe"), ("motpe-g10", "optuna-motpe"), ("motpe-g10", "motpe")):
        v, pv, (w, ti, l) = mo.compare_to(t, p, a, b)
        cells.append(f"{v} {w}/{ti}/{l} p={pv:.3g}")
    print(f"| {p} | {med['motpe']:.4g} | {med['motpe-g10']:.4g} | {med['optuna-motpe']:.4g} | " + " | ".join(cells) + " |")
