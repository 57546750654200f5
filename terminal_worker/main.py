"""``mt5-copier worker``: run one terminal worker.

The coordinator starts local workers exactly like this; on another machine a user starts it by hand with
the same config file and ``--connect tcp://COORDINATOR:PORT``.
"""

from __future__ import annotations

import argparse
import signal
import sys
from pathlib import Path

from loguru import logger

from config import ConfigError, load_config
from config.exit_codes import ExitCode
from config.logs import add_log_file, setup_console
from terminal_worker.adapter import MT5Adapter
from terminal_worker.backends import BackendUnavailable, load_backend
from terminal_worker.lock import TerminalLock
from terminal_worker.worker import Worker

# How long a new worker waits for an older one holding the terminal's lock: long enough for one that is
# exiting (an orphan notices its coordinator is gone within a second), short enough to tell the person soon.
LOCK_GRACE_SECONDS = 10.0


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", required=True, type=Path, help="the copier's TOML config file")
    parser.add_argument("--terminal", required=True, help="the name of the terminal ([source] or [[targets]])")
    parser.add_argument("--connect", help="coordinator endpoint (default: coordinator.bind from the config)")
    parser.add_argument("--parent-pid", type=int, help=argparse.SUPPRESS)  # set by a spawning coordinator
    parser.add_argument("--console-level", help="console log level (default: coordinator.log_level)")


def run(args: argparse.Namespace) -> ExitCode:
    setup_console(f"worker:{args.terminal}")
    try:
        config = load_config(args.config)
        terminal = config.terminal(args.terminal)
    except ConfigError as e:
        logger.error("{}", e)
        return ExitCode.CONFIG_ERROR
    except KeyError as e:
        logger.error("{}", e.args[0] if e.args else e)
        return ExitCode.CONFIG_ERROR
    setup_console(f"worker:{terminal.name}", (args.console_level or config.coordinator.log_level).upper())
    add_log_file(config.coordinator.state_dir / "logs", f"worker-{terminal.name}")
    endpoint = args.connect or config.coordinator.bind
    if endpoint.endswith(":*"):
        logger.error("coordinator.bind {} picks a random port: pass --connect with the real endpoint", endpoint)
        return ExitCode.CONFIG_ERROR
    try:
        module = load_backend(terminal.backend.value)
    except BackendUnavailable as e:
        logger.error("{}", e)
        return ExitCode.CONFIG_ERROR
    password = terminal.password()
    if terminal.password_env and password is None:
        logger.warning("{}: environment variable {} is not set; using the password saved in the terminal",
                       terminal.name, terminal.password_env)
    adapter = MT5Adapter(
        module,
        path=terminal.path,
        login=terminal.login,
        server=terminal.server,
        password=password,
        timeout_ms=int(terminal.connect_timeout * 1000),
        portable=terminal.portable,
    )
    worker = Worker(
        name=terminal.name,
        role=terminal.role.value,
        backend=terminal.backend.value,
        adapter=adapter,
        endpoint=endpoint,
        poll_interval=terminal.poll_interval,
        heartbeat_interval=config.coordinator.heartbeat_interval,
        coordinator_timeout=config.coordinator.worker_timeout,
        parent_pid=args.parent_pid,
    )
    _install_signal_handlers(worker)
    lock = TerminalLock(config.coordinator.state_dir / "locks" / f"{terminal.name}.lock")
    if not lock.acquire(LOCK_GRACE_SECONDS, should_stop=lambda: worker.exit_code is not None):
        if worker.exit_code is not None:
            return worker.exit_code  # stopped (a signal) while waiting
        holder = lock.holder_pid()
        logger.critical("{}: another worker (pid {}) runs for this terminal on this machine and still holds {} "
                        "after {:.0f}s; refusing to run a second one. Stop that one first, or, if the coordinator "
                        "starts this terminal's worker itself, do not start one by hand (remote = true is for "
                        "workers on other machines)", terminal.name, holder or "unknown", lock.path,
                        LOCK_GRACE_SECONDS)
        return ExitCode.CONFIG_ERROR  # the coordinator's supervisor does not restart a worker that exits so
    try:
        return worker.run()
    except Exception:
        logger.exception("worker {} crashed", terminal.name)
        return ExitCode.FATAL
    finally:
        lock.release()


def _install_signal_handlers(worker: Worker) -> None:
    def stop(signum: int, _frame: object) -> None:
        worker.request_stop(f"signal {signal.Signals(signum).name}", ExitCode.OK)

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    if sys.platform == "win32":
        signal.signal(signal.SIGBREAK, stop)  # what a coordinator sends to a CREATE_NEW_PROCESS_GROUP child


def main(argv: list[str] | None = None) -> ExitCode:
    parser = argparse.ArgumentParser(prog="mt5-copier worker", description=__doc__)
    add_arguments(parser)
    return run(parser.parse_args(argv))
