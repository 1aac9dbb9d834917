"""Synchronous Hyperband as a pure policy: events in, decisions out (no Ray).

Reference: L. Li, K. Jamieson, G. DeSalvo, A. Rostamizadeh, A. Talwalkar, "Hyperband: A Novel
Bandit-Based Approach to Hyperparameter Optimization", JMLR 18(185), 2018, Algorithm 1.

Glossary
--------
``t``        progress in units of the adapter's ``time_attr``
``r``        ``grace_period``: the smallest budget a trial gets
``R``        ``max_t``: a trial reaching ``t >= R`` is finished (not a rung)
``eta``      reduction factor: each rung keeps the best ``floor(n / eta)`` of its ``n``
``s_max``    number of rungs of the most aggressive bracket: ``len(rung_levels(r, eta, R))``
``b``        bracket index, ``0 .. s_max``; bracket ``b`` has ``s = s_max - b`` rungs at
             ``r * eta**(b + k)``, ``k = 0 .. s - 1`` (as :func:`schedulers.core.asha.rung_levels`)
``n_b``      configurations bracket ``b`` starts: ``ceil((s_max + 1) / (s + 1) * eta**s)``
             (Algorithm 1, ``n``)
``k``        the rung a bracket is at: its members run to rung ``k``, wait there (PAUSE), and
             when all have arrived the rung *closes*

Rules
-----
* New trials fill brackets in Hyperband's order ``b = 0, 1, .., s_max`` (most aggressive
  first), ``n_b`` trials each, then a new round of brackets starts.
* Synchronous successive halving inside a bracket: a member reaching rung ``k`` is recorded
  there and held (``Pause``). The rung closes when the bracket is full (or no trial will be
  added any more: ``no_new_trials``) and every live member has arrived; then the best
  ``max(1, floor(n / eta))`` finite arrivals are promoted (``Resume``) and the others stopped
  (Algorithm 1 keeps ``floor(n_i / eta)``, which is >= 1 for every full bracket; the ``max``
  only matters for a bracket cut short by the end of the experiment).
* A non-finite value (NaN, +-inf) is recorded (it counts in ``n`` and ranks last) and the
  trial is stopped at once: it is never promoted.
* Ties are broken by a uniform tie key drawn from the seeded generator when the entry is
  recorded, so decisions are reproducible.
* A trial that comes back to a rung it was recorded at (retried, resumed) keeps its record.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping

import numpy as np

from schedulers.core.asha import rung_levels
from schedulers.core.decisions import Action, Decision, Plan, Reason, Status, for_action
from search_algs.errors import TuneorchError

STATE_FORMAT = "tuneorch.hyperband"
STATE_VERSION = 1
MODES = ("min", "max")


class HyperbandConfigError(TuneorchError, ValueError):
    """A Hyperband option is invalid (the message names the option, the rule, the value, the fix)."""


class HyperbandStateError(TuneorchError, ValueError):
    """A saved Hyperband state cannot be used."""


def bracket_sizes(grace_period: float, eta: float, max_t: float) -> tuple[int, ...]:
    """``n_b`` for ``b = 0 .. s_max`` (Algorithm 1).

    >>> bracket_sizes(1, 3, 27)
    (27, 12, 6, 4)
    """
    s_max = len(rung_levels(grace_period, eta, max_t))
    return tuple(math.ceil((s_max + 1) / (s + 1) * eta**s - 1e-9) for s in range(s_max, -1, -1))


def validate_options(grace_period: Any, eta: Any, max_t: Any, mode: Any = "min") -> None:
    for name, value, low in (("grace_period", grace_period, 1), ("reduction_factor", eta, 2),
                             ("max_t", max_t, 1)):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) \
                or value < low:
            raise HyperbandConfigError(f"Hyperband: {name} must be a finite number >= {low}, got {value!r}; "
                                       f"pass e.g. {name}={max(low, 3)}")
    if max_t < grace_period:
        raise HyperbandConfigError(f"Hyperband: max_t must be >= grace_period, got max_t={max_t!r} and "
                                   f"grace_period={grace_period!r}; raise max_t or lower grace_period")
    if mode not in MODES:
        raise HyperbandConfigError(f"Hyperband: mode must be 'min' or 'max', got {mode!r}")


@dataclass
class Member:
    bracket: int  # index into Hyperband.brackets (round * (s_max + 1) + b)
    status: Status = Status.ACTIVE
    rungs: dict = field(default_factory=dict)  # k -> [value or None, nonfinite repr or None, tie]
    paused_at: int | None = None

    @property
    def level(self) -> int:
        return max(self.rungs) if self.rungs else -1

    def to_json(self) -> dict:
        return {"bracket": self.bracket, "status": self.status.value, "paused_at": self.paused_at,
                "rungs": {str(k): v for k, v in self.rungs.items()}}

    @classmethod
    def from_json(cls, d: Mapping) -> "Member":
        return cls(int(d["bracket"]), Status(d["status"]), {int(k): list(v) for k, v in d["rungs"].items()},
                   d["paused_at"])


class Hyperband:
    """The synchronous Hyperband policy for one experiment.

    Args:
        grace_period: ``r``, the first rung of the most aggressive bracket, ``>= 1``.
        eta: reduction factor, ``>= 2``.
        max_t: ``R``, ``>= grace_period``.
        mode: ``"min"`` or ``"max"``.
        rng: the generator of every random draw (tie keys); default ``default_rng(seed)``.
        seed: seeds the default generator (kept in the options).
        context: JSON-serialisable labels stored with the state and checked on load.
    """

    def __init__(self, grace_period: float = 1, eta: float = 3, max_t: float = 81, mode: str = "min",
                 seed: int | None = None, context: Mapping[str, Any] | None = None,
                 rng: np.random.Generator | None = None):
        validate_options(grace_period, eta, max_t, mode)
        self.grace_period, self.eta, self.max_t, self.mode, self.seed = grace_period, eta, max_t, mode, seed
        self.context = dict(context or {})
        self.rng = rng if rng is not None else np.random.default_rng(seed)
        self.s_max = len(rung_levels(grace_period, eta, max_t))
        self.sizes = bracket_sizes(grace_period, eta, max_t)
        self.trials: dict[str, Member] = {}
        self.brackets: list[list[str]] = []  # members of each bracket opened so far
        self.at: list[int] = []  # the rung each bracket is at
        self.version = 0

    # ---- arithmetic ------------------------------------------------------------------------

    def levels(self, bracket: int) -> tuple:
        """Rung milestones of bracket number ``bracket`` (any round)."""
        return rung_levels(self.grace_period, self.eta, self.max_t, bracket % (self.s_max + 1))

    def _size(self, bracket: int) -> int:
        return self.sizes[bracket % (self.s_max + 1)]

    # ---- events ------------------------------------------------------------------------------

    def add(self, trial_id: str) -> int:
        """A trial was added (new, retried or resumed); returns its bracket number."""
        member = self.trials.get(trial_id)
        if member is None:
            if not self.brackets or len(self.brackets[-1]) >= self._size(len(self.brackets) - 1):
                self.brackets.append([])
                self.at.append(0)
            self.brackets[-1].append(trial_id)
            member = self.trials[trial_id] = Member(len(self.brackets) - 1)
            self._changed()
        elif member.status is Status.ERRORED:
            member.status = Status.ACTIVE
            self._changed()
        return member.bracket

    def decide(self, trial_id: str, t: float, value: float) -> Decision:
        if trial_id not in self.trials:
            self.add(trial_id)
        m = self.trials[trial_id]
        if m.status in (Status.STOPPED, Status.FINISHED):
            return for_action(trial_id, Action.STOP, Reason.NOT_LIVE)
        if t >= self.max_t:
            m.status, m.paused_at = Status.FINISHED, None
            self._changed()
            return for_action(trial_id, Action.STOP, Reason.MAX_T)
        levels = self.levels(m.bracket)
        k = self.at[m.bracket]
        if k >= len(levels) or t < levels[k]:
            return for_action(trial_id, Action.CONTINUE, Reason.NOT_DUE)
        if k in m.rungs:  # already recorded at the open rung: hold it there again
            m.status, m.paused_at = Status.PAUSED, k
            self._changed()
            return for_action(trial_id, Action.PAUSE, Reason.HELD)
        value = float(value)
        finite = math.isfinite(value)
        m.rungs[k] = [value if finite else None, None if finite else repr(value), float(self.rng.random())]
        self._changed()
        if not finite:
            m.status = Status.STOPPED
            return for_action(trial_id, Action.STOP, Reason.NONFINITE)
        m.status, m.paused_at = Status.PAUSED, k
        return for_action(trial_id, Action.PAUSE, Reason.HELD)

    def on_result(self, trial_id: str, t: float, value: float) -> Action:
        return self.decide(trial_id, t, value).action

    def on_complete(self, trial_id: str) -> None:
        m = self.trials.get(trial_id)
        if m is not None and m.status in (Status.ACTIVE, Status.PAUSED):
            m.status, m.paused_at = Status.FINISHED, None
            self._changed()

    def on_error(self, trial_id: str) -> None:
        m = self.trials.get(trial_id)
        if m is not None and m.status in (Status.ACTIVE, Status.PAUSED):
            m.status, m.paused_at = Status.ERRORED, None
            self._changed()

    def on_remove(self, trial_id: str) -> None:
        self.mark_stopped(trial_id)

    # ---- closing rungs -----------------------------------------------------------------------

    def plan(self, paused: Iterable[str], live: Iterable[str], no_new_trials: bool) -> Plan:
        """Close every rung that can close, then say which held trials to promote and to stop.

        Closing a rung moves its bracket on (recorded); the rest is derived from the records
        each time, so a trial the host had not paused yet when its rung closed is decided at a
        later call, once it is paused. Args as :meth:`schedulers.core.asha.ASHA.plan`."""
        paused, live = set(paused), set(live)
        for b, members in enumerate(self.brackets):
            k = self.at[b]
            if k >= len(self.levels(b)):
                continue
            full = len(members) >= self._size(b) or no_new_trials
            waiting = [tid for tid in members if tid in live and self.trials[tid].status in
                       (Status.ACTIVE, Status.PAUSED, Status.ERRORED) and k not in self.trials[tid].rungs]
            if full and not waiting:
                self.at[b] = k + 1
                self._changed()
        promote: list[tuple[float, tuple, str]] = []
        stop: list[str] = []
        for tid in paused:
            m = self.trials.get(tid)
            if m is None or m.status is not Status.PAUSED or m.paused_at is None \
                    or self.at[m.bracket] <= m.paused_at:
                continue
            k = m.paused_at
            if tid in self._kept(m.bracket, k):
                promote.append((-self.levels(m.bracket)[k], self._rank_key(tid, k), tid))
            else:
                stop.append(tid)
        promote.sort()
        return Plan(tuple(tid for *_, tid in promote), tuple(sorted(stop)))

    def _kept(self, bracket: int, k: int) -> set[str]:
        """The trials of a closed rung that go on: the best ``max(1, floor(n / eta))`` arrivals,
        finite values only."""
        ranked = sorted((t for t in self.brackets[bracket] if k in self.trials[t].rungs),
                        key=lambda t: self._rank_key(t, k))
        quota = max(1, math.floor(len(ranked) / self.eta)) if ranked else 0
        return {t for t in ranked[:quota] if self.trials[t].rungs[k][1] is None}

    def mark_promoted(self, trial_id: str) -> None:
        m = self.trials[trial_id]
        if m.status is not Status.PAUSED:
            raise HyperbandStateError(f"Hyperband: only a paused trial can be promoted; trial "
                                      f"{trial_id!r} is {m.status.value}")
        m.status, m.paused_at = Status.ACTIVE, None
        self._changed()

    def mark_stopped(self, trial_id: str) -> None:
        m = self.trials.get(trial_id)
        if m is not None and m.status not in (Status.STOPPED, Status.FINISHED):
            m.status, m.paused_at = Status.STOPPED, None
            self._changed()

    # ---- queries -----------------------------------------------------------------------------

    def stopped_at(self, trial_id: str) -> float | None:
        """The rung milestone where the trial was stopped, or None."""
        m = self.trials.get(trial_id)
        if m is None or m.status is not Status.STOPPED or m.level < 0:
            return None
        return self.levels(m.bracket)[m.level]

    def summary(self) -> str:
        return "; ".join(f"bracket {b} ({len(ms)}/{self._size(b)} trials) at rung {self.at[b]}"
                         for b, ms in enumerate(self.brackets)) or "no trials yet"

    def _rank_key(self, tid: str, k: int) -> tuple:
        value, nonfinite, tie = self.trials[tid].rungs[k]
        loss = 0.0 if value is None else (value if self.mode == "min" else -value)
        return (nonfinite is not None, loss, tie, tid)

    def _changed(self) -> None:
        self.version += 1

    # ---- persistence -------------------------------------------------------------------------

    def options(self) -> dict:
        return {"grace_period": self.grace_period, "eta": self.eta, "max_t": self.max_t, "mode": self.mode,
                "seed": self.seed, "context": self.context}

    def to_dict(self) -> dict:
        return {"format": STATE_FORMAT, "version": STATE_VERSION, "options": self.options(),
                "rng": self.rng.bit_generator.state, "brackets": self.brackets, "at": self.at,
                "trials": {tid: m.to_json() for tid, m in self.trials.items()}}

    def load_dict(self, data: Mapping, source: str = "state") -> None:
        if not isinstance(data, Mapping) or data.get("format") != STATE_FORMAT \
                or data.get("version") != STATE_VERSION:
            raise HyperbandStateError(f"Hyperband: {source} is not a {STATE_FORMAT} state of version "
                                      f"{STATE_VERSION}; pass the state file this scheduler wrote")
        saved, mine = json.loads(json.dumps(data["options"])), json.loads(json.dumps(self.options()))
        if saved != mine:
            raise HyperbandStateError(f"Hyperband: {source} was written with other options ({saved} vs now "
                                      f"{mine}); resume with the same options, or use a new state file")
        self.rng.bit_generator.state = data["rng"]
        self.brackets = [list(b) for b in data["brackets"]]
        self.at = [int(k) for k in data["at"]]
        self.trials = {tid: Member.from_json(m) for tid, m in data["trials"].items()}
        self._changed()
