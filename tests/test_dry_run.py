"""``run --once --dry-run``: the plan for every target, with nothing sent and nothing written (coordinator/runtime/
dry_run.py). The engine behind the dry run's walls on a hand-turned clock, then once with real processes."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

import pytest

from coordinator.cli.app import main
from coordinator.domain.controls import TargetMode, operator_control
from coordinator.persistence.controls import set_control
from coordinator.persistence.state import DATABASE_NAME
from coordinator.runtime.dry_run import CommandsRefused, DryRun, questions_only
from coordinator.runtime.summary import render_dry_run
from protocol import Command, CommandBatch, CommandKind, CommandStatus, Message
from protocol.mt5 import OrderState
from tests.enginekit import SOURCE, TARGET, EngineRig, closed, copy_of, order
from tests.simhelpers import BUY_LIMIT, copier_config, place_pending, sim_terminals, target_section


def tables(state_dir: Path) -> dict[str, list[tuple]]:
    """Every row of every table of the state file, read-only."""
    db = sqlite3.connect((state_dir / DATABASE_NAME).as_uri() + "?mode=ro", uri=True)
    try:
        names = [row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
        return {name: sorted(map(tuple, db.execute(f"SELECT * FROM {name}").fetchall()), key=repr) for name in names}
    finally:
        db.close()


def copied_once(state_dir: Path, *orders_: tuple[int, int]) -> None:
    """A real engine copies each (source ticket, copy ticket) to t1: links, intents and history in the state."""
    rig = EngineRig(state_dir)
    try:
        rig.start([order(ticket) for ticket, _ in orders_])
        rig.reconcile()
        for command in rig.commands():
            rig.result(command, CommandStatus.DONE, ticket=dict(orders_)[command.source_ticket])
    finally:
        rig.close()


@pytest.fixture
def dry(tmp_path):
    """Makes an engine rig whose engine is a dry run's on the state folder ``tmp_path/state`` as it is then (the
    rig's own store, in ``tmp_path/rig``, is not the one planned on)."""
    made: list[tuple[EngineRig, DryRun]] = []

    def make() -> tuple[EngineRig, DryRun]:
        rig = EngineRig(tmp_path / "rig")
        walls = DryRun(tmp_path / "state")
        rig.engine = walls.engine(rig.config, rig._send, clock=lambda: rig.clock)
        made.append((rig, walls))
        return rig, walls

    yield make
    for rig, walls in made:
        walls.close()
        rig.close()


def test_a_dry_run_plans_every_action_sends_nothing_and_leaves_the_state_as_it_was(tmp_path, dry):
    state_dir = tmp_path / "state"
    copied_once(state_dir, (100, 900), (101, 901), (102, 902))
    before = tables(state_dir)
    assert before["links"] and before["intents"] and before["events"]
    rig, walls = dry()

    # Since: #100's price moved, #102 was cancelled, #103 is new; a person's own order sits on the target.
    moved, kept, gone = order(100, price_open=1.079), order(101), order(102)
    foreign = order(5000, magic=0, comment="by hand")
    rig.start([moved, kept, order(103)], [copy_of(order(100), 900), copy_of(kept, 901), copy_of(gone, 902), foreign],
              source_closed=[closed(102, OrderState.CANCELED)])
    rig.reconcile()

    assert not rig.messages(CommandBatch), "a dry run sent commands"
    planned = {(action.kind, action.source_ticket, action.ticket) for action in walls.dispatcher.planned[TARGET]}
    assert planned == {(CommandKind.PLACE, 103, 0), (CommandKind.MODIFY, 100, 900), (CommandKind.REMOVE, 102, 902)}
    assert not rig.engine.in_flight[TARGET]
    text = render_dry_run(rig.engine, walls.dispatcher.planned)
    assert "target t1: would place 1, modify 1, replace 0, remove 1, set SL/TP 0, close 0, open at market 0;" in text
    assert "place    source #103: EURUSD buy limit 0.1 lots @ 1.08 sl 0 tp 0" in text
    assert "modify   source #100 copy #900: price 1.08 -> 1.079; to EURUSD buy limit 0.1 lots @ 1.079" in text
    assert "remove   source #102 copy #902 EURUSD: orphan: source order #102 is cancelled (the source's history " \
           "says source order #102 was cancelled)" in text
    assert "#5000" not in text
    assert "result: dry run, nothing sent (exit code 0)" in text

    walls.close()
    assert tables(state_dir) == before


def test_a_paused_target_shows_what_its_pause_holds_back(tmp_path, dry):
    state_dir = tmp_path / "state"
    copied_once(state_dir, (100, 900))
    db = sqlite3.connect(state_dir / DATABASE_NAME)
    set_control(db, TARGET, operator_control(TargetMode.PAUSED, time.time()))
    db.close()
    rig, walls = dry()

    rig.start([order(100), order(101)], [copy_of(order(100), 900)])
    rig.reconcile()

    assert walls.dispatcher.planned[TARGET] == []
    text = render_dry_run(rig.engine, walls.dispatcher.planned)
    assert "would place 0, modify 0, replace 0, remove 0, set SL/TP 0, close 0, open at market 0; held back 1," in text
    control = rig.engine.control(TARGET)
    assert f"  control: {control.describe()}" in text
    assert "held     source #101 EURUSD: place held back: " in text and text.count("paused by the operator") == 2, text


def test_the_wire_of_a_dry_run_refuses_commands_and_lets_questions_through():
    sent: list[tuple[str, Message]] = []
    send = questions_only(lambda name, message: sent.append((name, message)) or True)
    batch = CommandBatch(batch_id="b", commands=(Command(command_id="c", kind=CommandKind.REMOVE, source_ticket=1,
                                                         symbol="EURUSD", ticket=2),))

    with pytest.raises(CommandsRefused):
        send(TARGET, batch)
    assert sent == []
    from protocol import SymbolRequest

    assert send(SOURCE, SymbolRequest(request_id="r", symbols=("EURUSD",)))
    assert len(sent) == 1


def test_dry_run_without_once_is_refused(capsys, tmp_path):
    code = main(["run", "--config", str(tmp_path / "copier.toml"), "--dry-run"])

    assert code == 2
    assert "use it with --once" in capsys.readouterr().err
    assert not (tmp_path / "state").exists()


# ---- real processes ----------------------------------------------------------------------------


def test_run_once_dry_run_prints_the_plan_and_places_nothing(copier):
    master, alpha = sim_terminals(copier.directory, "alpha")
    ticket = place_pending(master, BUY_LIMIT)
    copier.write_config(copier_config(target_section("alpha", 2001)))

    run = copier.run("run", "--config", str(copier.config_path), "--once", "--dry-run", timeout=60)

    assert run.code == 0, run.output
    assert f"place    source #{ticket}: EURUSD buy limit 0.1 lots" in run.output, run.output
    assert "target alpha: would place 1, modify 0" in run.output
    assert not alpha.orders_get()
    assert not (copier.directory / "state" / DATABASE_NAME).exists()  # the state was only read (there was none)
