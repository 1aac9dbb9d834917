"""Tree-structured Parzen Estimator as a Ray Tune searcher.

A thin adapter: it turns ``self.history`` and ``self.pending`` into unit-vector arrays, asks
the core (:mod:`search_algs.core.tpe`, where every modelling choice is documented) for the
next unit vector and decodes it. Bookkeeping, ``points_to_evaluate``, warm start and
save/restore come from :class:`search_algs.base.SpaceSearcher`.
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import numpy as np

from search_algs.base import SpaceSearcher
from search_algs.core.tpe import TPE, TPEOptions


class TPESearch(SpaceSearcher):
    """Multivariate, tree-structured TPE with a constant liar for parallel workers.

    Args:
        space, metric, mode, points_to_evaluate, seed: see :class:`SpaceSearcher`.
        n_startup: the model is used once this many trials have finished (at least one of
            them with a finite metric); before that each point is a random draw from the
            space (``Space.sample_flat``), so a run starts exactly like ``RandomSearch``
            with the same seed.
        n_ei_candidates: draws from ``l(x)`` compared per suggestion.
        gamma_fraction, gamma_cap: size of the good set, ``min(ceil(fraction n), cap)``.
        prior_weight: weight of the uniform prior component of both densities.
        full_weight_window: newest members of a set kept at full weight.
        min_bandwidth: absolute floor of the kernel widths (unit space).
        constant_liar: count running trials as bad observations, so concurrent
            suggestions spread out instead of piling onto the current best region.
        bandwidth: kernel widths of numeric parameters: ``"neighbour"`` (per kernel, from
            the gaps to its neighbours) or ``"scott"`` (per parameter, Scott's rule).
        categorical_bandwidth: smoothing of categorical kernels: ``"count"`` (fades as
            ``1 / c``) or ``"scott"``.
        max_set_points: most finished observations each density is built on (default 2000;
            ``None``: all). Beyond it a set is modelled by its best-ranked half and an even
            thinning of the rest (``search_algs.core.tpe.cap_set``), which bounds the cost of
            a suggestion at any history size (p95 12 ms CPU at n = 10,000 here, 91 ms
            uncapped); at or below it nothing changes.

    Give ``Tune`` a :class:`~ray.tune.search.ConcurrencyLimiter` around this searcher to
    run several trials at once (without one Tune keeps only one pending trial).
    """

    def __init__(
        self,
        space: Any = None,
        metric: str | None = None,
        mode: str | None = None,
        points_to_evaluate: Sequence[Mapping] | None = None,
        seed: int | None = None,
        *,
        n_startup: int = 10,
        n_ei_candidates: int = 24,
        gamma_fraction: float = 0.15,
        gamma_cap: int = 25,
        prior_weight: float = 1.0,
        full_weight_window: int = 25,
        min_bandwidth: float = 0.01,
        constant_liar: bool = True,
        bandwidth: str = "neighbour",
        categorical_bandwidth: str = "count",
        max_set_points: int | None = 2000,
    ):
        if isinstance(n_startup, bool) or not isinstance(n_startup, (int, np.integer)) or n_startup < 0:
            raise ValueError(
                f"TPESearch: 'n_startup' must be an int >= 0, got {n_startup!r}; "
                f"use e.g. 10 (the default)"
            )
        self.options = TPEOptions(
            n_ei_candidates=n_ei_candidates,
            gamma_fraction=gamma_fraction,
            gamma_cap=gamma_cap,
            prior_weight=prior_weight,
            full_weight_window=full_weight_window,
            min_bandwidth=min_bandwidth,
            constant_liar=constant_liar,
            bandwidth=bandwidth,
            categorical_bandwidth=categorical_bandwidth,
            max_set_points=max_set_points,
        )
        self.n_startup = int(n_startup)
        super().__init__(space=space, metric=metric, mode=mode,
                         points_to_evaluate=points_to_evaluate, seed=seed)
        self._core: TPE | None = None
        self._core_space = None
        self._encoded: _EncodedHistory | None = None

    def _tpe(self) -> TPE:
        if self._core is None or self._core_space is not self.space:
            self._core, self._core_space = TPE(self.space.dims(), self.options), self.space
        return self._core

    def propose(self) -> dict[str, Any]:
        history = self.history
        if len(history) < self.n_startup or all(obs.failed for obs in history):
            return self.space.sample_flat(self.rng)
        space = self.space
        pending = np.array([space.encode_flat(flat) for flat in self.pending.values()]).reshape(-1, space.dim)
        u = self._tpe().suggest(
            self._encoded_history(),
            [obs.loss for obs in history],
            self.rng,
            budgets=[obs.budget for obs in history],
            censored=[obs.censored for obs in history],
            pending=pending,
        )
        return space.decode_unit(u)

    def _encoded_history(self) -> np.ndarray:
        return encoded_history(self)

    # ---- persistence: the options travel with the snapshot --------------------------------

    def extra_state(self) -> Any:
        return {"options": self.options.as_dict(), "n_startup": self.n_startup}

    def set_extra_state(self, extra: Any) -> None:
        if extra:
            self.options = TPEOptions(**extra["options"])  # snapshots before max_set_points: its default
            self.n_startup = int(extra["n_startup"])
        self._core = None
        self._encoded = None

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        state["_encoded"] = None  # a cache: rebuilt from the history on the next suggestion
        return state


def encoded_history(searcher: Any) -> np.ndarray:
    """``(n, d)`` unit vectors of ``searcher.history`` (TPE and GP-EI). Each observation is
    encoded once and kept in ``searcher._encoded`` (encoding all of them on every call dominated
    the cost of a suggestion at n = 1000), new ones in one batch (``Space.encode_flats``); the
    cache is rebuilt whenever the history is not the one it was built from extended at its end
    (restore, another space), checked by identity."""
    history, cache = searcher.history, getattr(searcher, "_encoded", None)  # absent in old pickles
    if (cache is None or cache.space is not searcher.space or len(cache.obs) > len(history)
            or any(a is not b for a, b in zip(cache.obs, history))):
        cache = searcher._encoded = _EncodedHistory(searcher.space)
    cache.extend(history)
    return cache.X


class _EncodedHistory:
    """Unit vectors of a growing list of observations, in a buffer that doubles when full."""

    def __init__(self, space: Any):
        self.space = space
        self.obs: list = []  # the observations encoded so far (compared by identity)
        self._buf = np.empty((16, space.dim))

    @property
    def X(self) -> np.ndarray:
        return self._buf[: len(self.obs)]  # (n, d)

    def extend(self, history: Sequence) -> None:
        n = len(self.obs)
        if len(history) > self._buf.shape[0]:
            buf = np.empty((max(len(history), 2 * self._buf.shape[0]), self.space.dim))
            buf[:n] = self._buf[:n]
            self._buf = buf
        if len(history) > n:
            new = history[n:]
            self._buf[n: len(history)] = self.space.encode_flats([obs.flat for obs in new])
            self.obs.extend(new)

