"""C4: the final set (kg = alternate, gp-ei; `python -m benchmarks run`, commit 9136563) plus kg-wide
(the previous default): seeds 5-9 from bench-results/kg-c4/seeds.py (harness.run_one, same code path,
same commit, worktree) and seeds 0-4 = run C3's `kg` rows (old default; reproduced bit for bit)."""
import json, sys
sys.path.insert(0, "/work/main")
from benchmarks import report, runner, peers
final = json.load(open("/work/main/bench-results/kg-c4/final/results.json"))
c3 = json.load(open("/work/main/bench-results/c3/merged/results.json"))
wide = [json.loads(l) for l in open("/work/main/bench-results/kg-c4/wide59.jsonl")]
old = []
for r in c3["runs"]:
    if r["optimizer"] == "kg" and r["problem"] in final["problems"] and r["seed"] < 5:
        r = dict(r); r["optimizer"] = "kg-wide"; old.append(r)
final["runs"] += old + [r for r in wide if r["optimizer"] == "kg-wide"]
final["meta"]["optimizers"] = ["gp-ei", "kg", "kg-wide"]
spec = peers.optimizer_specs()["kg-wide"]
final["meta"]["kinds"]["kg-wide"] = spec.kind
final["meta"]["descriptions"]["kg-wide"] = spec.description + " (seeds 0-4: run C3's kg rows; seeds 5-9: harness.run_one at 9136563)"
final["meta"]["command"] += " ; kg-wide seeds 5-9: python bench-results/kg-c4/seeds.py <problems> kg-wide 5,6,7,8,9 (harness.run_one) ; kg-wide seeds 0-4: run C3's kg rows"
final["meta"]["title"] = "C4: KG with the alternating decision set vs GP-EI and the previous KG"
out = sys.argv[1]
runner.write_results(final, out)
print(report.render(final))
