"""What each trade-server answer means for retrying (shared/mt5-api.md §6.4)."""

from __future__ import annotations

DESCRIPTIONS = {
    10004: "requote", 10006: "request rejected", 10007: "request canceled by trader", 10008: "order placed",
    10009: "request executed", 10010: "only part of the request was completed", 10011: "request processing error",
    10012: "request canceled by timeout", 10013: "invalid request", 10014: "invalid volume",
    10015: "invalid price", 10016: "invalid stops", 10017: "trade disabled", 10018: "market closed",
    10019: "not enough money", 10020: "prices changed", 10021: "no quotes", 10022: "invalid expiration",
    10023: "order state changed", 10024: "too frequent requests", 10025: "no changes in request",
    10026: "autotrading disabled by server", 10027: "autotrading disabled by client",
    10028: "request locked for processing", 10029: "order or position frozen", 10030: "unsupported filling mode",
    10031: "no connection with the trade server", 10032: "allowed for live accounts only",
    10033: "pending-order limit reached", 10034: "volume limit reached", 10035: "invalid or prohibited order type",
    10036: "position already closed", 10038: "close volume exceeds position", 10039: "close order already exists",
    10040: "position limit reached", 10041: "pending activation rejected", 10042: "only long positions allowed",
    10043: "only short positions allowed", 10044: "only position closing allowed", 10045: "FIFO rule",
}

# Answers that can pass by themselves: the market, the connection or the server's load changes.
RETRYABLE = frozenset({10004, 10006, 10011, 10012, 10018, 10020, 10021, 10023, 10024, 10028, 10029, 10031})


def describe(retcode: int) -> str:
    return DESCRIPTIONS.get(retcode, f"retcode {retcode}")


def is_retryable(retcode: int) -> bool:
    return retcode in RETRYABLE
