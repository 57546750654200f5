"""The coordinator's durable memory: links, intents and the history of what was done (SQLite, WAL).

The rule that makes a crash at any instant harmless: an intent is written (and committed) *before* its
command leaves the coordinator, and settled after its outcome is known. On start-up, an unsettled intent
means "this may have happened": the coordinator resolves it against what the terminal actually holds
before it sends anything new for that order. One writer (the coordinator's single thread).
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path

import msgspec
from loguru import logger

from coordinator.domain.actions import Action, CopyTicket, SourceTicket
from coordinator.domain.link_lifecycle import PENDING_STATUSES, InvalidLinkMove, Link, LinkMove, LinkStatus, next_status
from coordinator.persistence.durability import synced, use_normal_sync
from coordinator.persistence.migrations import NewerStateError, migrate
from protocol import Command
from protocol.bounds import Number, Text

HISTORY_DAYS = 90
DATABASE_NAME = "copier.db"



class StateError(Exception):
    """The state file cannot be used (written by a newer version): do not start."""


@dataclass(frozen=True, slots=True)
class Intent:
    """What was about to be done (the action) and what was sent for it (the command)."""

    action: Action
    command: Command
    target: str
    created_at: float


@dataclass(frozen=True, slots=True)
class Event:
    at: float
    target: str
    source_ticket: int
    copy_ticket: int
    action: str
    outcome: str
    retcode: int
    message: str
    stages: str = ""  # a copy's latency stages, JSON (coordinator/domain/latency.py); "" for other events


class StateStore:
    def __init__(self, state_dir: Path) -> None:
        state_dir.mkdir(parents=True, exist_ok=True)
        self.path = state_dir / DATABASE_NAME
        self.created = not self.path.exists()  # first run, or a lost state file: the terminals tell which
        self.rebuilt = False
        self._db = self._open()
        self.prune()
        # Every plan reads the links of its target: keep them in memory, write through to disk.
        self._links: dict[str, dict[int, Link]] = {}
        # Source tickets whose link changed, per target, until the engine takes them: its incremental plans re-plan
        # those tickets (every write to a link goes through this class, so none is missed).
        self._link_changes: dict[str, set[int]] = {}
        for row in self._db.execute(
            "SELECT target, source_ticket, copy_ticket, status, symbol, volume, source_volume, price_offset FROM links"
        ):
            target, source_ticket, copy_ticket, status, symbol, volume, source_volume, price_offset = row
            self._links.setdefault(target, {})[source_ticket] = Link(
                source_ticket=source_ticket, copy_ticket=copy_ticket, status=LinkStatus(status), symbol=symbol,
                volume=volume, source_volume=source_volume, price_offset=price_offset)

    def prune(self) -> None:
        """Weeks of running must not grow the file without bound: settled intents are kept for a week,
        the history for HISTORY_DAYS."""
        now = time.time()
        self._db.execute("DELETE FROM intents WHERE settled_at IS NOT NULL AND settled_at < ?", (now - 7 * 86400,))
        self._db.execute("DELETE FROM events WHERE at < ?", (now - HISTORY_DAYS * 86400,))

    @property
    def connection(self) -> sqlite3.Connection:
        return self._db

    def _open(self) -> sqlite3.Connection:
        try:
            db = self._connect()
            self._check_version(db)
            return db
        except sqlite3.DatabaseError as e:
            # A corrupt file must not stop the copier: the terminals hold the truth (magic + tag), so links
            # are rebuilt from them. Keep the bad file for inspection.
            aside = self.path.with_name(f"{self.path.name}.corrupt-{int(time.time())}")
            logger.critical("state file {} is unreadable ({}); moved to {} and rebuilding from the terminals",
                            self.path, e, aside)
            for suffix in ("", "-wal", "-shm"):
                candidate = Path(f"{self.path}{suffix}")
                if candidate.exists():
                    candidate.rename(Path(f"{aside}{suffix}"))
            self.rebuilt = True
            db = self._connect()
            self._check_version(db)
            return db

    def _connect(self) -> sqlite3.Connection:
        db = sqlite3.connect(self.path, isolation_level=None, timeout=10.0)
        db.execute("PRAGMA journal_mode=WAL")
        use_normal_sync(db)  # intents are committed synced (coordinator/persistence/durability.py says why)
        return db

    def _check_version(self, db: sqlite3.Connection) -> None:
        try:
            migrate(db, self.path)
        except NewerStateError as e:
            db.close()
            raise StateError(str(e)) from None

    def close(self) -> None:
        self._db.close()

    # ---- intents -------------------------------------------------------------------------------

    def record_intent(self, target: str, action: Action, command: Command) -> None:
        """Durably record ``action`` and its ``command`` before the command is sent, with the link move the
        action makes on recording, in one transaction."""
        self.record_intents([(target, action, command)])

    def record_intents(self, intents: Sequence[tuple[str, Action, Command]]) -> None:
        """Durably record each (target, action, command) before any of the commands is sent, with the link moves
        the actions make on recording, all in one transaction: one write to disk for every target's commands of
        a reconcile, and either all of them are recorded or none."""
        created = time.time()
        rows = [(command.command_id, target, command.source_ticket, command.kind.value,
                 _intent_to_json(action, command), created) for target, action, command in intents]
        with synced(self._db), self._transaction():
            self._db.executemany(
                "INSERT INTO intents (command_id, target, source_ticket, kind, payload, created_at) "
                "VALUES (?, ?, ?, ?, ?, ?)", rows)
            for target, action, _ in intents:
                move = action.link_move_on_record
                if move is not None:
                    self.move_link(target, action.source_ticket, move)

    def settle_intent(self, command_id: str, outcome: str, retcode: int = 0, copy_ticket: int = 0) -> None:
        self._db.execute(
            "UPDATE intents SET settled_at = ?, outcome = ?, retcode = ?, copy_ticket = ? "
            "WHERE command_id = ? AND settled_at IS NULL",
            (time.time(), outcome, retcode, copy_ticket, command_id),
        )

    def unsettled_intents(self) -> list[Intent]:
        rows = self._db.execute(
            "SELECT target, payload, created_at FROM intents WHERE settled_at IS NULL ORDER BY created_at"
        ).fetchall()
        return [_intent_from_json(payload, target, created) for target, payload, created in rows]

    # ---- links ---------------------------------------------------------------------------------

    def links(self, target: str) -> dict[int, Link]:
        return self._links.get(target, {})

    def take_link_changes(self, target: str) -> set[int]:
        """The source tickets whose link on ``target`` was written (saved, adopted, moved, dropped) since the last
        call for ``target``."""
        return self._link_changes.pop(target, set())

    def _link_changed(self, target: str, source_ticket: int) -> None:
        self._link_changes.setdefault(target, set()).add(source_ticket)

    def save_link(self, target: str, action: Action, copy_ticket: int) -> None:
        """The copy ``copy_ticket`` now is the copy of ``action.source_ticket``, as ``action`` describes it."""
        now = time.time()
        self._db.execute(
            "INSERT INTO links (target, source_ticket, copy_ticket, symbol, order_type, volume, price, stoplimit,"
            " sl, tp, type_time, expiration, status, source_volume, price_offset, created_at, updated_at)"
            " VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)"
            " ON CONFLICT (target, source_ticket) DO UPDATE SET copy_ticket = excluded.copy_ticket,"
            " symbol = excluded.symbol, order_type = excluded.order_type, volume = excluded.volume,"
            " price = excluded.price, stoplimit = excluded.stoplimit, sl = excluded.sl, tp = excluded.tp,"
            " type_time = excluded.type_time, expiration = excluded.expiration, status = excluded.status,"
            " source_volume = excluded.source_volume, price_offset = excluded.price_offset,"
            " updated_at = excluded.updated_at",
            (target, action.source_ticket, copy_ticket, action.symbol, action.order_type, action.volume,
             action.price, action.stoplimit, action.sl, action.tp, action.type_time, action.expiration,
             LinkStatus.ACTIVE.value, action.source_volume, action.price_offset, now, now),
        )
        self._link_changed(target, action.source_ticket)
        self._links.setdefault(target, {})[action.source_ticket] = Link(
            source_ticket=action.source_ticket, copy_ticket=copy_ticket, status=LinkStatus.ACTIVE,
            symbol=action.symbol, volume=action.volume, source_volume=action.source_volume,
            price_offset=action.price_offset)

    def save_link_and_settle(self, target: str, action: Action, command_id: str, copy_ticket: int,
                             retcode: int) -> None:
        """The copy is recorded and its intent settled together, or neither (a crash between the two would
        leave an intent settled with no link to show for it)."""
        with self._transaction():
            self.save_link(target, action, copy_ticket)
            self.settle_intent(command_id, "done", retcode, copy_ticket)

    def adopt_link(self, target: str, link: Link) -> None:
        now = time.time()
        self._db.execute(
            "INSERT INTO links (target, source_ticket, copy_ticket, symbol, volume, status, source_volume,"
            " price_offset, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
            " ON CONFLICT (target, source_ticket) DO UPDATE SET copy_ticket = excluded.copy_ticket,"
            " symbol = excluded.symbol, volume = excluded.volume, status = excluded.status,"
            " source_volume = excluded.source_volume, price_offset = excluded.price_offset,"
            " updated_at = excluded.updated_at",
            (target, link.source_ticket, link.copy_ticket, link.symbol, link.volume, link.status.value,
             link.source_volume, link.price_offset, now, now),
        )
        self._link_changed(target, link.source_ticket)
        self._links.setdefault(target, {})[link.source_ticket] = link

    def pending_copies(self, target: str) -> int:
        """Copies the state records as pending on ``target`` (for a disabled target: nobody manages them now)."""
        return sum(1 for link in self.links(target).values() if link.status in PENDING_STATUSES)

    def move_link(self, target: str, source_ticket: int, move: LinkMove) -> bool:
        """Apply ``move`` to the link of ``source_ticket`` on ``target`` by the lifecycle's table
        (coordinator/domain/link_lifecycle.py); False, with an error logged, when the table refuses it (the status
        then stays as it was) or no such link exists."""
        link = self._links.get(target, {}).get(source_ticket)
        if link is None:
            return False
        try:
            status = next_status(link.status, move)
        except InvalidLinkMove as e:
            logger.error("{}: link of source #{} (copy #{}): {}; its status stays {}", target, source_ticket,
                         link.copy_ticket, e, link.status.value)
            return False
        if status is not link.status:
            self._write_status(target, link, status)
        return True

    def _write_status(self, target: str, link: Link, status: LinkStatus) -> None:
        source_ticket = link.source_ticket
        self._db.execute("UPDATE links SET status = ?, updated_at = ? WHERE target = ? AND source_ticket = ?",
                         (status.value, time.time(), target, source_ticket))
        self._link_changed(target, source_ticket)
        self._links[target][source_ticket] = replace(link, status=status)

    def drop_link(self, target: str, source_ticket: int) -> None:
        """Forget a link whose source order and copy are both gone for good (the events keep the story)."""
        self._db.execute("DELETE FROM links WHERE target = ? AND source_ticket = ?", (target, source_ticket))
        self._link_changed(target, source_ticket)
        self._links.get(target, {}).pop(source_ticket, None)

    @contextmanager
    def _transaction(self) -> Iterator[None]:
        self._db.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")

    # ---- orphan confirmations -------------------------------------------------------------------

    def orphan_counts(self, target: str) -> dict[int, int]:
        """Copy ticket -> consecutive orphan checks, as of the last check (survives restarts, so confirmations
        also accumulate over separate ``--once`` runs)."""
        rows = self._db.execute("SELECT copy_ticket, checks FROM orphan_counts WHERE target = ?", (target,))
        return dict(rows.fetchall())

    def save_orphan_counts(self, target: str, counts: dict[int, int]) -> None:
        now = time.time()
        with self._transaction():
            self._db.execute("DELETE FROM orphan_counts WHERE target = ?", (target,))
            self._db.executemany(
                "INSERT INTO orphan_counts (target, copy_ticket, checks, updated_at) VALUES (?, ?, ?, ?)",
                [(target, ticket, checks, now) for ticket, checks in counts.items()],
            )

    # ---- history -------------------------------------------------------------------------------

    def record_event(self, target: str, source_ticket: int, action: str, outcome: str, *, copy_ticket: int = 0,
                     retcode: int = 0, message: str = "", stages: str = "") -> None:
        self._db.execute(
            "INSERT INTO events (at, target, source_ticket, copy_ticket, action, outcome, retcode, message, stages)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (time.time(), target, source_ticket, copy_ticket, action, outcome, retcode, message, stages),
        )

    def complete_event_stages(self, target: str, copy_ticket: int, stages: str) -> None:
        """The latency stages of copy ``copy_ticket``, complete now that a snapshot showed it: onto the event that
        recorded it (placed or replaced, the newest; of the last hour, which the index by target and time finds at
        once in a history of weeks: a copy is confirmed within a minute of its event or not at all)."""
        self._db.execute(
            "UPDATE events SET stages = ? WHERE id = (SELECT id FROM events WHERE target = ? AND at >= ?"
            " AND copy_ticket = ? AND action IN ('placed', 'replaced', 'adopted') ORDER BY id DESC LIMIT 1)",
            (stages, target, time.time() - 3600, copy_ticket),
        )

    def events(self, target: str | None = None, since: float = 0.0, limit: int = 200) -> Iterator[Event]:
        yield from read_events(self._db, target, since, limit)


def read_events(db: sqlite3.Connection, target: str | None = None, since: float = 0.0, limit: int = 200, *,
                with_stages: bool = False) -> list[Event]:
    """The history, newest first: ``limit`` events since ``since`` (unix time), of ``target`` or all (``with_stages``:
    only the copies timed by stage). Safe on a read-only connection (``history``, the status page); a file no
    coordinator of schema 5 opened yet has no stages column: its events read without stages."""
    has_stages = any(row[1] == "stages" for row in db.execute("PRAGMA table_info(events)"))
    if with_stages and not has_stages:
        return []
    stages = "stages" if has_stages else "''"
    query = f"SELECT at, target, source_ticket, copy_ticket, action, outcome, retcode, message, {stages}" \
            " FROM events WHERE at >= ?"
    if with_stages:
        query += " AND stages != ''"
    parameters: list[object] = [since]
    if target is not None:
        query += " AND target = ?"
        parameters.append(target)
    query += " ORDER BY at DESC, id DESC LIMIT ?"
    parameters.append(limit)
    return [Event(*row) for row in db.execute(query, parameters)]


class StoredIntent(Command, frozen=True, kw_only=True):
    """An intent as the ``intents.payload`` column holds it: the command as sent, then what the coordinator keeps
    of its action. Up to 0.2 a stored intent was the wire command alone, which then carried ``source_volume``
    and ``price_offset`` too, in this order: their rows decode with this declaration and an old copier.db
    recovers its intents (the fields added since have defaults).

    JSON rather than msgpack: the column stays TEXT that a person can read with the sqlite3 shell. Decoded as
    strictly as the wire (msgspec, with the path of a field at fault)."""

    source_volume: Number = 0.0
    price_offset: Number = 0.0
    reason: Text = ""
    evidence: Text = ""
    adjustment: Text = ""


_INTENT_ENCODER = msgspec.json.Encoder()
_INTENT_DECODER = msgspec.json.Decoder(StoredIntent)


def _intent_to_json(action: Action, command: Command) -> str:
    stored = StoredIntent(
        command_id=command.command_id, kind=action.kind, source_ticket=action.source_ticket, symbol=action.symbol,
        ticket=action.ticket, order_type=action.order_type, volume=action.volume, price=action.price,
        stoplimit=action.stoplimit, sl=action.sl, tp=action.tp, type_time=action.type_time,
        expiration=action.expiration, magic=action.magic, comment=action.comment, deadline_ms=command.deadline_ms,
        expected_volume=action.expected_volume, deviation=action.deviation,
        source_volume=action.source_volume, price_offset=action.price_offset, reason=action.reason,
        evidence=action.evidence, adjustment=action.adjustment)
    return _INTENT_ENCODER.encode(stored).decode()


def _intent_from_json(payload: str, target: str, created_at: float) -> Intent:
    try:
        stored = _INTENT_DECODER.decode(payload)
    except msgspec.DecodeError as e:  # also ValidationError (a subclass), with the path of the field at fault
        raise StateError(f"an unsettled intent in the state file cannot be read ({e}): {payload[:200]}") from e
    action = Action(
        kind=stored.kind, source_ticket=SourceTicket(stored.source_ticket), symbol=stored.symbol,
        ticket=CopyTicket(stored.ticket), order_type=stored.order_type, volume=stored.volume, price=stored.price,
        stoplimit=stored.stoplimit, sl=stored.sl, tp=stored.tp, type_time=stored.type_time,
        expiration=stored.expiration, magic=stored.magic, comment=stored.comment,
        expected_volume=stored.expected_volume, deviation=stored.deviation,
        source_volume=stored.source_volume, price_offset=stored.price_offset, reason=stored.reason,
        evidence=stored.evidence, adjustment=stored.adjustment)
    return Intent(action=action, command=action.command(stored.command_id, stored.deadline_ms), target=target,
                  created_at=created_at)
