"""Classified failures of a terminal connection, so logs and the coordinator can say what to do about them."""

from __future__ import annotations

from enum import Enum

from protocol.mt5 import LastError


class TerminalProblem(str, Enum):
    NOT_FOUND = "terminal not found"  # wrong path, terminal not installed
    AUTHORIZATION_FAILED = "authorization failed"  # wrong login/password/server, or OTP account
    AUTOTRADING_DISABLED = "auto-trading disabled"  # AutoTrading button off or Python API disabled
    IPC_TIMEOUT = "IPC timeout"  # terminal running but not answering (not logged in, busy, Wine)
    NO_CONNECTION = "no IPC connection"  # terminal gone, or run by another Windows user
    # The terminal is logged into another account than configured. Not raised by the adapter any more (a
    # wrong account is reported in snapshots and refuses trades until it is right again); kept so the
    # "terminal-wrong_account" code stays known.
    WRONG_ACCOUNT = "wrong account"
    INCOMPATIBLE = "incompatible terminal"  # terminal and package versions do not match
    OTHER = "terminal error"


# last_error() codes of the MetaTrader5 package (shared/mt5-api.md §2) and what they mean for us.
_BY_CODE: dict[int, TerminalProblem] = {
    LastError.INTERNAL_FAIL_INIT: TerminalProblem.NOT_FOUND,
    LastError.AUTH_FAILED: TerminalProblem.AUTHORIZATION_FAILED,
    LastError.AUTO_TRADING_DISABLED: TerminalProblem.AUTOTRADING_DISABLED,
    LastError.INTERNAL_FAIL_TIMEOUT: TerminalProblem.IPC_TIMEOUT,
    LastError.INTERNAL_FAIL_CONNECT: TerminalProblem.NO_CONNECTION,
    LastError.INTERNAL_FAIL: TerminalProblem.NO_CONNECTION,
    LastError.INTERNAL_FAIL_SEND: TerminalProblem.NO_CONNECTION,
    LastError.INTERNAL_FAIL_RECEIVE: TerminalProblem.NO_CONNECTION,
    LastError.INVALID_VERSION: TerminalProblem.INCOMPATIBLE,
}

# Codes after which the terminal link itself is in doubt (reconnect), as opposed to one bad call.
LINK_LOST_CODES = frozenset({LastError.INTERNAL_FAIL, LastError.INTERNAL_FAIL_SEND, LastError.INTERNAL_FAIL_RECEIVE,
                             LastError.INTERNAL_FAIL_CONNECT, LastError.INTERNAL_FAIL_TIMEOUT})


class TerminalError(Exception):
    """The terminal could not be used. ``fatal`` problems will not fix themselves by retrying."""

    def __init__(self, problem: TerminalProblem, detail: str, code: int = 0, *, fatal: bool = False) -> None:
        super().__init__(f"{problem.value}: {detail}")
        self.problem = problem
        self.detail = detail
        self.code = code
        self.fatal = fatal

    @classmethod
    def from_last_error(cls, action: str, error: tuple[int, str] | None) -> TerminalError:
        code, message = error if error else (0, "no error reported")
        problem = _BY_CODE.get(code, TerminalProblem.OTHER)
        return cls(problem, f"{action} failed with ({code}, {message!r})", code)
