"""What the coordinator asked one worker and has not heard back: symbol descriptions, and history lookups of
orders and of positions (their deals).

One tracker per terminal, reset when a new worker process says hello (a new boot knows nothing of what its
predecessor was asked). A question unanswered for long is given up, so a worker that went away never leaves
the coordinator waiting; it is asked again when it matters. History that has no record of a ticket is asked
again a bounded number of times, a little apart (history can lag an order's disappearance), and then the
answer "no record" stands.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from typing import Any

from coordinator.domain.report import trim

SYMBOL_REQUEST_RETRY_SECONDS = 10.0
HISTORY_REQUEST_RETRY_SECONDS = 10.0
ANSWER_WAIT_SECONDS = 30.0  # a question unanswered this long is given up (asked again when needed)
NO_RECORD_LOOKS = 3  # "no record" this many times, ...
NO_RECORD_RETRY_SECONDS = 1.5  # ... this far apart, and the copy's fate is decided without a record


class FactRequests:
    def __init__(self) -> None:
        self._symbols: dict[str, float] = {}  # symbol -> when asked (the engine's clock)
        self._history: dict[int, float] = {}  # ticket -> when asked
        self._no_record: dict[int, tuple[int, float]] = {}  # ticket -> ("no record" answers, when the last came)
        self._positions: dict[int, float] = {}  # position id -> when its deals were asked for
        self._positions_answered: dict[int, float] = {}  # position id -> when its deals last came

    # ---- symbols -------------------------------------------------------------------------------

    def symbols_to_ask(self, symbols: Iterable[str], known: Collection[str], now: float) -> list[str]:
        """Of ``symbols``, those not ``known`` (described or missing) and not asked for lately."""
        return sorted(symbol for symbol in symbols if symbol not in known
                      and now - self._symbols.get(symbol, -1e9) > SYMBOL_REQUEST_RETRY_SECONDS)

    def asked_symbols(self, symbols: Iterable[str], now: float) -> None:
        for symbol in symbols:
            self._symbols[symbol] = now

    def symbol_answered(self, symbol: str) -> None:
        self._symbols.pop(symbol, None)

    # ---- history -------------------------------------------------------------------------------

    def history_to_ask(self, tickets: Iterable[int], now: float) -> list[int]:
        """Of ``tickets``, those not asked for lately and whose "no record" is neither settled nor fresh."""
        return sorted(ticket for ticket in tickets
                      if now - self._history.get(ticket, -1e9) > HISTORY_REQUEST_RETRY_SECONDS
                      and not self._no_record_settled_or_recent(ticket, now))

    def asked_history(self, tickets: Iterable[int], now: float) -> None:
        for ticket in tickets:
            self._history[ticket] = now

    def history_found(self, ticket: int) -> None:
        self._history.pop(ticket, None)

    def history_has_no_record(self, ticket: int, now: float) -> None:
        self._history.pop(ticket, None)
        answers = self._no_record.get(ticket, (0, 0.0))[0] + 1
        self._no_record[ticket] = (answers, now)
        trim(self._no_record)

    def awaiting_history(self, ticket: int, now: float) -> bool:
        """Its history was asked for and the answer may still come."""
        return now - self._history.get(ticket, -1e9) < ANSWER_WAIT_SECONDS

    def without_record(self) -> frozenset[int]:
        """Tickets the terminal's history has no record of, after the bounded looks."""
        return frozenset(ticket for ticket, (answers, _) in self._no_record.items() if answers >= NO_RECORD_LOOKS)

    def _no_record_settled_or_recent(self, ticket: int, now: float) -> bool:
        answers = self._no_record.get(ticket)
        if answers is None:
            return False
        count, last = answers
        return count >= NO_RECORD_LOOKS or now - last < NO_RECORD_RETRY_SECONDS

    # ---- positions (their deals) ---------------------------------------------------------------

    def positions_to_ask(self, position_ids: Iterable[int], now: float) -> list[int]:
        """Of ``position_ids``, those whose deals were neither asked for nor answered lately (deals change as a
        position closes: an answer is worth asking again, a little apart)."""
        return sorted(position_id for position_id in position_ids
                      if now - self._positions.get(position_id, -1e9) > HISTORY_REQUEST_RETRY_SECONDS
                      and now - self._positions_answered.get(position_id, -1e9) >= NO_RECORD_RETRY_SECONDS)

    def asked_positions(self, position_ids: Iterable[int], now: float) -> None:
        for position_id in position_ids:
            self._positions[position_id] = now

    def position_answered(self, position_id: int, now: float) -> None:
        self._positions.pop(position_id, None)
        self._positions_answered[position_id] = now
        trim(self._positions_answered)

    def awaiting_position_history(self, position_id: int, now: float) -> bool:
        """Its deals were asked for and the answer may still come."""
        return now - self._positions.get(position_id, -1e9) < ANSWER_WAIT_SECONDS

    # ---- the whole ------------------------------------------------------------------------------

    def give_up_old(self, now: float) -> None:
        """Forget questions unanswered for ANSWER_WAIT_SECONDS: the worker may have gone."""
        _forget_older_than(self._symbols, now - ANSWER_WAIT_SECONDS)
        _forget_older_than(self._history, now - ANSWER_WAIT_SECONDS)
        _forget_older_than(self._positions, now - ANSWER_WAIT_SECONDS)

    def outstanding(self) -> bool:
        return bool(self._symbols or self._history or self._positions)

    def new_worker(self) -> None:
        """A new worker process knows nothing of what its predecessor was asked. (What the terminal's history
        said stays: it is about the terminal, not the worker.)"""
        self._symbols.clear()
        self._history.clear()
        self._positions.clear()


def _forget_older_than(asked: dict[Any, float], moment: float) -> None:
    for key in [key for key, at in asked.items() if at < moment]:
        del asked[key]
