"""Turn a tuning intent (Python call, YAML spec, CLI) into a recorded Ray Tune experiment.

Every error tuneorch raises for a user's input or situation is a :class:`TuneorchError`
(defined in :mod:`search_algs.errors`, the bottom of the import graph, so that ``search_algs``
and ``schedulers`` can raise it without importing ``orchestrator``); ``SpecError`` is the one
for experiment specs. The CLI prints any of them as ``tuneorch: error: ...`` and exits 2.
"""

from orchestrator.api import TrialReportError, TuningResult, resume, run, tune
from orchestrator.spec import ExperimentSpec, SpecError
from search_algs.errors import TuneorchError

__all__ = ["tune", "run", "resume", "TuningResult", "TrialReportError", "ExperimentSpec", "SpecError",
           "TuneorchError"]
