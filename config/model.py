"""The typed, frozen configuration objects the rest of the copier reads, and the one place keys are declared.

Each key is a field declared with ``setting`` (``config/settings.py``): its type, bounds and checks, its
default and what it means. The schema the file is checked against (``config/keys.py``) and the loading
(``config/loader.py``) are derived from these declarations. To add a key: add its field to the dataclass of
its table here; the tests then ask for it in ``config/example.toml`` and in the README's configuration tables.
Cross-key rules (``max_lot >= min_lot``) live in ``config/checks.py``.

The objects are plain values: never mutated, hashable, and safe to log (no secret lives in them, only the
names of environment variables holding secrets; the one exception, the alert URLs, is left out of their repr).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from .alert_urls import URLS_ENV_HINT, url_shape_problem
from .choices import (
    Backend,
    ExpirationFallback,
    OrderKind,
    OrphanPolicy,
    OutOfBounds,
    PriceMode,
    Role,
    ScheduleClock,
    SourceClose,
    SourceFill,
    Timeframe,
    VolumeMode,
    VolumeRounding,
)
from .endpoints import bind_endpoint_problem, listen_address_problem
from .formats import (
    ENV_VAR_NAME,
    ENV_VAR_NAME_HINT,
    LOG_LEVELS,
    TERMINAL_NAME,
    TERMINAL_NAME_HINT,
    regex_problem,
    terminal_name_problem,
)
from .schema import Boolean, Choice, Integer, ListOf, MapOf, Number, SetOf, String
from .settings import config_table, path_setting, setting
from .type_mapping import order_type_mapping_problem


@config_table
class CoordinatorConfig:
    """Settings of the coordinator process ([coordinator])."""

    bind: str = setting(
        String(non_empty=True, check=bind_endpoint_problem),
        default="tcp://127.0.0.1:5757",
        doc="ZeroMQ endpoint the coordinator binds and the workers connect to",
    )
    interval: float = setting(
        Number(gt=0, le=3600),
        default=5.0,
        doc="seconds between two checks of every target's plan (each made in full once an interval, paced) when not "
            "running --once",
    )
    state_dir: Path = path_setting(  # absolute
        file_default="state",
        doc="folder for the coordinator's state; relative to the config file's folder",
    )
    hello_timeout: float = setting(
        Number(gt=0),
        default=30.0,
        doc="seconds to wait for every worker's hello at start-up",
    )
    heartbeat_interval: float = setting(
        Number(gt=0, le=60),
        default=1.0,
        doc="seconds between application-level pings",
    )
    worker_timeout: float = setting(
        Number(gt=0),
        default=10.0,
        doc="a worker silent this long counts as gone; must exceed heartbeat_interval",
    )
    command_timeout: float = setting(
        Number(gt=0),
        default=30.0,
        doc="seconds before an unanswered command's outcome counts as unknown",
    )
    log_level: str = setting(  # upper case, e.g. "INFO"
        Choice(values=LOG_LEVELS, case_insensitive=True),
        default="INFO",
        doc="minimum level logged (case-insensitive)",
    )
    # Checked at load (config/checks.py): it exists, holds a key pair, and only its owner can read it.
    secret_key_file: Path | None = path_setting(
        default=None,
        doc="the coordinator's CURVE key pair (NAME.key_secret, made by mt5-copier keys new): links are "
            "encrypted and only the terminals' keys get in; required for a bind other machines can reach",
    )
    # Copying on a schedule (coordinator/domain/schedule.py places the boundaries, coordinator/runtime/
    # schedule_gate.py holds what is planned between them). Checked together in config/checks.py.
    schedule: Timeframe | None = setting(
        Choice(values=tuple(timeframe.value for timeframe in Timeframe), case_insensitive=True, convert=Timeframe),
        default=None,
        doc="M1 M5 M15 M30 H1 H4 D1: copy only at each boundary of this timeframe (start-up included); absent: "
            "live, every change at once",
    )
    schedule_offset: int = setting(
        Integer(ge=0),
        default=0,
        doc="seconds after each boundary the scheduled run starts; less than the timeframe",
    )
    schedule_clock: ScheduleClock = setting(
        Choice.of_enum(ScheduleClock),
        default=ScheduleClock.SERVER,
        doc='"server": the boundaries of the source broker\'s server clock (D1 at its midnight); "utc": of UTC',
    )


@config_table
class AlertsConfig:
    """Where a person is told of what needs them ([alerts]); no URL: no alerts."""

    # Each URL may hold a secret: never shown (not even in a problem), and only its shape is checked at load
    # (config/alert_urls.py says why; apprise checks the rest at check-config and at the start of run).
    urls: tuple[str, ...] = setting(
        ListOf(item=String(non_empty=True, check=url_shape_problem, secret=True)),
        default=(),
        shown_default="[]",
        doc="apprise URLs alerts are sent to (tgram://, mailtos://, discord://, json://, ...)",
        secret=True,  # left out of the repr
    )
    urls_env: str | None = setting(
        String(pattern=ENV_VAR_NAME, pattern_hint=URLS_ENV_HINT, secret=True),
        default=None,
        doc="name of an environment variable holding more URLs, separated by spaces (secrets stay out of the file)",
    )
    min_interval: float = setting(
        Number(ge=0),
        default=300.0,
        doc="seconds before an alert about the same thing is sent again; the next one says how many were held back",
    )


@config_table
class MetricsConfig:
    """The coordinator's HTTP server: Prometheus metrics and the status page ([metrics]); no listen: off."""

    listen: str | None = setting(
        String(non_empty=True, check=listen_address_problem),
        default=None,
        doc='"HOST:PORT" where /metrics, the status page (/) and /api/status are served; a non-loopback host is '
            "allowed (with a warning: the page has no authentication)",
    )


@config_table
class TerminalConfig:
    """One MT5 terminal and the account logged into it ([source] or one [[targets]])."""

    name: str = setting(  # routing id and file-name stem; unique across the config
        String(pattern=TERMINAL_NAME, pattern_hint=TERMINAL_NAME_HINT, check=terminal_name_problem),
        doc="unique terminal name, used as a routing id and in file names",
    )
    role: Role  # not a key: the table it comes from
    backend: Backend = setting(
        Choice.of_enum(Backend),
        doc='"mt5" for a real terminal, "sim" for mt5sim',
    )
    path: Path = path_setting(  # absolute
        doc="terminal64.exe (mt5) or the terminal directory (sim); relative to the config file",
    )
    login: int = setting(Integer(gt=0), doc="account number")
    server: str = setting(String(non_empty=True), doc="broker trade server")
    # Only the NAME of the environment variable: the password itself is never stored, so the
    # object can be logged, printed and sent to a worker as it is.
    password_env: str | None = setting(
        String(pattern=ENV_VAR_NAME, pattern_hint=ENV_VAR_NAME_HINT, secret=True),
        default=None,
        doc="name of the environment variable holding the account password",
    )
    remote: bool = setting(
        Boolean(),
        default=False,
        doc="true: the coordinator does not spawn this worker but waits for it to connect",
    )
    public_key_file: Path | None = path_setting(
        default=None,
        doc="remote terminals, with coordinator.secret_key_file: the public key (NAME.key) of the only worker "
            "that may speak as this terminal",
    )
    poll_interval: float | None = setting(
        Number(ge=0.01, le=10),
        default=None,
        shown_default="0.1 (source), 1.0 (target)",
        doc="seconds between full reads of the terminal (orders, positions, account, connection); a target also "
            "reads at once after each batch of commands, and the source checks its pending orders every 5-40 ms "
            "between full reads",
    )
    portable: bool = setting(Boolean(), default=False, doc="mt5 only: start the terminal with /portable")
    connect_timeout: float = setting(
        Number(gt=0),
        default=60.0,
        doc="seconds allowed for initialize() to connect to the terminal",
    )
    server_utc_offset: float | None = setting(
        # Real brokers run on whole, half and quarter hours (UTC+5:45 exists); anything finer is a typo.
        Number(ge=-12, le=14, multiple_of=0.25),
        default=None,
        doc="hours the broker's server clock runs ahead of UTC; absent: worked out from tick times",
    )

    def password(self) -> str | None:
        """The password from the environment variable named by ``password_env``.

        None when no variable is configured, or when it is unset or empty.
        """
        if self.password_env is None:
            return None
        return os.environ.get(self.password_env) or None


@config_table
class OrphanSettings:
    """What happens to copies whose source order is gone ([targets.orphans])."""

    policy: OrphanPolicy = setting(
        Choice.of_enum(OrphanPolicy),
        default=OrphanPolicy.KILL,
        doc='"kill": remove confirmed orphans; "preserve": leave them and report them',
    )
    check_interval: float = setting(
        Number(ge=0),
        default=5.0,
        doc="seconds between orphan checks; 0: a check at every reconciliation",
    )
    # A source terminal that blinks (or whose snapshot briefly lacks an order) must not wipe the targets.
    max_checks: int = setting(
        Integer(ge=1),
        default=3,
        doc="consecutive checks that must find the same orphan before it is killed",
    )


@config_table
class PositionSettings:
    """How a copy's position follows its source's once both filled ([targets.positions])."""

    sync_sltp: bool = setting(
        Boolean(),
        default=True,
        doc="SL and TP of the copy's position follow the source position's",
    )
    on_source_close: SourceClose = setting(
        Choice.of_enum(SourceClose),
        default=SourceClose.CLOSE,
        doc='the source position closed: "close" the copy\'s position at market, or "keep" it open',
    )
    partial_closes: bool = setting(
        Boolean(),
        default=True,
        doc="a partial close on the source closes the same share of the copy's position",
    )
    on_source_fill: SourceFill | None = setting(  # None: as keep_filled_copies says (its default: "remove")
        Choice.of_enum(SourceFill),
        default=None,
        shown_default='"remove"',
        doc='the source order filled while its copy is pending: "remove" the copy, "keep" it, or open it at '
            '"market" within max_entry_slippage_points',
    )
    max_entry_slippage_points: int = setting(
        Integer(ge=0),
        default=20,
        doc='on_source_fill = "market": the largest distance, in target points, from the source\'s fill price',
    )
    close_deviation_points: int = setting(
        Integer(ge=0),
        default=20,
        doc="the price deviation allowed on closing deals, in target points",
    )


@config_table
class RiskSettings:
    """Risk guards on one target's account ([targets.risk]); each is off when absent."""

    max_total_volume: float | None = setting(
        Number(gt=0),
        default=None,
        doc="lots across the copier's pending copies and copy positions on this account; a copy that would pass "
            "it waits",
    )
    min_equity: float | None = setting(
        Number(gt=0),
        default=None,
        doc="account equity below it: no new copies (close-only) until it is back",
    )
    max_drawdown_percent: float | None = setting(
        Number(gt=0, lt=100),
        default=None,
        doc="equity this many percent below its peak: close-only until `mt5-copier resume`",
    )


@config_table
class FilterSettings:
    """Which source orders are copied to one target ([targets.filter]); every key left out lets every order
    through. An order is copied when it passes them all (coordinator/domain/filters.py decides)."""

    # Shell-style patterns (* ? [seq]) on the SOURCE symbol, before symbol_map and prefix/suffix; letter case
    # ignored, as the seed system's users had it by default (coordinator/domain/filters.py says why).
    symbols: tuple[str, ...] | None = setting(
        ListOf(item=String(non_empty=True), unique=True),
        default=None,
        shown_default="all",
        doc="only source orders whose symbol matches one of these shell-style patterns (\"XAU*\"); absent: all",
    )
    exclude_symbols: tuple[str, ...] = setting(
        ListOf(item=String(non_empty=True), unique=True),
        default=(),
        shown_default="[]",
        doc="never source orders whose symbol matches one of these patterns (wins over symbols)",
    )
    magics: tuple[int, ...] | None = setting(
        ListOf(item=Integer(ge=0), unique=True),
        default=None,
        shown_default="all",
        doc="only source orders with one of these magic numbers (0: placed by hand); absent: all",
    )
    exclude_magics: tuple[int, ...] = setting(
        ListOf(item=Integer(ge=0), unique=True),
        default=(),
        shown_default="[]",
        doc="never source orders with one of these magic numbers (wins over magics)",
    )
    comment_regex: str | None = setting(
        String(non_empty=True, check=regex_problem),
        default=None,
        doc="only source orders whose comment this Python regular expression finds a match in (re.search); "
            "absent: all",
    )


@config_table
class CopySettings:
    """How orders are copied onto one target (the copy keys of a [[targets]] table)."""

    volume_mode: VolumeMode = setting(
        Choice.of_enum(VolumeMode),
        default=VolumeMode.MULTIPLIER,
        doc="how the target volume is worked out from the source volume",
    )
    lot_multiplier: float = setting(
        Number(gt=0),
        default=1.0,
        doc="target volume = source volume x lot_multiplier (multiplier and ratio modes)",
    )
    fixed_lot: float | None = setting(  # set exactly when volume_mode is FIXED (config/checks.py)
        Number(gt=0),
        default=None,
        doc='the volume of every copy with volume_mode = "fixed"',
    )
    min_lot: float | None = setting(Number(gt=0), default=None, doc="smallest volume placed on this target")
    max_lot: float | None = setting(Number(gt=0), default=None, doc="largest volume placed on this target")
    volume_out_of_bounds: OutOfBounds = setting(
        Choice.of_enum(OutOfBounds),
        default=OutOfBounds.CLAMP,
        doc="a volume outside the bounds is clamped into them, or the order is skipped",
    )
    volume_rounding: VolumeRounding = setting(
        Choice.of_enum(VolumeRounding),
        default=VolumeRounding.DOWN,
        doc="onto the broker's volume_step: down (never more than the sizing gives) or to the nearest",
    )
    scale_by_contract_size: bool = setting(
        Boolean(),
        default=True,
        doc="scale lots by source contract size / target contract size, so the notional matches",
    )
    price_mode: PriceMode = setting(
        Choice.of_enum(PriceMode),
        default=PriceMode.ABSOLUTE,
        doc="copy the source's prices, or keep the source order's distance from the market",
    )
    expiration_fallback: ExpirationFallback = setting(
        Choice.of_enum(ExpirationFallback),
        default=ExpirationFallback.GTC,
        doc="when the target symbol refuses the source's expiration mode: place as GTC, or skip",
    )
    replace_deleted_copies: bool = setting(
        Boolean(),
        default=False,
        doc="true: a copy deleted by hand is placed again while its source order is pending",
    )
    # Kept from 0.2: the same as [targets.positions] on_source_fill = "keep" (true) or "remove" (false); saying
    # both is a configuration error (config/checks.py). Read ``source_fill``, which settles the two.
    keep_filled_copies: bool | None = setting(
        Boolean(),
        default=None,
        shown_default="false",
        doc='true: copies of a filled source order stay pending (as [targets.positions] on_source_fill = "keep")',
    )
    orphans: OrphanSettings = setting(
        OrphanSettings,
        default=OrphanSettings(),
        doc="what happens to copies whose source order is gone",
    )
    positions: PositionSettings = setting(
        PositionSettings,
        default=PositionSettings(),
        doc="how a copy's position follows its source's after both filled",
    )
    risk: RiskSettings = setting(
        RiskSettings,
        default=RiskSettings(),
        doc="risk guards on this target's account",
    )
    filter: FilterSettings = setting(
        FilterSettings,
        default=FilterSettings(),
        doc="which source orders are copied to this target",
    )
    order_types: frozenset[OrderKind] = setting(
        SetOf(item=Choice.of_enum(OrderKind), non_empty=True),
        default=frozenset(OrderKind),
        shown_default="all six",
        doc="pending order types copied to this target (the source order's type, before order_type_map)",
    )
    # How a copy differs from its source order: coordinator/domain/transforms.py applies these (the type map first,
    # then reverse, then copy_sl / copy_tp); config/type_mapping.py says which mappings are accepted.
    order_type_map: tuple[tuple[OrderKind, OrderKind], ...] = setting(  # sorted pairs, as symbol_map
        # A mapping that loses the trigger would place copies the broker refuses, or that trade at another moment.
        MapOf(key=Choice.of_enum(OrderKind), value=Choice.of_enum(OrderKind), check=order_type_mapping_problem),
        default=(),
        doc="source order type -> the type of its copy; accepted: a stop limit to the stop on its side (a stop at "
            "the trigger price, for brokers without stop limits)",
    )
    reverse: bool = setting(
        Boolean(),
        default=False,
        doc="the copy trades the other way, a pending order triggered at the same price (buy limit <-> sell stop, "
            "sell limit <-> buy stop), SL and TP swapped; stop limits are left out",
    )
    copy_sl: bool = setting(
        Boolean(),
        default=True,
        doc="false: copies get no stop loss from their source, and the one a copy has (set by hand) is left alone",
    )
    copy_tp: bool = setting(
        Boolean(),
        default=True,
        doc="false: copies get no take profit from their source, and the one a copy has (set by hand) is left alone",
    )
    symbol_suffix: str = setting(String(), default="", doc="appended to source symbols")
    symbol_prefix: str = setting(String(), default="", doc="prepended to source symbols")
    max_pending_orders: int | None = setting(
        Integer(ge=0),
        default=None,
        doc="cap on the copier's pending orders on this target; 0: no new copies, existing ones followed",
    )
    enabled: bool = setting(Boolean(), default=True, doc="false: copy nothing to this target")
    symbol_map: tuple[tuple[str, str], ...] = setting(  # sorted pairs: keeps the dataclass hashable and frozen
        MapOf(value=String(non_empty=True)),
        default=(),
        doc="source symbol -> target symbol; wins over symbol_prefix and symbol_suffix",
    )

    @property
    def source_fill(self) -> SourceFill:
        """What happens to a pending copy whose source order filled: on_source_fill, else keep_filled_copies."""
        if self.positions.on_source_fill is not None:
            return self.positions.on_source_fill
        return SourceFill.KEEP if self.keep_filled_copies else SourceFill.REMOVE

    def map_symbol(self, source_symbol: str) -> str:
        """The target's symbol for a source symbol: ``symbol_map`` first, else prefix + symbol + suffix."""
        for source, target in self.symbol_map:
            if source == source_symbol:
                return target
        return f"{self.symbol_prefix}{source_symbol}{self.symbol_suffix}"


# The objects below hold tables but declare no key: config/keys.py lays the file out, config/loader.py builds them.


@dataclass(frozen=True, slots=True, kw_only=True)
class TargetConfig:
    """A target terminal and how orders are copied onto it: one [[targets]] table, terminal and copy keys."""

    terminal: TerminalConfig  # role TARGET
    copy: CopySettings

    @property
    def name(self) -> str:
        """The target terminal's name."""
        return self.terminal.name


@dataclass(frozen=True, slots=True, kw_only=True)
class AppConfig:
    """The whole validated configuration."""

    path: Path | None  # the config file; None when parsed from a dict
    coordinator: CoordinatorConfig
    source: TerminalConfig  # role SOURCE
    targets: tuple[TargetConfig, ...]
    alerts: AlertsConfig = field(default_factory=AlertsConfig)  # no alerts unless the file has [alerts]
    metrics: MetricsConfig = field(default_factory=MetricsConfig)  # off unless the file has [metrics]

    def terminals(self) -> tuple[TerminalConfig, ...]:
        """Every terminal: the source first, then the targets in file order."""
        return (self.source, *(target.terminal for target in self.targets))

    def terminal(self, name: str) -> TerminalConfig:
        """The terminal called ``name``; KeyError naming the configured terminals if there is none."""
        for terminal in self.terminals():
            if terminal.name == name:
                return terminal
        known = ", ".join(terminal.name for terminal in self.terminals())
        raise KeyError(f"unknown terminal {name!r}; configured terminals: {known}")

    def target(self, name: str) -> TargetConfig:
        """The target called ``name``; KeyError if there is none (or ``name`` is the source)."""
        for target in self.targets:
            if target.name == name:
                return target
        if name == self.source.name:
            raise KeyError(f"{name!r} is the source terminal, not a target")
        known = ", ".join(target.name for target in self.targets)
        raise KeyError(f"unknown target {name!r}; configured targets: {known}")
