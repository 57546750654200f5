"""``mt5-copier remove-copies --config FILE --target NAME [--positions] [--yes]``: the kill switch.

The running coordinator does it (coordinator/runtime/kill_switch.py), as it holds the terminals and the copies'
records: this command checks the config and the target, finds the coordinator by the lock on the ``state_dir``,
asks it what it would remove and asks the user to confirm (unless ``--yes``), then asks it to pause the target and
remove every pending copy there (and close the copy positions, with ``--positions``), the copier's own only, and
prints what was removed, closed or not. Exit codes: 0 all done, 1 something failed or its outcome is unknown,
2 refused and nothing removed (a config error, an unknown target, no coordinator running, no terminal to ask on,
no confirmation).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path

from config import ConfigError, load_config
from config.exit_codes import ExitCode
from coordinator.cli.operator import write_out
from coordinator.runtime.instance_lock import running_coordinator_pid
from coordinator.runtime.kill_switch import (
    EXTRA_WAIT_SECONDS,
    REMOVE_COPIES,
    TO_CLOSE,
    CopyOutcome,
    KillSwitchAnswer,
    KillSwitchRequest,
)
from coordinator.runtime.operator_requests import ANSWER_TIMEOUT_SECONDS, CoordinatorGone, NoAnswer, ask_coordinator

REFUSED = ExitCode.CONFIG_ERROR  # 2: refused, nothing removed
NOT_ALL_DONE = ExitCode.INCOMPLETE  # 1: something failed, or its outcome is unknown


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", required=True, type=Path, help="the TOML config file the coordinator runs on")
    parser.add_argument("--target", required=True, metavar="NAME", help="the target to take the copies off")
    parser.add_argument("--positions", action="store_true",
                        help="close the copies' positions too (the copier's tagged copy positions only)")
    parser.add_argument("--yes", action="store_true", help="do not ask for confirmation")


def run(args: argparse.Namespace) -> int:
    return remove_copies_command(args.config, args.target, positions=args.positions, yes=args.yes)


def remove_copies_command(path: Path, target: str, *, positions: bool = False, yes: bool = False,
                          interactive: Callable[[], bool] = lambda: sys.stdin.isatty(),
                          confirm: Callable[[str], str] = input) -> int:
    try:
        config = load_config(path)
    except ConfigError as e:
        print(e, file=sys.stderr)
        return _refused("the config does not load")
    names = [t.name for t in config.targets]
    if target not in names:
        return _refused(f"{config.path} has no target {target} (its targets: {', '.join(names) or 'none'})")
    state_dir = config.coordinator.state_dir
    pid = running_coordinator_pid(state_dir)
    if pid is None:
        return _refused(f"no coordinator is running on {state_dir} (the state_dir of {config.path}), so there is no "
                        f"terminal to ask on: the kill switch works through the running coordinator. Start it "
                        f"(`mt5-copier run --config {config.path}`) and run this again")
    if not yes and not interactive():
        return _refused("remove-copies asks for confirmation and there is no terminal to ask on (stdin is not a "
                        "terminal); pass --yes to remove without asking")
    asker = _Asker(state_dir, pid)
    if not yes:
        preview = asker.ask(KillSwitchRequest(target, positions=positions, preview=True), ANSWER_TIMEOUT_SECONDS)
        if isinstance(preview, int):
            return REFUSED  # only a question: nothing can have been removed
        if preview.refused:
            return _refused(preview.refused)
        write_out(_preview_text(target, preview))
        if confirm(_question(target, preview)).strip().lower() not in ("y", "yes"):
            return _refused("not confirmed")
    timeout = config.coordinator.command_timeout + EXTRA_WAIT_SECONDS + 5.0
    answer = asker.ask(KillSwitchRequest(target, positions=positions), timeout)
    if isinstance(answer, int):
        return answer
    if answer.refused:
        return _refused(answer.refused)
    write_out(_outcome_text(target, pid, answer))
    return ExitCode.OK if answer.complete else NOT_ALL_DONE


class _Asker:
    """Asks the coordinator on ``state_dir``; says what went wrong when it did not answer (as an exit code)."""

    def __init__(self, state_dir: Path, pid: int) -> None:
        self._state_dir, self._pid = state_dir, pid

    def ask(self, request: KillSwitchRequest, timeout: float) -> KillSwitchAnswer | int:
        state_dir, pid = self._state_dir, self._pid
        try:
            body = ask_coordinator(state_dir, REMOVE_COPIES, request.to_body(), timeout=timeout,
                                   still_running=lambda: running_coordinator_pid(state_dir) is not None)
        except CoordinatorGone as e:
            print(f"remove-copies: {e} (pid {pid} on {state_dir}); `mt5-copier history --target {request.target}` "
                  "shows what was removed", file=sys.stderr)
            return NOT_ALL_DONE
        except NoAnswer as e:
            print(f"remove-copies: coordinator pid {pid}: {e}", file=sys.stderr)
            return NOT_ALL_DONE if e.taken else REFUSED
        except OSError as e:
            print(f"remove-copies: cannot ask the coordinator (pid {pid}) through {state_dir}: {e}", file=sys.stderr)
            return REFUSED
        return KillSwitchAnswer.from_body(body)


def _refused(why: str) -> int:
    print(f"remove-copies refused: {why}. Nothing was removed.", file=sys.stderr)
    return REFUSED


def _copy_text(item: CopyOutcome) -> str:
    kind = "position" if item.what == "position" else "order"
    return f"{kind} #{item.copy_ticket} {item.symbol} {item.volume:g} lots, copy of source #{item.source_ticket}"


def _preview_text(target: str, preview: KillSwitchAnswer) -> str:
    lines = [f"the copier's own on {target}:" if preview.items else f"no copies of the copier on {target}"]
    for item in preview.items:
        lines.append(f"  {'close ' if item.outcome == TO_CLOSE else 'remove'}  {_copy_text(item)}")
    lines.extend(f"  {note}" for note in preview.notes)
    return "\n".join(lines) + "\n"


def _question(target: str, preview: KillSwitchAnswer) -> str:
    closes = sum(1 for item in preview.items if item.outcome == TO_CLOSE)
    removals = len(preview.items) - closes
    if not preview.items:
        return f"Nothing to remove; pause {target} anyway? [y/N] "
    remove = f"Remove {removals} cop{'ies' if removals != 1 else 'y'}" if removals else ""
    close = f"close {closes} position{'s' if closes != 1 else ''}" if closes else ""
    what = f"{remove} and {close}" if remove and close else (remove or close.capitalize())
    return f"{what} on {target}? [y/N] "


def _outcome_text(target: str, pid: int, answer: KillSwitchAnswer) -> str:
    lines = [f"remove-copies on {target} (coordinator pid {pid}):"]
    if not answer.items:
        lines.append("  no copies of the copier there: nothing to remove")
    for item in answer.items:
        word = item.outcome if item.done else item.outcome.upper()
        detail = f": {item.detail}" if item.detail else ""
        lines.append(f"  {word:<8} {_copy_text(item)}{detail}")
    lines.extend(f"  {note}" for note in answer.notes)
    done = sum(1 for item in answer.items if item.done)
    left = len(answer.items) - done
    code = ExitCode.OK if answer.complete else NOT_ALL_DONE
    lines.append(f"result: {done} of {len(answer.items)} copies taken off"
                 + (f"; {left} failed or unknown" if left else "") + f" (exit code {code:d})")
    return "\n".join(lines) + "\n"
