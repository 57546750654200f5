"""``mt5-copier pause`` and ``mt5-copier resume``: stop sending to a target (or every target), or let only what
reduces its exposure through, and start again, without a restart.

The command writes the target's control straight into ``copier.db`` (``target_controls``, with a history row),
so it works whether a coordinator runs or not: a running one reads the table every half second and applies it
within a second; one that starts later starts with it. With no state file yet, one is made, so a pause set
before the first start holds from it. Exit codes: 0 done (each line says what is now in force), 2 a config that
does not load or an unknown target (the configured ones named), 3 a state file it cannot use.
"""

from __future__ import annotations

import argparse
import sqlite3
import sys
import time
from contextlib import closing
from pathlib import Path

from config import AppConfig, ConfigError, load_config
from config.exit_codes import ExitCode
from coordinator.cli.operator import write_out
from coordinator.domain.controls import ACTIVE, TargetControl, TargetMode, operator_control
from coordinator.persistence.controls import read_controls, set_control
from coordinator.persistence.migrations import LATEST_VERSION, NewerStateError, migrate
from coordinator.persistence.state import DATABASE_NAME, StateError, StateStore
from coordinator.runtime.instance_lock import running_coordinator_pid


def add_pause_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", required=True, type=Path, help="TOML config file")
    parser.add_argument("--target", metavar="NAME", help="only this target (default: every target)")
    parser.add_argument("--close-only", action="store_true",
                        help="existing copies still follow their source and are removed or closed; no new ones")


def add_resume_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", required=True, type=Path, help="TOML config file")
    parser.add_argument("--target", metavar="NAME", help="only this target (default: every target)")


def run(args: argparse.Namespace) -> int:
    try:
        config = load_config(args.config)
    except ConfigError as e:
        print(e, file=sys.stderr)
        return ExitCode.CONFIG_ERROR
    if args.command == "pause":
        mode = TargetMode.CLOSE_ONLY if args.close_only else TargetMode.PAUSED
    else:
        mode = TargetMode.ACTIVE
    return control_command(config, mode, target=args.target)


def control_command(config: AppConfig, mode: TargetMode, *, target: str | None) -> ExitCode:
    """Set ``mode`` on ``target`` (every target when None) as the operator, and say what is in force now."""
    if target is not None:
        try:
            config.target(target)
        except KeyError as e:
            print(e.args[0], file=sys.stderr)
            return ExitCode.CONFIG_ERROR
    names = [target] if target is not None else [t.name for t in config.targets]
    state_dir = config.coordinator.state_dir
    pid = running_coordinator_pid(state_dir)
    try:
        db = _open_state(state_dir, coordinator_running=pid is not None)
    except (StateError, sqlite3.DatabaseError, OSError) as e:
        print(f"cannot record the change in {state_dir / DATABASE_NAME}: {e}; nothing was changed", file=sys.stderr)
        return ExitCode.FATAL
    lines = []
    with closing(db):
        before = read_controls(db)
        now = time.time()
        for name in names:
            current = before.get(name, ACTIVE)
            if current.mode is mode:  # whoever set it: the same mode, its reason and time kept
                lines.append(f"{name}: {_already(current)}")
                continue
            set_control(db, name, operator_control(mode, now))
            lines.append(f"{name}: {_now_in_force(mode, current)}")
    if pid is not None:
        lines.append(f"the running coordinator (pid {pid}) applies it within a second")
    else:
        lines.append(f"no coordinator is running on {state_dir}: in force from its next start")
    write_out("".join(f"{line}\n" for line in lines))
    return ExitCode.OK


def _open_state(state_dir: Path, *, coordinator_running: bool) -> sqlite3.Connection:
    """The state database, brought to this version's layout. Made (as the coordinator makes it) when there is
    none yet. Never the coordinator's start-up repairs (a file it cannot read is not moved aside here: the
    coordinator may be using it)."""
    path = state_dir / DATABASE_NAME
    if not path.exists():
        StateStore(state_dir).close()
    db = sqlite3.connect(path, isolation_level=None, timeout=10.0)
    try:
        row = db.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
        version = int(row[0]) if row is not None else 0
        if version < LATEST_VERSION and coordinator_running:
            raise StateError(f"the running coordinator is older than this mt5-copier (state schema {version}, this "
                             f"one needs {LATEST_VERSION}): restart it with this version first")
        migrate(db, path)
    except NewerStateError as e:
        db.close()
        raise StateError(str(e)) from None
    except BaseException:
        db.close()
        raise
    return db


def _already(control: TargetControl) -> str:
    if control.active:
        return "already active: nothing changed"
    return f"already {control.describe()}: nothing changed"


def _now_in_force(mode: TargetMode, before: TargetControl) -> str:
    if mode is TargetMode.PAUSED:
        return ("paused: nothing is sent to it (no placements, edits, removals or closes); its copies stay as they "
                "are, still watched")
    if mode is TargetMode.CLOSE_ONLY:
        return ("close-only: no new copies; existing ones still follow their source (price, SL/TP, removals, "
                "partial and full closes)")
    cleared = ""
    if before.by_guard:
        cleared = f" (the risk guard is cleared: {before.reason}; its equity peak starts again from now)"
    elif not before.active:
        cleared = f" (was {before.mode.words})"
    return f"active: copying resumed{cleared}"
