"""An intent is stored as its action and the command sent for it (``StoredIntent``, a msgspec struct), and a
state file written by 0.1 or 0.2 (which stored the wire's ``Command`` of the day) still recovers its unsettled
intents, with what their links need: nothing that may have reached a broker is forgotten across the upgrade."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest
from msgspec.structs import replace

from coordinator.domain.actions import Action, CopyTicket, SourceTicket
from coordinator.persistence.migrations import MIGRATIONS
from coordinator.persistence.state import DATABASE_NAME, StateError, StateStore
from protocol import Command, CommandKind
from tests.test_protocol_golden import PENDING_KINDS, full_command

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
    *(full_command(kind, index) for index, kind in enumerate(PENDING_KINDS)),
    Command(command_id="c", kind=CommandKind.PLACE, source_ticket=3, symbol="S"),
]


def _action_of(payload: str) -> Action:
    """The action a 0.1 payload recorded: the command's order, and what its link is sized and priced from."""
    plain = json.loads(payload)
    return Action(kind=CommandKind(plain["kind"]), source_ticket=SourceTicket(plain["source_ticket"]),
                  symbol=plain["symbol"], ticket=CopyTicket(plain["ticket"]), order_type=plain["order_type"],
                  volume=plain["volume"], price=plain["price"], stoplimit=plain["stoplimit"], sl=plain["sl"],
                  tp=plain["tp"], type_time=plain["type_time"], expiration=plain["expiration"], magic=plain["magic"],
                  comment=plain["comment"], source_volume=plain["source_volume"], price_offset=plain["price_offset"])


ACTIONS_0_1 = [_action_of(payload) for payload in PAYLOADS_0_1]


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
    assert [intent.action for intent in intents] == ACTIONS_0_1
    assert intents[0].action.source_volume == 0.05 and intents[0].action.price_offset == -0.00015
    assert {intent.target for intent in intents} == {"beta"}


def test_settled_intents_of_0_1_stay_settled(tmp_path):
    _state_file_of_0_1(tmp_path, PAYLOADS_0_1, settled=2)
    state = StateStore(tmp_path)
    try:
        assert [intent.command for intent in state.unsettled_intents()] == COMMANDS_0_1[2:]
    finally:
        state.close()


@pytest.mark.parametrize("index", range(len(COMMANDS_0_1)), ids=lambda i: COMMANDS_0_1[i].kind.value)
def test_an_intent_survives_a_restart_unchanged(tmp_path, index):
    action = replace(ACTIONS_0_1[index], reason="orphan: source order #5 is cancelled", evidence="its history",
                     adjustment="0.05 raised to the minimum 0.1")
    state = StateStore(tmp_path)
    state.record_intent("beta", action, COMMANDS_0_1[index])
    state.close()
    state = StateStore(tmp_path)
    try:
        [intent] = state.unsettled_intents()
        assert (intent.action, intent.command) == (action, COMMANDS_0_1[index])
    finally:
        state.close()


def test_intents_written_now_hold_every_key_0_2_reads(tmp_path):
    # A downgrade to 0.2 must not lose intents either: 0.2 decodes a payload as its ``Command`` (the keys of
    # 0.1's payloads, unknown keys skipped), so the new payload holds those keys with the same values.
    state = StateStore(tmp_path)
    for action, command in zip(ACTIONS_0_1, COMMANDS_0_1, strict=True):
        state.record_intent("beta", action, command)
    payloads = [row[0] for row in state.connection.execute("SELECT payload FROM intents ORDER BY rowid")]
    state.close()
    for payload, old in zip(payloads, PAYLOADS_0_1, strict=True):
        new = json.loads(payload)
        assert {key: new[key] for key in json.loads(old)} == json.loads(old)
        assert set(new) - set(json.loads(old)) == {"reason", "evidence", "adjustment", "expected_volume", "deviation"}


def test_an_unreadable_intent_stops_the_recovery_naming_the_field(tmp_path):
    broken = PAYLOADS_0_1[0].replace('"volume": 0.1', '"volume": "0.1"')
    _state_file_of_0_1(tmp_path, [broken])
    state = StateStore(tmp_path)
    try:
        with pytest.raises(StateError, match=r"\$\.volume"):
            state.unsettled_intents()
    finally:
        state.close()
