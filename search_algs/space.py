"""One search-space model for every searcher.

A *template* is the user's nested structure (dicts, lists, constants) whose leaves may be
domains: :class:`Float`, :class:`Int` or :class:`Categorical`. A categorical's choices may
themselves be templates holding domains, which makes the space conditional (tree-structured,
as hyperopt's ``hp.choice`` of dicts): the parameters inside a choice exist only while that
choice is taken.

:class:`Space` flattens a template into an ordered tuple of :class:`Param` (parents before
their children) and translates between three views of a point:

* the nested *config* the trainable receives,
* the *unit vector* ``u`` in ``[0, 1]^d`` the numerical cores work in (``NaN`` where a
  parameter is inactive), one coordinate per parameter,
* the flat ``{param name: value}`` mapping of the active parameters.

Encoding conventions (``u`` to value):

* ``Float``: linear or log scale between the bounds.
* ``Int`` and quantised ``Float`` (``step``): the grid ``low, low + step, ..., high``; the
  unit interval is padded by half a step on both ends, so every grid point owns an equal
  share of ``[0, 1]`` (log scale: an equal share in log space).
* ``Categorical``: choice ``k`` of ``n`` owns ``[k / n, (k + 1) / n)`` and encodes to its
  centre.

Bounds are inclusive everywhere. Converters from Ray Tune domains and hyperopt spaces
translate their (differing) edge conventions into these; see :func:`from_ray` and
:func:`from_hyperopt`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Iterator, Mapping, Sequence

import numpy as np

from search_algs import converters
from search_algs.core.dims import CATEGORICAL, CONTINUOUS, DISCRETE, Dim
from search_algs.domains import (
    Categorical,
    Float,
    Int,
    contains_domain,
    is_domain,
    snap,
)
from search_algs.errors import SpaceError, closest, describe_value

_fmt = describe_value

__all__ = [
    "Float",
    "Int",
    "Categorical",
    "Param",
    "Space",
    "SpaceError",
]


# The leaves (Float, Int, Categorical) live in search_algs/domains.py; the YAML-spec checks
# in search_algs/converters.py. ``_is_domain``/``_contains_domain``/``_snap`` are kept as
# aliases for callers outside search_algs that still use them (orchestrator/spec.py).
_is_domain, _contains_domain, _snap = is_domain, contains_domain, snap


@dataclass(frozen=True)
class Param:
    """One flattened parameter.

    ``condition`` lists ``(parent index, choice index)`` pairs from the root down: the
    parameter is active iff every listed parent parameter takes that choice.
    """

    name: str
    domain: Float | Int | Categorical
    condition: tuple[tuple[int, int], ...] = ()

    @property
    def is_categorical(self) -> bool:
        return isinstance(self.domain, Categorical)

    @property
    def n_choices(self) -> int:
        return len(self.domain.choices) if isinstance(self.domain, Categorical) else 0

    @property
    def n_grid(self) -> int | None:
        """Number of grid points for integer/quantised parameters, ``None`` when continuous."""
        d = self.domain
        if isinstance(d, Int) or (isinstance(d, Float) and d.step is not None):
            return int(math.floor((d.high - d.low) / d.step + 1e-9)) + 1
        return None

    # ---- unit-interval transforms of one coordinate ------------------------------------

    def _bounds(self) -> tuple[float, float]:
        """Transformed-space interval that ``[0, 1]`` maps onto (log space when log-scaled)."""
        d = self.domain
        n = self.n_grid
        if n is None:
            return (math.log(d.low), math.log(d.high)) if d.log else (float(d.low), float(d.high))
        top = d.low + (n - 1) * d.step
        if not d.log:
            return d.low - d.step / 2, top + d.step / 2
        if n == 1:
            return math.log(d.low) - 0.5, math.log(d.low) + 0.5
        below = (math.log(d.low + d.step) - math.log(d.low)) / 2
        above = (math.log(top) - math.log(top - d.step)) / 2
        return math.log(d.low) - below, math.log(top) + above

    def decode(self, u: float) -> Any:
        """Value of this parameter at unit coordinate ``u`` (clipped into ``[0, 1]``)."""
        u = min(max(float(u), 0.0), 1.0)
        d = self.domain
        if isinstance(d, Categorical):
            return min(int(u * len(d.choices)), len(d.choices) - 1)
        lo, hi = self._bounds()
        t = lo + u * (hi - lo)
        x = math.exp(t) if d.log else t
        n = self.n_grid
        if n is None:
            return float(min(max(x, d.low), d.high))
        k = min(max(int(round((x - d.low) / d.step)), 0), n - 1)
        if isinstance(d, Int):
            return int(d.low + k * d.step)
        if k == 0:
            return float(d.low)
        # Round away float noise so 0.1 * 3 prints as 0.3, as users expect.
        return _snap(d.low + k * d.step, d.step, max(abs(d.low), abs(d.high)))

    def encode(self, value: Any) -> float:
        """Unit coordinate of ``value`` (a choice index for categoricals)."""
        d = self.domain
        if isinstance(d, Categorical):
            return (int(value) + 0.5) / len(d.choices)
        lo, hi = self._bounds()
        if hi == lo:
            return 0.5
        v = float(value)
        if d.log:
            v = math.log(max(v, 1e-300))
        return min(max((v - lo) / (hi - lo), 0.0), 1.0)

    def encode_many(self, values: Sequence[Any]) -> np.ndarray:
        """``(n,)`` unit coordinates of ``n`` values; element ``i`` equals ``encode(values[i])``
        exactly (same operations, the logarithm from ``math`` as in :meth:`encode`)."""
        d = self.domain
        if isinstance(d, Categorical):
            return (np.array([int(v) for v in values], dtype=float) + 0.5) / len(d.choices)
        lo, hi = self._bounds()
        if hi == lo:
            return np.full(len(values), 0.5)
        if d.log:
            v = np.array([math.log(max(float(x), 1e-300)) for x in values], dtype=float)
        else:
            v = np.array([float(x) for x in values], dtype=float)
        return np.minimum(np.maximum((v - lo) / (hi - lo), 0.0), 1.0)

    def contains(self, value: Any) -> bool:
        """Whether ``value`` lies in the domain (for categoricals: a valid choice index)."""
        d = self.domain
        if isinstance(d, Categorical):
            return isinstance(value, (int, np.integer)) and 0 <= value < len(d.choices)
        if isinstance(d, Int) and (isinstance(value, bool) or not isinstance(value, (int, np.integer))):
            return False
        if isinstance(value, bool) or not isinstance(value, (int, float, np.number)) or not math.isfinite(value):
            return False
        n = self.n_grid
        if n is not None:
            # On the grid up to float noise: Ray's quniform(0, 0.3, 0.1) draws 3 * 0.1 =
            # 0.30000000000000004, which is the grid point 0.3, not a value above the bound.
            k = (value - d.low) / d.step
            j = round(k)
            return abs(k - j) < 1e-6 and 0 <= j <= n - 1
        return d.low <= value <= d.high


# Discrete parameters with more grid points than this are searched as continuous ones by the
# cores (decoding still snaps them to the grid).
MAX_GRID = 4096


def param_dim(p: Param) -> Dim:
    """The :class:`~search_algs.core.dims.Dim` of one parameter: a grid point decodes from the
    cell between the midpoints to its neighbours, midpoints taken on the value scale (so on
    log grids the cells are unequal in ``u``)."""
    if p.is_categorical:
        return Dim(CATEGORICAL, n_choices=p.n_choices, condition=p.condition)
    n = p.n_grid
    if n is None or n > MAX_GRID:
        return Dim(DISCRETE if n is not None else CONTINUOUS, condition=p.condition)
    d = p.domain
    grid = np.array([p.encode(d.low + k * d.step) for k in range(n)])
    edges = np.array([0.0, *(p.encode(d.low + (k - 0.5) * d.step) for k in range(1, n)), 1.0])
    if np.any(np.diff(grid) <= 0) or np.any(np.diff(edges) < 0):  # degenerate encodings: decoding snaps
        return Dim(DISCRETE, condition=p.condition)
    return Dim(DISCRETE, grid=grid, edges=edges, condition=p.condition)


@dataclass
class Space:
    """A validated, flattened search space. Build one with :meth:`Space.of`."""

    template: Any
    params: tuple[Param, ...] = field(init=False)

    def __post_init__(self):
        params: list[Param] = []
        self._node_index: dict[int, int] = {}  # id(domain node in template) -> param index
        self._contexts: list[set] = []  # per param: enclosing (choice index, branch) of each use
        self._collect(self.template, "", None, params)
        params = self._conditions(params)
        names = [p.name for p in params]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise SpaceError(
                f"search space: parameter names must be unique, got duplicates {dupes}; "
                f"rename them"
            )
        if not params:
            raise SpaceError(
                "search space: it holds no parameter to tune (only constants), got "
                f"{_fmt(self.template)}; add at least one float, int or choice parameter"
            )
        self.params = tuple(params)
        self._index = {p.name: i for i, p in enumerate(self.params)}
        self._dims: tuple[Dim, ...] | None = None

    def __reduce__(self):
        # The flattened view is keyed by the identity of template nodes, which pickling does
        # not keep: rebuild it from the template (a copy reproduces the same params, in order).
        return (type(self), (self.template,))

    # ---- construction ---------------------------------------------------------------

    @classmethod
    def of(cls, obj: Any) -> "Space":
        """Build a space from a :class:`Space`, a template of our domains, a Ray Tune
        ``param_space`` or a hyperopt ``hp.*`` space (detected by type)."""
        if isinstance(obj, Space):
            return obj
        converters.check_spec_mappings(obj, "")
        return cls(converters.to_template(obj))

    def _collect(self, node: Any, path: str, context: tuple[int, int] | None, out: list[Param]) -> None:
        """Append the parameters under ``node``; ``context`` is the innermost enclosing
        ``(choice parameter index, branch)``, ``None`` at the top level."""
        if _is_domain(node):
            if id(node) in self._node_index:  # one domain object used twice is one shared parameter
                self._contexts[self._node_index[id(node)]].add(context)
                return
            name = node.label or path or "value"
            node.validate(name)
            index = len(out)
            out.append(Param(name, node))
            self._node_index[id(node)] = index
            self._contexts.append({context})
            if isinstance(node, Categorical):
                for k, choice in enumerate(node.choices):
                    if _contains_domain(choice):
                        self._collect(choice, f"{name}[{k}]", (index, k), out)
        elif isinstance(node, Mapping):
            for key, value in node.items():
                if not isinstance(key, str):
                    raise SpaceError(
                        f"search space: keys must be strings, got {_fmt(key)} at '{path or '<root>'}'; "
                        f"use string keys"
                    )
                self._collect(value, f"{path}/{key}" if path else key, context, out)
        elif isinstance(node, (list, tuple)):
            for k, value in enumerate(node):
                self._collect(value, f"{path}/{k}" if path else str(k), context, out)

    def _conditions(self, params: list[Param]) -> list[Param]:
        """Give every parameter its activation condition (parents come first).

        A domain object used in several places (as hyperopt nodes may be) is active when
        any use is: that is expressible only when one use is at the top level, or the uses
        cover every branch of one choice (then it is active exactly when that choice is).
        """
        conditions: list[tuple] = []
        for i, p in enumerate(params):
            contexts = self._contexts[i]
            parents = {c[0] for c in contexts if c is not None}
            if None in contexts:
                condition: tuple = ()
            elif len(contexts) == 1:
                ((parent, k),) = contexts
                condition = conditions[parent] + ((parent, k),)
            elif len(parents) == 1 and {k for _, k in contexts} == set(range(params[min(parents)].n_choices)):
                condition = conditions[min(parents)]
            else:
                uses = sorted(f"{params[c[0]].name}={c[1]}" for c in contexts)
                raise SpaceError(
                    f"parameter '{p.name}': one domain is used under the branches {uses}, which are "
                    f"not all the branches of one choice, so when it is active cannot be expressed; "
                    f"use a separate domain (a separate hp node and label) in each branch"
                )
            conditions.append(condition)
        return [Param(p.name, p.domain, c) for p, c in zip(params, conditions)]

    # ---- basic facts ----------------------------------------------------------------

    @property
    def dim(self) -> int:
        return len(self.params)

    @property
    def names(self) -> list[str]:
        return [p.name for p in self.params]

    @property
    def is_conditional(self) -> bool:
        return any(p.condition for p in self.params)

    def dims(self) -> tuple[Dim, ...]:
        """The cores' view of the parameters (:class:`~search_algs.core.dims.Dim`, one per
        parameter, in order): kinds, choice counts, grids and their cells (unit coordinates),
        conditions. Every core (TPE, GP-EI, KG) takes this tuple."""
        if self._dims is None:
            self._dims = tuple(param_dim(p) for p in self.params)
        return self._dims

    def index(self, name: str) -> int:
        return self._index[name]

    # ---- views of a point -------------------------------------------------------------

    def active(self, flat: Mapping[str, Any]) -> list[bool]:
        """Which parameters are active given the flat values (choice indices) of their parents."""
        out = []
        for p in self.params:
            out.append(all(
                self.params[parent].name in flat and flat[self.params[parent].name] == k
                for parent, k in p.condition
            ))
        return out

    def decode_unit(self, u: np.ndarray) -> dict[str, Any]:
        """Flat ``{name: value}`` of the active parameters at unit vector ``u`` (inactive
        coordinates are ignored, ``NaN`` allowed there). Categoricals give choice indices."""
        u = np.asarray(u, dtype=float)
        if u.shape != (self.dim,):
            raise ValueError(f"unit vector must have shape ({self.dim},), got {u.shape}")
        flat: dict[str, Any] = {}
        for p in self.params:  # parents come first, so their values are known
            if all(flat.get(self.params[parent].name) == k for parent, k in p.condition):
                if not np.isfinite(u[self._index[p.name]]):
                    raise ValueError(f"unit vector has no value for active parameter '{p.name}'")
                flat[p.name] = p.decode(u[self._index[p.name]])
        return flat

    def encode_flat(self, flat: Mapping[str, Any]) -> np.ndarray:
        """Unit vector of flat values; ``NaN`` for parameters that are inactive or missing."""
        u = np.full(self.dim, np.nan)
        for i, (p, on) in enumerate(zip(self.params, self.active(flat))):
            if on and p.name in flat:
                u[i] = p.encode(flat[p.name])
        return u

    def encode_flats(self, flats: Sequence[Mapping[str, Any]]) -> np.ndarray:
        """``(n, d)`` unit vectors of ``n`` flat points, parameter by parameter; row ``i``
        equals ``encode_flat(flats[i])`` exactly, at a fraction of the cost for large ``n``."""
        n = len(flats)
        u = np.full((n, self.dim), np.nan)
        conditional = self.is_conditional
        active = [self.active(f) for f in flats] if conditional else None
        for i, p in enumerate(self.params):
            rows = [r for r, f in enumerate(flats) if p.name in f and (not conditional or active[r][i])]
            if rows:
                u[rows, i] = p.encode_many([flats[r][p.name] for r in rows])
        return u

    def to_config(self, flat: Mapping[str, Any]) -> Any:
        """The nested config the trainable receives, from flat values."""
        return self._materialise(self.template, flat)

    def _materialise(self, node: Any, flat: Mapping[str, Any]) -> Any:
        if _is_domain(node):
            p = self.params[self._node_index[id(node)]]
            value = flat[p.name]
            if isinstance(node, Categorical):
                return self._materialise(node.choices[value], flat)
            return value
        if isinstance(node, Mapping):
            return {k: self._materialise(v, flat) for k, v in node.items()}
        if isinstance(node, list):
            return [self._materialise(v, flat) for v in node]
        if isinstance(node, tuple):
            return tuple(self._materialise(v, flat) for v in node)
        return node

    def to_flat(self, config: Any) -> dict[str, Any]:
        """Flat values of a nested config (the inverse of :meth:`to_config`).

        Raises :class:`SpaceError` naming the parameter when a value lies outside its domain.
        """
        flat: dict[str, Any] = {}
        self._read(self.template, config, "", flat)
        return flat

    def _read(self, node: Any, value: Any, path: str, flat: dict) -> None:
        if _is_domain(node):
            p = self.params[self._node_index[id(node)]]
            if isinstance(node, Categorical):
                k = self._match_choice(node, value, path)
                if k is None:
                    raise SpaceError(
                        f"parameter '{p.name}': value {_fmt(value)} is not one of the choices "
                        f"{list(node.choices)}; use one of them"
                    )
                flat[p.name] = k
                self._read(node.choices[k], value, path, flat)
                return
            if isinstance(value, bool) or not isinstance(value, (int, float, np.number)):
                raise SpaceError(
                    f"parameter '{p.name}': expected a number, got {_fmt(value)}"
                )
            if isinstance(node, Int):
                if not math.isfinite(float(value)) or float(value) != int(value):
                    raise SpaceError(f"parameter '{p.name}': expected an integer, got {_fmt(value)}")
                value = int(value)
            if not p.contains(value):
                raise SpaceError(
                    f"parameter '{p.name}': value {_fmt(value)} lies outside its domain {node}; "
                    f"use a value inside the bounds (and on the step grid)"
                )
            flat[p.name] = float(value) if isinstance(node, Float) else value
        elif isinstance(node, Mapping):
            if not isinstance(value, Mapping):
                raise SpaceError(f"config at '{path or '<root>'}': expected a dict, got {_fmt(value)}")
            for key, sub in node.items():
                if _contains_domain(sub):
                    if key not in value:
                        raise SpaceError(
                            f"config: missing key '{path + '/' if path else ''}{key}'; give a value for it"
                        )
                    self._read(sub, value[key], f"{path}/{key}" if path else key, flat)
        elif isinstance(node, (list, tuple)):
            if not isinstance(value, (list, tuple)) or len(value) != len(node):
                raise SpaceError(
                    f"config at '{path or '<root>'}': expected a list of {len(node)} items, got {_fmt(value)}"
                )
            for k, sub in enumerate(node):
                if _contains_domain(sub):
                    self._read(sub, value[k], f"{path}/{k}" if path else str(k), flat)

    def _match_choice(self, node: Categorical, value: Any, path: str) -> int | None:
        for k, choice in enumerate(node.choices):
            if not _contains_domain(choice):
                if _equal(choice, value):
                    return k
        # Branches of the same shape (hp.choice over two hp.uniform ranges) are told apart by
        # whether the value reads inside them; with none, the first of that shape reports why.
        first = None
        for k, choice in enumerate(node.choices):
            if _contains_domain(choice) and _shape_matches(choice, value):
                try:
                    self._read(choice, value, path, {})
                except SpaceError:
                    first = k if first is None else first
                    continue
                return k
        return first

    # ---- checking a user's point ------------------------------------------------------

    def check_point(self, point: Any) -> None:
        """Refuse a (possibly partial) config that names keys the space does not have or holds
        values outside their domains, as ``points_to_evaluate`` may; missing keys are fine
        (the searcher draws them). Raises :class:`SpaceError` naming the key path, the value
        and the fix."""
        if not isinstance(point, Mapping):
            raise SpaceError(
                f"expected a mapping of parameter values like {{{self.names[0]!r}: ...}}, got "
                f"{_fmt(point)}; give each point as a (partial) config"
            )
        self._check_point(self.template, point, "")

    def _check_point(self, node: Any, value: Any, path: str) -> None:
        where = path or "<root>"
        if _is_domain(node):
            if isinstance(node, Categorical):
                branch_error = None
                for choice in node.choices:
                    if not _contains_domain(choice):
                        if _equal(choice, value):
                            return
                    else:
                        try:
                            self._check_point(choice, value, path)
                            return
                        except SpaceError as exc:
                            branch_error = branch_error or exc
                if branch_error is not None and isinstance(value, (Mapping, list, tuple)):
                    raise branch_error  # it reads as a branch: say what is wrong inside it
                plain = [c if not _contains_domain(c) else f"<branch {k}>" for k, c in enumerate(node.choices)]
                raise SpaceError(
                    f"'{where}': value {_fmt(value)} is not among the choices {_fmt(plain)}; "
                    f"use one of them"
                )
            p = self.params[self._node_index[id(node)]]
            if isinstance(value, bool) or not isinstance(value, (int, float, np.number)):
                raise SpaceError(f"'{where}': expected a number in {_domain_text(node)}, got {_fmt(value)}; "
                                 f"give a number inside the bounds")
            if isinstance(node, Int) and (not math.isfinite(float(value)) or float(value) != int(value)):
                raise SpaceError(f"'{where}': expected an integer in {_domain_text(node)}, got {_fmt(value)}; "
                                 f"give a whole number inside the bounds")
            if not p.contains(int(value) if isinstance(node, Int) else value):
                raise SpaceError(
                    f"'{where}': value {_fmt(value)} lies outside {_domain_text(node)}; use a value "
                    f"inside the bounds{' (and on the step grid)' if p.n_grid is not None else ''}"
                )
            return
        if isinstance(node, Mapping):
            if not isinstance(value, Mapping):
                raise SpaceError(f"'{where}': expected a mapping with keys {sorted(map(str, node))}, got "
                                 f"{_fmt(value)}")
            for key, sub in value.items():
                sub_path = f"{path}/{key}" if path else str(key)
                if key not in node:
                    hint = closest(str(key), [str(k) for k in node])
                    raise SpaceError(
                        f"'{sub_path}': unknown key {_fmt(key)}; the space has {sorted(map(str, node))}"
                        + (f"; did you mean {hint!r}?" if hint else "; drop it or add it to the space")
                    )
                self._check_point(node[key], sub, sub_path)
            return
        if isinstance(node, (list, tuple)):
            if not isinstance(value, (list, tuple)) or len(value) != len(node):
                raise SpaceError(f"'{where}': expected a list of {len(node)} items, got {_fmt(value)}")
            for k, (sub_node, sub) in enumerate(zip(node, value)):
                self._check_point(sub_node, sub, f"{path}/{k}" if path else str(k))
            return
        if not _equal(node, value):
            # A constant: the trainable always gets the space's value, so a different one here
            # would be dropped without a word.
            raise SpaceError(
                f"'{where}': {_fmt(value)} differs from the constant {_fmt(node)} of the space, and "
                f"constants are not tuned; drop the key from the point or make it a parameter"
            )

    # ---- conveniences -----------------------------------------------------------------

    def sample_flat(self, rng: np.random.Generator) -> dict[str, Any]:
        """Draw a point from the prior (uniform in the unit cube; categorical weights honoured)."""
        flat: dict[str, Any] = {}
        for p in self.params:
            if all(flat.get(self.params[parent].name) == k for parent, k in p.condition):
                d = p.domain
                if isinstance(d, Categorical) and d.weights is not None:
                    w = np.asarray(d.weights) / sum(d.weights)
                    flat[p.name] = int(rng.choice(len(w), p=w))
                else:
                    flat[p.name] = p.decode(rng.random())
        return flat

    def sample(self, rng: np.random.Generator) -> Any:
        return self.to_config(self.sample_flat(rng))

    def canonical(self, config: Any) -> Any:
        """The config snapped onto the space (grid, integer casts, inactive parts dropped)."""
        return self.to_config(self.decode_unit(np.nan_to_num(self.encode_flat(self.to_flat(config)), nan=0.5)))

    def describe(self) -> list[dict]:
        """A plain-data description of every parameter (for logs and MLflow)."""
        rows = []
        for p in self.params:
            d = p.domain
            row: dict[str, Any] = {"name": p.name, "type": type(d).__name__.lower()}
            if isinstance(d, Categorical):
                row["choices"] = [c if not _contains_domain(c) else f"<branch {k}>" for k, c in enumerate(d.choices)]
            else:
                row.update(low=d.low, high=d.high, log=d.log, step=d.step)
            if p.condition:
                row["active_if"] = {self.params[i].name: k for i, k in p.condition}
            rows.append(row)
        return rows

    def __iter__(self) -> Iterator[Param]:
        return iter(self.params)

    def __len__(self) -> int:
        return self.dim


def _domain_text(d: Any) -> str:
    kind = "an integer" if isinstance(d, Int) else "a float"
    extra = (" log-scaled" if d.log else "") + (f" on a step of {d.step}" if d.step not in (None, 1) else "")
    return f"[{_fmt(d.low)}, {_fmt(d.high)}] ({kind}{extra})"


def _equal(a: Any, b: Any) -> bool:
    if isinstance(a, bool) != isinstance(b, bool):  # True == 1 in Python, not in a search space
        return False
    try:
        return bool(np.all(a == b))
    except Exception:  # noqa: BLE001 - incomparable values are simply unequal
        return False


def _shape_matches(template: Any, value: Any) -> bool:
    """Whether ``value`` could have been produced by ``template`` (constants equal, keys match)."""
    if _is_domain(template):
        if isinstance(template, Categorical):
            return any(_shape_matches(c, value) if _contains_domain(c) else _equal(c, value) for c in template.choices)
        return isinstance(value, (int, float, np.number)) and not isinstance(value, bool)
    if isinstance(template, Mapping):
        return isinstance(value, Mapping) and set(template) == set(value) and all(
            _shape_matches(template[k], value[k]) for k in template
        )
    if isinstance(template, (list, tuple)):
        return isinstance(value, (list, tuple)) and len(template) == len(value) and all(
            _shape_matches(t, v) for t, v in zip(template, value)
        )
    return _equal(template, value)
