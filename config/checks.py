"""Cross-field checks: the second pass, run on a config whose every key already has a valid shape.

Each check names all the keys involved, so a person knows which two lines disagree.
"""

from __future__ import annotations

import os
from collections.abc import Hashable, Iterator

from .errors import ConfigProblem
from .model import AppConfig, TerminalConfig, VolumeMode


def cross_field_problems(config: AppConfig) -> list[ConfigProblem]:
    """Every problem that only shows when several keys are looked at together."""
    problems: list[ConfigProblem] = []
    problems.extend(_timeout_problems(config))
    problems.extend(_lot_range_problems(config))
    problems.extend(_fixed_lot_problems(config))
    problems.extend(_duplicate_terminal_problems(config))
    return problems


def _located_terminals(config: AppConfig) -> Iterator[tuple[str, TerminalConfig]]:
    # Key paths as the file spells them: "source", "targets[0]", ...
    yield "source", config.source
    for index, target in enumerate(config.targets):
        yield f"targets[{index}]", target.terminal


def _timeout_problems(config: AppConfig) -> Iterator[ConfigProblem]:
    coordinator = config.coordinator
    # A worker must get several chances to answer a ping before it is declared gone.
    if not coordinator.worker_timeout > coordinator.heartbeat_interval:
        yield ConfigProblem(
            "coordinator.worker_timeout",
            f"must be greater than coordinator.heartbeat_interval ({coordinator.heartbeat_interval!r}), "
            f"got {coordinator.worker_timeout!r}",
        )


def _lot_range_problems(config: AppConfig) -> Iterator[ConfigProblem]:
    for index, target in enumerate(config.targets):
        copy = target.copy
        if copy.min_lot is not None and copy.max_lot is not None and copy.max_lot < copy.min_lot:
            yield ConfigProblem(
                f"targets[{index}].max_lot",
                f"must be at least targets[{index}].min_lot ({copy.min_lot!r}), got {copy.max_lot!r}",
            )


def _fixed_lot_problems(config: AppConfig) -> Iterator[ConfigProblem]:
    # fixed_lot without volume_mode = "fixed" would be silently ignored: the person meant something by it.
    for index, target in enumerate(config.targets):
        copy = target.copy
        fixed = copy.volume_mode is VolumeMode.FIXED
        if fixed and copy.fixed_lot is None:
            yield ConfigProblem(f"targets[{index}].fixed_lot", 'required when volume_mode = "fixed"')
        elif not fixed and copy.fixed_lot is not None:
            yield ConfigProblem(f"targets[{index}].fixed_lot", 'only used with volume_mode = "fixed"')


def _duplicate_terminal_problems(config: AppConfig) -> Iterator[ConfigProblem]:
    # Names are compared ignoring case because they become file names, and Windows ignores case.
    first_name: dict[Hashable, tuple[str, str]] = {}
    # Paths are compared the way the operating system compares them.
    first_path: dict[Hashable, str] = {}
    first_account: dict[Hashable, str] = {}
    for where, terminal in _located_terminals(config):
        name_key = terminal.name.casefold()
        if name_key in first_name:
            other_where, other_name = first_name[name_key]
            if other_name == terminal.name:
                message = f"duplicate terminal name {terminal.name!r} (also used by {other_where})"
            else:
                message = (
                    f"duplicate terminal name {terminal.name!r} (also used by {other_where} as "
                    f"{other_name!r}; names must differ by more than letter case)"
                )
            yield ConfigProblem(f"{where}.name", message)
        else:
            first_name[name_key] = (where, terminal.name)

        path_key = os.path.normcase(str(terminal.path))
        if path_key in first_path:
            yield ConfigProblem(
                f"{where}.path",
                f"duplicate terminal path '{terminal.path}' (also used by {first_path[path_key]})",
            )
        else:
            first_path[path_key] = where

        account_key = (terminal.login, terminal.server)
        if account_key in first_account:
            yield ConfigProblem(
                f"{where}.login",
                f"duplicate account: login {terminal.login} on server {terminal.server!r} "
                f"(also used by {first_account[account_key]})",
            )
        else:
            first_account[account_key] = where
