"""``mt5-copier reload --config FILE``: the running coordinator re-reads its config file and applies it.

The command checks the file first (one that does not load is refused here, and the coordinator is not asked),
finds the coordinator by the lock on the file's ``state_dir`` (``coordinator.runtime.instance_lock``), then asks
it through ``state_dir/requests/`` (coordinator/runtime/reload_requests.py) and waits for its answer. Exit codes:
0 applied, 2 refused (every problem printed), 3 no coordinator running on that ``state_dir`` (or it did not
answer).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from config import ConfigError, load_config
from config.exit_codes import ExitCode
from coordinator.cli.operator import write_out
from coordinator.runtime.instance_lock import running_coordinator_pid
from coordinator.runtime.operator_requests import ANSWER_TIMEOUT_SECONDS, CoordinatorGone, NoAnswer
from coordinator.runtime.reload_requests import request_reload


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", required=True, type=Path,
                        help="the TOML config file the coordinator runs on, edited")


def run(args: argparse.Namespace) -> int:
    return reload_command(args.config)


def reload_command(path: Path, *, timeout: float = ANSWER_TIMEOUT_SECONDS) -> int:
    try:
        config = load_config(path)
    except ConfigError as e:
        print(e, file=sys.stderr)
        print("reload refused: the running coordinator was not asked and goes on with the config it runs",
              file=sys.stderr)
        return ExitCode.CONFIG_ERROR
    assert config.path is not None  # read from a file
    state_dir = config.coordinator.state_dir
    pid = running_coordinator_pid(state_dir)
    if pid is None:
        print(f"no coordinator is running on {state_dir} (the state_dir of {config.path}): nothing to reload; "
              "`mt5-copier run` starts one with this config", file=sys.stderr)
        return ExitCode.FATAL
    try:
        result = request_reload(state_dir, config.path, timeout=timeout,
                                still_running=lambda: running_coordinator_pid(state_dir) is not None)
    except CoordinatorGone as e:
        print(f"reload: {e} (pid {pid} on {state_dir})", file=sys.stderr)
        return ExitCode.FATAL
    except NoAnswer as e:
        print(f"reload: coordinator pid {pid}: {e}", file=sys.stderr)
        return ExitCode.FATAL
    except OSError as e:
        print(f"reload: cannot ask the coordinator (pid {pid}) through {state_dir}: {e}", file=sys.stderr)
        return ExitCode.FATAL
    if result.applied:
        write_out(f"{config.path}: reloaded by the coordinator (pid {pid})\n"
                  + "".join(f"  {line}\n" for line in result.changes))
        return ExitCode.OK
    count = len(result.problems)
    print(f"reload refused by the coordinator (pid {pid}); it goes on with the config it runs "
          f"({count} {'problem' if count == 1 else 'problems'}):", file=sys.stderr)
    for problem in result.problems:
        print(problem, file=sys.stderr)
    return ExitCode.CONFIG_ERROR
