"""The ``venue`` fixture: every contract test runs once per MT5 implementation.

``sim``: a fresh mt5sim terminal per test, in the test's tmp_path; always runs.
``real``: the real ``MetaTrader5`` package on the demo terminal the ``MT5_COPIER_CONTRACT_*`` variables name
(Windows only; marked ``real_mt5``). One connection for the whole session; it refuses to start unless the
account is a demo and the configured one; each test gets its own block of magic numbers, and its orders are
removed and its positions closed in teardown, pass or fail.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from terminal_worker.adapter import MT5Adapter
from terminal_worker.backends import load_backend
from terminal_worker.errors import TerminalError
from tests.contract.venue import (
    CONTRACT_MAGIC_BASE,
    CONTRACT_MAGIC_END,
    TICKETS_PER_TEST,
    RealTerminalSettings,
    RecordingModule,
    SimMarket,
    Venue,
    close_contract_positions,
    contract_run_base,
    refuse_unless_demo,
    remove_contract_orders,
    why_real_cannot_run,
)

SIM_LOGIN, SIM_SERVER, SIM_PASSWORD, SIM_SYMBOL = 5001, "Contract-Sim", "contract-secret", "EURUSD"
SIM_SERVER_OFFSET_HOURS = 2  # like most brokers: the server clock runs ahead of UTC
REAL_SETTLE_SECONDS = 5.0


@dataclass
class RealSession:
    settings: RealTerminalSettings
    module: RecordingModule
    adapter: MT5Adapter
    next_block: int

    def block(self) -> int:
        first = self.next_block
        self.next_block += TICKETS_PER_TEST
        return first


@pytest.fixture(scope="session")
def real_terminal() -> Iterator[RealSession]:
    """The real terminal, attached once for the session, or the test skipped with what to set."""
    reason = why_real_cannot_run(os.environ)
    if reason is not None:
        pytest.skip(reason)
    if os.environ.get("PYTEST_XDIST_WORKER"):
        # Each of the runners pytest-xdist starts would attach on its own and use the same magic numbers.
        pytest.skip("the real terminal takes one connection for the whole run: run the contract suite one test at a "
                    "time, with -n 0 (see README)")
    try:
        settings = RealTerminalSettings.from_environment(os.environ)
    except ValueError as e:
        pytest.fail(f"the contract suite's settings are wrong: {e}", pytrace=False)
    module = RecordingModule(load_backend("mt5"))
    adapter = MT5Adapter(module, path=settings.path, login=settings.login, server=settings.server,
                         password=settings.password, portable=settings.portable)
    try:
        adapter.connect()
    except TerminalError as e:
        pytest.fail(f"the adapter could not attach to the terminal at {settings.path}: {e}", pytrace=False)
    refusal = refuse_unless_demo(module.inner, settings.login, settings.server)
    if refusal is not None:
        # Every real test errors with this at setup, before anything is sent (pytest keeps a session
        # fixture's failure for the whole session: it is not retried per test).
        adapter.disconnect()
        pytest.fail(refusal, pytrace=False)
    # Leftovers of an earlier run that was killed before its teardown: only the suite's own magic range.
    open_left = close_contract_positions(module.inner, CONTRACT_MAGIC_BASE, CONTRACT_MAGIC_END)
    left = remove_contract_orders(module.inner, CONTRACT_MAGIC_BASE, CONTRACT_MAGIC_END)
    if open_left or left:
        adapter.disconnect()
        pytest.fail(f"positions {open_left} and orders {left} left by an earlier contract run could not be closed "
                    "and removed: close and remove them by hand", pytrace=False)
    session = RealSession(settings, module, adapter, contract_run_base())
    try:
        yield session
    finally:
        open_left = close_contract_positions(module.inner, CONTRACT_MAGIC_BASE, CONTRACT_MAGIC_END)
        left = remove_contract_orders(module.inner, CONTRACT_MAGIC_BASE, CONTRACT_MAGIC_END)
        adapter.disconnect()
        if open_left or left:
            pytest.fail(f"the contract suite could not close its positions {open_left} and remove its orders "
                        f"{left}: close and remove them by hand", pytrace=False)


def _sim_venue(path: Path) -> Iterator[Venue]:
    import mt5sim

    mt5sim.create_terminal(path, login=SIM_LOGIN, server=SIM_SERVER, password=SIM_PASSWORD,
                           server_offset_hours=SIM_SERVER_OFFSET_HOURS)
    module = RecordingModule(mt5sim)
    adapter = MT5Adapter(module, path=path, login=SIM_LOGIN, server=SIM_SERVER, password=SIM_PASSWORD)
    adapter.connect()
    venue = Venue("sim", adapter, module, symbol=SIM_SYMBOL, first_source_ticket=contract_run_base(),
                  settle_seconds=1.0, market=SimMarket(path, SIM_SYMBOL))
    try:
        yield venue
    finally:
        try:
            venue.clean_up()
        finally:
            adapter.disconnect()


def _real_venue(session: RealSession) -> Iterator[Venue]:
    if not session.adapter.connected:  # a test that reconnected and failed half-way
        session.adapter.connect()
    session.module.forget()
    venue = Venue("real", session.adapter, session.module, symbol=session.settings.symbol,
                  first_source_ticket=session.block(), settle_seconds=REAL_SETTLE_SECONDS)
    try:
        yield venue
    finally:
        venue.clean_up()


@pytest.fixture(params=[pytest.param("sim"), pytest.param("real", marks=pytest.mark.real_mt5)])
def venue(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Venue]:
    """One MT5 implementation behind the adapter under test; its orders are removed afterwards."""
    if request.param == "sim":
        yield from _sim_venue(tmp_path / "terminal")
    else:
        yield from _real_venue(request.getfixturevalue("real_terminal"))


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Without a real terminal configured, the real variants are left out of an ordinary run (one skip line
    each would bury the summary); asked for with ``-m real_mt5``, they stay and say what to set."""
    if "real_mt5" in (config.getoption("markexpr") or "") or why_real_cannot_run(os.environ) is None:
        return
    real = [item for item in items if item.get_closest_marker("real_mt5") is not None]
    if real:
        config.hook.pytest_deselected(items=real)
        items[:] = [item for item in items if item.get_closest_marker("real_mt5") is None]
