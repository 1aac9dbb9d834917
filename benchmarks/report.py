"""Statistics and the Markdown report, from the raw results (plain data: see ``__main__``).

Definitions (BENCHMARK-PROTOCOL.md):

* regret at a checkpoint = TRUE value of the incumbent - optimum (>= 0; clipped at 0 against the
  rounding of a published optimum). Where a problem's optimum is unknown (the ML tasks) the
  optimum is *empirical*: the best TRUE value any run in the same result set reached; such
  problems are marked ``*``.
* median and IQR (25th-75th percentile, linear interpolation) over seeds.
* normalised regret of optimiser o on problem p = max(median_o, tol_p) / max(median_random,
  tol_p), tol_p the problem's tolerance (so a solved problem counts as a ratio of tolerances, not
  0 / x); summarised as the geometric mean over the problems where both o and random ran.
* paired outcome per seed (ours vs peer): tie when |r_ours - r_peer| <= tol_p, else win for the
  lower regret. Per-problem verdict: two-sided Wilcoxon signed-rank test on the non-tied pairs at
  ``alpha = 0.05``; a win/loss needs p < alpha and at least 6 non-tied pairs (with fewer the test
  cannot reach 0.05: the verdict is a tie). Seed-level counts are shown next to it.
* suggestion cost: CPU seconds (``time.process_time``) of one ``ask``; median and p95.
"""

from __future__ import annotations

import json
import math
from collections import defaultdict
from typing import Any, Iterable, Mapping, Sequence

import numpy as np

FRACTION_LABELS = ("25%", "50%", "100%")
MIN_PAIRS = 6
ALPHA = 0.05


# ---- pure statistics ---------------------------------------------------------------------------

def quantiles(xs: Sequence[float]) -> tuple[float, float, float]:
    """``(median, q1, q3)`` of ``xs`` (linear interpolation); NaNs when empty."""
    if len(xs) == 0:
        return (math.nan, math.nan, math.nan)
    q1, med, q3 = np.percentile(np.asarray(xs, dtype=float), [25, 50, 75])
    return float(med), float(q1), float(q3)


def regret(value: float, optimum: float) -> float:
    return max(0.0, float(value) - float(optimum))


def normalised_ratio(reg: Sequence[float], reg_random: Sequence[float], tol: float) -> float:
    """max(median(reg), tol) / max(median(reg_random), tol)."""
    return max(float(np.median(reg)), tol) / max(float(np.median(reg_random)), tol)


def geometric_mean(xs: Iterable[float]) -> float:
    xs = [float(x) for x in xs]
    if not xs:
        return math.nan
    if any(x <= 0 for x in xs):
        raise ValueError(f"geometric mean needs positive numbers, got {xs}")
    return float(math.exp(sum(math.log(x) for x in xs) / len(xs)))


def paired_outcomes(ours: Mapping[Any, float], peer: Mapping[Any, float], tol: float) -> tuple[int, int, int]:
    """``(wins, ties, losses)`` of ``ours`` against ``peer`` over the seeds both have (lower is better)."""
    w = t = l = 0
    for seed in sorted(set(ours) & set(peer)):
        a, b = ours[seed], peer[seed]
        if abs(a - b) <= tol:
            t += 1
        elif a < b:
            w += 1
        else:
            l += 1
    return w, t, l


def verdict(ours: Mapping[Any, float], peer: Mapping[Any, float], tol: float,
            alpha: float = ALPHA, min_pairs: int = MIN_PAIRS) -> tuple[str, float]:
    """``("win" | "tie" | "loss", p)``: Wilcoxon signed-rank on the non-tied paired differences."""
    seeds = sorted(set(ours) & set(peer))
    d = np.array([peer[s] - ours[s] for s in seeds if abs(peer[s] - ours[s]) > tol])  # > 0: ours better
    if len(d) < min_pairs:
        return "tie", math.nan
    from scipy.stats import wilcoxon

    p = float(wilcoxon(d, alternative="two-sided").pvalue)
    if p < alpha:
        return ("win" if np.median(d) > 0 else "loss"), p
    return "tie", p


# ---- from raw results to tables ----------------------------------------------------------------

def optima(data: Mapping) -> dict[str, tuple[float, bool]]:
    """``{problem: (optimum, known)}``; unknown optima become the best TRUE value in the data."""
    best: dict[str, float] = defaultdict(lambda: math.inf)
    for run in list(data.get("runs", [])) + list(data.get("tune", [])):
        if run["true"]:
            best[run["problem"]] = min(best[run["problem"]], min(run["true"]))
    out = {}
    for name, meta in data["problems"].items():
        if meta.get("optimum") is not None:
            out[name] = (float(meta["optimum"]), True)
        elif math.isfinite(best[name]):
            out[name] = (best[name], False)
    return out


def regret_table(runs: Sequence[Mapping], opt: Mapping[str, tuple[float, bool]]) -> dict:
    """``{(problem, optimizer): {label: {seed: regret}}}`` for the runs that finished."""
    table: dict = defaultdict(lambda: {lab: {} for lab in FRACTION_LABELS})
    for run in runs:
        if run.get("error") or run["problem"] not in opt:
            continue
        keys = sorted(run["incumbent"], key=int)
        if len(keys) != len(FRACTION_LABELS):
            continue
        optimum = opt[run["problem"]][0]
        for lab, k in zip(FRACTION_LABELS, keys):
            table[(run["problem"], run["optimizer"])][lab][run["seed"]] = regret(run["incumbent"][k], optimum)
    return dict(table)


def _fmt(x: float) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "n/a"
    if x == 0:
        return "0"
    return f"{x:.3g}"


def _cell(xs: Sequence[float]) -> str:
    med, q1, q3 = quantiles(xs)
    return f"{_fmt(med)} [{_fmt(q1)}, {_fmt(q3)}]" if xs else "n/a"


def _order(names: Iterable[str], data: Mapping) -> list[str]:
    order = list(data["meta"].get("optimizers", []))
    names = set(names)
    return [n for n in order if n in names] + sorted(names - set(order))


def summary(data: Mapping, baseline: str = "random") -> dict:
    """Aggregates the Markdown is built from (also handy for tests)."""
    opt = optima(data)
    runs = data.get("runs", [])
    table = regret_table(runs, opt)
    problems = [p for p in data["problems"] if p in opt]
    optimizers = _order({o for _, o in table}, data)
    tol = {p: float(data["problems"][p]["tol"]) for p in data["problems"]}

    norm: dict[str, dict[str, float]] = {}
    norm_per_problem: dict[tuple[str, str], float] = {}
    for o in optimizers:
        norm[o] = {}
        for lab in FRACTION_LABELS:
            ratios = []
            for p in problems:
                mine, base = table.get((p, o)), table.get((p, baseline))
                if mine and base and mine[lab] and base[lab]:
                    r = normalised_ratio(list(mine[lab].values()), list(base[lab].values()), tol[p])
                    ratios.append(r)
                    if lab == "100%":
                        norm_per_problem[(p, o)] = r
            norm[o][lab] = geometric_mean(ratios) if ratios else math.nan
        norm[o]["n_problems"] = len([p for p in problems if (p, o) in norm_per_problem])

    cpu: dict[str, tuple[float, float, int]] = {}
    by_opt: dict[str, list[float]] = defaultdict(list)
    for run in runs:
        if not run.get("error"):
            by_opt[run["optimizer"]].extend(run["ask_cpu"])
    for o, xs in by_opt.items():
        cpu[o] = (float(np.median(xs)), float(np.percentile(xs, 95)), len(xs))

    ours = [o for o in optimizers if data["meta"].get("kinds", {}).get(o) == "ours" and o != baseline]
    if not ours:
        ours = [o for o in optimizers if data["meta"].get("kinds", {}).get(o) == "ours"]
    wtl = {}
    for a in ours:
        for b in optimizers:
            if b == a:
                continue
            pw = pt = pl = sw = st = sl = 0
            for p in problems:
                if (p, a) in table and (p, b) in table:
                    ra, rb = table[(p, a)]["100%"], table[(p, b)]["100%"]
                    v, _ = verdict(ra, rb, tol[p])
                    pw, pt, pl = pw + (v == "win"), pt + (v == "tie"), pl + (v == "loss")
                    w, t, l = paired_outcomes(ra, rb, tol[p])
                    sw, st, sl = sw + w, st + t, sl + l
            if pw + pt + pl:
                wtl[(a, b)] = ((pw, pt, pl), (sw, st, sl))
    return {"optima": opt, "table": table, "problems": problems, "optimizers": optimizers,
            "norm": norm, "norm_per_problem": norm_per_problem, "cpu": cpu, "wtl": wtl}


def merge(parts: Sequence[Mapping]) -> dict:
    """One result set from several runs of the harness (e.g. one per optimiser group, or runs
    split across processes): runs, skips, cost and Tune records concatenated, optimisers and
    problems united in first-seen order, every part's command kept in ``meta["commands"]``.
    A run of the same (problem, optimiser, seed, mode) in a later part replaces the earlier one
    (a rerun with more seeds repeats the first seeds; the harness makes them identical)."""
    if not parts:
        raise ValueError("merge: no result sets given")
    merged = json.loads(json.dumps(parts[0]))  # a deep copy; the parts stay untouched
    meta = merged["meta"]
    meta["commands"] = [p["meta"]["command"] for p in parts]
    meta["command"] = " ; ".join(meta["commands"])
    meta["wall_s"] = sum(float(p["meta"].get("wall_s") or 0.0) for p in parts)
    for part in parts[1:]:
        m = part["meta"]
        meta["optimizers"] += [o for o in m.get("optimizers", []) if o not in meta["optimizers"]]
        for key in ("kinds", "descriptions", "budgets"):
            meta.setdefault(key, {}).update(m.get(key, {}))
        merged["problems"].update(part.get("problems", {}))
        for key in ("runs", "skips", "cost", "tune"):
            merged[key] = list(merged.get(key) or []) + list(part.get(key) or [])
    latest = {(r["problem"], r["optimizer"], r["seed"], r.get("mode", "sequential")): r for r in merged["runs"]}
    merged["runs"] = list(latest.values())
    return merged


def render(data: Mapping) -> str:
    """The Markdown report of one result set."""
    meta = data["meta"]
    s = summary(data)
    out: list[str] = []
    add = out.append
    add(f"## {meta.get('title', 'Benchmark results')}\n")
    add(f"- command: `{meta.get('command', '?')}`")
    add(f"- date: {meta.get('date', '?')}; wall time {meta.get('wall_s', 0):.0f} s")
    add(f"- machine: {meta.get('machine', '?')}; code: {meta.get('git', '?')}")
    add("- versions: " + ", ".join(f"{k} {v}" for k, v in meta.get("versions", {}).items()))
    add(f"- seeds: {meta.get('seeds')}; budgets (evaluations): "
        + ", ".join(f"{p} {b}" for p, b in meta.get("budgets", {}).items()))
    add("- regret: TRUE value of the incumbent minus the optimum; median [IQR] over seeds; "
        "`*` = optimum unknown, the best TRUE value in this result set is used")
    add("")

    if s["table"]:
        add("### Simple regret (median [IQR] over seeds)\n")
        add("| problem | optimiser | 25% | 50% | 100% | vs random @100% |")
        add("|---|---|---|---|---|---|")
        for p in s["problems"]:
            star = "" if s["optima"][p][1] else "*"
            for o in s["optimizers"]:
                row = s["table"].get((p, o))
                if not row:
                    continue
                ratio = s["norm_per_problem"].get((p, o))
                add(f"| {p}{star} | {o} | " + " | ".join(_cell(list(row[lab].values())) for lab in FRACTION_LABELS)
                    + f" | {_fmt(ratio) if ratio is not None else 'n/a'} |")
        add("")

        add("### Summary: normalised regret (geometric mean over problems of regret / random's) "
            "and CPU seconds per suggestion (all suggestions of the runs)\n")
        add("| optimiser | 25% | 50% | 100% | problems | CPU s/ask median | p95 | asks |")
        add("|---|---|---|---|---|---|---|---|")
        for o in s["optimizers"]:
            n = s["norm"][o]
            med, p95, k = s["cpu"].get(o, (math.nan, math.nan, 0))
            add(f"| {o} | " + " | ".join(_fmt(n[lab]) for lab in FRACTION_LABELS)
                + f" | {n['n_problems']} | {med:.2g} | {p95:.2g} | {k} |")
        add("")

    if s["wtl"]:
        add("### Ours vs each optimiser at 100% of the budget\n")
        add(f"Problems W/T/L: Wilcoxon signed-rank, p < {ALPHA}, needs >= {MIN_PAIRS} non-tied seeds "
            f"(fewer seeds: every problem is a tie). Seeds w/t/l: paired per seed, tie within the problem's tolerance.\n")
        add("| ours | vs | problems W/T/L | seeds w/t/l |")
        add("|---|---|---|---|")
        for (a, b), (pr, se) in s["wtl"].items():
            add(f"| {a} | {b} | {pr[0]}/{pr[1]}/{pr[2]} | {se[0]}/{se[1]}/{se[2]} |")
        add("")

    cost = data.get("cost") or []
    if cost:
        sizes = sorted({c["n_history"] for c in cost})
        problem = cost[0]["problem"]
        add(f"### Suggestion cost on {problem}: CPU s per ask after n observations (median / p95)\n")
        add("| optimiser | " + " | ".join(f"n={n}" for n in sizes) + " |")
        add("|---|" + "---|" * len(sizes))
        by = {(c["optimizer"], c["n_history"]): c for c in cost}
        for o in _order({c["optimizer"] for c in cost}, data):
            cells = []
            for n in sizes:
                c = by.get((o, n))
                if c is None:
                    cells.append("")
                elif c.get("error") == "no warm start":
                    cells.append("n/a")
                elif c.get("error"):
                    cells.append("failed")
                else:
                    xs = c["ask_cpu"]
                    cells.append(f"{np.median(xs):.2g} / {np.percentile(xs, 95):.2g}")
            add(f"| {o} | " + " | ".join(cells) + " |")
        add("")

    tune_runs = data.get("tune") or []
    if tune_runs:
        opt = s["optima"]
        tt = regret_table(tune_runs, opt)
        add("### Through Ray Tune with concurrent trials (median [IQR] regret)\n")
        add("| problem | optimiser | mode | 25% | 50% | 100% | wall s/run |")
        add("|---|---|---|---|---|---|---|")
        modes = {(r["problem"], r["optimizer"]): r["mode"] for r in tune_runs}
        walls = defaultdict(list)
        for r in tune_runs:
            walls[(r["problem"], r["optimizer"])].append(r["wall_s"])
        for (p, o), row in tt.items():
            add(f"| {p} | {o} | {modes[(p, o)]} | " + " | ".join(_cell(list(row[lab].values())) for lab in FRACTION_LABELS)
                + f" | {np.median(walls[(p, o)]):.1f} |")
        add("")

    ov = data.get("overhead")
    if ov:
        add("### Orchestration overhead\n")
        add(f"{ov['n_trials']} trivial trials through Tune on {ov['num_cpus']} CPUs, {ov['repeats']} alternating "
            f"repeats: ours (`{ov['optimizer']}` in a ConcurrencyLimiter({ov['num_cpus']}) + FIFO) "
            f"{ov['median_ours_s']:.1f} s vs Tune's BasicVariantGenerator + FIFO {ov['median_default_s']:.1f} s "
            f"(medians): **ratio {ov['ratio']:.2f}**.\n")

    skips = data.get("skips") or []
    failed = [r for r in data.get("runs", []) + tune_runs if r.get("error")]
    if skips or failed:
        add("### Skipped and failed\n")
        seen = set()
        for sk in skips:
            key = (sk["optimizer"], sk["reason"])
            probs = sorted({x["problem"] for x in skips if (x["optimizer"], x["reason"]) == key})
            if key not in seen:
                seen.add(key)
                add(f"- skipped {sk['optimizer']} on {', '.join(probs)}: {sk['reason']}")
        for r in failed:
            add(f"- FAILED {r['problem']} / {r['optimizer']} / seed {r['seed']}: {r['error']}")
        add("")
    return "\n".join(out)


# ---- side-by-side comparison of chosen pairs (`python -m benchmarks compare`) ------------------

def relabel(data: Mapping, tag: str) -> dict:
    """A copy of a result set whose optimisers are named ``<name>@<tag>`` (to compare a
    searcher before and after a change: ``compare before=old.json.gz now=new.json.gz``)."""
    out = json.loads(json.dumps(data))
    rename = {o: f"{o}@{tag}" for o in out["meta"].get("optimizers", [])}
    out["meta"]["optimizers"] = [rename[o] for o in out["meta"].get("optimizers", [])]
    for key in ("kinds", "descriptions"):
        out["meta"][key] = {rename.get(k, f"{k}@{tag}"): v for k, v in out["meta"].get(key, {}).items()}
    for key in ("runs", "cost", "tune"):
        for rec in out.get(key) or []:
            if "optimizer" in rec:
                rec["optimizer"] = rename.get(rec["optimizer"], f"{rec['optimizer']}@{tag}")
    return out


def compare(data: Mapping, pairs: Sequence[tuple[str, str]], optimizers: Sequence[str] | None = None,
            at: str = "100%") -> str:
    """Markdown: median regret per problem of ``optimizers`` (best in bold), normalised regret
    and CPU per suggestion, then for each pair ``(a, b)`` the per-problem ratio of medians,
    the Wilcoxon verdict with its p, seed wins/ties/losses, and the totals (verdicts, and
    medians lower/level/higher). Seeds are paired where both ran them."""
    if at not in FRACTION_LABELS:
        raise ValueError(f"compare: 'at' must be one of {FRACTION_LABELS}, got {at!r}")
    s = summary(data)
    names = list(optimizers) if optimizers else list(dict.fromkeys(o for pair in pairs for o in pair))
    missing = [o for o in names if o not in s["optimizers"]]
    if missing:
        raise ValueError(f"compare: optimiser(s) {missing} are not in the results; they hold {s['optimizers']}")
    tol = {p: float(data["problems"][p]["tol"]) for p in data["problems"]}
    lines = [f"Median regret at {at} of the budget over the seeds every column ran (best per row in bold)", "",
             "| problem | " + " | ".join(names) + " |", "|---|" + "---|" * len(names)]
    for p in s["problems"]:
        ran = [s["table"][(p, o)][at] for o in names if (p, o) in s["table"] and s["table"][(p, o)][at]]
        common = set.intersection(*(set(r) for r in ran)) if ran else set()  # seeds every column ran
        meds = {o: float(np.median([s["table"][(p, o)][at][k] for k in sorted(common)]))
                for o in names if common and (p, o) in s["table"] and s["table"][(p, o)][at]}
        best = min(meds.values()) if meds else math.nan
        cells = [("**" + _fmt(meds[o]) + "**" if meds[o] <= best + tol[p] else _fmt(meds[o])) if o in meds else "n/a"
                 for o in names]
        lines.append(f"| {p} | " + " | ".join(cells) + " |")
    lines += ["", "| optimiser | norm. regret @" + at + " | CPU s/ask median | p95 |", "|---|---|---|---|"]
    for o in names:
        med, p95, _ = s["cpu"].get(o, (math.nan, math.nan, 0))
        lines.append(f"| {o} | {_fmt(s['norm'].get(o, {}).get(at, math.nan))} | {med:.3g} | {p95:.3g} |")
    for a, b in pairs:
        lines += ["", f"{a} vs {b}", "", "| problem | ratio of medians | verdict (p) | seeds w/t/l |", "|---|---|---|---|"]
        tot_v, tot_m, tot_s = [0, 0, 0], [0, 0, 0], [0, 0, 0]
        for p in s["problems"]:
            if (p, a) not in s["table"] or (p, b) not in s["table"]:
                continue
            ra, rb = s["table"][(p, a)][at], s["table"][(p, b)][at]
            common = sorted(set(ra) & set(rb))
            if not common:
                continue
            ma, mb = (float(np.median([r[k] for k in common])) for r in (ra, rb))
            v, pv = verdict(ra, rb, tol[p])
            w, t, l = paired_outcomes(ra, rb, tol[p])
            tot_v[("win", "tie", "loss").index(v)] += 1
            tot_m[1 if abs(ma - mb) <= tol[p] else (0 if ma < mb else 2)] += 1
            tot_s = [tot_s[0] + w, tot_s[1] + t, tot_s[2] + l]
            ratio = max(ma, tol[p]) / max(mb, tol[p])
            lines.append(f"| {p} | {ratio:.2f} | {v} ({pv:.2g}) | {w}/{t}/{l} |")
        lines.append(f"| **total** | medians lower/level/higher {tot_m[0]}/{tot_m[1]}/{tot_m[2]} | "
                     f"**{tot_v[0]}/{tot_v[1]}/{tot_v[2]}** | {tot_s[0]}/{tot_s[1]}/{tot_s[2]} |")
    return "\n".join(lines)
