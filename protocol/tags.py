"""The tag that marks an order as a copy placed by mt5-copier.

Every copy carries ``magic = source ticket`` and ``comment = copy_tag(source ticket)``. Both are needed to
call an order ours: a magic alone could belong to another expert advisor, a comment alone could be typed by
a person. The tag stays within 16 characters because some servers cut stored comments to 16.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable
from typing import Any

TAG_PREFIX = "mtc#"
_BASE36 = "0123456789abcdefghijklmnopqrstuvwxyz"
_LONG_PREFIX = "mc$"  # tickets of 13+ digits: base 36 keeps even 2**64 - 1 within 16 characters
MAX_TAG_CHARS = 16


def copy_tag(source_ticket: int) -> str:
    """The comment a copy of ``source_ticket`` carries."""
    if source_ticket <= 0:
        raise ValueError(f"a source ticket is a positive integer, received {source_ticket}")
    decimal = f"{TAG_PREFIX}{source_ticket}"
    if len(decimal) <= MAX_TAG_CHARS:
        return decimal
    digits = []
    value = source_ticket
    while value:
        value, remainder = divmod(value, 36)
        digits.append(_BASE36[remainder])
    return _LONG_PREFIX + "".join(reversed(digits))


@functools.lru_cache(maxsize=16_384)
def parse_tag(comment: str) -> int | None:
    """The source ticket a copier comment names, or None when the comment is not a copier tag. Remembered: the
    same comments are parsed on every snapshot (each copy's, by the coordinator's plans and the worker's guard)."""
    try:
        if comment.startswith(TAG_PREFIX):
            ticket = int(comment[len(TAG_PREFIX) :], 10)
        elif comment.startswith(_LONG_PREFIX):
            ticket = int(comment[len(_LONG_PREFIX) :], 36)
        else:
            return None
    except ValueError:
        return None
    return ticket if ticket > 0 and copy_tag(ticket) == comment else None


def is_copy_of(magic: int, comment: str, source_ticket: int) -> bool:
    """True when an order with this magic and comment is our copy of ``source_ticket``."""
    return magic == source_ticket and parse_tag(comment) == source_ticket


def find_tagged(source_ticket: int, orders: Iterable[Any], positions: Iterable[Any], exclude: int = 0) -> int | None:
    """The ticket of the copy of ``source_ticket`` among pending ``orders`` (by ``ticket``) or ``positions``
    (by ``identifier``, the ticket of the order that opened it), other than ``exclude``. Works on the MT5
    named tuples and on the protocol's dataclasses alike: both carry ``magic`` and ``comment``."""
    for order in orders:
        if is_copy_of(int(order.magic), str(order.comment), source_ticket) and int(order.ticket) != exclude:
            return int(order.ticket)
    for position in positions:
        ticket = int(position.identifier)
        if is_copy_of(int(position.magic), str(position.comment), source_ticket) and ticket != exclude:
            return ticket
    return None
