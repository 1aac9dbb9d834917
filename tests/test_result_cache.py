"""The functional-equivalence cache: configs equal after canonicalisation are trained once."""

from __future__ import annotations

import json

import pytest
from ray.tune.search import Searcher

from orchestrator import tune
from search_algs import Categorical, Float, Int
from search_algs.base import SpaceSearcher
from search_algs.random_search import RandomSearch
from search_algs.result_cache import CACHED_KEY, ResultCache

SMALL = {"n": Int(0, 3), "kind": Categorical(["a", "b"])}  # 8 distinct configs


def loss(config):
    return float((config["n"] - 3) ** 2 + (0.5 if config["kind"] == "b" else 0.0))


def _cache(space=SMALL, seed=0, **kw):
    return ResultCache(RandomSearch(space=space, metric="loss", mode="min", seed=seed), space, **kw)


class Scripted(SpaceSearcher):
    """Proposes the given values of ``n`` in order."""

    def __init__(self, ns):
        super().__init__(space={"n": Int(0, 1)}, metric="loss", mode="min")
        self.ns = list(ns)

    def propose(self):
        return {"n": self.ns.pop(0)}


def _scripted(ns):
    return ResultCache(Scripted(ns), {"n": Int(0, 1)}, max_repeats=3)


def test_sequential_proposals_train_each_distinct_config_once_then_the_space_is_exhausted():
    cache = _cache()
    trained = []
    for i in range(20):
        config = cache.suggest(f"t{i}")
        if config == Searcher.FINISHED:
            break
        trained.append(json.dumps(config, sort_keys=True))
        cache.on_trial_complete(f"t{i}", {"loss": loss(config), "training_iteration": 1})
    assert config == Searcher.FINISHED
    assert len(trained) == len(set(trained)) == 8
    # The wrapped searcher saw every proposal with a result: the trained ones and the replays.
    inner = cache.searcher
    assert len(inner.history) == 8 + len(cache.hits) and not inner.pending
    assert all(obs.loss is not None for obs in inner.history)
    assert {h["cached_from"] for h in cache.hits} <= {f"t{i}" for i in range(20)}


def test_a_replayed_result_is_the_original_one_marked_with_its_source():
    cache = _cache(space={"n": Int(0, 0)})  # one config: every later proposal is a duplicate
    config = cache.suggest("first")
    cache.on_trial_complete("first", {"loss": 2.5, "training_iteration": 3, "config": {"n": 0}})
    replayed = []
    cache.searcher.on_trial_complete = lambda tid, result=None, error=False: replayed.append((tid, result))
    assert cache.suggest("second") == Searcher.FINISHED  # 25 duplicates in a row: exhausted
    tid, result = replayed[0]
    assert tid == "second" and result == {"loss": 2.5, "training_iteration": 3, CACHED_KEY: "first"}
    assert len(replayed) == cache.max_repeats == len(cache.hits)
    assert config == {"n": 0}


def test_a_duplicate_of_a_running_trial_waits_for_its_result():
    cache = _scripted([0, 0, 0, 1])
    assert cache.suggest("a") == {"n": 0}
    assert cache.suggest("b") == {"n": 1}  # two duplicates of a's config wait for its result
    waiting = [tid for tids in cache._waiting.values() for tid in tids]
    assert waiting == ["b", "b-repeat1"] and all(tid in cache.searcher.pending for tid in waiting)
    cache.on_trial_complete("a", {"loss": 1.0, "training_iteration": 1})
    assert not cache._waiting and not any(t in cache.searcher.pending for t in waiting)
    assert [h["cached_from"] for h in cache.hits if h["trial_id"] in waiting] == ["a"] * len(waiting)


def test_failed_trials_are_not_cached_and_their_waiting_duplicates_fail_too():
    cache = _scripted([0, 0, 1])
    first = cache.suggest("a")
    cache.suggest("b")
    waiting = [tid for tids in cache._waiting.values() for tid in tids]
    assert waiting == ["b"]
    cache.on_trial_complete("a", None, error=True)
    failed = [o for o in cache.searcher.history if o.loss is None]
    assert len(failed) == 1 + len(waiting)
    assert not cache._done  # the config can be trained again
    assert cache._key(first) not in cache._done


def test_equal_after_canonicalisation_means_the_same_key():
    space = {"x": Float(0.0, 1.0, step=0.1), "n": Int(1, 8), "opt": Categorical(
        [{"name": "sgd", "momentum": Float(0.0, 0.9)}, {"name": "adam"}])}
    cache = _cache(space=space)
    a = cache._key({"x": 0.30000000000000004, "n": 4, "opt": {"name": "adam"}})
    assert a == cache._key({"x": 0.3, "n": 4.0, "opt": {"name": "adam"}})
    assert a != cache._key({"x": 0.3, "n": 5, "opt": {"name": "adam"}})
    assert cache._key({"x": 0.3, "n": 4, "opt": {"name": "sgd", "momentum": 0.5}}) != a
    assert cache._key({"something": "else"}) is None  # unreadable: never cached, always trained


def test_state_round_trips_and_the_cache_continues_where_it_stopped():
    cache = _cache()
    for i in range(5):
        config = cache.suggest(f"t{i}")
        cache.on_trial_complete(f"t{i}", {"loss": loss(config), "training_iteration": 1})
    state = cache.get_state()
    fresh = _cache(seed=99)
    fresh.set_state(state)
    assert fresh._done == cache._done and fresh.hits == cache.hits and fresh.searcher is not cache.searcher
    # A snapshot stays as it was taken while the cache goes on (it copies containers, not entries).
    waiting = _scripted([0, 0, 1, 0, 1, 0])
    waiting.suggest("a"), waiting.suggest("b")  # b's first proposal waits for a
    before = json.dumps(waiting.get_state(), sort_keys=True, default=repr)
    snapshot = waiting.get_state()
    waiting.suggest("c")  # three more proposals wait (the space is then exhausted)
    assert len(waiting._waiting[waiting._key({"n": 0})]) == 3
    waiting.on_trial_complete("a", {"loss": 1.0, "training_iteration": 1})
    assert json.dumps(snapshot, sort_keys=True, default=repr) == before
    with pytest.raises(ValueError, match="max_repeats: must be an integer >= 1"):
        _cache(max_repeats=0)


def test_tune_trains_each_config_once_and_says_how_much_it_reused(ray_local, tmp_path):
    from fault_trainables import counts_trainings
    from mlflow import MlflowClient

    (tmp_path / "log").mkdir()
    space = {**SMALL, "log_dir": str(tmp_path / "log")}
    result = tune(counts_trainings, space, metric="loss", mode="min", num_samples=12, max_concurrent=2, seed=3,
                  storage_path=str(tmp_path / "runs"), verbose=0)
    runs = [json.load(open(p)) for p in (tmp_path / "log").iterdir()]
    keys = [json.dumps(r, sort_keys=True) for r in runs]
    assert len(keys) == len(set(keys)) == len(result.trials) <= 8  # never trained twice
    assert result.cache_hits and f"{len(result.cache_hits)} proposals equal to a trained config" in result.summary()
    assert result.best_metric == 0.0
    client = MlflowClient(result.tracking_uri)
    assert client.get_run(result.mlflow_run_id).data.metrics["cache_hits"] == len(result.cache_hits)


def test_the_cache_can_be_turned_off(ray_local, tmp_path):
    from fault_trainables import counts_trainings

    (tmp_path / "log").mkdir()
    space = {"n": Int(0, 0), "kind": Categorical(["a"]), "log_dir": str(tmp_path / "log")}
    result = tune(counts_trainings, space, metric="loss", mode="min", num_samples=3, seed=3, cache_results=False,
                  storage_path=str(tmp_path / "runs"), tracking_uri="", verbose=0)
    assert len(list((tmp_path / "log").iterdir())) == len(result.trials) == 3 and not result.cache_hits
