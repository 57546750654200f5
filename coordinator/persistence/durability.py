"""How much of ``copier.db`` reaches the disk at each commit.

The state runs in WAL mode with ``synchronous=NORMAL``: a commit is in the operating system's hands at once (a
killed process loses nothing) and on the disk at the next checkpoint. What must survive a power loss too is
committed inside ``synced``: with ``synchronous=FULL`` the commit syncs the write-ahead log, and with it every
commit before it (the log is one sequential file). That is the intents (the no-duplicate guarantee: an intent is
on disk before its command exists anywhere else) and an operator's or a guard's control of a target. Everything
else (settlements, links, history, orphan counts, the status) may lose its last moments to a power cut: on
restart, an intent without its settlement is checked against the terminal before anything is done for its order,
and copies are found again by their tags. One fsync per reconcile instead of one per statement: on a 2-core VPS
that is most of a copy's coordinator time.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager

SYNCHRONOUS_NORMAL = 1
SYNCHRONOUS_FULL = 2


def use_normal_sync(db: sqlite3.Connection) -> None:
    db.execute("PRAGMA synchronous=NORMAL")


@contextmanager
def synced(db: sqlite3.Connection) -> Iterator[None]:
    """Commits made inside reach the disk before they return (and so does everything committed before them)."""
    (before,) = db.execute("PRAGMA synchronous").fetchone()
    if before >= SYNCHRONOUS_FULL:
        yield
        return
    db.execute("PRAGMA synchronous=FULL")
    try:
        yield
    finally:
        db.execute(f"PRAGMA synchronous={int(before)}")
