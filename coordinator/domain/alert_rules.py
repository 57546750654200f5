"""Which events a person is told of, and in which words: what happened, to which terminal and order, what to do.

Pure: an event in, an ``Alert`` (or None) out; coordinator/runtime/alerts.py delivers it. Alerts are for what a
person must act on, or must know to trust the copier: a worker down, back or restarted, a terminal disconnected
or on the wrong account, a copy that failed finally (its retcode and what it means), an orphan removed or a copy
position closed on the orphan checks alone (nothing in the source's history explains it), a risk guard, a target
paused or resumed, the coordinator started or stopped. What the copier does routinely (copies placed, changed,
removed or closed because their source was) is not: the log and the history tell it.

Each alert's ``key`` names the thing it is about ("worker:broker-a"): the alerts of one key share its rate limit
(``[alerts] min_interval``), so a worker that goes down and comes back ten times sends one alert, then the
latest with a count, never a stale "down" after its "back".
"""

from __future__ import annotations

import signal
from dataclasses import dataclass
from enum import Enum
from functools import singledispatch

from config.exit_codes import ExitCode
from coordinator.domain.events import (
    CommandFailed,
    CoordinatorStarted,
    CoordinatorStopped,
    Event,
    OrphanDecided,
    RiskGuardTripped,
    TargetControlChanged,
    TerminalDisconnected,
    TerminalReconnected,
    WorkerBack,
    WorkerDown,
    WorkerExited,
    WrongAccount,
)
from protocol.mt5 import Retcode, describe_retcode


class Severity(str, Enum):
    """How it is shown (apprise's notification types: an icon or a colour on most services)."""

    INFO = "info"
    SUCCESS = "success"
    WARNING = "warning"
    FAILURE = "failure"


@dataclass(frozen=True, slots=True)
class Alert:
    key: str  # the thing it is about: alerts of one key share a rate limit
    title: str
    body: str
    severity: Severity


@dataclass(frozen=True, slots=True)
class AlertContext:
    """What the words need beyond the event: the config file, for the commands an alert suggests."""

    config_file: str = "FILE"


# An orphan removal (or a copy position's close) confirmed by the source's history is routine: the source order
# was cancelled or filled, the source position closed. One confirmed only by the consecutive checks is not: the
# source order vanished without a record (orphan_watch.py words the evidence).
_EXPLAINED_BY_HISTORY = "the source's history says"


def alert_for(event: Event, context: AlertContext | None = None) -> Alert | None:
    """The alert ``event`` calls for; None for what is not alerted."""
    return _alert(event, context or AlertContext())


@singledispatch
def _alert(event: Event, context: AlertContext) -> Alert | None:
    return None  # routine: the log and the history tell it


# ---- workers and terminals -------------------------------------------------------------------------------------


@_alert.register
def _(event: WorkerDown, context: AlertContext) -> Alert:
    name = event.terminal
    if event.remote:
        todo = ("look at its worker on its machine: is its service running, can that machine reach this one? "
                "`mt5-copier status` shows where it ran from and when it was last heard. It reconnects by itself once "
                "it can.")
    else:
        todo = (f"the coordinator restarts a local worker that exits or hangs; if this lasts, read "
                f"state_dir/logs/worker-{name}.log and coordinator.log.")
    return Alert(f"worker:{name}", f"{name}: worker down",
                 _paragraphs(f"{_upper_first(_who(event.role, name))} is unavailable: {event.why.rstrip('.')}.",
                             _frozen(event.role, name), f"What to do: {todo}"),
                 Severity.FAILURE)


@_alert.register
def _(event: WorkerBack, context: AlertContext) -> Alert:
    name = event.terminal
    return Alert(f"worker:{name}", f"{name}: worker back",
                 _paragraphs(f"The worker of {_who(event.role, name)} is connected again, after "
                             f"{_duration(event.down_for)}: copying {_with(event.role)} it resumes.",
                             "Nothing to do."),
                 Severity.SUCCESS)


@_alert.register
def _(event: WorkerExited, context: AlertContext) -> Alert:
    name, code = event.terminal, event.code
    exited = f"The local worker of {_who(event.role, name)} exited with code {code} ({_exit_meaning(code)})"
    log = f"state_dir/logs/worker-{name}.log"
    if event.restart_in is not None:
        return Alert(f"worker:{name}", f"{name}: worker restarted",
                     _paragraphs(f"{exited}; the coordinator starts it again in {_duration(event.restart_in)} "
                                 f"(restart {event.restarts} since the coordinator started). What it had not "
                                 "answered is settled from what the terminal shows once it is back, never sent twice.",
                                 "What to do: nothing if it comes back (you are told). If it keeps restarting, read "
                                 f"{log}: the lines before each exit say why."),
                     Severity.WARNING)
    if code == ExitCode.CONFIG_ERROR:
        why = "a configuration error is not mended by a restart"
        todo = (f"fix what {log} says (the terminal's path, its account, its password variable, a key file), then "
                f"`mt5-copier reload --config {context.config_file}` (or restart the coordinator).")
    elif code == ExitCode.OK:
        why = "it was stopped from outside (a signal to its process)"
        todo = "restart the coordinator to start it again."
    else:
        why = "this run restarts no worker (run --once)"
        todo = f"read {log} before the next run."
    return Alert(f"worker:{name}", f"{name}: worker stopped, not restarted",
                 _paragraphs(f"{exited}, and is not restarted: {why}.", _frozen(event.role, name),
                             f"What to do: {todo}"),
                 Severity.FAILURE)


@_alert.register
def _(event: TerminalDisconnected, context: AlertContext) -> Alert:
    name = event.terminal
    return Alert(f"terminal:{name}", f"{name}: terminal disconnected",
                 _paragraphs(f"{_upper_first(_who(event.role, name))} has been out of reach for "
                             f"{_duration(event.for_seconds)}: {event.why.rstrip('.')}.", _frozen(event.role, name),
                             "What to do: look at the terminal on its machine: is it running, logged in, and "
                             "connected (the status in its bottom-right corner)? Is the broker's server up? Copying "
                             "picks up by itself once it is connected."),
                 Severity.FAILURE)


@_alert.register
def _(event: TerminalReconnected, context: AlertContext) -> Alert:
    name = event.terminal
    return Alert(f"terminal:{name}", f"{name}: terminal connected again",
                 _paragraphs(f"{_upper_first(_who(event.role, name))} is connected again, after "
                             f"{_duration(event.down_for)}: copying {_with(event.role)} it resumes.", "Nothing to do."),
                 Severity.SUCCESS)


@_alert.register
def _(event: WrongAccount, context: AlertContext) -> Alert:
    name = event.terminal
    if event.cleared:
        return Alert(f"account:{name}", f"{name}: configured account back",
                     _paragraphs(f"Terminal {name} is logged into its configured account {event.configured} again: "
                                 f"copying {_with(event.role)} it resumes.", "Nothing to do."),
                     Severity.SUCCESS)
    frozen = ("nothing is copied from it, so no target gets another account's orders and no copy counts as an "
              "orphan" if event.role == "source" else
              f"nothing is sent to it, so no trade meant for {event.configured} reaches another account")
    return Alert(f"account:{name}", f"{name}: wrong account {event.account}",
                 _paragraphs(f"Terminal {name} ({event.role}) is logged into account {event.account}, but the config "
                             f"names {event.configured} for it. Until the configured account is back, {frozen}.",
                             f"What to do: log the terminal back into {event.configured} (File > Login to Trade "
                             "Account). If the change is meant, change login and server in its entry, then "
                             f"`mt5-copier reload --config {context.config_file}`."),
                 Severity.FAILURE)


# ---- copies --------------------------------------------------------------------------------------------------


@_alert.register
def _(event: CommandFailed, context: AlertContext) -> Alert | None:
    if not event.final or event.repeated:
        return None  # it may pass by itself (retried), or it was said already for this cause
    name, source = event.target, event.source_ticket
    cause = f"retcode {event.retcode}, {describe_retcode(event.retcode)}" if event.retcode else event.status
    who = "the broker" if event.status == "rejected" else "the worker"
    said = f" In its words: {event.reason.rstrip('.')}." if event.reason else ""
    retry = f"in {_duration(event.retry_in)}" if event.retry_in > 0 else "later"
    return Alert(f"failed:{name}:{event.retcode or event.status}",
                 f"{name}: {_doing(event, short=True)} failed ({cause})",
                 _paragraphs(f"Target {name}: {who} refused {_doing(event, short=False)}: {cause}.{said}",
                             f"{_left_as_is(event.kind)}It would be refused again as it is: the copier tries again "
                             f"{retry}, or as soon as source order #{source} changes.",
                             f"What to do: {_advice(event.retcode, name, context)}"),
                 Severity.FAILURE)


@_alert.register
def _(event: OrphanDecided, context: AlertContext) -> Alert | None:
    if not event.kill or event.why.startswith(_EXPLAINED_BY_HISTORY):
        return None  # kept (said in status and the history), or its source is known to have gone: routine
    name = event.target
    return Alert(f"orphans:{name}", f"{name}: orphan #{event.copy_ticket} removed",
                 _paragraphs(f"Target {name}: the copier removed #{event.copy_ticket}, the copy of source "
                             f"#{event.source_ticket}, as an orphan: {event.why}, and the source's history has no "
                             "record of what became of it.",
                             "What to do: nothing if the source order or position was deleted or closed on purpose. "
                             "If not, look at the source terminal (its account, its history). To keep such copies "
                             "instead, set [targets.orphans] policy = \"preserve\"."),
                 Severity.WARNING)


# ---- controls and guards -------------------------------------------------------------------------------------


@_alert.register
def _(event: RiskGuardTripped, context: AlertContext) -> Alert:
    name, guard = event.target, event.guard
    if event.cleared:
        return Alert(f"guard:{name}:{guard}", f"{name}: risk guard {guard} cleared",
                     _paragraphs(f"Target {name}: {event.reason}. {_sentence(event.action)}", "Nothing to do."),
                     Severity.SUCCESS)
    resume = f"`mt5-copier resume --config {context.config_file} --target {name}`"
    todo = {
        "max_drawdown_percent": f"look at the account; once you are content, {resume} copies to it again.",
        "min_equity": "add funds, or lower the copies' size; it clears by itself once equity is back above the "
                      "limit.",
        "max_total_volume": "nothing if that is the cap you meant (copies wait until there is room); otherwise "
                            "raise [targets.risk] max_total_volume.",
    }.get(guard, f"see `mt5-copier status --config {context.config_file}`; {resume} clears it.")
    return Alert(f"guard:{name}:{guard}", f"{name}: risk guard {guard} tripped",
                 _paragraphs(f"Target {name}: {event.reason}. {_sentence(event.action)}", f"What to do: {todo}"),
                 Severity.FAILURE)


_MODE_WORDS = {
    "paused": ("paused", "no new copies go to it"),
    "close_only": ("set to close-only", "its copies still follow their source and are removed or closed with it, "
                                        "but no new ones are placed"),
    "active": ("resumed", "copying to it resumes"),
}


@_alert.register
def _(event: TargetControlChanged, context: AlertContext) -> Alert | None:
    if event.set_by.startswith("guard:"):
        return None  # the guard's own alert (RiskGuardTripped) says it, with what it measured
    name = event.target
    done, consequence = _MODE_WORDS.get(event.mode, (f"set to {event.mode}", ""))
    why = f": {event.reason}" if event.reason else ""
    lines = [f"Target {name} was {done} by {event.set_by or 'the operator'}{why}."]
    if consequence:
        lines.append(f"{_upper_first(consequence)}.")
    if event.mode != "active":
        lines.append(f"What to do: `mt5-copier resume --config {context.config_file} --target {name}` when it should "
                     "copy again.")
    return Alert(f"control:{name}", f"{name}: {done}", _paragraphs(*lines),
                 Severity.INFO if event.mode == "active" else Severity.WARNING)


# ---- the coordinator -----------------------------------------------------------------------------------------


@_alert.register
def _(event: CoordinatorStarted, context: AlertContext) -> Alert:
    return Alert("coordinator", f"coordinator started on {event.host}",
                 _paragraphs(f"mt5-copier {event.version} started on {event.host}: copying from {event.source} to "
                             f"{', '.join(event.targets) or 'no target'}.",
                             "From now on you are told here when something needs you."),
                 Severity.INFO)


@_alert.register
def _(event: CoordinatorStopped, context: AlertContext) -> Alert:
    return Alert("coordinator", f"coordinator {'crashed' if event.crashed else 'stopped'} on {event.host}",
                 _paragraphs(f"mt5-copier stopped on {event.host} ({event.reason}). Nothing is copied until it runs "
                             "again: the copies already placed stay as they are, and no longer follow their source.",
                             "What to do: nothing if it was stopped on purpose. Otherwise start it again (`mt5-copier "
                             f"run --config {context.config_file}`, or its service), and read "
                             "state_dir/logs/coordinator.log."),
                 Severity.FAILURE if event.crashed else Severity.WARNING)


# ---- words ---------------------------------------------------------------------------------------------------


def _paragraphs(*lines: str) -> str:
    return "\n\n".join(line for line in lines if line)


def _upper_first(text: str) -> str:
    return text[:1].upper() + text[1:]  # not str.capitalize: it would lower a terminal's name


def _sentence(text: str) -> str:
    text = text.strip()
    return f"{_upper_first(text)}{'' if text.endswith('.') else '.'}" if text else ""


def _who(role: str, name: str) -> str:
    return f"the source {name}" if role == "source" else f"target {name}"


def _with(role: str) -> str:
    return "from" if role == "source" else "to"


def _frozen(role: str, name: str) -> str:
    if role == "source":
        return ("Nothing is copied to any target until it is back; the copies already placed stay as they are, and "
                "no copy counts as an orphan meanwhile.")
    return f"Nothing is sent to {name} until it is back; the other targets go on."


def _duration(seconds: float) -> str:
    seconds = max(0, round(seconds))
    if seconds < 60:
        return f"{seconds} s"
    minutes, seconds = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes} min {seconds} s" if seconds else f"{minutes} min"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes} min" if minutes else f"{hours} h"


def _exit_meaning(code: int) -> str:
    if code < 0:  # POSIX: the signal that ended it
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    try:
        return ExitCode(code).meaning
    except ValueError:
        return "ended abnormally"


def _doing(event: CommandFailed, *, short: bool) -> str:
    source, copy = event.source_ticket, event.copy_ticket
    if short:
        return {"place": f"copy of #{source}", "market": f"market copy of #{source}",
                "close": f"closing position #{copy}", "sltp": f"SL/TP of position #{copy}"}.get(
            event.kind, f"{event.kind} of copy #{copy}")
    return {
        "place": f"placing the copy of source order #{source}",
        "modify": f"modifying copy #{copy} of source order #{source}",
        "replace": f"replacing copy #{copy} of source order #{source}",
        "remove": f"removing copy #{copy} of source order #{source}",
        "sltp": f"setting SL/TP on copy position #{copy} (of source #{source})",
        "close": f"closing copy position #{copy} (of source #{source})",
        "market": f"opening the copy of source order #{source} at market",
    }.get(event.kind, f"{event.kind} for source #{source}")


def _left_as_is(kind: str) -> str:
    return {"remove": "The copy is still on the target. ", "close": "The position is still open. ",
            "modify": "The copy is as it was. ", "replace": "The copy is as it was. ",
            "sltp": "The position keeps its old SL/TP. "}.get(kind, "")


def _advice(retcode: int, name: str, context: AlertContext) -> str:
    """What a person can do about a final refusal, by its retcode."""
    sizes = "lot_multiplier, min_lot, max_lot, volume_mode"
    advice = {
        Retcode.NO_MONEY: f"add funds to {name}'s account, or make its copies smaller ({sizes}).",
        Retcode.INVALID_VOLUME: f"compare {name}'s size rules ({sizes}, volume_rounding) with the symbol's volume "
                                "limits on this broker.",
        Retcode.LIMIT_VOLUME: "the broker caps the volume on this symbol or account: make the copies smaller "
                              f"({sizes}) or ask the broker.",
        Retcode.INVALID_STOPS: "the broker wants SL/TP farther from the price than the source order has them (its "
                               "stops level): the copy goes out once the source order's levels allow it.",
        Retcode.TRADE_DISABLED: "trading this symbol is disabled for the account: check its symbol (symbol_map, "
                                "symbol_suffix) and the account's permissions.",
        Retcode.SERVER_DISABLES_AT: "the broker disabled automated trading on this account: ask the broker.",
        Retcode.CLIENT_DISABLES_AT: "turn Algo Trading on in the terminal (the toolbar button, and Tools > Options > "
                                    "Expert Advisors).",
        Retcode.INVALID_EXPIRATION: "the symbol refuses the order's expiration: set expiration_fallback = \"gtc\" to "
                                    "place such copies good-till-cancelled.",
        Retcode.LIMIT_ORDERS: "the account's pending-order limit is reached: remove orders, or set max_pending_orders "
                              "below the broker's limit.",
        Retcode.LIMIT_POSITIONS: "the account's position limit is reached: close positions, or ask the broker.",
        Retcode.ONLY_REAL: "this request is allowed on live accounts only.",
        Retcode.LONG_ONLY: "the broker allows only buys on this symbol: leave sells out (order_types) or the symbol.",
        Retcode.SHORT_ONLY: "the broker allows only sells on this symbol: leave buys out (order_types) or the symbol.",
        Retcode.CLOSE_ONLY: "the broker allows only closing on this symbol: leave it out (symbol_map), or ask the "
                            "broker.",
        Retcode.INVALID_FILL: "the broker refused the filling mode the worker chose: report it with the history line.",
    }
    try:
        return advice[Retcode(retcode)]
    except (ValueError, KeyError):
        return (f"see `mt5-copier history --config {context.config_file} --target {name}` and the coordinator's log "
                "for the details.")
