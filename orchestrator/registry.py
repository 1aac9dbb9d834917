"""Searchers and schedulers by name.

Each entry maps a name to ``"module:attribute"`` and is imported only when used, so that
choosing ``search="random"`` never imports torch-heavy searchers. Add a line here when an
algorithm lands.
"""

from __future__ import annotations

import importlib
from typing import Any

from search_algs.errors import TuneorchError

SEARCHERS: dict[str, str] = {
    "random": "search_algs.random_search:RandomSearch",
    "tpe": "search_algs.tpe:TPESearch",
    "gp-ei": "search_algs.gp_ei:GPEISearch",
    "kg": "search_algs.kg:KGSearch",
}

SCHEDULERS: dict[str, str | None] = {
    "fifo": None,  # Tune's first-in-first-out: every trial runs to its end
    "asha": "schedulers.asha:ASHAScheduler",
    "pbt": "schedulers.pbt:PBTScheduler",
    "hyperband": "schedulers.hyperband:HyperbandScheduler",
}


class UnknownNameError(TuneorchError, ValueError):
    """A searcher or scheduler name that is not in the registry."""


def _load(target: str) -> Any:
    module, _, attr = target.partition(":")
    return getattr(importlib.import_module(module), attr)


def searcher_class(name: str) -> type:
    if name not in SEARCHERS:
        raise UnknownNameError(
            f"search: unknown searcher {name!r}; known searchers are {sorted(SEARCHERS)} "
            f"(or pass a ray.tune.search.Searcher object)"
        )
    return _load(SEARCHERS[name])


def scheduler_class(name: str) -> type | None:
    if name not in SCHEDULERS:
        raise UnknownNameError(
            f"scheduler: unknown scheduler {name!r}; known schedulers are {sorted(SCHEDULERS)} "
            f"(or pass a ray.tune.schedulers.TrialScheduler object)"
        )
    target = SCHEDULERS[name]
    return None if target is None else _load(target)
