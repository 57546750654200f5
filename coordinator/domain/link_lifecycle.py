"""The life of a link (the copier's record that a target order is the copy of a source order), as an
explicit state machine.

A link's status decides whether a copy may ever be placed again for its source order (a copy that filled
must never be placed twice), so it may only change by the moves below, each from the statuses where it
makes sense. ``StateStore.move_link`` is the one place that changes a status, and it refuses any move the
table does not hold: a refused move is a bug somewhere upstream, logged loudly, and the status stays as it
was (the conservative side: a status that blocks placing keeps blocking).

A new copy bound to the link (placed, replaced, or found on the target and adopted) starts its life afresh
as ACTIVE from any status: that is ``StateStore.save_link``/``adopt_link``, and only the planner decides
that a new copy may exist.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum


class LinkStatus(str, Enum):
    ACTIVE = "active"  # the copy is pending on the target (as far as the copier knows)
    REPLACING = "replacing"  # the copier removed it to place a new one (volume or type changed)
    FILLED = "filled"  # the copy triggered on the target: never placed again
    DELETED = "deleted"  # someone else removed it (a person, or the broker)
    EXPIRED = "expired"
    REMOVED = "removed"  # the copier removed it (orphan, or a type this target no longer copies)
    CLOSED = "closed"  # the copy filled, and its position is closed now (by the copier, a person, its SL or TP)


@dataclass(frozen=True, slots=True, kw_only=True)
class Link:
    """The copier's record that ``copy_ticket`` is (or was) the copy of ``source_ticket``."""

    source_ticket: int
    copy_ticket: int
    status: LinkStatus = LinkStatus.ACTIVE
    symbol: str = ""
    volume: float = 0.0
    source_volume: float = 0.0  # the source volume the copy was sized from (a change replaces the copy)
    price_offset: float = 0.0  # price_mode = "market_distance": the copy's price minus the source's


# A link whose copy is (as far as the copier knows) still pending on the target.
PENDING_STATUSES = frozenset({LinkStatus.ACTIVE, LinkStatus.REPLACING})


class LinkMove(str, Enum):
    """What happened to a linked copy."""

    REPLACE_STARTED = "replace started"  # a REPLACE is about to be sent (recorded with its intent)
    REPLACE_UNDONE = "replace undone"  # the REPLACE did not happen and the old copy is still pending
    REMOVED = "removed by the copier"
    FILLED = "filled on the target"
    EXPIRED = "expired on the target"
    DELETED = "deleted on the target"
    POSITION_CLOSED = "position closed"

    @classmethod
    def arriving_at(cls, status: LinkStatus) -> LinkMove:
        """The move that leaves a copy in ``status`` once it is no longer pending."""
        return _MOVE_TO[status]


_TRANSITIONS: dict[tuple[LinkStatus, LinkMove], LinkStatus] = {
    (LinkStatus.ACTIVE, LinkMove.REPLACE_STARTED): LinkStatus.REPLACING,
    (LinkStatus.REPLACING, LinkMove.REPLACE_STARTED): LinkStatus.REPLACING,  # a replacement tried again
    (LinkStatus.REPLACING, LinkMove.REPLACE_UNDONE): LinkStatus.ACTIVE,
    (LinkStatus.ACTIVE, LinkMove.REMOVED): LinkStatus.REMOVED,
    (LinkStatus.REPLACING, LinkMove.REMOVED): LinkStatus.REMOVED,
    (LinkStatus.ACTIVE, LinkMove.FILLED): LinkStatus.FILLED,
    (LinkStatus.REPLACING, LinkMove.FILLED): LinkStatus.FILLED,  # filled before the copier could remove it
    (LinkStatus.ACTIVE, LinkMove.EXPIRED): LinkStatus.EXPIRED,
    (LinkStatus.ACTIVE, LinkMove.DELETED): LinkStatus.DELETED,
    (LinkStatus.FILLED, LinkMove.POSITION_CLOSED): LinkStatus.CLOSED,  # never pending again, never reopened
}

_MOVE_TO = {
    LinkStatus.FILLED: LinkMove.FILLED,
    LinkStatus.EXPIRED: LinkMove.EXPIRED,
    LinkStatus.DELETED: LinkMove.DELETED,
    LinkStatus.REMOVED: LinkMove.REMOVED,
    LinkStatus.REPLACING: LinkMove.REPLACE_STARTED,
    LinkStatus.CLOSED: LinkMove.POSITION_CLOSED,
}


class InvalidLinkMove(ValueError):
    """A move the lifecycle does not allow from the link's current status."""

    def __init__(self, status: LinkStatus, move: LinkMove) -> None:
        super().__init__(f"a link that is {status.value} cannot be {move.value}")
        self.status = status
        self.move = move


def next_status(status: LinkStatus, move: LinkMove) -> LinkStatus:
    """The status after ``move``; InvalidLinkMove when the table holds no such move from ``status``."""
    try:
        return _TRANSITIONS[(status, move)]
    except KeyError:
        raise InvalidLinkMove(status, move) from None


def allowed_moves(status: LinkStatus) -> frozenset[LinkMove]:
    return frozenset(move for (start, move) in _TRANSITIONS if start is status)
