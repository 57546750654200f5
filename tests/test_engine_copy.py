"""Copying again changes nothing, a lost state is rebuilt from the terminals, a missing symbol is skipped with
its reason: as the engine decides it, over terminals kept as books (tests/enginekit.py: Desk).

Moved here from tests/test_e2e_copy.py (one process run each, 3-5 s) with every assertion kept; the targets
are that file's two, with their settings: alpha (lots x2, symbols suffixed ".m") and beta (lots x0.5, no
stop-limit orders, XAUUSD mapped to GOLD). How ``mt5-copier history`` prints the rows checked here is
tests/test_operator.py's.
"""

from __future__ import annotations

import pytest

from tests.enginekit import SOURCE, TARGET, Desk, summary_counts
from tests.simhelpers import BUY_LIMIT, BUY_STOP_LIMIT, SELL_STOP

BETA = "beta"
ALPHA_SETTINGS = {"lot_multiplier": 2.0, "symbol_suffix": ".m"}
BETA_SETTINGS = {"lot_multiplier": 0.5, "order_types": ["buy_limit", "sell_limit", "buy_stop", "sell_stop"],
                 "symbol_map": {"XAUUSD": "GOLD"}}


@pytest.fixture
def desk(tmp_path) -> Desk:
    """t1 plays alpha, a broker whose symbols all end in ".m"; beta has the simulator's symbols and GOLD."""
    made = Desk(tmp_path / "state", BETA)
    alpha = made[TARGET]
    for name in list(alpha.symbols):
        alpha.symbol(name + ".m", like=name)
        del alpha.symbols[name]
    made[BETA].symbol("GOLD", like="EURUSD", quote=(2000.0, 2000.25), digits=2, point=0.01, tick_size=0.01,
                      contract_size=100.0, volume_min=0.1, volume_step=0.1, stops_level=20)
    return made


def once(desk: Desk, beta: dict | None = None):
    return desk.once(t1=ALPHA_SETTINGS, beta=beta or BETA_SETTINGS)


def test_a_second_once_changes_nothing(desk):
    for order_type in (BUY_LIMIT, SELL_STOP, BUY_STOP_LIMIT):
        desk[SOURCE].place(order_type)
    first = once(desk)
    assert first.code == 0, first.summary
    before = (dict(desk[TARGET].orders), dict(desk[BETA].orders))
    assert len(before[0]) == 3 and len(before[1]) == 2

    second = once(desk)
    assert second.code == 0, second.summary
    assert "placed 0" in second.summary
    assert summary_counts(second.summary, TARGET)["placed"] == summary_counts(second.summary, BETA)["placed"] == 0
    assert second.commands == []
    assert (desk[TARGET].orders, desk[BETA].orders) == before


def test_lost_state_is_rebuilt_from_the_terminals_without_duplicates(desk):
    desk[SOURCE].place(BUY_LIMIT)
    assert once(desk).code == 0
    for path in desk.state_dir.glob("copier.db*"):
        path.unlink()
    before = dict(desk[TARGET].orders)

    run = once(desk)
    assert run.code == 0, run.summary
    assert desk[TARGET].orders == before
    assert run.commands == []
    assert summary_counts(run.summary, TARGET)["placed"] == 0, run.summary
    assert (TARGET, "adopted", "done", "copy found on the target with the copier's tag") in run.events


def test_missing_symbol_is_skipped_with_its_reason(desk):
    desk[SOURCE].place(BUY_LIMIT, symbol="USDJPY", distance_points=300)
    desk[SOURCE].place(BUY_LIMIT)
    run = once(desk)
    assert run.code == 0, run.summary  # USDJPY exists everywhere
    assert len(desk[BETA].copies()) == 2

    desk[SOURCE].place(BUY_LIMIT, symbol="US500", distance_points=3000)
    run = once(desk, beta={**BETA_SETTINGS, "symbol_map": {"XAUUSD": "GOLD", "US500": "SPX500"}})
    assert run.code == 1, run.summary
    assert "SPX500" in run.summary and "not found" in run.summary
    assert len(desk[TARGET].copies()) == 3
    # What `mt5-copier history --target beta` lists.
    skipped = [message for target, action, _, message in run.events if target == BETA and action == "skipped"]
    assert len(skipped) == 1 and "SPX500" in skipped[0], run.events
