"""The risk guards of ``[targets.risk]``, as pure judgements of one target's facts.

- ``max_total_volume``: the lots the copier holds on the account (``held_volume``) bound new placements (the
  gate in ``controls.py`` withholds the one that would pass the limit; nothing is paused).
- ``min_equity``: equity below it means close-only until it is back (``min_equity_problem``).
- ``max_drawdown_percent``: equity this far below its peak trips a close-only that only ``resume`` clears
  (``drawdown_problem``; the runtime keeps the peak across restarts).

Equity and balance come from the target's snapshot; a snapshot with neither (0 and 0) says nothing of them, and
no guard judges on it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

from config import RiskSettings
from coordinator.domain.actions import Action, ActionKind
from coordinator.domain.link_lifecycle import PENDING_STATUSES, Link
from protocol import PendingOrder, PositionFacts
from protocol.tags import parse_tag


def known_equity(balance: float, equity: float) -> float | None:
    """The account's equity, or None when the report holds no account figures at all."""
    if balance == 0.0 and equity == 0.0:
        return None
    return equity


def held_volume(orders: Sequence[PendingOrder], positions: Sequence[PositionFacts], links: Mapping[int, Link],
                in_flight: Iterable[Action]) -> float:
    """The lots the copier holds on a target, counted per source order on the side of caution: its pending
    copies and copy positions as the snapshot shows them; for a source order with neither there yet, what is
    in flight to place it, or the copy its link records as pending (placed a moment ago, before the snapshot
    shows it); a replacement in flight counts its new volume if that is more than the copy it replaces."""
    pending: dict[int, float] = {}
    for order in orders:
        source = _copy_of(order.comment, order.magic)
        if source is not None:
            pending[source] = pending.get(source, 0.0) + order.volume
    opened: dict[int, float] = {}
    for position in positions:
        source = _copy_of(position.comment, position.magic)
        if source is not None:
            opened[source] = opened.get(source, 0.0) + position.volume
    placing: dict[int, float] = {}
    for action in in_flight:
        if action.kind in (ActionKind.PLACE, ActionKind.REPLACE, ActionKind.MARKET):
            placing[action.source_ticket] = max(placing.get(action.source_ticket, 0.0), action.volume)
    total = 0.0
    for source in pending.keys() | opened.keys() | placing.keys() | links.keys():
        seen = pending.get(source, 0.0) + opened.get(source, 0.0)
        link = links.get(source)
        recorded = link.volume if link is not None and link.status in PENDING_STATUSES and source not in pending \
            and source not in opened else 0.0
        total += max(seen, placing.get(source, 0.0), recorded)
    return round(total, 8)


def _copy_of(comment: str, magic: int) -> int | None:
    """The source ticket of one of the copier's copies (tag and magic agree), else None."""
    source = parse_tag(comment)
    return source if source is not None and source == magic else None


def min_equity_problem(settings: RiskSettings, equity: float | None) -> str | None:
    """Why new copies must wait for the equity to be back (None: they need not; unknown equity judges nothing)."""
    if settings.min_equity is None or equity is None or equity >= settings.min_equity:
        return None
    return f"min_equity {settings.min_equity:g}: equity {equity:.2f}"


def drawdown_problem(settings: RiskSettings, peak: float | None, equity: float | None) -> str | None:
    """Why the drawdown guard trips (None: it does not): equity more than max_drawdown_percent below ``peak``."""
    limit = settings.max_drawdown_percent
    if limit is None or peak is None or equity is None or peak <= 0:
        return None
    drawdown = (peak - equity) / peak * 100
    if drawdown + 1e-9 < limit:
        return None
    return f"max_drawdown_percent {limit:g}: equity {equity:.2f} is {drawdown:.1f}% below its peak {peak:.2f}"
