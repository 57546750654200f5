"""Copies whose source order is gone (orphans), as the engine decides them, over terminals kept as books
(tests/enginekit.py: Desk), on a clock the test turns.

Moved here from tests/test_e2e_orphans.py (real processes, 5-20 s each, most of it waiting in real time for
check intervals and outages to pass) with every assertion kept: what is removed or kept and when, the log
lines as the coordinator's console shows them, the evidence at DEBUG, the history as ``mt5-copier history``
prints it and the status as ``mt5-copier status`` prints it. The target t1 plays that file's alpha (symbols
suffixed ".m"). That a cancel on a real source terminal reaches the copy through real workers stays there.
"""

from __future__ import annotations

import re
from typing import Any

import pytest

from coordinator.cli.operator import history_command, status_command
from protocol.tags import copy_tag
from tests.enginekit import SOURCE, TARGET, Desk, Session, console_text
from tests.simhelpers import BUY_LIMIT, BUY_STOP, SELL_LIMIT, SELL_STOP


@pytest.fixture
def desk(tmp_path) -> Desk:
    """t1 plays alpha, a broker whose symbols all end in ".m"."""
    made = Desk(tmp_path / "state")
    alpha = made[TARGET]
    for name in list(alpha.symbols):
        alpha.symbol(name + ".m", like=name)
        del alpha.symbols[name]
    return made


def alpha(policy: str, check_interval: float, max_checks: int) -> dict[str, Any]:
    """tests/test_e2e_orphans.py's alpha: suffixed symbols, and the orphan policy under test."""
    return {"symbol_suffix": ".m",
            "orphans": {"policy": policy, "check_interval": check_interval, "max_checks": max_checks}}


def start_and_copy(desk: Desk, settings: dict[str, Any], tickets: list[int]) -> Session:
    session = desk.session(t1=settings)
    session.run(5.0, until=lambda: all(ticket in desk[TARGET].copies() for ticket in tickets))
    return session


def history(capsys, session: Session) -> str:
    """What ``mt5-copier history`` prints."""
    capsys.readouterr()
    history_command(session.rig.config, target=None, since=None, limit=50)
    return capsys.readouterr().out


def test_kill_policy_removes_an_orphan_only_after_max_checks_consecutive_checks(desk, capsys):
    kept = desk[SOURCE].place(BUY_LIMIT)
    gone = desk[SOURCE].place(SELL_STOP, symbol="GBPUSD")
    session = start_and_copy(desk, alpha("kill", check_interval=1.0, max_checks=3), [kept, gone])
    try:
        kept_copy, orphan = desk[TARGET].copies()[kept], desk[TARGET].copies()[gone]
        desk[SOURCE].lose(gone)
        # Three checks one second apart (at 0, 1 and 2 s at the earliest): not removed before 2 s...
        removed_after = session.run(8.0, until=lambda: gone not in desk[TARGET].copies())
        session.run(0.5)
        output = console_text(session.logs)
        debug = "\n".join(message for _, message in session.logs)
        events = history(capsys, session)
    finally:
        session.close()
    assert removed_after >= 1.95, f"removed {removed_after:.2f}s after the cancel: before its 3rd check\n{output}"
    assert removed_after <= 4.5, f"removed only {removed_after:.2f}s after the cancel\n{output}"  # ...but by ~4 s
    assert desk[TARGET].copies() == {kept: kept_copy}
    assert list(desk[TARGET].history) == [orphan.ticket]

    # The evidence: every count, in words about orders and checks; the source snapshots behind it at DEBUG.
    this_copy = rf"copy #{orphan.ticket} \S+ of source order #{gone}: source order not found in"
    for count in (1, 2):
        assert re.search(rf"{this_copy} {count} of 3 consecutive checks; confirming before acting", output), output
    assert re.search(rf"{this_copy} 3 of 3 consecutive checks; removing the copy \(orphan policy kill\)",
                     output), output
    assert re.search(rf"orphan check on source snapshot {SOURCE} boot \w+ seq \d+", debug)
    assert re.search(rf"removed copy #{orphan.ticket} of source #{gone}", output), output

    assert re.search(rf"{TARGET}\s+orphan-kill\s+decided\s+source #{gone} -> #{orphan.ticket}", events), events
    assert re.search(rf"{TARGET}\s+removed\s+done\s+source #{gone} -> #{orphan.ticket}", events), events


def test_preserve_policy_keeps_an_orphan_reports_it_in_status_and_records_the_decision(desk, capsys, running):
    kept = desk[SOURCE].place(BUY_LIMIT)
    gone = desk[SOURCE].place(SELL_LIMIT, symbol="GBPUSD")
    session = start_and_copy(desk, alpha("preserve", check_interval=0.5, max_checks=2), [kept, gone])
    try:
        before = dict(desk[TARGET].orders)
        desk[SOURCE].remove(gone)  # cancelled: the source's history says so
        for _ in range(80):  # four seconds: eight checks, four times what confirmation takes
            session.step(0.05)
            assert desk[TARGET].orders == before, "a preserved orphan was touched"
        capsys.readouterr()
        status_command(session.rig.config)  # while the coordinator runs (``running``): its table is current
        status = capsys.readouterr().out
        output = console_text(session.logs)
        events = history(capsys, session)
    finally:
        session.close()
    assert desk[TARGET].orders == before and not desk[TARGET].history
    orphan = desk[TARGET].copies()[gone]
    assert re.search(rf"copy #{orphan.ticket} \S+ of source order #{gone}: the source's history says it was "
                     r"cancelled; keeping the copy \(orphan policy preserve\)", output), output
    assert output.count(f"copy #{orphan.ticket}") <= 3, "the kept orphan is reported again at every check"

    target = status[status.index(f"target {TARGET}"):]
    assert re.search(r"orphans: 1\b", target), status
    assert re.search(r"copies: 2\b", target), status
    assert re.search(rf"copy #{orphan.ticket} \(source #{gone} is gone\): kept", target), status

    assert re.search(rf"{TARGET}\s+orphan-preserved\s+kept\s+source #{gone} -> #{orphan.ticket}", events), events
    assert re.search(rf"{TARGET}\s+source\s+cancelled\s+source #{gone}", events), events


def test_orphan_confirmations_add_up_over_restarts(desk):
    # Counts survive restarts: three separate --once runs make three consecutive checks.
    settings = alpha("kill", check_interval=5.0, max_checks=3)
    kept = desk[SOURCE].place(BUY_LIMIT)
    gone = desk[SOURCE].place(SELL_STOP, symbol="GBPUSD")
    assert desk.once(t1=settings).code == 0
    orphan = desk[TARGET].copies()[gone]
    desk[SOURCE].lose(gone)
    counted = rf"copy #{orphan.ticket} \S+ of source order #{gone}: source order not found in {{}} of 3 consecutive"
    for count in (1, 2):
        run = desk.once(t1=settings)
        assert run.code == 0, run.summary
        assert re.search(counted.format(count) + ".*confirming before acting", console_text(run.logs)), run.logs
        assert gone in desk[TARGET].copies() and not desk[TARGET].history
    run = desk.once(t1=settings)
    assert run.code == 0, run.summary
    assert re.search(counted.format(3) + ".*removing the copy", console_text(run.logs)), run.logs
    assert set(desk[TARGET].copies()) == {kept} and list(desk[TARGET].history) == [orphan.ticket]


@pytest.mark.parametrize("outage", [
    "broker disconnected",
    "terminal stopped",
])
def test_a_source_outage_freezes_orphan_decisions_and_copying_resumes_after(desk, outage):
    check_interval, max_checks, outage_seconds = 1.0, 3, 9.5  # the outage outlasts 3 x confirmation
    assert outage_seconds > 3 * check_interval * max_checks
    master = desk[SOURCE]
    kept = master.place(BUY_LIMIT)
    gone = master.place(SELL_STOP, symbol="GBPUSD")
    session = start_and_copy(desk, alpha("kill", check_interval, max_checks), [kept, gone])
    try:
        orphan = desk[TARGET].copies()[gone]
        before = dict(desk[TARGET].orders)
        master.lose(gone)
        # The orphan is being confirmed (count 1 of 3) when the source goes away.
        counted = rf"copy #{orphan.ticket} \S+ of source order #{gone}: source order not found in 1 of 3"
        session.run(10.0, until=lambda: re.search(counted, console_text(session.logs)))
        if outage == "broker disconnected":
            master.connected = False
        else:
            master.running = False
        for beat in range(int(outage_seconds / 0.05)):
            session.step(0.05)
            assert desk[TARGET].orders == before, (
                f"{beat * 0.05:.1f}s into the outage, the target changed:\n{console_text(session.logs)}")
        master.connected = master.running = True

        session.run(10.0, until=lambda: gone not in desk[TARGET].copies())
        late = master.place(BUY_STOP, symbol="USDJPY", distance_points=300)
        session.run(10.0, until=lambda: late in desk[TARGET].copies())
        session.run(0.5)
        output = console_text(session.logs)
    finally:
        session.close()
    assert set(desk[TARGET].copies()) == {kept, late} and len(desk[TARGET].orders) == 2
    assert list(desk[TARGET].history) == [orphan.ticket]
    assert "copying paused" in output, output
    killed = re.search(rf"copy #{orphan.ticket} \S+ of source order #{gone}: source order not found in 3 of 3 .*"
                       "removing the copy", output)
    assert killed, output
    assert output.rfind("copying resumed") < killed.start(), "the orphan was confirmed during the outage"


@pytest.mark.parametrize("policy", ["kill", "preserve"])
def test_foreign_orders_survive_every_policy_while_real_orphans_follow_it(desk, policy):
    settings = alpha(policy, check_interval=0.3, max_checks=1)
    live = desk[SOURCE].place(BUY_LIMIT)
    cancelled = desk[SOURCE].place(SELL_LIMIT, symbol="GBPUSD")
    target = desk[TARGET]
    foreign = [
        # a person's order
        target.place(BUY_LIMIT, symbol="EURUSD.m", distance_points=900, magic=0, comment="manual"),
        # another expert advisor whose magic happens to equal a live source ticket
        target.place(SELL_LIMIT, symbol="EURUSD.m", distance_points=900, magic=live, comment="grid EA"),
        # ... and one whose magic equals the source ticket about to be cancelled
        target.place(BUY_STOP, symbol="GBPUSD.m", distance_points=900, magic=cancelled, comment="ea-x"),
        # a comment that looks like the copier's tag, typed by a person (magic 0)
        target.place(SELL_STOP, symbol="GBPUSD.m", distance_points=900, magic=0, comment=copy_tag(live)),
        # the tag of one source order with the magic of another: not a copy of either
        target.place(SELL_STOP, symbol="EURUSD.m", distance_points=950, magic=cancelled, comment=copy_tag(live)),
    ]
    untouched = dict(target.orders)
    assert set(untouched) == set(foreign)

    session = start_and_copy(desk, settings, [live, cancelled])
    try:
        orphan = target.copies()[cancelled]
        desk[SOURCE].remove(cancelled)
        if policy == "kill":
            session.run(10.0, until=lambda: cancelled not in target.copies())
        else:
            session.run(10.0, until=lambda: "keeping the copy" in console_text(session.logs))
        session.run(2.0)  # several more checks
        output = console_text(session.logs)
    finally:
        session.close()

    now = dict(target.orders)
    for ticket, order in untouched.items():
        assert now.get(ticket) == order, f"foreign order #{ticket} was changed or removed:\n{output}"
    ours = {ticket: copy.ticket for ticket, copy in target.copies().items()}
    if policy == "kill":
        assert set(ours) == {live}
        assert list(target.history) == [orphan.ticket]
    else:
        assert ours == {live: ours[live], cancelled: orphan.ticket} and not target.history
    assert set(now) == set(untouched) | set(ours.values())
    for ticket in foreign:
        assert f"#{ticket}" not in output, f"the copier spoke of foreign order #{ticket}:\n{output}"

    # A lost state does not turn any of them into copies either.
    for path in desk.state_dir.glob("copier.db*"):
        path.unlink()
    run = desk.once(t1=settings)
    assert run.code == 0, run.summary
    assert target.orders == now
