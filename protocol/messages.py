"""Every message that crosses the wire, declared once as frozen, keyword-only msgspec structs.

Why msgspec: one declaration gives the type checker its types and the decoder its schema. msgspec
validates while it decodes, in C (strict msgpack: no bool where an int belongs, no float where an int
belongs, every bound of ``protocol.bounds``), names the failing field by its path (``$.orders[3].volume``),
and encodes a struct as a plain msgpack map of its fields in declaration order, byte for byte what the
hand-written codec before it sent. It is actively maintained and has no dependencies.

Field types are limited to int, bool, the bounded aliases of ``protocol.bounds`` (``Text``, ``Number``,
``Items``), the two enums below, and nested structs. A field with a default is optional on the wire, and
keys a decoder does not know are skipped (msgspec's default, kept on purpose: a newer minor version may add
fields). Times are integers: ``*_ms`` are UTC milliseconds on the sender's clock; ``server_time`` and MT5
``time_*`` fields are seconds on the broker's server clock, exactly as the terminal reports them.
Copy one with a change through ``msgspec.structs.replace`` (``dataclasses.replace`` does not take structs).
"""

from __future__ import annotations

from enum import Enum
from typing import ClassVar

from msgspec import Struct

from protocol.bounds import Items, Number, Text


class CommandKind(str, Enum):
    PLACE = "place"
    MODIFY = "modify"
    REMOVE = "remove"
    # Volume and type of a pending order cannot be modified in MT5: remove the copy ``ticket`` and place the
    # new one, in one command, so the gap between them is one broker round trip.
    REPLACE = "replace"
    # Positions (protocol 1.2). ``ticket`` is the copy's position ticket (= the ticket of the order that opened
    # it), and the worker acts only on a position carrying the copier's tag for ``source_ticket``.
    SLTP = "sltp"  # TRADE_ACTION_SLTP with both ``sl`` and ``tp`` (MT5 removes a level the request leaves at 0)
    # Close ``volume`` of the position at market (TRADE_ACTION_DEAL on ``position``), only while it still holds
    # ``expected_volume``: a close already done (or any other change) is never done twice. ``deviation`` points.
    CLOSE = "close"
    # The source's order filled while its copy is pending: remove the pending copy ``ticket`` and open the copy
    # at market (``order_type`` BUY or SELL, ``volume``, the tag), only if the entry price (ask for a buy, bid for
    # a sell) is within ``deviation`` points of ``price`` (the source's fill price); else only remove it.
    MARKET = "market"


class CommandStatus(str, Enum):
    DONE = "done"  # the broker accepted it (or, for place, an identical tagged copy already existed)
    REJECTED = "rejected"  # the broker answered with a retcode that is not success; nothing changed
    UNKNOWN = "unknown"  # the request may or may not have reached the broker: the next snapshot decides
    REFUSED = "refused"  # the worker would not send it (source role, wrong account, malformed command)
    EXPIRED = "expired"  # it arrived after its deadline and was not sent
    # Not sent: the terminal no longer holds what the command was planned on (a close already done, in part or
    # whole); plan again. (Protocol 1.2: CLOSE whose position's volume differs from ``expected_volume``; SLTP on a
    # position no longer open; MARKET whose pending copy vanished without filling.)
    STALE = "stale"


# ---- facts carried inside messages -------------------------------------------------------------
# Each struct states frozen=True, kw_only=True itself: msgspec applies kw_only only to the fields of the class
# that declares it, and type checkers follow the same rule, so a shared base class would not carry it.


class AccountFacts(Struct, frozen=True, kw_only=True):
    login: int
    server: Text
    name: Text = ""
    company: Text = ""
    currency: Text = ""
    leverage: int = 0
    balance: Number = 0.0
    equity: Number = 0.0
    margin_free: Number = 0.0
    limit_orders: int = 0
    margin_mode: int = 0
    trade_allowed: bool = True
    trade_expert: bool = True


class TerminalFacts(Struct, frozen=True, kw_only=True):
    connected: bool
    trade_allowed: bool
    tradeapi_disabled: bool = False
    build: int = 0
    name: Text = ""
    company: Text = ""
    path: Text = ""
    data_path: Text = ""


class PendingOrder(Struct, frozen=True, kw_only=True):
    """A pending order as the terminal reports it (TradeOrder, reduced to what copying needs)."""

    ticket: int
    symbol: Text
    type: int
    volume: Number  # volume_current
    price_open: Number
    price_stoplimit: Number
    sl: Number
    tp: Number
    type_time: int
    time_expiration: int
    magic: int
    comment: Text
    volume_initial: Number = 0.0
    type_filling: int = 0
    time_setup_msc: int = 0
    state: int = 1


class ClosedOrder(Struct, frozen=True, kw_only=True):
    """An order that left the pending list recently, with its final state from the terminal's history."""

    ticket: int
    symbol: Text
    type: int
    state: int  # ORDER_STATE_FILLED / CANCELED / EXPIRED / REJECTED, or -1 when history had no record yet
    magic: int
    comment: Text
    time_done_msc: int = 0
    position_id: int = 0


class PositionFacts(Struct, frozen=True, kw_only=True):
    """An open position as the terminal reports it (TradePosition, reduced to what copying needs)."""

    ticket: int
    identifier: int
    symbol: Text
    type: int  # POSITION_TYPE_BUY (0) or POSITION_TYPE_SELL (1)
    volume: Number
    magic: int
    comment: Text
    # Protocol 1.2 (0 from older workers):
    price_open: Number = 0.0
    sl: Number = 0.0
    tp: Number = 0.0
    price_current: Number = 0.0
    time_msc: int = 0


class PositionHistory(Struct, frozen=True, kw_only=True):
    """What the deals history says of one position (``position_id``: the ticket of the order that opened it)."""

    position_id: int
    closed: bool  # its closing deals took out all the volume its opening deals put in
    volume_in: Number = 0.0  # the volume its opening deals (DEAL_ENTRY_IN, and the IN of an INOUT) put in
    volume_out: Number = 0.0  # the volume its closing deals (DEAL_ENTRY_OUT, OUT_BY, the OUT of an INOUT) took out
    close_price: Number = 0.0  # the last closing deal's price
    close_reason: int = 0  # DEAL_REASON_* of the last closing deal (client, expert, SL, TP, stop out, ...)
    close_time_msc: int = 0


class Quote(Struct, frozen=True, kw_only=True):
    symbol: Text
    bid: Number
    ask: Number
    time: int = 0  # server clock seconds of the tick


class SymbolSpec(Struct, frozen=True, kw_only=True):
    """The trading specification of one symbol on one terminal (a subset of SymbolInfo)."""

    name: Text
    digits: int
    point: Number
    tick_size: Number
    contract_size: Number
    volume_min: Number
    volume_max: Number
    volume_step: Number
    volume_limit: Number
    trade_mode: int
    stops_level: int
    freeze_level: int
    expiration_mode: int
    filling_mode: int
    order_mode: int
    order_gtc_mode: int = 0
    trade_exemode: int = 0
    bid: Number = 0.0
    ask: Number = 0.0
    currency_base: Text = ""
    currency_profit: Text = ""
    currency_margin: Text = ""


class Command(Struct, frozen=True, kw_only=True):
    """One trade intent for a target terminal. Carries full desired values, never deltas."""

    command_id: Text
    kind: CommandKind
    source_ticket: int
    symbol: Text
    ticket: int = 0  # the copy's ticket for modify/remove/replace; 0 for place
    order_type: int = 0
    volume: Number = 0.0
    price: Number = 0.0
    stoplimit: Number = 0.0
    sl: Number = 0.0
    tp: Number = 0.0
    type_time: int = 0
    expiration: int = 0
    magic: int = 0
    comment: Text = ""
    deadline_ms: int = 0  # UTC ms after which the worker must not send it (0 = no deadline)
    expected_volume: Number = 0.0  # CLOSE: the position's volume the close was planned on (protocol 1.2)
    deviation: int = 0  # CLOSE, MARKET: the largest price move accepted, in the symbol's points (protocol 1.2)
    # Up to 0.2 two more fields rode here (source_volume, price_offset): the coordinator's own records, which
    # the worker ignored. They now stay in the coordinator's action; a 0.2 coordinator's batch still decodes
    # (unknown keys are skipped).


class CommandResult(Struct, frozen=True, kw_only=True):
    command_id: Text
    status: CommandStatus
    retcode: int = 0
    comment: Text = ""
    ticket: int = 0
    error_code: int = 0  # last_error() code when the API call itself failed
    error_message: Text = ""
    already_existed: bool = False  # place: a copy with this tag was already there, nothing was sent
    elapsed_ms: Number = 0.0
    price: Number = 0.0  # CLOSE, MARKET: the price the deal was done at (protocol 1.2)
    requested_price: Number = 0.0  # CLOSE: the price asked (the tick when sent); slippage is measured from it
    volume: Number = 0.0  # CLOSE, MARKET: the volume the deal was done for (protocol 1.2)


# ---- messages ----------------------------------------------------------------------------------


class Hello(Struct, frozen=True, kw_only=True):
    """Worker -> coordinator, first message on every (re)connect."""

    KIND: ClassVar[bytes] = b"hello"
    terminal: Text
    role: Text
    boot_id: Text
    protocol_minor: int
    worker_version: Text
    backend: Text
    pid: int
    host: Text
    account: AccountFacts
    terminal_facts: TerminalFacts
    server_time: int = 0
    sent_at_ms: int = 0
    # Protocol 1.3. The account the worker's own config names: the coordinator refuses a hello whose account
    # differs from its entry's ("hello-mismatch"); 0 and "" (older workers) are not checked. ``worker_file``: it
    # runs from a worker.toml, which names no role, so ``role`` is "" and the worker takes the Welcome's.
    configured_login: int = 0
    configured_server: Text = ""
    worker_file: bool = False


class Welcome(Struct, frozen=True, kw_only=True):
    """Coordinator -> worker: the hello was accepted."""

    KIND: ClassVar[bytes] = b"welcome"
    coordinator_version: Text
    protocol_minor: int
    heartbeat_interval: Number
    worker_timeout: Number
    role: Text = ""  # protocol 1.3: the terminal's role in the coordinator's config ("" from older coordinators)


class Snapshot(Struct, frozen=True, kw_only=True):
    """Worker -> coordinator: the terminal's complete pending-order state at one instant.

    Sent whenever orders, positions or connection state change, and after every command batch.
    ``seq`` grows by one per snapshot within one ``boot_id`` (one worker process).
    """

    KIND: ClassVar[bytes] = b"snapshot"
    boot_id: Text
    seq: int
    taken_at_ms: int
    login: int  # the account the terminal was logged into when the snapshot was taken (read, not configured)
    connected: bool
    trade_allowed: bool
    orders: Items[PendingOrder]
    positions: Items[PositionFacts] = ()
    closed: Items[ClosedOrder] = ()
    server_time: int = 0
    balance: Number = 0.0
    equity: Number = 0.0
    margin_free: Number = 0.0
    server: Text = ""  # with ``login``: the trade server of that account ("" from workers before protocol 1.1)


class SnapshotChanges(Struct, frozen=True, kw_only=True):
    """Worker -> coordinator (protocol 1.4, to a coordinator of 1.4 or newer): snapshot ``seq``, its orders given
    as their changes to snapshot ``base_seq`` of the same boot, the last one the worker sent: ``orders`` holds the
    orders added or edited since, ``removed`` the tickets that left (protocol/snapshot_changes.py says how the list
    is rebuilt); since 1.5 the closed orders' records too, when ``closed_as_changes`` says so. Every other field is
    whole, as in Snapshot. A coordinator that does not hold snapshot ``base_seq`` answers "snapshot-required", and
    the worker's next snapshot is whole.

    Its fields repeat Snapshot's on purpose, not by subclassing: a subclass would pass ``isinstance(m, Snapshot)``
    and be taken for a whole snapshot. protocol/snapshot_changes.py converts between the two, and a test holds
    their fields in step."""

    KIND: ClassVar[bytes] = b"snapshot_changes"
    boot_id: Text
    seq: int
    base_seq: int
    taken_at_ms: int
    login: int
    connected: bool
    trade_allowed: bool
    orders: Items[PendingOrder]
    removed: Items[int] = ()
    positions: Items[PositionFacts] = ()
    closed: Items[ClosedOrder] = ()
    server_time: int = 0
    balance: Number = 0.0
    equity: Number = 0.0
    margin_free: Number = 0.0
    server: Text = ""
    # Protocol 1.5, sent only to a coordinator of 1.5 or newer: True when ``closed`` holds the records added or
    # changed since snapshot ``base_seq`` and ``closed_removed`` the tickets of those dropped; False (a 1.4
    # worker's, or a list that would not rebuild exactly): ``closed`` is whole, as in Snapshot.
    closed_removed: Items[int] = ()
    closed_as_changes: bool = False


class SymbolRequest(Struct, frozen=True, kw_only=True):
    """Coordinator -> worker: select these symbols and describe them."""

    KIND: ClassVar[bytes] = b"symbol_request"
    request_id: Text
    symbols: Items[str]


class SymbolSpecs(Struct, frozen=True, kw_only=True):
    """Worker -> coordinator: specifications of requested symbols; ``missing`` do not exist there."""

    KIND: ClassVar[bytes] = b"symbol_specs"
    request_id: Text
    specs: Items[SymbolSpec]
    missing: Items[str] = ()


class CommandBatch(Struct, frozen=True, kw_only=True):
    KIND: ClassVar[bytes] = b"commands"
    batch_id: Text
    commands: Items[Command]


class CommandResults(Struct, frozen=True, kw_only=True):
    KIND: ClassVar[bytes] = b"results"
    batch_id: Text
    results: Items[CommandResult]
    snapshot_seq: int = 0  # the snapshot sent right after executing the batch


class Heartbeat(Struct, frozen=True, kw_only=True):
    """Both directions. From a worker it also says "snapshot ``last_seq`` is still current at ``polled_at_ms``"."""

    KIND: ClassVar[bytes] = b"heartbeat"
    sent_at_ms: int
    boot_id: Text = ""
    last_seq: int = 0
    polled_at_ms: int = 0
    connected: bool = True  # the worker holds its terminal link (the broker connection is in snapshots)
    server_time: int = 0  # the broker server's clock (seconds) from the freshest tick the worker saw
    quotes: Items[Quote] = ()  # current prices of the symbols the coordinator asked about
    # The account's figures at the last poll (protocol 1.3): they move with the market while nothing else
    # changes, and a snapshot is sent only on a change, so the risk guards read them from here.
    balance: Number = 0.0
    equity: Number = 0.0


class HistoryRequest(Struct, frozen=True, kw_only=True):
    """Coordinator -> worker: what became of these orders (no longer pending, fate unknown), and of these
    positions (no longer open, or about to be acted on)?"""

    KIND: ClassVar[bytes] = b"history_request"
    request_id: Text
    tickets: Items[int]
    positions: Items[int] = ()  # position ids (protocol 1.2)


class HistoryReport(Struct, frozen=True, kw_only=True):
    """Worker -> coordinator: the history of requested orders; ``unknown`` ones have no record."""

    KIND: ClassVar[bytes] = b"history_report"
    request_id: Text
    orders: Items[ClosedOrder]
    unknown: Items[int] = ()
    positions: Items[PositionHistory] = ()  # protocol 1.2
    unknown_positions: Items[int] = ()  # position ids the deals history has no deal of


# Why a Shutdown is sent (protocol 1.3). Plain strings on the wire, not an enum: a code this side does not know
# must not make the whole message undecodable.
SHUTDOWN_COORDINATOR_STOPPING = "coordinator-stopping"
SHUTDOWN_TERMINAL_REMOVED = "terminal-removed"


class Shutdown(Struct, frozen=True, kw_only=True):
    """Coordinator -> worker: finish what you are doing and exit.

    ``code`` says why, and so which workers exit. ``SHUTDOWN_COORDINATOR_STOPPING``, and "" from coordinators
    before 1.3: a worker the coordinator started exits (0); a worker started by hand (another machine, a
    service) stays up, keeps its terminal and waits for the coordinator to come back. Coordinators from 1.3
    on send it only to the workers they started. ``SHUTDOWN_TERMINAL_REMOVED``: the coordinator's config no
    longer runs this terminal (removed, or a target disabled): every worker exits (0), a service for good.
    """

    KIND: ClassVar[bytes] = b"shutdown"
    reason: Text
    code: Text = ""


class Goodbye(Struct, frozen=True, kw_only=True):
    """Worker -> coordinator: I am exiting (graceful stop or fatal error)."""

    KIND: ClassVar[bytes] = b"goodbye"
    reason: Text
    exit_code: int = 0


class ErrorMessage(Struct, frozen=True, kw_only=True):
    """Either direction: something was wrong with what the peer sent or with the peer itself."""

    KIND: ClassVar[bytes] = b"error"
    code: Text  # e.g. "hello-required", "identity-mismatch", "unknown-terminal", "duplicate-worker"
    message: Text
    fatal: bool = False  # the receiver should stop and not retry (configuration problem)
    # From a worker: who says it. A worker that cannot reach its terminal reports that before any hello, and
    # the coordinator's routing ids are its own, so the message names the terminal and the worker process.
    terminal: Text = ""
    boot_id: Text = ""


Message = (
    Hello
    | Welcome
    | Snapshot
    | SnapshotChanges
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

MESSAGE_TYPES: dict[bytes, type[Message]] = {
    cls.KIND: cls
    for cls in (
        Hello,
        Welcome,
        Snapshot,
        SnapshotChanges,
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
