"""First in, first out: the first trial in a given state, in creation order, found without
rescanning the ended ones (:class:`TrialScan`, also used by our schedulers' base), and Tune's FIFO
scheduler built on it (:class:`FIFOScheduler`, the orchestrator's ``scheduler: fifo``).

Tune calls ``choose_trial_to_run`` at every step of its loop, and both its FIFO and our
schedulers looked through every trial of the experiment for a PENDING one: O(N) per step, so
O(N^2) over a run (about 0.4 ms per call at 500 trials in the scale benchmark's profile; the
cost grows with N: issue #21). A TERMINATED trial never becomes PENDING or PAUSED again in this
driver (a resume builds new Trial objects), so the scan starts after the longest prefix of
terminated trials. An ERROR trial may: a failure Tune retries is set to ERROR, reported to the
scheduler, then set to PENDING, so errored trials stay in the scan. Tune only appends to its
trial list.
"""

from __future__ import annotations

from typing import Any, Optional

from ray.tune.experiment import Trial
from ray.tune.schedulers import FIFOScheduler as _TuneFIFOScheduler

_FINAL = Trial.TERMINATED  # the one status a trial never leaves in this driver (module docstring)


class TrialScan:
    """Remembers how many trials at the head of Tune's list have terminated. Not pickled with its
    owner (see :meth:`__reduce__`): a restored experiment has new Trial objects."""

    def __init__(self) -> None:
        self._trials: Optional[list] = None
        self._ended = 0

    def __reduce__(self):
        return (TrialScan, ())

    def _skip_ended(self, trials: list) -> int:
        if trials is not self._trials or len(trials) < self._ended:
            self._trials, self._ended = trials, 0
        i, n = self._ended, len(trials)
        while i < n and trials[i].status == _FINAL:
            i += 1
        self._ended = i
        return i

    def first(self, trials: list, status: str) -> Optional[Any]:
        """The first trial of ``trials`` (Tune's list, in creation order) whose status is ``status``."""
        for j in range(self._skip_ended(trials), len(trials)):
            if trials[j].status == status:
                return trials[j]
        return None

    def unended(self, trials: list) -> list:
        """``trials`` after the longest prefix of terminated ones: every trial that may still
        run, and the ended ones created after the oldest trial that has not terminated."""
        return trials[self._skip_ended(trials):]


class FIFOScheduler(_TuneFIFOScheduler):
    """Tune's first-in-first-out scheduler (every trial runs to its end) with the same choice of
    the next trial, found without rescanning the trials that terminated."""

    def __init__(self) -> None:
        super().__init__()
        self._scan = TrialScan()

    def choose_trial_to_run(self, tune_controller: Any) -> Optional[Trial]:
        trials = tune_controller.get_trials()
        return self._scan.first(trials, Trial.PENDING) or self._scan.first(trials, Trial.PAUSED)
