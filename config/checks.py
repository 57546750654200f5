"""Cross-field checks, and the checks of terminal folders on this machine.

They run in the same round as the shape checks, on the validated tree (``config.schema``): a table whose
keys are their valid values, or ``INVALID`` where a problem was already reported. A check whose keys are
not all valid stays silent, so one wrong value is never reported twice. Each check names every key
involved, so a person knows which two lines disagree.
"""

from __future__ import annotations

import os
from collections.abc import Hashable, Iterator
from pathlib import Path
from typing import Any

from protocol.curve import KeyFileError, load_public_key_file, load_secret_key_file

from .choices import Backend, OrderKind, ScheduleClock, VolumeMode
from .endpoints import is_local_endpoint, reachable_bind_problem
from .errors import ConfigProblem
from .model import AppConfig, CopySettings
from .paths import mt5_terminal_path_problem, resolve_path, sim_terminal_problem
from .schema import INVALID

Tree = dict[str, Any]  # a validated table: key -> value, or INVALID


def cross_field_problems(checked: Tree, base_dir: Path) -> list[ConfigProblem]:
    """Every problem that only shows when several keys are looked at together."""
    problems: list[ConfigProblem] = []
    problems.extend(_timeout_problems(checked))
    problems.extend(_schedule_problems(checked))
    problems.extend(_mt5_path_problems(checked))
    problems.extend(_lot_range_problems(checked))
    problems.extend(_fixed_lot_problems(checked))
    problems.extend(_source_fill_problems(checked))
    problems.extend(_filter_problems(checked))
    problems.extend(_duplicate_terminal_problems(checked, base_dir))
    problems.extend(_link_key_problems(checked, base_dir))
    return problems


def terminal_folder_problems(checked: Tree, base_dir: Path) -> list[ConfigProblem]:
    """Sim terminals whose folder is not a simulated terminal on this machine.

    Not part of every load: tests and the demo write a config before they create its terminals, and a
    running copier reports a missing terminal for that terminal alone while it copies to the others.
    ``check-config`` asks for it. Remote terminals (their path is another machine's) and disabled targets
    (no worker runs for them) are left out.
    """
    problems = []
    for where, terminal in _located_terminals(checked):
        backend, path = _value(terminal, "backend"), _value(terminal, "path")
        if backend is not Backend.SIM or path is INVALID or _value(terminal, "remote") is not False:
            continue
        if _value(terminal, "enabled") is False:
            continue
        problem = sim_terminal_problem(resolve_path(base_dir, path))
        if problem is not None:
            problems.append(ConfigProblem(f"{where}.path", problem))
    return problems


def config_notes(config: AppConfig) -> list[str]:
    """What a valid config does that a person may not expect: said by ``check-config`` and at start-up."""
    notes = []
    for target in config.targets:
        if target.copy.max_pending_orders == 0 and target.copy.enabled:
            notes.append(
                f"{target.name}: max_pending_orders = 0: no new copies are placed there; the copies already "
                "there are still followed (modified, and removed when their source order goes). To leave the "
                "target alone entirely use enabled = false."
            )
        if target.copy.enabled:
            notes.extend(f"{target.name}: {note}" for note in _transform_notes(target.copy))
    return notes


def _transform_notes(copy: CopySettings) -> Iterator[str]:
    mapped = dict(copy.order_type_map)
    for source in sorted(mapped.keys() - copy.order_types):
        yield (f"order_type_map.{source} is never used: {source} is not in order_types (order_types picks the "
               "source's orders by their own type)")
    if copy.reverse:
        left_out = sorted(kind for kind in copy.order_types
                          if mapped.get(kind, kind) in (OrderKind.BUY_STOP_LIMIT, OrderKind.SELL_STOP_LIMIT))
        if left_out:
            yield (f"reverse = true: {' and '.join(left_out)} orders have no exact reverse and are not copied (the "
                   "summary and status list them as left out); to copy them reversed, map them to stops in "
                   "[targets.order_type_map] (buy_stop_limit = \"buy_stop\" is then reversed to a sell limit at the "
                   "trigger price)")


def _value(table: object, key: str) -> Any:
    """A key's valid value; INVALID when the table or the key is not valid (its problem is already reported)."""
    return table.get(key, INVALID) if isinstance(table, dict) else INVALID


def _known(*values: object) -> bool:
    return all(value is not INVALID for value in values)


def _located_terminals(checked: Tree) -> Iterator[tuple[str, Tree]]:
    # Key paths as the file spells them: "source", "targets[0]", ...
    source = checked.get("source", INVALID)
    if isinstance(source, dict):
        yield "source", source
    targets = checked.get("targets", INVALID)
    if isinstance(targets, tuple):
        for index, target in enumerate(targets):
            if isinstance(target, dict):
                yield f"targets[{index}]", target


def _located_targets(checked: Tree) -> Iterator[tuple[str, Tree]]:
    return ((where, table) for where, table in _located_terminals(checked) if where != "source")


def _timeout_problems(checked: Tree) -> Iterator[ConfigProblem]:
    coordinator = checked.get("coordinator", INVALID)
    heartbeat, timeout = _value(coordinator, "heartbeat_interval"), _value(coordinator, "worker_timeout")
    # A worker must get several chances to answer a ping before it is declared gone.
    if _known(heartbeat, timeout) and not timeout > heartbeat:
        yield ConfigProblem(
            "coordinator.worker_timeout",
            f"must be greater than coordinator.heartbeat_interval ({heartbeat!r}), got {timeout!r}",
        )


def _schedule_problems(checked: Tree) -> Iterator[ConfigProblem]:
    coordinator = checked.get("coordinator", INVALID)
    schedule, offset, clock = (_value(coordinator, key) for key in ("schedule", "schedule_offset", "schedule_clock"))
    if not _known(schedule, offset, clock):
        return
    if schedule is None:
        # Without a schedule they would be silently ignored: the person meant something by them.
        if offset:
            yield ConfigProblem("coordinator.schedule_offset", "only used with coordinator.schedule")
        if clock is not ScheduleClock.SERVER:
            yield ConfigProblem("coordinator.schedule_clock", "only used with coordinator.schedule")
    elif offset >= schedule.seconds:
        # An offset of a whole timeframe or more is the same boundary as a smaller one: say which was meant.
        yield ConfigProblem("coordinator.schedule_offset",
                            f"must be less than the timeframe of coordinator.schedule ({schedule} is "
                            f"{schedule.seconds} s), got {offset!r}")


def _mt5_path_problems(checked: Tree) -> Iterator[ConfigProblem]:
    for where, terminal in _located_terminals(checked):
        backend, path = _value(terminal, "backend"), _value(terminal, "path")
        if backend is Backend.MT5 and path is not INVALID:
            problem = mt5_terminal_path_problem(path)
            if problem is not None:
                yield ConfigProblem(f"{where}.path", problem)


def _lot_range_problems(checked: Tree) -> Iterator[ConfigProblem]:
    for where, target in _located_targets(checked):
        min_lot, max_lot = _value(target, "min_lot"), _value(target, "max_lot")
        if _known(min_lot, max_lot) and min_lot is not None and max_lot is not None and max_lot < min_lot:
            yield ConfigProblem(f"{where}.max_lot", f"must be at least {where}.min_lot ({min_lot!r}), got {max_lot!r}")


def _fixed_lot_problems(checked: Tree) -> Iterator[ConfigProblem]:
    # fixed_lot without volume_mode = "fixed" would be silently ignored: the person meant something by it.
    for where, target in _located_targets(checked):
        mode, fixed_lot = _value(target, "volume_mode"), _value(target, "fixed_lot")
        if not _known(mode, fixed_lot):
            continue
        fixed = mode is VolumeMode.FIXED
        if fixed and fixed_lot is None:
            yield ConfigProblem(f"{where}.fixed_lot", 'required when volume_mode = "fixed"')
        elif not fixed and fixed_lot is not None:
            yield ConfigProblem(f"{where}.fixed_lot", 'only used with volume_mode = "fixed"')


def _source_fill_problems(checked: Tree) -> Iterator[ConfigProblem]:
    # Two keys for one decision: which one wins would be a guess.
    for where, target in _located_targets(checked):
        keep, fill = _value(target, "keep_filled_copies"), _value(_value(target, "positions"), "on_source_fill")
        if _known(keep, fill) and keep is not None and fill is not None:
            yield ConfigProblem(
                f"{where}.positions.on_source_fill",
                "say either this or keep_filled_copies (the older key for the same choice) in this target, not both",
            )


def _filter_problems(checked: Tree) -> Iterator[ConfigProblem]:
    # An empty list of what to copy copies nothing: surely not meant, and absent already means "all".
    for where, target in _located_targets(checked):
        table = _value(target, "filter")
        for key, every in (("symbols", "symbol"), ("magics", "magic number")):
            if _value(table, key) == ():
                yield ConfigProblem(f"{where}.filter.{key}", f"an empty list would copy no order at all: leave the "
                                    f"key out to copy every {every} (enabled = false copies nothing on purpose)")


def _duplicate_terminal_problems(checked: Tree, base_dir: Path) -> Iterator[ConfigProblem]:
    # Names are compared ignoring case because they become file names, and Windows ignores case.
    first_name: dict[Hashable, tuple[str, str]] = {}
    # Paths are compared the way the operating system compares them.
    first_path: dict[Hashable, str] = {}
    first_account: dict[Hashable, str] = {}
    for where, terminal in _located_terminals(checked):
        name = _value(terminal, "name")
        if name is not INVALID:
            name_key = name.casefold()
            if name_key in first_name:
                other_where, other_name = first_name[name_key]
                if other_name == name:
                    message = f"duplicate terminal name {name!r} (also used by {other_where})"
                else:
                    message = (
                        f"duplicate terminal name {name!r} (also used by {other_where} as "
                        f"{other_name!r}; names must differ by more than letter case)"
                    )
                yield ConfigProblem(f"{where}.name", message)
            else:
                first_name[name_key] = (where, name)

        raw_path = _value(terminal, "path")
        if raw_path is not INVALID:
            path = resolve_path(base_dir, raw_path)
            path_key = os.path.normcase(str(path))
            if path_key in first_path:
                yield ConfigProblem(
                    f"{where}.path", f"duplicate terminal path '{path}' (also used by {first_path[path_key]})"
                )
            else:
                first_path[path_key] = where

        login, server = _value(terminal, "login"), _value(terminal, "server")
        if _known(login, server):
            if (login, server) in first_account:
                yield ConfigProblem(
                    f"{where}.login",
                    f"duplicate account: login {login} on server {server!r} "
                    f"(also used by {first_account[login, server]})",
                )
            else:
                first_account[login, server] = where


def _link_key_problems(checked: Tree, base_dir: Path) -> Iterator[ConfigProblem]:
    """Who may open a link: a bind other machines can reach needs the coordinator's key pair; with it, every
    remote terminal names the one public key that may speak as it. The key files are read here, so a missing,
    damaged or readable-by-others file is a configuration error at its key (``check-config`` says so too)."""
    coordinator = checked.get("coordinator", INVALID)
    bind, secret_file = _value(coordinator, "bind"), _value(coordinator, "secret_key_file")
    reachable = bind is not INVALID and not is_local_endpoint(bind)
    if reachable and secret_file is None:
        yield ConfigProblem("coordinator.bind", reachable_bind_problem(bind))
    coordinator_key = b""
    if secret_file is not INVALID and secret_file is not None:
        try:
            coordinator_key = load_secret_key_file(resolve_path(base_dir, secret_file)).public
        except KeyFileError as e:
            yield ConfigProblem("coordinator.secret_key_file", str(e))
    # Unknown (INVALID) secret_key_file: its problem is reported; whether keys are needed is left unsaid.
    keys_needed = reachable or (secret_file is not INVALID and secret_file is not None)
    keys_unused = secret_file is None and not reachable
    first_key: dict[bytes, str] = {}
    for where, terminal in _located_terminals(checked):
        name, remote = _value(terminal, "name"), _value(terminal, "remote")
        key_file = _value(terminal, "public_key_file")
        shown = name if isinstance(name, str) else "NAME"
        if key_file is None:
            if keys_needed and remote is True:
                yield ConfigProblem(
                    f"{where}.public_key_file",
                    "required for a remote terminal when links are authenticated (coordinator.secret_key_file): "
                    f"the public key of the worker that runs {shown}. Make its key pair on that machine with "
                    f"mt5-copier keys new {shown} --dir keys, and copy {shown}.key here",
                )
            continue
        if key_file is INVALID:
            continue
        # Refused rather than ignored: a person who wrote it expects it to protect the terminal.
        if keys_unused:
            yield ConfigProblem(
                f"{where}.public_key_file",
                "only used with coordinator.secret_key_file: without it links are neither authenticated nor "
                "encrypted, and no key is checked",
            )
            continue
        if remote is False:
            yield ConfigProblem(
                f"{where}.public_key_file",
                "only used with remote = true: the coordinator starts this terminal's worker itself and gives it a "
                "key pair of its own (in state_dir/keys/local)",
            )
            continue
        try:
            key = load_public_key_file(resolve_path(base_dir, key_file))
        except KeyFileError as e:
            yield ConfigProblem(f"{where}.public_key_file", str(e))
            continue
        if key == coordinator_key:
            yield ConfigProblem(
                f"{where}.public_key_file",
                "holds the coordinator's own public key (the pair of coordinator.secret_key_file): give the public "
                f"key of the worker that runs {shown}, made on its machine",
            )
        elif key in first_key:
            yield ConfigProblem(
                f"{where}.public_key_file",
                f"the same public key as {first_key[key]}: each terminal needs a key pair of its own, or one worker "
                "could speak as both",
            )
        else:
            first_key[key] = f"{where}.public_key_file ({shown})"
