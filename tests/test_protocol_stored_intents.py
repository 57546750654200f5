"""Intents are stored as the wire's ``Command`` struct, and a state file written by 0.1 still recovers its
unsettled intents: nothing that may have reached a broker is forgotten across the upgrade."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from coordinator.migrations import MIGRATIONS
from coordinator.state import DATABASE_NAME, StateError, StateStore
from protocol import Command, CommandKind
from tests.test_protocol_golden import full_command

# The tables and the meta row exactly as 0.1 created them: its schema is the first migration.
SCHEMA_0_1 = MIGRATIONS[0].sql + "\nINSERT INTO meta (key, value) VALUES ('schema_version', '1');\n"

# Payloads as 0.1 wrote them (``json.dumps`` of every Command field, the kind as its value), captured from it.
PAYLOADS_0_1 = [
    '{"command_id": "c0-ffffffffffffffffffffffffffffff", "kind": "place", "source_ticket": 10000000, "symbol": '
    '"EURUSD.m", "ticket": 90000000, "order_type": 0, "volume": 0.1, "price": 1.085, "stoplimit": 1.0855, "sl": '
    '1.08, "tp": 1.095, "type_time": 2, "expiration": 1800000000, "magic": 10000000, "comment": "mtc#10000000", '
    '"deadline_ms": 1700000000000, "source_volume": 0.05, "price_offset": -0.00015}',
    '{"command_id": "c1-ffffffffffffffffffffffffffffff", "kind": "modify", "source_ticket": 10000001, "symbol": '
    '"EURUSD.m", "ticket": 90000001, "order_type": 1, "volume": 0.2, "price": 1.0851, "stoplimit": 1.0855, "sl": '
    '1.08, "tp": 1.095, "type_time": 2, "expiration": 1800000000, "magic": 10000001, "comment": "mtc#10000001", '
    '"deadline_ms": 1700000000001, "source_volume": 0.05, "price_offset": -0.00015}',
    '{"command_id": "c2-ffffffffffffffffffffffffffffff", "kind": "remove", "source_ticket": 10000002, "symbol": '
    '"EURUSD.m", "ticket": 90000002, "order_type": 2, "volume": 0.30000000000000004, "price": 1.0852, "stoplimit": '
    '1.0855, "sl": 1.08, "tp": 1.095, "type_time": 2, "expiration": 1800000000, "magic": 10000002, "comment": '
    '"mtc#10000002", "deadline_ms": 1700000000002, "source_volume": 0.05, "price_offset": -0.00015}',
    '{"command_id": "c3-ffffffffffffffffffffffffffffff", "kind": "replace", "source_ticket": 10000003, "symbol": '
    '"EURUSD.m", "ticket": 90000003, "order_type": 3, "volume": 0.4, "price": 1.0853, "stoplimit": 1.0855, "sl": '
    '1.08, "tp": 1.095, "type_time": 2, "expiration": 1800000000, "magic": 10000003, "comment": "mtc#10000003", '
    '"deadline_ms": 1700000000003, "source_volume": 0.05, "price_offset": -0.00015}',
    '{"command_id": "c", "kind": "place", "source_ticket": 3, "symbol": "S", "ticket": 0, "order_type": 0, '
    '"volume": 0.0, "price": 0.0, "stoplimit": 0.0, "sl": 0.0, "tp": 0.0, "type_time": 0, "expiration": 0, '
    '"magic": 0, "comment": "", "deadline_ms": 0, "source_volume": 0.0, "price_offset": 0.0}',
]
COMMANDS_0_1 = [
    *(full_command(kind, index) for index, kind in enumerate(CommandKind)),
    Command(command_id="c", kind=CommandKind.PLACE, source_ticket=3, symbol="S"),
]


def _state_file_of_0_1(directory: Path, payloads: list[str], settled: int = 0) -> None:
    """A copier.db as 0.1 left it: ``payloads`` recorded in order, the first ``settled`` of them settled."""
    db = sqlite3.connect(directory / DATABASE_NAME)
    db.executescript(SCHEMA_0_1)
    for index, payload in enumerate(payloads):
        plain = json.loads(payload)
        db.execute(
            "INSERT INTO intents (command_id, target, source_ticket, kind, payload, created_at, settled_at, outcome)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (plain["command_id"], "beta", plain["source_ticket"], plain["kind"], payload, 1_700_000_000.0 + index,
             1_700_000_100.0 if index < settled else None, "done" if index < settled else None),
        )
    db.commit()
    db.close()


def test_a_state_file_of_0_1_recovers_its_unsettled_intents(tmp_path):
    _state_file_of_0_1(tmp_path, PAYLOADS_0_1)
    state = StateStore(tmp_path)
    try:
        intents = state.unsettled_intents()
    finally:
        state.close()
    assert [intent.command for intent in intents] == COMMANDS_0_1
    assert {intent.target for intent in intents} == {"beta"}


def test_settled_intents_of_0_1_stay_settled(tmp_path):
    _state_file_of_0_1(tmp_path, PAYLOADS_0_1, settled=2)
    state = StateStore(tmp_path)
    try:
        assert [intent.command for intent in state.unsettled_intents()] == COMMANDS_0_1[2:]
    finally:
        state.close()


@pytest.mark.parametrize("command", COMMANDS_0_1, ids=lambda command: command.kind.value)
def test_an_intent_survives_a_restart_unchanged(tmp_path, command):
    state = StateStore(tmp_path)
    state.record_intent("beta", command)
    state.close()
    state = StateStore(tmp_path)
    try:
        assert [intent.command for intent in state.unsettled_intents()] == [command]
    finally:
        state.close()


def test_intents_written_now_read_as_the_same_json_0_1_wrote(tmp_path):
    # A downgrade must not lose intents either: 0.1 reads a payload with ``json.loads`` and ``Command(**...)``,
    # so the new payload must hold the same keys and values (only the spacing differs).
    state = StateStore(tmp_path)
    for command in COMMANDS_0_1:
        state.record_intent("beta", command)
    payloads = [row[0] for row in state.connection.execute("SELECT payload FROM intents ORDER BY rowid")]
    state.close()
    assert [json.loads(payload) for payload in payloads] == [json.loads(payload) for payload in PAYLOADS_0_1]


def test_an_unreadable_intent_stops_the_recovery_naming_the_field(tmp_path):
    broken = PAYLOADS_0_1[0].replace('"volume": 0.1', '"volume": "0.1"')
    _state_file_of_0_1(tmp_path, [broken])
    state = StateStore(tmp_path)
    try:
        with pytest.raises(StateError, match=r"\$\.volume"):
            state.unsettled_intents()
    finally:
        state.close()
