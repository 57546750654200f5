"""Every exit code of every ``mt5-copier`` process, and what it means, in one place (README "Commands").

Here, beside the logging set-up and the crash points, because both processes need it: the coordinator's
commands (``run``, ``run --once``, ``check-config``, ``history``, ``demo``) and a terminal worker, whose
code is also its supervisor's cue (``CONFIG_ERROR``: never restarted). ``status`` is a health check with
codes of its own, ``StatusExitCode``. ``tests/test_exit_codes.py`` holds the README's tables to these.
"""

from __future__ import annotations

from enum import IntEnum


class ExitCode(IntEnum):
    """How a command or a worker ends. What each command exits with for which failure:

    - ``run``: OK when stopped (Ctrl-C, SIGTERM); FATAL for another coordinator on the state folder, the
      port taken, a state file it cannot use, a crash; CONFIG_ERROR for an invalid config.
    - ``run --once``: also INCOMPLETE for an order failed or skipped, a target unavailable, a stop before
      the end; FATAL when the source terminal is not available.
    - ``check-config``: OK valid, CONFIG_ERROR invalid.
    - ``history``: CONFIG_ERROR for an invalid config or argument (unknown target, ``--since``,
      ``--limit``), FATAL when the state cannot be read (none yet, or unreadable).
    - ``pause``, ``resume``: CONFIG_ERROR for an invalid config or an unknown target, FATAL for a state file
      they cannot use (unreadable, from a newer version, or in use by a running coordinator of an older one).
    - a worker: OK when asked to stop (a signal, the coordinator that started it stopping, its terminal
      removed from the coordinator's config); CONFIG_ERROR for what a restart cannot mend (an invalid config
      or worker file, a key file it cannot use or a key the coordinator refused, an unknown terminal, terminal
      not found or authorization failed, refused as a second worker for its terminal, a hello that does not
      match the coordinator's entry, a coordinator of another protocol version); FATAL for a crash (its
      service wrapper restarts it). A worker started by hand never exits because its coordinator is gone,
      restarting or unreachable: it keeps its terminal and waits for it.
    """

    OK = 0
    INCOMPLETE = 1
    CONFIG_ERROR = 2
    FATAL = 3

    @property
    def meaning(self) -> str:
        """The README's words for it."""
        return _MEANINGS[self]


_MEANINGS = {
    ExitCode.OK: "all done",
    ExitCode.INCOMPLETE: "sync incomplete",
    ExitCode.CONFIG_ERROR: "configuration error",
    ExitCode.FATAL: "fatal runtime error",
}


class StatusExitCode(IntEnum):
    """How ``status`` ends, with and without ``--json``: a health check a script or a monitor can act on."""

    HEALTHY = 0
    DEGRADED = 1
    CONFIG_ERROR = 2
    NOT_RUNNING = 3

    @property
    def meaning(self) -> str:
        """The README's words for it."""
        return _STATUS_MEANINGS[self]


_STATUS_MEANINGS = {
    StatusExitCode.HEALTHY: "the coordinator runs and every enabled terminal is healthy",
    StatusExitCode.DEGRADED: "it runs but something is degraded",
    StatusExitCode.CONFIG_ERROR: "the config file is invalid",
    StatusExitCode.NOT_RUNNING: "no coordinator runs on this state folder",
}
