"""Search algorithms: one search-space model, numerical cores, and Ray Tune adapters."""

from search_algs.errors import SpaceError
from search_algs.space import Categorical, Float, Int, Param, Space

__all__ = ["Space", "Param", "Float", "Int", "Categorical", "SpaceError"]
