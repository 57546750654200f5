"""The one MT5 adapter: every call a worker makes to a terminal goes through here.

It takes the module object itself, ``MetaTrader5`` on Windows or ``mt5sim`` anywhere, so the code that the
tests exercise is the code that trades real accounts. It owns the call-form rules of the real package
(keyword filters only, never positional and keyword arguments together), the account check before every
trade request (a person may switch accounts, or IPC may cross-wire terminals), and the idempotent placement
of copies.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from pathlib import Path
from types import ModuleType
from typing import Any

from loguru import logger

from config.faults import crash_point
from protocol.messages import (
    AccountFacts,
    ClosedOrder,
    Command,
    CommandKind,
    CommandResult,
    CommandStatus,
    PendingOrder,
    PositionFacts,
    Quote,
    SymbolSpec,
    TerminalFacts,
)
from protocol.mt5 import (
    AMBIGUOUS_RETCODES,
    ORDER_CHECK_PASSED,
    PENDING_ORDER_TYPES,
    SUCCESS_RETCODES,
    LastError,
    OrderFilling,
    Retcode,
    TradeAction,
)
from protocol.tags import find_tagged, parse_tag
from terminal_worker.errors import LINK_LOST_CODES, TerminalError


class MT5Adapter:
    """One terminal, one account, reached through a MetaTrader5-compatible module."""

    def __init__(
        self,
        module: ModuleType,
        *,
        path: str | Path,
        login: int,
        server: str,
        password: str | None = None,
        timeout_ms: int = 60_000,
        portable: bool = False,
    ) -> None:
        self._mt5 = module
        self._path = str(path)
        self._login = login
        self._server = server
        self._password = password
        self._timeout_ms = timeout_ms
        self._portable = portable
        self.connected = False

    @property
    def login(self) -> int:
        """The configured login (``account_facts`` reads the one the terminal is logged into)."""
        return self._login

    @property
    def server(self) -> str:
        return self._server

    @property
    def terminal_path(self) -> str:
        return self._path

    # ---- connection ----------------------------------------------------------------------------

    def connect(self) -> None:
        """Attach to the terminal.

        Always passes the explicit path: a bare initialize() may bind whichever terminal answers first. A
        terminal on another account is attached all the same: the account can change at any time, so it is
        checked where it matters, before every trade request (``account_problem``), and the worker reports
        the account it reads.
        """
        self.connected = False
        arguments: dict[str, Any] = {"login": self._login, "server": self._server, "timeout": self._timeout_ms}
        if self._password is not None:
            arguments["password"] = self._password
        if self._portable:
            arguments["portable"] = True
        if not self._mt5.initialize(self._path, **arguments):
            raise TerminalError.from_last_error(f"initialize of the terminal at {self._path}", self._mt5.last_error())
        terminal = self._mt5.terminal_info()
        if terminal is None:
            raise TerminalError.from_last_error(f"terminal_info of the terminal at {self._path}",
                                                self._mt5.last_error())
        self.connected = True

    def disconnect(self) -> None:
        self.connected = False
        try:
            self._mt5.shutdown()
        except Exception as e:  # a dead terminal must not stop a clean exit
            logger.debug("shutdown of the terminal link failed: {}", e)

    def account_problem(self) -> str | None:
        """Why the terminal must not trade for us now: logged into another account than configured (a person
        switched, or the IPC cross-wiring failure of shared/mt5-api.md §8); None when it is the right one."""
        account = self._required("account_info")
        return self.describe_wrong_account(int(account.login), str(account.server))

    def describe_wrong_account(self, login: int, server: str) -> str | None:
        if login == self._login and server == self._server:
            return None
        return (f"terminal at {self._path} is logged into account {login}@{server}, configured "
                f"{self._login}@{self._server}")

    def _call(self, name: str, *args: Any, **kwargs: Any) -> Any:
        """Call the module. ``None`` with a link-lost code means the terminal is gone: raise so the worker
        reconnects. Never mixes positional and keyword arguments (the real package refuses that)."""
        if args and kwargs:
            raise TypeError("the MetaTrader5 package refuses positional and keyword arguments together")
        function = getattr(self._mt5, name)
        result = function(**kwargs) if kwargs else function(*args)
        if result is None:
            code, message = self._mt5.last_error()
            if code in LINK_LOST_CODES:
                self.connected = False
                raise TerminalError.from_last_error(name, (code, message))
        return result

    def _required(self, name: str) -> Any:
        """A call whose ``None`` is an error, not an empty answer."""
        result = self._call(name)
        if result is None:
            raise TerminalError.from_last_error(name, self._mt5.last_error())
        return result

    # ---- facts ---------------------------------------------------------------------------------

    def account_facts(self) -> AccountFacts:
        account = self._required("account_info")
        return AccountFacts(
            login=int(account.login),
            server=str(account.server),
            name=str(account.name),
            company=str(account.company),
            currency=str(account.currency),
            leverage=int(account.leverage),
            balance=float(account.balance),
            equity=float(account.equity),
            margin_free=float(account.margin_free),
            limit_orders=int(account.limit_orders),
            margin_mode=int(account.margin_mode),
            trade_allowed=bool(account.trade_allowed),
            trade_expert=bool(account.trade_expert),
        )

    def terminal_facts(self) -> TerminalFacts:
        terminal = self._required("terminal_info")
        return TerminalFacts(
            connected=bool(terminal.connected),
            trade_allowed=bool(terminal.trade_allowed),
            tradeapi_disabled=bool(terminal.tradeapi_disabled),
            build=int(terminal.build),
            name=str(terminal.name),
            company=str(terminal.company),
            path=str(terminal.path),
            data_path=str(terminal.data_path),
        )

    def pending_orders(self) -> tuple[PendingOrder, ...]:
        """Every pending order on the account. orders_get() also lists market orders not yet executed:
        those are filtered out (shared/mt5-api.md §3)."""
        orders = self._required("orders_get")
        return tuple(
            PendingOrder(
                ticket=int(order.ticket),
                symbol=str(order.symbol),
                type=int(order.type),
                volume=float(order.volume_current),
                volume_initial=float(order.volume_initial),
                price_open=float(order.price_open),
                price_stoplimit=float(order.price_stoplimit),
                sl=float(order.sl),
                tp=float(order.tp),
                type_time=int(order.type_time),
                type_filling=int(order.type_filling),
                time_expiration=int(order.time_expiration),
                time_setup_msc=int(order.time_setup_msc),
                magic=int(order.magic),
                comment=str(order.comment),
                state=int(order.state),
            )
            for order in orders
            if order.type in PENDING_ORDER_TYPES
        )

    def positions(self) -> tuple[PositionFacts, ...]:
        positions = self._required("positions_get")
        return tuple(
            PositionFacts(
                ticket=int(position.ticket),
                identifier=int(position.identifier),
                symbol=str(position.symbol),
                type=int(position.type),
                volume=float(position.volume),
                magic=int(position.magic),
                comment=str(position.comment),
            )
            for position in positions
        )

    def closed_order(self, ticket: int) -> ClosedOrder | None:
        """The history record of an order that left the pending list, or None when history has none yet."""
        # history_orders_get(ticket=unknown) answers None, not () (shared/mt5-api.md §3): not an error here.
        records = self._call("history_orders_get", ticket=ticket)
        if not records:
            return None
        record = records[-1]
        return ClosedOrder(
            ticket=int(record.ticket),
            symbol=str(record.symbol),
            type=int(record.type),
            state=int(record.state),
            magic=int(record.magic),
            comment=str(record.comment),
            time_done_msc=int(record.time_done_msc),
            position_id=int(record.position_id),
        )

    def quotes(self, symbols: Iterable[str]) -> tuple[Quote, ...]:
        """Current bid/ask of each symbol; a symbol without a tick is left out."""
        found = []
        for symbol in symbols:
            tick = self._call("symbol_info_tick", symbol)
            if tick is not None:
                found.append(Quote(symbol=symbol, bid=float(tick.bid), ask=float(tick.ask), time=int(tick.time)))
        return tuple(found)

    def symbol_specs(self, names: Iterable[str]) -> tuple[tuple[SymbolSpec, ...], tuple[str, ...]]:
        """Select each symbol in Market Watch (symbol_info needs it) and describe it; list the missing ones."""
        specs: list[SymbolSpec] = []
        missing: list[str] = []
        for name in names:
            # Always pass True explicitly: an omitted flag is read as "remove" (shared/mt5-api.md §3).
            if not self._call("symbol_select", name, True):
                missing.append(name)
                continue
            info = self._call("symbol_info", name)
            if info is None:
                missing.append(name)
                continue
            specs.append(
                SymbolSpec(
                    name=str(info.name),
                    digits=int(info.digits),
                    point=float(info.point),
                    tick_size=float(info.trade_tick_size),
                    contract_size=float(info.trade_contract_size),
                    volume_min=float(info.volume_min),
                    volume_max=float(info.volume_max),
                    volume_step=float(info.volume_step),
                    volume_limit=float(info.volume_limit),
                    trade_mode=int(info.trade_mode),
                    stops_level=int(info.trade_stops_level),
                    freeze_level=int(info.trade_freeze_level),
                    expiration_mode=int(info.expiration_mode),
                    filling_mode=int(info.filling_mode),
                    order_mode=int(info.order_mode),
                    order_gtc_mode=int(info.order_gtc_mode),
                    trade_exemode=int(info.trade_exemode),
                    bid=float(info.bid),
                    ask=float(info.ask),
                    currency_base=str(info.currency_base),
                    currency_profit=str(info.currency_profit),
                    currency_margin=str(info.currency_margin),
                )
            )
        return tuple(specs), tuple(missing)

    # ---- trading -------------------------------------------------------------------------------

    def find_copy(self, source_ticket: int, exclude: int = 0) -> int | None:
        """The ticket of an existing copy of ``source_ticket`` (other than ``exclude``): a pending order, or a
        position it became. A failed read raises: "could not look" must never pass for "no copy"."""
        return find_tagged(source_ticket, self._required("orders_get"), self._required("positions_get"), exclude)

    def execute(self, command: Command) -> CommandResult:
        """Execute one command and say exactly what happened. Never raises for a broker rejection."""
        started = time.perf_counter()
        if command.kind is CommandKind.PLACE:
            result = self._place(command)
        elif command.kind is CommandKind.MODIFY:
            result = self._modify(command)
        elif command.kind is CommandKind.REMOVE:
            result = self._remove(command)
        else:
            result = self._replace(command)
        elapsed_ms = (time.perf_counter() - started) * 1000.0
        return CommandResult(**{**_fields(result), "elapsed_ms": round(elapsed_ms, 3)})

    def _place(self, command: Command, replacing: int = 0) -> CommandResult:
        if command.magic != command.source_ticket or parse_tag(command.comment) != command.source_ticket:
            return _refused(command, "a copy must carry magic = source ticket and the copier's comment tag")
        # Idempotency, first line: a copy with this tag already exists (placed by an earlier attempt whose
        # answer was lost, or before a restart), so the intent is already fulfilled. Nothing is sent.
        try:
            existing = self.find_copy(command.source_ticket, exclude=replacing)
        except TerminalError as e:
            if e.code in LINK_LOST_CODES:
                raise
            return CommandResult(command_id=command.command_id, status=CommandStatus.REJECTED, error_code=e.code,
                                 error_message=str(e), comment="could not check for an existing copy; not sent")
        if existing is not None:
            return CommandResult(
                command_id=command.command_id, status=CommandStatus.DONE, ticket=existing, already_existed=True,
                comment="a copy with this tag already exists",
            )
        wrong_account = self._refuse_on_wrong_account(command)
        if wrong_account is not None:
            return wrong_account
        request = self._pending_request(command)
        rejection = self._precheck(command, request)
        if rejection is not None:
            return rejection
        return self._send(command, request, find_after_doubt=True)

    def _pending_request(self, command: Command) -> dict[str, Any]:
        # Plain ints for the package: it reads them with PyLong_AsLongLong (shared/mt5-api.md §1), and what it
        # does with an int subclass is not documented.
        return {
            "action": int(TradeAction.PENDING),
            "symbol": command.symbol,
            "volume": float(command.volume),
            "type": int(command.order_type),
            "price": float(command.price),
            "stoplimit": float(command.stoplimit),
            "sl": float(command.sl),
            "tp": float(command.tp),
            "type_time": int(command.type_time),
            "expiration": int(command.expiration),
            "type_filling": int(OrderFilling.RETURN),  # always RETURN for pending orders (shared/mt5-api.md §7)
            "magic": int(command.magic),
            "comment": command.comment,
        }

    def _precheck(self, command: Command, request: dict[str, Any]) -> CommandResult | None:
        """The terminal's own pre-check (margin, stops and freeze levels, expiration, volume) answers locally:
        a request it would refuse is reported with that retcode and never sent."""
        check = self._call("order_check", request)
        if check is not None and int(check.retcode) not in (ORDER_CHECK_PASSED, *SUCCESS_RETCODES):
            return CommandResult(
                command_id=command.command_id, status=CommandStatus.REJECTED, retcode=int(check.retcode),
                comment=f"order_check: {check.comment}",
            )
        return None

    def _replace(self, command: Command) -> CommandResult:
        """Remove the old copy, then place the new one. The new order is checked first, so a copy is never
        removed for a replacement the broker would refuse; if the placement still fails, the old copy is gone
        and the coordinator places the new one on a later cycle."""
        rejection = self._precheck(command, self._pending_request(command))
        if rejection is not None:
            return rejection
        removal = self._remove(command)
        if removal.status is not CommandStatus.DONE:
            return removal
        placed = self._place(command, replacing=command.ticket)
        if placed.status is CommandStatus.DONE:
            return placed
        return CommandResult(**{**_fields(placed), "comment": f"old copy removed; new copy not placed: "
                                                              f"{placed.comment or placed.error_message}"})

    def _modify(self, command: Command) -> CommandResult:
        wrong_account = self._refuse_on_wrong_account(command)
        if wrong_account is not None:
            return wrong_account
        # MODIFY carries the full desired state: an omitted or zero SL/TP deletes it (shared/mt5-api.md §6.2).
        request = {
            "action": int(TradeAction.MODIFY),
            "order": int(command.ticket),
            "price": float(command.price),
            "stoplimit": float(command.stoplimit),
            "sl": float(command.sl),
            "tp": float(command.tp),
            "type_time": int(command.type_time),
            "expiration": int(command.expiration),
        }
        result = self._send(command, request, find_after_doubt=False)
        if result.status is CommandStatus.REJECTED and result.retcode == Retcode.NO_CHANGES:
            # The order already holds the desired values: the intent is fulfilled.
            return CommandResult(**{**_fields(result), "status": CommandStatus.DONE})
        return result

    def _remove(self, command: Command) -> CommandResult:
        wrong_account = self._refuse_on_wrong_account(command)
        if wrong_account is not None:
            return wrong_account
        result = self._send(command, {"action": int(TradeAction.REMOVE), "order": int(command.ticket)},
                            find_after_doubt=False)
        if result.status is CommandStatus.REJECTED and result.retcode == Retcode.INVALID:
            still_there = any(int(order.ticket) == command.ticket for order in self._required("orders_get"))
            if not still_there:
                # Removing an order that is no longer pending: the desired state (absent) already holds.
                return CommandResult(**{**_fields(result), "status": CommandStatus.DONE})
        return result

    def _refuse_on_wrong_account(self, command: Command) -> CommandResult | None:
        """Checked right before every order_send: the account may have changed since the last poll."""
        problem = self.account_problem()
        if problem is None:
            return None
        # REJECTED without a retcode: retried later, and it passes once the right account is back.
        return CommandResult(command_id=command.command_id, status=CommandStatus.REJECTED,
                             comment=f"{problem}; not sent")

    def _send(self, command: Command, request: dict[str, Any], *, find_after_doubt: bool) -> CommandResult:
        crash_point("before-order-send")
        try:
            answer = self._mt5.order_send(request)
            crash_point("after-order-send")
        except Exception as e:  # the real package raises on some IPC faults; the outcome is then unknown
            answer, error = None, (int(LastError.INTERNAL_FAIL), f"order_send raised {type(e).__name__}: {e}")
        else:
            error = self._mt5.last_error() if answer is None else (int(LastError.OK), "Success")
        if answer is None:
            code, message = error
            if code not in LINK_LOST_CODES:
                # Rejected locally by the package (e.g. -2 invalid argument): it never reached the server.
                return CommandResult(
                    command_id=command.command_id, status=CommandStatus.REJECTED, error_code=code,
                    error_message=message, comment=message,
                )
            self.connected = False
            return self._resolve_doubt(command, find_after_doubt, error_code=code, error_message=message)
        retcode = int(answer.retcode)
        if retcode in SUCCESS_RETCODES:
            ticket = int(answer.order) or command.ticket
            return CommandResult(
                command_id=command.command_id, status=CommandStatus.DONE, retcode=retcode,
                comment=str(answer.comment), ticket=ticket,
            )
        if retcode in AMBIGUOUS_RETCODES:
            return self._resolve_doubt(command, find_after_doubt, retcode=retcode, comment=str(answer.comment))
        return CommandResult(
            command_id=command.command_id, status=CommandStatus.REJECTED, retcode=retcode,
            comment=str(answer.comment),
        )

    def _resolve_doubt(self, command: Command, find_after_doubt: bool, **known: Any) -> CommandResult:
        """The request may have reached the server. For a place, look for the tagged copy; otherwise (or when
        the terminal cannot be asked) report UNKNOWN: the coordinator settles it from a later snapshot."""
        if find_after_doubt:
            try:
                existing = self.find_copy(command.source_ticket)
            except TerminalError:
                existing = None
            if existing is not None:
                return CommandResult(
                    command_id=command.command_id, status=CommandStatus.DONE, ticket=existing, **known
                )
        return CommandResult(command_id=command.command_id, status=CommandStatus.UNKNOWN, **known)


def _refused(command: Command, reason: str) -> CommandResult:
    return CommandResult(command_id=command.command_id, status=CommandStatus.REFUSED, comment=reason)


def _fields(result: CommandResult) -> dict[str, Any]:
    return {name: getattr(result, name) for name in CommandResult.__struct_fields__}  # a msgspec Struct now
