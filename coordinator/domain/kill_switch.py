"""The kill switch's decisions, pure: which of a target's orders and positions are the copier's own, and what to
send to take them off (``mt5-copier remove-copies``).

The copier's own, by the rules every removal of the copier follows (the orphan policy's: nothing is touched that
the copier did not place): a pending order is its copy when its tag says so (magic = source ticket and the
copier's comment, ``our_copies``) or when a link records its ticket as a copy (the broker gave that ticket to an
order the copier placed on this account); a position only when its tag says so, as the worker itself refuses to
close any other (a position's ticket was never the copier's to record). Everything else (a person's orders, an
expert advisor's, a comment someone typed) is left alone and only counted.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass

from coordinator.domain.actions import Action, ActionKind, CopyTicket, SourceTicket
from coordinator.domain.link_lifecycle import Link
from coordinator.domain.planner import our_copies
from protocol import PendingOrder, PositionFacts
from protocol.tags import is_copy_of

KILL_SWITCH_REASON = "kill switch: remove-copies"


@dataclass(frozen=True, slots=True)
class KillList:
    """What the kill switch takes off one target, as it stands in one snapshot."""

    removals: tuple[Action, ...]  # one REMOVE per pending copy
    closes: tuple[Action, ...]  # one CLOSE per copy position (only when asked, and when they may be closed)
    foreign_orders: int  # pending orders that are not the copier's: left alone
    foreign_positions: int  # positions that are not the copier's copies: left alone
    positions_kept: str = ""  # asked to close positions, but they are not closed here: why

    @property
    def actions(self) -> tuple[Action, ...]:
        return self.removals + self.closes


def copier_orders(orders: Sequence[PendingOrder], links: Mapping[int, Link]) -> dict[int, int]:
    """The pending orders that are the copier's copies, by ticket: the source ticket each copies. Tagged ones
    (a second copy of one source order too), and any order whose ticket a link records as its copy."""
    copies, extras = our_copies(orders)
    own = {copy.ticket: source_ticket for source_ticket, copy in copies.items()}
    own.update((extra.ticket, extra.magic) for extra in extras)
    linked = {link.copy_ticket: link.source_ticket for link in links.values()}
    own.update((order.ticket, linked[order.ticket]) for order in orders
               if order.ticket in linked and order.ticket not in own)
    return own


def copier_positions(positions: Iterable[PositionFacts]) -> list[PositionFacts]:
    """The open positions that are the copier's copies (their tag says so), every one of them."""
    return [position for position in positions if is_copy_of(position.magic, position.comment, position.magic)]


def kill_list(orders: Sequence[PendingOrder], positions: Sequence[PositionFacts], links: Mapping[int, Link], *,
              close_positions: bool, positions_not_followed: str = "", close_deviation_points: int = 0) -> KillList:
    """What to send to take the copier's copies off a target showing ``orders`` and ``positions``.
    ``close_positions``: close the copy positions too (``--positions``); ``positions_not_followed``: why the
    copier does not act on positions on this target ("" when it does: a netting account's positions are not a
    copy's own); ``close_deviation_points``: the target's close_deviation_points."""
    own = copier_orders(orders, links)
    removals = tuple(
        Action(kind=ActionKind.REMOVE, source_ticket=SourceTicket(own[order.ticket]), symbol=order.symbol,
               ticket=CopyTicket(order.ticket), order_type=order.type, volume=order.volume, magic=order.magic,
               comment=order.comment, reason=KILL_SWITCH_REASON)
        for order in sorted(orders, key=lambda o: o.ticket) if order.ticket in own)
    copies = copier_positions(positions)
    closes: tuple[Action, ...] = ()
    kept = ""
    if close_positions and positions_not_followed and copies:
        kept = positions_not_followed
    elif close_positions:
        closes = tuple(
            Action(kind=ActionKind.CLOSE, source_ticket=SourceTicket(position.magic), symbol=position.symbol,
                   ticket=CopyTicket(position.ticket), order_type=position.type, volume=position.volume,
                   expected_volume=position.volume, deviation=close_deviation_points, magic=position.magic,
                   comment=position.comment, reason=KILL_SWITCH_REASON)
            for position in sorted(copies, key=lambda p: p.ticket))
    return KillList(removals=removals, closes=closes, foreign_orders=len(orders) - len(own),
                    foreign_positions=len(positions) - len(copies), positions_kept=kept)


def next_batch(actions: Iterable[Action], busy: Collection[int], tried: Collection[int]) -> list[Action]:
    """What to send now: each copy once (``tried``: copy tickets sent already), at most one command per source
    order, and none for a source order with a command in flight (``busy``: source tickets), as for every
    command of the copier. What waits goes in a later batch."""
    batch: dict[int, Action] = {}
    for action in actions:
        if action.ticket in tried or action.source_ticket in busy:
            continue
        batch.setdefault(action.source_ticket, action)
    return list(batch.values())
