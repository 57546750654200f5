"""The one MT5 adapter: every call a worker makes to a terminal goes through here.

It takes the module object itself, ``MetaTrader5`` on Windows or ``mt5sim`` anywhere, so the code that the
tests exercise is the code that trades real accounts. It owns the call-form rules of the real package
(keyword filters only, never positional and keyword arguments together), the account check before every
trade request (a person may switch accounts, or IPC may cross-wire terminals), the idempotent placement
of copies, and the guarded commands on a copy's position (SL/TP, a close only while the position holds the
volume it was planned on, the opening at market in place of a pending copy), each only on what carries the
copier's tag.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
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
    PositionHistory,
    Quote,
    SymbolSpec,
    TerminalFacts,
)
from protocol.mt5 import (
    AMBIGUOUS_RETCODES,
    ORDER_CHECK_PASSED,
    PENDING_ORDER_TYPES,
    SUCCESS_RETCODES,
    DealEntry,
    LastError,
    OrderFilling,
    OrderState,
    OrderType,
    PositionType,
    Retcode,
    TradeAction,
)
from protocol.tags import find_tagged, is_copy_of, parse_tag
from terminal_worker.copy_index import BatchCopyIndex
from terminal_worker.errors import LINK_LOST_CODES, TerminalError

# The bits of SymbolInfo.filling_mode (MQL5's SYMBOL_FILLING_FOK / _IOC; the package exports neither name,
# shared/mt5-api.md §5). RETURN has no bit.
_FILLING_FOK_BIT = 1
_FILLING_IOC_BIT = 2
# A broker's answer to a request on a position that is no longer open. mt5-api.md is silent: the official
# description of 10036 says exactly that, but third-party code also meets 10013 (and 10035) there, so the
# adapter looks at the positions again whatever the answer was.
_POSITION_GONE_RETCODES = frozenset({Retcode.POSITION_CLOSED, Retcode.INVALID, Retcode.INVALID_ORDER})


def market_filling(filling_mode: int) -> OrderFilling:
    """The filling of a market deal from the symbol's ``filling_mode`` bits: FOK when allowed, else IOC, else
    RETURN (which has no bit: allowed in every execution mode but Market execution)."""
    if filling_mode & _FILLING_FOK_BIT:
        return OrderFilling.FOK
    if filling_mode & _FILLING_IOC_BIT:
        return OrderFilling.IOC
    return OrderFilling.RETURN


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
        self._orders_read: tuple[Any, tuple[PendingOrder, ...]] = (None, ())  # the last orders_get, converted
        self._orders_converted: dict[Any, PendingOrder] = {}  # each order of it (values, hashable) converted
        # The duplicate-copy guard's view of the tagged copies over one batch (terminal_worker/copy_index.py).
        self._batch_copies = BatchCopyIndex(lambda: (self._required("orders_get"), self._required("positions_get")))

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
        # The source is probed every few milliseconds and its orders rarely change: an answer equal to the last
        # one (compared in C, field by field) is the same facts, converted once. A target's answers after each
        # placement differ by one order: the others are converted again only if their values changed.
        if orders is self._orders_read[0] or orders == self._orders_read[0]:
            return self._orders_read[1]
        known = self._orders_converted
        try:
            converted = {order: known.get(order) or _pending_order(order)
                         for order in orders if order.type in PENDING_ORDER_TYPES}
        except TypeError:
            # The real package's TradeOrder is a tuple subclass, hashable by its values as mt5sim's is; should
            # some build's not be, every order is converted as it comes.
            result = tuple(_pending_order(order) for order in orders if order.type in PENDING_ORDER_TYPES)
            self._orders_read, self._orders_converted = (orders, result), {}
            return result
        result = tuple(converted.values())
        self._orders_read, self._orders_converted = (orders, result), converted
        return result

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
                price_open=float(position.price_open),
                sl=float(position.sl),
                tp=float(position.tp),
                price_current=float(position.price_current),
                time_msc=int(position.time_msc),
            )
            for position in positions
        )

    def position_history(self, position_id: int) -> PositionHistory | None:
        """What the deals history says of position ``position_id`` (the ticket of the order that opened it), or
        None when it holds no deal of it (not yet: history can lag; or no such position).

        ``history_deals_get(position=id)`` lists the deals whose DEAL_POSITION_ID is ``id`` (shared/mt5-api.md
        §3), the opening one included. A netting reversal is one DEAL_ENTRY_INOUT deal: the part that closed
        the position (its open volume at that moment) counts out, the rest opened the reversed one and counts
        in (the position keeps its identifier through a reversal)."""
        # Like history_orders_get(ticket=unknown), an unknown position may answer None instead of (): both
        # mean "no deal" unless the link itself is lost (_call raises then).
        deals = self._call("history_deals_get", position=position_id)
        if not deals:
            return None
        volume_in = volume_out = 0.0
        last_out: Any = None
        for deal in sorted(deals, key=lambda deal: (int(deal.time_msc), int(deal.ticket))):
            entry, volume = int(deal.entry), float(deal.volume)
            if entry == DealEntry.IN:
                volume_in += volume
            elif entry in (DealEntry.OUT, DealEntry.OUT_BY):
                volume_out += volume
                last_out = deal
            elif entry == DealEntry.INOUT:
                closing = max(0.0, min(volume, volume_in - volume_out))
                volume_out += closing
                volume_in += volume - closing
                last_out = deal
        half_step = self._half_step(str(deals[0].symbol))
        volume_in, volume_out = round(volume_in, 8), round(volume_out, 8)
        return PositionHistory(
            position_id=position_id,
            closed=volume_in > 0 and volume_out >= volume_in - half_step,
            volume_in=volume_in,
            volume_out=volume_out,
            close_price=float(last_out.price) if last_out is not None else 0.0,
            close_reason=int(last_out.reason) if last_out is not None else 0,
            close_time_msc=int(last_out.time_msc) if last_out is not None else 0,
        )

    def _half_step(self, symbol: str) -> float:
        """Half the symbol's volume step: volumes closer than that are the same volume. Float noise only when
        the symbol cannot be read."""
        info = self._call("symbol_info", symbol)
        step = float(info.volume_step) if info is not None else 0.0
        return max(step / 2.0, 1e-9)

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

    def begin_batch(self) -> None:
        """Commands of one batch follow: the guard before each placement may use one read of the terminal kept up
        to date with this worker's own placements (terminal_worker/copy_index.py says why that is exact)."""
        self._batch_copies.begin()

    def end_batch(self) -> None:
        self._batch_copies.end()

    def _existing_copy(self, source_ticket: int, exclude: int = 0) -> int | None:
        if self._batch_copies.active:
            return self._batch_copies.find(source_ticket, exclude)
        return self.find_copy(source_ticket, exclude)

    def _record_effect(self, command: Command, result: CommandResult) -> None:
        """Keep the batch's copy index true to what ``command`` did."""
        if command.kind is CommandKind.PLACE and result.status is CommandStatus.DONE and result.ticket:
            self._batch_copies.placed(command.source_ticket, result.ticket)
        elif command.kind is CommandKind.PLACE and result.status in (CommandStatus.REJECTED, CommandStatus.REFUSED,
                                                                     CommandStatus.EXPIRED, CommandStatus.STALE):
            pass  # nothing was placed
        elif command.kind not in (CommandKind.MODIFY, CommandKind.SLTP) or result.status is CommandStatus.UNKNOWN:
            self._batch_copies.forget()  # a removal, a close, an opening, or an answer in doubt: read again

    def execute(self, command: Command) -> CommandResult:
        """Execute one command and say exactly what happened. Never raises for a broker rejection."""
        started = time.perf_counter()
        handlers: dict[CommandKind, Callable[[Command], CommandResult]] = {
            CommandKind.PLACE: self._place,
            CommandKind.MODIFY: self._modify,
            CommandKind.REMOVE: self._remove,
            CommandKind.REPLACE: self._replace,
            CommandKind.SLTP: self._sltp,
            CommandKind.CLOSE: self._close,
            CommandKind.MARKET: self._market,
        }
        try:
            result = handlers[command.kind](command)
        except BaseException:
            self._batch_copies.forget()
            raise
        self._record_effect(command, result)
        elapsed_ms = (time.perf_counter() - started) * 1000.0
        return CommandResult(**{**_fields(result), "elapsed_ms": round(elapsed_ms, 3)})

    def _place(self, command: Command, replacing: int = 0) -> CommandResult:
        if command.magic != command.source_ticket or parse_tag(command.comment) != command.source_ticket:
            return _refused(command, "a copy must carry magic = source ticket and the copier's comment tag")
        # Idempotency, first line: a copy with this tag already exists (placed by an earlier attempt whose
        # answer was lost, or before a restart), so the intent is already fulfilled. Nothing is sent.
        try:
            existing = self._existing_copy(command.source_ticket, exclude=replacing)
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

    def _send(self, command: Command, request: dict[str, Any], *, find_after_doubt: bool,
              resolve: Callable[[dict[str, Any]], CommandResult] | None = None) -> CommandResult:
        """Send one request and classify the answer. An unknown outcome is settled by ``resolve`` (given what
        is known of the answer) when given, else by ``_resolve_doubt``."""
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
            known: dict[str, Any] = {"error_code": code, "error_message": message}
            return resolve(known) if resolve else self._resolve_doubt(command, find_after_doubt, **known)
        retcode = int(answer.retcode)
        if retcode in SUCCESS_RETCODES:
            ticket = int(answer.order) or int(answer.deal) or command.ticket
            if request["action"] == TradeAction.DEAL:
                price, volume = self._deal_outcome(answer)
                return CommandResult(
                    command_id=command.command_id, status=CommandStatus.DONE, retcode=retcode,
                    comment=str(answer.comment), ticket=ticket, price=price, volume=volume,
                )
            return CommandResult(
                command_id=command.command_id, status=CommandStatus.DONE, retcode=retcode,
                comment=str(answer.comment), ticket=ticket,
            )
        if retcode in AMBIGUOUS_RETCODES:
            known = {"retcode": retcode, "comment": str(answer.comment)}
            return resolve(known) if resolve else self._resolve_doubt(command, find_after_doubt, **known)
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

    # ---- positions (protocol 1.2) --------------------------------------------------------------------

    def _deal_outcome(self, answer: Any) -> tuple[float, float]:
        """(price, volume) of an executed market order: from the answer, or from its deals in history when the
        answer leaves them 0 (a broker may confirm an order without echoing them). ``history_deals_get(ticket=)``
        selects the deals of an order (DEAL_ORDER), not a deal ticket; several deals average by volume."""
        price, volume = float(answer.price), float(answer.volume)
        if (price <= 0 or volume <= 0) and int(answer.order):
            deals = self._call("history_deals_get", ticket=int(answer.order)) or ()
            total = sum(float(deal.volume) for deal in deals)
            if total > 0:
                price = price if price > 0 else sum(float(deal.price) * float(deal.volume) for deal in deals) / total
                volume = volume if volume > 0 else round(total, 8)
        return price, volume

    def _open_position(self, ticket: int) -> Any | None:
        """The open position ``ticket`` names (its ticket, or its identifier: a netting reversal gives the
        position a new ticket and keeps the identifier), as the terminal reports it; None when not open. Reads
        every position: ``positions_get(ticket=unknown)`` may answer None or () (shared/mt5-api.md §3)."""
        for position in self._required("positions_get"):
            if int(position.ticket) == ticket or int(position.identifier) == ticket:
                return position
        return None

    def _market_facts(self, symbol: str) -> tuple[Any, Any] | None:
        """(SymbolInfo, Tick) of a symbol with a two-sided quote, selecting it in Market Watch if needed."""
        info = self._call("symbol_info", symbol)
        if info is None and self._call("symbol_select", symbol, True):
            info = self._call("symbol_info", symbol)
        tick = self._call("symbol_info_tick", symbol) if info is not None else None
        if info is None or tick is None or float(tick.bid) <= 0 or float(tick.ask) <= 0:
            return None
        return info, tick

    def _position_of(self, command: Command, what: str) -> tuple[Any | None, CommandResult | None]:
        """The open position a SLTP or CLOSE acts on, after the account check: (position, None) when it is the
        copier's copy of ``command.source_ticket``; (None, None) when no such position is open; (None, answer)
        when the command must not go (wrong account, a position that is not our copy, a failed read)."""
        wrong_account = self._refuse_on_wrong_account(command)
        if wrong_account is not None:
            return None, wrong_account
        try:
            position = self._open_position(command.ticket)
        except TerminalError as e:
            if e.code in LINK_LOST_CODES:
                raise
            return None, CommandResult(command_id=command.command_id, status=CommandStatus.REJECTED,
                                       error_code=e.code, error_message=str(e),
                                       comment=f"could not read the positions; {what} not sent")
        if position is None:
            return None, None
        if not is_copy_of(int(position.magic), str(position.comment), command.source_ticket):
            return None, _refused(command, f"position #{int(position.ticket)} is not the copier's copy of source "
                                           f"#{command.source_ticket} (magic {int(position.magic)}, comment "
                                           f"{str(position.comment)!r}): never touched; {what} not sent")
        if command.symbol and str(position.symbol) != command.symbol:
            return None, _refused(command, f"position #{int(position.ticket)} is on {position.symbol}, the command "
                                           f"names {command.symbol}; {what} not sent")
        return position, None

    def _sltp(self, command: Command) -> CommandResult:
        """Set both SL and TP of the copy's position (TRADE_ACTION_SLTP: a level left at 0 is removed)."""
        position, answer = self._position_of(command, "SL/TP")
        if answer is not None:
            return answer
        if position is None:
            return CommandResult(command_id=command.command_id, status=CommandStatus.STALE,
                                 comment=f"position #{command.ticket} is not open (closed, or never opened); "
                                         "SL/TP not sent")
        ticket = int(position.ticket)
        request = {
            "action": int(TradeAction.SLTP),
            "position": ticket,
            "symbol": str(position.symbol),
            "sl": float(command.sl),
            "tp": float(command.tp),
            "magic": int(position.magic),
        }
        rejection = self._precheck(command, request)
        if rejection is not None and rejection.retcode == Retcode.NO_CHANGES:
            # The position already holds these levels: the intent is fulfilled, nothing to send.
            return CommandResult(**{**_fields(rejection), "status": CommandStatus.DONE, "ticket": ticket,
                                    "comment": f"{rejection.comment}; nothing to change, not sent"})
        if rejection is not None:
            return rejection
        result = self._send(command, request, find_after_doubt=False,
                            resolve=lambda known: self._resolve_sltp(command, known))
        if result.status is CommandStatus.DONE:
            return CommandResult(**{**_fields(result), "ticket": ticket})
        if result.status is CommandStatus.REJECTED and result.retcode == Retcode.NO_CHANGES:
            return CommandResult(**{**_fields(result), "status": CommandStatus.DONE, "ticket": ticket})
        if self._gone_after(result, command.ticket):
            return CommandResult(**{**_fields(result), "status": CommandStatus.STALE,
                                    "comment": f"{result.comment}: position #{ticket} is no longer open"})
        return result

    def _resolve_sltp(self, command: Command, known: dict[str, Any]) -> CommandResult:
        """An SLTP whose answer was lost: done if the position now holds the levels asked for; otherwise
        UNKNOWN (an SLTP is idempotent: the coordinator may send it again once the snapshots tell)."""
        try:
            position = self._open_position(command.ticket)
            info = self._call("symbol_info", str(position.symbol)) if position is not None else None
        except TerminalError:
            position = info = None
        if position is not None:
            tolerance = float(info.point) / 2 if info is not None else 1e-9
            if abs(float(position.sl) - command.sl) <= tolerance and abs(float(position.tp) - command.tp) <= tolerance:
                return CommandResult(command_id=command.command_id, status=CommandStatus.DONE,
                                     ticket=int(position.ticket), **known)
        return CommandResult(command_id=command.command_id, status=CommandStatus.UNKNOWN, **known)

    def _close(self, command: Command) -> CommandResult:
        """Close ``volume`` of the copy's position at market, only while it holds ``expected_volume``."""
        if command.volume <= 0:
            return _refused(command, f"a close of {command.volume} lots: nothing to close")
        position, answer = self._position_of(command, "close")
        if answer is not None:
            return answer
        if position is None:
            return CommandResult(command_id=command.command_id, status=CommandStatus.DONE, already_existed=True,
                                 comment=f"position #{command.ticket} is not open: already closed; nothing sent")
        symbol = str(position.symbol)
        facts = self._market_facts(symbol)
        if facts is None:
            return CommandResult(command_id=command.command_id, status=CommandStatus.REJECTED,
                                 comment=f"no quote for {symbol} (or it cannot be read); close not sent")
        info, tick = facts
        half_step = max(float(info.volume_step) / 2.0, 1e-9)
        held = float(position.volume)
        if abs(held - command.expected_volume) > half_step:
            return CommandResult(command_id=command.command_id, status=CommandStatus.STALE, ticket=int(position.ticket),
                                 comment=f"position #{int(position.ticket)} holds {held:g} lots, the close was planned "
                                         f"on {command.expected_volume:g}; not sent")
        buy = int(position.type) == PositionType.BUY
        asked = float(tick.bid if buy else tick.ask)  # a buy is closed at the bid, a sell at the ask
        request = {
            "action": int(TradeAction.DEAL),
            "symbol": symbol,
            "volume": float(command.volume),
            "type": int(OrderType.SELL if buy else OrderType.BUY),  # the opposite deal closes it
            "position": int(position.ticket),
            "price": asked,
            "deviation": int(command.deviation),
            "type_filling": int(market_filling(int(info.filling_mode))),
            "magic": int(position.magic),  # the tag, as the position carries it
            "comment": str(position.comment),
        }
        rejection = self._precheck(command, request)
        if rejection is not None:
            return rejection
        result = self._send(command, request, find_after_doubt=False,
                            resolve=lambda known: self._resolve_close(command, held, half_step, known))
        if self._gone_after(result, command.ticket):
            # Closed between the look and the request (its SL, a person, the broker): nothing left to close.
            return CommandResult(**{**_fields(result), "status": CommandStatus.DONE, "already_existed": True,
                                    "comment": f"{result.comment}: position #{command.ticket} is already closed"})
        if result.status is CommandStatus.DONE and result.price:
            # The slippage a trader cares about is from the price asked to the price got, both of this moment.
            return CommandResult(**{**_fields(result), "requested_price": asked})
        return result

    def _gone_after(self, result: CommandResult, ticket: int) -> bool:
        """Whether the broker refused a request on position ``ticket`` because it is no longer open: whatever
        retcode it chose for that (10036, 10013, 10035), the positions decide."""
        if result.status is not CommandStatus.REJECTED or result.retcode not in _POSITION_GONE_RETCODES:
            return False
        try:
            return self._open_position(ticket) is None
        except TerminalError:  # the rejection stands (a lost link is noticed: _call marked it disconnected)
            return False

    def _resolve_close(self, command: Command, held: float, half_step: float,
                       known: dict[str, Any]) -> CommandResult:
        """A close whose answer was lost: look at the position again. Gone, or reduced by the volume: done.
        Still holding what it held: the close did not happen, REJECTED (with what is known of the answer) and
        not resent here; sending it again is safe, because a retry carries the volume it is planned on and a
        close that did happen after all turns that retry STALE. Anything else: UNKNOWN."""
        try:
            position = self._open_position(command.ticket)
        except TerminalError:
            return CommandResult(command_id=command.command_id, status=CommandStatus.UNKNOWN, **known)
        what = known.get("comment") or known.get("error_message") or "no answer"
        if position is None:
            return CommandResult(command_id=command.command_id, status=CommandStatus.DONE, ticket=command.ticket,
                                 **{**known, "comment": f"answer lost ({what}); the position is closed now"})
        remaining = float(position.volume)
        if abs(remaining - (held - command.volume)) <= half_step:
            return CommandResult(command_id=command.command_id, status=CommandStatus.DONE, ticket=command.ticket,
                                 volume=command.volume,
                                 **{**known, "comment": f"answer lost ({what}); the position holds {remaining:g} "
                                                        "lots now: closed"})
        if abs(remaining - held) <= half_step:
            return CommandResult(command_id=command.command_id, status=CommandStatus.REJECTED,
                                 **{**known, "comment": f"answer lost ({what}); the position still holds "
                                                        f"{remaining:g} lots: the close did not happen"})
        return CommandResult(command_id=command.command_id, status=CommandStatus.UNKNOWN, **known)

    def _market(self, command: Command) -> CommandResult:
        """The source order filled while its copy ``ticket`` is pending: remove the pending copy and open the
        copy at market if the entry price is within ``deviation`` points of the source's fill price ``price``;
        else only remove it. ``ticket`` 0: no pending copy to remove, only the opening (same guards)."""
        source = command.source_ticket
        if command.magic != source or parse_tag(command.comment) != source:
            return _refused(command, "a copy must carry magic = source ticket and the copier's comment tag")
        if command.order_type not in (OrderType.BUY, OrderType.SELL):
            return _refused(command, f"a copy is opened at market as a buy (0) or a sell (1), not type "
                                     f"{command.order_type}")
        if command.volume <= 0 or command.price <= 0:
            return _refused(command, "a market copy needs a volume and the source's fill price")
        wrong_account = self._refuse_on_wrong_account(command)
        if wrong_account is not None:
            return wrong_account
        try:
            orders = self._required("orders_get")
            positions = self._required("positions_get")
        except TerminalError as e:
            if e.code in LINK_LOST_CODES:
                raise
            return CommandResult(command_id=command.command_id, status=CommandStatus.REJECTED, error_code=e.code,
                                 error_message=str(e), comment="could not check for an existing copy; not sent")
        pending = next((order for order in orders if command.ticket and int(order.ticket) == command.ticket), None)
        if pending is not None and not is_copy_of(int(pending.magic), str(pending.comment), source):
            return _refused(command, f"order #{command.ticket} is not the copier's copy of source #{source} "
                                     f"(magic {int(pending.magic)}, comment {str(pending.comment)!r}): never touched")
        if pending is not None and str(pending.symbol) != command.symbol:
            return _refused(command, f"pending copy #{command.ticket} is on {pending.symbol}, the command names "
                                     f"{command.symbol}; not sent")
        opened = find_tagged(source, (), positions)
        if opened is not None:
            # The pending copy filled by itself: it is the copy's position now, nothing more is opened. What is
            # still pending of it (a partial fill) is removed, as the command asks.
            comment = "the pending copy already filled: its position is the copy"
            if pending is not None:
                removal = self._remove(command)
                comment += (f"; the rest of pending copy #{command.ticket} removed" if removal.status is
                            CommandStatus.DONE else f"; removing the rest of pending copy #{command.ticket} "
                                                    f"failed: {removal.comment or removal.error_message}")
            return CommandResult(command_id=command.command_id, status=CommandStatus.DONE, ticket=opened,
                                 already_existed=True, comment=comment)
        other = find_tagged(source, orders, (), exclude=command.ticket)
        if other is not None:
            return CommandResult(command_id=command.command_id, status=CommandStatus.STALE,
                                 comment=f"order #{other} is another pending copy of source #{source}; not sent")
        if command.ticket and pending is None:
            return self._market_without_pending(command)
        facts = self._market_facts(command.symbol)
        if facts is None:
            return CommandResult(command_id=command.command_id, status=CommandStatus.REJECTED,
                                 comment=f"no quote for {command.symbol} (or it cannot be read); not sent")
        info, tick = facts
        buy = command.order_type == OrderType.BUY
        entry = float(tick.ask if buy else tick.bid)
        distance = round(abs(entry - command.price) / (float(info.point) or 1.0), 6)
        if distance > command.deviation:
            why = (f"the market ({entry:g}) is {distance:g} points from the source's fill price "
                   f"{command.price:g}, more than the {command.deviation} allowed")
            if pending is None:
                return CommandResult(command_id=command.command_id, status=CommandStatus.DONE,
                                     comment=f"{why}: not opened")
            removal = self._remove(command)
            if removal.status is not CommandStatus.DONE:
                return CommandResult(**{**_fields(removal), "comment": f"{why}; removing pending copy "
                                                                       f"#{command.ticket} failed: "
                                                                       f"{removal.comment or removal.error_message}"})
            return CommandResult(**{**_fields(removal), "ticket": 0,
                                    "comment": f"{why}: pending copy #{command.ticket} removed, not opened"})
        request = {
            "action": int(TradeAction.DEAL),
            "symbol": command.symbol,
            "volume": float(command.volume),
            "type": int(command.order_type),
            "price": entry,
            "sl": float(command.sl),
            "tp": float(command.tp),
            "deviation": int(command.deviation),
            "type_filling": int(market_filling(int(info.filling_mode))),
            "magic": int(command.magic),
            "comment": command.comment,  # the tag: the new position is recognised as the copy
        }
        # Checked before the pending copy is removed: a copy is never removed for an opening the broker refuses.
        rejection = self._precheck(command, request)
        if rejection is not None:
            return rejection
        if pending is not None:
            removal = self._remove(command)
            if removal.status is not CommandStatus.DONE:
                return CommandResult(**{**_fields(removal), "comment": f"pending copy #{command.ticket} not removed "
                                                                       f"({removal.comment or removal.error_message});"
                                                                       " not opened"})
        # Never a second copy: look right before the deal (the pending copy may have filled while it was being
        # removed, and its removal then found nothing to remove).
        try:
            existing = self.find_copy(source)
        except TerminalError as e:
            if e.code in LINK_LOST_CODES:
                raise
            return CommandResult(command_id=command.command_id, status=CommandStatus.REJECTED, error_code=e.code,
                                 error_message=str(e), comment="could not check for an existing copy; not opened")
        if existing is not None:
            if any(int(position.identifier) == existing for position in self._required("positions_get")):
                return CommandResult(command_id=command.command_id, status=CommandStatus.DONE, ticket=existing,
                                     already_existed=True, comment="the pending copy filled: its position is the copy")
            return CommandResult(command_id=command.command_id, status=CommandStatus.STALE,
                                 comment=f"order #{existing} is a pending copy of source #{source}; not opened")
        return self._send(command, request, find_after_doubt=True)

    def _market_without_pending(self, command: Command) -> CommandResult:
        """MARKET whose pending copy is no longer pending and no copy is open: filled and already closed (its
        history says FILLED), or gone without filling (removed, expired, lost)."""
        record = self.closed_order(command.ticket)
        if record is not None and record.state == OrderState.FILLED:
            return CommandResult(command_id=command.command_id, status=CommandStatus.DONE,
                                 ticket=record.position_id or command.ticket, already_existed=True,
                                 comment=f"pending copy #{command.ticket} filled by itself and its position is "
                                         "closed already")
        fate = f"state {record.state}" if record is not None else "no history record"
        return CommandResult(command_id=command.command_id, status=CommandStatus.STALE,
                             comment=f"pending copy #{command.ticket} is gone without filling ({fate}); not opened")


def _pending_order(order: Any) -> PendingOrder:
    return PendingOrder(
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


def _refused(command: Command, reason: str) -> CommandResult:
    return CommandResult(command_id=command.command_id, status=CommandStatus.REFUSED, comment=reason)


def _fields(result: CommandResult) -> dict[str, Any]:
    return {name: getattr(result, name) for name in CommandResult.__struct_fields__}  # a msgspec Struct now
