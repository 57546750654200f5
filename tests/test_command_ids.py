"""Command ids (coordinator/runtime/dispatch.py CommandIds): a worker replays the result it remembers for an id it
has seen instead of trading again, so an id must never repeat, within a run or across runs."""

from __future__ import annotations

from coordinator.runtime.dispatch import CommandIds


def test_command_ids_never_repeat_within_a_run_nor_across_runs() -> None:
    first, second = CommandIds(), CommandIds()  # two runs of the coordinator
    ids = [first.command() for _ in range(10_000)] + [second.command() for _ in range(10_000)]
    assert len(set(ids)) == len(ids)
    assert all(len(command_id) == 32 and int(command_id, 16) >= 0 for command_id in ids)
    assert first.command()[:16] != second.command()[:16]  # each run's ids have its own random part


def test_batch_ids_never_repeat_and_differ_from_command_ids() -> None:
    ids = CommandIds()
    batches = [ids.batch() for _ in range(1000)]
    commands = {ids.command() for _ in range(1000)}
    assert len(set(batches)) == len(batches)
    assert not commands & set(batches)
