"""The orchestrator's error for a bad experiment spec, below every module that raises it.

:class:`SpecError` is raised by the spec's own checks and by the modules those checks call
(``cluster``, ``export``, ``held_out``, ``components``); defining it here, on top of
:mod:`search_algs.errors` only, lets each of them raise it without importing ``orchestrator.spec``,
which imports some of them. ``orchestrator.SpecError`` and ``orchestrator.spec.SpecError`` name it too.
"""

from __future__ import annotations

from search_algs.errors import TuneorchError


class SpecError(TuneorchError, ValueError):
    """An experiment spec (YAML file, dict or API arguments) is invalid.

    A :class:`~search_algs.errors.TuneorchError` (the CLI prints it and exits 2) and still a
    ``ValueError``, as it always was.
    """
