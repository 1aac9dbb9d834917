"""Trials that span several workers: a placement group per trial, refused when it cannot fit."""

from __future__ import annotations

import pytest

from orchestrator import tune
from orchestrator.spec import SpecError
from search_algs import Float


def spawns_workers(config):
    """Runs one task in each worker bundle of its placement group, as Ray Train would."""
    import os

    import ray
    from ray import tune as ray_tune
    from ray.util.scheduling_strategies import PlacementGroupSchedulingStrategy

    pg = ray.util.get_current_placement_group()

    @ray.remote(num_cpus=0.25)
    def worker(rank):
        return rank, os.getpid()

    n_bundles = len(pg.bundle_specs)
    ranks = ray.get([
        worker.options(scheduling_strategy=PlacementGroupSchedulingStrategy(pg, placement_group_bundle_index=i))
        .remote(i) for i in range(1, n_bundles)
    ])
    resources = ray_tune.get_context().get_trial_resources()
    ray_tune.report({"loss": config["x"], "bundles": str(resources.bundles), "strategy": resources.strategy,
                     "workers_ran": len({pid for _, pid in ranks}), "ranks": str(sorted(r for r, _ in ranks))})


@pytest.mark.timeout(240)
def test_a_multi_worker_trial_gets_its_placement_group(ray_local, tmp_path):
    # 1 + 2 x 0.25 CPUs: leaves room on the shared 2-CPU test Ray for a straggling actor of an
    # earlier test (a group needing the whole cluster waited for it forever once).
    result = tune(spawns_workers, {"x": Float(0.0, 1.0)}, metric="loss", mode="min", num_samples=2,
                  resources={"cpu": 0.25, "workers": 2, "strategy": "PACK"}, storage_path=str(tmp_path),
                  tracking_uri="", verbose=0)
    assert (result.trials["status"] == "TERMINATED").all(), result.errors
    for _, row in result.trials.iterrows():
        assert row["bundles"] == str([{"CPU": 1.0}, {"CPU": 0.25}, {"CPU": 0.25}])
        assert row["strategy"] == "PACK" and row["ranks"] == "[1, 2]"


def test_a_strict_spread_no_cluster_can_hold_is_refused_before_running(ray_local, tmp_path):
    with pytest.raises(SpecError) as info:
        tune(spawns_workers, {"x": Float(0.0, 1.0)}, metric="loss", mode="min",
             resources={"cpu": 0.5, "workers": 2, "strategy": "STRICT_SPREAD"}, storage_path=str(tmp_path),
             tracking_uri="", verbose=0)
    message = str(info.value)
    assert "2 workers placed STRICT_SPREAD" in message and "3 distinct nodes" in message and "node " in message
