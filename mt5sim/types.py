"""The named tuples the MetaTrader5 package returns, with the exact names and field order (mt5-api.md §4).

The real package builds struct-sequence objects; `collections.namedtuple` gives the same tuple behaviour,
attribute access and `_asdict()`.
"""

from __future__ import annotations

from collections import namedtuple

TRADE_ORDER_FIELDS: tuple[str, ...] = (
    "ticket", "time_setup", "time_setup_msc", "time_done", "time_done_msc", "time_expiration", "type",
    "type_time", "type_filling", "state", "magic", "position_id", "position_by_id", "reason",
    "volume_initial", "volume_current", "price_open", "sl", "tp", "price_current", "price_stoplimit",
    "symbol", "comment", "external_id",
)  # fmt: skip
TRADE_POSITION_FIELDS: tuple[str, ...] = (
    "ticket", "time", "time_msc", "time_update", "time_update_msc", "type", "magic", "identifier",
    "reason", "volume", "price_open", "sl", "tp", "price_current", "swap", "profit", "symbol", "comment",
    "external_id",
)  # fmt: skip
TRADE_DEAL_FIELDS: tuple[str, ...] = (
    "ticket", "order", "time", "time_msc", "type", "entry", "magic", "position_id", "reason", "volume",
    "price", "commission", "swap", "profit", "fee", "symbol", "comment", "external_id",
)  # fmt: skip
TRADE_REQUEST_FIELDS: tuple[str, ...] = (
    "action", "magic", "order", "symbol", "volume", "price", "stoplimit", "sl", "tp", "deviation", "type",
    "type_filling", "type_time", "expiration", "comment", "position", "position_by",
)  # fmt: skip
ORDER_SEND_RESULT_FIELDS: tuple[str, ...] = (
    "retcode", "deal", "order", "volume", "price", "bid", "ask", "comment", "request_id",
    "retcode_external", "request",
)  # fmt: skip
ORDER_CHECK_RESULT_FIELDS: tuple[str, ...] = (
    "retcode", "balance", "equity", "profit", "margin", "margin_free", "margin_level", "comment", "request",
)  # fmt: skip
TICK_FIELDS: tuple[str, ...] = ("time", "bid", "ask", "last", "volume", "time_msc", "flags", "volume_real")
ACCOUNT_INFO_FIELDS: tuple[str, ...] = (
    "login", "trade_mode", "leverage", "limit_orders", "margin_so_mode", "trade_allowed", "trade_expert",
    "margin_mode", "currency_digits", "fifo_close", "balance", "credit", "profit", "equity", "margin",
    "margin_free", "margin_level", "margin_so_call", "margin_so_so", "margin_initial", "margin_maintenance",
    "assets", "liabilities", "commission_blocked", "name", "server", "currency", "company",
)  # fmt: skip
TERMINAL_INFO_FIELDS: tuple[str, ...] = (
    "community_account", "community_connection", "connected", "dlls_allowed", "trade_allowed",
    "tradeapi_disabled", "email_enabled", "ftp_enabled", "notifications_enabled", "mqid", "build", "maxbars",
    "codepage", "ping_last", "community_balance", "retransmission", "company", "name", "language", "path",
    "data_path", "commondata_path",
)  # fmt: skip
SYMBOL_INFO_FIELDS: tuple[str, ...] = (
    "custom", "chart_mode", "select", "visible", "session_deals", "session_buy_orders",
    "session_sell_orders", "volume", "volumehigh", "volumelow", "time", "digits", "spread", "spread_float",
    "ticks_bookdepth", "trade_calc_mode", "trade_mode", "start_time", "expiration_time",
    "trade_stops_level", "trade_freeze_level", "trade_exemode", "swap_mode", "swap_rollover3days",
    "margin_hedged_use_leg", "expiration_mode", "filling_mode", "order_mode", "order_gtc_mode",
    "option_mode", "option_right", "bid", "bidhigh", "bidlow", "ask", "askhigh", "asklow", "last",
    "lasthigh", "lastlow", "volume_real", "volumehigh_real", "volumelow_real", "option_strike", "point",
    "trade_tick_value", "trade_tick_value_profit", "trade_tick_value_loss", "trade_tick_size",
    "trade_contract_size", "trade_accrued_interest", "trade_face_value", "trade_liquidity_rate",
    "volume_min", "volume_max", "volume_step", "volume_limit", "swap_long", "swap_short", "margin_initial",
    "margin_maintenance", "session_volume", "session_turnover", "session_interest",
    "session_buy_orders_volume", "session_sell_orders_volume", "session_open", "session_close",
    "session_aw", "session_price_settlement", "session_price_limit_min", "session_price_limit_max",
    "margin_hedged", "price_change", "price_volatility", "price_theoretical", "price_greeks_delta",
    "price_greeks_theta", "price_greeks_gamma", "price_greeks_vega", "price_greeks_rho",
    "price_greeks_omega", "price_sensitivity", "basis", "category", "currency_base", "currency_profit",
    "currency_margin", "bank", "description", "exchange", "formula", "isin", "name", "page", "path",
)  # fmt: skip

TradeOrder = namedtuple("TradeOrder", TRADE_ORDER_FIELDS)
TradePosition = namedtuple("TradePosition", TRADE_POSITION_FIELDS)
TradeDeal = namedtuple("TradeDeal", TRADE_DEAL_FIELDS)
TradeRequest = namedtuple("TradeRequest", TRADE_REQUEST_FIELDS)
OrderSendResult = namedtuple("OrderSendResult", ORDER_SEND_RESULT_FIELDS)
OrderCheckResult = namedtuple("OrderCheckResult", ORDER_CHECK_RESULT_FIELDS)
Tick = namedtuple("Tick", TICK_FIELDS)
AccountInfo = namedtuple("AccountInfo", ACCOUNT_INFO_FIELDS)
TerminalInfo = namedtuple("TerminalInfo", TERMINAL_INFO_FIELDS)
SymbolInfo = namedtuple("SymbolInfo", SYMBOL_INFO_FIELDS)

__all__ = [
    "ACCOUNT_INFO_FIELDS",
    "ORDER_CHECK_RESULT_FIELDS",
    "ORDER_SEND_RESULT_FIELDS",
    "SYMBOL_INFO_FIELDS",
    "TERMINAL_INFO_FIELDS",
    "TICK_FIELDS",
    "TRADE_DEAL_FIELDS",
    "TRADE_ORDER_FIELDS",
    "TRADE_POSITION_FIELDS",
    "TRADE_REQUEST_FIELDS",
    "AccountInfo",
    "OrderCheckResult",
    "OrderSendResult",
    "SymbolInfo",
    "TerminalInfo",
    "Tick",
    "TradeDeal",
    "TradeOrder",
    "TradePosition",
    "TradeRequest",
]
