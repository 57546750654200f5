"""``mt5-copier worker``: run one terminal worker.

On another machine a person starts it with a worker file (``worker.toml``: its terminal and its link, see
``config/worker_model.py``); the coordinator starts its local workers with its own config and ``--terminal``,
and a worker can still be started by hand that way too.
"""

from __future__ import annotations

import argparse
import signal
import sys
from pathlib import Path

from loguru import logger

from config import ConfigError
from config.exit_codes import ExitCode
from config.logs import add_log_file, setup_console
from terminal_worker.adapter import MT5Adapter
from terminal_worker.backends import BackendUnavailable, load_backend
from terminal_worker.lock import TerminalLock
from terminal_worker.plan import PlanError, plan_worker
from terminal_worker.worker import Worker

# How long a new worker waits for an older one holding the terminal's lock: long enough for one that is
# exiting (an orphan notices its coordinator is gone within a second), short enough to tell the person soon.
LOCK_GRACE_SECONDS = 10.0


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", required=True, type=Path,
                        help="a worker file (worker.toml), or the coordinator's config file with --terminal")
    parser.add_argument("--terminal", help="the terminal's name; required with the coordinator's config ([source] or "
                                           "[[targets]]), optional with a worker file (it must then be its name)")
    parser.add_argument("--connect", help="coordinator endpoint (default: [link] connect of a worker file, or "
                                          "coordinator.bind of the coordinator's config)")
    parser.add_argument("--parent-pid", type=int, help=argparse.SUPPRESS)  # set by a spawning coordinator
    parser.add_argument("--console-level", help="console log level (default: the config's log_level)")


def run(args: argparse.Namespace) -> ExitCode:
    setup_console(f"worker:{args.terminal or args.config.stem}")
    try:
        plan = plan_worker(args)
    except (ConfigError, PlanError) as e:
        logger.error("{}", e)
        return ExitCode.CONFIG_ERROR
    terminal = plan.terminal
    setup_console(f"worker:{terminal.name}", (args.console_level or plan.log_level).upper())
    add_log_file(plan.state_dir / "logs", f"worker-{terminal.name}")
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
        role=plan.role,
        backend=terminal.backend.value,
        adapter=adapter,
        endpoint=plan.endpoint,
        poll_interval=terminal.poll_interval,
        heartbeat_interval=plan.heartbeat_interval,
        coordinator_timeout=plan.worker_timeout,
        parent_pid=args.parent_pid,
        worker_file=plan.worker_file,
        curve=plan.curve,
    )
    _install_signal_handlers(worker)
    lock = TerminalLock(plan.state_dir / "locks" / f"{terminal.name}.lock")
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
