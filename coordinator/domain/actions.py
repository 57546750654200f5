"""What a plan decides to do to one copy: an ``Action``, in the domain's terms.

The planner returns actions; they become wire commands (``protocol.Command``) only when the dispatcher sends
them, and the in-flight record keeps both. An action carries what the wire never needs: why it is done (a
removal's reason, a confirmed orphan's evidence), what changed the copy from a plain copy of its source (the
adjustment said in the log, the history and the summary), what it was sized from (recorded with the link),
and the move it makes in the link's lifecycle. So the outcome of a command is told from its action alone,
with no side tables keyed by ticket.

Source and copy tickets are both MT5 order tickets (ints) but never interchangeable: ``SourceTicket`` and
``CopyTicket`` let the type checker tell them apart where it matters.
"""

from __future__ import annotations

from typing import NewType

import msgspec

from coordinator.domain.link_lifecycle import LinkMove
from protocol import Command, CommandKind
from protocol.mt5 import describe_order_type

SourceTicket = NewType("SourceTicket", int)  # an order on the source terminal
CopyTicket = NewType("CopyTicket", int)  # an order (or the position it became) on a target terminal

# The four things the copier does to a copy share their names with the wire's command kinds: the wire only
# names them, it does not own them.
ActionKind = CommandKind


class Action(msgspec.Struct, frozen=True, kw_only=True):
    """One thing to do to one target for one source order. Carries the copy's full desired state (never
    deltas): a MODIFY that left SL or TP out would delete them on MT5."""

    kind: ActionKind
    source_ticket: SourceTicket
    symbol: str  # the target's symbol
    ticket: CopyTicket = CopyTicket(0)  # the copy to modify, replace or remove; 0 for a placement
    order_type: int = 0  # an ORDER_TYPE_* (``OrderType``); plain int, as a terminal may know more types
    volume: float = 0.0
    price: float = 0.0
    stoplimit: float = 0.0
    sl: float = 0.0
    tp: float = 0.0
    type_time: int = 0
    expiration: int = 0  # the target server's clock
    magic: int = 0
    comment: str = ""
    expected_volume: float = 0.0  # CLOSE: the position's volume the close was planned on (never closed twice)
    deviation: int = 0  # CLOSE, MARKET: the largest price move accepted, in the target symbol's points
    # Recorded with the copy's link: the source volume it was sized from, and (price_mode =
    # "market_distance") how far it sits from the source price.
    source_volume: float = 0.0
    price_offset: float = 0.0
    reason: str = ""  # why a copy is removed ("orphan: source order #5 is cancelled", "a second copy ...")
    evidence: str = ""  # a confirmed orphan's removal: what confirmed it (the history, or the checks)
    adjustment: str = ""  # what changed a placed copy from a plain copy (contract sizes, a bound, expiration)

    @property
    def link_move_on_record(self) -> LinkMove | None:
        """The move made when this action's intent is recorded, in the same transaction: a REPLACE marks its
        link first, so a crash half-way is repaired by placing the new copy, never a second one."""
        return LinkMove.REPLACE_STARTED if self.kind is ActionKind.REPLACE else None

    @property
    def link_move_on_done(self) -> LinkMove | None:
        """The move made once the broker did it: a REMOVE ends its link, if the removed copy is the linked one
        (removing a duplicate leaves the kept copy linked). A PLACE, MODIFY or REPLACE instead binds its copy
        to the link afresh (``StateStore.save_link``), and a REPLACE that did not happen undoes its mark
        (``LinkMove.REPLACE_UNDONE``)."""
        return LinkMove.REMOVED if self.kind is ActionKind.REMOVE else None

    @property
    def orphan_removal(self) -> bool:
        """A removal (or a copy position's close) the orphan policy confirmed: its evidence says how."""
        return self.kind in (ActionKind.REMOVE, ActionKind.CLOSE) and bool(self.evidence)

    def command(self, command_id: str, deadline_ms: int) -> Command:
        """The wire form, as the worker executes it: the desired order and nothing of the coordinator's."""
        return Command(
            command_id=command_id, kind=self.kind, source_ticket=self.source_ticket, symbol=self.symbol,
            ticket=self.ticket, order_type=self.order_type, volume=self.volume, price=self.price,
            stoplimit=self.stoplimit, sl=self.sl, tp=self.tp, type_time=self.type_time, expiration=self.expiration,
            magic=self.magic, comment=self.comment, deadline_ms=deadline_ms, expected_volume=self.expected_volume,
            deviation=self.deviation,
        )

    def describe(self) -> str:
        """What a placed or modified copy looks like, in the words a trader reads."""
        text = f"{self.symbol} {describe_order_type(self.order_type)} {self.volume:g} lots @ {self.price:g}"
        if self.stoplimit:
            text += f" limit {self.stoplimit:g}"
        return text + f" sl {self.sl:g} tp {self.tp:g}"

