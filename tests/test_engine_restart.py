"""A coordinator that starts on a lost or a corrupt state file: as the engine and the state store decide it,
over terminals kept as books (tests/enginekit.py: Desk).

Moved here from tests/test_e2e_restart.py (two ``--once`` processes each) with every assertion kept; the
terminals are that file's: five source orders of five types on four symbols, copied to alpha (lots x2, symbols
suffixed ".m"; t1 here) and beta (as they are). The crashes and kills at awkward moments, which need real
processes, stay there.
"""

from __future__ import annotations

import sqlite3

import pytest

from coordinator.persistence.migrations import LATEST_VERSION
from protocol.tags import parse_tag
from tests.enginekit import SOURCE, TARGET, Book, Desk, OnceRun, console_text, summary_counts
from tests.simhelpers import BUY_LIMIT, BUY_STOP, BUY_STOP_LIMIT, SELL_LIMIT, SELL_STOP

BETA = "beta"
# (target, lot multiplier, symbol suffix), as tests/test_e2e_restart.py configures alpha and beta.
TARGETS = ((TARGET, 2.0, ".m"), (BETA, 1.0, ""))


@pytest.fixture
def desk(tmp_path) -> Desk:
    made = Desk(tmp_path / "state", BETA)
    alpha = made[TARGET]
    for name in list(alpha.symbols):
        alpha.symbol(name + ".m", like=name)
        del alpha.symbols[name]
    return made


def once(desk: Desk) -> OnceRun:
    return desk.once(t1={"lot_multiplier": 2.0, "symbol_suffix": ".m"})


def place_mixed(master: Book) -> list[int]:
    """Five source orders of five types on four symbols."""
    return [
        master.place(BUY_LIMIT, volume=0.2),
        master.place(SELL_STOP, symbol="GBPUSD", volume=0.3),
        master.place(BUY_STOP_LIMIT, distance_points=800),
        master.place(SELL_LIMIT, symbol="USDJPY", distance_points=300),
        master.place(BUY_STOP, symbol="XAUUSD", volume=0.5, distance_points=3000),
    ]


def target_orders(desk: Desk) -> tuple:
    return tuple(dict(desk[name].orders) for name, _, _ in TARGETS)


def problems(desk: Desk) -> list[str]:
    """Why the targets are not exact copies of the source ([] when they are): one copy per source order with
    the source's type, prices and the target's volume, nothing else pending, no positions, nothing removed."""
    source = desk[SOURCE].orders
    found: list[str] = []
    for name, multiplier, suffix in TARGETS:
        book = desk[name]
        by_source: dict[int, list] = {}
        for order in book.orders.values():
            if parse_tag(order.comment) == order.magic:
                by_source.setdefault(order.magic, []).append(order)
        for ticket, group in by_source.items():
            if len(group) > 1:
                found.append(f"{name}: {len(group)} copies of source #{ticket}")
        if set(by_source) != set(source):
            found.append(f"{name}: copies of {sorted(by_source)}, source orders {sorted(source)}")
        if len(book.orders) != len(source):
            found.append(f"{name}: {len(book.orders)} pending orders for {len(source)} source orders")
        if book.positions:
            found.append(f"{name}: positions {book.positions}")
        if book.history:
            found.append(f"{name}: orders left the pending list: {list(book.history.values())}")
        for ticket, group in by_source.items():
            original, copy = source.get(ticket), group[0]
            if original is None:
                continue
            wanted = (original.symbol + suffix, original.type, round(original.volume * multiplier, 2),
                      original.price_open, original.price_stoplimit, original.sl, original.tp)
            actual = (copy.symbol, copy.type, round(copy.volume, 2), copy.price_open, copy.price_stoplimit,
                      copy.sl, copy.tp)
            if wanted != actual:
                found.append(f"{name}: copy of #{ticket} is {actual}, wanted {wanted}")
    return found


def assert_exact(desk: Desk, output: str = "") -> None:
    found = problems(desk)
    assert not found, "\n".join(found) + ("\n\n" + output if output else "")
    for name, _, _ in TARGETS:
        desk[name].copies()  # the kit's own duplicate check


def no_duplicate_in(output: str) -> None:
    assert "second copy" not in output, output


def test_lost_state_is_rebuilt_from_the_tags_loudly_and_without_duplicates(desk):
    place_mixed(desk[SOURCE])
    assert once(desk).code == 0
    before = target_orders(desk)
    removed = list(desk.state_dir.glob("copier.db*"))
    assert removed
    for path in removed:
        path.unlink()

    run = once(desk)
    output = console_text(run.logs)
    assert run.code == 0, run.summary
    assert target_orders(desk) == before
    assert summary_counts(run.summary, TARGET)["placed"] == 0 and summary_counts(run.summary, BETA)["placed"] == 0
    for name, _, _ in TARGETS:
        for source_ticket, copy in desk[name].copies().items():
            assert f"found the copy #{copy.ticket} of source #{source_ticket}" in output, output
    no_duplicate_in(output)
    assert_exact(desk, output)


def test_corrupt_state_is_moved_aside_loudly_and_copying_carries_on(desk):
    place_mixed(desk[SOURCE])
    assert once(desk).code == 0
    state = desk.state_dir
    for extra in state.glob("copier.db-*"):
        extra.unlink()
    (state / "copier.db").write_bytes(b"\x00\x01 not a database, whatever it once was \xff\xfe" * 300)
    late = desk[SOURCE].place(SELL_LIMIT, symbol="GBPUSD", distance_points=700)

    run = once(desk)
    output = console_text(run.logs)
    assert run.code == 0, run.summary
    assert list(state.glob("copier.db.corrupt-*")), sorted(p.name for p in state.iterdir())
    assert any(level == "CRITICAL" for level, _ in run.logs) and "unreadable" in output, output
    assert summary_counts(run.summary, TARGET)["placed"] == 1 and summary_counts(run.summary, BETA)["placed"] == 1
    assert late in desk[TARGET].copies() and late in desk[BETA].copies()
    no_duplicate_in(output)
    assert_exact(desk, output)
    with sqlite3.connect(state / "copier.db") as db:  # a fresh, usable state file
        assert db.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone() == (str(LATEST_VERSION),)
