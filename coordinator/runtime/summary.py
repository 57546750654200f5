"""The account of a sync that ``run --once`` prints, and the exit code that goes with it; and the plan that
``run --once --dry-run`` prints instead."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from config.exit_codes import ExitCode
from coordinator.domain.actions import Action, ActionKind
from coordinator.domain.filters import describe_counts, filter_counts
from coordinator.domain.planner import Skip, SkipReason, TargetPlan
from coordinator.runtime.engine import Engine
from coordinator.runtime.views import TerminalView
from protocol import PendingOrder
from protocol.mt5 import describe_order_type


def render_summary(engine: Engine) -> str:
    lines = ["", "mt5-copier sync summary", "=" * 23]
    source = engine.source
    source_orders = len(source.snapshot.orders) if source.snapshot else 0
    lines.append(f"source {source.name}: {source_orders} pending order(s)")
    for name, report in engine.reports.items():
        plan = report.last_plan
        view = engine.targets[name]
        lines.append("")
        if report.unavailable and plan is None:
            lines.append(f"target {name}: NOT SYNCED - {_naming_the_terminal(report.unavailable, view)}")
            continue
        problems, waiting = _split_skips(plan)
        lines.append(
            f"target {name}: placed {len(report.placed)}, found already there {len(report.adopted)}, "
            f"modified {len(report.modified)}, replaced {len(report.replaced)}, removed {len(report.removed)}, "
            f"in sync {len(plan.in_sync) if plan else 0}, failed {len(report.failures)}, "
            f"skipped {len(problems)}, not copied by type {len(plan.filtered) if plan else 0}, "
            f"left out by filter {len(plan.left_out_by_filter) if plan else 0}, waiting for room {len(waiting)}"
        )
        if plan and plan.left_out_by_filter:
            lines.append(f"  {_left_out_line(plan)}")
        if report.unavailable:
            lines.append(f"  NOT SYNCED at the end: {_naming_the_terminal(report.unavailable, view)}")
        lines.extend(engine.controls.summary_lines(name))  # paused, close-only, what a guard holds back
        for ticket, copy_ticket in sorted(report.placed.items()):
            lines.append(f"  placed   source #{ticket} -> #{copy_ticket}{_adjusted(report.adjusted, ticket)}")
        for ticket, copy_ticket in sorted(report.replaced.items()):
            lines.append(f"  replaced source #{ticket} -> #{copy_ticket}{_adjusted(report.adjusted, ticket)}")
        for ticket, reason in sorted(report.removed.items()):
            lines.append(f"  removed  copy of source #{ticket}: {reason}")
        if report.levels_synced or report.partly_closed or report.closed or report.opened_at_market:
            lines.append(f"  positions: SL/TP followed {sum(report.levels_synced.values())}, "
                         f"closed in part {sum(report.partly_closed.values())}, closed {len(report.closed)}, "
                         f"opened at market {len(report.opened_at_market)}")
        for ticket, copy_ticket in sorted(report.opened_at_market.items()):
            lines.append(f"  opened   source #{ticket} filled: its copy opened at market as position #{copy_ticket}")
        for ticket, reason in sorted(report.closed.items()):
            lines.append(f"  closed   position of source #{ticket}: {reason}")
        for ticket, failure in sorted(report.failures.items()):
            lines.append(f"  FAILED   source #{ticket}: {failure.message}")
        if plan:
            for skip in problems:
                if skip.source_ticket in report.failures:
                    continue
                detail = f" ({skip.detail})" if skip.detail else ""
                lines.append(f"  skipped  source #{skip.source_ticket} {skip.symbols()}: {skip.reason.value}{detail}")
            for skip in waiting:
                lines.append(f"  waiting  source #{skip.source_ticket} {skip.symbols()}: {_room_text(skip, view)}")
            for ticket, reason in plan.kept_out:
                lines.append(f"  left out source #{ticket}: {reason}")
            orphans = [copy for copy in plan.orphans if copy.magic not in report.removed]
            if orphans:
                counts = engine.orphans.counts(name)
                needed = engine.orphans.max_checks(name)
                for copy in orphans:
                    lines.append(f"  orphan   copy #{copy.ticket} of gone source #{copy.magic} "
                                 f"(seen in {counts.get(copy.ticket, 0)} of {needed} checks)")
        unresolved = engine.in_flight.get(name, {})
        if unresolved:
            lines.append(f"  {len(unresolved)} command(s) with no confirmed outcome yet")
    code = once_exit_code(engine)
    lines.append("")
    lines.append("result: " + ("complete" if code is ExitCode.OK else "INCOMPLETE") + f" (exit code {code:d})")
    return "\n".join(lines)


def _adjusted(adjusted: dict[int, str], ticket: int) -> str:
    """What changed a copy's size (contract sizes, a bound), when something did."""
    return f" ({adjusted[ticket]})" if ticket in adjusted else ""


def once_exit_code(engine: Engine, *, stopped: bool = False) -> ExitCode:
    """0 when every target holds what its settings call for; orders left out on purpose (a filtered type, one
    [targets.filter] leaves out, a copy deleted by hand), orders waiting for room under the user's own
    ``max_pending_orders`` and orphans still being confirmed do not count against it."""
    if stopped:
        return ExitCode.INCOMPLETE
    for name, report in engine.reports.items():
        plan = report.last_plan
        if report.unavailable or plan is None or report.failures or engine.in_flight.get(name):
            return ExitCode.INCOMPLETE
        if _split_skips(plan)[0] or plan.needed_symbols or plan.needed_history or plan.needed_position_history:
            return ExitCode.INCOMPLETE
    return ExitCode.OK


def _split_skips(plan: TargetPlan | None) -> tuple[list[Skip], list[Skip]]:
    """(skips that keep the sync from being complete, orders waiting for room under the target's cap). The
    cap is the user's choice, so an order waiting under it is the config working, not a failure."""
    if plan is None:
        return [], []
    waiting = [skip for skip in plan.skips if skip.reason is SkipReason.CAPPED]
    return [skip for skip in plan.skips if skip.reason is not SkipReason.CAPPED], waiting


def _left_out_line(plan: TargetPlan) -> str:
    """How many source orders each key of [targets.filter] left out (each under the first key that excludes it)."""
    return f"left out by filter: {describe_counts(filter_counts(plan.left_out_by_filter.values()))}"


def _room_text(skip: Skip, view: TerminalView) -> str:
    """The planner says why (with the orphans holding the cap, if any); the cap alone when it did not."""
    cap = view.target.copy.max_pending_orders if view.target is not None else None
    return skip.detail or f"waiting for room under max_pending_orders = {cap}"


def _naming_the_terminal(why: str, view: TerminalView) -> str:
    """A terminal that cannot be used is found by its path: say which one was tried, unless the error does."""
    path = str(view.config.path)
    return why if path in why else f"{why} (terminal {path})"


# ---- run --once --dry-run ------------------------------------------------------------------------

_WOULD = {  # the order of the counts on a target's line, and of its lines
    ActionKind.PLACE: "place", ActionKind.MODIFY: "modify", ActionKind.REPLACE: "replace",
    ActionKind.REMOVE: "remove", ActionKind.SLTP: "set SL/TP", ActionKind.CLOSE: "close",
    ActionKind.MARKET: "open at market",
}


def render_dry_run(engine: Engine, planned: Mapping[str, Sequence[Action]]) -> str:
    """What each target's plan would send (``planned``: the dry run's dispatcher's record, by target) and what it
    leaves as it is, and why, naming every source order; nothing of it was sent."""
    lines = ["", "mt5-copier dry run: the plan for every target; nothing was sent, nothing recorded",
             "=" * 80]
    source = engine.source
    lines.append(f"source {source.name}: {len(source.snapshot.orders) if source.snapshot else 0} pending order(s)")
    for name, report in engine.reports.items():
        view, plan = engine.targets[name], report.last_plan
        lines.append("")
        if plan is None or report.unavailable:
            why = report.unavailable or "no plan was made (its terminal did not report)"
            lines.append(f"target {name}: NOT PLANNED - {_naming_the_terminal(why, view)}")
            continue
        actions, held = list(planned.get(name, ())), engine.controls.held(name)
        problems, waiting = _split_skips(plan)
        counts = ", ".join(f"{label} {sum(1 for a in actions if a.kind is kind)}" for kind, label in _WOULD.items())
        lines.append(f"target {name}: would {counts}; held back {len(held)}, skip {len(problems)}, "
                     f"wait {len(waiting)}, in sync {len(plan.in_sync)}, not copied by type {len(plan.filtered)}, "
                     f"left out by filter {len(plan.left_out_by_filter)}")
        if plan.left_out_by_filter:
            lines.append(f"  {_left_out_line(plan)}")
        lines.extend(engine.controls.summary_lines(name))  # paused, close-only, what a guard holds back
        copies = {order.ticket: order for order in view.snapshot.orders} if view.snapshot else {}
        for kind in _WOULD:
            lines.extend(f"  {_would_line(action, copies.get(action.ticket))}" for action in actions
                         if action.kind is kind)
        for skip in problems:
            detail = f" ({skip.detail})" if skip.detail else ""
            lines.append(f"  skip     source #{skip.source_ticket} {skip.symbols()}: {skip.reason.value}{detail}")
        for skip in waiting:
            lines.append(f"  wait     source #{skip.source_ticket} {skip.symbols()}: {_room_text(skip, view)}")
        for ticket, reason in plan.kept_out:
            lines.append(f"  leave    source #{ticket}: {reason}")
        removing = {action.ticket for action in actions}
        counts_seen, needed = engine.orphans.counts(name), engine.orphans.max_checks(name)
        for copy in plan.orphans:
            if copy.ticket not in removing:
                lines.append(f"  orphan   copy #{copy.ticket} of gone source #{copy.magic}: not removed yet (seen in "
                             f"{counts_seen.get(copy.ticket, 0)} of {needed} checks, or kept by the orphan policy)")
        unresolved = engine.in_flight.get(name, {})
        if unresolved:
            lines.append(f"  {len(unresolved)} command(s) sent by an earlier run with no confirmed outcome: nothing "
                         "is planned for their source orders until the terminal shows what happened")
    lines.append("")
    lines.append(f"result: dry run, nothing sent (exit code {ExitCode.OK:d})")
    return "\n".join(lines)


def _would_line(action: Action, copy: PendingOrder | None) -> str:
    """One action in a trader's words: the source order, the copy it acts on, what it makes of it and why."""
    source = f"source #{action.source_ticket}"
    adjusted = f" ({action.adjustment})" if action.adjustment else ""
    kind = action.kind
    if kind is ActionKind.PLACE:
        return f"place    {source}: {action.describe()}{adjusted}"
    if kind in (ActionKind.MODIFY, ActionKind.REPLACE):
        changes = _changes(copy, action) if copy is not None else ""
        why = f"{changes}; " if changes else ""
        label = "modify  " if kind is ActionKind.MODIFY else "replace "
        return f"{label} {source} copy #{action.ticket}: {why}to {action.describe()}{adjusted}"
    if kind is ActionKind.REMOVE:
        evidence = f" ({action.evidence})" if action.evidence else ""
        return f"remove   {source} copy #{action.ticket} {action.symbol}: {action.reason}{evidence}"
    if kind is ActionKind.CLOSE:
        return (f"close    {source} position #{action.ticket} {action.symbol} {action.volume:g} of "
                f"{action.expected_volume:g} lots: {action.reason}")
    if kind is ActionKind.SLTP:
        return f"set SL/TP {source} position #{action.ticket} {action.symbol}: {action.reason}"
    return f"open at market {source} copy #{action.ticket} {action.symbol}: {action.reason}"


def _changes(copy: PendingOrder, action: Action) -> str:
    """What differs between the copy on the target and what the action makes of it: "sl 0 -> 1.07, ..."."""
    pairs = [("type", describe_order_type(copy.type), describe_order_type(action.order_type)),
             ("volume", f"{copy.volume_initial or copy.volume:g}", f"{action.volume:g}"),
             ("price", f"{copy.price_open:g}", f"{action.price:g}"),
             ("stop-limit", f"{copy.price_stoplimit:g}", f"{action.stoplimit:g}"),
             ("sl", f"{copy.sl:g}", f"{action.sl:g}"), ("tp", f"{copy.tp:g}", f"{action.tp:g}"),
             ("expiration", f"{copy.time_expiration}", f"{action.expiration}")]
    return ", ".join(f"{label} {was} -> {now}" for label, was, now in pairs if was != now)
