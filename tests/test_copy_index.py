"""The duplicate-copy guard over a batch (terminal_worker/copy_index.py): one read of the terminal for the whole
batch, kept true by the worker's own placements, and never "no copy" where a copy is."""

from __future__ import annotations

import types

import pytest

import mt5sim
from protocol import Command, CommandKind, CommandStatus
from protocol.tags import copy_tag
from terminal_worker.adapter import MT5Adapter
from terminal_worker.copy_index import MAX_AGE_SECONDS, BatchCopyIndex, CopyIndex
from tests.simhelpers import BUY_LIMIT, copies, create, place_pending


def tagged(ticket: int, source: int, *, identifier: int = 0):
    return types.SimpleNamespace(ticket=ticket, identifier=identifier or ticket, magic=source,
                                 comment=copy_tag(source))


def test_the_index_finds_tagged_orders_and_positions_and_ignores_foreign_ones():
    foreign = types.SimpleNamespace(ticket=7, magic=0, comment="manual")
    mistagged = types.SimpleNamespace(ticket=8, magic=99, comment=copy_tag(100))  # tag and magic disagree
    index = CopyIndex([foreign, mistagged, tagged(10, 100)], [tagged(11, 200, identifier=12)], read_at=0.0)
    assert index.find(100) == 10
    assert index.find(100, exclude=10) is None
    assert index.find(200) == 12
    assert index.find(99) is None and index.find(7) is None


def test_a_batch_reads_once_adds_its_own_placements_and_reads_again_when_told_or_when_old():
    reads = []
    now = [0.0]

    def read():
        reads.append(now[0])
        return [tagged(10, 100)], []

    index = BatchCopyIndex(read, clock=lambda: now[0])
    index.begin()
    assert index.find(100) == 10 and index.find(300) is None
    index.placed(300, 31)
    assert index.find(300) == 31
    assert len(reads) == 1
    index.forget()
    assert index.find(300) is None  # the terminal (as read) does not hold it: the read is the truth
    assert len(reads) == 2
    now[0] += MAX_AGE_SECONDS
    index.find(100)
    assert len(reads) == 3


class CountingModule(types.ModuleType):
    """mt5sim, counting the full reads the guard makes."""

    def __init__(self) -> None:
        super().__init__("counting_mt5")
        self.reads = 0

    def __getattr__(self, name):
        return getattr(mt5sim, name)

    def orders_get(self, *args, **kwargs):
        self.reads += 1
        return mt5sim.orders_get(*args, **kwargs)


@pytest.fixture
def terminal(tmp_path):
    return create(tmp_path / "t", 2001, "Alpha-Live")


def place(source_ticket: int, index: int) -> Command:
    return Command(command_id=f"c{source_ticket}-{index}", kind=CommandKind.PLACE, source_ticket=source_ticket,
                   symbol="EURUSD", order_type=BUY_LIMIT, volume=0.1, price=round(1.05 - index * 0.0001, 5),
                   magic=source_ticket, comment=copy_tag(source_ticket))


def test_a_batch_of_placements_reads_the_terminal_once_and_never_places_a_second_copy(terminal, tmp_path):
    module = CountingModule()
    adapter = MT5Adapter(module, path=tmp_path / "t", login=2001, server="Alpha-Live")
    adapter.connect()
    try:
        before = place_pending(terminal, BUY_LIMIT, magic=500, comment=copy_tag(500))  # placed before the batch
        module.reads = 0
        adapter.begin_batch()
        results = [adapter.execute(place(500, 0))]
        results += [adapter.execute(place(600 + i, i)) for i in range(10)]
        results.append(adapter.execute(place(603, 20)))  # the same intent again within the batch
        adapter.end_batch()
        assert module.reads == 1
        assert results[0].status is CommandStatus.DONE and results[0].already_existed and results[0].ticket == before
        assert all(r.status is CommandStatus.DONE and not r.already_existed for r in results[1:11])
        assert results[11].already_existed and results[11].ticket == results[4].ticket
        assert sorted(copies(terminal)) == [500, *range(600, 610)]
        # Outside a batch, every guard reads the terminal itself.
        assert adapter.execute(place(605, 30)).already_existed
        assert module.reads == 2
    finally:
        adapter.disconnect()


def test_a_removal_in_the_batch_makes_the_next_guard_read_the_terminal_again(terminal, tmp_path):
    module = CountingModule()
    adapter = MT5Adapter(module, path=tmp_path / "t", login=2001, server="Alpha-Live")
    adapter.connect()
    try:
        adapter.begin_batch()
        placed = adapter.execute(place(700, 0))
        module.reads = 0
        removed = adapter.execute(Command(command_id="r700", kind=CommandKind.REMOVE, source_ticket=700,
                                          symbol="EURUSD", ticket=placed.ticket, magic=700, comment=copy_tag(700)))
        assert removed.status is CommandStatus.DONE
        again = adapter.execute(place(700, 1))
        adapter.end_batch()
        assert module.reads >= 1
        assert again.status is CommandStatus.DONE and not again.already_existed and again.ticket != placed.ticket
        assert list(copies(terminal)) == [700]
    finally:
        adapter.disconnect()
