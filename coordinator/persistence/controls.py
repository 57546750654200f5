"""The controls on each target (``target_controls``) and the equity peak of its drawdown guard (``risk_state``),
in ``copier.db``.

Written by ``mt5-copier pause`` / ``resume`` (another process, whether a coordinator runs or not: SQLite in WAL
mode lets both write), by the running coordinator when a risk guard trips, and by ``remove-copies``; the
running coordinator reads the table every half second. Each change of a target's control is also a row of the
history, written with it.

A resume leaves a row (mode "active", who and when) rather than none: the coordinator writes the drawdown
guard's peak only while the control row is the one it last read, so a peak it held before a resume can never
be written back over the reset (``save_peak``).
"""

from __future__ import annotations

import sqlite3
import time

from coordinator.domain.controls import TargetControl, TargetMode
from coordinator.persistence.durability import synced


def read_controls(db: sqlite3.Connection) -> dict[str, TargetControl]:
    """Every target's recorded control (resumed targets too, as "active"); none when the table does not exist
    (a state file older than schema 5, read read-only)."""
    try:
        rows = db.execute("SELECT target, mode, reason, set_by, set_at FROM target_controls").fetchall()
    except sqlite3.OperationalError:
        return {}
    controls = {}
    for target, mode, reason, set_by, set_at in rows:
        try:
            controls[target] = TargetControl(TargetMode(mode), reason=reason, set_by=set_by, set_at=set_at)
        except ValueError:  # a mode this version does not know (a newer copier wrote it): the safe reading
            controls[target] = TargetControl(TargetMode.PAUSED, reason=f"unknown mode {mode!r} (paused)",
                                             set_by=set_by, set_at=set_at)
    return controls


def set_control(db: sqlite3.Connection, target: str, control: TargetControl) -> None:
    """Record ``control`` as ``target``'s, with its history row, in one transaction. Setting it active (a
    resume) also forgets the drawdown guard's equity peak: it starts again from the equity of that moment."""
    with synced(db):  # a pause or a tripped guard must survive a power cut
        _set_control(db, target, control)


def _set_control(db: sqlite3.Connection, target: str, control: TargetControl) -> None:
    db.execute("SAVEPOINT set_control")  # a transaction whatever the connection's isolation_level
    try:
        db.execute(
            "INSERT INTO target_controls (target, mode, reason, set_by, set_at) VALUES (?, ?, ?, ?, ?)"
            " ON CONFLICT (target) DO UPDATE SET mode = excluded.mode, reason = excluded.reason,"
            " set_by = excluded.set_by, set_at = excluded.set_at",
            (target, control.mode.value, control.reason, control.set_by, control.set_at))
        if control.active:
            db.execute("DELETE FROM risk_state WHERE target = ?", (target,))
        db.execute(
            "INSERT INTO events (at, target, source_ticket, copy_ticket, action, outcome, retcode, message)"
            " VALUES (?, ?, 0, 0, 'control', ?, 0, ?)",
            (control.set_at or time.time(), target, control.mode.value,
             control.reason or f"{control.mode.words} by {control.set_by or 'the operator'}"))
    except BaseException:
        db.execute("ROLLBACK TO set_control")
        db.execute("RELEASE set_control")
        raise
    db.execute("RELEASE set_control")


def read_peak(db: sqlite3.Connection, target: str) -> float | None:
    """The highest equity the drawdown guard has seen on ``target`` (None: none yet, or reset by a resume)."""
    row = db.execute("SELECT peak_equity FROM risk_state WHERE target = ?", (target,)).fetchone()
    return float(row[0]) if row is not None else None


def save_peak(db: sqlite3.Connection, target: str, peak: float, *, control_set_at: float | None) -> bool:
    """Record ``peak`` for ``target``, only if its control row is still the one read (``control_set_at``: its
    set_at; None: no row): a resume since then reset the peak, and a peak from before it must not come back.
    True when written."""
    cursor = db.execute(
        "INSERT INTO risk_state (target, peak_equity, updated_at)"
        " SELECT ?, ?, ? WHERE (SELECT set_at FROM target_controls WHERE target = ?) IS ?"
        " ON CONFLICT (target) DO UPDATE SET peak_equity = excluded.peak_equity, updated_at = excluded.updated_at",
        (target, peak, time.time(), target, control_set_at))
    return cursor.rowcount > 0


def forget_peak(db: sqlite3.Connection, target: str) -> None:
    """The drawdown guard is off for ``target``: a later one starts from the equity of its own start."""
    db.execute("DELETE FROM risk_state WHERE target = ?", (target,))
