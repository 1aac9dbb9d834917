"""Merge run H's per-run JSONs (written by seeds.py) into one result set and render it:
    python merge.py RUNS_DIR OUT_DIR
Same result-set format as `python -m benchmarks run` (runner.new_result_set); the meta records
the seeds.py commands, the code each process ran and the summed wall time of the processes."""
import glob, json, os, sys
sys.path.insert(0, "/work/main")
from benchmarks import peers, report, runner
from benchmarks.problems import get_problem

runs_dir, out = sys.argv[1], sys.argv[2]
OPTS = ["random", "tpe", "optuna-tpe", "gp-ei", "kg", "optuna-gp", "botorch-qlognei"]
PROBLEMS = ["bbob_f1_d5", "bbob_f2_d5", "bbob_f8_d5", "bbob_f10_d5", "bbob_f15_d5", "bbob_f17_d5", "bbob_f20_d5",
            "bbob_f21_d5", "mixed", "conditional", "svm_breast_cancer", "dtree_wine", "knn_digits", "mlp_digits"]
specs = peers.optimizer_specs()
probs = [get_problem(p) for p in PROBLEMS]
data = runner.new_result_set("", "H: GP family on the rest of the full tier (issue #3)", 5,
                             {p: 50 for p in PROBLEMS}, [specs[o] for o in OPTS], probs)
runs = []
for f in sorted(glob.glob(f"{runs_dir}/*__*__*.json")):
    r = json.load(open(f))
    if f.endswith("__skip.json"):
        data["skips"].append(r)
    elif r["problem"] in PROBLEMS and r["optimizer"] in OPTS:
        runs.append(r)
runs.sort(key=lambda r: (PROBLEMS.index(r["problem"]), OPTS.index(r["optimizer"]), r["seed"]))
data["runs"] = runs
codes = [open(f).read().splitlines()[:2] for f in sorted(glob.glob(f"{runs_dir}/code-*.txt"))]
data["meta"]["processes"] = codes
data["meta"]["command"] = " ; ".join(c[1] for c in codes)
data["meta"]["git"] = sorted({c[0].split()[1] for c in codes})[0] if codes else "?"
data["meta"]["seeds_per_cell"] = {f"{p}/{o}": sorted(r["seed"] for r in runs if (r["problem"], r["optimizer"]) == (p, o))
                                  for p in PROBLEMS for o in OPTS}
data["meta"]["wall_s"] = sum(r["wall_s"] for r in runs)  # summed run walls (two processes ran side by side)
data["meta"]["cpu_s"] = sum(r["cpu_s"] for r in runs)
js, md = runner.write_results(data, out)
print(report.render(data))
print("cells with fewer than 5 seeds:",
      {k: v for k, v in data["meta"]["seeds_per_cell"].items() if v and len(v) < 5})
