"""MLflow tracking for tuning runs: a non-blocking Ray Tune callback backed by a durable outbox.

``MLflowTracking`` (mlflow_callback.py) is the callback and the driver-side API; ``outbox.py`` is
the append-only local log the hooks write to; ``sender.py`` delivers it to MLflow in batches.
"""

from orchestrator.tracking.mlflow_callback import (
    RUN_UID_TAG,
    MLflowTracking,
    TrackingError,
    TrackingUnavailableError,
    default_tracking_uri,
    flatten_metrics,
    flatten_params,
    replay_outbox,
)
from orchestrator.tracking.outbox import OutboxBusyError
from orchestrator.tracking.sender import PARENT_TAG, TRIAL_ID_TAG, TRIAL_UID_TAG, SenderStats

__all__ = [
    "MLflowTracking",
    "default_tracking_uri",
    "replay_outbox",
    "flatten_params",
    "flatten_metrics",
    "TrackingError",
    "TrackingUnavailableError",
    "OutboxBusyError",
    "SenderStats",
    "RUN_UID_TAG",
    "TRIAL_UID_TAG",
    "TRIAL_ID_TAG",
    "PARENT_TAG",
]
