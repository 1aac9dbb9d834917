"""How a trial ended, in one vocabulary for the summary, ``TuningResult.trials`` and Parquet.

The vocabulary is Tune's own trial statuses, so a Tune ``ERROR`` trial needs no translation:

* ``TERMINATED``: the trial ended and its last value of the tuned metric is a finite number:
  it ran to its end (its trainable returned, a ``stop`` condition or the scheduler's ``max_t``
  ended it), or the scheduler stopped it early. Early stops carry a ``stop_reason`` (below);
  the status stays Tune's, so code that counts ``TERMINATED`` trials keeps working.
* ``ERROR``: the trial failed: it raised (after its ``max_failures`` retries), or the last value
  it reported of the tuned metric is NaN or infinite. Such a trial never counts as a result;
  its error says why (``val_loss was nan at step 3: counted as a failure``).
* ``PENDING`` / ``RUNNING`` / ``PAUSED``: an interrupted run's unfinished trials.

MLflow has its own run statuses: ``TERMINATED`` is recorded as ``FINISHED``, ``ERROR`` as
``FAILED`` (with the tags ``error`` and ``error_reason``).

Stopped early. A ``TERMINATED`` trial that the scheduler cut has a ``stop_reason``: ``rung 3``
(our ASHA: the rung milestone, in units of its ``time_attr``, where it was cut) or
``training_iteration=3`` (Ray's own schedulers: the ``time_attr`` value at the cut). It is the
same string in the summary (``2 stopped early (rung 3)``), the ``stop_reason`` column of
``TuningResult.trials`` and of the Parquet trials table, and the MLflow child run's tag
``tuneorch.stop_reason``. :class:`orchestrator.console.StopRecorder` finds it on the driver
while the run goes and writes it into the trial's last result under :data:`STOP_REASON_KEY`
(so it is in the trial's ``result.json`` too, and survives a resume).

How it is known: Tune marks a result ``done`` when it stops a trial after it (a ``stop``
condition, the scheduler's STOP); a trial whose trainable returns on its own gets no such
result. Our :class:`schedulers.asha.ASHAScheduler` says which trials it cut and at which rung
(``stopped_at_rung``); for Ray's own schedulers a ``done`` result that no ``stop`` condition
explains and that is below the scheduler's ``max_t`` counts as an early stop. Limits: with
Ray's schedulers a class ``Trainable`` whose ``step`` returns ``done=True`` itself before
``max_t`` is counted as stopped early, and the reason is the ``time_attr`` value, not a rung;
``FIFOScheduler`` and PBT (Ray's and ours) never stop a trial early (PBT replaces a trial's
config and weights; the trial runs on); a trial that a ``stop`` condition ended is not early.
"""

from __future__ import annotations

import math
from typing import Any, Mapping

from orchestrator import _ray_private

FINISHED = "TERMINATED"
FAILED = "ERROR"
MLFLOW_STATUS = {FINISHED: "FINISHED", FAILED: "FAILED"}

#: The key of a trial's last result that holds its stop reason (set by ``console.StopRecorder``).
STOP_REASON_KEY = "tuneorch_stop_reason"
#: The MLflow tag of a child run stopped early.
STOP_REASON_TAG = "tuneorch.stop_reason"


def as_number(value: Any) -> float | None:
    """``value`` as a float (NaN and inf included), or ``None`` for what is not a number
    (booleans, strings, ``None``): the one reading of a reported metric value."""
    if isinstance(value, bool):
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def nonfinite_failure(result: Mapping | None, metric: str | None) -> str | None:
    """Why a trial whose last result is ``result`` counts as failed, or ``None``.

    It failed when the last reported value of ``metric`` is NaN or +-inf. A result without the
    metric is not judged here (Tune itself stops such a trial with an error).
    """
    if not metric or not isinstance(result, Mapping) or metric not in result:
        return None
    number = as_number(result[metric])
    if number is None or math.isfinite(number):
        return None
    step = result.get("training_iteration")
    at = f" at step {step}" if step is not None else ""
    return f"{metric} was {number}{at}: counted as a failure"


def short_stop_reason(reason: Any) -> str:
    """``rung 3`` -> ``r3`` (the console's status column); other reasons as they are."""
    text = str(reason)
    return "r" + text[5:] if text.startswith("rung ") else text


def stop_reason_of(result: Mapping | None) -> str | None:
    """The stop reason recorded in a trial's last result, or ``None``."""
    if not isinstance(result, Mapping):
        return None
    reason = result.get(STOP_REASON_KEY)
    return str(reason) if reason else None


def early_stop_reason(scheduler: Any, trial: Any, result: Mapping) -> str | None:
    """Why ``scheduler`` stopped ``trial`` after ``result`` (a result Tune marked ``done``), or
    ``None`` when the trial ran to its end (see the module docstring for the rules)."""
    stopped_at_rung = getattr(scheduler, "stopped_at_rung", None)
    if callable(stopped_at_rung):  # our ASHA: it knows
        rung = stopped_at_rung(trial.trial_id)
        return None if rung is None else f"rung {number_text(rung)}"
    if scheduler is None or type(scheduler).__name__ in ("FIFOScheduler", "PopulationBasedTraining",
                                                         "PBTScheduler", "PopulationBasedTrainingReplay",
                                                         "ReplayScheduler"):
        return None
    criteria = getattr(trial, "stopping_criterion", None) or {}
    for key, bound in criteria.items():
        value = _flat_get(result, key)
        if isinstance(value, (int, float)) and isinstance(bound, (int, float)) and value >= bound:
            return None  # the user's stop condition: the trial's planned end
    time_attr, max_t = _ray_private.scheduler_budget(scheduler)
    time_attr = time_attr or "training_iteration"
    t = _flat_get(result, time_attr)
    if isinstance(t, (int, float)) and isinstance(max_t, (int, float)) and t >= max_t:
        return None
    return f"{time_attr}={number_text(t)}" if t is not None else "stopped by the scheduler"


def _flat_get(result: Mapping, key: str) -> Any:
    if key in result:
        return result[key]
    value: Any = result
    for part in key.split("/"):
        if not isinstance(value, Mapping) or part not in value:
            return None
        value = value[part]
    return value


def number_text(value: Any) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)
