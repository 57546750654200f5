"""The ``mt5-copier`` command."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from loguru import logger

from config import AppConfig, ConfigError, CopySettings, VolumeMode, config_notes, load_config
from config.exit_codes import ExitCode, StatusExitCode
from config.logs import add_log_file, setup_console
from coordinator import __version__


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mt5-copier",
        description="Copy pending orders from one MetaTrader 5 account to many others.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run = commands.add_parser("run", help="start the coordinator and its workers")
    run.add_argument("--config", required=True, type=Path, help="TOML config file")
    run.add_argument("--once", action="store_true",
                     help=f"one full sync, a summary, and exit ({ExitCode.OK:d} = all done)")
    run.add_argument("--dry-run", action="store_true",
                     help="with --once: print what would be placed, modified, replaced, removed, closed or skipped on "
                          f"every target and why, sending nothing (exit {ExitCode.OK:d})")

    check = commands.add_parser("check-config", help="validate a config file, and that each sim terminal exists "
                                                     f"here; exit {ExitCode.OK:d} valid, {ExitCode.CONFIG_ERROR:d} "
                                                     "invalid")
    check.add_argument("--config", required=True, type=Path,
                       help="TOML config file: the coordinator's, or a worker file (worker.toml)")

    from coordinator.cli.keys import add_arguments as add_keys_arguments

    keys = commands.add_parser("keys", help="make a CURVE key pair for the coordinator or a remote worker (keys new "
                                            "NAME --dir DIR)")
    add_keys_arguments(keys)

    from terminal_worker.main import add_arguments as add_worker_arguments

    worker = commands.add_parser("worker", help="run one terminal worker (started by the coordinator, or by "
                                                "hand on another machine)")
    add_worker_arguments(worker)

    status = commands.add_parser("status", help="whether the coordinator runs, and each terminal's health as it last "
                                                f"saw it; exit {StatusExitCode.HEALTHY:d} all healthy, "
                                                f"{StatusExitCode.DEGRADED:d} degraded, "
                                                f"{StatusExitCode.NOT_RUNNING:d} not running")
    status.add_argument("--config", required=True, type=Path, help="TOML config file")
    status.add_argument("--json", action="store_true", help="print one JSON object (for scripts and health checks)")

    from coordinator.cli.reload import add_arguments as add_reload_arguments

    reload = commands.add_parser("reload", help="make the running coordinator re-read its config file; exit "
                                                f"{ExitCode.OK:d} applied, {ExitCode.CONFIG_ERROR:d} refused, "
                                                f"{ExitCode.FATAL:d} no coordinator running")
    add_reload_arguments(reload)

    from coordinator.cli.remove_copies import add_arguments as add_remove_copies_arguments

    remove_copies = commands.add_parser(
        "remove-copies", help="the kill switch: the running coordinator pauses a target and removes the copier's "
                              f"pending copies there (and closes its copy positions with --positions); exit "
                              f"{ExitCode.OK:d} all done, {ExitCode.INCOMPLETE:d} something failed or unknown, "
                              f"{ExitCode.CONFIG_ERROR:d} refused, nothing removed")
    add_remove_copies_arguments(remove_copies)

    from coordinator.cli.controls import add_pause_arguments, add_resume_arguments

    pause = commands.add_parser("pause", help="stop sending to a target (every target without --target), or with "
                                              "--close-only let only what reduces its exposure through; works "
                                              "whether the coordinator runs or not (applied within a second)")
    add_pause_arguments(pause)
    resume = commands.add_parser("resume", help="copy to a paused or close-only target again (also clears a "
                                                "tripped max_drawdown_percent guard)")
    add_resume_arguments(resume)

    history = commands.add_parser("history", help="show what the copier did, newest first")
    history.add_argument("--config", required=True, type=Path, help="TOML config file")
    history.add_argument("--target", metavar="NAME", help="only this target's events")
    history.add_argument("--since", metavar="WHEN",
                         help="only events from then on: 2026-11-24, 2026-11-24T10:00, or an age: 45s, 30m, 2h, 1d")
    history.add_argument("--limit", type=int, default=50, metavar="N", help="at most N events (default 50)")

    from coordinator.cli.import_config import add_arguments as add_import_config_arguments

    import_config = commands.add_parser(
        "import-config", help="write a TOML config from MT5-Order-Copier's config.py (read, never run); exit "
                              f"{ExitCode.OK:d} written, {ExitCode.CONFIG_ERROR:d} not readable as one, or --out "
                              "exists without --force")
    add_import_config_arguments(import_config)

    demo = commands.add_parser("demo", help="watch the copier work on simulated terminals (no MT5 needed)")
    demo.add_argument("--duration", type=float, default=30.0, help="seconds to run (default 30)")
    demo.add_argument("--dir", type=Path, default=None,
                      help="where to create the demo's terminals and state (default: a temporary folder)")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "worker":
        from terminal_worker.main import run as run_worker

        return run_worker(args)
    if args.command == "keys":
        from coordinator.cli.keys import run as run_keys

        return run_keys(args)
    setup_console("coordinator")
    if args.command == "check-config":
        return check_config(args.config)
    if args.command == "run":
        if args.dry_run and not args.once:
            print("run --dry-run plans one sync and sends nothing: use it with --once "
                  f"(mt5-copier run --config {args.config} --once --dry-run)", file=sys.stderr)
            return ExitCode.CONFIG_ERROR
        return run(args.config, once=args.once, dry_run=args.dry_run)
    if args.command in ("status", "history"):
        return operator_command(args)
    if args.command == "reload":
        from coordinator.cli.reload import run as run_reload

        return run_reload(args)
    if args.command == "remove-copies":
        from coordinator.cli.remove_copies import run as run_remove_copies

        return run_remove_copies(args)
    if args.command in ("pause", "resume"):
        from coordinator.cli.controls import run as run_controls

        return run_controls(args)
    if args.command == "import-config":
        from coordinator.cli.import_config import run as run_import_config

        return run_import_config(args)
    if args.command == "demo":
        from coordinator.cli.demo import run_demo

        return run_demo(duration=args.duration, directory=args.dir)
    return ExitCode.CONFIG_ERROR  # not reached: argparse refuses an unknown command (also with 2)


def check_config(path: Path) -> int:
    """Validate the file, and also that each local sim terminal exists on this machine (``run`` does not
    refuse a missing one: it copies to the other targets and reports that terminal)."""
    from config.worker_file import is_worker_file
    from coordinator.cli.operator import write_out

    if is_worker_file(path):  # a worker on another machine: its terminal and its link
        from terminal_worker.check import check_worker_file

        return check_worker_file(path, write_out)
    try:
        config = load_config(path, check_terminal_folders=True)
    except ConfigError as e:
        print(e, file=sys.stderr)
        return ExitCode.CONFIG_ERROR
    lines = [f"{path}: valid"]
    for terminal in config.terminals():
        where = "remote worker" if terminal.remote else "local worker"
        lines.append(f"  {terminal.role.value:<6} {terminal.name}: {terminal.backend.value} terminal {terminal.path}, "
                     f"account {terminal.login}@{terminal.server} ({where})")
        if terminal.password_env and terminal.password() is None:
            lines.append(f"    note: environment variable {terminal.password_env} is not set here; the terminal's "
                         "saved password will be used")
    for target in config.targets:
        copy = target.copy
        types = ", ".join(sorted(kind.value for kind in copy.order_types))
        lines.append(f"  {target.name}: {_volume_rule(copy)}, types {types}, orphans {copy.orphans.policy.value}"
                     f"{', disabled' if not copy.enabled else ''}")
    alerts = _alerts_line(config, path)
    if alerts is None:
        return ExitCode.CONFIG_ERROR
    lines.append(alerts)
    lines.extend(f"  note: {note}" for note in config_notes(config))
    write_out("\n".join(lines) + "\n")
    return ExitCode.OK


def _alerts_line(config: AppConfig, path: Path) -> str | None:
    """Where alerts go, each URL named by where it is (never by its text), once apprise accepted every one, as
    ``run`` checks them; None (the problems printed) when it does not, or ``urls_env`` is not set here."""
    from coordinator.runtime.alerts import alerts_from_config

    alerts = config.alerts
    if not alerts.urls and alerts.urls_env is None:
        return "  alerts: none ([alerts] urls)"
    try:
        sender = alerts_from_config(alerts, str(path))
    except ConfigError as e:
        print(e, file=sys.stderr)
        return None
    return f"  alerts: {', '.join(sender.names)}; at most one per {alerts.min_interval:g} s about the same thing"


def _volume_rule(copy: CopySettings) -> str:
    if copy.volume_mode is VolumeMode.FIXED:
        return f"{copy.fixed_lot} lots each"
    if copy.volume_mode is VolumeMode.MULTIPLIER:
        return f"lots x{copy.lot_multiplier}"
    ratio = "balance" if copy.volume_mode is VolumeMode.BALANCE_RATIO else "equity"
    return f"lots x{copy.lot_multiplier} x the {ratio} ratio"


def operator_command(args: argparse.Namespace) -> int:
    from coordinator.cli.operator import history_command, status_command

    try:
        config = load_config(args.config)
    except ConfigError as e:
        print(e, file=sys.stderr)
        return StatusExitCode.CONFIG_ERROR if args.command == "status" else ExitCode.CONFIG_ERROR
    if args.command == "status":
        return status_command(config, as_json=args.json)
    return history_command(config, target=args.target, since=args.since, limit=args.limit)


def run(path: Path, *, once: bool, dry_run: bool = False) -> int:
    from coordinator.runtime.runner import Coordinator, install_signal_handlers

    try:
        config = load_config(path)
    except ConfigError as e:
        logger.error("{}", e)
        return ExitCode.CONFIG_ERROR
    setup_console("coordinator", config.coordinator.log_level)
    add_log_file(config.coordinator.state_dir / "logs", "coordinator")
    for note in config_notes(config):
        logger.warning("{}", note)
    coordinator = Coordinator(config, once=once, dry_run=dry_run)
    install_signal_handlers(coordinator)
    try:
        return coordinator.run()
    except Exception:
        logger.exception("the coordinator crashed")
        return ExitCode.FATAL


if __name__ == "__main__":
    raise SystemExit(main())
