"""The copies on one terminal by source ticket, for the duplicate-copy guard over a batch of placements.

The guard (``MT5Adapter._place``) must know, before each placement, whether a copy of that source order is
already there. Reading every order and position of the terminal before each placement makes a batch of n
placements cost n full reads (O(n²)); instead, one read at the first placement of a batch is kept and the
copies this worker places are added to it as it places them.

Why that is exact: a copy carries the copier's tag, and on one terminal only one worker places tagged orders
(the terminal lock, terminal_worker/lock.py). So between two reads the tagged set changes only by what this
worker does, and what it does is recorded here: a placement it made (added), anything else that may have
changed it (a removal, a close, a market opening, an answer in doubt) drops the index so the next guard reads
the terminal again. What can only happen outside the worker is a copy disappearing (a person deletes it, it
expires or fills and closes): the index would then still hold it and the guard would answer "already there" for
a copy that is gone. The next snapshot shows it gone and the coordinator decides about it as it does for any copy
that vanished; to keep that window short the index is read again when it is older than ``MAX_AGE_SECONDS``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from typing import Any

from protocol.tags import parse_tag

MAX_AGE_SECONDS = 1.0


class CopyIndex:
    """Tagged pending orders (by ``ticket``) and positions (by ``identifier``) of one terminal, by source ticket."""

    def __init__(self, orders: Iterable[Any], positions: Iterable[Any], read_at: float) -> None:
        self.read_at = read_at
        self._copies: dict[int, list[int]] = {}
        for order in orders:
            self._note(int(order.magic), str(order.comment), int(order.ticket))
        for position in positions:
            self._note(int(position.magic), str(position.comment), int(position.identifier))

    def _note(self, magic: int, comment: str, ticket: int) -> None:
        source_ticket = parse_tag(comment)
        if source_ticket is not None and source_ticket == magic:  # the tag rule of protocol.tags.is_copy_of
            self.add(source_ticket, ticket)

    def find(self, source_ticket: int, exclude: int = 0) -> int | None:
        """The first copy of ``source_ticket`` other than ``exclude``, as ``protocol.tags.find_tagged`` answers."""
        return next((ticket for ticket in self._copies.get(source_ticket, ()) if ticket != exclude), None)

    def add(self, source_ticket: int, ticket: int) -> None:
        tickets = self._copies.setdefault(source_ticket, [])
        if ticket not in tickets:
            tickets.append(ticket)

    def fresh(self, now: float) -> bool:
        return now - self.read_at < MAX_AGE_SECONDS


class BatchCopyIndex:
    """The index as one batch of commands uses it: read at the first guard, kept up to date by ``record``."""

    def __init__(self, read: Callable[[], tuple[Iterable[Any], Iterable[Any]]],
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._read = read  # (orders_get, positions_get) of the terminal; raises when it cannot be read
        self._clock = clock
        self._index: CopyIndex | None = None
        self.active = False  # only inside a batch: a lone guard outside one reads the terminal itself

    def begin(self) -> None:
        self.active, self._index = True, None

    def end(self) -> None:
        self.active, self._index = False, None

    def find(self, source_ticket: int, exclude: int = 0) -> int | None:
        now = self._clock()
        if self._index is None or not self._index.fresh(now):
            orders, positions = self._read()
            self._index = CopyIndex(orders, positions, now)
        return self._index.find(source_ticket, exclude)

    def placed(self, source_ticket: int, ticket: int) -> None:
        """This worker placed copy ``ticket`` of ``source_ticket`` (the broker said so)."""
        if self._index is not None:
            self._index.add(source_ticket, ticket)

    def forget(self) -> None:
        """Something may have changed the tagged set otherwise: the next guard reads the terminal again."""
        self._index = None
