"""The msgspec structs: random messages of every kind encode exactly as the previous codec did and decode back
unchanged; every bound holds at its edge; malformed bodies fail with a reason and a path, never a crash."""

from __future__ import annotations

import dataclasses
from enum import Enum
from typing import Any

import msgpack
import msgspec
import msgspec.inspect as schema
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from protocol import (
    MESSAGE_TYPES,
    PROTOCOL_TAG,
    Command,
    CommandKind,
    HistoryRequest,
    ProtocolError,
    Shutdown,
    SymbolRequest,
    decode,
    encode,
)
from protocol.codec import MAX_SEQUENCE_ITEMS, MAX_STRING_CHARS


def _previous_codec_body(message: Any) -> bytes:
    """What the hand-written codec of 0.2 sent: every field in declaration order, enums as their value,
    tuples as arrays, packed by msgpack with ``use_bin_type``."""

    def plain(value: Any) -> Any:
        if isinstance(value, msgspec.Struct):
            return {name: plain(getattr(value, name)) for name in value.__struct_fields__}
        if isinstance(value, Enum):
            return value.value
        if isinstance(value, tuple):
            return [plain(item) for item in value]
        return value

    return msgpack.packb(plain(message), use_bin_type=True)


def _values_of(field_type: schema.Type) -> st.SearchStrategy[Any]:
    """Any valid value of a protocol field, read from the struct declarations themselves."""
    if isinstance(field_type, schema.IntType):
        return st.integers(-(2**63), 2**64 - 1)
    if isinstance(field_type, schema.FloatType):
        return st.floats(allow_nan=False, allow_infinity=False) | st.integers(-(2**53), 2**53).map(float)
    if isinstance(field_type, schema.StrType):
        return st.text(max_size=40)
    if isinstance(field_type, schema.BoolType):
        return st.booleans()
    if isinstance(field_type, schema.EnumType):
        return st.sampled_from(field_type.cls)
    if isinstance(field_type, schema.VarTupleType):
        return st.lists(_values_of(field_type.item_type), max_size=3).map(tuple)
    if isinstance(field_type, schema.StructType):
        return st.fixed_dictionaries(
            {field.name: _values_of(field.type) for field in field_type.fields if field.required},
            optional={field.name: _values_of(field.type) for field in field_type.fields if not field.required},
        ).map(lambda values: field_type.cls(**values))
    raise TypeError(f"no strategy for {field_type!r}: a new kind of protocol field needs one here")


# Each kind's strategy is built once: built per example, msgspec.inspect and the strategies' construction cost
# about as much as drawing and checking the message.
_MESSAGES_OF_KIND = {kind: _values_of(schema.type_info(MESSAGE_TYPES[kind])) for kind in sorted(MESSAGE_TYPES)}
MESSAGES = st.sampled_from(sorted(MESSAGE_TYPES)).flatmap(_MESSAGES_OF_KIND.__getitem__)


@settings(max_examples=400, deadline=None)
@given(message=MESSAGES)
def test_any_message_encodes_as_the_previous_codec_did_and_round_trips(message):
    tag, kind, body = encode(message)
    assert body == _previous_codec_body(message)
    assert decode([tag, kind, body]) == message


# ---- bounds at their edge ----------------------------------------------------------------------


def _shutdown_with_reason(reason: str) -> list[bytes]:
    return [PROTOCOL_TAG, Shutdown.KIND, msgpack.packb({"reason": reason})]


def test_a_string_of_the_longest_allowed_length_is_accepted_whatever_its_bytes():
    longest = "🚀" * MAX_STRING_CHARS  # characters are counted, not bytes
    assert decode(_shutdown_with_reason(longest)) == Shutdown(reason=longest)


def test_a_string_one_character_too_long_is_refused_with_its_path():
    with pytest.raises(ProtocolError, match=rf"shutdown \$\.reason: expected `str` of length <= {MAX_STRING_CHARS}") \
            as caught:
        decode(_shutdown_with_reason("x" * (MAX_STRING_CHARS + 1)))
    assert caught.value.reason == "bad-field"


def test_a_sequence_of_the_most_items_allowed_is_accepted():
    request = HistoryRequest(request_id="h", tickets=tuple(range(MAX_SEQUENCE_ITEMS)))
    assert decode(encode(request)) == request


def test_a_sequence_one_item_too_long_is_refused_with_its_path():
    body = msgpack.packb({"request_id": "h", "tickets": list(range(MAX_SEQUENCE_ITEMS + 1))})
    with pytest.raises(ProtocolError, match=r"history_request \$\.tickets: expected `array` of length") as caught:
        decode([PROTOCOL_TAG, HistoryRequest.KIND, body])
    assert caught.value.reason == "bad-field"


def test_the_full_unsigned_and_signed_64_bit_range_is_accepted():
    request = HistoryRequest(request_id="h", tickets=(2**64 - 1, -(2**63), 0))
    assert decode(encode(request)) == request


# ---- malformed bodies --------------------------------------------------------------------------


def test_a_missing_field_inside_a_nested_struct_is_named_by_its_path():
    body = msgpack.packb({"terminal": "t", "role": "target", "boot_id": "b", "protocol_minor": 1,
                          "worker_version": "0.2.0", "backend": "sim", "pid": 1, "host": "h",
                          "account": {"server": "S"}, "terminal_facts": {"connected": True, "trade_allowed": True}})
    with pytest.raises(ProtocolError, match=r"^missing-field: hello \$\.account\.login is required$"):
        decode([PROTOCOL_TAG, b"hello", body])


def test_a_missing_top_level_field_is_named_by_its_path():
    with pytest.raises(ProtocolError, match=r"^missing-field: shutdown \$\.reason is required$"):
        decode([PROTOCOL_TAG, b"shutdown", msgpack.packb({})])


def test_an_unknown_enum_value_is_named_by_its_path():
    plain = {"batch_id": "b", "commands": [{"command_id": "c", "kind": "close_all", "source_ticket": 1, "symbol": "S"}]}
    with pytest.raises(ProtocolError, match=r"commands \$\.commands\[0\]\.kind: invalid enum value 'close_all'"):
        decode([PROTOCOL_TAG, b"commands", msgpack.packb(plain)])


def test_a_map_key_that_is_not_a_string_breaks_the_body():
    with pytest.raises(ProtocolError) as caught:
        decode([PROTOCOL_TAG, b"shutdown", msgpack.packb({1: "x"})])
    assert caught.value.reason == "bad-body"


def test_bytes_where_a_string_belongs_are_refused():
    with pytest.raises(ProtocolError, match=r"shutdown \$\.reason: expected `str`, got `bytes`"):
        decode([PROTOCOL_TAG, b"shutdown", msgpack.packb({"reason": b"x"}, use_bin_type=True)])


def test_invalid_utf8_in_a_string_breaks_the_body():
    with pytest.raises(ProtocolError) as caught:
        decode([PROTOCOL_TAG, b"shutdown", b"\x81\xa6reason\xa2\xff\xfe"])
    assert caught.value.reason == "bad-body"


def test_trailing_bytes_after_the_body_break_it():
    with pytest.raises(ProtocolError) as caught:
        decode([PROTOCOL_TAG, b"shutdown", msgpack.packb({"reason": "x"}) + b"\x00"])
    assert caught.value.reason == "bad-body"


def test_a_deeply_nested_value_under_an_unknown_key_is_refused_not_a_crash():
    # A million nested one-item arrays fit in 1 MB; the decoder must stop long before the stack does.
    body = b"\x82\xa6reason\xa1x\xa5extra" + b"\x91" * 1_000_000 + b"\x00"
    with pytest.raises(ProtocolError, match="nested too deeply") as caught:
        decode([PROTOCOL_TAG, b"shutdown", body])
    assert caught.value.reason == "bad-body"


def test_integers_that_no_64_bit_field_can_hold_fail_to_encode():
    # msgpack has no wider integer: such a message cannot be sent, so it cannot be received either.
    with pytest.raises(OverflowError):
        encode(HistoryRequest(request_id="h", tickets=(2**64,)))


# ---- the structs themselves --------------------------------------------------------------------


def test_messages_are_frozen_and_keyword_only():
    message = SymbolRequest(request_id="r", symbols=("EURUSD",))
    with pytest.raises(AttributeError):
        message.request_id = "other"  # type: ignore[misc]
    with pytest.raises(TypeError):
        SymbolRequest("r", ("EURUSD",))  # type: ignore[call-arg]


def test_a_changed_copy_is_made_with_msgspec_replace_not_dataclasses_replace():
    command = Command(command_id="a", kind=CommandKind.PLACE, source_ticket=1, symbol="S", volume=0.1)
    changed = msgspec.structs.replace(command, command_id="b", deadline_ms=5)
    assert (changed.command_id, changed.deadline_ms, changed.volume) == ("b", 5, 0.1)
    assert command.command_id == "a"
    with pytest.raises(TypeError):
        dataclasses.replace(command, command_id="b")
