"""Population Based Training (PBT) as a pure policy: events in, decisions out.

Reference: M. Jaderberg, V. Dalibard, S. Osindero, W. M. Czarnecki, J. Donahue, A. Razavi,
O. Vinyals, T. Green, I. Dunning, K. Simonyan, C. Fernando, K. Kavukcuoglu, "Population
Based Training of Neural Networks", arXiv:1711.09846 (2017): Section 3 (``ready``,
``exploit`` by truncation selection, ``explore`` by perturbing or resampling) and
Section 4.1 / Figure 2 (the toy problem used in the tests).

Nothing here imports Ray. The Ray Tune adapter (:mod:`schedulers.pbt`) feeds events in
(:meth:`PBT.add`, :meth:`PBT.on_result`, :meth:`PBT.on_complete`, :meth:`PBT.on_error`,
:meth:`PBT.on_remove`) and carries the returned decisions out. An :class:`Exploit` is a
proposal until the adapter, having found the donor's checkpoint, calls :meth:`PBT.commit`
(or :meth:`PBT.abort` when it cannot carry it out); only committed exploits enter the
lineage.

Glossary
--------
``t``            progress of a trial in units of the adapter's ``time_attr``
``interval``     ``perturbation_interval``: a trial is reconsidered every ``interval`` of ``t``
``burn_in``      ``burn_in_period``: no exploit/explore before ``t >= burn_in``
``value``        the reported metric, in the user's units
``score``        ``value`` signed so that higher is better (``-value`` for ``mode="min"``);
                 a non-finite value ranks below every finite one
``common time``  two members are compared at ``min(t_a, t_b)``: the one ahead is judged by
                 its value at its last report at or before that time (see "Ranking")
``member``       a trial of the population; it is *live* until it finishes, fails for good
                 or is removed. Only live members with a score are ranked.
``checkpoint``   ``has_checkpoint=True`` on a result means: a checkpoint of the trial at
                 that ``t`` exists (the report carried one). ``ckpt_time`` is the ``t`` of
                 the latest one taken *since the member's last exploit* (``None`` if none).
``q``            ``quantile_fraction``; with ``N`` ranked members, the bottom and the top
                 quantile each hold ``n_q = min(ceil(q N), floor(N / 2))`` members
                 (none when ``N < 2``)
``target``       a bottom-quantile member that clones a ``donor`` from the top quantile
``donor_time``   ``t`` of the donor checkpoint the target restarts from; the target's
                 progress becomes ``donor_time`` and its new config applies to the steps
                 after it
``generation``   synchronous mode: members meet at a barrier ``b``; the first barrier is
                 ``max(interval, burn_in)``, each closed generation moves it by ``interval``

Rules (the reasons are in :class:`Continue`)
--------------------------------------------
* Ready (asynchronous mode): ``t >= burn_in``, ``t - last_perturbation >= interval`` and a
  checkpoint since the member's last exploit. A ready member in the bottom quantile
  exploits; any other ready member just records the decision point. A member that is due
  but has no checkpoint since its last exploit is never perturbed: its reported progress
  since the exploit could not be resumed nor cloned, so it waits (and is reconsidered at
  its next report).
* Donors: top-quantile members other than the target that have a checkpoint since their
  last exploit (so the cloned weights were trained under the donor's current config, which
  keeps the lineage replayable). None available: the target continues and is
  reconsidered at its next report.
* Synchronous mode: a member *arrives* at the barrier with its first report at
  ``t >= b`` that carries a checkpoint, and is held there (:class:`Pause`). When every
  live member has arrived, the generation closes: bottom members exploit, the others
  :class:`Resume`. A member that finishes, fails or is removed leaves the population at
  once, so it never blocks a generation; a member that never checkpoints never arrives,
  and leaves when it ends.
* Explore (:func:`explore`): per mutable parameter, resample it from the space's prior
  with probability ``resample_probability``, else multiply numbers by a factor drawn from
  ``perturbation_factors`` (clipped into the bounds, snapped onto the grid, moved one grid
  step when snapping undoes the move) and move choices to a neighbouring choice. A branch
  switched on by a changed choice gets its parameters drawn from the prior.
* Ranking: members progress at different speeds, and metrics usually improve with
  ``t``, so comparing latest values favours whoever is ahead (in a round of reports the
  member being decided is the freshest and is almost never in the bottom quantile). Each
  pair of members is therefore compared at their common time, and members are ranked by
  how many others they beat (a Copeland count; a tie counts half); equal counts are
  broken by the order in which members were added (earlier ranks higher). To answer "value
  at or before ``t``", each member keeps its reports since its last exploit, pruned to those
  a comparison can still ask for.

* Resume (:meth:`PBT.on_restore`): a member that comes back with the config it had before
  its last exploit (the experiment snapshot of the host predates the exploit) goes back to
  that config and the exploit leaves the lineage, unless another member has cloned it since.

Every random draw (donor choice, explore) comes from one ``numpy.random.Generator`` seeded
by ``seed``; its state is part of the saved state, so a loaded policy continues the sequence.
"""

from __future__ import annotations

import json
import math
import numbers
import os
from dataclasses import dataclass, field, replace
from typing import Any, Callable, Iterable, Mapping, Sequence

import numpy as np

from schedulers.core.decisions import Continue, Decision, Exploit, Pause, Reason, Resume
from schedulers.core.state_file import write_json_atomic
from search_algs.errors import TuneorchError
from search_algs.space import Categorical, Param, Space

STATE_FORMAT = "tuneorch.pbt"
STATE_VERSION = 1
MODES = ("min", "max")

# Reasons carried by Continue decisions: members of the shared Reason enum (str values, so the
# old string constants compare equal), kept under their old names.
NOT_LIVE = Reason.NOT_LIVE  # the member finished, failed or was removed
BURN_IN = Reason.BURN_IN  # t < burn_in
NOT_DUE = Reason.NOT_DUE  # less than one interval since the last decision point / below the barrier
NO_CHECKPOINT = Reason.NO_CHECKPOINT  # due, but no checkpoint since the last exploit (or in this report)
TOO_FEW = Reason.TOO_FEW  # fewer than 2 ranked members (or quantile_fraction=0): no quantiles
TOP = Reason.TOP  # due, in the top quantile
MIDDLE = Reason.MIDDLE  # due, in neither quantile
NO_DONOR = Reason.NO_DONOR  # due, in the bottom quantile, but no top member has a checkpoint
BUSY = Reason.BUSY  # an exploit of this member awaits commit
HELD = Reason.HELD  # synchronous: waiting at the barrier


class PBTConfigError(TuneorchError, ValueError):
    """A PBT option is invalid (the message names the option, the rule, the value, the fix)."""


class PBTStateError(TuneorchError, ValueError):
    """A saved PBT state cannot be used (unreadable, or written for other options)."""


# ---- decisions: the shared vocabulary (schedulers.core.decisions) ---------------------------
# Continue(trial, reason), Pause(trial) (synchronous: arrived at the barrier), Resume(trial)
# (synchronous: the generation closed), Exploit(...) (a proposal, see the module docstring).


@dataclass(frozen=True)
class LineageRecord:
    """One committed exploit. ``donor_time`` may be earlier than proposed when the adapter
    only found an older checkpoint of the donor (taken under the same config)."""

    seq: int
    target: str
    donor: str
    time: float
    donor_time: float
    target_config: dict
    donor_config: dict
    new_config: dict
    operations: dict
    generation: int | None = None

    def to_json(self) -> dict:
        return {"seq": self.seq, "target": self.target, "donor": self.donor, "time": self.time,
                "donor_time": self.donor_time, "target_config": self.target_config,
                "donor_config": self.donor_config, "new_config": self.new_config,
                "operations": self.operations, "generation": self.generation}

    @classmethod
    def from_json(cls, d: Mapping) -> "LineageRecord":
        return cls(int(d["seq"]), d["target"], d["donor"], float(d["time"]), float(d["donor_time"]),
                   dict(d["target_config"]), dict(d["donor_config"]), dict(d["new_config"]),
                   dict(d["operations"]), None if d.get("generation") is None else int(d["generation"]))


@dataclass
class Member:
    """What the policy knows of one trial."""

    order: int  # position in the population (tie breaker)
    config: dict  # flat values in use now
    initial: dict  # flat values it started with
    status: str = "live"  # live | finished | errored | removed
    time: float | None = None  # latest reported t
    value: float | None = None  # latest reported value (user's units), None after an exploit
    last_perturbation: float = 0.0  # t of its last decision point (or the t it restarted from)
    ckpt_time: float | None = None  # t of its latest checkpoint since its last exploit
    ever_checkpointed: bool = False
    exploits: int = 0  # how often it was a target
    arrived: bool = False  # synchronous: held at the barrier
    scores: list = field(default_factory=list)  # [(t, value)] at each decision point / arrival
    recent: list = field(default_factory=list)  # [(t, value)] reports since its last exploit (pruned)

    def value_at(self, t: float) -> float | None:
        """Its value at its last report at or before ``t`` (its earliest known one if none)."""
        if not self.recent:
            return self.value
        best = self.recent[0][1]
        for time, value in self.recent:
            if time > t:
                break
            best = value
        return best

    def to_json(self) -> dict:
        return {"order": self.order, "config": self.config, "initial": self.initial,
                "status": self.status, "time": self.time, "value": _enc(self.value),
                "last_perturbation": self.last_perturbation, "ckpt_time": self.ckpt_time,
                "ever_checkpointed": self.ever_checkpointed, "exploits": self.exploits,
                "arrived": self.arrived, "scores": [[t, _enc(v)] for t, v in self.scores],
                "recent": [[t, _enc(v)] for t, v in self.recent]}

    @classmethod
    def from_json(cls, d: Mapping) -> "Member":
        return cls(int(d["order"]), dict(d["config"]), dict(d["initial"]), d["status"], d["time"],
                   _dec(d["value"]), float(d["last_perturbation"]), d["ckpt_time"],
                   bool(d["ever_checkpointed"]), int(d["exploits"]), bool(d["arrived"]),
                   [(float(t), _dec(v)) for t, v in d["scores"]],
                   [(float(t), _dec(v)) for t, v in d.get("recent", [])])


def _enc(value: float | None) -> float | str | None:
    """JSON has no NaN/inf: keep them as strings."""
    if value is None or math.isfinite(value):
        return value
    return repr(float(value))  # 'nan', 'inf', '-inf'


def _dec(value: float | str | None) -> float | None:
    return None if value is None else float(value)


# ---- validation ------------------------------------------------------------------------


def _real(name: str, value: Any, fix: str) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value):
        raise PBTConfigError(f"PBT: {name} must be a finite number, got {value!r} "
                             f"({type(value).__name__}); {fix}")
    return float(value)


def validate_options(perturbation_interval: Any, burn_in_period: Any = 0,
                     quantile_fraction: Any = 0.25, resample_probability: Any = 0.25,
                     perturbation_factors: Any = (0.8, 1.2), mode: Any = "max",
                     synchronous: Any = False, seed: Any = None) -> None:
    """Raise :class:`PBTConfigError` on the first invalid option."""
    interval = _real("perturbation_interval", perturbation_interval,
                     "pass perturbation_interval > 0 (in units of time_attr), e.g. 4")
    if interval <= 0:
        raise PBTConfigError(f"PBT: perturbation_interval must be > 0, got {perturbation_interval!r}; "
                             f"pass e.g. perturbation_interval=4 (in units of time_attr)")
    if _real("burn_in_period", burn_in_period, "pass burn_in_period >= 0") < 0:
        raise PBTConfigError(f"PBT: burn_in_period must be >= 0, got {burn_in_period!r}; "
                             f"pass burn_in_period=0 to allow exploits from the first interval")
    q = _real("quantile_fraction", quantile_fraction, "pass a fraction in [0, 0.5], e.g. 0.25")
    if not 0 <= q <= 0.5:
        raise PBTConfigError(f"PBT: quantile_fraction must be in [0, 0.5] (the bottom and the top "
                             f"quantile may not overlap; 0 turns exploitation off), got "
                             f"{quantile_fraction!r}; pass e.g. 0.25")
    p = _real("resample_probability", resample_probability, "pass a probability in [0, 1]")
    if not 0 <= p <= 1:
        raise PBTConfigError(f"PBT: resample_probability must be in [0, 1], got "
                             f"{resample_probability!r}; pass e.g. 0.25")
    if isinstance(perturbation_factors, (str, bytes)) or not isinstance(perturbation_factors, Sequence) \
            or len(perturbation_factors) == 0:
        raise PBTConfigError(f"PBT: perturbation_factors must be a non-empty list of positive numbers, "
                             f"got {perturbation_factors!r}; pass e.g. (0.8, 1.2)")
    for f in perturbation_factors:
        if isinstance(f, bool) or not isinstance(f, numbers.Real) or not math.isfinite(f) or f <= 0:
            raise PBTConfigError(f"PBT: perturbation_factors must all be finite numbers > 0, got "
                                 f"{list(perturbation_factors)!r} (offending {f!r}); pass e.g. (0.8, 1.2)")
    if mode not in MODES:
        raise PBTConfigError(f"PBT: mode must be 'min' or 'max', got {mode!r}; pass mode='min' to "
                             f"minimise the metric or mode='max' to maximise it")
    if not isinstance(synchronous, bool):
        raise PBTConfigError(f"PBT: synchronous must be True or False, got {synchronous!r}; pass "
                             f"synchronous=False (asynchronous, default) or synchronous=True")
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, numbers.Integral) or seed < 0):
        raise PBTConfigError(f"PBT: seed must be None or an integer >= 0, got {seed!r}; "
                             f"pass seed=0 (or any non-negative integer) for reproducible runs")


# ---- quantiles and explore (pure functions) ----------------------------------------------


def quantile_size(n: int, fraction: float) -> int:
    """Members in each of the bottom and top quantile of ``n`` ranked members.

    >>> [quantile_size(n, 0.25) for n in (1, 2, 3, 4, 5, 8, 9)]
    [0, 1, 1, 1, 1, 2, 2]
    """
    if n < 2 or fraction <= 0:
        return 0
    return min(math.ceil(n * fraction - 1e-12), n // 2)


def sample_param(p: Param, rng: np.random.Generator) -> Any:
    """One draw of parameter ``p`` from the space's prior (categorical weights honoured)."""
    d = p.domain
    if isinstance(d, Categorical) and d.weights is not None:
        w = np.asarray(d.weights, dtype=float)
        return int(rng.choice(len(w), p=w / w.sum()))
    return p.decode(rng.random())


def perturb_number(p: Param, value: float, factor: float) -> float | int:
    """``value * factor`` kept inside ``p``'s domain.

    Clipped into ``[low, high]``; on a grid (integers, ``step``) it is rounded to the
    nearest grid point, and moved one grid step in the factor's direction when rounding
    gives back the old value (``3 * 1.2`` would otherwise stay ``3`` forever).
    """
    d = p.domain
    x = min(max(value * factor, d.low), d.high)
    n = p.n_grid
    if n is None:
        return float(x)
    k_old = min(max(int(round((value - d.low) / d.step)), 0), n - 1)
    k = min(max(int(round((x - d.low) / d.step)), 0), n - 1)
    if k == k_old and factor != 1:
        up = x > value if x != value else factor > 1
        k = min(max(k_old + (1 if up else -1), 0), n - 1)
    grid_value = d.low + k * d.step
    return p.decode(p.encode(grid_value))  # the grid point as the space writes it (int / snapped)


def explore(space: Space, flat: Mapping[str, Any], rng: np.random.Generator, *,
            mutable: Iterable[str] | None = None, factors: Sequence[float] = (0.8, 1.2),
            resample_probability: float = 0.25) -> tuple[dict, dict]:
    """Perturb the flat config ``flat``; returns ``(new_flat, operations)``.

    ``operations[name]`` is ``"resample"``, ``"*<factor>"``, ``"shift -1"`` / ``"shift +1"``,
    ``"keep"`` (not mutable, or a single choice) or ``"new branch"`` (activated by a changed
    choice, drawn from the prior). Parameters that become inactive are dropped. Draws per
    mutable parameter, in the space's order: one uniform (resample or not), then the factor
    index or the neighbour.
    """
    mutable_set = set(space.names) if mutable is None else set(mutable)
    new: dict[str, Any] = {}
    ops: dict[str, str] = {}
    for p in space.params:  # parents come first: their new values decide who is active
        if not all(new.get(space.params[parent].name) == k for parent, k in p.condition):
            continue
        if p.name not in flat:
            new[p.name] = sample_param(p, rng)
            ops[p.name] = "new branch"
            continue
        old = flat[p.name]
        if p.name not in mutable_set:
            new[p.name], ops[p.name] = old, "keep"
            continue
        if rng.random() < resample_probability:
            new[p.name], ops[p.name] = sample_param(p, rng), "resample"
        elif p.is_categorical:
            n = p.n_choices
            if n == 1:
                new[p.name], ops[p.name] = old, "keep"
            else:
                steps = [s for s in (-1, 1) if 0 <= old + s < n]
                step = steps[0] if len(steps) == 1 else steps[int(rng.integers(2))]
                new[p.name], ops[p.name] = int(old + step), f"shift {step:+d}"
        else:
            factor = float(factors[int(rng.integers(len(factors)))])
            new[p.name], ops[p.name] = perturb_number(p, old, factor), f"*{factor:g}"
    return new, ops


# ---- the policy ------------------------------------------------------------------------


class PBT:
    """The PBT policy for one experiment.

    Args:
        space: the search space (anything :meth:`Space.of` accepts); bounds, grids and
            choices of explored values come from it.
        perturbation_interval: reconsider a member every this much ``t`` (> 0).
        burn_in_period: no exploit/explore before ``t >= burn_in_period``.
        quantile_fraction: fraction of ranked members in each of the bottom and top
            quantile, in ``(0, 0.5]``.
        resample_probability: per parameter, chance of a fresh draw from the prior
            instead of a perturbation.
        perturbation_factors: factors numbers are multiplied by (one drawn per parameter).
        mutable: names of the parameters explore may change (default: all). Freeze the
            ones the checkpoint depends on (layer sizes, architecture).
        mode: ``"max"`` or ``"min"``.
        synchronous: generations with a barrier instead of asynchronous decisions.
        seed: seeds the one generator behind every random draw.
        context: JSON-serialisable labels stored with the state and checked on load.
        explore_fn: applied to the flat values after the built-in explore (Ray's
            ``custom_explore_fn``, translated by the adapter); its changes are recorded as
            ``"custom"`` operations. It must return values inside the space. Not saved.
    """

    def __init__(self, space: Any, perturbation_interval: float = 5, burn_in_period: float = 0,
                 quantile_fraction: float = 0.25, resample_probability: float = 0.25,
                 perturbation_factors: Sequence[float] = (0.8, 1.2),
                 mutable: Iterable[str] | None = None, mode: str = "max",
                 synchronous: bool = False, seed: int | None = None,
                 context: Mapping[str, Any] | None = None,
                 explore_fn: Callable[[dict], Mapping[str, Any]] | None = None):
        validate_options(perturbation_interval, burn_in_period, quantile_fraction,
                         resample_probability, perturbation_factors, mode, synchronous, seed)
        self.space = Space.of(space)
        if mutable is not None:
            if isinstance(mutable, str):
                mutable = [mutable]
            mutable = list(mutable)
            unknown = sorted(set(mutable) - set(self.space.names))
            if unknown:
                raise PBTConfigError(f"PBT: mutable must name parameters of the space {self.space.names}, "
                                     f"got unknown {unknown}; use those names (nested keys as 'a/b')")
        self.mutable = None if mutable is None else tuple(mutable)
        self.interval = float(perturbation_interval)
        self.burn_in = float(burn_in_period)
        self.quantile_fraction = float(quantile_fraction)
        self.resample_probability = float(resample_probability)
        self.factors = tuple(float(f) for f in perturbation_factors)
        self.mode, self.synchronous, self.seed = mode, synchronous, seed
        self.context = dict(context or {})
        self.explore_fn = explore_fn
        self.rng = np.random.default_rng(seed)
        self.members: dict[str, Member] = {}
        self._lineage: list[LineageRecord] = []
        self._pending: dict[str, Exploit] = {}  # target -> uncommitted exploit
        self.generation = 0
        self.barrier = max(self.interval, self.burn_in)
        self.aborted = 0
        self.version = 0  # bumped on every change worth saving

    # ---- options as data ---------------------------------------------------------------

    def options(self) -> dict:
        return {"perturbation_interval": self.interval, "burn_in_period": self.burn_in,
                "quantile_fraction": self.quantile_fraction,
                "resample_probability": self.resample_probability,
                "perturbation_factors": list(self.factors),
                "mutable": None if self.mutable is None else list(self.mutable),
                "mode": self.mode, "synchronous": self.synchronous, "seed": self.seed,
                "params": self.space.names}

    # ---- events ------------------------------------------------------------------------

    def add(self, trial_id: str, config: Mapping[str, Any]) -> None:
        """A trial joined with flat values ``config``. A known trial (resumed or retried)
        keeps its history; an errored one becomes live again."""
        member = self.members.get(trial_id)
        if member is None:
            self._check_config(trial_id, config)
            self.members[trial_id] = Member(len(self.members), dict(config), dict(config))
            self._changed()
        elif member.status == "errored":
            member.status = "live"
            self._changed()

    def on_result(self, trial_id: str, t: float, value: float, has_checkpoint: bool) -> tuple:
        """A member reported ``value`` at progress ``t``.

        Returns the decisions this event causes: the first one is for ``trial_id``
        (:class:`Continue`, :class:`Pause` or :class:`Exploit`); in synchronous mode, a
        report that closes a generation appends the decisions for every member of it
        (:class:`Exploit` or :class:`Resume`, the reporter's included).
        """
        member = self._member(trial_id)
        if member.status != "live":
            return (Continue(trial_id, NOT_LIVE),)
        t, value = float(t), float(value)
        member.time, member.value = t, value
        while member.recent and member.recent[-1][0] >= t:  # back in time: retried from a checkpoint
            member.recent.pop()
        member.recent.append((t, value))
        self._prune(member)
        if has_checkpoint:
            member.ckpt_time = t
            member.ever_checkpointed = True
        self._changed()  # every report moves the ranking at common times: worth saving
        if trial_id in self._pending:
            return (Continue(trial_id, BUSY),)
        if self.synchronous:
            return self._on_result_sync(trial_id, member, t, has_checkpoint)
        return (self._on_result_async(trial_id, member, t),)

    def _on_result_async(self, trial_id: str, member: Member, t: float) -> Decision:
        if t < self.burn_in:
            return Continue(trial_id, BURN_IN)
        if t - member.last_perturbation < self.interval:
            return Continue(trial_id, NOT_DUE)
        if member.ckpt_time is None:
            return Continue(trial_id, NO_CHECKPOINT)
        ranked = self._ranked(m for m in self.members if self.members[m].status == "live")
        n_q = quantile_size(len(ranked), self.quantile_fraction)
        if n_q == 0:
            return self._concluded(trial_id, member, t, TOO_FEW)
        bottom, top = ranked[:n_q], ranked[-n_q:]
        if trial_id in top:
            return self._concluded(trial_id, member, t, TOP)
        if trial_id not in bottom:
            return self._concluded(trial_id, member, t, MIDDLE)
        exploit = self._propose(trial_id, top, None)
        return exploit if exploit is not None else Continue(trial_id, NO_DONOR)

    def _concluded(self, trial_id: str, member: Member, t: float, reason: str) -> Continue:
        member.last_perturbation = t
        member.scores.append((t, member.value))
        self._changed()
        return Continue(trial_id, reason)

    def _on_result_sync(self, trial_id: str, member: Member, t: float, has_checkpoint: bool) -> tuple:
        if member.arrived:
            return (Pause(trial_id),)
        if t < self.barrier:
            return (Continue(trial_id, BURN_IN if t < self.burn_in else NOT_DUE),)
        if not has_checkpoint:
            return (Continue(trial_id, NO_CHECKPOINT),)
        member.arrived = True
        member.scores.append((t, member.value))
        self._changed()
        return (Pause(trial_id),) + self._maybe_close()

    def on_complete(self, trial_id: str) -> tuple:
        """The trial ended on its own or was stopped: it leaves the population."""
        return self._leave(trial_id, "finished")

    def on_error(self, trial_id: str) -> tuple:
        """The trial failed for good (retried failures are not reported): it leaves."""
        return self._leave(trial_id, "errored")

    def on_remove(self, trial_id: str) -> tuple:
        """The trial was removed before it ended: it leaves."""
        return self._leave(trial_id, "removed")

    def _leave(self, trial_id: str, status: str) -> tuple:
        member = self.members.get(trial_id)
        if member is None or member.status != "live":
            return ()
        member.status, member.arrived = status, False
        self._pending.pop(trial_id, None)
        self._changed()
        return self._maybe_close() if self.synchronous else ()

    # ---- synchronous generations ----------------------------------------------------------

    def _maybe_close(self) -> tuple:
        live = [tid for tid, m in self.members.items() if m.status == "live"]
        arrived = [tid for tid in live if self.members[tid].arrived]
        if not arrived or len(arrived) < len(live):
            return ()
        ranked = self._ranked(arrived)
        n_q = quantile_size(len(ranked), self.quantile_fraction)
        bottom, top = (ranked[:n_q], ranked[-n_q:]) if n_q else ([], [])
        generation = self.generation
        decisions: list[Decision] = []
        for tid in sorted(arrived, key=lambda x: self.members[x].order):
            member = self.members[tid]
            member.arrived = False
            member.last_perturbation = member.time
            exploit = self._propose(tid, top, generation) if tid in bottom else None
            decisions.append(exploit if exploit is not None else Resume(tid))
        self.generation += 1
        self.barrier += self.interval
        self._changed()
        return tuple(decisions)

    # ---- exploit / explore ---------------------------------------------------------------

    def _ranked(self, trial_ids: Iterable[str]) -> list[str]:
        """Members with a value, worst first: by the number of others each beats at their
        common time (module docstring, "Ranking"); the later-added ranks lower on a tie."""
        scored = [tid for tid in trial_ids if self.members[tid].value is not None]
        wins = {tid: 0.0 for tid in scored}
        for i, a in enumerate(scored):
            for b in scored[i + 1:]:
                ma, mb = self.members[a], self.members[b]
                common = min(ma.time, mb.time)
                sa, sb = self._score(ma.value_at(common)), self._score(mb.value_at(common))
                if sa > sb:
                    wins[a] += 1.0
                elif sb > sa:
                    wins[b] += 1.0
                else:
                    wins[a] += 0.5
                    wins[b] += 0.5
        return sorted(scored, key=lambda tid: (wins[tid], -self.members[tid].order))

    def _score(self, value: float | None) -> float:
        """Higher is better; non-finite (and unknown) values rank below every finite one."""
        if value is None or not math.isfinite(value):
            return -math.inf
        return value if self.mode == "max" else -value

    def _prune(self, member: Member) -> None:
        """Drop the reports no comparison can ask for any more: those before the last one at
        or before the least advanced live member's time."""
        times = [m.time for m in self.members.values()
                 if m.status == "live" and m.value is not None and m.time is not None]
        if not times:
            return
        floor = min(times)
        keep = 0
        for k, (t, _) in enumerate(member.recent):
            if t <= floor:
                keep = k
        if keep:
            del member.recent[:keep]

    def _propose(self, trial_id: str, top: Sequence[str], generation: int | None) -> Exploit | None:
        donors = [d for d in top if d != trial_id and self.members[d].ckpt_time is not None
                  and d not in self._pending]
        if not donors:
            return None
        donor_id = donors[int(self.rng.integers(len(donors)))] if len(donors) > 1 else donors[0]
        donor, member = self.members[donor_id], self.members[trial_id]
        new, ops = explore(self.space, donor.config, self.rng, mutable=self.mutable, factors=self.factors,
                           resample_probability=self.resample_probability)
        if self.explore_fn is not None:
            custom = dict(self.explore_fn(dict(new)))
            self._check_config(trial_id, custom)
            ops.update({k: "custom" for k in custom if custom[k] != new.get(k)})
            new = custom
        exploit = Exploit(trial_id, donor_id, member.time, donor.ckpt_time, dict(member.config),
                          dict(donor.config), new, ops, generation)
        self._pending[trial_id] = exploit
        return exploit

    def commit(self, exploit: Exploit, donor_time: float | None = None) -> LineageRecord:
        """The adapter carried ``exploit`` out, restarting the target from the donor's
        checkpoint at ``donor_time`` (default: the proposed one; an earlier one is allowed,
        taken since the donor's last exploit, hence under the same config)."""
        if self._pending.get(exploit.target) != exploit:
            raise ValueError(f"commit: no pending exploit {exploit.target} <- {exploit.donor}; "
                             f"commit each proposal once, as returned by on_result")
        del self._pending[exploit.target]
        donor_time = exploit.donor_time if donor_time is None else float(donor_time)
        member, donor = self.members[exploit.target], self.members[exploit.donor]
        record = LineageRecord(len(self._lineage), exploit.target, exploit.donor, exploit.time,
                               donor_time, dict(exploit.target_config), dict(exploit.donor_config),
                               dict(exploit.new_config), dict(exploit.operations), exploit.generation)
        self._lineage.append(record)
        member.config = dict(exploit.new_config)
        member.time = donor_time
        member.value = None  # ranked again once it reports under its new config
        member.recent = [(donor_time, donor.value_at(donor_time))]  # the clone's start
        member.last_perturbation = donor_time
        member.ckpt_time = None
        member.exploits += 1
        self._changed()
        return record

    def on_restore(self, trial_id: str, config: Mapping[str, Any]) -> LineageRecord | None:
        """A resumed experiment brought ``trial_id`` back with flat values ``config``.

        The policy's state file is written at every decision, Tune's experiment snapshot only
        every so often: when the driver stopped between an exploit and the next snapshot,
        Tune brings the target back with the config it had *before* the exploit and restarts
        it from its own checkpoint. That exploit never happened for Tune, so it is taken out
        of the lineage (later records are renumbered) and the member goes back to its old
        config, due again at the time it was exploited; the removed record is returned. It is
        kept when a later exploit cloned the member (then it has trained on since) or when
        ``config`` is not the record's ``target_config``; the member takes ``config`` either way.
        """
        member = self._member(trial_id)
        config = dict(config)
        if config == member.config:
            return None
        last = next((r for r in reversed(self._lineage) if r.target == trial_id), None)
        undo = (last is not None and config == last.target_config and member.config == last.new_config
                and not any(r.donor == trial_id for r in self._lineage[last.seq + 1:]))
        member.config = config
        self._pending.pop(trial_id, None)
        self._changed()
        if not undo:
            return None
        self._lineage = [replace(r, seq=k) for k, r in enumerate(r for r in self._lineage if r is not last)]
        member.exploits -= 1
        member.time, member.value, member.recent = last.time, None, []
        member.last_perturbation = max(0.0, last.time - self.interval)
        member.ckpt_time = None  # which of its own checkpoints survived is known at its next report
        return last

    def abort(self, exploit: Exploit, reason: str = "") -> None:
        """The adapter could not carry ``exploit`` out: the target keeps its state.

        Asynchronous mode: it is reconsidered at its next report. Synchronous mode: it
        goes on with its own config, like a :class:`Resume`.
        """
        if self._pending.get(exploit.target) == exploit:
            del self._pending[exploit.target]
            self.aborted += 1
            self._changed()

    # ---- queries -----------------------------------------------------------------------

    def held(self, trial_id: str) -> bool:
        """Whether the trial must not be (re)started now: it waits at the barrier, or an
        uncommitted exploit targets it or clones it."""
        member = self.members.get(trial_id)
        if member is not None and member.arrived:
            return True
        return any(trial_id in (e.target, e.donor) for e in self._pending.values())

    def pending(self) -> tuple[Exploit, ...]:
        return tuple(self._pending.values())

    def quantiles(self) -> tuple[list[str], list[str]]:
        """``(bottom, top)`` of the live ranked members now, worst first."""
        ranked = self._ranked(t for t, m in self.members.items() if m.status == "live")
        n_q = quantile_size(len(ranked), self.quantile_fraction)
        return (ranked[:n_q], ranked[-n_q:]) if n_q else ([], [])

    def lineage(self) -> list[LineageRecord]:
        return list(self._lineage)

    def config_schedule(self, trial_id: str) -> list[tuple[float, dict]]:
        """The replayable schedule of ``trial_id``: ``[(t0, flat0), (t1, flat1), ...]``.

        Entry ``(t_k, flat_k)`` applies to the steps after ``t_k`` (so ``t`` in
        ``(t_k, t_{k+1}]``); the first entry is ``(0, initial config)`` of the trial at the
        root of the donor chain. Training a fresh model from scratch with this schedule
        reproduces the trial's state, following each exploit back to its donor.
        """
        self._member(trial_id)
        return self._schedule(trial_id, len(self._lineage))

    def _schedule(self, trial_id: str, before_seq: int) -> list[tuple[float, dict]]:
        last = None
        for record in self._lineage[:before_seq]:
            if record.target == trial_id:
                last = record
        if last is None:
            return [(0.0, dict(self.members[trial_id].initial))]
        base = [(t, c) for t, c in self._schedule(last.donor, last.seq) if t < last.donor_time]
        return base + [(last.donor_time, dict(last.new_config))]

    def status(self, trial_id: str) -> str:
        return self._member(trial_id).status

    def to_config(self, flat: Mapping[str, Any]) -> Any:
        """The nested config (what the trainable receives) of flat values."""
        return self.space.to_config(flat)

    def summary(self) -> str:
        live = sum(m.status == "live" for m in self.members.values())
        head = (f"{len(self.members)} members ({live} live), {len(self._lineage)} exploits, "
                f"{self.aborted} aborted")
        if self.synchronous:
            head += f", generation {self.generation} (barrier {self.barrier:g})"
        return head

    # ---- helpers -----------------------------------------------------------------------

    def _member(self, trial_id: str) -> Member:
        try:
            return self.members[trial_id]
        except KeyError:
            raise KeyError(f"PBT: unknown trial {trial_id!r}; add(trial_id, config) it first") from None

    def _check_config(self, trial_id: str, config: Mapping[str, Any]) -> None:
        active = self.space.active(config)
        for p, on in zip(self.space.params, active):
            if on and (p.name not in config or not p.contains(config[p.name])):
                raise PBTConfigError(
                    f"PBT: trial {trial_id}: parameter '{p.name}' must be a value of its domain "
                    f"{p.domain}, got {config.get(p.name, '<missing>')!r}; give configs from the "
                    f"same space as the scheduler's")

    def _changed(self) -> None:
        self.version += 1

    # ---- persistence -------------------------------------------------------------------

    def to_dict(self) -> dict:
        """Plain JSON-serialisable state (uncommitted exploits are not kept: on load their
        targets go on with their own state)."""
        return {"format": STATE_FORMAT, "version": STATE_VERSION, "options": self.options(),
                "context": self.context, "rng": self.rng.bit_generator.state,
                "generation": self.generation, "barrier": self.barrier, "aborted": self.aborted,
                "members": {tid: m.to_json() for tid, m in self.members.items()},
                "lineage": [r.to_json() for r in self._lineage]}

    def load_dict(self, state: Mapping) -> None:
        if not isinstance(state, Mapping) or state.get("format") != STATE_FORMAT:
            raise PBTStateError(f"PBT state: not a {STATE_FORMAT} state (format "
                                f"{state.get('format') if isinstance(state, Mapping) else type(state).__name__!r}); "
                                f"point state_path at a file this scheduler wrote, or remove it")
        if state.get("version") != STATE_VERSION:
            raise PBTStateError(f"PBT state: version {state.get('version')!r} cannot be read by this "
                                f"code (version {STATE_VERSION}); remove the file to start afresh")
        mine, theirs = self.options(), dict(state["options"])
        diff = sorted(k for k in set(mine) | set(theirs) if mine.get(k) != theirs.get(k))
        if diff or dict(state.get("context") or {}) != self.context:
            changes = {k: (theirs.get(k), mine.get(k)) for k in diff}
            raise PBTStateError(
                f"PBT state: written with other options {changes} (saved, now) or context "
                f"{state.get('context')} vs {self.context}; resume with the same options, or remove "
                f"the state file to start afresh")
        self.rng = np.random.default_rng()
        self.rng.bit_generator.state = state["rng"]
        self.generation, self.barrier = int(state["generation"]), float(state["barrier"])
        self.aborted = int(state.get("aborted", 0))
        self.members = {tid: Member.from_json(m) for tid, m in state["members"].items()}
        self._lineage = [LineageRecord.from_json(r) for r in state["lineage"]]
        self._pending = {}
        self._changed()

    def save(self, path: str | os.PathLike) -> None:
        """Write the state as JSON, atomically (temporary file + ``os.replace``)."""
        write_json_atomic(path, self.to_dict())

    def load(self, path: str | os.PathLike) -> None:
        try:
            with open(path) as f:
                state = json.load(f)
        except (OSError, ValueError) as exc:
            raise PBTStateError(f"PBT state: cannot read {os.fspath(path)!r} ({exc}); remove the "
                                f"file to start afresh") from None
        self.load_dict(state)

