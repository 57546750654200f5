"""What the coordinator knows about each terminal, as reported by its worker."""

from __future__ import annotations

from dataclasses import dataclass, field

from config import TargetConfig, TerminalConfig
from coordinator.runtime.fact_requests import FactRequests
from protocol import ClosedOrder, Hello, PositionHistory, Quote, Snapshot, SymbolSpec


@dataclass
class TerminalView:
    config: TerminalConfig
    target: TargetConfig | None = None
    welcomed: bool = False
    online: bool = False
    boot_id: str = ""
    hello: Hello | None = None
    welcomed_at: float = 0.0  # monotonic
    clock_skew_ms: int = 0  # the worker's clock minus ours, from its last heartbeat
    offset_measured_at: float = 0.0  # monotonic: when server_offset was last confirmed
    snapshot: Snapshot | None = None
    confirmed_at: float = 0.0  # monotonic: when the snapshot was last confirmed current
    last_seen: float = 0.0
    last_error: str = ""
    specs: dict[str, SymbolSpec] = field(default_factory=dict)
    missing_symbols: set[str] = field(default_factory=set)
    quotes: dict[str, Quote] = field(default_factory=dict)
    # symbol -> the last tick's time when the broker said its market is closed (None: no tick seen yet)
    closed_markets: dict[str, int | None] = field(default_factory=dict)
    server_offset: int | None = None  # seconds the broker's server clock runs ahead of UTC
    closed: dict[int, ClosedOrder] = field(default_factory=dict)  # fates of orders that left the pending list
    # What the deals say of positions asked about (by position id); ids with no deal at all.
    position_history: dict[int, PositionHistory] = field(default_factory=dict)
    positions_without_deals: set[int] = field(default_factory=set)
    requests: FactRequests = field(default_factory=FactRequests)  # questions to its worker not answered yet
    last_sync_at: float = 0.0  # unix time of the last completed plan
    terminal_link_ok: bool = True  # the worker can reach its terminal (it says so in heartbeats)
    # Set when the worker reported a failure that will not mend itself within seconds (terminal not found,
    # authorization failed, the terminal not answering): a --once run stops waiting for it. Cleared on hello.
    definite_failure: str = ""
    restarts: int = 0  # worker restarts during this coordinator's life (set by the runner from its supervisor)
    account: str = ""  # "login@server" the terminal last reported being logged into ("" = not reported yet)
    account_problem: str = ""  # set while that is not the configured account: every decision on it is frozen
    balance: float = 0.0  # the account's figures, last reported (0, 0: not yet)
    equity: float = 0.0
    # The link, for status (see WorkerSessions.note_welcome for what counts as a reconnect).
    ever_welcomed: bool = False  # welcomed at least once during this coordinator's life
    connected_since: float = 0.0  # unix time of the welcome that opened the current link (0 = never)
    reconnects: int = 0  # welcomes after the first that were a new link or a new worker process
    spoke_since_welcome: bool = False  # sent something besides a hello since its last welcome
    hello_asked: bool = False  # the coordinator asked it to say hello again on its link (a reload changed its entry)

    def note_account_figures(self, balance: float, equity: float) -> None:
        """The account's balance and equity as the worker last reported them (a snapshot or a heartbeat: the
        equity moves with the market between snapshots). All zero is "not reported" and changes nothing."""
        if balance or equity:
            self.balance, self.equity = balance, equity

    @property
    def name(self) -> str:
        return self.config.name

    @property
    def protocol_minor(self) -> int:
        """The protocol minor its worker speaks (0 before its hello)."""
        return self.hello.protocol_minor if self.hello is not None else 0

    @property
    def margin_mode(self) -> int | None:
        """ACCOUNT_MARGIN_MODE_* of its account, from its worker's hello (None before it)."""
        return self.hello.account.margin_mode if self.hello is not None else None

    def fresh(self, now: float, max_age: float) -> bool:
        """A snapshot the coordinator may act on: from the current worker boot, recently confirmed."""
        return (
            self.online
            and self.snapshot is not None
            and self.snapshot.boot_id == self.boot_id
            and now - self.confirmed_at <= max_age
        )

    def report_account(self, login: int, server: str) -> bool:
        """Record the account the terminal says it is logged into (``server`` "" when the worker did not say);
        True when whether it is the configured one changed."""
        config = self.config
        self.account = f"{login}@{server or config.server}"
        wrong = login != config.login or (bool(server) and server != config.server)
        problem = (f"terminal {self.name} is logged into account {self.account}, configured "
                   f"{config.login}@{config.server}: nothing is copied from or to it until the right account "
                   "is back") if wrong else ""
        changed = bool(problem) != bool(self.account_problem)
        self.account_problem = problem
        return changed

    def tradeable(self) -> tuple[bool, str]:
        snapshot = self.snapshot
        if snapshot is None:
            return False, "no snapshot yet"
        if self.account_problem:
            return False, self.account_problem
        if not self.terminal_link_ok:
            return False, self.last_error or "the worker lost its terminal"
        if not snapshot.connected:
            return False, "terminal not connected to its broker"
        if not snapshot.trade_allowed:
            return False, "trading not allowed (AutoTrading off, or the account may not trade)"
        return True, ""

    def forget_boot(self) -> None:
        self.welcomed = False
        self.snapshot = None
        self.requests.new_worker()
