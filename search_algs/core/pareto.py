"""Pareto dominance, hypervolume and feasibility: the numerical core of multi-objective tuning.

numpy only; nothing here knows of Ray. Every function MINIMISES every objective: the callers
flip the sign of an objective whose mode is ``"max"`` before calling.

Glossary (shapes in comments use these symbols)
------------------------------------------------
``n``      number of points (trials); ``m`` number of objectives.
``Y``      ``(n, m)`` objective values to minimise, all finite.
dominates  ``a`` dominates ``b`` when ``a <= b`` in every objective and ``a < b`` in one.
front      rank 0 is the set of non-dominated points; rank ``k`` is the non-dominated set once
           ranks ``0..k-1`` are removed (Deb et al., "A fast and elitist multiobjective genetic
           algorithm: NSGA-II", IEEE TEVC 2002).
``ref``    ``(m,)`` reference point of the hypervolume: every counted point must be strictly
           better than it in every objective; points that are not add nothing.
hypervolume  Lebesgue measure of the region dominated by the points and bounded by ``ref``.
           Exact: a sweep for ``m = 2``, the WFG recursion (While, Bradstreet, Barone, "A fast
           way of calculating exact hypervolumes", IEEE TEVC 2012) for ``m >= 3``.
contribution  hypervolume of the set minus that of the set without the point (its exclusive
           hypervolume).
knee       the front point closest (Euclidean) to the ideal point (the per-objective minimum of
           the front) once each objective is scaled by the front's range to ``[0, 1]``; an
           objective on which the front has no spread is left out. Ties: the earlier point.
violation  of a constraint ``metric OP bound``: 0 when it holds, else how far the value is on the
           wrong side (``|value - bound|``, at least the smallest positive float so that a strict
           bound met with equality still counts); NaN/inf or a missing value: ``inf``. A point is
           feasible when its total violation (the sum over constraints) is 0.
"""

from __future__ import annotations

import math
import operator
import re
from dataclasses import dataclass
from typing import Mapping, Sequence

import numpy as np

__all__ = [
    "Constraint", "parse_constraint", "OPERATORS",
    "dominates", "non_dominated_sort", "crowding_distance", "hypervolume",
    "hypervolume_contributions", "knee_point", "default_reference_point",
    "total_violation", "feasibility_order", "select_by_contribution",
]

OPERATORS = {"<=": operator.le, ">=": operator.ge, "<": operator.lt, ">": operator.gt}
_CONSTRAINT = re.compile(r"^\s*([A-Za-z_][A-Za-z0-9_./:\-]*)\s*(<=|>=|<|>)\s*(\S+)\s*$")


@dataclass(frozen=True)
class Constraint:
    """``metric OP bound``: a trial is feasible when its reported ``metric`` satisfies it."""

    metric: str
    operator: str
    bound: float

    def __str__(self) -> str:
        return f"{self.metric} {self.operator} {self.bound:g}"

    def holds(self, value: float | None) -> bool:
        return self.violation(value) == 0.0

    def violation(self, value: float | None) -> float:
        """0 when it holds; else the distance to the bound (see the module glossary)."""
        if value is None or isinstance(value, bool):
            return math.inf
        try:
            value = float(value)
        except (TypeError, ValueError):
            return math.inf
        if not math.isfinite(value):
            return math.inf
        if OPERATORS[self.operator](value, self.bound):
            return 0.0
        return max(abs(value - self.bound), np.finfo(float).tiny)


def parse_constraint(text: str) -> Constraint:
    """``"memory_gb <= 16"`` -> ``Constraint("memory_gb", "<=", 16.0)``; ``ValueError`` otherwise,
    saying what the form is."""
    if isinstance(text, Constraint):
        return text
    if not isinstance(text, str):
        raise ValueError(f"expected a string 'METRIC OP BOUND' (OP one of <=, >=, <, >), got "
                         f"{type(text).__name__} {text!r}; e.g. 'memory_gb <= 16'")
    match = _CONSTRAINT.match(text)
    if not match:
        raise ValueError(f"{text!r} is not 'METRIC OP BOUND' with OP one of <=, >=, <, > and a number "
                         f"as BOUND; e.g. 'memory_gb <= 16' (== and != are not constraints)")
    metric, op, raw = match.groups()
    try:
        bound = float(raw)
    except ValueError:
        raise ValueError(f"{text!r}: the bound {raw!r} is not a number; e.g. '{metric} {op} 16'") from None
    if not math.isfinite(bound):
        raise ValueError(f"{text!r}: the bound must be a finite number, got {raw!r}")
    return Constraint(metric, op, bound)


def total_violation(constraints: Sequence[Constraint], values: Mapping[str, float | None]) -> float:
    """Sum of the violations of ``constraints`` by ``values`` (a missing metric: ``inf``)."""
    return float(sum(c.violation(values.get(c.metric)) for c in constraints))


# ---- dominance ------------------------------------------------------------------------------


def _as_points(Y: np.ndarray) -> np.ndarray:
    Y = np.asarray(Y, dtype=float)
    if Y.ndim == 1:
        Y = Y.reshape(-1, 1)
    if Y.ndim != 2:
        raise ValueError(f"expected an (n, m) array of objective values, got shape {Y.shape}")
    if not np.all(np.isfinite(Y)):
        raise ValueError("objective values must be finite (leave failed trials out before ranking)")
    return Y


def dominates(a: np.ndarray, b: np.ndarray) -> bool:
    """Whether ``a`` dominates ``b`` (minimisation)."""
    a, b = np.asarray(a, float), np.asarray(b, float)
    return bool(np.all(a <= b) and np.any(a < b))


def non_dominated_sort(Y: np.ndarray) -> np.ndarray:
    """``(n,)`` front index of each point (0 = non-dominated). Equal points share a front."""
    Y = _as_points(Y)  # (n, m)
    n = Y.shape[0]
    if n == 0:
        return np.zeros(0, dtype=int)
    le = np.all(Y[:, None, :] <= Y[None, :, :], axis=2)  # (n, n): i <= j everywhere
    lt = np.any(Y[:, None, :] < Y[None, :, :], axis=2)  # (n, n): i < j somewhere
    dom = le & lt  # dom[i, j]: i dominates j
    count = dom.sum(axis=0)  # (n,): how many dominate j
    rank = np.full(n, -1, dtype=int)
    front = np.flatnonzero(count == 0)
    k = 0
    while front.size:
        rank[front] = k
        count = count - dom[front].sum(axis=0)
        count[rank >= 0] = -1  # never picked again
        front = np.flatnonzero(count == 0)
        k += 1
    return rank


def crowding_distance(Y: np.ndarray) -> np.ndarray:
    """``(n,)`` NSGA-II crowding distance of points of one front: per objective, the extreme
    points get ``inf``, the others the gap between their neighbours divided by the range; summed
    over objectives. Larger = lonelier = preferred."""
    Y = _as_points(Y)
    n, m = Y.shape
    dist = np.zeros(n)
    if n <= 2:
        return np.full(n, np.inf)
    for j in range(m):
        order = np.argsort(Y[:, j], kind="stable")
        span = Y[order[-1], j] - Y[order[0], j]
        dist[order[0]] = dist[order[-1]] = np.inf
        if span > 0:
            dist[order[1:-1]] += (Y[order[2:], j] - Y[order[:-2], j]) / span
    return dist


# ---- hypervolume -------------------------------------------------------------------------------


def _nondominated_unique(P: np.ndarray) -> np.ndarray:
    if P.shape[0] <= 1:
        return P
    P = np.unique(P, axis=0)
    return P[non_dominated_sort(P) == 0]


def _hv2(P: np.ndarray, ref: np.ndarray) -> float:
    """Exact 2-D hypervolume by a sweep over the first objective."""
    P = P[np.argsort(P[:, 0], kind="stable")]
    volume, best_y = 0.0, ref[1]
    for x, y in P:
        if y < best_y:
            volume += (ref[0] - x) * (best_y - y)
            best_y = y
    return float(volume)


def _wfg(P: np.ndarray, ref: np.ndarray) -> float:
    """WFG: sum of exclusive hypervolumes, each the box of a point minus the hypervolume of the
    later points limited to that box (points strictly better than ``ref``)."""
    n, m = P.shape
    if n == 0:
        return 0.0
    if m == 1:
        return float(ref[0] - P[:, 0].min())
    if m == 2:
        return _hv2(P, ref)
    P = P[np.argsort(P[:, 0], kind="stable")[::-1]]  # worst first: smaller limit sets
    total = 0.0
    for i in range(n):
        box = float(np.prod(ref - P[i]))
        rest = P[i + 1:]
        if rest.shape[0]:
            limited = _nondominated_unique(np.maximum(rest, P[i]))
            box -= _wfg(limited, ref)
        total += box
    return total


def hypervolume(Y: np.ndarray, ref: Sequence[float]) -> float:
    """Exact hypervolume of ``Y`` ``(n, m)`` against ``ref`` ``(m,)`` (minimisation)."""
    Y = _as_points(Y)
    ref = np.asarray(ref, dtype=float).reshape(-1)
    if Y.shape[0] == 0:
        return 0.0
    if ref.shape[0] != Y.shape[1] or not np.all(np.isfinite(ref)):
        raise ValueError(f"reference point must be {Y.shape[1]} finite numbers, got {ref.tolist()}")
    P = Y[np.all(Y < ref, axis=1)]
    return _wfg(_nondominated_unique(P), ref) if P.shape[0] else 0.0


def hypervolume_contributions(Y: np.ndarray, ref: Sequence[float]) -> np.ndarray:
    """``(n,)`` exclusive hypervolume of each point: ``HV(Y) - HV(Y without it)`` (0 for a
    dominated point or a duplicate)."""
    Y = _as_points(Y)
    n = Y.shape[0]
    total = hypervolume(Y, ref)
    out = np.empty(n)
    for i in range(n):
        out[i] = total - hypervolume(np.delete(Y, i, axis=0), ref)
    return np.maximum(out, 0.0)


def default_reference_point(Y: np.ndarray, margin: float = 0.1) -> np.ndarray:
    """The worst value per objective plus ``margin`` of the objective's range (``margin`` of
    ``max(|worst|, 1)`` when all values are equal), so the extreme points still count."""
    Y = _as_points(Y)
    worst, best = Y.max(axis=0), Y.min(axis=0)
    span = worst - best
    span = np.where(span > 0, span, np.maximum(np.abs(worst), 1.0))
    return worst + margin * span


def knee_point(Y: np.ndarray) -> int:
    """Index of the knee of the front ``Y`` (see the module glossary); ``Y`` should be
    non-dominated (only rank-0 points are considered otherwise)."""
    Y = _as_points(Y)
    if Y.shape[0] == 0:
        raise ValueError("knee_point: no points")
    candidates = np.flatnonzero(non_dominated_sort(Y) == 0)
    F = Y[candidates]
    lo, hi = F.min(axis=0), F.max(axis=0)
    keep = hi > lo
    if not np.any(keep):
        return int(candidates[0])
    Z = (F[:, keep] - lo[keep]) / (hi[keep] - lo[keep])
    return int(candidates[int(np.argmin(np.sqrt((Z**2).sum(axis=1))))])


# ---- orderings used by searchers, schedulers and records -------------------------------------


def select_by_contribution(Y: np.ndarray, k: int, ref: Sequence[float] | None = None) -> np.ndarray:
    """Indices of ``k`` points of one front kept by removing, one at a time, the point of least
    hypervolume contribution (MOTPE's tie-break at the split, Ozaki et al. 2020/2022). Ties in
    contribution: the later point goes first. Returned sorted."""
    Y = _as_points(Y)
    n = Y.shape[0]
    if k >= n:
        return np.arange(n)
    ref = default_reference_point(Y) if ref is None else np.asarray(ref, float)
    keep = list(range(n))
    while len(keep) > k:
        contrib = hypervolume_contributions(Y[keep], ref)
        worst = max(range(len(keep)), key=lambda i: (-contrib[i], i))
        keep.pop(worst)
    return np.array(sorted(keep), dtype=int)


def feasibility_order(Y: np.ndarray, violation: Sequence[float] | None = None) -> np.ndarray:
    """Indices of all points, best first: feasible points by (front, larger crowding distance,
    index), then infeasible ones by (total violation, index).

    Args:
        Y: ``(n, m)`` objectives to minimise; a row with a non-finite value counts as infeasible
            with ``inf`` violation (a failed trial).
        violation: ``(n,)`` total constraint violation (0 = feasible); ``None``: all feasible.
    """
    Y = np.asarray(Y, dtype=float)
    if Y.ndim == 1:
        Y = Y.reshape(-1, 1)
    n = Y.shape[0]
    viol = np.zeros(n) if violation is None else np.asarray(violation, dtype=float).copy()
    viol[~np.all(np.isfinite(Y), axis=1)] = np.inf
    feasible = np.flatnonzero(viol == 0)
    keys: list[tuple] = []
    if feasible.size:
        ranks = non_dominated_sort(Y[feasible])
        crowd = np.zeros(feasible.size)
        for r in np.unique(ranks):
            members = np.flatnonzero(ranks == r)
            crowd[members] = crowding_distance(Y[feasible][members])
        keys += [(0, int(ranks[i]), -crowd[i], int(feasible[i])) for i in range(feasible.size)]
    keys += [(1, 0, float(viol[i]), int(i)) for i in np.flatnonzero(viol != 0)]
    keys.sort()
    return np.array([key[-1] for key in keys], dtype=int)
