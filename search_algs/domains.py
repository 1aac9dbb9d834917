"""The three kinds of search-space leaf: :class:`Float`, :class:`Int`, :class:`Categorical`.

The bottom of ``search_algs``' space layer: imports nothing of the package but the errors.
:mod:`search_algs.space` flattens templates of these into :class:`~search_algs.space.Param`
tuples; :mod:`search_algs.converters` builds them from YAML specs, Ray Tune domains and
hyperopt spaces. Neither imports the other's private names (issue #18: the two used to
import each other).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

import numpy as np

from search_algs.errors import SpaceError, describe_value

__all__ = ["Float", "Int", "Categorical", "Domain", "MAX_INT", "snap", "is_domain", "contains_domain"]


# Largest integer bound: every integer up to 2**53 is exactly one float64.
MAX_INT = 2**53


def _fmt(value: Any) -> str:
    """``repr(value)`` for a message, also for values Python will not print: an integer of
    more than 4300 digits raises ``ValueError`` in ``repr`` (CPython's int-to-str limit)."""
    return describe_value(value)


def snap(value: float, step: float, scale: float = 0.0) -> float:
    """``value`` on a grid of ``step`` with float noise removed (``0.1 * 3`` gives ``0.3``):
    rounded to 12 significant digits of ``scale`` (the grid's magnitude, at least ``|value|``),
    but never coarser than 9 digits below ``step``, so grid points never merge."""
    scale = max(abs(value), abs(scale), step)
    decimals = max(11 - math.floor(math.log10(scale)), 9 - math.floor(math.log10(step)))
    return float(round(value, decimals))


@dataclass(frozen=True)
class Float:
    """A real number in ``[low, high]``, optionally log-scaled and/or on a grid of ``step``."""

    low: float
    high: float
    log: bool = False
    step: float | None = None
    label: str | None = field(default=None, compare=False)

    def validate(self, name: str) -> None:
        for bound_name, bound in (("low", self.low), ("high", self.high)):
            if not isinstance(bound, (int, float)) or isinstance(bound, bool) or not math.isfinite(bound):
                raise SpaceError(
                    f"parameter '{name}': '{bound_name}' must be a finite number, got {_fmt(bound)}; "
                    f"give finite numeric bounds"
                )
        if self.low > self.high:
            raise SpaceError(
                f"parameter '{name}': low must be <= high, got low={self.low}, high={self.high}; "
                f"swap the bounds"
            )
        if not math.isfinite(float(self.high) - float(self.low)):
            # The unit-cube encoding works on high - low: an infinite width decodes every
            # point to one bound (Float(-1e308, 1e308) would always sample 1e308).
            raise SpaceError(
                f"parameter '{name}': the width high - low must be a finite number, got "
                f"low={self.low}, high={self.high} (width overflows to inf); use bounds less than "
                f"about 1.7e308 apart, e.g. rescale the parameter or use log: true with low > 0"
            )
        if self.log and self.low <= 0:
            raise SpaceError(
                f"parameter '{name}': a log-scaled range needs low > 0, got low={self.low}; "
                f"use a positive lower bound or log: false"
            )
        if self.step is not None:
            if (isinstance(self.step, bool) or not isinstance(self.step, (int, float))
                    or not self.step > 0 or not math.isfinite(self.step)):
                raise SpaceError(
                    f"parameter '{name}': step must be a positive number, got {_fmt(self.step)}; "
                    f"use step > 0 or leave it out"
                )
            if self.step > self.high - self.low + 1e-12 * max(1.0, abs(self.high)) and self.low != self.high:
                raise SpaceError(
                    f"parameter '{name}': step={self.step} is larger than the range "
                    f"[{self.low}, {self.high}]; use a smaller step"
                )


@dataclass(frozen=True)
class Int:
    """An integer in ``[low, high]`` (both inclusive) on a grid of ``step``, optionally log-scaled."""

    low: int
    high: int
    log: bool = False
    step: int = 1
    label: str | None = field(default=None, compare=False)

    def validate(self, name: str) -> None:
        for bound_name, bound in (("low", self.low), ("high", self.high), ("step", self.step)):
            if isinstance(bound, bool) or not isinstance(bound, (int, np.integer)):
                raise SpaceError(
                    f"parameter '{name}': '{bound_name}' of an integer parameter must be an int, "
                    f"got {_fmt(bound)}; use a whole number or a float parameter"
                )
            if abs(int(bound)) > MAX_INT:
                # The numerical cores encode every value as a float64 in [0, 1]: above 2**53
                # neighbouring integers are the same float, so the grid would collapse.
                raise SpaceError(
                    f"parameter '{name}': '{bound_name}' of an integer parameter must lie within "
                    f"+-2**53 ({MAX_INT}), got {_fmt(bound)}; use smaller bounds, or a float "
                    f"parameter with log: true for a range this wide"
                )
        if self.low > self.high:
            raise SpaceError(
                f"parameter '{name}': low must be <= high, got low={self.low}, high={self.high}; "
                f"swap the bounds"
            )
        if self.log and self.low <= 0:
            raise SpaceError(
                f"parameter '{name}': a log-scaled range needs low > 0, got low={self.low}; "
                f"use a positive lower bound or log: false"
            )
        if self.step < 1:
            raise SpaceError(
                f"parameter '{name}': step must be >= 1, got step={self.step}; use a positive step"
            )
        if self.step > self.high - self.low and self.low != self.high:
            raise SpaceError(
                f"parameter '{name}': step={self.step} is larger than the range "
                f"[{self.low}, {self.high}]; use a smaller step"
            )


@dataclass(frozen=True)
class Categorical:
    """One of ``choices``. A choice may be a template holding domains (a conditional branch).

    ``weights`` (optional, e.g. from hyperopt's ``hp.pchoice``) bias random sampling only;
    encoding stays uniform. ``label`` (optional, on every domain) names the parameter; by
    default it is named by its path in the template (``a/b``, ``model[1]/depth``).
    """

    choices: tuple
    weights: tuple | None = None
    label: str | None = field(default=None, compare=False)

    def __init__(self, choices: Sequence, weights: Sequence[float] | None = None, label: str | None = None):
        object.__setattr__(self, "choices", tuple(choices) if isinstance(choices, (list, tuple)) else choices)
        object.__setattr__(self, "weights", None if weights is None else tuple(float(w) for w in weights))
        object.__setattr__(self, "label", label)

    def validate(self, name: str) -> None:
        if not isinstance(self.choices, tuple) or len(self.choices) == 0:
            raise SpaceError(
                f"parameter '{name}': choices must be a non-empty list, got {_fmt(self.choices)}; "
                f"list at least one value"
            )
        if self.weights is not None:
            w = np.asarray(self.weights)
            if len(w) != len(self.choices) or np.any(~np.isfinite(w)) or np.any(w < 0) or w.sum() <= 0:
                raise SpaceError(
                    f"parameter '{name}': weights must be {len(self.choices)} non-negative numbers "
                    f"with a positive sum, got {list(self.weights)}; fix the weights"
                )


Domain = (Float, Int, Categorical)


def is_domain(obj: Any) -> bool:
    return isinstance(obj, Domain)


def contains_domain(obj: Any) -> bool:
    if is_domain(obj):
        return True
    if isinstance(obj, Mapping):
        return any(contains_domain(v) for v in obj.values())
    if isinstance(obj, (list, tuple)):
        return any(contains_domain(v) for v in obj)
    return False
