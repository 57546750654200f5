"""When a scheduled copier runs: the boundaries of a timeframe, on the broker's server clock or on UTC.

Pure: instants in, instants out (UTC seconds), no clock read here. A clock is UTC plus an offset (the seconds it
runs ahead of UTC: a broker's server clock, measured from its ticks or configured as ``server_utc_offset``; 0 for
UTC). Its boundaries are the multiples of the timeframe on that clock, plus ``schedule_offset``: M5 at :00, :05,
...; H4 at 00:00, 04:00, 08:00, ...; D1 at midnight, which on the server clock is the broker's midnight (where
its daily bars start), not UTC's.

A broker's clock may move against UTC (its summer time). ``Timetable`` keeps the last boundary passed as a time
of that clock, not as an instant, so the move shifts the boundaries with it: a boundary its clock jumps over is
run when the clock passes it (once), and an hour its clock repeats is not run twice.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timezone

from config import CoordinatorConfig
from config.choices import ScheduleClock, Timeframe


@dataclass(frozen=True)
class Schedule:
    """Run at each boundary of ``timeframe`` on ``clock``, ``offset`` seconds after it (0 <= offset < timeframe)."""

    timeframe: Timeframe
    offset: int = 0
    clock: ScheduleClock = ScheduleClock.SERVER

    @classmethod
    def from_config(cls, coordinator: CoordinatorConfig) -> Schedule | None:
        """The schedule ``[coordinator]`` asks for; None: live (no schedule)."""
        if coordinator.schedule is None:
            return None
        return cls(coordinator.schedule, coordinator.schedule_offset, coordinator.schedule_clock)

    @property
    def seconds(self) -> int:
        return self.timeframe.seconds

    def describe(self) -> str:
        """"M5, 60 s after each boundary of the source broker's server clock"."""
        on = "the source broker's server clock" if self.clock is ScheduleClock.SERVER else "UTC"
        at = f"{self.offset} s after each boundary" if self.offset else "at each boundary"
        return f"{self.timeframe}, {at} of {on}"


def last_boundary(clock_time: float, seconds: int, offset: int = 0) -> float:
    """The latest boundary at or before ``clock_time`` (a time of the schedule's clock, in epoch seconds)."""
    return math.floor((clock_time - offset) / seconds) * seconds + offset


def next_boundary(clock_time: float, seconds: int, offset: int = 0) -> float:
    """The first boundary strictly after ``clock_time``."""
    return last_boundary(clock_time, seconds, offset) + seconds


def next_run(after_utc: float, schedule: Schedule, clock_offset: int) -> float:
    """The instant (UTC) of the first run strictly after ``after_utc``, on a clock ``clock_offset`` seconds ahead
    of UTC."""
    return next_boundary(after_utc + clock_offset, schedule.seconds, schedule.offset) - clock_offset


class Timetable:
    """The runs of one schedule, as time passes: ``begin`` places the start on the clock, ``take`` says whether a
    run is due (and takes it), ``next_run`` when the next one is."""

    def __init__(self, schedule: Schedule) -> None:
        self.schedule = schedule
        self._passed: float | None = None  # the clock time of the last boundary passed (run, or before the start)

    @property
    def begun(self) -> bool:
        return self._passed is not None

    def begin(self, utc: float, clock_offset: int) -> None:
        """Start at ``utc``: the boundary at or before it counts as passed, so the first run is at the next one."""
        self._passed = last_boundary(utc + clock_offset, self.schedule.seconds, self.schedule.offset)

    def take(self, utc: float, clock_offset: int) -> float | None:
        """The run due at ``utc``, as the instant (UTC) of its boundary, taken: it is not due again; None when no
        run is due (or before ``begin``). Boundaries missed meanwhile make one run, of the latest."""
        if self._passed is None:
            return None
        now = utc + clock_offset
        if now < self._passed + self.schedule.seconds:
            return None
        self._passed = last_boundary(now, self.schedule.seconds, self.schedule.offset)
        return self._passed - clock_offset

    def next_run(self, clock_offset: int) -> float | None:
        """The instant (UTC) of the next run, with the clock where it is now; None before ``begin``."""
        if self._passed is None:
            return None
        return self._passed + self.schedule.seconds - clock_offset


def clock_text(utc: float, clock_offset: int, schedule: Schedule) -> str:
    """A run's instant as the schedule's clock shows it: "14:05:00 server time", "2026-11-24 00:00:00 UTC" (the
    date only for timeframes of hours and more)."""
    shown = datetime.fromtimestamp(utc + clock_offset, tz=timezone.utc)
    text = shown.strftime("%Y-%m-%d %H:%M:%S" if schedule.seconds >= 3600 else "%H:%M:%S")
    return f"{text} {'server time' if schedule.clock is ScheduleClock.SERVER else 'UTC'}"
