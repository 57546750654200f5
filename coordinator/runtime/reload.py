"""A reload: the running coordinator re-reads its config file and applies it, or refuses it as a whole.

Asked by ``mt5-copier reload`` (coordinator/runtime/reload_requests.py) or by SIGHUP; runs on the coordinator's
one loop thread, between two messages. A config that does not load, or that changes what only a restart can
(coordinator/runtime/config_changes.py), is refused whole: the running config goes on, and every problem is
logged and answered. Otherwise each part gets its share: the engine every target's state (``Engine.apply_config``),
the hub the keys that may connect, the supervisor the local worker processes.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from loguru import logger

from config import AppConfig, ConfigError, load_config
from coordinator.runtime.config_changes import ConfigChanges, config_changes
from coordinator.runtime.engine import Engine
from coordinator.runtime.link_keys import prepare_link_keys
from coordinator.runtime.reload_requests import ReloadResult
from coordinator.runtime.supervisor import Supervisor
from protocol.curve import KeyFileError


class KeyedHub(Protocol):
    """What a reload needs of the hub: the keys allowed to connect."""

    def allow_keys(self, allowed_keys: Mapping[bytes, str]) -> None: ...


@dataclass(frozen=True)
class Reloaded:
    result: ReloadResult
    config: AppConfig | None = None  # the config now running (None: refused, the old one goes on)


def same_file(a: Path, b: Path) -> bool:
    """Whether two paths name one file (resolved; case-insensitively where the file system is, as on Windows)."""
    return os.path.normcase(a.resolve()) == os.path.normcase(b.resolve())


def reload_config(current: AppConfig, engine: Engine, hub: KeyedHub, supervisor: Supervisor, *,
                  requested: Path | None = None) -> Reloaded:
    """Re-read ``current``'s file and apply it. ``requested``: the file a ``reload`` command named; it must be
    the one the coordinator runs on."""
    assert current.path is not None  # the runner only runs a config read from a file
    if requested is not None and not same_file(requested, current.path):
        return _refused([f"this coordinator runs on {current.path}, not {requested}: a reload re-reads the file "
                         "the coordinator was started with; edit that file and name it"])
    try:
        new = load_config(current.path)
    except ConfigError as e:
        return _refused([str(problem) for problem in e.problems])
    changes = config_changes(current, new)
    if changes.needs_restart:
        return _refused(list(changes.needs_restart))
    try:
        _, allowed_keys = prepare_link_keys(new)
    except KeyFileError as e:
        return _refused([str(e)])
    except OSError as e:
        return _refused([f"cannot write the local workers' key pairs: {e}"])
    hub.allow_keys(allowed_keys)  # before any worker the reload adds can connect
    engine.apply_config(new)
    _apply_to_processes(current, new, changes, supervisor)
    described = changes.describe()
    logger.info("config reloaded from {}: {}", current.path, "; ".join(described))
    return Reloaded(ReloadResult(applied=True, changes=tuple(described)), new)


def _refused(problems: list[str]) -> Reloaded:
    logger.error("reload refused; the running config goes on ({} {}):\n{}", len(problems),
                 "problem" if len(problems) == 1 else "problems", "\n".join(f"  {p}" for p in problems))
    return Reloaded(ReloadResult(applied=False, problems=tuple(problems)))


def _apply_to_processes(old: AppConfig, new: AppConfig, changes: ConfigChanges, supervisor: Supervisor) -> None:
    """The local workers: started for added terminals, stopped for removed or disabled ones (the engine told
    them why), restarted with the new entry for changed ones; a terminal that became remote or local changes
    hands. Workers of unchanged terminals are left alone."""
    for name in changes.stopped:
        if not old.terminal(name).remote:
            supervisor.retire(name)
    for name in changes.added:
        terminal = new.terminal(name)
        if not terminal.remote:
            supervisor.add(terminal)
    for name in changes.restarted:
        before, after = old.terminal(name), new.terminal(name)
        if not after.remote:
            (supervisor.restart if not before.remote else supervisor.add)(after)
        elif not before.remote:
            supervisor.retire(name)
