"""The error vocabulary: last_error() codes and texts (mt5-api.md §2) and trade retcode descriptions."""

from __future__ import annotations

from . import constants as c

SUCCESS: tuple[int, str] = (c.RES_S_OK, "Success")


class ApiError(Exception):
    """A failed call: the function returns its failure value and last_error() gives (code, message)."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(code, message)
        self.code = code
        self.message = message

    @property
    def pair(self) -> tuple[int, str]:
        """The (code, message) tuple last_error() reports."""
        return (self.code, self.message)


def invalid_argument(field: str) -> ApiError:
    """-2 with the field-specific text the real package uses, e.g. 'Invalid "volume" argument'."""
    return ApiError(c.RES_E_INVALID_PARAMS, f'Invalid "{field}" argument')


def invalid_unnamed(position: int) -> ApiError:
    """-2 for a positional argument of the wrong type: 'Invalid 1st unnamed argument' and so on."""
    ordinal = {1: "1st", 2: "2nd", 3: "3rd"}.get(position, f"{position}th")
    return ApiError(c.RES_E_INVALID_PARAMS, f"Invalid {ordinal} unnamed argument")


def invalid_arguments() -> ApiError:
    return ApiError(c.RES_E_INVALID_PARAMS, "Invalid arguments")


def invalid_number_of_arguments() -> ApiError:
    return ApiError(c.RES_E_INVALID_PARAMS, "Invalid number of arguments")


def unnamed_not_allowed() -> ApiError:
    """Positional and keyword arguments mixed in one call of a function that takes either form."""
    return ApiError(c.RES_E_INVALID_PARAMS, "Unnamed arguments not allowed")


def call_failed() -> ApiError:
    return ApiError(c.RES_E_FAIL, "Terminal: Call failed")


def not_found() -> ApiError:
    return ApiError(c.RES_E_NOT_FOUND, "Terminal: Not found")


def auth_failed() -> ApiError:
    return ApiError(c.RES_E_AUTH_FAILED, "Terminal: Authorization failed")


def terminal_not_found() -> ApiError:
    return ApiError(c.RES_E_INTERNAL_FAIL_INIT, "IPC initialize failed, MetaTrader 5 x64 not found")


def no_ipc_connection() -> ApiError:
    return ApiError(c.RES_E_INTERNAL_FAIL_CONNECT, "No IPC connection")


def ipc_timeout() -> ApiError:
    return ApiError(c.RES_E_INTERNAL_FAIL_TIMEOUT, "IPC timeout")


# The comment a trade server puts in a result for each retcode. These are the short texts terminals show
# (e.g. 'Invalid stops', observed), not the longer sentences of the MQL5 reference table.
RETCODE_DESCRIPTIONS: dict[int, str] = {
    c.TRADE_RETCODE_REQUOTE: "Requote",
    c.TRADE_RETCODE_REJECT: "Request rejected",
    c.TRADE_RETCODE_CANCEL: "Request canceled by trader",
    c.TRADE_RETCODE_PLACED: "Order placed",
    c.TRADE_RETCODE_DONE: "Request executed",
    c.TRADE_RETCODE_DONE_PARTIAL: "Request executed partially",
    c.TRADE_RETCODE_ERROR: "Request processing error",
    c.TRADE_RETCODE_TIMEOUT: "Request timed out",
    c.TRADE_RETCODE_INVALID: "Invalid request",
    c.TRADE_RETCODE_INVALID_VOLUME: "Invalid volume",
    c.TRADE_RETCODE_INVALID_PRICE: "Invalid price",
    c.TRADE_RETCODE_INVALID_STOPS: "Invalid stops",
    c.TRADE_RETCODE_TRADE_DISABLED: "Trade disabled",
    c.TRADE_RETCODE_MARKET_CLOSED: "Market is closed",
    c.TRADE_RETCODE_NO_MONEY: "Not enough money",
    c.TRADE_RETCODE_PRICE_CHANGED: "Prices changed",
    c.TRADE_RETCODE_PRICE_OFF: "No prices",
    c.TRADE_RETCODE_INVALID_EXPIRATION: "Invalid expiration",
    c.TRADE_RETCODE_ORDER_CHANGED: "Order state changed",
    c.TRADE_RETCODE_TOO_MANY_REQUESTS: "Too frequent requests",
    c.TRADE_RETCODE_NO_CHANGES: "No changes in request",
    c.TRADE_RETCODE_SERVER_DISABLES_AT: "AutoTrading disabled by server",
    c.TRADE_RETCODE_CLIENT_DISABLES_AT: "AutoTrading disabled by client",
    c.TRADE_RETCODE_LOCKED: "Request locked for processing",
    c.TRADE_RETCODE_FROZEN: "Order or position frozen",
    c.TRADE_RETCODE_INVALID_FILL: "Unsupported filling mode",
    c.TRADE_RETCODE_CONNECTION: "No connection with the trade server",
    c.TRADE_RETCODE_ONLY_REAL: "Operation allowed only for live accounts",
    c.TRADE_RETCODE_LIMIT_ORDERS: "Limit orders",
    c.TRADE_RETCODE_LIMIT_VOLUME: "Volume limit reached",
    c.TRADE_RETCODE_INVALID_ORDER: "Invalid order type",
    c.TRADE_RETCODE_POSITION_CLOSED: "Position already closed",
    c.TRADE_RETCODE_INVALID_CLOSE_VOLUME: "Invalid close volume",
    c.TRADE_RETCODE_CLOSE_ORDER_EXIST: "Close order already exists",
    c.TRADE_RETCODE_LIMIT_POSITIONS: "Limit positions",
    c.TRADE_RETCODE_REJECT_CANCEL: "Pending order activation request rejected, order canceled",
    c.TRADE_RETCODE_LONG_ONLY: "Only long positions allowed",
    c.TRADE_RETCODE_SHORT_ONLY: "Only short positions allowed",
    c.TRADE_RETCODE_CLOSE_ONLY: "Only position closing allowed",
    c.TRADE_RETCODE_FIFO_CLOSE: "Position closing allowed only by FIFO rule",
}


def describe_retcode(retcode: int) -> str:
    """The result comment for a retcode; unknown codes get a generic text rather than an exception."""
    return RETCODE_DESCRIPTIONS.get(retcode, f"Unknown retcode {retcode}")
