"""Every message that crosses the wire, as frozen dataclasses.

Field types are limited to what the codec validates: int, float, str, bool, nested message structs,
``tuple[X, ...]`` of those, and ``X | None``. A field with a default is optional on the wire.
Times are integers: ``*_ms`` are UTC milliseconds on the sender's clock; ``server_time`` and MT5
``time_*`` fields are seconds on the broker's server clock, exactly as the terminal reports them.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import ClassVar

_struct = dataclass(frozen=True, slots=True, kw_only=True)


class CommandKind(str, Enum):
    PLACE = "place"
    MODIFY = "modify"
    REMOVE = "remove"
    # Volume and type of a pending order cannot be modified in MT5: remove the copy ``ticket`` and place the
    # new one, in one command, so the gap between them is one broker round trip.
    REPLACE = "replace"


class CommandStatus(str, Enum):
    DONE = "done"  # the broker accepted it (or, for place, an identical tagged copy already existed)
    REJECTED = "rejected"  # the broker answered with a retcode that is not success; nothing changed
    UNKNOWN = "unknown"  # the request may or may not have reached the broker: the next snapshot decides
    REFUSED = "refused"  # the worker would not send it (source role, wrong account, malformed command)
    EXPIRED = "expired"  # it arrived after its deadline and was not sent


# ---- facts carried inside messages -------------------------------------------------------------


@_struct
class AccountFacts:
    login: int
    server: str
    name: str = ""
    company: str = ""
    currency: str = ""
    leverage: int = 0
    balance: float = 0.0
    equity: float = 0.0
    margin_free: float = 0.0
    limit_orders: int = 0
    margin_mode: int = 0
    trade_allowed: bool = True
    trade_expert: bool = True


@_struct
class TerminalFacts:
    connected: bool
    trade_allowed: bool
    tradeapi_disabled: bool = False
    build: int = 0
    name: str = ""
    company: str = ""
    path: str = ""
    data_path: str = ""


@_struct
class PendingOrder:
    """A pending order as the terminal reports it (TradeOrder, reduced to what copying needs)."""

    ticket: int
    symbol: str
    type: int
    volume: float  # volume_current
    price_open: float
    price_stoplimit: float
    sl: float
    tp: float
    type_time: int
    time_expiration: int
    magic: int
    comment: str
    volume_initial: float = 0.0
    type_filling: int = 0
    time_setup_msc: int = 0
    state: int = 1


@_struct
class ClosedOrder:
    """An order that left the pending list recently, with its final state from the terminal's history."""

    ticket: int
    symbol: str
    type: int
    state: int  # ORDER_STATE_FILLED / CANCELED / EXPIRED / REJECTED, or -1 when history had no record yet
    magic: int
    comment: str
    time_done_msc: int = 0
    position_id: int = 0


@_struct
class PositionFacts:
    ticket: int
    identifier: int
    symbol: str
    type: int
    volume: float
    magic: int
    comment: str


@_struct
class Quote:
    symbol: str
    bid: float
    ask: float
    time: int = 0  # server clock seconds of the tick


@_struct
class SymbolSpec:
    """The trading specification of one symbol on one terminal (a subset of SymbolInfo)."""

    name: str
    digits: int
    point: float
    tick_size: float
    contract_size: float
    volume_min: float
    volume_max: float
    volume_step: float
    volume_limit: float
    trade_mode: int
    stops_level: int
    freeze_level: int
    expiration_mode: int
    filling_mode: int
    order_mode: int
    order_gtc_mode: int = 0
    trade_exemode: int = 0
    bid: float = 0.0
    ask: float = 0.0
    currency_base: str = ""
    currency_profit: str = ""
    currency_margin: str = ""


@_struct
class Command:
    """One trade intent for a target terminal. Carries full desired values, never deltas."""

    command_id: str
    kind: CommandKind
    source_ticket: int
    symbol: str
    ticket: int = 0  # the copy's ticket for modify/remove/replace; 0 for place
    order_type: int = 0
    volume: float = 0.0
    price: float = 0.0
    stoplimit: float = 0.0
    sl: float = 0.0
    tp: float = 0.0
    type_time: int = 0
    expiration: int = 0
    magic: int = 0
    comment: str = ""
    deadline_ms: int = 0  # UTC ms after which the worker must not send it (0 = no deadline)
    # Recorded by the coordinator with the copy (what it was sized from, how far it sits from the source
    # price); the worker ignores them.
    source_volume: float = 0.0
    price_offset: float = 0.0


@_struct
class CommandResult:
    command_id: str
    status: CommandStatus
    retcode: int = 0
    comment: str = ""
    ticket: int = 0
    error_code: int = 0  # last_error() code when the API call itself failed
    error_message: str = ""
    already_existed: bool = False  # place: a copy with this tag was already there, nothing was sent
    elapsed_ms: float = 0.0


# ---- messages ----------------------------------------------------------------------------------


@_struct
class Hello:
    """Worker -> coordinator, first message on every (re)connect."""

    KIND: ClassVar[bytes] = b"hello"
    terminal: str
    role: str
    boot_id: str
    protocol_minor: int
    worker_version: str
    backend: str
    pid: int
    host: str
    account: AccountFacts
    terminal_facts: TerminalFacts
    server_time: int = 0
    sent_at_ms: int = 0


@_struct
class Welcome:
    """Coordinator -> worker: the hello was accepted."""

    KIND: ClassVar[bytes] = b"welcome"
    coordinator_version: str
    protocol_minor: int
    heartbeat_interval: float
    worker_timeout: float


@_struct
class Snapshot:
    """Worker -> coordinator: the terminal's complete pending-order state at one instant.

    Sent whenever orders, positions or connection state change, and after every command batch.
    ``seq`` grows by one per snapshot within one ``boot_id`` (one worker process).
    """

    KIND: ClassVar[bytes] = b"snapshot"
    boot_id: str
    seq: int
    taken_at_ms: int
    login: int  # the account the terminal was logged into when the snapshot was taken (read, not configured)
    connected: bool
    trade_allowed: bool
    orders: tuple[PendingOrder, ...]
    positions: tuple[PositionFacts, ...] = ()
    closed: tuple[ClosedOrder, ...] = ()
    server_time: int = 0
    balance: float = 0.0
    equity: float = 0.0
    margin_free: float = 0.0
    server: str = ""  # with ``login``: the trade server of that account ("" from workers before protocol 1.1)


@_struct
class SymbolRequest:
    """Coordinator -> worker: select these symbols and describe them."""

    KIND: ClassVar[bytes] = b"symbol_request"
    request_id: str
    symbols: tuple[str, ...]


@_struct
class SymbolSpecs:
    """Worker -> coordinator: specifications of requested symbols; ``missing`` do not exist there."""

    KIND: ClassVar[bytes] = b"symbol_specs"
    request_id: str
    specs: tuple[SymbolSpec, ...]
    missing: tuple[str, ...] = ()


@_struct
class CommandBatch:
    KIND: ClassVar[bytes] = b"commands"
    batch_id: str
    commands: tuple[Command, ...]


@_struct
class CommandResults:
    KIND: ClassVar[bytes] = b"results"
    batch_id: str
    results: tuple[CommandResult, ...]
    snapshot_seq: int = 0  # the snapshot sent right after executing the batch


@_struct
class Heartbeat:
    """Both directions. From a worker it also says "snapshot ``last_seq`` is still current at ``polled_at_ms``"."""

    KIND: ClassVar[bytes] = b"heartbeat"
    sent_at_ms: int
    boot_id: str = ""
    last_seq: int = 0
    polled_at_ms: int = 0
    connected: bool = True  # the worker holds its terminal link (the broker connection is in snapshots)
    server_time: int = 0  # the broker server's clock (seconds) from the freshest tick the worker saw
    quotes: tuple[Quote, ...] = ()  # current prices of the symbols the coordinator asked about


@_struct
class HistoryRequest:
    """Coordinator -> worker: what became of these orders (no longer pending, fate unknown)?"""

    KIND: ClassVar[bytes] = b"history_request"
    request_id: str
    tickets: tuple[int, ...]


@_struct
class HistoryReport:
    """Worker -> coordinator: the history of requested orders; ``unknown`` ones have no record."""

    KIND: ClassVar[bytes] = b"history_report"
    request_id: str
    orders: tuple[ClosedOrder, ...]
    unknown: tuple[int, ...] = ()


@_struct
class Shutdown:
    """Coordinator -> worker: finish what you are doing and exit."""

    KIND: ClassVar[bytes] = b"shutdown"
    reason: str


@_struct
class Goodbye:
    """Worker -> coordinator: I am exiting (graceful stop or fatal error)."""

    KIND: ClassVar[bytes] = b"goodbye"
    reason: str
    exit_code: int = 0


@_struct
class ErrorMessage:
    """Either direction: something was wrong with what the peer sent or with the peer itself."""

    KIND: ClassVar[bytes] = b"error"
    code: str  # e.g. "hello-required", "identity-mismatch", "unknown-terminal", "duplicate-worker"
    message: str
    fatal: bool = False  # the receiver should stop and not retry (configuration problem)
    # From a worker: who says it. A worker that cannot reach its terminal reports that before any hello, and
    # the coordinator's routing ids are its own, so the message names the terminal and the worker process.
    terminal: str = ""
    boot_id: str = ""


Message = (
    Hello
    | Welcome
    | Snapshot
    | SymbolRequest
    | SymbolSpecs
    | CommandBatch
    | CommandResults
    | Heartbeat
    | HistoryRequest
    | HistoryReport
    | Shutdown
    | Goodbye
    | ErrorMessage
)

MESSAGE_TYPES: dict[bytes, type] = {
    cls.KIND: cls
    for cls in (
        Hello,
        Welcome,
        Snapshot,
        SymbolRequest,
        SymbolSpecs,
        CommandBatch,
        CommandResults,
        Heartbeat,
        HistoryRequest,
        HistoryReport,
        Shutdown,
        Goodbye,
        ErrorMessage,
    )
}
