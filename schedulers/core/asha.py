"""Asynchronous successive halving (ASHA) as a pure policy: events in, decisions out.

Reference: L. Li, K. Jamieson, A. Rostamizadeh, E. Gonina, J. Ben-tzur, M. Hardt, B. Recht,
A. Talwalkar, "A System for Massively Parallel Hyperparameter Tuning", MLSys 2020
(arXiv:1810.05934), Algorithm 2 (promotion) and Section 3.3 (early stopping).

Nothing here imports Ray. The Ray Tune adapter (:mod:`schedulers.asha`) feeds events in
(``add``, ``decide``, ``on_complete``, ``on_error``, ``on_remove``) and carries the returned
decisions out: the shared vocabulary of :mod:`schedulers.core.decisions` (``Continue`` /
``Pause`` / ``Stop`` with a ``Reason``, and :class:`Plan` for the promotion variant).
``on_result`` is the short form of ``decide`` that returns the bare :class:`Action`.

Glossary
--------
``t``         progress of a trial in units of the adapter's ``time_attr`` (e.g. iterations)
``r``         ``grace_period``, the smallest amount of ``t`` a trial is given
``eta``       reduction factor: a rung lets the best ``1/eta`` of its arrivals go on
``R``         ``max_t``: a trial reaching ``t >= R`` is finished
``s``         bracket index. Bracket ``s`` has rungs ``r * eta**(s + k)``, ``k = 0, 1, ...``,
              all strictly below ``R``. ``R`` itself is not a rung: reaching it ends a trial.
``k``         rung index inside a bracket (0 = lowest)
``n``         number of trials recorded at a rung so far (every arrival counts, including
              non-finite ones and trials that were stopped there)
``loss``      the reported value, sign-flipped for ``mode="max"``: smaller is better below
``rank``      1-based position at a rung, ordered by (non-finite last, loss, tie key)
``tie key``   a uniform draw from the seeded generator, made when the entry is recorded;
              equal losses are ordered by it, so ties are random yet reproducible
``level``     the highest rung index a trial has been recorded at (-1 before the first)

Arrival
-------
A trial arrives at rung ``k`` the first time a report has ``t >= milestone_k``. When one
report crosses several rungs at once (``time_attr="time_total_s"``), it is recorded and
judged only at the highest rung it crossed: comparing a value measured at ``t`` with values
measured at a much lower milestone would favour it. Each (trial, rung) is recorded once;
the decision is stored with the entry, and a trial that comes back to a rung it already
passed (retried after a failure, resumed from an older checkpoint) gets the stored decision
again, so a resumed experiment decides as the uninterrupted one did.

Rounding (deliberate)
---------------------
* Stopping variant: a trial arriving at a rung continues iff ``rank <= ceil(n / eta)``,
  where ``n`` includes the trial itself. ``ceil`` lets the first arrival at an empty rung
  go on (there is nothing to compare it with yet) and always keeps at least one trial.
* Promotion variant: a paused trial is promotable iff ``rank <= floor(n / eta)`` and it has
  not been promoted from that rung yet (Algorithm 2: one promotion per ``eta`` arrivals, so
  a rung needs ``eta`` results before it promotes anything). When a rung is *final* (no
  further trial can ever arrive there, see :meth:`ASHA.plan`), its quota becomes
  ``ceil(n / eta)`` as in the stopping variant, so its best trial still moves on even if
  fewer than ``eta`` trials arrived; paused trials outside that quota can never be promoted
  and are returned for stopping.

Non-finite values
-----------------
A NaN or +-inf value at a rung is recorded (it counts in ``n`` and ranks last: a diverged
trial is a real, losing sample) and the trial is stopped; it is never continued or
promoted.

Several objectives and constraints
----------------------------------
With ``mode`` a list (one entry per objective), a reported value is a sequence (user's units)
and ``decide`` takes the trial's total constraint ``violation`` (0 = feasible). A rung is then
ordered as in multi-objective ASHA (Schmucker, Donini, Zafar, Salinas, Archambeau, "Multi-objective
Asynchronous Successive Halving", arXiv:2106.12639, 2021), by
:func:`search_algs.core.pareto.feasibility_order`: feasible entries by non-dominated rank, ties by
larger crowding distance, then the seeded tie key; infeasible entries after them by total
violation; non-finite entries last. The quotas are those above.

Brackets
--------
Each new trial is assigned a bracket at random with probability proportional to the number
of configurations synchronous Hyperband starts in that bracket (Li et al. 2018):
``eta**n_s / (n_s + 1)`` for a bracket with ``n_s`` rungs, so the aggressive brackets get
most trials. With one bracket no draw is made.
"""

from __future__ import annotations

import bisect
import enum
import json
import math
import numbers
import os
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any, Iterable, Mapping

import numpy as np

from schedulers.core.decisions import Action, Decision, Plan, Reason, Status, for_action
from schedulers.core.state_file import write_json_atomic
from search_algs.core.pareto import feasibility_order
from search_algs.errors import TuneorchError

__all__ = ["ASHA", "Action", "Plan", "Status", "ASHAConfigError", "ASHAStateError", "rung_levels",
           "max_brackets", "bracket_probabilities", "continue_quota", "promotion_quota",
           "validate_options"]

STATE_FORMAT = "tuneorch.asha"
STATE_VERSION = 1

VARIANTS = ("stopping", "promotion")
MODES = ("min", "max")


class ASHAConfigError(TuneorchError, ValueError):
    """An ASHA option is invalid (the message names the option, the rule, the value, the fix)."""


class ASHAStateError(TuneorchError, ValueError):
    """A saved ASHA state cannot be used (unreadable, or written for other options)."""


@dataclass
class RungEntry:
    """One trial's record at one rung."""

    value: float | None  # the reported value (user's units); None when non-finite
    nonfinite: str | None  # "nan", "inf" or "-inf" when the value was not finite
    tie: float  # tie key, uniform in [0, 1) from the seeded generator
    action: Action  # the decision made on arrival
    promoted: bool = False  # promotion variant: promoted from this rung
    violation: float = 0.0  # several objectives / constraints: total constraint violation

    def to_json(self) -> dict:
        out = {"value": self.value, "nonfinite": self.nonfinite, "tie": self.tie,
               "action": self.action.value, "promoted": self.promoted}
        if self.violation:
            out["violation"] = self.violation if math.isfinite(self.violation) else "inf"
        return out

    @classmethod
    def from_json(cls, d: Mapping) -> "RungEntry":
        return cls(d["value"], d["nonfinite"], float(d["tie"]), Action(d["action"]),
                   bool(d["promoted"]), float(d.get("violation", 0.0)))


@dataclass
class TrialState:
    bracket: int
    status: Status = Status.ACTIVE
    rungs: dict[int, RungEntry] = field(default_factory=dict)  # rung index -> entry
    paused_at: int | None = None

    @property
    def level(self) -> int:
        return max(self.rungs) if self.rungs else -1

    def to_json(self) -> dict:
        return {"bracket": self.bracket, "status": self.status.value, "paused_at": self.paused_at,
                "rungs": {str(k): e.to_json() for k, e in sorted(self.rungs.items())}}

    @classmethod
    def from_json(cls, d: Mapping) -> "TrialState":
        return cls(int(d["bracket"]), Status(d["status"]),
                   {int(k): RungEntry.from_json(e) for k, e in d["rungs"].items()},
                   None if d["paused_at"] is None else int(d["paused_at"]))


# ---- rung arithmetic (pure functions) ------------------------------------------------


def rung_levels(grace_period: float, eta: float, max_t: float, bracket: int = 0) -> tuple:
    """Milestones of ``bracket``: ``grace_period * eta**(bracket + k)`` below ``max_t``.

    >>> rung_levels(1, 3, 27)
    (1, 3, 9)
    >>> rung_levels(1, 3, 27, bracket=2)
    (9,)
    """
    levels = []
    k = bracket
    while True:
        milestone = grace_period * eta**k
        if milestone >= max_t:
            return tuple(levels)
        levels.append(milestone)
        k += 1


def max_brackets(grace_period: float, eta: float, max_t: float) -> int:
    """How many brackets fit: one per rung of bracket 0, plus one without any rung."""
    return len(rung_levels(grace_period, eta, max_t)) + 1


def bracket_probabilities(grace_period: float, eta: float, max_t: float, brackets: int) -> np.ndarray:
    """Probability of each bracket, proportional to Hyperband's ``eta**n_s / (n_s + 1)``."""
    sizes = np.array([len(rung_levels(grace_period, eta, max_t, s)) for s in range(brackets)],
                     dtype=float)  # (brackets,) rungs per bracket
    weights = np.exp(sizes * math.log(eta) - np.log1p(sizes))
    return weights / weights.sum()


def _fraction(x: float) -> Fraction:
    return Fraction(x) if isinstance(x, numbers.Integral) else Fraction(str(float(x)))


def continue_quota(n: int, eta: float) -> int:
    """Stopping variant (and final rungs): ``ceil(n / eta)`` trials of a rung go on."""
    return math.ceil(Fraction(n) / _fraction(eta))


def promotion_quota(n: int, eta: float) -> int:
    """Promotion variant, rung still open: ``floor(n / eta)`` trials may be promoted."""
    return math.floor(Fraction(n) / _fraction(eta))


# ---- validation ----------------------------------------------------------------------


def _number(name: str, value: Any, minimum: float, fix: str) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value):
        raise ASHAConfigError(f"ASHA: {name} must be a finite number >= {minimum}, "
                              f"got {value!r} ({type(value).__name__}); {fix}")
    if value < minimum:
        raise ASHAConfigError(f"ASHA: {name} must be >= {minimum}, got {value!r}; {fix}")
    return value


def validate_options(grace_period: Any, eta: Any, max_t: Any, brackets: Any,
                     mode: Any = "min", variant: Any = "stopping", seed: Any = None) -> None:
    """Raise :class:`ASHAConfigError` on the first invalid option."""
    _number("grace_period", grace_period, 1, "pass grace_period=1 or more "
            "(in units of time_attr)")
    _number("eta (Ray's reduction_factor)", eta, 2,
            "pass eta=2 or more (eta=3 keeps the best third at each rung)")
    _number("max_t", max_t, 1, "pass max_t >= grace_period (in units of time_attr)")
    if max_t < grace_period:
        raise ASHAConfigError(f"ASHA: max_t must be >= grace_period, got max_t={max_t!r} and "
                              f"grace_period={grace_period!r}; raise max_t or lower grace_period")
    if isinstance(brackets, bool) or not isinstance(brackets, numbers.Integral) or brackets < 1:
        raise ASHAConfigError(f"ASHA: brackets must be an integer >= 1, got {brackets!r}; "
                              f"pass brackets=1 (plain ASHA) or more")
    most = max_brackets(grace_period, eta, max_t)
    if brackets > most:
        raise ASHAConfigError(
            f"ASHA: brackets must be <= {most} for grace_period={grace_period!r}, eta={eta!r}, "
            f"max_t={max_t!r} (bracket s starts at grace_period*eta**s, which must stay below "
            f"max_t, plus one bracket without rungs), got brackets={brackets!r}; pass "
            f"brackets<={most} or raise max_t")
    if isinstance(mode, (list, tuple)) and mode and all(m in MODES for m in mode):
        pass  # several objectives (or constraints): one mode per objective
    elif mode not in MODES:
        raise ASHAConfigError(f"ASHA: mode must be 'min' or 'max', got {mode!r}; "
                              f"pass mode='min' to minimise the metric or mode='max' to maximise it")
    if variant not in VARIANTS:
        raise ASHAConfigError(f"ASHA: variant must be one of {VARIANTS}, got {variant!r}; pass "
                              f"variant='stopping' (default) or variant='promotion'")
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, numbers.Integral)
                             or seed < 0):
        raise ASHAConfigError(f"ASHA: seed must be None or an integer >= 0, got {seed!r}; "
                              f"pass seed=0 (or any non-negative integer) for reproducible runs")


# ---- the policy ----------------------------------------------------------------------


class ASHA:
    """The ASHA policy for one experiment.

    Args:
        grace_period: first rung of bracket 0 (``r``), ``>= 1``.
        eta: reduction factor, ``>= 2``.
        max_t: a trial with ``t >= max_t`` is finished (``R``), ``>= grace_period``.
        brackets: number of brackets, ``1 <= brackets <= max_brackets(...)``.
        mode: ``"min"`` or ``"max"``; or a list, one per objective (see "Several objectives and
            constraints" above).
        variant: ``"stopping"`` (decide at each rung: CONTINUE or STOP) or ``"promotion"``
            (PAUSE at each rung; promote paused trials through :meth:`plan`).
        seed: seeds the one generator behind bracket draws and tie keys.
        context: JSON-serialisable labels stored with the state and checked on load
            (the adapter puts ``metric`` and ``time_attr`` there).
    """

    def __init__(self, grace_period: float = 1, eta: float = 3, max_t: float = 100,
                 brackets: int = 1, mode: str = "min", variant: str = "stopping",
                 seed: int | None = None, context: Mapping[str, Any] | None = None,
                 stop_last_trials: bool = True):
        validate_options(grace_period, eta, max_t, brackets, mode, variant, seed)
        if not isinstance(stop_last_trials, bool):
            raise ASHAConfigError(f"ASHA: stop_last_trials must be True or False, got {stop_last_trials!r}; "
                                  f"pass stop_last_trials=True (stop trials at max_t, default) or False")
        self.stop_last_trials = stop_last_trials
        self.grace_period, self.eta, self.max_t = grace_period, eta, max_t
        self.multi = isinstance(mode, (list, tuple))
        mode = list(mode) if self.multi else mode
        self.brackets, self.mode, self.variant, self.seed = int(brackets), mode, variant, seed
        self.context = dict(context or {})
        self.levels = tuple(rung_levels(grace_period, eta, max_t, s) for s in range(self.brackets))
        self._probs = bracket_probabilities(grace_period, eta, max_t, self.brackets)
        self.rng = np.random.default_rng(seed)
        self.trials: dict[str, TrialState] = {}
        self._rungs: dict[tuple[int, int], dict[str, RungEntry]] = {}  # (bracket, k) -> entries
        # (bracket, k) -> rank keys of its entries, sorted; built on first use, kept sorted by
        # insertion, so a rung arrival costs O(log n) comparisons instead of a full sort.
        self._sorted_keys: dict[tuple[int, int], list[tuple]] = {}
        self.version = 0  # bumped on every change of state (the adapter saves when it moves)

    # ---- events ------------------------------------------------------------------------

    def add(self, trial_id: str) -> int:
        """A trial was added (new, retried or resumed); returns its bracket.

        A known trial keeps its bracket and history; an errored one becomes active again.
        """
        state = self.trials.get(trial_id)
        if state is None:
            bracket = 0 if self.brackets == 1 else int(self.rng.choice(self.brackets, p=self._probs))
            state = self.trials[trial_id] = TrialState(bracket)
            self._changed()
        elif state.status is Status.ERRORED:
            state.status = Status.ACTIVE
            self._changed()
        return state.bracket

    def on_result(self, trial_id: str, t: float, value: float) -> Action:
        """A trial reported ``value`` at progress ``t``; what should it do? (The bare
        :class:`Action` of :meth:`decide`.)"""
        return self.decide(trial_id, t, value).action

    def decide(self, trial_id: str, t: float, value: Any, violation: float = 0.0) -> Decision:
        """A trial reported ``value`` at progress ``t``: ``Continue``, ``Pause`` or ``Stop``,
        with the :class:`Reason`. Several objectives: ``value`` is one number per objective and
        ``violation`` the total constraint violation."""
        if trial_id not in self.trials:
            self.add(trial_id)
        state = self.trials[trial_id]
        if state.status is Status.FINISHED and not self.stop_last_trials:
            return for_action(trial_id, Action.CONTINUE, Reason.MAX_T)  # runs on past max_t
        if state.status in (Status.STOPPED, Status.FINISHED):
            return for_action(trial_id, Action.STOP, Reason.NOT_LIVE)
        if t >= self.max_t:
            state.status = Status.FINISHED
            state.paused_at = None
            self._changed()
            return for_action(trial_id, Action.STOP if self.stop_last_trials else Action.CONTINUE,
                              Reason.MAX_T)
        k = self._rung_reached(state.bracket, t)
        if k is None:
            return for_action(trial_id, Action.CONTINUE, Reason.NOT_DUE)  # below the first rung
        if state.status is Status.PAUSED:
            # Running although held (resumed by something other than a promotion): hold it
            # again once it is back at its rung.
            if k >= state.paused_at:
                return for_action(trial_id, Action.PAUSE, Reason.HELD)
            return for_action(trial_id, Action.CONTINUE, Reason.NOT_DUE)
        if k <= state.level:
            entry = state.rungs.get(k)  # already judged here: repeat the decision
            if entry is None or entry.promoted or entry.action is Action.CONTINUE:
                return for_action(trial_id, Action.CONTINUE, Reason.REPEATED)
            if entry.action is Action.PAUSE:
                state.status, state.paused_at = Status.PAUSED, k
            else:
                state.status = Status.STOPPED
            self._changed()
            return for_action(trial_id, entry.action, Reason.REPEATED)
        action = self._arrive(trial_id, state, k, value, violation)
        entry = state.rungs[k]
        reason = (Reason.NONFINITE if entry.nonfinite is not None else
                  Reason.RUNG_CUT if action is Action.STOP else
                  Reason.HELD if action is Action.PAUSE else Reason.RUNG_KEPT)
        return for_action(trial_id, action, reason)

    def on_complete(self, trial_id: str) -> None:
        """The trial ended (on its own, or after a STOP); it will not report again."""
        state = self.trials.get(trial_id)
        if state is not None and state.status in (Status.ACTIVE, Status.PAUSED):
            state.status = Status.FINISHED
            state.paused_at = None
            self._changed()

    def on_error(self, trial_id: str) -> None:
        """The trial failed. Its history stays: a retried trial is re-added under its id.

        A trial that failed while being paused (its checkpoint was being saved) is no longer
        held: if retried, it runs up to its rung again and gets the stored PAUSE again.
        """
        state = self.trials.get(trial_id)
        if state is not None and state.status in (Status.ACTIVE, Status.PAUSED):
            state.status, state.paused_at = Status.ERRORED, None
            self._changed()

    def on_remove(self, trial_id: str) -> None:
        """A paused or pending trial was removed (stopped without running again)."""
        self.mark_stopped(trial_id)

    # ---- promotion variant -------------------------------------------------------------

    def plan(self, paused: Iterable[str], live: Iterable[str], no_new_trials: bool) -> Plan:
        """Which paused trials to promote now and which can never be promoted.

        Pure: nothing changes until the caller reports back through :meth:`mark_promoted`
        and :meth:`mark_stopped` (or :meth:`on_remove`).

        Args:
            paused: ids of trials the host holds paused (only those held here too count).
            live: ids of every trial that may still run: pending, running or paused.
            no_new_trials: True when the host will add no further trial (its searcher is
                finished, or nothing at all is running or pending, so waiting is a deadlock).

        Rung ``k`` of a bracket is *final* when ``no_new_trials`` and every live trial of the
        bracket has level ``>= k`` (no one below it can still arrive). Rungs are settled bottom
        up, so a paused trial found never-promotable at rung ``k`` no longer keeps rung
        ``k + 1`` open.
        """
        if self.variant != "promotion":
            return Plan()
        paused, live = set(paused), set(live)
        promotable: list[tuple[float, int, int, str]] = []  # (-milestone, rank, bracket, id)
        never: list[str] = []
        for b, levels in enumerate(self.levels):
            dead: set[str] = set()
            members = [tid for tid in live if tid in self.trials and self.trials[tid].bracket == b]
            for k, milestone in enumerate(levels):
                final = no_new_trials and all(self.trials[tid].level >= k
                                              for tid in members if tid not in dead)
                ranked = self._ranked(b, k)
                quota = (continue_quota if final else promotion_quota)(len(ranked), self.eta)
                for rank, tid in enumerate(ranked, start=1):
                    state = self.trials[tid]
                    if (tid not in paused or state.status is not Status.PAUSED
                            or state.paused_at != k):
                        continue
                    if rank <= quota and state.rungs[k].nonfinite is None:
                        promotable.append((-milestone, rank, b, tid))
                    elif final:
                        dead.add(tid)
                        never.append(tid)
        promotable.sort()
        return Plan(tuple(tid for *_, tid in promotable), tuple(sorted(never)))

    def mark_promoted(self, trial_id: str) -> None:
        """The host resumes ``trial_id``, which was paused at a rung."""
        state = self.trials[trial_id]
        if state.status is not Status.PAUSED:
            raise ASHAStateError(f"ASHA: only a paused trial can be promoted; trial {trial_id!r} "
                                 f"is {state.status.value}")
        state.rungs[state.paused_at].promoted = True
        state.status, state.paused_at = Status.ACTIVE, None
        self._changed()

    def mark_stopped(self, trial_id: str) -> None:
        state = self.trials.get(trial_id)
        if state is not None and state.status not in (Status.STOPPED, Status.FINISHED):
            state.status, state.paused_at = Status.STOPPED, None
            self._changed()

    # ---- queries -----------------------------------------------------------------------

    def rung_records(self) -> dict[tuple[int, float], dict[str, float | None]]:
        """``{(bracket, milestone): {trial_id: value}}`` (``None`` for a non-finite value)."""
        out: dict[tuple[int, float], dict[str, float | None]] = {}
        for b, levels in enumerate(self.levels):
            for k, milestone in enumerate(levels):
                out[(b, milestone)] = {tid: e.value for tid, e in
                                       sorted(self._rungs.get((b, k), {}).items())}
        return out

    def rank(self, trial_id: str, k: int) -> tuple[int, int]:
        """``(rank, n)`` of ``trial_id`` at rung ``k`` of its bracket."""
        b = self.trials[trial_id].bracket
        if self.multi:
            ranked = self._ranked(b, k)
            return ranked.index(trial_id) + 1, len(ranked)
        keys = self._keys(b, k)
        entry = self._rungs[(b, k)][trial_id]
        return bisect.bisect_left(keys, self._rank_key(trial_id, entry)) + 1, len(keys)

    def _rank_key(self, trial_id: str, entry: "RungEntry") -> tuple:
        """Best first: finite before non-finite, then loss, then the seeded tie key, then id."""
        return (entry.nonfinite is not None, 0.0 if entry.value is None else self._loss(entry.value),
                entry.tie, trial_id)

    def _keys(self, bracket: int, k: int) -> list[tuple]:
        if self.multi:
            return self._pareto_keys(bracket, k)
        keys = self._sorted_keys.get((bracket, k))
        if keys is None:
            entries = self._rungs.get((bracket, k), {})
            keys = self._sorted_keys[(bracket, k)] = sorted(self._rank_key(t, e) for t, e in entries.items())
        return keys

    def _pareto_keys(self, bracket: int, k: int) -> list[tuple]:
        """Several objectives: ``(position, trial_id)`` best first, from the whole rung (module
        docstring); recomputed on each call (O(n^2) in the rung's size)."""
        entries = sorted(self._rungs.get((bracket, k), {}).items(), key=lambda item: (item[1].tie, item[0]))
        if not entries:
            return []
        m = len(self.mode)
        Y = np.array([[self._loss(v, j) for j, v in enumerate(e.value)] if e.value is not None
                      else [np.nan] * m for _, e in entries], dtype=float).reshape(len(entries), m)
        order = feasibility_order(Y, [e.violation for _, e in entries])
        return [(pos, entries[i][0]) for pos, i in enumerate(order)]

    def status(self, trial_id: str) -> Status:
        return self.trials[trial_id].status

    def summary(self) -> str:
        lines = []
        for b, levels in enumerate(self.levels):
            parts = []
            for k, milestone in enumerate(levels):
                entries = self._rungs.get((b, k), {})
                finite = [e.value for e in entries.values() if e.nonfinite is None]
                if self.multi:
                    feasible = sum(1 for e in entries.values() if e.nonfinite is None and not e.violation)
                    parts.append(f"t={milestone}: n={len(entries)} feasible={feasible}")
                    continue
                best = (min if self.mode == "min" else max)(finite) if finite else None
                parts.append(f"t={milestone}: n={len(entries)} best={best}")
            lines.append(f"bracket {b}: " + (" | ".join(parts) or "no rungs"))
        return "\n".join(lines)

    # ---- persistence -------------------------------------------------------------------

    def options(self) -> dict:
        return {"grace_period": self.grace_period, "eta": self.eta, "max_t": self.max_t,
                "brackets": self.brackets, "mode": self.mode, "variant": self.variant,
                "seed": self.seed, "context": self.context, "stop_last_trials": self.stop_last_trials}

    def to_dict(self) -> dict:
        return {"format": STATE_FORMAT, "version": STATE_VERSION, "options": self.options(),
                "rung_levels": [list(levels) for levels in self.levels],
                "rng": self.rng.bit_generator.state,
                "trials": {tid: s.to_json() for tid, s in sorted(self.trials.items())}}

    def load_dict(self, data: Mapping, source: str = "state") -> None:
        """Replace this policy's history by a saved one written with the same options."""
        if not isinstance(data, Mapping) or data.get("format") != STATE_FORMAT:
            raise ASHAStateError(f"ASHA: {source} is not an ASHA state (expected format "
                                 f"{STATE_FORMAT!r}); pass the state file this scheduler wrote")
        if data.get("version") != STATE_VERSION:
            raise ASHAStateError(f"ASHA: {source} has state version {data.get('version')!r}, this "
                                 f"code reads version {STATE_VERSION}; use a matching tuneorch")
        saved = json.loads(json.dumps(data["options"]))
        saved.setdefault("stop_last_trials", True)  # states written before the option existed
        mine = json.loads(json.dumps(self.options()))
        diff = sorted(k for k in set(saved) | set(mine) if saved.get(k) != mine.get(k))
        if diff:
            detail = ", ".join(f"{k}: saved {saved.get(k)!r} vs now {mine.get(k)!r}" for k in diff)
            raise ASHAStateError(f"ASHA: {source} was written with other options ({detail}); "
                                 f"resume with the same options, or use a new state file for a "
                                 f"new experiment")
        self.rng.bit_generator.state = data["rng"]
        self.trials = {tid: TrialState.from_json(s) for tid, s in data["trials"].items()}
        self._rungs = {}
        self._sorted_keys = {}
        for tid, state in self.trials.items():
            for k, entry in state.rungs.items():
                self._rungs.setdefault((state.bracket, k), {})[tid] = entry
        self._changed()

    def save(self, path: str | os.PathLike) -> None:
        """Write the state as JSON, atomically (temporary file in the same folder + replace)."""
        write_json_atomic(path, self.to_dict())

    def load(self, path: str | os.PathLike) -> None:
        try:
            with open(path, encoding="utf-8") as f:
                data = json.load(f)
        except (OSError, json.JSONDecodeError) as e:
            raise ASHAStateError(f"ASHA: cannot read state file {os.fspath(path)!r} ({e}); "
                                 f"restore it or pass a new path") from e
        self.load_dict(data, source=f"state file {os.fspath(path)!r}")

    # ---- internals ---------------------------------------------------------------------

    def _changed(self) -> None:
        self.version += 1

    def _rung_reached(self, bracket: int, t: float) -> int | None:
        reached = None
        for k, milestone in enumerate(self.levels[bracket]):
            if t >= milestone:
                reached = k
        return reached

    def _loss(self, value: float, objective: int = 0) -> float:
        mode = self.mode[objective] if self.multi else self.mode
        return value if mode == "min" else -value

    def _ranked(self, bracket: int, k: int) -> list[str]:
        entries = self._rungs.get((bracket, k), {})
        return [key[-1] for key in self._keys(bracket, k)] if entries else []

    def _arrive(self, trial_id: str, state: TrialState, k: int, value: Any, violation: float = 0.0) -> Action:
        if self.multi:
            values = [float(v) for v in value]
            bad = [v for v in values if not math.isfinite(v)]
            finite = not bad
            entry = RungEntry(values if finite else None, None if finite else repr(bad[0]),
                              float(self.rng.random()), Action.CONTINUE, violation=float(violation))
        else:
            value = float(value)
            finite = math.isfinite(value)
            entry = RungEntry(value if finite else None, None if finite else repr(value),
                              float(self.rng.random()), Action.CONTINUE)
        state.rungs[k] = entry
        self._rungs.setdefault((state.bracket, k), {})[trial_id] = entry
        if (state.bracket, k) in self._sorted_keys:
            bisect.insort(self._sorted_keys[(state.bracket, k)], self._rank_key(trial_id, entry))
        if not finite:
            entry.action = Action.STOP
            state.status = Status.STOPPED
        else:
            rank, n = self.rank(trial_id, k)
            if self.variant == "stopping":
                entry.action = Action.CONTINUE if rank <= continue_quota(n, self.eta) else Action.STOP
                if entry.action is Action.STOP:
                    state.status = Status.STOPPED
            elif rank <= promotion_quota(n, self.eta):
                # Promotable on arrival: promote in place instead of pausing and resuming,
                # which would only add a save and a restore.
                entry.promoted = True
            else:
                entry.action = Action.PAUSE
                state.status, state.paused_at = Status.PAUSED, k
        self._changed()
        return entry.action

