"""SQLite persistence of one simulated terminal: the state every attached process shares.

One file, `terminal.db`, in the terminal's directory, in WAL mode so readers never wait for the writer.
Every change runs in one `BEGIN IMMEDIATE` transaction: concurrent processes serialise on the database's
write lock and never apply anything twice. Each process keeps one connection per terminal, reopened after
a fork (a SQLite connection must not cross a fork).
"""

from __future__ import annotations

import functools
import json
import os
import sqlite3
import sys
import threading
import time
from collections.abc import Callable, Hashable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar, cast

from . import constants as c
from .types import TRADE_DEAL_FIELDS, TRADE_ORDER_FIELDS, TRADE_POSITION_FIELDS

_T = TypeVar("_T")

DB_NAME = "terminal.db"
BUSY_TIMEOUT_MS = 10_000
SCHEMA_VERSION = 2  # 2: orders.version (and its trigger), orders_cache.version
# A read answered from memory (Store.remembered) trusts that the database file is the one its connection opened
# for this long after it last looked: a source's worker asks 50 times a second, and on a small VM the stat of a
# process just woken costs a third of the answer. Every transaction still looks first, so a terminal deleted and
# created again is never written to, nor read anew, through the old file.
IDENTITY_TRUSTED_SECONDS = 0.25

ORDER_COLUMNS: tuple[str, ...] = (*TRADE_ORDER_FIELDS, "expire_at")
POSITION_COLUMNS: tuple[str, ...] = TRADE_POSITION_FIELDS
DEAL_COLUMNS: tuple[str, ...] = TRADE_DEAL_FIELDS

_TEXT_COLUMNS = frozenset({"symbol", "comment", "external_id"})
_REAL_COLUMNS = frozenset(
    {"volume_initial", "volume_current", "price_open", "sl", "tp", "price_current", "price_stoplimit"}
    | {"volume", "swap", "profit", "price", "commission", "fee"}
)
# Finished orders: everything but STARTED (a DEAL being executed) and PLACED.
_ACTIVE_STATES = (c.ORDER_STATE_STARTED, c.ORDER_STATE_PLACED)


def _column_sql(name: str) -> str:
    if name == "ticket":
        return '"ticket" INTEGER PRIMARY KEY'
    if name in _TEXT_COLUMNS:
        return f"\"{name}\" TEXT NOT NULL DEFAULT ''"
    if name in _REAL_COLUMNS:
        return f'"{name}" REAL NOT NULL DEFAULT 0.0'
    return f'"{name}" INTEGER NOT NULL DEFAULT 0'


def _table_sql(table: str, columns: Sequence[str]) -> str:
    return f"CREATE TABLE IF NOT EXISTS {table} ({', '.join(_column_sql(n) for n in columns)})"


def _select_list(columns: Sequence[str], alias: str = "") -> str:
    prefix = f"{alias}." if alias else ""
    return ", ".join(f'{prefix}"{n}"' for n in columns)


SCHEMA: tuple[str, ...] = (
    """CREATE TABLE IF NOT EXISTS status (
        id INTEGER PRIMARY KEY CHECK (id = 1),
        running INTEGER NOT NULL,
        generation INTEGER NOT NULL,
        connected INTEGER NOT NULL,
        disconnected_ticket INTEGER NOT NULL,
        autotrading INTEGER NOT NULL,
        clock_offset REAL NOT NULL,
        latency REAL NOT NULL,
        inject_retcode INTEGER NOT NULL,
        inject_count INTEGER NOT NULL,
        next_ticket INTEGER NOT NULL,
        next_request_id INTEGER NOT NULL,
        check_margin_on_pending INTEGER NOT NULL,
        password TEXT,
        account TEXT NOT NULL,
        pinned TEXT NOT NULL
    )""",
    """CREATE TABLE IF NOT EXISTS symbols (
        name TEXT PRIMARY KEY,
        spec TEXT NOT NULL,
        bid REAL NOT NULL,
        ask REAL NOT NULL,
        bidhigh REAL NOT NULL,
        bidlow REAL NOT NULL,
        askhigh REAL NOT NULL,
        asklow REAL NOT NULL,
        time_msc INTEGER NOT NULL,
        session_open INTEGER NOT NULL,
        rank INTEGER NOT NULL
    )""",
    _table_sql("orders", (*ORDER_COLUMNS, "version")),
    _table_sql("orders_cache", (*ORDER_COLUMNS, "version")),
    # Every change to an order's row moves its version: a read of the placed orders fetches (ticket, version) and
    # the quotes first, and whole rows only for what changed (Transaction.active_orders_as).
    "CREATE TRIGGER IF NOT EXISTS orders_versioned AFTER UPDATE ON orders FOR EACH ROW "
    "WHEN NEW.version = OLD.version BEGIN UPDATE orders SET version = OLD.version + 1 WHERE ticket = OLD.ticket; END",
    "CREATE INDEX IF NOT EXISTS orders_by_state ON orders(state, ticket)",
    "CREATE INDEX IF NOT EXISTS orders_by_done ON orders(time_done)",
    "CREATE INDEX IF NOT EXISTS orders_by_position ON orders(position_id)",
    _table_sql("positions", POSITION_COLUMNS),
    _table_sql("positions_cache", POSITION_COLUMNS),
    _table_sql("deals", DEAL_COLUMNS),
    "CREATE INDEX IF NOT EXISTS deals_by_time ON deals(time)",
    'CREATE INDEX IF NOT EXISTS deals_by_order ON deals("order")',
    "CREATE INDEX IF NOT EXISTS deals_by_position ON deals(position_id)",
)
TABLES: tuple[str, ...] = (
    "status", "symbols", "orders", "orders_cache", "positions", "positions_cache", "deals",
)  # fmt: skip

_STATUS_COLUMNS: tuple[str, ...] = (
    "running", "generation", "connected", "disconnected_ticket", "autotrading", "clock_offset", "latency",
    "inject_retcode", "inject_count", "next_ticket", "next_request_id", "check_margin_on_pending",
    "password", "account", "pinned",
)  # fmt: skip


@functools.lru_cache(maxsize=1024)
def _parsed_spec(text: str) -> dict[str, Any]:
    return dict(json.loads(text))


def _parse_spec(text: str) -> dict[str, Any]:
    """A symbol's stored specification. Specifications change rarely and are read for every margin check (all
    symbols, for conversion rates): parsed once per distinct text, each caller given its own copy."""
    return dict(_parsed_spec(text))


def _magic_to_db(value: int) -> int:
    """Magic is an unsigned 64-bit value; SQLite integers are signed, so store it in two's complement."""
    return value - 2**64 if value >= 2**63 else value


# How many orders' conversions Transaction.active_orders_as remembers per connection (~1 KB each).
ROW_MEMO_BOUND = 4096
_ORDER_VERSIONS = "o.ticket, o.version"
_VERSIONED_ORDERS = f"{_select_list(ORDER_COLUMNS, 'o')}, o.version"


def _magic_from_db(value: int) -> int:
    return value + 2**64 if value < 0 else value


@dataclass
class Status:
    """The terminal-wide row: process state, connection, switches, counters and the stored account."""

    running: bool
    generation: int
    connected: bool
    disconnected_ticket: int  # next_ticket when the connection was lost (0 while connected)
    autotrading: bool
    clock_offset: float
    latency: float
    inject_retcode: int
    inject_count: int
    next_ticket: int
    next_request_id: int
    check_margin_on_pending: bool
    password: str | None
    account: dict[str, Any]
    pinned: dict[str, Any]

    def now(self) -> float:
        """Server time: the wall clock plus the broker's UTC offset plus any shift_time, epoch-encoded."""
        return time.time() + self.clock_offset


@dataclass
class SymbolRow:
    """A symbol's specification and its current quote."""

    spec: dict[str, Any]
    bid: float
    ask: float
    bidhigh: float
    bidlow: float
    askhigh: float
    asklow: float
    time_msc: int
    session_open: bool

    @property
    def name(self) -> str:
        return str(self.spec["name"])

    def state(self) -> dict[str, Any]:
        """Every SymbolInfo field with the live quote merged in."""
        merged = dict(self.spec)
        point = merged["point"] or 1.0
        merged.update(
            bid=self.bid,
            ask=self.ask,
            bidhigh=self.bidhigh,
            bidlow=self.bidlow,
            askhigh=self.askhigh,
            asklow=self.asklow,
            time=self.time_msc // 1000,
            spread=round((self.ask - self.bid) / point),
        )
        return merged


class Transaction:
    """Typed access to the tables inside one transaction."""

    def __init__(self, conn: sqlite3.Connection, memo: dict[Hashable, Any] | None = None,
                 converted_orders: dict[Hashable, Any] | None = None) -> None:
        self.conn = conn
        self._memo = memo
        self._memo_changes = conn.total_changes
        self._converted_orders = converted_orders

    def cached(self, key: Hashable, compute: Callable[[], _T]) -> _T:
        """``compute()``, remembered for as long as the database holds what it was computed from.

        A real terminal answers reads from its memory; without this every poll of the simulated one re-runs its
        SELECTs (0.3 ms for ten orders). Only read transactions remember (``Store.read``): the memo belongs to
        the database state this transaction's snapshot sees, so a value is never older than that snapshot.
        What is remembered must be treated as immutable by the caller."""
        if self._memo is None or self.conn.total_changes != self._memo_changes:
            return compute()  # a write transaction, or a read that wrote: what it sees is not the memo's
        try:
            return cast(_T, self._memo[key])
        except KeyError:
            value = self._memo[key] = compute()
            return value

    # ---- status and account -------------------------------------------------------------------------
    def status(self) -> Status:
        return self.cached("status", self._read_status)

    def _read_status(self) -> Status:
        row = self.conn.execute(f"SELECT {', '.join(_STATUS_COLUMNS)} FROM status WHERE id = 1").fetchone()
        if row is None:
            raise FileNotFoundError("terminal database has no status row")
        values = dict(zip(_STATUS_COLUMNS, row, strict=True))
        values["account"] = json.loads(values["account"])
        values["pinned"] = json.loads(values["pinned"])
        for flag in ("running", "connected", "autotrading", "check_margin_on_pending"):
            values[flag] = bool(values[flag])
        return Status(**values)

    def insert_status(self, **values: Any) -> None:
        values = dict(values)
        values["account"] = json.dumps(values["account"])
        values["pinned"] = json.dumps(values.get("pinned", {}))
        names = list(values)
        self.conn.execute(
            f"INSERT INTO status (id, {', '.join(names)}) VALUES (1, {', '.join('?' for _ in names)})",
            [values[n] for n in names],
        )

    def update_status(self, **values: Any) -> None:
        if not values:
            return
        for key in ("account", "pinned"):
            if key in values:
                values[key] = json.dumps(values[key])
        assignments = ", ".join(f"{name} = ?" for name in values)
        self.conn.execute(f"UPDATE status SET {assignments} WHERE id = 1", list(values.values()))

    def allocate_ticket(self) -> int:
        """The next ticket of the terminal's single sequence (orders, deals and positions share it)."""
        (ticket,) = self.conn.execute("SELECT next_ticket FROM status WHERE id = 1").fetchone()
        self.conn.execute("UPDATE status SET next_ticket = next_ticket + 1 WHERE id = 1")
        return int(ticket)

    def allocate_request_id(self) -> int:
        (request_id,) = self.conn.execute("SELECT next_request_id FROM status WHERE id = 1").fetchone()
        self.conn.execute("UPDATE status SET next_request_id = next_request_id + 1 WHERE id = 1")
        return int(request_id)

    # ---- symbols ------------------------------------------------------------------------------------
    _SYMBOL_SELECT = "SELECT spec, bid, ask, bidhigh, bidlow, askhigh, asklow, time_msc, session_open FROM symbols"

    @staticmethod
    def _symbol_row(row: Sequence[Any]) -> SymbolRow:
        spec, bid, ask, bidhigh, bidlow, askhigh, asklow, time_msc, session_open = row
        return SymbolRow(_parse_spec(spec), bid, ask, bidhigh, bidlow, askhigh, asklow, time_msc, bool(session_open))

    def symbols(self) -> list[SymbolRow]:
        rows = self.conn.execute(f"{self._SYMBOL_SELECT} ORDER BY rank").fetchall()
        return [self._symbol_row(row) for row in rows]

    def symbol(self, name: str) -> SymbolRow | None:
        return self.cached(("symbol", name), lambda: self._read_symbol(name))

    def _read_symbol(self, name: str) -> SymbolRow | None:
        row = self.conn.execute(f"{self._SYMBOL_SELECT} WHERE name = ?", (name,)).fetchone()
        return None if row is None else self._symbol_row(row)

    def insert_symbol(self, spec: dict[str, Any], bid: float, ask: float, time_msc: int) -> None:
        (rank,) = self.conn.execute("SELECT COALESCE(MAX(rank), 0) + 1 FROM symbols").fetchone()
        self.conn.execute(
            "INSERT INTO symbols (name, spec, bid, ask, bidhigh, bidlow, askhigh, asklow, time_msc, "
            "session_open, rank) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, 1, ?)",
            (spec["name"], json.dumps(spec), bid, ask, bid, bid, ask, ask, time_msc, rank),
        )

    def update_spec(self, name: str, spec: dict[str, Any]) -> None:
        self.conn.execute("UPDATE symbols SET spec = ? WHERE name = ?", (json.dumps(spec), name))

    def update_quote(self, name: str, bid: float, ask: float, time_msc: int) -> None:
        self.conn.execute(
            "UPDATE symbols SET bid = ?, ask = ?, time_msc = ?, bidhigh = MAX(bidhigh, ?), "
            "bidlow = MIN(bidlow, ?), askhigh = MAX(askhigh, ?), asklow = MIN(asklow, ?) WHERE name = ?",
            (bid, ask, time_msc, bid, bid, ask, ask, name),
        )

    def set_session(self, name: str, is_open: bool) -> None:
        self.conn.execute("UPDATE symbols SET session_open = ? WHERE name = ?", (int(is_open), name))

    # ---- orders -------------------------------------------------------------------------------------
    @staticmethod
    def _order(row: Sequence[Any]) -> dict[str, Any]:
        order = dict(zip(ORDER_COLUMNS, row, strict=False))
        order["magic"] = _magic_from_db(order["magic"])
        return order

    def active_orders(
        self, symbol: str | None = None, ticket: int | None = None, cached: bool = False
    ) -> list[dict[str, Any]]:
        """Placed orders (or the copy taken at the last disconnect), each with the symbol's bid and ask.

        One SELECT joined with the quotes: this is what a copier polls every 100 ms.
        """
        return [self._order_with_quote(row) for row in self._active_order_rows(symbol, ticket, cached)]

    def active_orders_as(
        self, convert: Callable[[dict[str, Any]], _T], generation: int,
        symbol: str | None = None, ticket: int | None = None, cached: bool = False,
    ) -> list[_T]:
        """``convert`` of each of ``active_orders``, remembered by this process's connection per order's ticket,
        version (moved by every change to its row), quote and the terminal's ``generation`` (a terminal created
        again numbers its orders anew): a terminal polled every few milliseconds re-reads every order after a
        change to any one, and fetching and converting each again cost ~7 us of the ~8 us per order of a read.
        The copy taken at a disconnect (``cached``) is converted whole."""
        memo = self._converted_orders
        if cached or memo is None:
            return [convert(self._order_with_quote(row)) for row in self._active_order_rows(symbol, ticket, cached)]
        keys = [(generation, *row) for row in self._active_order_rows(symbol, ticket, cached, _ORDER_VERSIONS)]
        missing = [key[1] for key in keys if key not in memo]
        if missing:
            if len(memo) + len(missing) > ROW_MEMO_BOUND:
                memo.clear()
                missing = [key[1] for key in keys]
            # Every row again when most are new (a first read), else only those.
            rows = self._active_order_rows(symbol, ticket, cached, _VERSIONED_ORDERS,
                                           only=None if len(missing) * 2 > len(keys) else missing)
            for *order, version, bid, ask in rows:
                memo[(generation, order[0], version, bid, ask)] = convert(self._order_with_quote((*order, bid, ask)))
        return [memo[key] for key in keys]

    def _active_order_rows(self, symbol: str | None, ticket: int | None, cached: bool, columns: str = "",
                           only: Sequence[int] | None = None) -> list[tuple[Any, ...]]:
        """The placed orders' ``columns`` (every order column by default), then the symbol's bid and ask;
        ``only``: of those tickets alone."""
        table = "orders_cache" if cached else "orders"
        sql = (
            f"SELECT {columns or _select_list(ORDER_COLUMNS, 'o')}, s.bid, s.ask FROM {table} o "
            "LEFT JOIN symbols s ON s.name = o.symbol WHERE o.state = ?"
        )
        params: list[Any] = [c.ORDER_STATE_PLACED]
        if symbol is not None:
            sql += " AND o.symbol = ?"
            params.append(symbol)
        elif ticket is not None:
            sql += " AND o.ticket = ?"
            params.append(ticket)
        if only is not None:
            sql += f" AND o.ticket IN ({', '.join('?' for _ in only)})"
            params.extend(only)
        return self.conn.execute(sql + " ORDER BY o.ticket", params).fetchall()

    def _order_with_quote(self, row: tuple[Any, ...]) -> dict[str, Any]:
        order = self._order(row[: len(ORDER_COLUMNS)])
        order["_bid"], order["_ask"] = row[-2] or 0.0, row[-1] or 0.0
        return order

    def order(self, ticket: int) -> dict[str, Any] | None:
        row = self.conn.execute(
            f"SELECT {_select_list(ORDER_COLUMNS)} FROM orders WHERE ticket = ?", (ticket,)
        ).fetchone()
        return None if row is None else self._order(row)

    def count_active_orders(self) -> int:
        (count,) = self.conn.execute("SELECT COUNT(*) FROM orders WHERE state = ?", (c.ORDER_STATE_PLACED,)).fetchone()
        return int(count)

    def due_orders(self, now: float) -> list[dict[str, Any]]:
        """Placed orders whose expiry time has come."""
        rows = self.conn.execute(
            f"SELECT {_select_list(ORDER_COLUMNS)} FROM orders WHERE state = ? AND expire_at > 0 "
            "AND expire_at <= ? ORDER BY ticket",
            (c.ORDER_STATE_PLACED, now),
        ).fetchall()
        return [self._order(row) for row in rows]

    def insert_order(self, order: dict[str, Any]) -> None:
        values = [order.get(name, "" if name in _TEXT_COLUMNS else 0) for name in ORDER_COLUMNS]
        values[ORDER_COLUMNS.index("magic")] = _magic_to_db(order.get("magic", 0))
        self.conn.execute(
            f"INSERT INTO orders ({_select_list(ORDER_COLUMNS)}) VALUES ({', '.join('?' for _ in values)})",
            values,
        )

    def delete_order(self, ticket: int) -> None:
        self.conn.execute("DELETE FROM orders WHERE ticket = ?", (ticket,))

    def update_order(self, ticket: int, /, **values: Any) -> None:
        assignments = ", ".join(f'"{name}" = ?' for name in values)
        self.conn.execute(f"UPDATE orders SET {assignments} WHERE ticket = ?", [*values.values(), ticket])

    def history_orders(
        self,
        *,
        date_from: int | None = None,
        date_to: int | None = None,
        ticket: int | None = None,
        position: int | None = None,
        before_ticket: int | None = None,
    ) -> list[dict[str, Any]]:
        """Finished orders by time_done range, by ticket or by position.

        `before_ticket` shows the history as it was when the ticket counter stood there: later orders and
        the orders that were still active then (kept in orders_cache) are hidden.
        """
        sql = f"SELECT {_select_list(ORDER_COLUMNS)} FROM orders WHERE state NOT IN (?, ?)"
        params: list[Any] = list(_ACTIVE_STATES)
        if ticket is not None:
            sql += " AND ticket = ?"
            params.append(ticket)
        elif position is not None:
            sql += " AND position_id = ?"
            params.append(position)
        else:
            sql += " AND time_done BETWEEN ? AND ?"
            params += [date_from, date_to]
        if before_ticket is not None:
            sql += " AND ticket < ? AND ticket NOT IN (SELECT ticket FROM orders_cache)"
            params.append(before_ticket)
        return [self._order(row) for row in self.conn.execute(sql + " ORDER BY ticket", params)]

    # ---- positions ----------------------------------------------------------------------------------
    @staticmethod
    def _position(row: Sequence[Any]) -> dict[str, Any]:
        position = dict(zip(POSITION_COLUMNS, row, strict=True))
        position["magic"] = _magic_from_db(position["magic"])
        return position

    def positions(
        self, symbol: str | None = None, ticket: int | None = None, cached: bool = False
    ) -> list[dict[str, Any]]:
        table = "positions_cache" if cached else "positions"
        sql = f"SELECT {_select_list(POSITION_COLUMNS)} FROM {table}"
        params: list[Any] = []
        if symbol is not None:
            sql += " WHERE symbol = ?"
            params.append(symbol)
        elif ticket is not None:
            sql += " WHERE ticket = ?"
            params.append(ticket)
        return [self._position(row) for row in self.conn.execute(sql + " ORDER BY ticket", params)]

    def insert_position(self, position: dict[str, Any]) -> None:
        values = [position[name] for name in POSITION_COLUMNS]
        values[POSITION_COLUMNS.index("magic")] = _magic_to_db(position["magic"])
        self.conn.execute(
            f"INSERT INTO positions ({_select_list(POSITION_COLUMNS)}) VALUES ({', '.join('?' for _ in values)})",
            values,
        )

    def update_position(self, ticket: int, /, **values: Any) -> None:
        assignments = ", ".join(f'"{name}" = ?' for name in values)
        self.conn.execute(f"UPDATE positions SET {assignments} WHERE ticket = ?", [*values.values(), ticket])

    def delete_position(self, ticket: int) -> None:
        self.conn.execute("DELETE FROM positions WHERE ticket = ?", (ticket,))

    # ---- deals --------------------------------------------------------------------------------------
    def insert_deal(self, deal: dict[str, Any]) -> None:
        values = [deal[name] for name in DEAL_COLUMNS]
        values[DEAL_COLUMNS.index("magic")] = _magic_to_db(deal["magic"])
        self.conn.execute(
            f"INSERT INTO deals ({_select_list(DEAL_COLUMNS)}) VALUES ({', '.join('?' for _ in values)})",
            values,
        )

    def deals(
        self,
        *,
        date_from: int | None = None,
        date_to: int | None = None,
        order: int | None = None,
        position: int | None = None,
        before_ticket: int | None = None,
    ) -> list[dict[str, Any]]:
        """Deals by time range, by the order that made them or by position; `before_ticket` hides later ones."""
        sql = f"SELECT {_select_list(DEAL_COLUMNS)} FROM deals WHERE 1 = 1"
        params: list[Any] = []
        if order is not None:
            sql += ' AND "order" = ?'
            params.append(order)
        elif position is not None:
            sql += " AND position_id = ?"
            params.append(position)
        else:
            sql += " AND time BETWEEN ? AND ?"
            params += [date_from, date_to]
        if before_ticket is not None:
            sql += " AND ticket < ?"
            params.append(before_ticket)
        result = []
        for row in self.conn.execute(sql + " ORDER BY ticket", params):
            deal = dict(zip(DEAL_COLUMNS, row, strict=True))
            deal["magic"] = _magic_from_db(deal["magic"])
            result.append(deal)
        return result

    # ---- the terminal's cache while disconnected ----------------------------------------------------
    def snapshot_cache(self) -> None:
        """Keep what the terminal knew at the moment it lost the trade server."""
        self.clear_cache()
        self.conn.execute("INSERT INTO orders_cache SELECT * FROM orders WHERE state = ?", (c.ORDER_STATE_PLACED,))
        self.conn.execute("INSERT INTO positions_cache SELECT * FROM positions")

    def clear_cache(self) -> None:
        self.conn.execute("DELETE FROM orders_cache")
        self.conn.execute("DELETE FROM positions_cache")

    # ---- schema -------------------------------------------------------------------------------------
    def create_schema(self) -> None:
        for table in ("orders", "orders_cache"):  # a terminal created by an older mt5sim: its orders get versions
            columns = {row[1] for row in self.conn.execute(f"PRAGMA table_info({table})")}
            if columns and "version" not in columns:
                self.conn.execute(f'ALTER TABLE {table} ADD COLUMN "version" INTEGER NOT NULL DEFAULT 0')
        for statement in SCHEMA:
            self.conn.execute(statement)
        self.conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")

    def wipe(self) -> int:
        """Delete every row; returns the previous generation (0 for a new terminal)."""
        row = self.conn.execute("SELECT generation FROM status WHERE id = 1").fetchone()
        for table in TABLES:
            self.conn.execute(f"DELETE FROM {table}")
        return 0 if row is None else int(row[0])


class _Handle:
    """One process's connection to one terminal database, with a lock serialising its threads."""

    def __init__(self, path: Path) -> None:
        self.identity = _file_identity(path)
        self.identity_checked_at = time.monotonic()
        self.lock = threading.RLock()
        # What read transactions computed (Transaction.cached), valid while the database version is unchanged:
        # PRAGMA data_version moves when another connection commits, total_changes when this one writes.
        self.memo: dict[Hashable, Any] = {}
        self.memo_version: tuple[int, int] | None = None
        self.active_memo: dict[Hashable, Any] | None = None  # the memo of the read transaction open now
        # The placed orders as converted for this connection's reads (Transaction.active_orders_as): a file
        # created again is a new connection, so its orders are never taken for the old file's.
        self.converted_orders: dict[Hashable, Any] = {}
        self.conn = sqlite3.connect(
            str(path), timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None, check_same_thread=False
        )
        self.conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        self.conn.execute("PRAGMA synchronous = NORMAL")
        if self.conn.execute("PRAGMA user_version").fetchone()[0] < SCHEMA_VERSION:
            # A terminal an older mt5sim created: brought up to this schema (idempotent: any process may do it).
            self.conn.execute("BEGIN IMMEDIATE")
            try:
                Transaction(self.conn).create_schema()
            except BaseException:
                self.conn.execute("ROLLBACK")
                raise
            self.conn.execute("COMMIT")


def _file_identity(path: str | Path) -> tuple[int, int] | None:
    try:
        stat = os.stat(path)
    except FileNotFoundError:
        return None
    return (stat.st_dev, stat.st_ino)


_handles: dict[str, _Handle] = {}
_handles_lock = threading.Lock()
# Connections inherited through fork: never used again, never closed (closing them could disturb the
# parent's locks), just kept referenced so their finalizer does not run in the child.
_inherited: list[_Handle] = []


def _forget_inherited_handles() -> None:
    """In a forked child: the parent's connections are the parent's (registered below, so no call has to ask
    for its process id: a simulated read is one PRAGMA, and a source's worker makes 25 a second). The child has
    one thread: a new lock, as a thread of the parent may have held the old one at the fork."""
    global _handles_lock
    _handles_lock = threading.Lock()
    _inherited.extend(_handles.values())
    _handles.clear()


if sys.platform != "win32":
    os.register_at_fork(after_in_child=_forget_inherited_handles)


class Store:
    """The database of the terminal in `directory`."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.path = directory / DB_NAME
        self._key = str(self.path)

    @staticmethod
    def exists(directory: Path) -> bool:
        return (directory / DB_NAME).is_file()

    def _handle(self, trusted_for: float = 0.0) -> _Handle:
        """This process's connection to the database; reopened when the file is another one than it opened
        (checked unless it was within ``trusted_for`` seconds)."""
        key = self._key
        with _handles_lock:
            handle = _handles.get(key)
            if handle is not None and not (trusted_for and time.monotonic() - handle.identity_checked_at < trusted_for):
                if handle.identity == _file_identity(key):
                    handle.identity_checked_at = time.monotonic()
                else:
                    # The directory was deleted and the terminal created again: the old file is gone.
                    handle.conn.close()
                    handle = None
            if handle is None:
                if not self.path.is_file():
                    raise FileNotFoundError(f"no simulated terminal in {self.directory}")
                handle = _Handle(self.path)
                _handles[key] = handle
            return handle

    @contextmanager
    def _transaction(self, begin: str) -> Iterator[Transaction]:
        handle = self._handle()
        with handle.lock:
            if handle.conn.in_transaction:
                # Nested use on the same thread joins the transaction already open (and its memo, if a read's).
                yield Transaction(handle.conn, handle.active_memo, handle.converted_orders)
                return
            handle.conn.execute(begin)
            if begin == "BEGIN":
                # The pragma is the snapshot's first read, so it starts the snapshot: the version it returns is
                # the version every SELECT of this transaction sees.
                version = (handle.conn.execute("PRAGMA data_version").fetchone()[0], handle.conn.total_changes)
                if version != handle.memo_version:
                    handle.memo, handle.memo_version = {}, version
                handle.active_memo = handle.memo
            try:
                yield Transaction(handle.conn, handle.active_memo, handle.converted_orders)
            except BaseException:
                handle.conn.execute("ROLLBACK")
                raise
            finally:
                handle.active_memo = None
            handle.conn.execute("COMMIT")

    def remembered(self, key: Hashable) -> Any | None:
        """What a read transaction remembered under ``key`` (Transaction.cached), if the database has not changed
        since; None otherwise. One PRAGMA, no transaction: the cheapest way to learn that nothing changed."""
        handle = self._handle(trusted_for=IDENTITY_TRUSTED_SECONDS)
        with handle.lock:
            if handle.conn.in_transaction or handle.memo_version is None:
                return None
            version = (handle.conn.execute("PRAGMA data_version").fetchone()[0], handle.conn.total_changes)
            return handle.memo.get(key) if version == handle.memo_version else None

    def read(self) -> AbstractContextManager[Transaction]:
        """A consistent snapshot for several SELECTs (WAL readers never block the writer)."""
        return self._transaction("BEGIN")

    def write(self) -> AbstractContextManager[Transaction]:
        """An exclusive write transaction: the unit of every change."""
        return self._transaction("BEGIN IMMEDIATE")

    def initialise(self) -> None:
        """Create the database file in WAL mode with the schema (idempotent)."""
        self.directory.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(str(self.path), timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None)
        try:
            conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
            conn.execute("PRAGMA journal_mode = WAL")
            conn.execute("BEGIN IMMEDIATE")
            Transaction(conn).create_schema()
            conn.execute("COMMIT")
        finally:
            conn.close()
        if self._key in _handles:
            self._handle()  # a connection this process kept to a file deleted before is closed now
