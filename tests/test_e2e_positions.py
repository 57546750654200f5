"""End to end with real processes: positions after a fill follow their source (issue "Follow the trade after it
fills"). The decisions are tested on the engine (tests/test_engine_positions.py, tests/test_positions.py);
here the real workers, terminals and wire carry them out: SL/TP, a partial close rounded down to the step, the
close, the source's SL, copies closed by hand, foreign positions, on_source_fill, a netting target, kills
around a close, and a source that goes dark.
"""

from __future__ import annotations

import json
import time

import pytest

import mt5sim
from tests.conftest import wait_for
from tests.simhelpers import BUY_LIMIT, copier_config, copies, place_pending, sim_terminals, target_section

pytestmark = pytest.mark.e2e

CRASH = "MT5_COPIER_CRASH"
FAST_ORPHANS = "[targets.orphans]\ncheck_interval = 0.3\nmax_checks = 2\n"
KEEP_POSITIONS = '[targets.positions]\non_source_close = "keep"\n'


def config(*targets: str) -> str:
    return copier_config(*targets, interval=0.3, heartbeat_interval=0.2, command_timeout=3.0)


def tagged_position(terminal: mt5sim.Terminal, source_ticket: int):
    """The copier's position for ``source_ticket`` on ``terminal`` (tag and magic), or None."""
    for position in terminal.positions_get() or ():
        if position.magic == source_ticket and position.comment == f"mtc#{source_ticket}":
            return position
    return None


def fill_everywhere(terminals: list[mt5sim.Terminal], order_price: float) -> None:
    """The market falls through a buy limit at ``order_price`` on every terminal: each copy fills too. The source
    (first in ``terminals``) last: a copy still pending when the copier sees its source filled is removed
    (on_source_fill's default), so a test process held up between two terminals on a loaded machine (half a
    second does it) would otherwise see a copy removed rather than filled, as the demo's FEED_LAG explains."""
    for terminal in reversed(terminals):
        terminal.set_quote("EURUSD", round(order_price - 0.0002, 5), round(order_price - 0.00008, 5))


def trade(terminal: mt5sim.Terminal, request: dict) -> None:
    result = terminal.order_send(request)
    assert result is not None and result.retcode == mt5sim.TRADE_RETCODE_DONE, result


def set_levels(terminal: mt5sim.Terminal, ticket: int, sl: float, tp: float) -> None:
    trade(terminal, {"action": mt5sim.TRADE_ACTION_SLTP, "position": ticket, "symbol": "EURUSD", "sl": sl, "tp": tp})


def close(terminal: mt5sim.Terminal, ticket: int, volume: float | None = None) -> None:
    """The trader closes the position (or ``volume`` of it) at market."""
    [position] = terminal.positions_get(ticket=ticket)
    tick = terminal.symbol_info_tick(position.symbol)
    buy = position.type == mt5sim.POSITION_TYPE_BUY
    trade(terminal, {"action": mt5sim.TRADE_ACTION_DEAL, "position": ticket, "symbol": position.symbol,
                     "volume": position.volume if volume is None else volume,
                     "type": mt5sim.ORDER_TYPE_SELL if buy else mt5sim.ORDER_TYPE_BUY,
                     "price": tick.bid if buy else tick.ask, "deviation": 50,
                     "type_filling": mt5sim.ORDER_FILLING_IOC})


def closing_deals(terminal: mt5sim.Terminal, position_id: int) -> int:
    deals = terminal.history_deals_get(position=position_id) or ()
    return sum(1 for deal in deals if deal.entry in (mt5sim.DEAL_ENTRY_OUT, mt5sim.DEAL_ENTRY_OUT_BY))


def levels(position) -> tuple[float, float]:
    return round(position.sl, 5), round(position.tp, 5)


def history(copier, target: str) -> list[str]:
    run = copier.run("history", "--config", str(copier.config_path), "--target", target, "--limit", "50")
    assert run.code == 0, run.output
    return run.output.splitlines()


def test_positions_follow_sl_tp_a_partial_close_and_the_close_and_leave_what_is_not_theirs(copier):
    master, alpha, beta, gamma = sim_terminals(copier.directory, "alpha", "beta", "gamma", gamma={
        "margin_mode": mt5sim.ACCOUNT_MARGIN_MODE_RETAIL_NETTING})
    beta.set_symbol("EURUSD", volume_step=0.1, volume_min=0.1)  # closes are rounded down to 0.1 there
    copier.write_config(config(target_section("alpha", 2001, tables=FAST_ORPHANS),
                               target_section("beta", 3001, tables=FAST_ORPHANS),
                               target_section("gamma", 4001)))
    ticket = place_pending(master, BUY_LIMIT, volume=0.3, distance_points=200)
    by_hand = place_pending(master, BUY_LIMIT, volume=0.1, distance_points=200)
    price = master.orders_get(ticket=ticket)[0].price_open
    scheduler = copier.start_scheduler()
    wait_for(lambda: all({ticket, by_hand} <= copies(t).keys() for t in (alpha, beta, gamma)),
             message="not copied")
    fill_everywhere([master, alpha, beta, gamma], price)
    wait_for(lambda: all(tagged_position(t, ticket) for t in (alpha, beta, gamma)), message="copies did not fill")
    copy = tagged_position(alpha, ticket)
    # A position that is not the copier's, though its magic is the source ticket: never touched.
    trade(alpha, {"action": mt5sim.TRADE_ACTION_DEAL, "symbol": "EURUSD", "volume": 0.5, "type": mt5sim.ORDER_TYPE_BUY,
                  "price": alpha.symbol_info_tick("EURUSD").ask, "magic": ticket, "comment": "manual",
                  "type_filling": mt5sim.ORDER_FILLING_IOC})
    foreign = next(p for p in alpha.positions_get() if p.comment == "manual")
    # A copy a person closed is left alone from then on.
    close(alpha, tagged_position(alpha, by_hand).ticket)

    [source] = master.positions_get(ticket=ticket)
    set_levels(master, ticket, sl=round(source.price_open - 0.003, 5), tp=round(source.price_open + 0.004, 5))
    wanted = levels(master.positions_get(ticket=ticket)[0])
    wait_for(lambda: levels(tagged_position(alpha, ticket)) == wanted == levels(tagged_position(beta, ticket)),
             message="SL/TP not followed")
    set_levels(master, by_hand, sl=round(source.price_open - 0.002, 5), tp=0.0)

    close(master, ticket, 0.15)
    wait_for(lambda: tagged_position(alpha, ticket).volume == 0.15 and tagged_position(beta, ticket).volume == 0.2,
             message="the partial close was not followed (0.15 on alpha; 0.1 of 0.3 on beta's step of 0.1)")
    close(master, ticket)
    wait_for(lambda: tagged_position(alpha, ticket) is None and tagged_position(beta, ticket) is None,
             message="the copies were not closed")
    time.sleep(0.6)  # room for anything that should not happen

    assert closing_deals(alpha, copy.ticket) == 2  # the half, then the rest: each close once
    assert alpha.positions_get(ticket=foreign.ticket)[0].volume == 0.5
    assert tagged_position(alpha, by_hand) is None and by_hand not in copies(alpha)  # never reopened
    # Netting: both copies merged into one position per symbol, which the copier leaves alone.
    [netted] = gamma.positions_get()
    assert netted.volume == 0.4 and levels(netted) != wanted

    rows = history(copier, "alpha")
    assert any("position-sltp" in row for row in rows)
    assert any("position-partial-close" in row and "closed 0.15 lots at" in row for row in rows)
    assert any("position-close" in row and "closed 0.15 lots at" in row for row in rows)
    status = copier.run("status", "--config", str(copier.config_path), "--json")
    terminals = {t["name"]: t for t in json.loads(status.output)["terminals"]}
    assert terminals["master"]["positions"] == 1  # by_hand's source
    [(netted_row)] = terminals["gamma"]["position_list"]
    assert terminals["gamma"]["positions"] == 1 and "not followed" in netted_row["state"]
    assert "netting" in netted_row["state"]
    code, output = copier.stop(scheduler)
    assert code == 0, output
    log = (copier.directory / "state" / "logs" / "coordinator.log").read_text()
    assert "gamma is a netting account" in log


def test_the_sources_sl_closes_the_copy_unless_it_closed_on_its_own_or_the_target_keeps_it(copier):
    master, alpha, beta, keeper = sim_terminals(copier.directory, "alpha", "beta", "keeper")
    copier.write_config(config(target_section("alpha", 2001, tables=FAST_ORPHANS),
                               target_section("beta", 3001, tables=FAST_ORPHANS),
                               target_section("keeper", 4001, tables=KEEP_POSITIONS)))
    ticket = place_pending(master, BUY_LIMIT, volume=0.2, distance_points=200)
    price = master.orders_get(ticket=ticket)[0].price_open
    copier.start_scheduler()
    wait_for(lambda: all(ticket in copies(t) for t in (alpha, beta, keeper)), message="not copied")
    fill_everywhere([master, alpha, beta, keeper], price)
    wait_for(lambda: all(tagged_position(t, ticket) for t in (alpha, beta, keeper)), message="not filled")
    [source] = master.positions_get(ticket=ticket)
    sl = round(source.price_open - 0.001, 5)
    set_levels(master, ticket, sl=sl, tp=0.0)
    wait_for(lambda: levels(tagged_position(alpha, ticket))[0] == sl == levels(tagged_position(beta, ticket))[0],
             message="SL not followed")
    alpha_copy, beta_copy = tagged_position(alpha, ticket).ticket, tagged_position(beta, ticket).ticket

    # The market falls through the SL on the source and on beta, not on alpha: beta's copy closes on its own
    # SL, alpha's is closed by the copier when the source's deals say its position closed.
    for terminal in (master, beta):
        terminal.set_quote("EURUSD", round(sl - 0.0002, 5), round(sl - 0.0001, 5))
    wait_for(lambda: not master.positions_get(ticket=ticket), message="the source's SL did not close it")
    wait_for(lambda: tagged_position(alpha, ticket) is None, message="alpha's copy was not closed")
    time.sleep(0.6)
    assert closing_deals(alpha, alpha_copy) == 1
    beta_deals = beta.history_deals_get(position=beta_copy)
    assert [deal.reason for deal in beta_deals if deal.entry == mt5sim.DEAL_ENTRY_OUT] == [mt5sim.DEAL_REASON_SL]
    # on_source_close = "keep": the copy's position stays open, and the history says it was kept.
    assert tagged_position(keeper, ticket) is not None
    assert any("orphan-preserved" in row and "on_source_close = keep" in row for row in history(copier, "keeper"))


def test_a_dark_source_closes_nothing_and_its_close_is_followed_once_it_is_back(copier):
    master, alpha = sim_terminals(copier.directory, "alpha")
    copier.write_config(config(target_section("alpha", 2001, tables=FAST_ORPHANS)))
    ticket = place_pending(master, BUY_LIMIT, volume=0.1, distance_points=200)
    price = master.orders_get(ticket=ticket)[0].price_open
    copier.start_scheduler()
    wait_for(lambda: ticket in copies(alpha), message="not copied")
    fill_everywhere([master, alpha], price)
    wait_for(lambda: tagged_position(alpha, ticket), message="not filled")
    [source] = master.positions_get(ticket=ticket)
    sl = round(source.price_open - 0.001, 5)
    set_levels(master, ticket, sl=sl, tp=0.0)
    wait_for(lambda: levels(tagged_position(alpha, ticket))[0] == sl, message="SL not followed")
    # The source's terminal loses its broker; meanwhile its market falls through the SL (on the server), so
    # its position is gone, and nothing the coordinator can read says why.
    mt5sim.set_connected(copier.directory / "terminals" / "master", False)
    master.set_quote("EURUSD", round(sl - 0.0002, 5), round(sl - 0.0001, 5))
    time.sleep(2.0)  # over three times the confirmations (2 checks 0.3 s apart)
    assert tagged_position(alpha, ticket) is not None, "a position was closed on a source that could not be read"
    mt5sim.set_connected(copier.directory / "terminals" / "master", True)
    wait_for(lambda: tagged_position(alpha, ticket) is None, message="the close was not followed once back")


def test_each_on_source_fill_mode(copier):
    master, remove, keep, market = sim_terminals(copier.directory, "remove", "keep", "market")
    copier.write_config(config(
        target_section("remove", 2001),
        target_section("keep", 3001, tables='[targets.positions]\non_source_fill = "keep"\n'),
        target_section("market", 4001, tables='[targets.positions]\non_source_fill = "market"\n'
                                              "max_entry_slippage_points = 30\n")))
    ticket = place_pending(master, BUY_LIMIT, volume=0.2, distance_points=200)
    price = master.orders_get(ticket=ticket)[0].price_open
    copier.start_scheduler()
    wait_for(lambda: all(ticket in copies(t) for t in (remove, keep, market)), message="not copied")
    for terminal in (remove, keep, market):  # the targets' markets come near it, not through it
        terminal.set_quote("EURUSD", round(price - 0.00002, 5), round(price + 0.0001, 5))  # past the freeze level
    time.sleep(1.5)  # their prices reach the coordinator (quotes refreshed every second, sent with heartbeats)
    fill_everywhere([master], price)  # only the source's market reaches the order
    wait_for(lambda: ticket not in copies(remove) and tagged_position(market, ticket) is not None,
             message="on_source_fill not acted on")
    time.sleep(0.6)
    assert ticket in copies(keep) and tagged_position(keep, ticket) is None
    assert tagged_position(remove, ticket) is None
    assert tagged_position(market, ticket).volume == 0.2 and ticket not in copies(market)


@pytest.mark.parametrize(("process", "point"), [
    ("coordinator", "after-intent"),  # the close is on disk, not sent
    ("coordinator", "after-send"),  # the close is sent, its answer never read
    ("worker", "after-order-send"),  # the broker closed it, the worker died before answering
])
def test_a_kill_around_a_close_neither_loses_it_nor_closes_twice(copier, process, point):
    master, alpha = sim_terminals(copier.directory, "alpha")
    copier.write_config(config(target_section("alpha", 2001)))
    ticket = place_pending(master, BUY_LIMIT, volume=0.1, distance_points=200)
    price = master.orders_get(ticket=ticket)[0].price_open
    assert copier.once().code == 0
    fill_everywhere([master, alpha], price)
    copy = tagged_position(alpha, ticket)
    assert copy is not None
    assert copier.once().code == 0  # the fills noted; nothing to do
    close(master, ticket)
    if process == "coordinator" and point == "after-send":
        alpha.set_latency(0.5)  # the worker is still in its request when the coordinator dies

    first = copier.once(env={CRASH: point}, timeout=30)
    assert first.code in (1, 137), first.output
    alpha.set_latency(0)
    wait_for(lambda: tagged_position(alpha, ticket) is None or point == "after-intent", timeout=5,
             message="the close sent before the kill did not land")
    second = copier.once()
    assert second.code == 0, second.output
    assert tagged_position(alpha, ticket) is None
    assert closing_deals(alpha, copy.ticket) == 1
    assert copier.once().code == 0
    assert closing_deals(alpha, copy.ticket) == 1
