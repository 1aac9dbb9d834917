"""schedulers/fifo.py: the next trial to run, found without rescanning the ended ones."""

from __future__ import annotations

import pickle
from types import SimpleNamespace

import numpy as np
from ray.tune.experiment import Trial
from ray.tune.schedulers import FIFOScheduler as TuneFIFOScheduler

from schedulers.fifo import FIFOScheduler, TrialScan

STATES = [Trial.PENDING, Trial.RUNNING, Trial.PAUSED, Trial.TERMINATED, Trial.ERROR]


def test_the_scan_chooses_what_tunes_fifo_chooses_over_a_random_run():
    """Over the life of 400 trials (created in batches; pending, running, paused, ended in any
    order, an ended trial never back), our FIFO picks the same trial as Tune's at every step,
    and its scan skips the ended head of the list."""
    rng = np.random.default_rng(0)
    trials: list = []
    controller = SimpleNamespace(get_trials=lambda: trials)
    ours, tunes = FIFOScheduler(), TuneFIFOScheduler()
    steps = 0
    while len(trials) < 400 or any(t.status not in (Trial.TERMINATED, Trial.ERROR) for t in trials):
        if len(trials) < 400 and rng.random() < 0.4:
            trials.extend(SimpleNamespace(trial_id=str(len(trials) + k), status=Trial.PENDING)
                          for k in range(min(400 - len(trials), int(rng.integers(1, 5)))))
        for t in trials[-30:]:
            if t.status not in (Trial.TERMINATED, Trial.ERROR) and rng.random() < 0.3:
                t.status = str(rng.choice(STATES))
        for t in trials[:-30]:  # old trials end
            if t.status not in (Trial.TERMINATED, Trial.ERROR) and rng.random() < 0.5:
                t.status = Trial.TERMINATED
        assert ours.choose_trial_to_run(controller) is tunes.choose_trial_to_run(controller)
        steps += 1
    assert ours.choose_trial_to_run(controller) is None and steps > 100
    head = next((i for i, t in enumerate(trials) if t.status != Trial.TERMINATED), len(trials))
    assert ours._scan._ended == head  # the terminated head of the list is never scanned again


def test_a_new_trial_list_is_scanned_afresh_and_the_scan_is_not_pickled():
    scan = TrialScan()
    first = [SimpleNamespace(status=Trial.TERMINATED) for _ in range(5)] + [SimpleNamespace(status=Trial.PENDING)]
    assert scan.first(first, Trial.PENDING) is first[5] and scan._ended == 5
    second = [SimpleNamespace(status=Trial.PENDING)]  # a restored experiment: new Trial objects
    assert scan.first(second, Trial.PENDING) is second[0] and scan.unended(second) == second
    again = pickle.loads(pickle.dumps(FIFOScheduler()))
    assert again._scan._trials is None and again._scan._ended == 0


def test_a_retried_failure_is_not_skipped():
    """Tune retries a failed trial by setting it to ERROR, telling the scheduler (which may scan
    then), and setting it to PENDING: it must still be found."""
    trials = [SimpleNamespace(status=Trial.TERMINATED), SimpleNamespace(status=Trial.ERROR),
              SimpleNamespace(status=Trial.RUNNING)]
    scan = TrialScan()
    assert scan.unended(trials) == trials[1:]  # during the scheduler's on_trial_error
    trials[1].status = Trial.PENDING  # Tune's _requeue_trial
    assert scan.first(trials, Trial.PENDING) is trials[1]
