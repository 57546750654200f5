"""MT5-Order-Copier's ``config.py`` read without running it, and what it becomes in mt5-copier's configuration.

The seed system (MT5-Order-Copier, the sequential copier many of our users come from) is configured by a Python
file of module-level dicts. It is never executed here: ``ast.parse`` reads it, and only literal values are taken
(``ast.literal_eval`` on each value, dict by dict, so one expression somewhere costs that value alone, named by
its line). Both of its layouts are read: ``login``/``password``/``server``/``path``/``timeout`` (its sample file)
and ``MT5_ACCOUNT``/``MT5_PASSWORD``/``MT5_SERVER``/``MT5_TERMINAL_PATH`` (its feature spec).

The result is the TOML document as a dict (``SeedImport.document``), with the notes saying what was not carried
over and why, and the environment variables that must hold the passwords: a password is never written anywhere,
nor put in a note. What the document says is settled by the copier's own validation (``parse_config``), not by a
copy of its rules here: a value the copier refuses is left out with the copier's reason as a note, so the file
written always loads. Nothing here touches a file; ``coordinator/cli/import_config.py`` is the command.
"""

from __future__ import annotations

import ast
import ntpath
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path, PureWindowsPath
from typing import Any

from .choices import OrderKind, Timeframe
from .errors import ConfigError
from .formats import ENV_VAR_NAME, TERMINAL_NAME, terminal_name_problem
from .loader import parse_config
from .schema import index_path, key_path

SEED = "MT5-Order-Copier"
SOURCE_NAME = "source"  # the seed's source terminal has no name
DEFAULT_BIND = "tcp://127.0.0.1:5757"  # loopback: the workers run on this machine, as the seed's terminals did

# A terminal's connection keys in both layouts (the first spelling is the sample file's).
_LOGIN, _PASSWORD, _SERVER, _PATH, _TIMEOUT = (
    ("login", "MT5_ACCOUNT"),
    ("password", "MT5_PASSWORD"),
    ("server", "MT5_SERVER"),
    ("path", "MT5_TERMINAL_PATH"),
    ("timeout", "MT5_TIMEOUT"),
)
_CONNECTION_KEYS = frozenset(_LOGIN + _PASSWORD + _SERVER + _PATH + _TIMEOUT)
_COPY_KEYS = frozenset({"lot_multiplier", "min_lot_size", "max_lot_size", "allowed_order_types", "symbol_mapping",
                        "orphan_management", "max_pending_orders"})
_ORPHAN_KEYS = frozenset({"kill_orphaned_orders", "max_orphan_checks", "orphan_check_interval",
                          "kill_orphaned_positions"})
# A terminal's keys the copier cannot do without: a problem with one of them means no file (never left out).
_TERMINAL_KEYS = frozenset({"name", "backend", "path", "login", "server", "password_env"})

# Module-level names read, besides the terminals and the schedule; each says why it is not carried over.
_TIMEFRAMES = tuple(timeframe.value for timeframe in Timeframe)

_NOT_CARRIED = {
    "LOGGING_CONFIG": "mt5-copier writes its own logs: state_dir/logs/coordinator.log and one file per worker, rotated "
                      "at 20 MB, 10 kept, always at DEBUG; the console shows [coordinator] log_level",
    "SYSTEM_CONFIG": "mt5-copier keeps its state in state_dir/copier.db (MT5-Order-Copier's state file is not read), "
                     "reconnects to a terminal for as long as it runs, and compares prices in the target's ticks and "
                     "volumes in its steps; its timeouts are [coordinator] command_timeout and each terminal's "
                     "connect_timeout",
    "PERFORMANCE_CONFIG": "mt5-copier runs one worker per terminal, all at once; there is nothing to batch or cache "
                          "by hand",
    "NOTIFICATION_CONFIG": "alerts go to [alerts] urls, apprise URLs (mailtos://USER:PASSWORD@HOST for e-mail, "
                           "json://HOST/PATH or a service's own URL for a webhook); its SMTP password and webhook URL "
                           "are not copied: put such URLs in the environment variable [alerts] urls_env names",
    "DEVELOPMENT_CONFIG": "for a dry run, mt5-copier run --config FILE --once --dry-run prints what it would place, "
                          "modify or remove and sends nothing; to try it without a broker: mt5-copier demo",
    "VALIDATION_RULES": "mt5-copier checks every key at every start (and mt5-copier check-config does on demand)",
}
_SEED_DID_NOT_APPLY = (f"{SEED}'s own code never applied {{name}}; mt5-copier does, so check that it says what you "
                       "want")


class SeedConfigError(Exception):
    """The file cannot be read as a seed configuration: ``problems`` says why, line by line (never a value)."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__(problems)
        self.problems = problems

    def __str__(self) -> str:
        return "\n".join(self.problems)


@dataclass(frozen=True, slots=True)
class Note:
    """Something not carried over, or carried over differently, and why."""

    text: str
    terminal: str | None = None  # the terminal it is about (its name in the TOML); None: the whole file


@dataclass(frozen=True, slots=True)
class PasswordVariable:
    """An environment variable that must hold a terminal's password (named by the terminal's password_env)."""

    variable: str
    terminal: str
    login: object  # as config.py has it (an int, normally)
    server: object
    line: int  # where config.py gives the password
    from_environment: bool  # config.py already read it from this variable (os.getenv and alike)


@dataclass(frozen=True, slots=True)
class SeedImport:
    """What a seed config.py becomes: the TOML document (it passes the copier's validation), notes, passwords."""

    document: dict[str, Any]
    notes: tuple[Note, ...]
    passwords: tuple[PasswordVariable, ...]
    layout: str  # which of the seed's two layouts the terminals use


# --- Reading config.py -------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class NotLiteral:
    """A value Python would have to run (a call, a name, arithmetic): not read."""

    line: int
    env_var: str | None = None  # os.getenv("NAME") and alike: the variable it reads


class SeedDict(dict[Any, Any]):
    """A dict literal of config.py, with the line of each of its values."""

    def __init__(self, line: int) -> None:
        super().__init__()
        self.line = line
        self.lines: dict[Any, int] = {}


@dataclass(frozen=True, slots=True)
class _Assigned:
    value: Any
    line: int


def read_seed_module(text: str, filename: str = "config.py") -> tuple[dict[str, _Assigned], list[Note]]:
    """Every module-level ``NAME = value`` of the file (the last one wins, as in Python), and notes on changes made
    to the names read after their assignment (``TARGET_TERMINALS['x'] = ...``), which are not followed."""
    try:
        tree = ast.parse(text, filename)
    except SyntaxError as e:
        where = f" at line {e.lineno}" if e.lineno else ""
        raise SeedConfigError([f"{filename} is not valid Python: {e.msg}{where}"]) from None
    except ValueError as e:  # null bytes, before Python 3.12
        raise SeedConfigError([f"{filename} is not valid Python: {e}"]) from None
    names: dict[str, _Assigned] = {}
    notes: list[Note] = []
    for statement in tree.body:
        if isinstance(statement, ast.Assign):
            targets, value = statement.targets, statement.value
        elif isinstance(statement, ast.AnnAssign) and statement.value is not None:
            targets, value = [statement.target], statement.value
        elif isinstance(statement, ast.AugAssign):
            targets, value = [statement.target], None
        elif isinstance(statement, ast.Expr) and isinstance(statement.value, ast.Call):
            targets, value = [statement.value.func], None  # TARGET_TERMINALS.update(...)
        else:
            continue
        for target in targets:
            if isinstance(target, ast.Name) and value is not None:
                names[target.id] = _Assigned(_evaluate(value), statement.lineno)
                continue
            changed = _base_name(target)
            if changed in _READ_NAMES:
                notes.append(Note(f"line {statement.lineno} changes {changed} after it is assigned: not followed (only "
                                  f"{changed} = {{...}} itself is read); put the change in that literal"))
    return names, notes


def _evaluate(node: ast.expr) -> Any:
    """The literal value of ``node``, dicts and lists entry by entry, with ``NotLiteral`` where Python would run."""
    if isinstance(node, ast.Dict):
        result = SeedDict(node.lineno)
        for key_node, value_node in zip(node.keys, node.values, strict=True):
            key = _evaluate(key_node) if key_node is not None else None
            if key is None or isinstance(key, (NotLiteral, SeedDict, list)):
                return NotLiteral(node.lineno)  # {**other}, {NAME: ...}: the dict is Python's to build
            result[key] = _evaluate(value_node)
            result.lines[key] = value_node.lineno
        return result
    if isinstance(node, (ast.List, ast.Tuple)):
        return [_evaluate(item) for item in node.elts]
    try:
        return ast.literal_eval(node)
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
        return NotLiteral(node.lineno, _environment_variable(node))


def _environment_variable(node: ast.expr) -> str | None:
    """NAME for ``os.getenv("NAME")``, ``os.environ.get("NAME", ...)``, ``os.environ["NAME"]`` (and without os.)."""
    if isinstance(node, ast.Call) and node.args and _dotted(node.func) in (
            "os.getenv", "getenv", "os.environ.get", "environ.get"):
        argument = node.args[0]
    elif isinstance(node, ast.Subscript) and _dotted(node.value) in ("os.environ", "environ"):
        argument = node.slice
    else:
        return None
    if isinstance(argument, ast.Constant) and isinstance(argument.value, str) and ENV_VAR_NAME.fullmatch(
            argument.value):
        return argument.value
    return None


def _dotted(node: ast.expr) -> str:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return f"{_dotted(node.value)}.{node.attr}"
    return ""


def _base_name(node: ast.expr) -> str:
    while isinstance(node, (ast.Subscript, ast.Attribute)):
        node = node.value
    return node.id if isinstance(node, ast.Name) else ""


_READ_NAMES = frozenset({
    "SOURCE_TERMINAL", "TARGET_TERMINALS", "ENABLE_SCHEDULING", "SCHEDULE_TIMEFRAME", "SCHEDULE_OFFSET_SECONDS",
    "SCHEDULED_EXECUTION", "ENABLE_CONTINUOUS_MODE", "CONTINUOUS_DELAY_SECONDS", "CONTINUOUS_MAX_RUNTIME_HOURS",
    "ORDER_TYPE_MAPPINGS", "SYMBOL_FILTERS", *_NOT_CARRIED, *_LOGIN, *_PASSWORD, *_SERVER, *_PATH, *_TIMEOUT,
})


# --- Mapping onto mt5-copier's keys ------------------------------------------------------------------------------


@dataclass
class _Import:
    """The document being built, with where each of its values came from in config.py."""

    names: dict[str, _Assigned]
    filename: str
    document: dict[str, Any] = field(default_factory=dict)
    origins: dict[tuple[Any, ...], str] = field(default_factory=dict)  # key path in the document -> "X['y'] (line 3)"
    notes: list[Note] = field(default_factory=list)
    passwords: list[PasswordVariable] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    taken_names: set[str] = field(default_factory=set)  # case-folded: names become file names
    taken_variables: set[str] = field(default_factory=set)

    def note(self, text: str, terminal: str | None = None) -> None:
        self.notes.append(Note(text, terminal))

    def value(self, name: str) -> Any:
        assigned = self.names.get(name)
        return None if assigned is None else assigned.value

    def line(self, name: str) -> int:
        return self.names[name].line


def import_seed_config(text: str, *, filename: str = "config.py", base_dir: Path = Path()) -> SeedImport:
    """What the seed config ``text`` becomes; ``SeedConfigError`` when it cannot be read as one (no terminals, not
    Python, a terminal without its account, a value the copier cannot do without). ``base_dir`` is where the TOML
    will live (relative paths in it resolve there)."""
    names, notes = read_seed_module(text, filename)
    state = _Import(names=names, filename=filename, notes=list(notes))
    source_entry, source_where = _source_entry(state)
    targets = _target_entries(state)
    if state.errors:
        raise SeedConfigError(state.errors)
    layout = _layout([source_entry, *(entry for _, entry, _ in targets)])
    state.document["coordinator"] = _coordinator(state)
    state.taken_names.add(SOURCE_NAME.casefold())
    state.document["source"] = _terminal(state, source_entry, source_where, SOURCE_NAME, ("source",))
    state.document["targets"] = []
    for index, (seed_name, entry, where) in enumerate(targets):
        name = _target_name(state, seed_name, where)
        target = _terminal(state, entry, where, name, ("targets", index))
        target.update(_copy_settings(state, entry, where, name, ("targets", index)))
        state.document["targets"].append(target)
    if state.errors:
        raise SeedConfigError(state.errors)
    _own_terminal_paths(state)
    _global_filters(state)
    _global_type_mappings(state)
    _settle_with_validation(state, base_dir)
    _not_carried(state)
    _drop_empty_tables(state.document)
    order = {None: 0} | {terminal["name"]: index + 1 for index, terminal in enumerate(_terminals(state.document))}
    notes = sorted(state.notes, key=lambda note: order.get(note.terminal, 0))  # stable: each group keeps its order
    return SeedImport(document=state.document, notes=tuple(notes), passwords=tuple(state.passwords), layout=layout)


def _where(base: str, key: object) -> str:
    return f"{base}[{key!r}]" if base else str(key)  # no base: a module-level name


def _at(entry: SeedDict, where: str, key: object) -> str:
    """``TARGET_TERMINALS['x']['lot_multiplier'] (line 57)``: how a note names a value of config.py."""
    return f"{_where(where, key)} (line {entry.lines.get(key, entry.line)})"


def _source_entry(state: _Import) -> tuple[SeedDict, str]:
    assigned = state.names.get("SOURCE_TERMINAL")
    if assigned is None:
        # The connection keys as module-level names: a source terminal without the dict around it.
        entry = SeedDict(1)
        for key in (*_LOGIN, *_PASSWORD, *_SERVER, *_PATH, *_TIMEOUT):
            if key in state.names and key.startswith("MT5_"):
                entry[key], entry.lines[key] = state.names[key].value, state.names[key].line
        if not any(key in entry for key in _LOGIN):
            state.errors.append(f"{state.filename} has no SOURCE_TERMINAL: no terminal to copy from (is it "
                                f"{SEED}'s config.py?)")
        return entry, ""
    if not isinstance(assigned.value, SeedDict):
        state.errors.append(_not_a_dict("SOURCE_TERMINAL", assigned))
        return SeedDict(assigned.line), "SOURCE_TERMINAL"
    return assigned.value, "SOURCE_TERMINAL"


def _target_entries(state: _Import) -> list[tuple[object, SeedDict, str]]:
    assigned = state.names.get("TARGET_TERMINALS")
    if assigned is None:
        state.errors.append(f"{state.filename} has no TARGET_TERMINALS: no terminal to copy to")
        return []
    if not isinstance(assigned.value, SeedDict):
        state.errors.append(_not_a_dict("TARGET_TERMINALS", assigned))
        return []
    entries = []
    for seed_name, entry in assigned.value.items():
        where = _where("TARGET_TERMINALS", seed_name)
        if isinstance(entry, SeedDict):
            entries.append((seed_name, entry, where))
        else:
            state.errors.append(f"{where} (line {assigned.value.lines[seed_name]}) is not a dict of a terminal's "
                                "settings")
    if not assigned.value:
        state.errors.append(f"TARGET_TERMINALS (line {assigned.line}) is empty: no terminal to copy to")
    return entries


def _not_a_dict(name: str, assigned: _Assigned) -> str:
    what = "not a literal (Python would have to run it)" if isinstance(assigned.value, NotLiteral) else "not a dict"
    return f"{name} (line {assigned.line}) is {what}: it cannot be read without running the file"


def _layout(entries: list[SeedDict]) -> str:
    spec = any(key.startswith("MT5_") for entry in entries for key in entry if isinstance(key, str))
    sample = any(key in entry for entry in entries for key in ("login", "password", "server", "path"))
    if spec and sample:
        return "mixed: login/password/server/path and MT5_ACCOUNT/MT5_PASSWORD/MT5_SERVER/MT5_TERMINAL_PATH"
    return "MT5_ACCOUNT/MT5_PASSWORD/MT5_SERVER/MT5_TERMINAL_PATH" if spec else "login/password/server/path"


def _coordinator(state: _Import) -> dict[str, Any]:
    table: dict[str, Any] = {"bind": DEFAULT_BIND, "state_dir": "state"}
    logging = state.value("LOGGING_CONFIG")
    if isinstance(logging, SeedDict) and isinstance(logging.get("level"), str):
        table["log_level"] = logging["level"]
        state.origins["coordinator", "log_level"] = _at(logging, "LOGGING_CONFIG", "level")
    _schedule(state, table)
    return table


def _schedule(state: _Import, table: dict[str, Any]) -> None:
    enabled = state.value("ENABLE_SCHEDULING")
    continuous = state.value("ENABLE_CONTINUOUS_MODE")
    timeframe = state.value("SCHEDULE_TIMEFRAME")
    live = ("mt5-copier is live: each change on the source is copied as it happens, with a full reconciliation every "
            "[coordinator] interval seconds, until it is stopped")
    if enabled is True:
        if isinstance(timeframe, str) and timeframe.strip().upper() not in _TIMEFRAMES:
            state.note(f"SCHEDULE_TIMEFRAME {timeframe!r} (line {state.line('SCHEDULE_TIMEFRAME')}) is not a timeframe "
                       f"mt5-copier schedules on ({' '.join(_TIMEFRAMES)}): no schedule carried over; {live}; choose "
                       "one of those for [coordinator] schedule")
        elif isinstance(timeframe, str):
            table["schedule"] = timeframe
            state.origins["coordinator", "schedule"] = f"SCHEDULE_TIMEFRAME (line {state.line('SCHEDULE_TIMEFRAME')})"
            offset = state.value("SCHEDULE_OFFSET_SECONDS")
            if isinstance(offset, int) and not isinstance(offset, bool):
                table["schedule_offset"] = offset
                state.origins["coordinator", "schedule_offset"] = (
                    f"SCHEDULE_OFFSET_SECONDS (line {state.line('SCHEDULE_OFFSET_SECONDS')})")
            elif "SCHEDULE_OFFSET_SECONDS" in state.names:
                state.note(f"SCHEDULE_OFFSET_SECONDS (line {state.line('SCHEDULE_OFFSET_SECONDS')}) is not a whole "
                           "number of seconds: not carried over (schedule_offset = 0: at the boundary)")
            table["schedule_clock"] = "server"
            state.origins["coordinator", "schedule_clock"] = state.origins["coordinator", "schedule"]
            state.note(f"{SEED} counted schedule boundaries on this computer's clock; mt5-copier counts them on the "
                       "source broker's server clock (schedule_clock = \"server\", the chart's bars) or UTC (\"utc\"): "
                       "for H4 and D1, and wherever the offsets differ by part of an hour, the instants differ")
        else:
            state.note(f"ENABLE_SCHEDULING is True (line {state.line('ENABLE_SCHEDULING')}) but SCHEDULE_TIMEFRAME is "
                       f"{'missing' if timeframe is None else 'not a literal string'}: no schedule carried over; "
                       f"{live}")
        if continuous is True:
            state.note("ENABLE_CONTINUOUS_MODE is True as well: the schedule is what was carried over")
    elif continuous is True:
        state.note(f"ENABLE_CONTINUOUS_MODE (line {state.line('ENABLE_CONTINUOUS_MODE')}), CONTINUOUS_DELAY_SECONDS "
                   f"and CONTINUOUS_MAX_RUNTIME_HOURS: not carried over: {live}")
    elif "ENABLE_SCHEDULING" in state.names or "ENABLE_CONTINUOUS_MODE" in state.names:
        state.note(f"neither ENABLE_SCHEDULING nor ENABLE_CONTINUOUS_MODE is True: {SEED} ran once and exited; "
                   "mt5-copier run --config FILE --once does one full sync and exits, and without --once it keeps "
                   "copying")
    if enabled is not True and isinstance(timeframe, str):
        state.note(f"SCHEDULE_TIMEFRAME {timeframe!r} (line {state.line('SCHEDULE_TIMEFRAME')}) is not carried over: "
                   "ENABLE_SCHEDULING is not True")
    for name, assigned in state.names.items():
        if name in ("ENABLE_SCHEDULING", "ENABLE_CONTINUOUS_MODE") and not isinstance(assigned.value, bool):
            state.note(f"{name} (line {assigned.line}) is not True or False: read as False")
    scheduled = state.value("SCHEDULED_EXECUTION")
    if isinstance(scheduled, SeedDict) and scheduled.get("enabled") is True:
        every = scheduled.get("interval_seconds")
        state.note(f"SCHEDULED_EXECUTION (line {state.line('SCHEDULED_EXECUTION')}): a run every {every} s is not "
                   f"carried over: {live}; to copy only at bar boundaries set [coordinator] schedule "
                   "(M1 M5 M15 M30 H1 H4 D1)")


def _terminal(state: _Import, entry: SeedDict, where: str, name: str, at: tuple[Any, ...]) -> dict[str, Any]:
    """The connection keys of one terminal: name, backend, path, login, server, password_env, connect_timeout."""
    table: dict[str, Any] = {"name": name, "backend": "mt5"}
    for ours, spellings in (("path", _PATH), ("login", _LOGIN), ("server", _SERVER)):
        key = _spelling(state, entry, where, spellings)
        if key is None:
            state.errors.append(f"{where} (line {entry.line}) has no {' or '.join(spellings)}: every terminal needs "
                                "its account and its terminal64.exe")
            continue
        value = entry[key]
        if isinstance(value, NotLiteral):
            state.errors.append(f"{_at(entry, where, key)} is not a literal value (Python would have to run it): "
                                "write the value itself")
            continue
        if ours == "login" and isinstance(value, str) and value.strip().isdigit():
            value = int(value)
        table[ours] = value
        state.origins.update({(*at, ours): _at(entry, where, key)})
    _password(state, entry, where, name, table, at)
    key = _spelling(state, entry, where, _TIMEOUT)
    if key is not None:
        timeout = entry[key]
        if isinstance(timeout, (int, float)) and not isinstance(timeout, bool):
            table["connect_timeout"] = timeout / 1000  # the seed's is in milliseconds, as initialize() takes it
            state.origins.update({(*at, "connect_timeout"): _at(entry, where, key)})
        else:
            state.note(f"{_at(entry, where, key)} is not a number of milliseconds: not carried over "
                       "(connect_timeout = 60 s)", name)
    return table


def _spelling(state: _Import, entry: SeedDict, where: str, spellings: tuple[str, ...]) -> str | None:
    """Which of a key's two spellings ``entry`` uses; both with different values is an error (which one counts?)."""
    present = [key for key in spellings if key in entry]
    if len(present) > 1 and entry[present[0]] != entry[present[1]]:
        state.errors.append(f"{where} (line {entry.line}) has both {present[0]} and {present[1]}, with different "
                            "values: keep one")
    return present[0] if present else None


def _password(state: _Import, entry: SeedDict, where: str, name: str, table: dict[str, Any],
              at: tuple[Any, ...]) -> None:
    key = _spelling(state, entry, where, _PASSWORD)
    if key is None or entry[key] in ("", None):
        state.note("no password in config.py: the terminal's saved password is used (no password_env)", name)
        return
    value, line = entry[key], entry.lines.get(key, entry.line)
    from_environment = isinstance(value, NotLiteral) and value.env_var is not None
    if isinstance(value, NotLiteral) and value.env_var is not None:
        variable = value.env_var
    else:
        variable = _unique_variable(state, name)
        if isinstance(value, NotLiteral):
            state.note(f"the password (line {line}) is not a literal value: put it in {variable}", name)
    state.taken_variables.add(variable)
    table["password_env"] = variable
    state.origins.update({(*at, "password_env"): _at(entry, where, key)})
    state.passwords.append(PasswordVariable(variable=variable, terminal=name, login=table.get("login"),
                                            server=table.get("server"), line=line, from_environment=from_environment))


def _unique_variable(state: _Import, name: str) -> str:
    stem = "MT5_PASSWORD_" + (re.sub(r"[^A-Za-z0-9]+", "_", name).strip("_").upper() or "TERMINAL")
    variable, count = stem, 1
    while variable in state.taken_variables:
        count += 1
        variable = f"{stem}_{count}"
    return variable


def _target_name(state: _Import, seed_name: object, where: str) -> str:
    """The seed's name for a target, made a valid and unique terminal name (noted when it changed)."""
    text = str(seed_name)
    name = re.sub(r"[^A-Za-z0-9_.-]+", "_", text).strip("_")[:64] or "target"
    if not TERMINAL_NAME.fullmatch(name) or terminal_name_problem(name) is not None:
        name = f"target_{name}"[:64].strip(".") or "target"
    unique, count = name, 1
    while unique.casefold() in state.taken_names:
        count += 1
        unique = f"{name[:60]}-{count}"
    state.taken_names.add(unique.casefold())
    if unique != text:
        state.note(f"{where} is named {unique!r}: a terminal's name is 1 to 64 letters, digits, '_', '.' or '-' (it "
                   "becomes part of file names), unique whatever the letter case", unique)
    return unique


_Carry = Callable[[tuple[str, ...], Any, str], None]  # (key path in the target, value, where it came from)


def _copy_settings(state: _Import, entry: SeedDict, where: str, name: str, at: tuple[Any, ...]) -> dict[str, Any]:
    """The copy keys of one target, from its seed entry."""
    table: dict[str, Any] = {}

    def carry(ours: tuple[str, ...], value: Any, origin: str) -> None:
        parent = table
        for part in ours[:-1]:
            parent = parent.setdefault(part, {})
        parent[ours[-1]] = value
        state.origins.update({(*at, *ours): origin})

    for key, value in entry.items():
        if isinstance(value, NotLiteral) and key in _COPY_KEYS:
            state.note(f"{_at(entry, where, key)} is not a literal value (Python would have to run it): not carried "
                       "over", name)
        elif key not in _COPY_KEYS and key not in _CONNECTION_KEYS:
            state.note(f"{_at(entry, where, key)} is not a setting of {SEED}'s that the importer knows: not carried "
                       "over", name)
    for seed_key, ours in (("lot_multiplier", "lot_multiplier"), ("min_lot_size", "min_lot"),
                           ("max_lot_size", "max_lot")):
        if seed_key in entry and not isinstance(entry[seed_key], NotLiteral):
            carry((ours,), entry[seed_key], _at(entry, where, seed_key))
    # The seed sizes by lots alone; scaling by contract size here could multiply a lot_multiplier chosen to make up
    # for a difference in contract size. Written, so that the choice is visible.
    table["scale_by_contract_size"] = False
    _order_types(state, entry, where, name, table, carry)
    _max_pending_orders(state, entry, where, name, carry)
    mapping = entry.get("symbol_mapping")
    if isinstance(mapping, SeedDict):
        carried = {str(source): target for source, target in mapping.items() if not isinstance(target, NotLiteral)}
        if carried:
            carry(("symbol_map",), carried, _at(entry, where, "symbol_mapping"))
    elif mapping is not None and not isinstance(mapping, NotLiteral):
        state.note(f"{_at(entry, where, 'symbol_mapping')} is not a dict: not carried over", name)
    _orphans(state, entry, where, name, carry)
    return table


def _order_types(state: _Import, entry: SeedDict, where: str, name: str, table: dict[str, Any],
                 carry: _Carry) -> None:
    allowed = entry.get("allowed_order_types")
    if allowed is None:
        state.note(f"{where} has no allowed_order_types: {SEED} copies no order to it (its default is an empty "
                   "list); written without order_types, which copies all six pending types (set enabled = false, "
                   "or order_types, if that was meant)", name)
        return
    if isinstance(allowed, NotLiteral):
        return
    if not isinstance(allowed, list) or not allowed:
        state.note(f"{_at(entry, where, 'allowed_order_types')} allows no type: nothing is copied there: written as "
                   "enabled = false", name)
        table["enabled"] = False
        return
    kinds = set()
    for item in allowed:
        kind = _order_kind(item)
        if kind is None:
            state.note(f"{_at(entry, where, 'allowed_order_types')}: {item!r} is not a pending order type "
                       "(BUY_LIMIT SELL_LIMIT BUY_STOP SELL_STOP BUY_STOP_LIMIT SELL_STOP_LIMIT): left out", name)
        else:
            kinds.add(kind)
    if kinds:
        carry(("order_types",), [kind.value for kind in OrderKind if kind in kinds],
              _at(entry, where, "allowed_order_types"))
    else:
        table["enabled"] = False
        state.note(f"{_at(entry, where, 'allowed_order_types')} names no pending order type: nothing is copied "
                   "there: written as enabled = false", name)


def _order_kind(name: object) -> OrderKind | None:
    if not isinstance(name, str):
        return None
    try:
        return OrderKind(name.strip().lower())
    except ValueError:
        return None


def _max_pending_orders(state: _Import, entry: SeedDict, where: str, name: str, carry: _Carry) -> None:
    cap = entry.get("max_pending_orders")
    if cap is None or isinstance(cap, NotLiteral):
        return
    if not isinstance(cap, SeedDict):
        state.note(f"{_at(entry, where, 'max_pending_orders')} is not a dict of enabled and max_orders: not carried "
                   "over", name)
        return
    if cap.get("enabled") is not True:
        return
    limit = cap.get("max_orders")
    if not isinstance(limit, int) or isinstance(limit, bool):
        state.note(f"{_at(entry, where, 'max_pending_orders')} is enabled without a whole max_orders: not carried "
                   "over", name)
        return
    carry(("max_pending_orders",), limit, _at(cap, _where(where, "max_pending_orders"), "max_orders"))
    state.note(f"max_pending_orders = {limit}: mt5-copier places copies up to the cap, oldest source order first, "
               f"and the others wait for room; {SEED} placed no new copy at all in a round that would pass it", name)


def _orphans(state: _Import, entry: SeedDict, where: str, name: str, carry: _Carry) -> None:
    orphans = entry.get("orphan_management")
    if isinstance(orphans, NotLiteral):
        return
    if orphans is not None and not isinstance(orphans, SeedDict):
        state.note(f"{_at(entry, where, 'orphan_management')} is not a dict: not carried over", name)
        orphans = None
    settings = orphans if orphans is not None else SeedDict(entry.line)
    inside = _where(where, "orphan_management")

    def origin(key: str) -> str:
        return _at(settings, inside, key) if key in settings else f"{where} (line {entry.line})"

    kill = settings.get("kill_orphaned_orders", False)  # the seed's default: orphans are kept
    carry(("orphans", "policy"), "kill" if kill is True else "preserve", origin("kill_orphaned_orders"))
    if "kill_orphaned_orders" not in settings:
        state.note(f"{where}: no kill_orphaned_orders: {SEED} keeps orphans by default: orphans.policy = "
                   "\"preserve\"", name)
    for seed_key, ours in (("max_orphan_checks", "max_checks"), ("orphan_check_interval", "check_interval")):
        if seed_key in settings and not isinstance(settings[seed_key], NotLiteral):
            carry(("orphans", ours), settings[seed_key], origin(seed_key))
    # What became of a copy's position when its source position closed: the seed closed it only with
    # kill_orphaned_positions (default false).
    close = settings.get("kill_orphaned_positions", False) is True
    carry(("positions", "on_source_close"), "close" if close else "keep", origin("kill_orphaned_positions"))
    if close:
        state.note("kill_orphaned_positions = True: [targets.positions] on_source_close = \"close\": a copy's "
                   "position is closed when its source position closes (mt5-copier never closes a position it did not "
                   "open)", name)
    else:
        state.note("kill_orphaned_positions is False (its default): [targets.positions] on_source_close = \"keep\": a "
                   "copy's position stays open when its source position closes (\"close\" closes it)", name)
    for key in settings:
        if key not in _ORPHAN_KEYS:
            state.note(f"{_at(settings, _where(where, 'orphan_management'), key)} is not a setting the importer "
                       "knows: not carried over", name)


def _own_terminal_paths(state: _Import) -> None:
    """One terminal per account: the seed logs every account into one terminal in turn, mt5-copier keeps them all
    logged in at once. The first terminal keeps a shared path; the others get a folder of their own, noted."""
    first: dict[str, str] = {}
    taken = {_path_key(terminal["path"]) for terminal in _terminals(state.document) if isinstance(
        terminal.get("path"), str)}
    for terminal in _terminals(state.document):
        path = terminal.get("path")
        if not isinstance(path, str):
            continue
        key = _path_key(path)
        if key not in first:
            first[key] = terminal["name"]
            continue
        own = _own_path(path, terminal["name"], taken)
        taken.add(_path_key(own))
        terminal["path"] = own
        state.note(f"shares its terminal ({path}) with {first[key]}: {SEED} logged each account into it in turn, "
                   "mt5-copier keeps every account logged in at once, each in a terminal of its own; written as "
                   f"'{own}': install (or copy) a MetaTrader 5 terminal there and log it into account "
                   f"{terminal.get('login')}, or change path", terminal["name"])


def _terminals(document: dict[str, Any]) -> Iterator[dict[str, Any]]:
    yield document["source"]
    yield from document["targets"]


def _path_key(path: str) -> str:
    return ntpath.normcase(ntpath.normpath(path))  # as Windows compares them, on any system


def _own_path(shared: str, name: str, taken: set[str]) -> str:
    path = PureWindowsPath(shared)
    folder = path.parent
    base = folder.name or "MetaTrader 5"
    count = 1
    while True:
        suffix = f" - {name}" if count == 1 else f" - {name} {count}"
        candidate = str(folder.parent / f"{base}{suffix}" / path.name)
        if _path_key(candidate) not in taken:
            return candidate
        count += 1


def _global_filters(state: _Import) -> None:
    """SYMBOL_FILTERS, global in the seed, go to every target's [targets.filter]."""
    filters = state.value("SYMBOL_FILTERS")
    if not isinstance(filters, SeedDict):
        return
    carried: dict[str, list[str]] = {}
    for seed_key, ours in (("include_patterns", "symbols"), ("exclude_patterns", "exclude_symbols")):
        patterns = filters.get(seed_key)
        if isinstance(patterns, list) and patterns:
            kept = [pattern for pattern in patterns if isinstance(pattern, str) and pattern]
            if len(kept) < len(patterns):
                state.note(f"{_at(filters, 'SYMBOL_FILTERS', seed_key)}: an entry that is not a pattern is left out")
            if kept:
                carried[ours] = kept
    if filters.get("case_sensitive") is True:
        state.note(f"{_at(filters, 'SYMBOL_FILTERS', 'case_sensitive')} is True: mt5-copier's symbol patterns ignore "
                   "letter case (\"xau*\" matches XAUUSD)")
    if not carried:
        return
    state.note(_SEED_DID_NOT_APPLY.format(name="SYMBOL_FILTERS") + ": written to every target's [targets.filter]")
    for index, target in enumerate(state.document["targets"]):
        target["filter"] = {key: list(value) for key, value in carried.items()}
        for ours, seed_key in (("symbols", "include_patterns"), ("exclude_symbols", "exclude_patterns")):
            state.origins["targets", index, "filter", ours] = _at(filters, "SYMBOL_FILTERS", seed_key)


def _global_type_mappings(state: _Import) -> None:
    """ORDER_TYPE_MAPPINGS (names in upper case) go to [targets.order_type_map] of each target copying that type."""
    mappings = state.value("ORDER_TYPE_MAPPINGS")
    if not isinstance(mappings, SeedDict) or not mappings:
        return
    pairs = []
    for source_name, copy_name in mappings.items():
        source, copy = _order_kind(source_name), _order_kind(copy_name)
        if source is None or copy is None:
            state.note(f"{_at(mappings, 'ORDER_TYPE_MAPPINGS', source_name)}: {source_name!r} -> {copy_name!r} does "
                       "not map one pending order type to another: left out")
        elif source is not copy:
            pairs.append((source_name, source, copy))
    if not pairs:
        return
    state.note(_SEED_DID_NOT_APPLY.format(name="ORDER_TYPE_MAPPINGS")
               + ": written to [targets.order_type_map] of every target that copies that type")
    for index, target in enumerate(state.document["targets"]):
        copied = set(target.get("order_types", [kind.value for kind in OrderKind]))
        for source_name, source, copy in pairs:
            if source.value in copied:
                target.setdefault("order_type_map", {})[source.value] = copy.value
                state.origins["targets", index, "order_type_map", source.value] = _at(
                    mappings, "ORDER_TYPE_MAPPINGS", source_name)


def _not_carried(state: _Import) -> None:
    state.note(f"scale_by_contract_size = false on every target: {SEED} sized copies by lots alone (lots x "
               "lot_multiplier, within min/max); true scales them by source / target contract size so a copy carries "
               "the source's notional, which would double a lot_multiplier chosen to make up for contract sizes")
    for name, why in _NOT_CARRIED.items():
        assigned = state.names.get(name)
        if assigned is None:
            continue
        value = assigned.value
        extra = ""
        if name == "LOGGING_CONFIG" and "log_level" in state.document["coordinator"]:
            extra = " (its level is carried over as [coordinator] log_level)"
        elif name == "NOTIFICATION_CONFIG" and isinstance(value, SeedDict) and value.get("enabled") is True:
            extra = " (notifications are enabled there)"
        elif name == "DEVELOPMENT_CONFIG" and isinstance(value, SeedDict) and value.get("dry_run") is True:
            extra = " (dry_run is True there: the file written here is not a dry run)"
        state.note(f"{name} (line {assigned.line}) is not carried over{extra}: {why}")
    state.note(f"copies {SEED} placed on the targets (magic = a source ticket, no comment) are not mt5-copier's: it "
               "never touches an order it did not place, and would place its own copies beside them; stop "
               f"{SEED} and delete its pending copies on the targets before the first run (run --once --dry-run shows "
               "what would be placed)")


# --- The copier's own validation decides ------------------------------------------------------------------------


_GLOBAL_DICTS = ("SYMBOL_FILTERS", "ORDER_TYPE_MAPPINGS")
_NAMED_TARGET = re.compile(r"(targets\[\d+\]) \([^)]*\)")


def _settle_with_validation(state: _Import, base_dir: Path) -> None:
    """Leave out each value the copier refuses, with the copier's reason; an error for one it cannot do without."""
    for _ in range(10_000):  # each round leaves one value out: bounded by the values written
        try:
            parse_config(state.document, base_dir=base_dir, source=state.filename)
            return
        except ConfigError as e:
            problem = e.problems[0]
        path = _NAMED_TARGET.sub(r"\1", problem.path, count=1)
        located = dict(_paths(state.document))
        at = located.get(path)
        origin = state.origins.get(at, "") if at is not None else ""
        shown = f"{origin}: " if origin else ""
        if at is None or _cannot_leave_out(at):
            raise SeedConfigError([f"{shown}{problem.path}: {problem.message}"])
        _remove(state.document, at)
        # A value of a dict every target gets (SYMBOL_FILTERS, ORDER_TYPE_MAPPINGS) is said once, for the file.
        name = None if origin.startswith(_GLOBAL_DICTS) else _terminal_of(state.document, at)
        note = Note(f"{shown or (path + ': ')}not carried over: {_toml_key(at)}: {problem.message}", name)
        if note not in state.notes:
            state.notes.append(note)
    raise SeedConfigError(["too many values refused by the copier's validation"])  # pragma: no cover


def _paths(table: Any, at: tuple[Any, ...] = (), text: str = "") -> Iterator[tuple[str, tuple[Any, ...]]]:
    """Every table, value and list item of the document with its key path as the copier's problems spell it."""
    if isinstance(table, dict):
        for key, value in table.items():
            child = key_path(text, key)
            yield child, (*at, key)
            yield from _paths(value, (*at, key), child)
    elif isinstance(table, list):
        for index, value in enumerate(table):
            child = index_path(text, index)
            yield child, (*at, index)
            yield from _paths(value, (*at, index), child)


def _remove(document: dict[str, Any], at: tuple[Any, ...]) -> None:
    parent: Any = document
    for part in at[:-1]:
        parent = parent[part]
    del parent[at[-1]]


def _terminal_of(document: dict[str, Any], at: tuple[Any, ...]) -> str | None:
    if at[0] == "source":
        return str(document["source"]["name"])
    if at[0] == "targets" and len(at) > 1:
        return str(document["targets"][at[1]]["name"])
    return None


def _cannot_leave_out(at: tuple[Any, ...]) -> bool:
    """A whole table, or a key a terminal cannot do without."""
    if at[0] == "source":
        return len(at) < 2 or (len(at) == 2 and at[1] in _TERMINAL_KEYS)
    if at[0] == "targets":
        return len(at) < 3 or (len(at) == 3 and at[2] in _TERMINAL_KEYS)
    return len(at) < 2


def _toml_key(at: tuple[Any, ...]) -> str:
    names = [str(part) for part in at if not isinstance(part, int)]
    return ".".join(names if names[0] == "coordinator" else names[1:])


def _drop_empty_tables(table: dict[str, Any]) -> None:
    for key in [key for key, value in table.items() if isinstance(value, dict)]:
        _drop_empty_tables(table[key])
        if not table[key]:
            del table[key]
    for value in table.values():
        if isinstance(value, list):
            for item in value:
                if isinstance(item, dict):
                    _drop_empty_tables(item)
