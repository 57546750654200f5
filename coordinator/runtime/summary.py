"""The account of a sync that ``run --once`` prints, and the exit code that goes with it."""

from __future__ import annotations

from config.exit_codes import ExitCode
from coordinator.domain.planner import Skip, SkipReason, TargetPlan
from coordinator.runtime.engine import Engine
from coordinator.runtime.views import TerminalView


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
            f"waiting for room {len(waiting)}"
        )
        if report.unavailable:
            lines.append(f"  NOT SYNCED at the end: {_naming_the_terminal(report.unavailable, view)}")
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
    """0 when every target holds what its settings call for; orders left out on purpose (a filtered type, a
    copy deleted by hand), orders waiting for room under the user's own ``max_pending_orders`` and orphans
    still being confirmed do not count against it."""
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


def _room_text(skip: Skip, view: TerminalView) -> str:
    """The planner says why (with the orphans holding the cap, if any); the cap alone when it did not."""
    cap = view.target.copy.max_pending_orders if view.target is not None else None
    return skip.detail or f"waiting for room under max_pending_orders = {cap}"


def _naming_the_terminal(why: str, view: TerminalView) -> str:
    """A terminal that cannot be used is found by its path: say which one was tried, unless the error does."""
    path = str(view.config.path)
    return why if path in why else f"{why} (terminal {path})"
