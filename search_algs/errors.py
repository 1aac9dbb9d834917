"""Typed errors: every message names the parameter, the constraint, the value and the fix."""


class SpaceError(ValueError):
    """A search space (or a config checked against one) is invalid."""
