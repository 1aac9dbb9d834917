"""PBT lineage: who cloned whom, when, and with which config change.

:func:`lineage_of` asks a scheduler for its lineage; :func:`normalise_lineage` turns the record
forms in use (tuples, PBTScheduler's JSON records, objects) into one mapping per exploit, which
:mod:`orchestrator.tracking.artifact_log` uploads as ``pbt_lineage.json`` and
:func:`orchestrator.tracking.plots.plot_pbt_lineage` draws.
"""

from __future__ import annotations

import logging
from typing import Any, Iterable, Mapping

logger = logging.getLogger(__name__)


def lineage_of(scheduler: Any) -> list | None:
    """The PBT lineage of a scheduler (``orchestrator._ray_private.scheduler_of(tuner)`` gives
    the one a Tuner ran with).

    A scheduler has a lineage when it exposes ``lineage()`` (directly, or on its ``policy`` /
    ``core`` attribute); anything else gives ``None``.
    """
    for candidate in (scheduler, getattr(scheduler, "policy", None), getattr(scheduler, "core", None)):
        fn = getattr(candidate, "lineage", None)
        if callable(fn):
            try:
                return list(fn())
            except Exception as exc:  # noqa: BLE001
                logger.warning("MLflow artifacts: the scheduler's lineage() failed (%s); no "
                               "lineage plot", exc)
                return None
    return None


def normalise_lineage(records: Iterable) -> list[dict]:
    """Lineage records as ``{"target", "donor", "step", "donor_step", "old_config", "new_config"}``
    (plus any other key of a mapping record, e.g. PBTScheduler's ``operations``)."""
    out = []
    for record in records:
        if hasattr(record, "to_json"):
            record = record.to_json()
        extra = dict(record) if isinstance(record, Mapping) else {}  # operations, generation...
        if isinstance(record, (tuple, list)):
            if len(record) != 5:
                raise ValueError(f"lineage: a record is (target, donor, step, old_config, "
                                 f"new_config), got {record!r}")
            target, donor, step, old, new = record
            donor_step = step
        else:
            get = (record.get if isinstance(record, Mapping)
                   else lambda key, default=None: getattr(record, key, default))
            target, donor = get("target"), get("donor")
            step = get("step", get("time"))
            donor_step = get("donor_step", get("donor_time", step))
            old = get("old_config", get("target_config"))
            new = get("new_config")
        for key in ("time", "donor_time", "target_config"):  # renamed below
            extra.pop(key, None)
        out.append({**extra, "target": str(target), "donor": str(donor), "step": step,
                    "donor_step": donor_step, "old_config": dict(old or {}),
                    "new_config": dict(new or {})})
    return out
