"""The searcher and the scheduler of an experiment, built in one place.

``tuneorch validate``, the pre-flight of ``tuneorch run`` / ``orchestrator.tune()`` /
``orchestrator.run(spec)`` (:meth:`ExperimentSpec.validate`, through :func:`check_components`)
and :func:`orchestrator.api.run` itself all build them here, so what validate accepts is what
run builds: an option a searcher or scheduler refuses is a :class:`SpecError` naming
``search_options`` / ``scheduler_options``, the option, the value received and the fix, before
Ray starts. Building them imports Ray's modules but starts nothing and writes no file (validate
gives the scheduler no ``state_path``).

``spec`` below is an :class:`~orchestrator.spec.ExperimentSpec`; this module reads its fields but
does not import it: ``ExperimentSpec.validate`` builds the components here, so the import goes
one way (spec -> components).
"""

from __future__ import annotations

import inspect
import os
import re
from typing import Any

from orchestrator import registry
from orchestrator.errors import SpecError
from search_algs.errors import SpaceError, describe_value

# Arguments the orchestrator fills in itself; an option of the same name would clash.
_SEARCHER_ARGS = ("space", "metric", "mode", "seed", "points_to_evaluate")
_SCHEDULER_ARGS = ("state_path",)
# Several objectives or constraints (ExperimentSpec.pareto): the searchers and schedulers that
# rank trials by Pareto dominance and feasibility. "tpe", "gp-ei" and "random" build
# search_algs.multi_objective.MultiObjectiveSearch (MOTPE / ParEGO GP-EI / random draws); "asha" ranks a
# rung by non-dominated rank. kg, pbt and hyperband are refused by ExperimentSpec.validate.
PARETO_SEARCHERS = ("random", "tpe", "gp-ei")
PARETO_SCHEDULERS = ("fifo", "asha")
# Names other libraries give our options (Optuna, hyperopt); Ray's scheduler names are accepted as they are.
_ALIASES = {"n_startup_trials": "n_startup",
            "n_initial_points": "n_startup", "n_startup_jobs": "n_startup"}


def check_components(spec: Any) -> None:
    """Build the searcher and the scheduler of ``spec`` and throw them away: the pre-flight."""
    build_searcher(spec)
    build_scheduler(spec, None)


def build_searcher(spec: Any) -> tuple[Any, dict]:
    """The searcher for ``spec`` and the ``param_space`` to give Tune alongside it.

    Our searchers receive the space directly (conditional spaces included) and Tune gets an
    empty ``param_space``; a foreign Ray ``Searcher`` gets the space as Ray domains.
    """
    from ray.tune.search import Searcher

    from search_algs.base import SpaceSearcher
    from search_algs.converters import to_ray_param_space

    search = spec.search
    if isinstance(search, str):
        cls = registry.searcher_class(search)
        options = dict(spec.search_options)
        if getattr(spec, "pareto", False) and search in PARETO_SEARCHERS:
            return _pareto_searcher(spec, options), {}
        _refuse_reserved("search_options", options, _SEARCHER_ARGS, "the orchestrator sets it from the spec's "
                         "field of the same name")
        try:
            searcher = cls(space=spec.space, metric=spec.metric, mode=spec.mode, seed=spec.seed,
                           points_to_evaluate=spec.points_to_evaluate, **options)
        except (TypeError, ValueError) as exc:  # SpaceError is a ValueError too
            raise _option_error("search", spec.search, cls, options, exc, _SEARCHER_ARGS) from None
        return searcher, {}
    _refuse_options_with_object("search", search, spec.search_options)
    if isinstance(search, SpaceSearcher):
        if getattr(spec, "pareto", False) and search.metric is None:
            search._metric, search._mode = spec.objectives, spec.modes
        if search.space is None:
            search.space = spec.space
        if search.metric is None:
            search._metric, search._mode = spec.metric, spec.mode
        return search, {}
    if isinstance(search, Searcher):
        try:
            return search, to_ray_param_space(spec.space.template)
        except SpaceError as exc:
            raise SpecError(f"space: {exc}") from None
    raise SpecError(
        f"search: expected a registry name {sorted(registry.SEARCHERS)} or a ray.tune.search.Searcher, "
        f"got {type(search).__name__}"
    )


def _pareto_searcher(spec: Any, options: dict) -> Any:
    """``search: tpe|gp-ei|random`` with several objectives or constraints: the multi-objective searcher."""
    from search_algs.multi_objective import MultiObjectiveSearch

    _refuse_reserved("search_options", options, _SEARCHER_ARGS + ("constraints", "algorithm"),
                     "the orchestrator sets it from the spec's fields")
    try:
        return MultiObjectiveSearch(space=spec.space, metric=spec.objectives, mode=spec.modes, seed=spec.seed,
                                    points_to_evaluate=spec.points_to_evaluate,
                                    constraints=spec.parsed_constraints(), algorithm=spec.search, **options)
    except (TypeError, ValueError) as exc:
        raise _option_error("search", spec.search, registry.searcher_class(spec.search), options, exc,
                            _SEARCHER_ARGS) from None


def build_scheduler(spec: Any, experiment_path: str | None = None) -> Any:
    """The scheduler for ``spec``. Ours keep their state in ``<experiment_path>/<name>-state.json``
    (Tune never saves a scheduler's state); ``experiment_path=None`` (validation) gives them none."""
    from ray.tune.schedulers import TrialScheduler

    from schedulers.fifo import FIFOScheduler  # Tune's, choosing the next trial in O(trials in flight)

    scheduler = spec.scheduler
    if scheduler is None:
        _refuse_options_with_object("scheduler", None, spec.scheduler_options)
        return FIFOScheduler()
    if isinstance(scheduler, str):
        cls = registry.scheduler_class(scheduler)
        options = dict(spec.scheduler_options)
        if cls is None:
            if options:
                raise SpecError(
                    f"scheduler_options: scheduler {scheduler!r} (Tune's FIFO) takes no options, got "
                    f"{describe_value(options)}; drop them (--set scheduler_options={{}}) or choose a scheduler that "
                    f"takes them, e.g. scheduler: {{name: asha, max_t: 10}}"
                )
            return FIFOScheduler()
        _refuse_reserved("scheduler_options", options, _SCHEDULER_ARGS, "the orchestrator keeps it in the "
                         "experiment folder")
        # Our schedulers declare what the orchestrator gives them (TuneorchScheduler.CONFIGURABLE,
        # through configure()) and their defaults for a spec (SPEC_DEFAULTS); a plain Tune
        # scheduler class gets its options alone.
        for key, value in getattr(cls, "SPEC_DEFAULTS", {}).items():
            options.setdefault(key, value)
        try:
            built = cls(**options)
            configurable = getattr(cls, "CONFIGURABLE", ())
            if configurable:
                given: dict[str, Any] = {}
                if "seed" in configurable:
                    given["seed"] = spec.seed
                if "state_path" in configurable and experiment_path is not None and "://" not in experiment_path:
                    given["state_path"] = os.path.join(experiment_path, f"{scheduler}-state.json")
                if "space" in configurable:  # options naming parameters (PBT's mutable) are checked now
                    given["space"] = spec.space
                built.configure(**given)
            if getattr(spec, "pareto", False) and hasattr(built, "configure_objectives"):
                built.configure_objectives(spec.objectives, spec.modes, spec.parsed_constraints())
            return built
        except (TypeError, ValueError) as exc:
            given_options = {k: v for k, v in options.items() if k in spec.scheduler_options}
            raise _option_error("scheduler", scheduler, cls, given_options, exc, ("space", "seed")) from None
    _refuse_options_with_object("scheduler", scheduler, spec.scheduler_options)
    if isinstance(scheduler, TrialScheduler):
        if getattr(spec, "pareto", False) and hasattr(scheduler, "configure_objectives") \
                and scheduler.metric is None:
            scheduler.configure_objectives(spec.objectives, spec.modes, spec.parsed_constraints())
        return scheduler
    raise SpecError(
        f"scheduler: expected a registry name {sorted(registry.SCHEDULERS)} or a TrialScheduler, "
        f"got {type(scheduler).__name__}"
    )


def _option_error(kind: str, name: str, cls: type, options: dict, exc: Exception,
                  filled: tuple[str, ...]) -> SpecError:
    """One message for an option the class refused: which option, its value, what the class
    takes, and the fix (the class docstring is where each option is explained)."""
    field = f"{kind}_options"
    accepted = _accepted_options(cls, filled)
    doc = f"see {cls.__module__}.{cls.__name__}'s docstring (python -c \"help('{cls.__module__}.{cls.__name__}')\")"
    text = str(exc)
    unexpected = re.search(r"unexpected keyword argument '([^']+)'", text)
    if isinstance(exc, TypeError) and unexpected:
        option = unexpected.group(1)
        near = _ALIASES.get(option) if _ALIASES.get(option) in accepted else _near(option, accepted)
        other = _owners(kind, option, name)
        noun = "searcher" if kind == "search" else "scheduler"
        where = (f"; {option!r} is an option of {', '.join(other)}: to keep options with their {noun}, write "
                 f"{kind}: {{name: {other[0]}, {option}: {describe_value(options.get(option))}}} (overriding {kind} "
                 f"then drops them)") if other and not near else ""
        takes = f"its options are {accepted}" if accepted else f"{cls.__name__} takes no options"
        return SpecError(
            f"{field}.{option}: {cls.__name__} ({kind} {name!r}) takes no option {option!r}, got "
            f"{option}={describe_value(options.get(option))}; "
            + (f"did you mean {near!r}? otherwise " if near else "")
            + f"drop it (--set {field}={{}}); {takes}{where}; {doc}"
        )
    option = next((k for k in options if re.search(rf"\b{re.escape(k)}\b", text)), None)
    if option is not None:
        return SpecError(f"{field}.{option}: {cls.__name__} ({kind} {name!r}) refused {option}="
                         f"{describe_value(options[option])}: {text}; {doc}")
    return SpecError(f"{field}: {cls.__name__} ({kind} {name!r}) refused the options {describe_value(options)}: "
                     f"{text}; {doc}")


def _accepted_options(cls: type, filled: tuple[str, ...]) -> list[str]:
    try:
        params = inspect.signature(cls).parameters
    except (TypeError, ValueError):
        return []
    return [n for n, p in params.items()
            if n not in filled and n not in _SCHEDULER_ARGS and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)]


def _owners(kind: str, option: str, name: str) -> list[str]:
    """Other registered searchers/schedulers that take ``option`` (a leftover from a switch)."""
    table = registry.SEARCHERS if kind == "search" else registry.SCHEDULERS
    out = []
    for other, target in table.items():
        if other == name or target is None:
            continue
        try:
            cls = registry.searcher_class(other) if kind == "search" else registry.scheduler_class(other)
        except ImportError:
            continue
        if option in _accepted_options(cls, ()):
            out.append(other)
    return out


def _near(option: str, accepted: list[str]) -> str | None:
    import difflib

    matches = difflib.get_close_matches(option, accepted, n=1, cutoff=0.7)
    return matches[0] if matches else None


def _refuse_reserved(field: str, options: dict, reserved: tuple[str, ...], why: str) -> None:
    for key in reserved:
        if key in options:
            raise SpecError(f"{field}.{key}: cannot be set here ({why}), got {key}={describe_value(options[key])}; "
                            f"drop it from {field}")


def _refuse_options_with_object(kind: str, obj: Any, options: dict) -> None:
    """Options next to a ready-made object would be ignored without a word: refused."""
    if options:
        what = "None (FIFO)" if obj is None else f"a {type(obj).__name__} object"
        raise SpecError(
            f"{kind}_options: {kind} is {what}, which is built already, so the options {describe_value(dict(options))} "
            f"would be ignored; pass them to its constructor instead, or give {kind} as a registry name"
        )
