"""Many nodes, simulated on one machine: trials asking for GPUs, one node lost mid-run.

``ray.cluster_utils.Cluster`` with 4 nodes of 2 logical CPUs and 2 fake GPUs each (FACTS.md:
nodes share one IP; they are told apart by node id). Every trial asks for 1 CPU and 1 GPU,
checkpoints with every result and records the node, ``ray.get_gpu_ids()`` and
``CUDA_VISIBLE_DEVICES`` it saw (``benchmarks.scale.trivial``). Once a third of the trials ended,
one worker node is removed (not gracefully). Then: every trial completed all its results (the
ones on the lost node restarted from their checkpoint, within ``max_failures``), none was lost,
and each saw exactly one GPU of its node, the one Ray assigned it.

The issue asks for >= 500 trials; on CI's 2 cores this test runs 48 (about a minute and a half).
``python -m benchmarks scale --nodes 4 --trials 500 --remove-node-at 0.3`` is the full size.
"""

from __future__ import annotations

import json

import pytest

pytestmark = pytest.mark.slow

TRIALS = 48
RESULTS = 4


def test_trials_with_gpu_requests_survive_the_loss_of_a_node(tmp_path):
    import ray

    from benchmarks.scale import run_multinode

    if ray.is_initialized():  # the session's local Ray (other tests): this test needs its own cluster
        ray.shutdown()
    data = run_multinode("pytest", trials=TRIALS, results=RESULTS, sleep_s=0.2, nodes=4, cpus_per_node=2,
                         gpus_per_node=2, remove_node_at=0.33, workdir=str(tmp_path), max_failures=3,
                         log=lambda *a: None)
    print(json.dumps({k: v for k, v in data.items() if k != "meta"}, indent=1, default=str))
    assert data["removed"]["node"] is not None, "the node was never removed"
    assert data["trials_in_result"] == TRIALS, data
    assert data["statuses"] == {"TERMINATED": TRIALS}, data
    assert data["trials_seen"] == TRIALS, data  # each with its result.json in the experiment folder
    assert data["trials_lost"] == 0, data
    assert data["trials_complete"] == TRIALS, data
    assert data["bad_gpu_placements"] == [], data
    assert data["errors"] == 0, data
    assert data["restarted_from_scratch"] == [], data  # every result of these trials carries a checkpoint
