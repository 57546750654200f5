"""``run --once --dry-run``: a whole ``--once`` sync (workers started, hellos, snapshots, symbol specifications and
history asked as usual: those are questions, not trades) that sends nothing to any target and writes nothing to
the state, and prints the plan instead (coordinator/runtime/summary.py ``render_dry_run``).

"Nothing is sent" does not rest on conditions scattered through the engine; three walls stand where things
would otherwise go out, each enough alone:

- the plans' actions go to a ``PlanOnlyDispatcher`` in the Dispatcher's place: it keeps them for the report and
  has nothing to send them with (no wire, no ledger, so no intent is ever recorded);
- the engine's wire refuses any command batch (``questions_only``): only questions (symbols, history) and the
  sessions' own messages (welcome, shutdown) pass;
- the engine books what it finds while planning (copies found on a target, links whose copy left, orphan counts,
  the status board, the history of those) in a scratch copy of the state (``ScratchState``), deleted at the end:
  the state file itself is only read, so its links, intents and history are as they were.

One plan per target: the plan as it stands once the facts it asked for (symbols, prices, history) have arrived,
which is what the first round of a real ``--once`` would send. Later rounds of a real run follow from what the
first one did (a replaced copy's new ticket, a retry after a failure); with nothing done, a dry run's later
rounds would only repeat the first.
"""

from __future__ import annotations

import sqlite3
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from loguru import logger

from config import AppConfig
from coordinator.domain.actions import Action
from coordinator.persistence.state import DATABASE_NAME, StateStore
from coordinator.runtime.dispatch import Outgoing, SendFunction, first_per_order
from coordinator.runtime.engine import Engine
from coordinator.runtime.views import TerminalView
from protocol import CommandBatch, Message


class DryRun:
    """The three walls, for the runner to build its engine with: ``DryRun(state_dir)`` copies the state (a newer
    version's file raises ``StateError``, as for a real run), ``engine(...)`` builds an engine behind the walls,
    ``dispatcher.planned`` is what it would have sent, ``close()`` removes the copy."""

    def __init__(self, state_dir: Path) -> None:
        self.scratch = ScratchState(state_dir)
        self.dispatcher = PlanOnlyDispatcher()

    @property
    def state(self) -> StateStore:
        return self.scratch.store

    def engine(self, config: AppConfig, send: SendFunction, **options: Any) -> Engine:
        """An engine on the scratch state, its wire refusing commands, its plans going to the plan-only
        dispatcher; ``options``: the Engine's clocks."""
        return Engine(config, self.state, questions_only(send), dispatcher=self.dispatcher, **options)

    def close(self) -> None:
        self.scratch.close()


class CommandsRefused(RuntimeError):
    """A command batch reached the wire of a dry run: a bug (the plan-only dispatcher has nothing to send with)."""


class PlanOnlyDispatcher:
    """Stands where the Dispatcher stands in a dry run: takes each target's planned actions, as the Dispatcher
    would choose them (at most one per source order), and keeps the latest for the report. It is given no send
    function and no ledger: nothing handed to it can reach a worker or the state."""

    def __init__(self) -> None:
        self.planned: dict[str, list[Action]] = {}  # target -> what its last plan would send

    def send(self, view: TerminalView, actions: Sequence[Action], now: float,
             fingerprints: Mapping[int, tuple]) -> int:
        self.planned[view.name] = first_per_order(actions)
        return 0  # nothing went out

    def send_all(self, outgoing: Sequence[Outgoing], now: float, fingerprints: Mapping[int, tuple]) -> int:
        for each in outgoing:
            self.planned[each.view.name] = first_per_order(each.actions)
        return 0  # nothing went out


def questions_only(send: SendFunction) -> SendFunction:
    """``send``, refusing any command batch (raises ``CommandsRefused``); questions and the sessions' own messages
    pass."""

    def guarded(name: str, message: Message) -> bool:
        if isinstance(message, CommandBatch):
            raise CommandsRefused(f"a dry run sends no commands: a batch of {len(message.commands)} for {name} "
                                  "was stopped")
        return send(name, message)

    return guarded


class ScratchState:
    """A copy of the state file in a temporary folder, for the dry run's engine to book into; removed by
    ``close``. The state file is opened read-only, only to be copied."""

    def __init__(self, state_dir: Path) -> None:
        self._folder = tempfile.TemporaryDirectory(prefix="mt5-copier-dry-run-")
        scratch = Path(self._folder.name)
        real = state_dir / DATABASE_NAME
        if _copy_database(real, scratch / DATABASE_NAME):
            logger.info("dry run: nothing is sent to any target; planning on a copy of the state in {} (the state "
                        "file {} is not changed)", scratch, real)
        else:
            logger.info("dry run: nothing is sent to any target; no usable state file at {}: planning as a first run "
                        "would, on an empty state in {}", real, scratch)
        try:
            self.store = StateStore(scratch)  # StateError (a newer version's file) as for a real run
        except BaseException:
            self._folder.cleanup()
            raise

    def close(self) -> None:
        self.store.close()
        self._folder.cleanup()


def _copy_database(real: Path, copy: Path) -> bool:
    """Copy the state file ``real`` to ``copy``; False when there is none (or it cannot be read): the copy then
    starts empty, as a first real run would."""
    if not real.exists():
        return False
    source = None
    try:
        source = sqlite3.connect(real.resolve().as_uri() + "?mode=ro", uri=True)
        with sqlite3.connect(copy) as target:
            source.backup(target)
        target.close()
    except sqlite3.Error as e:
        logger.warning("dry run: the state file {} could not be read ({}); planning as if it were empty (copies "
                       "are recognised by their tags on the terminals)", real, e)
        copy.unlink(missing_ok=True)
        return False
    finally:
        if source is not None:
            source.close()
    return True
