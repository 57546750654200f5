"""When a refused command may be tried again: the copier's retry policy, per target, in one place.

A broker's "no" is remembered per source order as a ``Failure`` until the order or its copy is gone. While
it lasts, the planner is told to wait (the backoff); it is waived at once when the source order is edited
(the edit may be exactly what the broker needed), and a closed market waits for its next tick instead of a
timer. Pure bookkeeping: no I/O; the clock is the caller's.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping

from coordinator.domain.report import Failure
from protocol import CommandResult, CommandStatus, PendingOrder
from protocol.mt5 import LastError, Retcode, describe_retcode, is_retryable

RETRY_DELAYS = (1.0, 2.0, 5.0, 15.0, 30.0, 60.0)  # retryable rejections: back off, capped at a minute
FINAL_FAILURE_RETRY_SECONDS = 300.0  # final rejections: conditions rarely change, but the order may be edited
EXPIRED_RETRY_SECONDS = RETRY_DELAYS[0]  # a command that arrived after its deadline was not sent at all
# A closed market opens when its ticks move again (heartbeats carry them every second); this is only the safety
# net for a symbol whose ticks the copier does not see.
MARKET_CLOSED_RECHECK_SECONDS = 300.0


def fingerprint(order: PendingOrder) -> tuple:
    """What of a source order, when edited, waives its backoff."""
    return (order.type, order.volume, order.price_open, order.price_stoplimit, order.sl, order.tp, order.type_time,
            order.time_expiration)


def is_final(result: CommandResult) -> bool:
    """Will trying again soon fail the same way? Broker answers by their retcode; answers from the terminal
    link itself (no retcode: not connected, IPC failure) pass when the terminal is back, except a request the
    package refused as malformed (invalid params), which will be refused again."""
    if result.status is CommandStatus.REFUSED:
        return True
    if result.retcode:
        return not is_retryable(result.retcode)
    return result.error_code == LastError.INVALID_PARAMS


def failure_text(result: CommandResult) -> str:
    if result.retcode:
        return f"{describe_retcode(result.retcode)} ({result.retcode}{', ' + result.comment if result.comment else ''})"
    return result.comment or result.error_message or result.status.value


class RetryPolicy:
    """The current failures of one target, by source ticket (the ``--once`` summary and status read them)."""

    def __init__(self, failures: dict[int, Failure]) -> None:
        self.failures = failures  # shared with the target's report: one dict, one owner (this class)

    def refused(self, source_ticket: int, symbol: str, result: CommandResult, reason: str, now: float,
                source_fingerprint: tuple = ()) -> tuple[Failure, Failure | None]:
        """Remember a refusal; return the failure now held and the one it replaces (None the first time)."""
        previous = self.failures.get(source_ticket)
        attempts = previous.attempts + 1 if previous else 1
        final = is_final(result)
        if result.retcode == Retcode.MARKET_CLOSED:
            delay = MARKET_CLOSED_RECHECK_SECONDS
        else:
            delay = FINAL_FAILURE_RETRY_SECONDS if final else RETRY_DELAYS[min(attempts, len(RETRY_DELAYS)) - 1]
        failure = Failure(retcode=result.retcode, message=reason, attempts=attempts, retry_at=now + delay,
                          final=final, fingerprint=source_fingerprint, symbol=symbol)
        self.failures[source_ticket] = failure
        return failure, previous

    def not_sent(self, source_ticket: int, now: float, source_fingerprint: tuple = ()) -> None:
        """The command reached the worker after its deadline: planned again after a short pause, no failure."""
        self.failures[source_ticket] = Failure(retcode=0, message="not sent: arrived after its deadline", attempts=0,
                                               retry_at=now + EXPIRED_RETRY_SECONDS, final=False,
                                               fingerprint=source_fingerprint)

    def succeeded(self, source_ticket: int) -> None:
        self.failures.pop(source_ticket, None)

    def market_open(self, symbol: str, now: float) -> None:
        """What waited for ``symbol``'s session may go at once."""
        for failure in self.failures.values():
            if failure.retcode == Retcode.MARKET_CLOSED and failure.symbol == symbol:
                failure.retry_at = now

    def backoff(self, source_orders: Mapping[int, PendingOrder], copies: Collection[int],
                now: float) -> dict[int, str]:
        """Source tickets still waiting to retry, with why. A failure is forgotten once neither its source
        order nor a copy of it is left (an orphan's removal keeps its backoff), and waived when the source order
        was edited since it failed."""
        if not self.failures:
            return {}  # the usual case, asked once per target per plan
        for ticket in [t for t in self.failures if t not in source_orders and t not in copies]:
            del self.failures[ticket]
        return {ticket: failure.message for ticket, failure in self.failures.items()
                if failure.retry_at > now and (not failure.fingerprint or ticket not in source_orders
                                               or failure.fingerprint == fingerprint(source_orders[ticket]))}

    def waiting(self, source_ticket: int, now: float) -> bool:
        failure = self.failures.get(source_ticket)
        return failure is not None and failure.retry_at > now

    def next_retry_at(self) -> float | None:
        """When the earliest retryable failure may go again (final ones are not waited for)."""
        pending = [failure.retry_at for failure in self.failures.values() if not failure.final]
        return min(pending) if pending else None
