"""Reading a trial's result, shared by the scheduler adapters: the number a policy ranks by,
or one clear error naming the key, the trial and what it did report."""

from __future__ import annotations

import math
import numbers
from typing import Mapping

from ray.tune.result import AUTO_RESULT_KEYS, DEBUG_METRICS, SHOULD_CHECKPOINT

from search_algs.errors import TuneorchError

# Keys Tune adds to every result: not the user's, so not worth listing in an error.
_NOT_USER_KEYS = set(AUTO_RESULT_KEYS) | set(DEBUG_METRICS) | {
    "done", SHOULD_CHECKPOINT, "trial_id", "iterations_since_restore", "experiment_tag",
    "__duplicate__", "checkpoint_dir_name"}


class MissingMetricError(TuneorchError, ValueError):
    """A result lacks the metric or the time attribute the scheduler ranks by."""


class MetricTypeError(TuneorchError, ValueError):
    """The metric or the time attribute is not a number."""


def user_keys(result: Mapping) -> list[str]:
    """The keys the trainable itself reported, sorted."""
    return sorted(k for k in result if k not in _NOT_USER_KEYS and not k.startswith("config/"))


def result_number(owner: str, result: Mapping, key: str, role: str, trial_id: str,
                  allow_nonfinite: bool) -> float:
    """``result[key]`` as a float; ``owner`` (e.g. ``"ASHAScheduler"``) and ``role``
    (``"metric"`` or ``"time_attr"``) name who asks for it in the error messages."""
    if key not in result:
        raise MissingMetricError(
            f"{owner}: {role} {key!r} is missing from a result of trial {trial_id}; the trial "
            f"reported {user_keys(result)} (besides Ray's automatic keys); report {key!r} in every "
            f"tune.report(...) or pass the key you do report as {role}=...")
    value = result[key]
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise MetricTypeError(
            f"{owner}: {role} {key!r} must be a number, trial {trial_id} reported "
            f"{value!r} ({type(value).__name__}); report a float or int")
    value = float(value)
    if not allow_nonfinite and not math.isfinite(value):
        raise MetricTypeError(
            f"{owner}: {role} {key!r} must be finite, trial {trial_id} reported {value!r}; "
            f"report a finite, increasing progress measure")
    return value
