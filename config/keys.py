"""Every key the config file accepts, with its type, default, limits and meaning.

To add a key: add a ``Field`` here, a field to the matching dataclass in ``config/model.py``, a line in
``config/loader.py`` that copies it across, and the key to ``config/example.toml`` (a test checks that
the example mentions every key).
"""

from __future__ import annotations

import re

from .endpoints import bind_endpoint_problem
from .model import (
    Backend,
    ExpirationFallback,
    OrderKind,
    OrphanPolicy,
    OutOfBounds,
    PriceMode,
    VolumeMode,
    VolumeRounding,
)
from .schema import (
    ArrayOfTables,
    Boolean,
    Choice,
    Field,
    Integer,
    ListOf,
    MapOf,
    Number,
    String,
    Table,
)

LOG_LEVELS = ("TRACE", "DEBUG", "INFO", "SUCCESS", "WARNING", "ERROR", "CRITICAL")

_TERMINAL_NAME = re.compile(r"[A-Za-z0-9_.-]{1,64}")
_ENV_VAR_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
# Names become file names; Windows refuses these whatever the extension.
_WINDOWS_RESERVED = frozenset(
    ["CON", "PRN", "AUX", "NUL"] + [f"{port}{n}" for port in ("COM", "LPT") for n in range(1, 10)]
)


def _terminal_name_problem(name: str) -> str | None:
    if set(name) == {"."}:
        return f"must not consist of dots only (it is used in file names), got {name!r}"
    if name.split(".")[0].upper() in _WINDOWS_RESERVED:
        return f"must not be a name Windows reserves for devices (it is used in file names), got {name!r}"
    return None


COORDINATOR = Table(
    fields=(
        Field(
            name="bind",
            spec=String(non_empty=True, check=bind_endpoint_problem),
            default="tcp://127.0.0.1:5757",
            description="ZeroMQ endpoint the coordinator binds and the workers connect to",
        ),
        Field(
            name="interval",
            spec=Number(gt=0, le=3600),
            default=5.0,
            description="seconds between full reconciliations when not running --once",
        ),
        Field(
            name="state_dir",
            spec=String(non_empty=True),
            default="state",
            description="folder for the coordinator's state; relative to the config file's folder",
        ),
        Field(
            name="hello_timeout",
            spec=Number(gt=0),
            default=30.0,
            description="seconds to wait for every worker's hello at start-up",
        ),
        Field(
            name="heartbeat_interval",
            spec=Number(gt=0, le=60),
            default=1.0,
            description="seconds between application-level pings",
        ),
        Field(
            name="worker_timeout",
            spec=Number(gt=0),
            default=10.0,
            description="a worker silent this long counts as gone; must exceed heartbeat_interval",
        ),
        Field(
            name="command_timeout",
            spec=Number(gt=0),
            default=30.0,
            description="seconds before an unanswered command's outcome counts as unknown",
        ),
        Field(
            name="log_level",
            spec=Choice(values=LOG_LEVELS, case_insensitive=True),
            default="INFO",
            description="minimum level logged (case-insensitive)",
        ),
    )
)

TERMINAL_FIELDS = (
    Field(
        name="name",
        spec=String(
            pattern=_TERMINAL_NAME,
            pattern_hint="1 to 64 characters from A-Z a-z 0-9 _ . -",
            check=_terminal_name_problem,
        ),
        required=True,
        description="unique terminal name, used as a routing id and in file names",
    ),
    Field(
        name="backend",
        spec=Choice.of_enum(Backend),
        required=True,
        description='"mt5" for a real terminal, "sim" for mt5sim',
    ),
    Field(
        name="path",
        spec=String(non_empty=True),
        required=True,
        description="terminal64.exe (mt5) or the terminal directory (sim); relative to the config file",
    ),
    Field(name="login", spec=Integer(gt=0), required=True, description="account number"),
    Field(name="server", spec=String(non_empty=True), required=True, description="broker trade server"),
    Field(
        name="password_env",
        spec=String(
            pattern=_ENV_VAR_NAME,
            pattern_hint=(
                "the NAME of an environment variable holding the password ([A-Za-z_][A-Za-z0-9_]*), "
                "not the password itself (the value is not shown)"
            ),
            secret=True,
        ),
        description="name of the environment variable holding the account password",
    ),
    Field(
        name="remote",
        spec=Boolean(),
        default=False,
        description="true: the coordinator does not spawn this worker but waits for it to connect",
    ),
    Field(
        name="poll_interval",
        spec=Number(ge=0.01, le=10),
        default=0.1,
        description="seconds between polls of the terminal's orders",
    ),
    Field(
        name="portable",
        spec=Boolean(),
        default=False,
        description="mt5 only: start the terminal with /portable",
    ),
    Field(
        name="connect_timeout",
        spec=Number(gt=0),
        default=60.0,
        description="seconds allowed for initialize() to connect to the terminal",
    ),
    Field(
        name="server_utc_offset",
        # Real brokers run on whole, half and quarter hours (UTC+5:45 exists); anything finer is a typo.
        spec=Number(ge=-12, le=14, multiple_of=0.25),
        description="hours the broker's server clock runs ahead of UTC; absent: worked out from tick times",
    ),
)

ORPHANS = Table(
    fields=(
        Field(
            name="policy",
            spec=Choice.of_enum(OrphanPolicy),
            default=OrphanPolicy.KILL,
            description='"kill": remove confirmed orphans; "preserve": leave them and report them',
        ),
        Field(
            name="check_interval",
            spec=Number(ge=0),
            default=5.0,
            description="seconds between orphan checks; 0: a check at every reconciliation",
        ),
        Field(
            name="max_checks",
            spec=Integer(ge=1),
            default=3,
            description="consecutive checks that must find the same orphan before it is killed",
        ),
    )
)

COPY_FIELDS = (
    Field(
        name="volume_mode",
        spec=Choice.of_enum(VolumeMode),
        default=VolumeMode.MULTIPLIER,
        description="how the target volume is worked out from the source volume",
    ),
    Field(
        name="lot_multiplier",
        spec=Number(gt=0),
        default=1.0,
        description="target volume = source volume x lot_multiplier (multiplier and ratio modes)",
    ),
    Field(name="fixed_lot", spec=Number(gt=0), description='the volume of every copy with volume_mode = "fixed"'),
    Field(name="min_lot", spec=Number(gt=0), description="smallest volume placed on this target"),
    Field(name="max_lot", spec=Number(gt=0), description="largest volume placed on this target"),
    Field(
        name="volume_out_of_bounds",
        spec=Choice.of_enum(OutOfBounds),
        default=OutOfBounds.CLAMP,
        description="a volume outside the bounds is clamped into them, or the order is skipped",
    ),
    Field(
        name="volume_rounding",
        spec=Choice.of_enum(VolumeRounding),
        default=VolumeRounding.DOWN,
        description="onto the broker's volume_step: down (never more than the sizing gives) or to the nearest",
    ),
    Field(
        name="scale_by_contract_size",
        spec=Boolean(),
        default=True,
        description="scale lots by source contract size / target contract size, so the notional matches",
    ),
    Field(
        name="price_mode",
        spec=Choice.of_enum(PriceMode),
        default=PriceMode.ABSOLUTE,
        description="copy the source's prices, or keep the source order's distance from the market",
    ),
    Field(
        name="expiration_fallback",
        spec=Choice.of_enum(ExpirationFallback),
        default=ExpirationFallback.GTC,
        description="when the target symbol refuses the source's expiration mode: place as GTC, or skip",
    ),
    Field(
        name="replace_deleted_copies",
        spec=Boolean(),
        default=False,
        description="true: a copy deleted by hand is placed again while its source order is pending",
    ),
    Field(
        name="keep_filled_copies",
        spec=Boolean(),
        default=False,
        description="true: copies of a filled source order stay pending instead of becoming orphans",
    ),
    Field(name="orphans", spec=ORPHANS, description="what happens to copies whose source order is gone"),
    Field(
        name="order_types",
        spec=ListOf(item=Choice.of_enum(OrderKind), non_empty=True, unique=True),
        default=tuple(OrderKind),
        description="pending order types copied to this target",
    ),
    Field(name="symbol_suffix", spec=String(), default="", description="appended to source symbols"),
    Field(name="symbol_prefix", spec=String(), default="", description="prepended to source symbols"),
    Field(
        name="max_pending_orders",
        spec=Integer(ge=0),
        description="cap on the copier's pending orders on this target; 0: no new copies, existing ones followed",
    ),
    Field(name="enabled", spec=Boolean(), default=True, description="false: copy nothing to this target"),
    Field(
        name="symbol_map",
        spec=MapOf(value=String(non_empty=True)),
        default=(),
        description="source symbol -> target symbol; wins over symbol_prefix and symbol_suffix",
    ),
)

_TERMINAL_KEY_HINTS = (
    (
        "password",
        "passwords never go in the config file: put it in an environment variable and "
        "name that variable in password_env",
    ),
)

SOURCE = Table(fields=TERMINAL_FIELDS, key_hints=_TERMINAL_KEY_HINTS)
TARGET = Table(fields=TERMINAL_FIELDS + COPY_FIELDS, key_hints=_TERMINAL_KEY_HINTS)

APP = Table(
    fields=(
        Field(name="coordinator", spec=COORDINATOR, description="the coordinator process"),
        Field(name="source", spec=SOURCE, required=True, description="the terminal whose orders are copied"),
        Field(
            name="targets",
            spec=ArrayOfTables(table=TARGET, min_items=1),
            required=True,
            description="the terminals orders are copied to",
        ),
    )
)
