"""Typed errors: every message names the parameter, the constraint, the value and the fix.

:class:`TuneorchError` is the one root of every error tuneorch raises for a user's input or
situation (a bad spec, space, option or experiment folder): the CLI turns any of them into
``tuneorch: error: <message>`` and exit code 2, the Python API raises them as they are, and
``except orchestrator.TuneorchError`` catches them all. Anything else that escapes is a bug.

Why here: this module imports nothing, and every package may import ``search_algs``, while
``search_algs/`` and ``schedulers/`` must never import ``orchestrator/`` (tests/test_layering.py;
their ``core/`` modules import without Ray). So the root lives at the bottom of the import
graph and ``orchestrator`` re-exports it as ``orchestrator.TuneorchError``.

The subclasses keep their historical base (``ValueError``, ``RuntimeError``) as a second base,
so code that catches ``ValueError`` around a spec or a space keeps working::

    class SpecError(TuneorchError, ValueError): ...
"""


class TuneorchError(Exception):
    """Root of every user-facing tuneorch error: the message says what is wrong and how to fix it."""


class SpaceError(TuneorchError, ValueError):
    """A search space (or a config checked against one) is invalid."""


def describe_value(value: object, limit: int = 200) -> str:
    """``repr(value)`` for an error message, at most about ``limit`` characters.

    Never raises: ``repr`` of an integer of more than 4300 digits raises ``ValueError`` in
    CPython (its int-to-str limit), and a message about a bad value must not turn into a
    traceback of its own. Huge integers are shown by their leading digits and size.
    """
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) >= 10**40:
        import math

        digits = int(math.log10(abs(value))) + 1
        head = str(abs(value) // 10 ** max(0, digits - 8))[:8]  # the leading digits
        return f"{'-' if value < 0 else ''}{head}... (an integer of {digits} digits)"
    try:
        text = repr(value)
    except Exception:  # noqa: BLE001 - any repr failure: say what it is instead
        text = f"<a {type(value).__name__} that cannot be printed>"
    return text if len(text) <= limit else text[: limit - 3] + "..."


def closest(key: str, known, cutoff: float = 0.6) -> str | None:
    """The entry of ``known`` most like ``key`` (difflib ratio >= ``cutoff``), for "did you mean" hints."""
    import difflib

    matches = difflib.get_close_matches(key, sorted(known), n=1, cutoff=cutoff)
    return matches[0] if matches else None
