"""What an operator (``mt5-copier pause`` / ``resume``) or a risk guard lets through to a target, as one gate
between the planner and the dispatcher.

The planner stays unaware of controls: it plans what the target should receive, and ``gate`` decides which of
those actions may go now. A withheld action is simply not sent: it was never recorded as an intent, so it
moved no link and left no trace in the state, and the next plan (after a resume, or once there is room)
plans it again from the facts of that moment. That is what keeps a withheld action from leaving half-done
bookkeeping behind.

- ``PAUSED``: nothing is sent (no placement, edit, removal, SL/TP change or close): the copies stay exactly as
  they are, as on a disabled target, but the target is still watched.
- ``CLOSE_ONLY``: no new exposure. No new copy is placed; a replacement (remove + place) keeps the existing
  copy as it is rather than remove it for a placement that would be withheld; a copy whose source filled is
  removed rather than opened at market. Edits of a copy's price, SL and TP, removals, the SL/TP of positions
  and closes (partial or whole) go on.
- ``max_total_volume`` ([targets.risk]): a placement that would take the copier's lots on the account past the
  limit waits, whatever the mode.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import Enum

import msgspec

from coordinator.domain.actions import Action, ActionKind

OPERATOR = "operator"
GUARD_PREFIX = "guard:"  # set_by of a control a risk guard set ("guard:max_drawdown_percent")
VOLUME_EPSILON = 1e-9


class TargetMode(str, Enum):
    ACTIVE = "active"
    PAUSED = "paused"
    CLOSE_ONLY = "close_only"

    @property
    def words(self) -> str:
        return {"active": "active", "paused": "paused", "close_only": "close-only"}[self.value]


@dataclass(frozen=True)
class TargetControl:
    """The mode a target is in, why, who set it ("operator", "guard:min_equity", "remove-copies") and when
    (unix time; 0 = never set)."""

    mode: TargetMode
    reason: str = ""
    set_by: str = ""
    set_at: float = 0.0

    @property
    def active(self) -> bool:
        return self.mode is TargetMode.ACTIVE

    @property
    def by_guard(self) -> bool:
        """Set by a risk guard: it needs a person (or, for min_equity, the equity back)."""
        return self.set_by.startswith(GUARD_PREFIX)

    def describe(self) -> str:
        """In the words a trader reads: "paused by the operator (since 2026-05-04 14:02:11)"; a reason says the
        mode first ("close-only: risk guard ...")."""
        if self.active:
            return "active"
        text = self.reason or f"{self.mode.words} by {self.set_by or 'the operator'}"
        return f"{text} (since {clock_text(self.set_at)})" if self.set_at else text


ACTIVE = TargetControl(TargetMode.ACTIVE)


def clock_text(at: float) -> str:
    return datetime.fromtimestamp(at).strftime("%Y-%m-%d %H:%M:%S")


def operator_control(mode: TargetMode, at: float) -> TargetControl:
    """What ``pause`` (``--close-only``) and ``resume`` set."""
    reason = {TargetMode.ACTIVE: "resumed by the operator", TargetMode.PAUSED: "paused by the operator",
              TargetMode.CLOSE_ONLY: "close-only by the operator"}[mode]
    return TargetControl(mode, reason=reason, set_by=OPERATOR, set_at=at)


@dataclass(frozen=True)
class VolumeRoom:
    """What ``max_total_volume`` needs to judge a placement: the limit, the lots the copier already holds on the
    account (pending copies, copy positions and placements in flight), and each pending copy's volume by ticket
    (a replacement adds only what it places beyond the copy it removes)."""

    limit: float
    held: float
    copy_volumes: Mapping[int, float]


@dataclass(frozen=True)
class Withheld:
    action: Action
    reason: str  # "paused by the operator since ...", "close-only (...): no new copies", "max_total_volume ..."

    def describe(self) -> str:
        return f"waiting: {self.action.kind.value} held back: {self.reason}"


class Gated(msgspec.Struct, frozen=True):
    sent: list[Action]
    withheld: list[Withheld]
    # Placements withheld by max_total_volume (for its guard's event), by source ticket.
    over_volume: list[int]


def adds_exposure(action: Action) -> bool:
    """Whether the action can open exposure the target does not hold now: a new copy, a replacement (its place
    half), a position opened at market."""
    return action.kind in (ActionKind.PLACE, ActionKind.REPLACE, ActionKind.MARKET)


def gate(actions: Sequence[Action], control: TargetControl, room: VolumeRoom | None = None) -> Gated:
    """Which of a plan's ``actions`` go out under ``control`` (the mode in force, the operator's or a guard's) and
    ``room`` (max_total_volume; None: no limit), and which wait, with why. Pure: the caller sends ``sent`` and
    reports ``withheld`` as waiting."""
    sent: list[Action] = []
    withheld: list[Withheld] = []
    over: list[int] = []
    if control.mode is TargetMode.PAUSED:
        why = f"{control.describe()}: nothing is sent to this target"
        return Gated(sent=[], withheld=[Withheld(action, why) for action in actions], over_volume=[])
    held = room.held if room is not None else 0.0
    for action in actions:
        if control.mode is TargetMode.CLOSE_ONLY and adds_exposure(action):
            if action.kind is ActionKind.MARKET:
                sent.append(_remove_instead(action, control))
                continue
            what = "no new copies" if action.kind is ActionKind.PLACE else \
                "the copy is kept as it is rather than replaced (the replacement would place a new one)"
            withheld.append(Withheld(action, f"{control.describe()}: {what}"))
            continue
        if room is not None and action.kind in (ActionKind.PLACE, ActionKind.REPLACE):
            added = action.volume - (room.copy_volumes.get(action.ticket, 0.0)
                                     if action.kind is ActionKind.REPLACE else 0.0)
            if added > 0 and held + added > room.limit + VOLUME_EPSILON:
                withheld.append(Withheld(action, f"max_total_volume {room.limit:g}: {held:g} lots held, this copy "
                                                 f"{'adds ' if action.kind is ActionKind.REPLACE else ''}{added:g}"))
                over.append(action.source_ticket)
                continue
            held += max(added, 0.0)
        sent.append(action)
    return Gated(sent=sent, withheld=withheld, over_volume=over)


def _remove_instead(action: Action, control: TargetControl) -> Action:
    """Close-only: a pending copy whose source filled is removed, as ``on_source_fill = "remove"`` would, rather
    than opened at market (a new position) or left pending (to fill by itself on its own market)."""
    return msgspec.structs.replace(action, kind=ActionKind.REMOVE, order_type=0, volume=0.0, price=0.0, deviation=0,
                   source_volume=0.0, price_offset=0.0,
                   reason=f"source order #{action.source_ticket} filled; {control.describe()}: its pending copy is "
                          "removed, not opened at market")
