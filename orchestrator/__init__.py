"""Turn a tuning intent (Python call, YAML spec, CLI) into a recorded Ray Tune experiment."""

from orchestrator.api import TrialReportError, TuningResult, resume, run, tune
from orchestrator.spec import ExperimentSpec, SpecError

__all__ = ["tune", "run", "resume", "TuningResult", "TrialReportError", "ExperimentSpec", "SpecError"]
