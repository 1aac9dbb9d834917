"""Translate user-facing space descriptions into a template of our domains.

Three sources, each with its own edge conventions, all mapped onto inclusive bounds:

* YAML/dict specs: ``{type: float|int|choice, ...}`` leaves inside nested dicts.
* Ray Tune domains: ``randint``/``lograndint`` (and ``qrandint`` with ``q == 1``) EXCLUDE
  their upper bound; ``qrandint``/``qlograndint`` with ``q > 1`` and ``quniform``/
  ``qloguniform`` INCLUDE it, on the multiples of ``q`` inside the bounds.
* hyperopt ``hp.*``: ``randint`` excludes its upper bound; ``quniform(l, h, q)`` draws
  ``round(U(l, h) / q) * q``, so its values are the multiples ``k q`` with
  ``l / q - 1/2 < k < h / q + 1/2`` (``round(l / q) q`` to ``round(h / q) q`` except where a
  bound sits exactly half-way between multiples); ``loguniform`` bounds are given in log space.
"""

from __future__ import annotations

import math
from typing import Any, Mapping

from search_algs.domains import MAX_INT, Categorical, Float, Int, is_domain, snap
from search_algs.errors import SpaceError, closest, describe_value

SPEC_TYPES = {
    "float": "float", "uniform": "float", "loguniform": "float", "real": "float",
    "int": "int", "integer": "int", "randint": "int",
    "choice": "choice", "categorical": "choice",
}


def to_template(obj: Any) -> Any:
    """Template of our domains from a YAML/dict spec, a Ray ``param_space`` or a hyperopt space."""
    if _is_hyperopt(obj):
        return from_hyperopt(obj)
    return _convert(obj, "", {})


def _is_hyperopt(obj: Any) -> bool:
    return type(obj).__module__.startswith("hyperopt.")


def _is_ray_domain(obj: Any) -> bool:
    return type(obj).__module__ == "ray.tune.search.sample"


def _join(path: str, key: Any) -> str:
    return f"{path}/{key}" if path else str(key)


def _convert(node: Any, path: str, hp_memo: dict | None = None) -> Any:
    """``hp_memo`` is shared by every hyperopt node under one container, so an ``hp`` node
    used in two places stays one parameter (as in hyperopt)."""
    if hp_memo is None:
        hp_memo = {}
    if is_domain(node):
        return node
    if _is_ray_domain(node):
        return from_ray_domain(node, path)
    if _is_hyperopt(node):
        return from_hyperopt(node, _memo=hp_memo)
    if isinstance(node, Mapping):
        if "grid_search" in node and len(node) == 1:
            raise SpaceError(
                f"parameter '{path}': grid_search is not supported, got {dict(node)}; use a "
                f"choice over the same values (every searcher then explores them)"
            )
        if "type" in node and isinstance(node["type"], str) and node["type"] in SPEC_TYPES:
            return from_spec_leaf(node, path)
        return {k: _convert(v, _join(path, k), hp_memo) for k, v in node.items()}
    if isinstance(node, list):
        return [_convert(v, _join(path, k), hp_memo) for k, v in enumerate(node)]
    if isinstance(node, tuple):
        return tuple(_convert(v, _join(path, k), hp_memo) for k, v in enumerate(node))
    if callable(node):
        raise SpaceError(
            f"parameter '{path}': a function (e.g. tune.sample_from) cannot be searched, got "
            f"{node!r}; use a float, int or choice domain"
        )
    return node


# ---- YAML / dict spec -----------------------------------------------------------------

_SPEC_KEYS = {
    "float": {"type", "low", "high", "log", "step"},
    "int": {"type", "low", "high", "log", "step"},
    "choice": {"type", "values", "weights"},
}


def from_spec_leaf(node: Mapping, path: str) -> Any:
    """One ``{type: ...}`` leaf of a YAML spec. Bounds are inclusive for both floats and ints."""
    kind = SPEC_TYPES[node["type"]]
    path = path or "value"  # a bare leaf as the whole space is named as Space names it
    unknown = set(node) - _SPEC_KEYS[kind]
    if unknown:
        raise SpaceError(
            f"parameter '{path}': unknown keys {sorted(unknown)} for type '{node['type']}', got "
            f"{dict(node)}; allowed keys are {sorted(_SPEC_KEYS[kind])}"
        )
    if kind == "choice":
        if "values" not in node:
            raise SpaceError(
                f"parameter '{path}': a choice needs 'values', a non-empty list, got {dict(node)}; add it"
            )
        values = node["values"]
        if not isinstance(values, list) or not values:
            raise SpaceError(
                f"parameter '{path}': 'values' must be a non-empty list, got {values!r}; list the choices"
            )
        weights = node.get("weights")
        if weights is not None and (not isinstance(weights, list) or not all(
                isinstance(w, (int, float)) and not isinstance(w, bool) for w in weights)):
            raise SpaceError(
                f"parameter '{path}': 'weights' must be a list of numbers, got {weights!r}; "
                f"give one number per value"
            )
        choices = [_convert(v, f"{path}[{k}]") for k, v in enumerate(values)]
        return Categorical(choices, weights, label=path)
    for key in ("low", "high"):
        if key not in node:
            raise SpaceError(f"parameter '{path}': type '{node['type']}' needs '{key}', got {dict(node)}; add it")
    log = node.get("log", node["type"] == "loguniform")
    if not isinstance(log, bool):
        raise SpaceError(f"parameter '{path}': 'log' must be true or false, got {log!r}")
    low, high = node["low"], node["high"]
    for key, value in (("low", low), ("high", high)):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise SpaceError(
                f"parameter '{path}': '{key}' must be a number, got {value!r}; write it as a number "
                f"(YAML reads 1e-3 as a string: write 1.0e-3)"
            )
    if kind == "int":
        step = node.get("step", 1)
        for key, value in (("low", low), ("high", high), ("step", step)):
            if isinstance(value, float) and not value.is_integer() or isinstance(value, bool) or not isinstance(value, (int, float)):
                raise SpaceError(
                    f"parameter '{path}': '{key}' of an int parameter must be a whole number, got {value!r}"
                )
        return Int(int(low), int(high), log, int(step), label=path)
    return Float(float(low), float(high), log, node.get("step"), label=path)


# ---- Ray Tune -------------------------------------------------------------------------

def _grid(low: float, high: float, q: float) -> tuple[float, float]:
    """Smallest and largest multiples of ``q`` inside ``[low, high]``."""
    lo = math.ceil(round(low / q, 9)) * q
    hi = math.floor(round(high / q, 9)) * q
    return snap(lo, q), snap(hi, q)


def from_ray_domain(domain: Any, path: str) -> Any:
    """One Ray Tune domain, with Ray's own sampling semantics on the bounds."""
    from ray.tune.search import sample as rs

    if isinstance(domain, rs.Categorical):
        return Categorical([_convert(c, f"{path}[{k}]") for k, c in enumerate(domain.categories)], label=path)
    if isinstance(domain, rs.Function):
        raise SpaceError(
            f"parameter '{path}': tune.sample_from cannot be searched, got {domain!r}; use a "
            f"float, int or choice domain"
        )
    sampler = domain.get_sampler()
    q = None
    if isinstance(sampler, rs.Quantized):
        q, sampler = sampler.q, sampler.get_sampler()
    if isinstance(sampler, rs.Normal):
        raise SpaceError(
            f"parameter '{path}': tune.randn/qrandn is unbounded, got {domain!r}; use "
            f"tune.uniform(low, high) with bounds"
        )
    log = isinstance(sampler, rs.LogUniform)
    if isinstance(domain, rs.Float):
        if q is None:
            return Float(domain.lower, domain.upper, log, label=path)
        low, high = _grid(domain.lower, domain.upper, q)
        if low > high:
            raise SpaceError(
                f"parameter '{path}': no multiple of q={q} lies in [{domain.lower}, {domain.upper}]; "
                f"widen the bounds or use a smaller q"
            )
        return Float(low, high, log, q, label=path)
    if isinstance(domain, rs.Integer):
        if q is None or q == 1:  # upper bound excluded
            return Int(int(domain.lower), int(domain.upper) - 1, log, label=path)
        low, high = _grid(domain.lower, domain.upper, q)
        if low > high:
            raise SpaceError(
                f"parameter '{path}': no multiple of q={q} lies in [{domain.lower}, {domain.upper}]; "
                f"widen the bounds or use a smaller q"
            )
        return Int(int(low), int(high), log, int(q), label=path)
    raise SpaceError(f"parameter '{path}': unsupported Ray Tune domain {domain!r}")


def to_ray_param_space(template: Any) -> Any:
    """Ray Tune ``param_space`` for a template, for handing the space to Ray's own searchers.

    Conditional spaces have no Ray equivalent and are refused.
    """
    from ray import tune

    def walk(node: Any, path: str) -> Any:
        if isinstance(node, Categorical):
            if any(is_domain(c) or isinstance(c, (Mapping, list, tuple)) and _has_domain(c) for c in node.choices):
                raise SpaceError(
                    f"parameter '{path}': a conditional choice cannot be expressed as a Ray Tune "
                    f"param_space; use one of this project's searchers (e.g. search='random')"
                )
            return tune.choice(list(node.choices))
        if isinstance(node, Float) and node.step is None:
            return tune.loguniform(node.low, node.high) if node.log else tune.uniform(node.low, node.high)
        if isinstance(node, Int) and node.step == 1:
            return (tune.lograndint if node.log else tune.randint)(node.low, node.high + 1)
        if isinstance(node, (Float, Int)):
            # Ray's quantised domains hold the multiples of q; ours hold low + k * step.
            name = node.label or path
            if not math.isclose(node.low / node.step, round(node.low / node.step), abs_tol=1e-9):
                raise SpaceError(
                    f"parameter '{name}': Ray Tune's quantised domains hold the multiples of q, but "
                    f"this grid starts at low={node.low}, not a multiple of step={node.step}; use a "
                    f"low that is a multiple of step, or one of this project's searchers"
                )
            n = int(math.floor((node.high - node.low) / node.step + 1e-9)) + 1
            if isinstance(node, Int):
                top = node.low + (n - 1) * node.step
                return (tune.qlograndint if node.log else tune.qrandint)(node.low, top, node.step)
            top = snap(node.low + (n - 1) * node.step, node.step)
            return (tune.qloguniform if node.log else tune.quniform)(node.low, top, node.step)
        if isinstance(node, Mapping):
            return {k: walk(v, _join(path, k)) for k, v in node.items()}
        if isinstance(node, list):
            return [walk(v, _join(path, k)) for k, v in enumerate(node)]
        if isinstance(node, tuple):
            return tuple(walk(v, _join(path, k)) for k, v in enumerate(node))
        return node

    return walk(template, "")


def _has_domain(node: Any) -> bool:
    if is_domain(node):
        return True
    if isinstance(node, Mapping):
        return any(_has_domain(v) for v in node.values())
    if isinstance(node, (list, tuple)):
        return any(_has_domain(v) for v in node)
    return False


# ---- hyperopt -------------------------------------------------------------------------

_UNBOUNDED = {"normal", "qnormal", "lognormal", "qlognormal"}


def from_hyperopt(space: Any, _memo: dict | None = None) -> Any:
    """Template from a hyperopt space (``hp.*`` expressions inside dicts/lists/tuples).

    Parameters keep their hyperopt labels as names; a node used twice is one parameter.
    """
    from hyperopt.pyll import as_apply

    memo: dict = {} if _memo is None else _memo
    return _walk_pyll(as_apply(space), memo, cast=None)


def _literal(node: Any) -> Any:
    if node.name == "pos_args":
        return [_literal(a) for a in node.pos_args]
    if node.name != "literal":
        raise SpaceError(f"hyperopt space: expected a constant argument, got the expression {node}")
    return node.obj


def _walk_pyll(node: Any, memo: dict, cast: str | None) -> Any:
    key = (id(node), cast)
    if key in memo:
        return memo[key]
    name = node.name
    if name == "literal":
        out = node.obj
    elif name == "dict":
        out = {k: _walk_pyll(v, memo, None) for k, v in node.named_args}
    elif name == "pos_args":
        out = [_walk_pyll(v, memo, None) for v in node.pos_args]
        if getattr(node, "_obj_is_tuple", False):
            out = tuple(out)
    elif name in ("float", "int") and len(node.pos_args) == 1:
        out = _walk_pyll(node.pos_args[0], memo, "int" if name == "int" or cast == "int" else "float")
    elif name == "switch":
        selector = node.pos_args[0]
        label, dist = _param(selector)
        weights = None
        if dist.name == "categorical":
            weights = list(_literal(dist.pos_args[0]) if dist.pos_args else _literal(dict(dist.named_args)["p"]))
        options = [_walk_pyll(opt, memo, None) for opt in node.pos_args[1:]]
        out = Categorical(options, weights, label=label)
    elif name == "hyperopt_param":
        out = _hyperopt_leaf(node, cast)
    else:
        raise SpaceError(
            f"hyperopt space: the expression '{name}' is not supported; use hp.uniform, "
            f"hp.loguniform, hp.quniform, hp.qloguniform, hp.randint, hp.uniformint, hp.choice or "
            f"hp.pchoice (arithmetic on hp nodes cannot be searched)"
        )
    memo[key] = out
    return out


def _param(node: Any) -> tuple[str, Any]:
    if node.name != "hyperopt_param":
        raise SpaceError(f"hyperopt space: expected a labelled hp.* node, got {node.name}")
    return _literal(node.pos_args[0]), node.pos_args[1]


def _hyperopt_leaf(node: Any, cast: str | None) -> Any:
    label, dist = _param(node)
    args = [_literal(a) for a in dist.pos_args]
    kwargs = {k: _literal(v) for k, v in dist.named_args}
    kind = dist.name
    if kind in _UNBOUNDED:
        raise SpaceError(
            f"parameter '{label}': hp.{kind} is unbounded and cannot be encoded; use "
            f"hp.uniform/hp.loguniform with bounds instead"
        )
    if kind == "randint":
        bounds = args + [kwargs[k] for k in ("low", "high", "upper") if k in kwargs]
        low, high = (0, bounds[0]) if len(bounds) == 1 else (bounds[0], bounds[1])
        return Int(int(low), int(high) - 1, label=label)
    low = args[0] if args else kwargs["low"]
    high = args[1] if len(args) > 1 else kwargs["high"]
    q = args[2] if len(args) > 2 else kwargs.get("q")
    if kind == "uniform":
        return Float(float(low), float(high), label=label)
    if kind == "loguniform":
        return Float(math.exp(low), math.exp(high), True, label=label)
    if kind in ("quniform", "qloguniform"):
        log = kind == "qloguniform"
        if isinstance(q, bool) or not isinstance(q, (int, float)) or not q > 0:
            raise SpaceError(f"parameter '{label}': hp.{kind} needs q > 0, got q={q!r}; use a positive q")
        lo, hi = (math.exp(low), math.exp(high)) if log else (low, high)
        # round(x / q) for x in (lo, hi) reaches k iff lo / q - 1/2 < k < hi / q + 1/2; a bound
        # exactly half-way between multiples is reached only at that bound (probability 0).
        k_lo = math.floor(lo / q - 0.5 + 1e-9) + 1
        k_hi = math.ceil(hi / q + 0.5 - 1e-9) - 1
        if k_lo > k_hi:
            raise SpaceError(
                f"parameter '{label}': hp.{kind} with low={low}, high={high}, q={q} holds no "
                f"multiple of q; widen the bounds or use a smaller q"
            )
        if log and k_lo <= 0:
            raise SpaceError(
                f"parameter '{label}': hp.qloguniform rounds values below q/2 to 0, which a log "
                f"scale cannot hold, got low={low} (exp(low)={lo:.6g}) and q={q}; use "
                f"low >= log(q / 2) = {math.log(q / 2):.6g}, or hp.quniform"
            )
        if cast == "int" and float(q).is_integer():
            return Int(int(k_lo * q), int(k_hi * q), log, int(q), label=label)
        return Float(snap(k_lo * q, q), snap(k_hi * q, q), log, float(q), label=label)
    raise SpaceError(f"parameter '{label}': hyperopt distribution '{kind}' is not supported")


# ---- spec mappings that are almost parameter specs ----------------------------------------

# Keys of a YAML parameter spec ({type: float, low: ..., high: ...}); checked by check_spec_mappings.
_SPEC_LEAF_KEYS = {"low", "high", "log", "step", "values", "weights"}


def check_spec_mappings(node: Any, path: str) -> None:
    """Refuse a YAML/dict mapping that looks like a parameter spec but is not a valid one.

    Any mapping that is not a ``{type: float|int|choice, ...}`` leaf is a constant passed to
    the trainable as it is, so a typo (``type: floatt``, ``typ: float``, a missing ``type``)
    would silently make a tuned parameter a constant dict. A mapping counts as a spec attempt
    when its keys are otherwise spec keys (``low``, ``high``, ``values``, ...) or its type-like
    key or value is one letter away from a real one; mappings such as ``{type: adam, lr: 0.1}``
    stay constants. Also refuses spec bounds no float can hold (a 400-digit integer).
    """
    if isinstance(node, (list, tuple)):
        for k, value in enumerate(node):
            check_spec_mappings(value, f"{path}/{k}" if path else str(k))
        return
    if not isinstance(node, Mapping):
        return
    name = path or "value"
    kind = node.get("type")
    if isinstance(kind, str) and kind in SPEC_TYPES:
        for key in ("low", "high", "step"):
            bound = node.get(key)
            if isinstance(bound, int) and not isinstance(bound, bool):
                limit = MAX_INT if SPEC_TYPES[kind] == "int" else 1.7976931348623157e308
                if abs(bound) > limit:
                    raise SpaceError(
                        f"parameter '{name}': '{key}' must lie within "
                        f"{'+-2**53 (9007199254740992)' if limit == MAX_INT else '+-1.8e308'}"
                        f" for type '{kind}', got {describe_value(bound)}; use a smaller bound"
                        + (" (or a float parameter with log: true)" if limit == MAX_INT else "")
                    )
        values = node.get("values")
        if isinstance(values, list):
            for k, value in enumerate(values):
                check_spec_mappings(value, f"{name}[{k}]")
        return
    types = sorted(SPEC_TYPES)
    keys = {str(k) for k in node}
    spec_keys = keys & _SPEC_LEAF_KEYS
    type_keys = [k for k in keys if k != "type" and closest(k.lower(), ["type"], 0.7)]
    if type_keys and "type" not in keys:
        value = node[type_keys[0]] if type_keys[0] in node else None
        if isinstance(value, str) and (value in SPEC_TYPES or closest(value.lower(), types, 0.75)):
            raise SpaceError(
                f"parameter '{name}': key {type_keys[0]!r} looks like a misspelt 'type', got "
                f"{describe_value(dict(node))}; write type: {value if value in SPEC_TYPES else closest(value.lower(), types, 0.75)}"
                f" (a mapping that is not a parameter spec would be passed to the trainable as a constant)"
            )
    if "type" in node:
        close = closest(kind.lower(), types, 0.75) if isinstance(kind, str) else None
        others = keys - {"type"}
        if others and (others <= _SPEC_LEAF_KEYS or (close and spec_keys)):
            raise SpaceError(
                f"parameter '{name}': unknown type {describe_value(kind)} in {describe_value(dict(node))}; "
                + (f"did you mean type: {close}? " if close else "")
                + f"known types are {types} (a mapping that is not a parameter spec would be passed "
                  f"to the trainable as a constant)"
            )
    elif "type" not in keys and keys <= _SPEC_LEAF_KEYS and ({"low", "high"} <= keys or "values" in keys):
        guess = "choice" if "values" in keys else (
            "int" if all(isinstance(node.get(k), int) and not isinstance(node.get(k), bool)
                         for k in ("low", "high")) else "float")
        raise SpaceError(
            f"parameter '{name}': {describe_value(dict(node))} looks like a parameter spec without 'type'; "
            f"add type: {guess} (known types are {types}), or it is passed to the trainable as a constant"
        )
    for key, value in node.items():
        check_spec_mappings(value, f"{path}/{key}" if path else str(key))
