"""The trade server's rules: request validation to a retcode, order placement, triggers and expiry.

A Broker works inside one database transaction of one terminal. Checks run in the fixed order of
mt5-api.md §9 and the first failing one decides the retcode. Server-side events (expiry, pending-order
triggers, stop-limit activation, position stop-loss/take-profit) are applied here too.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from . import constants as c
from . import flags, money
from .store import Status, SymbolRow, Transaction
from .types import TradeRequest

PENDING_TYPES = frozenset(
    {
        c.ORDER_TYPE_BUY_LIMIT,
        c.ORDER_TYPE_SELL_LIMIT,
        c.ORDER_TYPE_BUY_STOP,
        c.ORDER_TYPE_SELL_STOP,
        c.ORDER_TYPE_BUY_STOP_LIMIT,
        c.ORDER_TYPE_SELL_STOP_LIMIT,
    }
)
STOP_LIMIT_TYPES = frozenset({c.ORDER_TYPE_BUY_STOP_LIMIT, c.ORDER_TYPE_SELL_STOP_LIMIT})
# Types whose price sits below the market (the others sit above it).
_BELOW_MARKET = frozenset({c.ORDER_TYPE_BUY_LIMIT, c.ORDER_TYPE_SELL_STOP, c.ORDER_TYPE_SELL_STOP_LIMIT})
_NETTING_MODES = frozenset({c.ACCOUNT_MARGIN_MODE_RETAIL_NETTING, c.ACCOUNT_MARGIN_MODE_EXCHANGE})

SECONDS_PER_DAY = 86_400
VOLUME_TOLERANCE = 1e-7  # ART2555: |round(v/step)*step - v| < 1e-7
TICK_TOLERANCE = 1e-7  # a price within 1e-7 of a tick is on the tick (float noise only)
_DONE = c.TRADE_RETCODE_DONE


def is_buy(order_type: int) -> bool:
    """Buy types are even (BUY, BUY_LIMIT, BUY_STOP, BUY_STOP_LIMIT)."""
    return order_type % 2 == 0


def day_start(server_time: float) -> int:
    """00:00 of the server day containing `server_time` (server times are epoch-encoded)."""
    return int(server_time // SECONDS_PER_DAY * SECONDS_PER_DAY)


def on_tick(price: float, tick_size: float) -> bool:
    """Whether a price is a whole number of ticks."""
    if tick_size <= 0:
        return True
    ratio = price / tick_size
    return abs(ratio - round(ratio)) <= TICK_TOLERANCE


def volume_ok(spec: dict[str, Any], volume: float) -> bool:
    """Volume within [volume_min, volume_max] and a multiple of volume_step; MT5 never rounds it."""
    if volume <= 0 or volume < spec["volume_min"] - VOLUME_TOLERANCE:
        return False
    if volume > spec["volume_max"] + VOLUME_TOLERANCE:
        return False
    step = spec["volume_step"]
    return step <= 0 or abs(round(volume / step) * step - volume) < VOLUME_TOLERANCE


def _points(distance: float, point: float) -> float:
    """A price distance in points, rounded so that float noise cannot flip a comparison."""
    return round(distance / (point or 1.0), 6)


@dataclass
class Verdict:
    """The outcome of validating one request, with what was found on the way."""

    retcode: int = 0
    symbol: SymbolRow | None = None
    order: dict[str, Any] | None = None
    position: dict[str, Any] | None = None
    time_expiration: int = 0
    expire_at: int = 0
    margin: float = 0.0  # margin the request adds, for order_check's projection

    def symbol_row(self) -> SymbolRow:
        """The symbol row, which every verdict whose gates passed carries."""
        if self.symbol is None:
            raise RuntimeError(f"mt5sim: a verdict (retcode {self.retcode}) passed its gates without a symbol row")
        return self.symbol

    def pending_order(self) -> dict[str, Any]:
        """The pending order a MODIFY or REMOVE verdict that passed its gates carries."""
        if self.order is None:
            raise RuntimeError(f"mt5sim: a verdict (retcode {self.retcode}) passed its gates without an order")
        return self.order


@dataclass
class Outcome:
    """What order_send reports back (OrderSendResult without the echo)."""

    retcode: int
    order: int = 0
    deal: int = 0
    volume: float = 0.0
    price: float = 0.0
    bid: float = 0.0
    ask: float = 0.0
    request_id: int = 0


class Broker:
    """The rules of one terminal's trade server, applied inside one transaction."""

    def __init__(self, tx: Transaction, status: Status) -> None:
        self.tx = tx
        self.status = status
        self.account: dict[str, Any] = dict(status.account)
        self.now = status.now()
        self._states: dict[str, dict[str, Any]] | None = None

    # ---- market data and money ----------------------------------------------------------------------
    def symbol_states(self) -> dict[str, dict[str, Any]]:
        """Every symbol's SymbolInfo fields with live quotes (loaded once per transaction)."""
        if self._states is None:
            self._states = {row.name: row.state() for row in self.tx.symbols()}
        return self._states

    def rates(self) -> money.Rates:
        return money.Rates(self.symbol_states().values())

    def margin(self, symbol: str, volume: float, price: float) -> float:
        """Margin in the account currency; 0.0 when no quote converts it (the check is then skipped)."""
        state = self.symbol_states().get(symbol)
        if state is None:
            return 0.0
        try:
            return money.margin(state, volume, price, self.account["leverage"], self.account["currency"], self.rates())
        except money.ConversionError:
            return 0.0

    def profit(self, symbol: str, buy: bool, volume: float, price_open: float, price_close: float) -> float:
        state = self.symbol_states().get(symbol)
        if state is None:
            return 0.0
        try:
            value = money.profit(state, buy, volume, price_open, price_close, self.account["currency"], self.rates())
        except money.ConversionError:
            return 0.0
        return round(value, int(self.account.get("currency_digits", 2)))

    def position_view(self, position: dict[str, Any]) -> dict[str, Any]:
        """A position with price_current and floating profit from the current quote."""
        view = dict(position)
        state = self.symbol_states().get(position["symbol"])
        if state is not None:
            buy = position["type"] == c.POSITION_TYPE_BUY
            view["price_current"] = state["bid"] if buy else state["ask"]
            view["profit"] = self.profit(
                position["symbol"], buy, position["volume"], position["price_open"], view["price_current"]
            )
        return view

    def account_view(self, cached: bool = False) -> dict[str, Any]:
        """AccountInfo fields with profit, equity, margin, free margin and margin level computed.

        Derived fields fixed through set_account ("pinned") win over the computed ones.
        """
        view = dict(self.account)
        profit = margin = 0.0
        for position in self.tx.positions(cached=cached):
            profit += self.position_view(position)["profit"]
            margin += self.margin(position["symbol"], position["volume"], position["price_open"])
        digits = int(view.get("currency_digits", 2))
        view["profit"] = round(profit, digits)
        view["margin"] = round(margin, digits)
        pinned = self.status.pinned
        for name in ("profit", "margin"):
            if name in pinned:
                view[name] = pinned[name]
        view["equity"] = pinned.get("equity", round(view["balance"] + view["credit"] + view["profit"], digits))
        view["margin_free"] = pinned.get("margin_free", round(view["equity"] - view["margin"], digits))
        level = view["equity"] / view["margin"] * 100.0 if view["margin"] > 0 else 0.0
        view["margin_level"] = pinned.get("margin_level", round(level, 2))
        return view

    def _save_balance(self, delta: float) -> None:
        digits = int(self.account.get("currency_digits", 2))
        self.account["balance"] = round(self.account["balance"] + delta, digits)
        self.tx.update_status(account=self.account)

    # ---- server-side events -------------------------------------------------------------------------
    def expire_due(self) -> int:
        """Move every placed order whose expiry has come to the history as EXPIRED (time_done = expiry)."""
        due = self.tx.due_orders(self.now)
        for order in due:
            expiry = int(order["expire_at"])
            self.tx.update_order(
                order["ticket"], state=c.ORDER_STATE_EXPIRED, time_done=expiry, time_done_msc=expiry * 1000
            )
        return len(due)

    def process_market(self, symbol: str | None = None) -> None:
        """Expiry, then pending-order triggers and position SL/TP for one symbol (or all)."""
        self.expire_due()
        self._states = None
        rows = [self.tx.symbol(symbol)] if symbol is not None else self.tx.symbols()
        for row in rows:
            if row is None or not row.session_open or row.bid <= 0 or row.ask <= 0:
                continue
            for order in self.tx.active_orders(symbol=row.name):
                self._trigger(order, row)
            for position in self.tx.positions(symbol=row.name):
                self._stop_out(position, row)

    def process_order(self, ticket: int, row: SymbolRow) -> None:
        """Expiry, then the trigger of one order just placed or modified. Every other order of its symbol was
        checked against these quotes when they were set (``process_market``) and no quote moved since: only this
        one can have reached its price, so checking it alone is the same as checking them all."""
        self.expire_due()
        self._states = None
        if not row.session_open or row.bid <= 0 or row.ask <= 0:
            return
        order = self.tx.order(ticket)
        if order is not None and order["state"] == c.ORDER_STATE_PLACED:
            self._trigger(order, row)

    def _trigger(self, order: dict[str, Any], row: SymbolRow) -> None:
        order_type, price = order["type"], order["price_open"]
        bid, ask = row.bid, row.ask
        eps = (row.spec["point"] or 1e-9) * 1e-6
        if order_type == c.ORDER_TYPE_BUY_STOP_LIMIT and ask >= price - eps:
            order_type = self._activate(order, c.ORDER_TYPE_BUY_LIMIT)
        elif order_type == c.ORDER_TYPE_SELL_STOP_LIMIT and bid <= price + eps:
            order_type = self._activate(order, c.ORDER_TYPE_SELL_LIMIT)
        price = order["price_open"]
        reached = (
            (order_type == c.ORDER_TYPE_BUY_LIMIT and ask <= price + eps)
            or (order_type == c.ORDER_TYPE_SELL_LIMIT and bid >= price - eps)
            or (order_type == c.ORDER_TYPE_BUY_STOP and ask >= price - eps)
            or (order_type == c.ORDER_TYPE_SELL_STOP and bid <= price + eps)
        )
        if reached:
            self._fill(order, ask if is_buy(order_type) else bid)

    def _activate(self, order: dict[str, Any], limit_type: int) -> int:
        """A stop-limit reached its trigger: the same ticket becomes a limit order at the stoplimit price."""
        order.update(
            type=limit_type,
            price_open=order["price_stoplimit"],
            price_stoplimit=0.0,
            type_filling=c.ORDER_FILLING_RETURN,
        )
        self.tx.update_order(
            order["ticket"],
            type=limit_type,
            price_open=order["price_open"],
            price_stoplimit=0.0,
            type_filling=c.ORDER_FILLING_RETURN,
        )
        return limit_type

    def _stop_out(self, position: dict[str, Any], row: SymbolRow) -> None:
        buy = position["type"] == c.POSITION_TYPE_BUY
        price = row.bid if buy else row.ask
        sl, tp = position["sl"], position["tp"]
        eps = (row.spec["point"] or 1e-9) * 1e-6
        hit_sl = sl > 0 and (price <= sl + eps if buy else price >= sl - eps)
        hit_tp = tp > 0 and (price >= tp - eps if buy else price <= tp + eps)
        digits = int(row.spec["digits"])
        if hit_sl:
            self._close(position, position["volume"], price, c.ORDER_REASON_SL, f"[sl {sl:.{digits}f}]")
        elif hit_tp:
            self._close(position, position["volume"], price, c.ORDER_REASON_TP, f"[tp {tp:.{digits}f}]")

    def _close(self, position: dict[str, Any], volume: float, price: float, reason: int, comment: str) -> None:
        """Close (part of) a position with a market order of the opposite direction."""
        buy = position["type"] == c.POSITION_TYPE_BUY
        order = self._new_order(
            order_type=c.ORDER_TYPE_SELL if buy else c.ORDER_TYPE_BUY,
            symbol=position["symbol"],
            volume=volume,
            price=price,
            magic=position["magic"],
            comment=comment,
            reason=reason,
            position_id=position["ticket"],
        )
        self._fill(order, price)

    def _new_order(
        self,
        *,
        order_type: int,
        symbol: str,
        volume: float,
        price: float,
        magic: int,
        comment: str,
        reason: int,
        position_id: int = 0,
        type_filling: int = c.ORDER_FILLING_FOK,
    ) -> dict[str, Any]:
        """Insert a market order in state STARTED (about to be filled in the same transaction)."""
        order = {
            "ticket": self.tx.allocate_ticket(),
            "time_setup": int(self.now),
            "time_setup_msc": int(self.now * 1000),
            "type": order_type,
            "type_time": c.ORDER_TIME_GTC,
            "type_filling": type_filling,
            "state": c.ORDER_STATE_STARTED,
            "magic": magic,
            "position_id": position_id,
            "reason": reason,
            "volume_initial": volume,
            "volume_current": volume,
            "price_open": price,
            "price_current": price,
            "symbol": symbol,
            "comment": comment,
        }
        self.tx.insert_order(order)
        return order

    def _fill(self, order: dict[str, Any], price: float) -> int:
        """Execute an order at `price`: a deal, the position change, the order to history as FILLED."""
        buy = is_buy(order["type"])
        volume = order["volume_current"]
        position_id, entry, realised = self._book_position(order, buy, volume, price)
        deal_ticket = self.tx.allocate_ticket()
        now_s, now_ms = int(self.now), int(self.now * 1000)
        self.tx.insert_deal(
            {
                "ticket": deal_ticket,
                "order": order["ticket"],
                "time": now_s,
                "time_msc": now_ms,
                "type": c.DEAL_TYPE_BUY if buy else c.DEAL_TYPE_SELL,
                "entry": entry,
                "magic": order["magic"],
                "position_id": position_id,
                "reason": order["reason"],  # ORDER_REASON_* and DEAL_REASON_* share their values
                "volume": volume,
                "price": price,
                "commission": 0.0,
                "swap": 0.0,
                "profit": realised,
                "fee": 0.0,
                "symbol": order["symbol"],
                "comment": order["comment"],
                "external_id": "",
            }
        )
        self.tx.update_order(
            order["ticket"],
            state=c.ORDER_STATE_FILLED,
            time_done=now_s,
            time_done_msc=now_ms,
            volume_current=0.0,
            price_current=price,
            position_id=position_id,
        )
        if realised:
            self._save_balance(realised)
        return deal_ticket

    def _book_position(self, order: dict[str, Any], buy: bool, volume: float, price: float) -> tuple[int, int, float]:
        """Apply a fill to the positions; returns (position id, deal entry, realised profit)."""
        if self.account["margin_mode"] not in _NETTING_MODES:
            if order["position_id"]:
                existing = self.tx.positions(ticket=order["position_id"])
                if existing:
                    return self._reduce(existing[0], volume, price)
            self._open_position(order, buy, volume, price)
            return order["ticket"], c.DEAL_ENTRY_IN, 0.0
        existing = self.tx.positions(symbol=order["symbol"])
        if not existing:
            self._open_position(order, buy, volume, price)
            return order["ticket"], c.DEAL_ENTRY_IN, 0.0
        position = existing[0]
        position_buy = position["type"] == c.POSITION_TYPE_BUY
        now_s, now_ms = int(self.now), int(self.now * 1000)
        if position_buy == buy:
            total = position["volume"] + volume
            average = (position["price_open"] * position["volume"] + price * volume) / total
            digits = int(self.symbol_states()[order["symbol"]]["digits"]) + 3
            changes: dict[str, Any] = {"volume": round(total, 8), "price_open": round(average, digits)}
            if order.get("sl") or order.get("tp"):
                changes.update(sl=order.get("sl", 0.0), tp=order.get("tp", 0.0))
            self.tx.update_position(position["ticket"], time_update=now_s, time_update_msc=now_ms, **changes)
            return position["identifier"], c.DEAL_ENTRY_IN, 0.0
        if volume <= position["volume"] + VOLUME_TOLERANCE:
            return self._reduce(position, volume, price)
        # Reversal: the position keeps its identifier, takes the order's ticket and the remaining volume.
        realised = self.profit(order["symbol"], position_buy, position["volume"], position["price_open"], price)
        self.tx.update_position(
            position["ticket"],
            ticket=order["ticket"],
            type=c.POSITION_TYPE_BUY if buy else c.POSITION_TYPE_SELL,
            volume=round(volume - position["volume"], 8),
            price_open=price,
            sl=order.get("sl", 0.0),
            tp=order.get("tp", 0.0),
            time_update=now_s,
            time_update_msc=now_ms,
        )
        return position["identifier"], c.DEAL_ENTRY_INOUT, realised

    def _reduce(self, position: dict[str, Any], volume: float, price: float) -> tuple[int, int, float]:
        position_buy = position["type"] == c.POSITION_TYPE_BUY
        realised = self.profit(position["symbol"], position_buy, volume, position["price_open"], price)
        remaining = round(position["volume"] - volume, 8)
        if remaining <= VOLUME_TOLERANCE:
            self.tx.delete_position(position["ticket"])
        else:
            self.tx.update_position(
                position["ticket"],
                volume=remaining,
                time_update=int(self.now),
                time_update_msc=int(self.now * 1000),
            )
        return position["identifier"], c.DEAL_ENTRY_OUT, realised

    def _open_position(self, order: dict[str, Any], buy: bool, volume: float, price: float) -> None:
        now_s, now_ms = int(self.now), int(self.now * 1000)
        reason = order["reason"] if order["reason"] <= c.POSITION_REASON_EXPERT else c.POSITION_REASON_CLIENT
        self.tx.insert_position(
            {
                "ticket": order["ticket"],
                "time": now_s,
                "time_msc": now_ms,
                "time_update": now_s,
                "time_update_msc": now_ms,
                "type": c.POSITION_TYPE_BUY if buy else c.POSITION_TYPE_SELL,
                "magic": order["magic"],
                "identifier": order["ticket"],
                "reason": reason,
                "volume": volume,
                "price_open": price,
                "sl": order.get("sl", 0.0),
                "tp": order.get("tp", 0.0),
                "price_current": price,
                "swap": 0.0,
                "profit": 0.0,
                "symbol": order["symbol"],
                "comment": order["comment"],
                "external_id": "",
            }
        )

    # ---- validation helpers -------------------------------------------------------------------------
    def _gate(self) -> int:
        """Checks every trade request passes first: the terminal's switches, then the account's rights."""
        if not self.status.autotrading:
            return c.TRADE_RETCODE_CLIENT_DISABLES_AT
        if not self.status.connected:
            return c.TRADE_RETCODE_CONNECTION
        if not self.account.get("trade_allowed", True):
            return c.TRADE_RETCODE_TRADE_DISABLED
        if not self.account.get("trade_expert", True):
            return c.TRADE_RETCODE_SERVER_DISABLES_AT
        return 0

    def _selected_symbol(self, name: str) -> SymbolRow | None:
        """A symbol the terminal can trade: known and selected in Market Watch."""
        row = self.tx.symbol(name) if name else None
        return row if row is not None and row.spec["select"] else None

    @staticmethod
    def _trade_mode_rc(spec: dict[str, Any], buy: bool, closing: bool = False) -> int:
        mode = spec["trade_mode"]
        if mode == c.SYMBOL_TRADE_MODE_DISABLED:
            return c.TRADE_RETCODE_TRADE_DISABLED
        if closing:
            return 0
        if mode == c.SYMBOL_TRADE_MODE_CLOSEONLY:
            return c.TRADE_RETCODE_CLOSE_ONLY
        if mode == c.SYMBOL_TRADE_MODE_LONGONLY and not buy:
            return c.TRADE_RETCODE_LONG_ONLY
        if mode == c.SYMBOL_TRADE_MODE_SHORTONLY and buy:
            return c.TRADE_RETCODE_SHORT_ONLY
        return 0

    @staticmethod
    def _market_distance(order_type: int, price: float, row: SymbolRow) -> float:
        """Points between an order's activation price and the market, positive on the correct side."""
        reference = row.ask if is_buy(order_type) else row.bid
        distance = reference - price if order_type in _BELOW_MARKET else price - reference
        return _points(distance, row.spec["point"])

    def _price_rc(self, order_type: int, price: float, stoplimit: float, row: SymbolRow) -> int:
        """10015 for a price off the tick grid, on the wrong side, or within trade_stops_level."""
        spec = row.spec
        tick = spec["trade_tick_size"] or spec["point"]
        if price <= 0 or not on_tick(price, tick):
            return c.TRADE_RETCODE_INVALID_PRICE
        distance = self._market_distance(order_type, price, row)
        if distance < 0 or distance < spec["trade_stops_level"]:
            return c.TRADE_RETCODE_INVALID_PRICE
        if order_type in STOP_LIMIT_TYPES:
            if stoplimit <= 0 or not on_tick(stoplimit, tick):
                return c.TRADE_RETCODE_INVALID_PRICE
            above = _points(stoplimit - price, spec["point"])
            if (order_type == c.ORDER_TYPE_BUY_STOP_LIMIT and above > 0) or (
                order_type == c.ORDER_TYPE_SELL_STOP_LIMIT and above < 0
            ):
                return c.TRADE_RETCODE_INVALID_PRICE
        return 0

    @staticmethod
    def _stops_rc(buy: bool, reference: float, sl: float, tp: float, spec: dict[str, Any]) -> int:
        """10016 for SL/TP on the wrong side of `reference`, closer than trade_stops_level, or not allowed."""
        if sl < 0 or tp < 0:
            return c.TRADE_RETCODE_INVALID_STOPS
        if (sl and not spec["order_mode"] & flags.ORDER_SL) or (tp and not spec["order_mode"] & flags.ORDER_TP):
            return c.TRADE_RETCODE_INVALID_STOPS
        tick = spec["trade_tick_size"] or spec["point"]
        level = spec["trade_stops_level"]

        def far(high: float, low: float) -> bool:
            distance = _points(high - low, spec["point"])
            return distance > 0 and distance >= level

        for stop, wanted in ((sl, far(reference, sl) if buy else far(sl, reference)),
                             (tp, far(tp, reference) if buy else far(reference, tp))):  # fmt: skip
            if stop and (not on_tick(stop, tick) or not wanted):
                return c.TRADE_RETCODE_INVALID_STOPS
        return 0

    def _expiry(self, type_time: int, expiration: int, spec: dict[str, Any]) -> tuple[int, int, int]:
        """(retcode, time_expiration as reported, expire_at used for expiry) for a pending order.

        DAY reports the day's 00:00 (observed on a real terminal) and expires at the next 00:00;
        SPECIFIED_DAY reports and lasts until 23:59:59 of the given day.
        """
        if not flags.expiration_allowed(spec["expiration_mode"], type_time):
            return c.TRADE_RETCODE_INVALID_EXPIRATION, 0, 0
        if type_time == c.ORDER_TIME_GTC:
            if spec["order_gtc_mode"] != c.SYMBOL_ORDERS_GTC:
                return 0, 0, day_start(self.now) + SECONDS_PER_DAY
            return 0, 0, 0
        if type_time == c.ORDER_TIME_DAY:
            start = day_start(self.now)
            return 0, start, start + SECONDS_PER_DAY
        if expiration <= 0 or expiration <= self.now:
            return c.TRADE_RETCODE_INVALID_EXPIRATION, 0, 0
        if type_time == c.ORDER_TIME_SPECIFIED:
            return 0, expiration, expiration
        start = day_start(expiration)
        return 0, start + SECONDS_PER_DAY - 1, start + SECONDS_PER_DAY

    def _frozen(self, order: dict[str, Any], row: SymbolRow) -> bool:
        """Within trade_freeze_level points of activation, an order can be neither modified nor removed."""
        level = row.spec["trade_freeze_level"]
        if level <= 0:
            return False
        return self._market_distance(order["type"], order["price_open"], row) <= level

    def _volume_limit_rc(self, symbol: str, buy: bool, volume: float, spec: dict[str, Any]) -> int:
        """10034 when positions plus pending orders in one direction would exceed volume_limit."""
        limit = spec["volume_limit"]
        if limit <= 0:
            return 0
        total = volume
        total += sum(p["volume"] for p in self.tx.positions(symbol=symbol) if (p["type"] == 0) == buy)
        total += sum(o["volume_current"] for o in self.tx.active_orders(symbol=symbol) if is_buy(o["type"]) == buy)
        return c.TRADE_RETCODE_LIMIT_VOLUME if total > limit + VOLUME_TOLERANCE else 0

    def _money_rc(self, symbol: str, volume: float, price: float, verdict: Verdict) -> int:
        verdict.margin = self.margin(symbol, volume, price)
        free = self.account_view()["margin_free"]
        return c.TRADE_RETCODE_NO_MONEY if verdict.margin > free + 1e-9 else 0

    def _active_pending(self, ticket: int) -> dict[str, Any] | None:
        order = self.tx.order(ticket) if ticket else None
        if order is None or order["state"] != c.ORDER_STATE_PLACED or order["type"] not in PENDING_TYPES:
            return None
        return order

    # ---- validation per action ----------------------------------------------------------------------
    def validate(self, request: TradeRequest) -> Verdict:
        """Run the checks of the request's action; Verdict.retcode is 0 when every check passes."""
        action = request.action
        if action == c.TRADE_ACTION_PENDING:
            return self._validate_pending(request)
        if action == c.TRADE_ACTION_MODIFY:
            return self._validate_modify(request)
        if action == c.TRADE_ACTION_REMOVE:
            return self._validate_remove(request)
        if action == c.TRADE_ACTION_DEAL:
            return self._validate_deal(request)
        if action == c.TRADE_ACTION_SLTP:
            return self._validate_sltp(request)
        # CLOSE_BY is not simulated.
        return Verdict(c.TRADE_RETCODE_INVALID, symbol=self.tx.symbol(request.symbol))

    def _new_request_gate(self, request: TradeRequest) -> Verdict:
        """PENDING and DEAL start alike: the account-wide gates must pass and the symbol must be selected in
        Market Watch (else 10013). A verdict with a retcode is final; otherwise ``symbol`` is the row."""
        verdict = Verdict(symbol=self.tx.symbol(request.symbol) if request.symbol else None)
        verdict.retcode = self._gate()
        if verdict.retcode:
            return verdict
        row = self._selected_symbol(request.symbol)
        if row is None:
            verdict.retcode = c.TRADE_RETCODE_INVALID
            return verdict
        verdict.symbol = row
        return verdict

    def _validate_pending(self, request: TradeRequest) -> Verdict:
        verdict = self._new_request_gate(request)
        if verdict.retcode:
            return verdict
        row = verdict.symbol_row()
        spec, order_type = row.spec, request.type
        buy = is_buy(order_type)
        stoplimit_type = order_type in STOP_LIMIT_TYPES
        reference = request.stoplimit if stoplimit_type else request.price
        # Evaluated lazily in this order: the first non-zero retcode decides (mt5-api.md §9).
        checks = (
            lambda: self._trade_mode_rc(spec, buy),
            lambda: 0 if row.session_open else c.TRADE_RETCODE_MARKET_CLOSED,
            lambda: 0 if row.bid > 0 and row.ask > 0 else c.TRADE_RETCODE_PRICE_OFF,
            lambda: (
                0
                if order_type in PENDING_TYPES and flags.order_type_allowed(spec["order_mode"], order_type)
                else c.TRADE_RETCODE_INVALID_ORDER
            ),
            lambda: 0 if volume_ok(spec, request.volume) else c.TRADE_RETCODE_INVALID_VOLUME,
            lambda: self._price_rc(order_type, request.price, request.stoplimit, row),
            lambda: self._stops_rc(buy, reference, request.sl, request.tp, spec),
            lambda: self._expiry_into(verdict, request, spec),
            lambda: (
                0 if flags.filling_allowed(spec["filling_mode"], request.type_filling) else c.TRADE_RETCODE_INVALID_FILL
            ),
            lambda: self._limit_orders_rc(),
            lambda: self._volume_limit_rc(row.name, buy, request.volume, spec),
            lambda: (
                self._money_rc(row.name, request.volume, request.price, verdict)
                if self.status.check_margin_on_pending
                else 0
            ),
        )
        for check in checks:
            verdict.retcode = check()
            if verdict.retcode:
                return verdict
        return verdict

    def _expiry_into(self, verdict: Verdict, request: TradeRequest, spec: dict[str, Any]) -> int:
        retcode, verdict.time_expiration, verdict.expire_at = self._expiry(request.type_time, request.expiration, spec)
        return retcode

    def _limit_orders_rc(self) -> int:
        limit = int(self.account.get("limit_orders", 0))
        if limit > 0 and self.tx.count_active_orders() >= limit:
            return c.TRADE_RETCODE_LIMIT_ORDERS
        return 0

    def _existing_order(self, request: TradeRequest) -> Verdict:
        """MODIFY and REMOVE start alike: the order must be one of the account's pending orders (else 10013),
        and the account-wide gates must pass. A verdict with a retcode is final."""
        order = self._active_pending(request.order)
        if order is None:
            return Verdict(c.TRADE_RETCODE_INVALID, symbol=self.tx.symbol(request.symbol) if request.symbol else None)
        row = self.tx.symbol(order["symbol"])
        verdict = Verdict(symbol=row, order=order)
        verdict.retcode = self._gate()
        if not verdict.retcode and row is None:
            verdict.retcode = c.TRADE_RETCODE_INVALID
        return verdict

    def _validate_modify(self, request: TradeRequest) -> Verdict:
        verdict = self._existing_order(request)
        if verdict.retcode:
            return verdict
        order, row = verdict.pending_order(), verdict.symbol_row()
        spec, order_type = row.spec, order["type"]
        stoplimit_type = order_type in STOP_LIMIT_TYPES
        stoplimit = request.stoplimit if stoplimit_type else 0.0
        reference = stoplimit if stoplimit_type else request.price
        checks = (
            lambda: 0 if row.session_open else c.TRADE_RETCODE_MARKET_CLOSED,
            lambda: c.TRADE_RETCODE_FROZEN if self._frozen(order, row) else 0,
            lambda: self._price_rc(order_type, request.price, stoplimit, row),
            lambda: self._stops_rc(is_buy(order_type), reference, request.sl, request.tp, spec),
            lambda: self._expiry_into(verdict, request, spec),
            lambda: c.TRADE_RETCODE_NO_CHANGES if self._unchanged(order, request, verdict, spec) else 0,
        )
        for check in checks:
            verdict.retcode = check()
            if verdict.retcode:
                return verdict
        return verdict

    @staticmethod
    def _unchanged(order: dict[str, Any], request: TradeRequest, verdict: Verdict, spec: dict[str, Any]) -> bool:
        tolerance = (spec["point"] or 1e-9) * 1e-3

        def same(a: float, b: float) -> bool:
            return abs(a - b) < tolerance

        stoplimit_same = order["type"] not in STOP_LIMIT_TYPES or same(request.stoplimit, order["price_stoplimit"])
        return (
            same(request.price, order["price_open"])
            and same(request.sl, order["sl"])
            and same(request.tp, order["tp"])
            and stoplimit_same
            and request.type_time == order["type_time"]
            and verdict.time_expiration == order["time_expiration"]
        )

    def _validate_remove(self, request: TradeRequest) -> Verdict:
        verdict = self._existing_order(request)
        if verdict.retcode:
            return verdict
        order, row = verdict.pending_order(), verdict.symbol_row()
        if not row.session_open:
            verdict.retcode = c.TRADE_RETCODE_MARKET_CLOSED
        elif self._frozen(order, row):
            verdict.retcode = c.TRADE_RETCODE_FROZEN
        return verdict

    def _validate_deal(self, request: TradeRequest) -> Verdict:
        verdict = self._new_request_gate(request)
        if verdict.retcode:
            return verdict
        row = verdict.symbol_row()
        spec, buy = row.spec, is_buy(request.type)
        if request.type not in (c.ORDER_TYPE_BUY, c.ORDER_TYPE_SELL) or not flags.order_type_allowed(
            spec["order_mode"], request.type
        ):
            verdict.retcode = c.TRADE_RETCODE_INVALID_ORDER
            return verdict
        closing = False
        if request.position:
            positions = self.tx.positions(ticket=request.position)
            if not positions:
                verdict.retcode = self._missing_position_rc(request.position)
                return verdict
            if positions[0]["symbol"] != row.name or (positions[0]["type"] == 0) == buy:
                verdict.retcode = c.TRADE_RETCODE_INVALID
                return verdict
            verdict.position, closing = positions[0], True
        elif self.account["margin_mode"] in _NETTING_MODES:
            existing = self.tx.positions(symbol=row.name)
            closing = bool(existing) and (existing[0]["type"] == 0) != buy
        price = row.ask if buy else row.bid
        checks = (
            lambda: self._trade_mode_rc(spec, buy, closing),
            lambda: 0 if row.session_open else c.TRADE_RETCODE_MARKET_CLOSED,
            lambda: 0 if row.bid > 0 and row.ask > 0 else c.TRADE_RETCODE_PRICE_OFF,
            lambda: (
                c.TRADE_RETCODE_FROZEN
                if verdict.position is not None and self._position_frozen(verdict.position, row)
                else 0
            ),
            lambda: 0 if volume_ok(spec, request.volume) else c.TRADE_RETCODE_INVALID_VOLUME,
            lambda: (
                c.TRADE_RETCODE_INVALID_CLOSE_VOLUME
                if verdict.position is not None and request.volume > verdict.position["volume"] + VOLUME_TOLERANCE
                else 0
            ),
            lambda: self._requested_price_rc(spec, request, price),
            lambda: 0 if closing else self._stops_rc(buy, row.bid if buy else row.ask, request.sl, request.tp, spec),
            lambda: self._market_filling_rc(spec, request.type_filling),
            lambda: 0 if closing else self._volume_limit_rc(row.name, buy, request.volume, spec),
            lambda: 0 if closing else self._money_rc(row.name, request.volume, price, verdict),
        )
        for check in checks:
            verdict.retcode = check()
            if verdict.retcode:
                return verdict
        return verdict

    @staticmethod
    def _market_filling_rc(spec: dict[str, Any], type_filling: int) -> int:
        """Market orders: FOK/IOC need their filling_mode bit; RETURN is refused under Market execution."""
        if type_filling == c.ORDER_FILLING_RETURN:
            allowed = spec["trade_exemode"] != c.SYMBOL_TRADE_EXECUTION_MARKET
        else:
            allowed = type_filling in (c.ORDER_FILLING_FOK, c.ORDER_FILLING_IOC) and flags.filling_allowed(
                spec["filling_mode"], type_filling
            )
        return 0 if allowed else c.TRADE_RETCODE_INVALID_FILL

    def _validate_sltp(self, request: TradeRequest) -> Verdict:
        positions = self.tx.positions(ticket=request.position) if request.position else []
        if not positions:
            return Verdict(self._missing_position_rc(request.position),
                           symbol=self.tx.symbol(request.symbol) if request.symbol else None)
        position = positions[0]
        row = self.tx.symbol(position["symbol"])
        verdict = Verdict(symbol=row, position=position)
        verdict.retcode = self._gate()
        if verdict.retcode or row is None:
            verdict.retcode = verdict.retcode or c.TRADE_RETCODE_INVALID
            return verdict
        buy = position["type"] == c.POSITION_TYPE_BUY
        tolerance = (row.spec["point"] or 1e-9) * 1e-3
        if row.spec["trade_mode"] == c.SYMBOL_TRADE_MODE_DISABLED:
            verdict.retcode = c.TRADE_RETCODE_TRADE_DISABLED
        elif not row.session_open:
            verdict.retcode = c.TRADE_RETCODE_MARKET_CLOSED
        elif self._position_frozen(position, row):
            verdict.retcode = c.TRADE_RETCODE_FROZEN
        elif rc := self._stops_rc(buy, row.bid if buy else row.ask, request.sl, request.tp, row.spec):
            verdict.retcode = rc
        elif abs(request.sl - position["sl"]) < tolerance and abs(request.tp - position["tp"]) < tolerance:
            verdict.retcode = c.TRADE_RETCODE_NO_CHANGES
        return verdict

    def _missing_position_rc(self, ticket: int) -> int:
        """A request naming a position that is not open: 10036 POSITION_CLOSED when the deals history knows the
        position (it existed and was closed), 10013 INVALID for a ticket that never was an open position.

        mt5-api.md is silent. 10036's official description is "Position with the specified POSITION_IDENTIFIER
        has already been closed"; third-party code handles both 10036 and 10013 (or 10035) for this case, so
        the copier must not rely on either: the adapter looks at the positions again whatever the answer."""
        if ticket and self.tx.deals(position=ticket):
            return c.TRADE_RETCODE_POSITION_CLOSED
        return c.TRADE_RETCODE_INVALID

    def _position_frozen(self, position: dict[str, Any], row: SymbolRow) -> bool:
        """A position whose SL or TP lies within trade_freeze_level points of the price that would close it
        can be neither modified nor closed (ART2555: Bid-SL and TP-Bid for a buy, SL-Ask and Ask-TP for a sell
        must exceed the freeze level). Distances of exactly the level count as frozen, as for orders."""
        level = row.spec["trade_freeze_level"]
        if level <= 0:
            return False
        buy = position["type"] == c.POSITION_TYPE_BUY
        price = row.bid if buy else row.ask
        point = row.spec["point"]
        sl, tp = position["sl"], position["tp"]
        distances = []
        if sl:
            distances.append(_points(price - sl if buy else sl - price, point))
        if tp:
            distances.append(_points(tp - price if buy else price - tp, point))
        return any(distance <= level for distance in distances)

    @staticmethod
    def _requested_price_rc(spec: dict[str, Any], request: TradeRequest, price: float) -> int:
        """Instant and Request execution deal at the price the request names: none is 10015, and one the
        market left by more than ``deviation`` points is a requote (10004). Market and Exchange execution take
        the market's price and ignore both fields (BOOK experts_close)."""
        if spec["trade_exemode"] not in (c.SYMBOL_TRADE_EXECUTION_INSTANT, c.SYMBOL_TRADE_EXECUTION_REQUEST):
            return 0
        if request.price <= 0:
            return c.TRADE_RETCODE_INVALID_PRICE
        if _points(abs(request.price - price), spec["point"]) > request.deviation:
            return c.TRADE_RETCODE_REQUOTE
        return 0

    # ---- execution ----------------------------------------------------------------------------------
    def execute(self, request: TradeRequest) -> Outcome:
        """Validate, then apply a request; the Outcome is what OrderSendResult reports."""
        verdict = self.validate(request)
        if verdict.retcode:
            client_side = verdict.retcode in (c.TRADE_RETCODE_CLIENT_DISABLES_AT, c.TRADE_RETCODE_CONNECTION)
            known = verdict.symbol
            return Outcome(
                verdict.retcode,
                bid=known.bid if known else 0.0,
                ask=known.ask if known else 0.0,
                request_id=0 if client_side else self.tx.allocate_request_id(),
            )
        row = verdict.symbol_row()
        request_id = self.tx.allocate_request_id()
        action = request.action
        if action == c.TRADE_ACTION_PENDING:
            ticket = self._place(request, verdict)
            self.process_order(ticket, row)
            return Outcome(_DONE, order=ticket, volume=request.volume, bid=row.bid, ask=row.ask, request_id=request_id)
        if action == c.TRADE_ACTION_MODIFY:
            order = verdict.pending_order()
            self._modify(order, request, verdict)
            self.process_order(order["ticket"], row)
            return Outcome(_DONE, order=order["ticket"], bid=row.bid, ask=row.ask, request_id=request_id)
        if action == c.TRADE_ACTION_REMOVE:
            order = verdict.pending_order()
            self.tx.update_order(
                order["ticket"],
                state=c.ORDER_STATE_CANCELED,
                time_done=int(self.now),
                time_done_msc=int(self.now * 1000),
                price_current=row.ask if is_buy(order["type"]) else row.bid,
            )
            return Outcome(_DONE, order=order["ticket"], bid=row.bid, ask=row.ask, request_id=request_id)
        if action == c.TRADE_ACTION_SLTP:
            assert verdict.position is not None
            self.tx.update_position(verdict.position["ticket"], sl=request.sl, tp=request.tp,
                                    time_update=int(self.now), time_update_msc=int(self.now * 1000))
            self.process_market(row.name)
            return Outcome(_DONE, request_id=request_id)
        # TRADE_ACTION_DEAL: fill at once at the current price.
        buy = is_buy(request.type)
        price = row.ask if buy else row.bid
        order = self._new_order(
            order_type=request.type,
            symbol=row.name,
            volume=request.volume,
            price=price,
            magic=request.magic,
            comment=request.comment,
            reason=c.ORDER_REASON_EXPERT,
            position_id=request.position,
            type_filling=request.type_filling,
        )
        order.update(sl=request.sl, tp=request.tp)
        self.tx.update_order(order["ticket"], sl=request.sl, tp=request.tp)
        deal = self._fill(order, price)
        return Outcome(
            _DONE,
            order=order["ticket"],
            deal=deal,
            volume=request.volume,
            price=price,
            bid=row.bid,
            ask=row.ask,
            request_id=request_id,
        )

    def _place(self, request: TradeRequest, verdict: Verdict) -> int:
        ticket = self.tx.allocate_ticket()
        stoplimit = request.stoplimit if request.type in STOP_LIMIT_TYPES else 0.0
        self.tx.insert_order(
            {
                "ticket": ticket,
                "time_setup": int(self.now),
                "time_setup_msc": int(self.now * 1000),
                "time_expiration": verdict.time_expiration,
                "type": request.type,
                "type_time": request.type_time,
                "type_filling": request.type_filling,
                "state": c.ORDER_STATE_PLACED,
                "magic": request.magic,
                "reason": c.ORDER_REASON_EXPERT,
                "volume_initial": request.volume,
                "volume_current": request.volume,
                "price_open": request.price,
                "sl": request.sl,
                "tp": request.tp,
                "price_stoplimit": stoplimit,
                "symbol": request.symbol,
                "comment": request.comment,
                "expire_at": verdict.expire_at,
            }
        )
        return ticket

    def _modify(self, order: dict[str, Any], request: TradeRequest, verdict: Verdict) -> None:
        stoplimit = request.stoplimit if order["type"] in STOP_LIMIT_TYPES else 0.0
        self.tx.update_order(
            order["ticket"],
            price_open=request.price,
            sl=request.sl,
            tp=request.tp,
            price_stoplimit=stoplimit,
            type_time=request.type_time,
            time_expiration=verdict.time_expiration,
            expire_at=verdict.expire_at,
        )
