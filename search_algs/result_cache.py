"""Functional-equivalence cache: a config is trained once, however often it is proposed.

Two configs are the *same function* when they agree after canonicalisation by the search
space (Gillard et al. 2023, "Unified Functional Hashing in Automatic Machine Learning"):
values snapped onto their step grid, integers cast, parameters of inactive conditional
branches dropped (:meth:`search_algs.space.Space.canonical`). For a deterministic trainable,
training such a duplicate again only burns cluster time.

:class:`ResultCache` wraps any Ray Tune ``Searcher``. When the wrapped searcher proposes a
config whose canonical form

* already finished, the earlier result is handed back to the searcher at once as the result
  of the new proposal (recorded in :attr:`ResultCache.hits`), and the searcher is asked again;
* is still running, the proposal waits, pending, and receives the running trial's result when
  it arrives; the searcher is asked again meanwhile.

So Tune trains ``num_samples`` *distinct* configs. A searcher that proposes nothing new
``max_repeats`` times in a row has exhausted the space (a small discrete space): the search
then ends (``Searcher.FINISHED``) instead of spinning. Failed trials are not cached: a
failure may be transient, and the searcher is told of the failure either way.

Turn the cache off for noisy trainables, where a repeated evaluation is information.
"""

from __future__ import annotations

import copy
import json
import logging
from typing import Any

from ray.tune.search import Searcher

from search_algs.errors import SpaceError
from search_algs.space import Space

logger = logging.getLogger(__name__)

CACHED_KEY = "tuneorch_cached_from"  # marks a replayed result: the trial it was copied from


class ResultCache(Searcher):
    """Wrap ``searcher`` so that functionally equal configs are trained once.

    Args:
        searcher: any Ray Tune ``Searcher`` (ours or Ray's).
        space: the experiment's search space (a :class:`Space` or anything ``Space.of`` takes).
        max_repeats: proposals in a row that are all duplicates after which the space counts
            as exhausted and the search ends.
    """

    def __init__(self, searcher: Searcher, space: Any, max_repeats: int = 25):
        super().__init__(metric=searcher.metric, mode=searcher.mode)
        if not (isinstance(max_repeats, int) and max_repeats >= 1):
            raise ValueError(f"max_repeats: must be an integer >= 1, got {max_repeats!r}")
        self.searcher = searcher
        self.space = Space.of(space)
        self.max_repeats = max_repeats
        self.hits: list[dict] = []  # {"trial_id", "cached_from", "config"} per replayed proposal
        self._done: dict[str, dict] = {}  # canonical key -> {"trial_id", "result"}
        self._running: dict[str, str] = {}  # canonical key -> Tune trial id training it
        self._key_of: dict[str, str] = {}  # Tune trial id -> canonical key
        self._waiting: dict[str, list[str]] = {}  # canonical key -> proposals waiting for it
        self._alias: dict[str, str] = {}  # Tune trial id -> the wrapped searcher's proposal id
        self._exhausted = False

    # ---- Ray Tune contract -------------------------------------------------------------

    def set_search_properties(self, metric: str | None, mode: str | None, config: dict, **spec) -> bool:
        accepted = self.searcher.set_search_properties(metric, mode, config, **spec)
        self._metric, self._mode = self.searcher.metric, self.searcher.mode
        return accepted

    def set_max_concurrency(self, max_concurrent: int) -> bool:
        return self.searcher.set_max_concurrency(max_concurrent)

    def suggest(self, trial_id: str) -> dict | None:
        if self._exhausted:
            return Searcher.FINISHED
        for attempt in range(self.max_repeats):
            proposal_id = trial_id if attempt == 0 else f"{trial_id}-repeat{attempt}"
            config = self.searcher.suggest(proposal_id)
            if config is None or config == Searcher.FINISHED:
                return config
            key = self._key(config)
            if key is None or (key not in self._done and key not in self._running):
                if proposal_id != trial_id:
                    self._alias[trial_id] = proposal_id
                if key is not None:
                    self._running[key] = trial_id
                    self._key_of[trial_id] = key
                return config
            if key in self._done:
                source = self._done[key]
                self.hits.append({"trial_id": proposal_id, "cached_from": source["trial_id"], "config": config})
                self.searcher.on_trial_complete(proposal_id, result=self._replay(source), error=False)
            else:
                self._waiting.setdefault(key, []).append(proposal_id)
        self._exhausted = True
        logger.warning(
            "the searcher proposed only configs already trained or training, %d times in a row: "
            "the search space looks exhausted, so no new trials start", self.max_repeats)
        return Searcher.FINISHED

    def on_trial_result(self, trial_id: str, result: dict) -> None:
        self.searcher.on_trial_result(self._alias.get(trial_id, trial_id), result)

    def on_trial_complete(self, trial_id: str, result: dict | None = None, error: bool = False) -> None:
        self.searcher.on_trial_complete(self._alias.pop(trial_id, trial_id), result=result, error=error)
        key = self._key_of.pop(trial_id, None)
        if key is None:
            return
        self._running.pop(key, None)
        usable = not error and result is not None
        if usable:
            self._done[key] = {"trial_id": trial_id, "result": _plain(result)}
        for waiting_id in self._waiting.pop(key, []):
            if usable:
                source = self._done[key]
                self.hits.append({"trial_id": waiting_id, "cached_from": trial_id, "config": json.loads(key)})
                self.searcher.on_trial_complete(waiting_id, result=self._replay(source), error=False)
            else:  # the original failed or was removed: so does the copy that waited for it
                self.searcher.on_trial_complete(waiting_id, result=result, error=error)

    def add_evaluated_point(self, parameters: dict, value: float, error: bool = False,
                            pruned: bool = False, intermediate_values: list | None = None) -> None:
        self.searcher.add_evaluated_point(parameters, value, error, pruned, intermediate_values)

    def on_pause(self, trial_id: str) -> None:
        self.searcher.on_pause(self._alias.get(trial_id, trial_id))

    def on_unpause(self, trial_id: str) -> None:
        self.searcher.on_unpause(self._alias.get(trial_id, trial_id))

    # ---- state -------------------------------------------------------------------------

    # Tune's SearchGenerator saves each wrapper (anything with a ``.searcher``) by
    # ``get_state``/``set_state`` and the innermost searcher by ``save_to_dir``, as it does for
    # its own ConcurrencyLimiter; ``save``/``restore`` therefore reach the wrapped searcher.

    def get_state(self) -> dict:
        # Called at every experiment snapshot, with one entry per trained config: a deep copy
        # grew with the run. The entries are never changed once stored (only added, replaced
        # or removed), so copying the containers suffices; the lists of waiting proposals grow
        # in place and are copied too.
        state = {k: copy.copy(v) for k, v in self.__dict__.items() if k not in ("searcher", "space")}
        state["_waiting"] = {key: list(ids) for key, ids in self._waiting.items()}
        return state

    def set_state(self, state: dict) -> None:
        self.__dict__.update(state)

    def save(self, checkpoint_path: str) -> None:
        self.searcher.save(checkpoint_path)

    def restore(self, checkpoint_path: str) -> None:
        self.searcher.restore(checkpoint_path)

    def __getattr__(self, name: str) -> Any:
        # recommend(), history, ... of the wrapped searcher stay reachable through the cache.
        if name.startswith("__") or name == "searcher":
            raise AttributeError(name)
        return getattr(self.searcher, name)

    # ---- helpers -----------------------------------------------------------------------

    def _key(self, config: dict) -> str | None:
        try:
            canonical = self.space.canonical(config)
        except (SpaceError, KeyError, ValueError, TypeError):
            return None  # a config our space cannot read (a foreign searcher's extras): never cached
        return json.dumps(canonical, sort_keys=True, default=repr)

    @staticmethod
    def _replay(source: dict) -> dict:
        return {**source["result"], CACHED_KEY: source["trial_id"]}


def _plain(result: dict) -> dict:
    """The numbers of a result (what a searcher reads), without Tune's bulky extras."""
    return {k: v for k, v in result.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}
