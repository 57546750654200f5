"""The bounds every decoded value respects, declared as msgspec constraints on the field types.

A message field is typed with these aliases instead of plain ``str``, ``float`` or ``tuple``, so msgspec
checks the bound while it decodes, at C speed, and the type checker still sees ``str``, ``float`` and
``tuple``. Integers need no alias: msgpack carries at most 64 bits, and msgspec refuses anything that is
not an integer (booleans and floats included), so every ``int`` field already lies within the signed 64-bit
times and unsigned 64-bit magics and tickets MT5 uses.
"""

from __future__ import annotations

import sys
from typing import Annotated, TypeVar

from msgspec import Meta

MAX_MESSAGE_BYTES = 4 * 1024 * 1024  # also set as the sockets' MAXMSGSIZE, so oversize peers are cut off early
MAX_STRING_CHARS = 4096
MAX_SEQUENCE_ITEMS = 20_000  # far above any real snapshot (orders + positions), far below a memory problem
# No NaN or infinity may reach a price or a volume (fail fast on invalid data). msgspec has no "finite"
# option, but NaN fails every comparison, so these two bounds refuse NaN, +inf and -inf alike.
LARGEST_FINITE = sys.float_info.max

Item = TypeVar("Item")

Text = Annotated[str, Meta(max_length=MAX_STRING_CHARS)]
Number = Annotated[float, Meta(ge=-LARGEST_FINITE, le=LARGEST_FINITE)]
# The length is checked from the array header, before any item is decoded: a tiny body that claims
# 2**32 items is refused without allocating them.
Items = Annotated[tuple[Item, ...], Meta(max_length=MAX_SEQUENCE_ITEMS)]
