"""The one decision vocabulary of the scheduler cores: decisions are values.

Every core (:mod:`schedulers.core.asha`, :mod:`schedulers.core.pbt`,
:mod:`schedulers.core.hyperband`) answers an event with the values below and never acts
itself; the Tune adapter (:mod:`schedulers.base` and its subclasses) carries them out. Nothing
here imports Ray.

Glossary
--------
``Action``     the verb for the trial that just reported, as the host knows it:
               ``CONTINUE`` (go on), ``PAUSE`` (hold it, checkpointed, until released),
               ``STOP`` (end it). The Tune adapter maps it 1:1 onto ``TrialScheduler``'s strings.
``Reason``     why a core decided what it did (stable strings: tests, logs and state files
               use them).
``Decision``   ``Continue`` / ``Pause`` / ``Stop`` / ``Resume`` for one ``trial`` with a
               ``reason``, or an ``Exploit`` proposal (PBT). Each has ``.action``.
``Plan``       for the trials a core holds paused: which to ``promote`` (release, best first)
               and which to ``stop`` (can never go on). ``Plan.decisions()`` gives them as
               ``Resume`` / ``Stop`` values.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Any, ClassVar, Mapping, Union


class Action(str, enum.Enum):
    """What the trial that just reported should do next."""

    CONTINUE = "CONTINUE"
    PAUSE = "PAUSE"
    STOP = "STOP"


class Reason(str, enum.Enum):
    """Why a decision was made. ``str`` values, so ``Reason.TOP == "top"``."""

    # shared
    NOT_LIVE = "not_live"  # the trial finished, failed or was removed: nothing to decide
    NOT_DUE = "not_due"  # below the next rung / decision point / barrier
    MAX_T = "max_t"  # reached max_t: finished
    NONFINITE = "nonfinite"  # NaN or +-inf at a decision point: never promoted nor cloned
    RELEASED = "released"  # the rung / barrier it waited at closed; it goes on with its own state
    HELD = "held"  # waits at a rung or barrier
    # successive halving (ASHA, Hyperband)
    RUNG_KEPT = "rung_kept"  # arrived at a rung within its quota: goes on
    RUNG_CUT = "rung_cut"  # arrived at a rung outside its quota: stopped
    REPEATED = "repeated"  # came back to a rung it was judged at: the stored decision again
    NEVER_PROMOTABLE = "never_promotable"  # its rung is settled and it is outside the quota
    # PBT
    BURN_IN = "burn_in"  # t < burn_in
    NO_CHECKPOINT = "no_checkpoint"  # due, but no checkpoint since the last exploit
    TOO_FEW = "too_few"  # fewer than 2 ranked members: no quantiles
    TOP = "top"  # due, in the top quantile
    MIDDLE = "middle"  # due, in neither quantile
    NO_DONOR = "no_donor"  # due, in the bottom quantile, but no top member has a checkpoint
    BUSY = "busy"  # an exploit of this member awaits commit

    def __str__(self) -> str:  # f"{reason}" gives the plain string, as the old constants did
        return self.value


class Status(str, enum.Enum):
    """Where a trial stands, as a successive-halving core (ASHA, Hyperband) sees it."""

    ACTIVE = "active"  # added, running or waiting to run; not held at a rung
    PAUSED = "paused"  # held at rung ``paused_at`` until promoted
    STOPPED = "stopped"  # cut at a rung, removed, or never promotable
    FINISHED = "finished"  # reached max_t, or ended on its own
    ERRORED = "errored"  # failed; becomes ACTIVE again if it is retried (re-added)


@dataclass(frozen=True)
class Continue:
    """The trial goes on with its config."""

    trial: str
    reason: str = Reason.NOT_DUE
    action: ClassVar[Action] = Action.CONTINUE


@dataclass(frozen=True)
class Pause:
    """The trial is held (at a rung, or a synchronous barrier) until a :class:`Resume`."""

    trial: str
    reason: str = Reason.HELD
    action: ClassVar[Action] = Action.PAUSE


@dataclass(frozen=True)
class Stop:
    """The trial ends here."""

    trial: str
    reason: str = Reason.RUNG_CUT
    action: ClassVar[Action] = Action.STOP


@dataclass(frozen=True)
class Resume:
    """A held trial goes on with its own state (promoted, or its generation closed)."""

    trial: str
    reason: str = Reason.RELEASED
    action: ClassVar[Action] = Action.CONTINUE


@dataclass(frozen=True)
class Exploit:
    """PBT proposal: ``target`` restarts from ``donor``'s checkpoint at ``donor_time`` with
    ``new_config`` (flat values, see :class:`search_algs.space.Space`).

    ``time`` is the target's progress when the decision was made; ``operations`` says how
    each parameter of ``new_config`` was obtained from ``donor_config``. The target is paused
    (without saving its own state) and restarted by the adapter: ``action`` is ``PAUSE``.
    """

    target: str
    donor: str
    time: float
    donor_time: float
    target_config: Mapping[str, Any]
    donor_config: Mapping[str, Any]
    new_config: Mapping[str, Any]
    operations: Mapping[str, str]
    generation: int | None = None
    action: ClassVar[Action] = Action.PAUSE

    @property
    def trial(self) -> str:
        return self.target


Decision = Union[Continue, Pause, Stop, Resume, Exploit]


@dataclass(frozen=True)
class Plan:
    """What to do with the trials a core holds paused, now.

    ``promote``: paused trial ids to release, best first. ``stop``: paused trial ids that
    can never be promoted.
    """

    promote: tuple[str, ...] = ()
    stop: tuple[str, ...] = ()

    def decisions(self) -> tuple[Decision, ...]:
        return (tuple(Resume(t) for t in self.promote)
                + tuple(Stop(t, Reason.NEVER_PROMOTABLE) for t in self.stop))


def for_action(trial: str, action: Action, reason: str) -> Decision:
    """The decision value of ``action`` for ``trial``."""
    return {Action.CONTINUE: Continue, Action.PAUSE: Pause, Action.STOP: Stop}[Action(action)](trial, reason)
