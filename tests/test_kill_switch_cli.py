"""``mt5-copier remove-copies``: its refusals (exit 2, nothing removed), the confirmation, the exit codes, and once
with real processes: the running coordinator takes the copier's copies off a target and pauses it."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from coordinator.cli.app import main
from coordinator.cli.remove_copies import remove_copies_command
from coordinator.domain.controls import TargetMode
from coordinator.persistence.controls import read_controls
from coordinator.persistence.state import DATABASE_NAME
from coordinator.runtime.kill_switch import (
    FAILED,
    REMOVE_COPIES,
    REMOVED,
    TO_REMOVE,
    CopyOutcome,
    KillSwitchAnswer,
    KillSwitchRequest,
)
from coordinator.runtime.operator_requests import RequestInbox, requests_folder
from tests.conftest import wait_for
from tests.simhelpers import BUY_LIMIT, SELL_STOP, copier_config, copies, place_pending, sim_terminals, target_section

CONFIG = copier_config(target_section("alpha", 2001))


@pytest.fixture
def config_path(tmp_path: Path) -> Path:
    path = tmp_path / "copier.toml"
    path.write_text(CONFIG, encoding="utf-8")
    return path


def cli(capsys, *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def item(ticket: int, outcome: str, detail: str = "") -> CopyOutcome:
    return CopyOutcome(what="order", copy_ticket=ticket, source_ticket=ticket - 800, symbol="EURUSD", volume=0.1,
                       outcome=outcome, detail=detail)


class FakeCoordinator:
    """The coordinator's side of the request files, on a thread: a preview answers ``preview``, a removal
    ``removal``."""

    def __init__(self, state_dir: Path, preview: KillSwitchAnswer, removal: KillSwitchAnswer) -> None:
        self.inbox = RequestInbox(state_dir)
        self.answers = {True: preview, False: removal}
        self.asked: list[KillSwitchRequest | None] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)

    def _serve(self) -> None:
        while not self._stop.is_set():
            for request in self.inbox.take():
                assert request.kind == REMOVE_COPIES
                asked = KillSwitchRequest.from_body(request.body)
                self.asked.append(asked)
                assert asked is not None
                self.inbox.answer(request, self.answers[asked.preview].to_body())
            time.sleep(0.02)

    def __enter__(self) -> FakeCoordinator:
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        self._thread.join(5)


def test_with_no_coordinator_running_it_refuses_with_exit_2_and_touches_nothing(capsys, config_path, tmp_path):
    code, out, err = cli(capsys, "remove-copies", "--config", str(config_path), "--target", "alpha", "--yes")

    assert code == 2
    assert out == ""
    assert f"no coordinator is running on {tmp_path / 'state'}" in err and "no terminal to ask on" in err
    assert f"`mt5-copier run --config {config_path}`" in err and "Nothing was removed." in err
    assert not requests_folder(tmp_path / "state").exists() and not (tmp_path / "state" / DATABASE_NAME).exists()


def test_an_unknown_target_is_refused(capsys, config_path, running):
    code, _, err = cli(capsys, "remove-copies", "--config", str(config_path), "--target", "beta", "--yes")

    assert code == 2
    assert "has no target beta (its targets: alpha)" in err


def test_without_yes_and_no_terminal_to_confirm_on_it_refuses(capsys, config_path, tmp_path, running):
    code = remove_copies_command(config_path, "alpha", interactive=lambda: False)

    assert code == 2
    assert "pass --yes" in capsys.readouterr().err
    assert not requests_folder(tmp_path / "state").exists()


def test_it_lists_what_it_would_remove_and_asks_first(capsys, config_path, tmp_path, running):
    preview = KillSwitchAnswer(items=(item(901, TO_REMOVE), item(902, TO_REMOVE)), notes=("left alone: 1",))
    removal = KillSwitchAnswer(items=(item(901, REMOVED), item(902, FAILED, "market closed")),
                               notes=("alpha is paused",))
    questions: list[str] = []

    with FakeCoordinator(tmp_path / "state", preview, removal) as coordinator:
        declined = remove_copies_command(config_path, "alpha", interactive=lambda: True,
                                         confirm=lambda q: questions.append(q) or "n")
        assert declined == 2 and len(coordinator.asked) == 1  # only the question: nothing removed
        out = capsys.readouterr().out
        assert "remove  order #901 EURUSD 0.1 lots, copy of source #101" in out and "left alone: 1" in out
        assert questions == ["Remove 2 copies on alpha? [y/N] "]

        confirmed = remove_copies_command(config_path, "alpha", interactive=lambda: True, confirm=lambda q: "y")

    assert confirmed == 1  # one copy failed
    assert [asked.preview for asked in coordinator.asked if asked] == [True, True, False]
    out = capsys.readouterr().out
    assert "  removed  order #901 EURUSD 0.1 lots, copy of source #101" in out
    assert "  FAILED   order #902 EURUSD 0.1 lots, copy of source #102: market closed" in out
    assert "  alpha is paused" in out
    assert "result: 1 of 2 copies taken off; 1 failed or unknown (exit code 1)" in out


def test_a_refusal_from_the_coordinator_exits_2(capsys, config_path, tmp_path, running):
    no_terminal = KillSwitchAnswer(refused="no terminal to ask on: target alpha: worker offline")
    with FakeCoordinator(tmp_path / "state", no_terminal, no_terminal):
        code = remove_copies_command(config_path, "alpha", yes=True)

    assert code == 2
    assert "remove-copies refused: no terminal to ask on: target alpha: worker offline. Nothing was removed." in \
        capsys.readouterr().err


# ---- real processes ----------------------------------------------------------------------------


@pytest.fixture
def coordinator(copier) -> Iterator[tuple]:
    terminals = sim_terminals(copier.directory, "alpha")
    copier.write_config(CONFIG)
    process = copier.start_scheduler()
    yield process, terminals
    code, output = copier.stop(process)
    assert code == 0, output


def test_remove_copies_takes_the_copies_off_and_pauses_the_target(copier, coordinator):
    _, (master, alpha) = coordinator
    tickets = [place_pending(master, BUY_LIMIT), place_pending(master, SELL_STOP, symbol="GBPUSD")]
    wait_for(lambda: set(copies(alpha)) == set(tickets), timeout=30, message="the copies were not placed")
    by_hand = place_pending(alpha, BUY_LIMIT, distance_points=900, comment="by hand")

    run = copier.run("remove-copies", "--config", str(copier.config_path), "--target", "alpha", "--yes", timeout=40)

    assert run.code == 0, run.output
    assert run.output.count("  removed  order #") == 2, run.output
    assert "result: 2 of 2 copies taken off (exit code 0)" in run.output
    assert [order.ticket for order in alpha.orders_get()] == [by_hand]
    time.sleep(1.0)  # the coordinator's interval: paused, nothing is placed again
    assert [order.ticket for order in alpha.orders_get()] == [by_hand]
    import sqlite3

    db = sqlite3.connect(copier.directory / "state" / DATABASE_NAME)
    try:
        control = read_controls(db)["alpha"]
    finally:
        db.close()
    assert control.mode is TargetMode.PAUSED and control.set_by == "remove-copies"
