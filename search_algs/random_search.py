"""Random search: independent draws from the space's prior, from the searcher's seeded generator."""

from __future__ import annotations

from typing import Any

from search_algs.base import SpaceSearcher


class RandomSearch(SpaceSearcher):
    """Uniform random search over the unit cube (conditional spaces supported).

    Unlike Tune's default generator it draws from one seeded generator, so a seed
    reproduces the run, and it shares the bookkeeping (warm start, save/restore) of
    every other searcher here.
    """

    def propose(self) -> dict[str, Any]:
        return self.space.sample_flat(self.rng)
