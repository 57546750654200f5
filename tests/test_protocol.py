"""Protocol: every message round-trips; untrusted bytes are rejected with a specific reason, never a crash."""

from __future__ import annotations

import contextlib
import math

import msgpack
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from protocol import (
    MAX_MESSAGE_BYTES,
    MESSAGE_TYPES,
    PROTOCOL_TAG,
    AccountFacts,
    ClosedOrder,
    Command,
    CommandBatch,
    CommandKind,
    CommandResult,
    CommandResults,
    CommandStatus,
    ErrorMessage,
    Goodbye,
    Heartbeat,
    Hello,
    HistoryReport,
    HistoryRequest,
    PendingOrder,
    PositionFacts,
    ProtocolError,
    Quote,
    Shutdown,
    Snapshot,
    SnapshotChanges,
    SymbolRequest,
    SymbolSpec,
    SymbolSpecs,
    TerminalFacts,
    Welcome,
    decode,
    encode,
)
from protocol.tags import copy_tag, is_copy_of, parse_tag

ORDER = PendingOrder(ticket=10_000_001, symbol="EURUSD", type=2, volume=0.1, price_open=1.085, price_stoplimit=0.0,
                     sl=1.08, tp=1.095, type_time=2, time_expiration=1_800_000_000, magic=0, comment="manual",
                     volume_initial=0.1, type_filling=2, time_setup_msc=1_700_000_000_123, state=1)

SAMPLES = [
    Hello(terminal="broker-a", role="target", boot_id="abc", protocol_minor=0, worker_version="0.1.0",
          backend="sim", pid=123, host="vm1", account=AccountFacts(login=2001, server="S", balance=1e4),
          terminal_facts=TerminalFacts(connected=True, trade_allowed=True), server_time=1_700_000_000),
    Welcome(coordinator_version="0.1.0", protocol_minor=0, heartbeat_interval=1.0, worker_timeout=10.0),
    Snapshot(boot_id="abc", seq=7, taken_at_ms=1_700_000_000_000, login=2001, server="S", connected=True,
             trade_allowed=True, orders=(ORDER,),
             positions=(PositionFacts(ticket=5, identifier=5, symbol="EURUSD", type=0, volume=0.1, magic=9,
                                      comment="mtc#9"),),
             closed=(ClosedOrder(ticket=4, symbol="EURUSD", type=3, state=4, magic=0, comment=""),)),
    SymbolRequest(request_id="r1", symbols=("EURUSD.m", "GOLD")),
    SymbolSpecs(request_id="r1", specs=(SymbolSpec(name="EURUSD.m", digits=5, point=1e-5, tick_size=1e-5,
                                                   contract_size=1e5, volume_min=0.01, volume_max=100.0,
                                                   volume_step=0.01, volume_limit=0.0, trade_mode=4, stops_level=10,
                                                   freeze_level=0, expiration_mode=15, filling_mode=1,
                                                   order_mode=127),), missing=("GOLD",)),
    CommandBatch(batch_id="b1", commands=(Command(command_id="c1", kind=CommandKind.PLACE, source_ticket=10_000_001,
                                                  symbol="EURUSD.m", order_type=2, volume=0.2, price=1.085,
                                                  magic=10_000_001, comment=copy_tag(10_000_001)),)),
    CommandResults(batch_id="b1", results=(CommandResult(command_id="c1", status=CommandStatus.DONE, retcode=10009,
                                                         ticket=42),), snapshot_seq=8),
    Heartbeat(sent_at_ms=1, boot_id="abc", last_seq=8, polled_at_ms=2, connected=True, server_time=1_700_007_200,
              quotes=(Quote(symbol="EURUSD.m", bid=1.085, ask=1.0851, time=1_700_007_199),)),
    HistoryRequest(request_id="h1", tickets=(4, 5)),
    HistoryReport(request_id="h1", orders=(ClosedOrder(ticket=4, symbol="EURUSD", type=3, state=2, magic=0,
                                                       comment=""),), unknown=(5,)),
    Shutdown(reason="bye"),
    Goodbye(reason="signal SIGTERM", exit_code=0),
    ErrorMessage(code="hello-required", message="send hello first"),
    SnapshotChanges(boot_id="abc", seq=8, base_seq=7, taken_at_ms=1_700_000_000_001, login=2001, server="S",
                    connected=True, trade_allowed=True, orders=(ORDER,), removed=(3,)),
]


def test_every_message_kind_has_a_sample():
    assert {type(sample) for sample in SAMPLES} == set(MESSAGE_TYPES.values())


@pytest.mark.parametrize("message", SAMPLES, ids=lambda m: type(m).__name__)
def test_round_trip_gives_an_equal_message(message):
    frames = encode(message)
    assert frames[0] == PROTOCOL_TAG and frames[1] == type(message).KIND
    assert decode(frames) == message


def _frames(kind: bytes, body: object) -> list[bytes]:
    return [PROTOCOL_TAG, kind, msgpack.packb(body)]


def _reason(frames: list[bytes]) -> str:
    with pytest.raises(ProtocolError) as caught:
        decode(frames)
    return caught.value.reason


def test_wrong_frame_count_is_rejected():
    assert _reason([PROTOCOL_TAG, b"shutdown"]) == "bad-frames"


def test_other_major_version_is_named_in_the_error():
    frames = encode(Shutdown(reason="x"))
    with pytest.raises(ProtocolError, match="MTC2") as caught:
        decode([b"MTC2", *frames[1:]])
    assert caught.value.reason == "wrong-version"


def test_foreign_tag_is_rejected():
    assert _reason([b"HTTP/1.1", b"shutdown", b"\x80"]) == "bad-tag"


def test_unknown_kind_is_rejected():
    assert _reason(_frames(b"launch_missiles", {})) == "unknown-kind"


def test_oversized_body_is_rejected_before_unpacking():
    assert _reason([PROTOCOL_TAG, b"shutdown", b"\x00" * (MAX_MESSAGE_BYTES + 1)]) == "oversized"


def test_garbage_body_is_rejected():
    assert _reason([PROTOCOL_TAG, b"shutdown", b"\xc1\xff\x00"]) == "bad-body"


def test_truncated_body_is_rejected():
    body = encode(SAMPLES[2])[2]
    assert _reason([PROTOCOL_TAG, b"snapshot", body[:-5]]) == "bad-body"


def test_body_that_is_not_a_map_is_rejected():
    assert _reason(_frames(b"shutdown", [1, 2, 3])) == "bad-body"


def test_extension_types_are_refused():
    body = msgpack.packb({"reason": msgpack.ExtType(5, b"boom")})
    assert _reason([PROTOCOL_TAG, b"shutdown", body]) == "bad-body"


def test_absurd_array_header_in_a_tiny_message_is_rejected():
    # An array header claiming 2**32-1 items in a few bytes: the field's length bound refuses it from the
    # header, before a single item is allocated.
    body = b"\x82\xaarequest_id\xa1x\xa7symbols\xdd\xff\xff\xff\xff"
    with pytest.raises(ProtocolError, match=r"symbol_request \$\.symbols: expected `array` of length <= 20000") \
            as caught:
        decode([PROTOCOL_TAG, b"symbol_request", body])
    assert caught.value.reason == "bad-field"


def test_missing_required_field_is_named():
    with pytest.raises(ProtocolError, match=r"\$\.reason is required|reason is required"):
        decode(_frames(b"shutdown", {}))


def test_wrong_field_type_is_named_with_its_path():
    plain = msgpack.unpackb(encode(SAMPLES[2])[2])
    plain["orders"][0]["price_open"] = "1.085"
    with pytest.raises(ProtocolError, match=r"snapshot \$\.orders\[0\]\.price_open: expected `float`, got `str`") \
            as caught:
        decode([PROTOCOL_TAG, b"snapshot", msgpack.packb(plain)])
    assert caught.value.reason == "bad-field"


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_non_finite_prices_are_rejected(bad):
    plain = msgpack.unpackb(encode(SAMPLES[2])[2])
    plain["orders"][0]["sl"] = bad
    with pytest.raises(ProtocolError, match=r"snapshot \$\.orders\[0\]\.sl: expected a finite number") as caught:
        decode([PROTOCOL_TAG, b"snapshot", msgpack.packb(plain)])
    assert caught.value.reason == "bad-field"


def test_booleans_are_not_integers():
    plain = msgpack.unpackb(encode(SAMPLES[2])[2])
    plain["seq"] = True
    assert _reason([PROTOCOL_TAG, b"snapshot", msgpack.packb(plain)]) == "bad-field"


def test_a_float_where_an_integer_belongs_is_rejected():
    plain = msgpack.unpackb(encode(SAMPLES[2])[2])
    plain["orders"][0]["ticket"] = 10_000_001.0
    assert _reason([PROTOCOL_TAG, b"snapshot", msgpack.packb(plain)]) == "bad-field"


def test_unknown_enum_value_is_rejected():
    plain = msgpack.unpackb(encode(SAMPLES[5])[2])
    plain["commands"][0]["kind"] = "close_all"
    assert _reason([PROTOCOL_TAG, b"commands", msgpack.packb(plain)]) == "bad-field"


def test_unknown_keys_from_a_newer_minor_version_are_ignored():
    plain = msgpack.unpackb(encode(SAMPLES[7])[2])
    plain["added_in_1_1"] = {"anything": [1, 2]}
    assert decode([PROTOCOL_TAG, b"heartbeat", msgpack.packb(plain)]) == SAMPLES[7]


def test_missing_optional_fields_take_their_defaults():
    message = decode(_frames(b"heartbeat", {"sent_at_ms": 5}))
    assert message == Heartbeat(sent_at_ms=5)


def test_protocol_1_1_fields_are_optional_for_1_0_peers():
    snapshot = SAMPLES[2]
    plain = msgpack.unpackb(encode(snapshot)[2])
    assert plain.pop("server") == "S"
    assert decode(_frames(b"snapshot", plain)).server == ""  # a 1.0 worker's snapshot
    error = ErrorMessage(code="terminal-not_found", message="m", terminal="alpha", boot_id="b1")
    assert decode(encode(error)) == error
    assert decode(_frames(b"error", {"code": "c", "message": "m"})) == ErrorMessage(code="c", message="m")


def test_encoding_an_oversized_message_fails_loudly():
    orders = tuple(ORDER for _ in range(20_000))
    snapshot = Snapshot(boot_id="x", seq=1, taken_at_ms=0, login=1, connected=True, trade_allowed=True, orders=orders)
    with pytest.raises(ProtocolError):
        encode(snapshot)


@settings(max_examples=300, deadline=None)
@given(kind=st.sampled_from(sorted(MESSAGE_TYPES)), body=st.binary(max_size=300))
def test_random_bytes_never_raise_anything_but_protocol_error(kind, body):
    with contextlib.suppress(ProtocolError):
        decode([PROTOCOL_TAG, kind, body])


_SCALARS = st.none() | st.booleans() | st.integers(-(2**63), 2**64 - 1) | st.floats() | st.text(max_size=8)
_STRUCTURES = st.recursive(
    _SCALARS,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=20,
)


@settings(max_examples=200, deadline=None)
@given(kind=st.sampled_from(sorted(MESSAGE_TYPES)), body=_STRUCTURES)
def test_random_msgpack_structures_never_raise_anything_but_protocol_error(kind, body):
    with contextlib.suppress(ProtocolError):
        decode([PROTOCOL_TAG, kind, msgpack.packb(body)])


# ---- copy tags ---------------------------------------------------------------------------------


@pytest.mark.parametrize("ticket", [1, 42, 123_456_789, 10**11, 10**12, 2**63, 2**64 - 1])
def test_copy_tag_round_trips_within_16_characters(ticket):
    tag = copy_tag(ticket)
    assert len(tag) <= 16
    assert parse_tag(tag) == ticket


@pytest.mark.parametrize("comment", ["", "manual", "mtc#", "mtc#abc", "mtc#0012", "mtc#-5", "mc$", "MTC#12"])
def test_comments_that_are_not_tags_parse_to_none(comment):
    assert parse_tag(comment) is None


def test_a_copy_needs_both_magic_and_tag():
    assert is_copy_of(77, copy_tag(77), 77)
    assert not is_copy_of(77, "manual", 77)  # another EA using the ticket as magic
    assert not is_copy_of(0, copy_tag(77), 77)  # a person who typed the comment
    assert not is_copy_of(78, copy_tag(77), 77)
