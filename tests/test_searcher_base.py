"""The shared searcher adapter's bookkeeping, driven directly through the Ray Searcher calls."""

from __future__ import annotations

import math

from search_algs import Float
from search_algs.random_search import RandomSearch


def make(**kwargs):
    return RandomSearch(space={"x": Float(0.0, 1.0)}, metric="loss", mode=kwargs.pop("mode", "min"), seed=0, **kwargs)


def test_outcomes_become_observations_with_the_right_sign_and_status():
    searcher = make(mode="max")
    for trial in "abcde":
        searcher.suggest(trial)
    searcher.on_trial_result("a", {"loss": 0.5, "training_iteration": 1})
    searcher.on_trial_complete("a", {"loss": 0.7, "training_iteration": 3})
    searcher.on_trial_complete("b", {"loss": float("nan"), "training_iteration": 3})
    searcher.on_trial_complete("c", {"loss": "high", "training_iteration": 3})
    searcher.on_trial_complete("d", None, error=True)
    searcher.on_trial_result("e", {"loss": 0.2, "training_iteration": 1})
    searcher.on_trial_complete("e", {"loss": 0.2, "training_iteration": 1})
    a, b, c, d, e = searcher.history
    assert a.loss == -0.7 and a.curve == {1: -0.5} and not a.censored
    assert b.failed and c.failed and d.failed
    assert e.censored and e.budget == 1  # stopped early by a scheduler: fewer iterations than a
    assert searcher.pending == {}


def test_a_trial_stopped_while_paused_is_censored_at_its_last_result():
    searcher = make()
    searcher.suggest("p")
    searcher.suggest("q")
    searcher.on_trial_result("p", {"loss": 0.9, "training_iteration": 1})
    searcher.on_trial_result("p", {"loss": 0.8, "training_iteration": 3})
    searcher.on_trial_complete("p", None)  # removed while PAUSED (ASHA promotion variant)
    searcher.on_trial_complete("q", None)  # removed before it ran
    (p,) = searcher.history
    assert p.censored and p.loss == 0.8 and p.budget == 3


def test_points_to_evaluate_come_first_and_partial_points_are_completed():
    searcher = RandomSearch(space={"x": Float(0.0, 1.0), "y": Float(0.0, 1.0)}, metric="loss", mode="min",
                            points_to_evaluate=[{"x": 0.25, "y": 0.5}, {"x": 0.75}], seed=1)
    first, second, third = (searcher.suggest(t) for t in "abc")
    assert first == {"x": 0.25, "y": 0.5}
    assert second["x"] == 0.75 and 0.0 <= second["y"] <= 1.0
    assert third != first and third != second


def test_warm_start_and_save_restore_continue_the_same_sequence(tmp_path):
    searcher = make()
    searcher.add_evaluated_point({"x": 0.3}, 1.5, intermediate_values=[2.0, 1.5])
    searcher.add_evaluated_point({"x": 0.9}, math.inf)
    for trial in "ab":
        searcher.suggest(trial)
    path = str(tmp_path / "state.pkl")
    searcher.save(path)
    expected = [searcher.suggest(t) for t in "cde"]
    restored = make()
    restored.restore(path)
    assert [restored.suggest(t) for t in "cde"] == expected
    warm, failed = restored.history
    assert warm.loss == 1.5 and warm.budget == 2 and failed.failed
