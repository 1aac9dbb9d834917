"""Trial faults: retried from the last checkpoint; NaN results never count as good ones."""

from __future__ import annotations

import math

from orchestrator import tune
from search_algs import Float
from trainables import crashes_once, reports_nan_in_a_region


def test_a_crashed_trial_is_retried_from_its_last_checkpoint(ray_local, tmp_path):
    log_dir = tmp_path / "markers"
    log_dir.mkdir()
    result = tune(crashes_once, {"x": Float(0.0, 1.0), "log_dir": str(log_dir)}, metric="loss", mode="min",
                  num_samples=2, max_concurrent=2, max_failures=1, seed=0, storage_path=str(tmp_path / "runs"),
                  tracking_uri="", verbose=0)
    assert (result.trials["status"] == "TERMINATED").all() and not result.errors
    names = sorted(p.name for p in log_dir.iterdir())
    for x in result.trials["config/x"]:
        prefix = f"{x:.12f}"
        assert f"{prefix}-crashed" in names
        # Step 1 ran once: the retry started from the checkpoint of step 1, not from scratch.
        assert [n for n in names if n.startswith(prefix) and not n.endswith("crashed")] == [
            f"{prefix}-1", f"{prefix}-2", f"{prefix}-3"]


def test_nan_results_are_failures_for_the_searcher_and_never_the_best(ray_local, tmp_path):
    from search_algs.random_search import RandomSearch

    searcher = RandomSearch(seed=4)
    result = tune(reports_nan_in_a_region, {"x": Float(0.0, 1.0)}, metric="loss", mode="min", search=searcher,
                  num_samples=8, max_concurrent=2, storage_path=str(tmp_path), tracking_uri="", verbose=0)
    xs = list(result.trials["config/x"])
    assert any(x > 0.5 for x in xs) and any(x <= 0.5 for x in xs)
    assert result.best_config["x"] <= 0.5 and math.isfinite(result.best_metric)
    # The searcher Tune used is a copy; its record of outcomes is in the experiment's saved state.
    assert len(result.trials) == 8
