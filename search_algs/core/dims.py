"""How a numerical core sees one parameter: :class:`Dim`, the one type every core shares.

numpy only; nothing here knows of Ray or of the search-space classes. The cores work on unit
vectors ``u`` in ``[0, 1]^D`` (``NaN`` where a parameter is inactive); a :class:`Dim` says how
one coordinate of ``u`` is to be read. :func:`search_algs.space.Space.dims` builds them from
a space's parameters (TPE, GP-EI and KG all take the same tuple).

Glossary
--------
``g``        grid points of a discrete parameter.
grid         ``(g,)`` ascending unit coordinates of the grid points (the values a discrete
             parameter decodes to).
edges        ``(g + 1,)`` unit-interval cell boundaries: grid point ``k`` owns
             ``[edges[k], edges[k + 1])``; the cells are unequal on log grids (rounding happens
             on the value scale).
condition    ``(parent index, choice index)`` pairs, root first: active iff every parent takes
             that choice (parents come before children in the tuple).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

__all__ = ["Dim", "KINDS", "CONTINUOUS", "DISCRETE", "CATEGORICAL", "levels_of"]

CONTINUOUS, DISCRETE, CATEGORICAL = "continuous", "discrete", "categorical"
KINDS = (CONTINUOUS, DISCRETE, CATEGORICAL)


@dataclass(frozen=True, eq=False)
class Dim:
    """One parameter as the cores see it.

    Args:
        kind: ``"continuous"``, ``"discrete"`` (integer or quantised) or ``"categorical"``.
        n_choices: number of choices of a categorical parameter.
        grid: ``(g,)`` ascending unit coordinates of a discrete parameter's grid points;
            ``None`` treats it as continuous (a very fine grid; decoding still snaps it).
        edges: ``(g + 1,)`` cell boundaries of the grid, from 0 to 1; default: half-way
            between neighbouring grid points.
        condition: see the module glossary.
    """

    kind: str
    n_choices: int = 0
    grid: np.ndarray | None = None
    edges: np.ndarray | None = None
    condition: tuple[tuple[int, int], ...] = ()

    def __post_init__(self):
        if self.kind not in KINDS:
            raise ValueError(f"Dim: kind must be one of {KINDS}, got {self.kind!r}")
        if self.kind == CATEGORICAL and self.n_choices < 1:
            raise ValueError(f"Dim: a categorical needs n_choices >= 1, got {self.n_choices!r}")
        if self.grid is not None:
            g = np.asarray(self.grid, dtype=float)
            if g.ndim != 1 or g.size == 0 or np.any(np.diff(g) <= 0) or g[0] < 0 or g[-1] > 1:
                raise ValueError(f"Dim: grid must be a non-empty ascending array of unit coordinates, got {g!r}")
            object.__setattr__(self, "grid", g)
            e = (np.concatenate([[0.0], (g[1:] + g[:-1]) / 2, [1.0]]) if self.edges is None
                 else np.asarray(self.edges, dtype=float))
            if e.shape != (g.size + 1,) or np.any(np.diff(e) < 0):
                raise ValueError(f"Dim: edges must be {g.size + 1} ascending cell boundaries, got {e!r}")
            object.__setattr__(self, "edges", e)
        elif self.edges is not None:
            raise ValueError("Dim: edges need a grid; give both or neither")
        object.__setattr__(self, "condition", tuple((int(p), int(k)) for p, k in self.condition))

    @property
    def on_grid(self) -> bool:
        """A discrete parameter with an explicit grid (else it is treated as continuous)."""
        return self.grid is not None

    @property
    def numeric(self) -> bool:
        return self.kind != CATEGORICAL

    def cell(self, u: np.ndarray) -> np.ndarray:
        """Grid cell index of unit coordinates ``u``."""
        return np.clip(np.searchsorted(self.edges, u, side="right") - 1, 0, len(self.grid) - 1)

    def choice(self, u: np.ndarray) -> np.ndarray:
        """Category index of unit coordinates ``u`` (``NaN`` reads as choice 0)."""
        u = np.nan_to_num(np.asarray(u, dtype=float), nan=0.0)
        return np.clip(np.floor(u * self.n_choices), 0, self.n_choices - 1).astype(np.int64)


def levels_of(dims: Sequence[Dim]) -> np.ndarray:  # (D,)
    """Categorical choice counts, 0 for numeric parameters (the GP's ``levels``)."""
    return np.array([d.n_choices if d.kind == CATEGORICAL else 0 for d in dims], dtype=np.int64)
