"""Encoding and strict, bounded decoding of protocol frames.

Decoding treats every byte as untrusted: the frame count, tag and kind are checked first, the body's size
before any byte of it is parsed, and then msgspec decodes the body straight into the message's struct,
checking every type and bound declared in ``protocol.messages`` on the way. Any problem raises
``ProtocolError`` with a specific reason and the path of the field at fault; callers log it and drop the
message, so a bad peer can never crash the other side.
"""

from __future__ import annotations

from typing import Any

import msgspec

from protocol.bounds import LARGEST_FINITE, MAX_MESSAGE_BYTES, MAX_SEQUENCE_ITEMS, MAX_STRING_CHARS
from protocol.messages import MESSAGE_TYPES, Message
from protocol.version import PROTOCOL_TAG, TAG_FAMILY

__all__ = ["MAX_MESSAGE_BYTES", "MAX_SEQUENCE_ITEMS", "MAX_STRING_CHARS", "ProtocolError", "decode", "encode"]

# Built once: a msgspec encoder or decoder compiles its plan for a type on first use and reuses it.
_ENCODER = msgspec.msgpack.Encoder()
_DECODERS: dict[bytes, msgspec.msgpack.Decoder[Any]] = {
    kind: msgspec.msgpack.Decoder(message_type) for kind, message_type in MESSAGE_TYPES.items()
}


class ProtocolError(ValueError):
    """A frame set that is not a valid message. ``reason`` is a short machine-friendly code."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


def encode(message: Message) -> list[bytes]:
    """Return the frames ``[tag, kind, body]`` for ``message``."""
    body = _ENCODER.encode(message)
    if len(body) > MAX_MESSAGE_BYTES:
        raise ProtocolError("oversized", f"{type(message).__name__} body is {len(body)} bytes")
    return [PROTOCOL_TAG, type(message).KIND, body]


def decode(frames: list[bytes]) -> Message:
    """Validate ``[tag, kind, body]`` and return the message, or raise ``ProtocolError``."""
    if len(frames) != 3:
        raise ProtocolError("bad-frames", f"expected 3 frames (tag, kind, body), received {len(frames)}")
    tag, kind, body = (bytes(frame) for frame in frames)
    if tag != PROTOCOL_TAG:
        if tag.startswith(TAG_FAMILY):
            raise ProtocolError(
                "wrong-version",
                f"peer speaks protocol {tag.decode('ascii', 'replace')}, this side speaks "
                f"{PROTOCOL_TAG.decode('ascii')}; upgrade both sides to the same release",
            )
        raise ProtocolError("bad-tag", f"unknown protocol tag {tag[:16]!r}")
    decoder = _DECODERS.get(kind)
    if decoder is None:
        raise ProtocolError("unknown-kind", f"unknown message kind {kind[:32]!r}")
    kind_name = kind.decode()  # a known kind: plain ASCII
    if len(body) > MAX_MESSAGE_BYTES:
        raise ProtocolError("oversized", f"{kind_name} body is {len(body)} bytes, limit {MAX_MESSAGE_BYTES}")
    try:
        message: Message = decoder.decode(body)
    except msgspec.ValidationError as e:  # well-formed msgpack that is not this message (a DecodeError subclass)
        raise _invalid(kind_name, str(e)) from None
    except (msgspec.DecodeError, UnicodeDecodeError) as e:  # msgspec 0.18 reports bad UTF-8 this way
        raise ProtocolError("bad-body", f"{kind_name} body is not valid msgpack: {e}") from None
    except RecursionError:
        # msgspec descends recursively, also through the values of unknown keys it skips: a body of a
        # million nested arrays ends here, long before the stack does.
        raise ProtocolError("bad-body", f"{kind_name} body is nested too deeply") from None
    return message


# ---- error messages ----------------------------------------------------------------------------
# msgspec says what is wrong, then where: "Expected `float`, got `str` - at `$.orders[3].volume`" (no
# location when it is the body itself). The reason codes and wording below keep the log lines people and
# tests know: "<kind> <path>: <problem>" and "<kind> <path> is required".

_LOCATION_MARK = " - at "
_MISSING_FIELD = "Object missing required field `"
_NOT_FINITE = (f"Expected `float` >= {-LARGEST_FINITE!r}", f"Expected `float` <= {LARGEST_FINITE!r}")


def _invalid(kind: str, error: str) -> ProtocolError:
    problem, marked, location = error.partition(_LOCATION_MARK)
    path = location.replace("`", "") if marked else "$"
    if problem.startswith(_MISSING_FIELD):
        field = problem[len(_MISSING_FIELD) :].rstrip("`")
        return ProtocolError("missing-field", f"{kind} {path}.{field} is required")
    if problem in _NOT_FINITE:  # the bounds of ``Number``: NaN or an infinity
        problem = "expected a finite number"
    # The body is not a map, a map key is not a string, or a msgpack extension type (which this protocol
    # never uses) stands where a value belongs: the body is broken rather than one field.
    broken_body = path == "$" or path.startswith("key in") or problem.endswith("got `ext`")
    return ProtocolError("bad-body" if broken_body else "bad-field", f"{kind} {path}: {_lowercase_first(problem)}")


def _lowercase_first(text: str) -> str:
    return text[:1].lower() + text[1:]
