"""Encoding and strict, bounded decoding of protocol frames.

Decoding treats every byte as untrusted: the size is checked before msgpack sees it, msgpack runs with its
safe options (no ext types, string map keys only), and the result is validated field by field into the
frozen dataclasses of ``protocol.messages``. Any problem raises ``ProtocolError`` with a specific reason;
callers log it and drop the message, so a bad peer can never crash the other side.
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from collections.abc import Callable
from enum import Enum
from functools import cache
from typing import Any

import msgpack

from protocol.messages import MESSAGE_TYPES, Message
from protocol.version import PROTOCOL_TAG, TAG_FAMILY

MAX_MESSAGE_BYTES = 4 * 1024 * 1024  # also set as the sockets' MAXMSGSIZE, so oversize peers are cut off early
MAX_STRING_CHARS = 4096
MAX_SEQUENCE_ITEMS = 20_000  # far above any real snapshot (orders + positions), far below a memory problem
_INT_MIN, _INT_MAX = -(2**63), 2**64 - 1  # MT5 uses signed 64-bit times and unsigned 64-bit magics/tickets


class ProtocolError(ValueError):
    """A frame set that is not a valid message. ``reason`` is a short machine-friendly code."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


def encode(message: Message) -> list[bytes]:
    """Return the frames ``[tag, kind, body]`` for ``message``."""
    body = msgpack.packb(_to_plain(message), use_bin_type=True)
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
    message_type = MESSAGE_TYPES.get(kind)
    if message_type is None:
        raise ProtocolError("unknown-kind", f"unknown message kind {kind[:32]!r}")
    if len(body) > MAX_MESSAGE_BYTES:
        raise ProtocolError("oversized", f"{kind.decode()} body is {len(body)} bytes, limit {MAX_MESSAGE_BYTES}")
    try:
        plain = msgpack.unpackb(
            body,
            raw=False,
            strict_map_key=True,
            use_list=True,
            ext_hook=_refuse_ext,
            max_array_len=MAX_SEQUENCE_ITEMS,
            max_map_len=MAX_SEQUENCE_ITEMS,
        )
    except (ValueError, TypeError, msgpack.UnpackException) as e:
        raise ProtocolError("bad-body", f"{kind.decode()} body is not valid msgpack: {e}") from e
    if not isinstance(plain, dict):
        raise ProtocolError("bad-body", f"{kind.decode()} body must be a map, received {type(plain).__name__}")
    return _parse_message(message_type, plain, kind.decode())


def _refuse_ext(code: int, data: bytes) -> Any:
    raise ValueError(f"msgpack extension type {code} is not allowed")


# ---- encoding ----------------------------------------------------------------------------------

Encoder = Callable[[Any], Any]
_SCALARS = (int, float, str, bool, type(None))


def _to_plain(value: Any) -> Any:
    return _encoder_for(type(value))(value)


def _identity(value: Any) -> Any:
    return value


@cache
def _encoder_for(value_type: type) -> Encoder:
    """Build (once per type) a function turning a message into msgpack-ready maps, lists and scalars."""
    if value_type in _SCALARS:
        return _identity
    if issubclass(value_type, Enum):
        return lambda value: value.value
    if dataclasses.is_dataclass(value_type):
        hints = typing.get_type_hints(value_type)
        fields = tuple((field.name, _field_encoder(hints[field.name])) for field in dataclasses.fields(value_type))
        return lambda value: {name: encode_field(getattr(value, name)) for name, encode_field in fields}
    if issubclass(value_type, (tuple, list)):
        return lambda value: [_to_plain(item) for item in value]
    raise TypeError(f"protocol codec cannot encode {value_type.__name__}")


def _field_encoder(annotation: Any) -> Encoder:
    if annotation in _SCALARS:
        return _identity
    origin = typing.get_origin(annotation)
    if origin is tuple:
        item = typing.get_args(annotation)[0]
        if item in _SCALARS:
            return list
        item_encoder = _encoder_for(item)
        return lambda value: [item_encoder(element) for element in value]
    return _to_plain


# ---- validation --------------------------------------------------------------------------------
# Parsers take the plain value and return the typed one. On failure they raise _Invalid, and each enclosing
# struct or list adds its step to the path on the way out: paths are built only when something is wrong.

Parser = Callable[[Any], Any]


class _Invalid(Exception):
    def __init__(self, reason: str, message: str) -> None:
        self.reason = reason
        self.message = message
        self.path: list[str] = []


def _fail(expected: str, value: Any) -> typing.NoReturn:
    shown = repr(value)
    if len(shown) > 60:
        shown = shown[:57] + "..."
    raise _Invalid("bad-field", f"expected {expected}, received {type(value).__name__} {shown}")


def _parse_int(value: Any) -> int:
    if type(value) is not int or not _INT_MIN <= value <= _INT_MAX:
        _fail("a 64-bit integer", value)
    return value


def _parse_float(value: Any) -> float:
    if type(value) is int:
        value = float(value)
    if type(value) is not float or not math.isfinite(value):
        _fail("a finite number", value)
    return value


def _parse_str(value: Any) -> str:
    if type(value) is not str or len(value) > MAX_STRING_CHARS:
        _fail(f"a string of at most {MAX_STRING_CHARS} characters", value)
    return value


def _parse_bool(value: Any) -> bool:
    if type(value) is not bool:
        _fail("a boolean", value)
    return value


def _parse_message(message_type: type, plain: dict[str, Any], kind: str) -> Any:
    try:
        return _parser_for(message_type)(plain)
    except _Invalid as e:
        path = kind + "".join(reversed(e.path))
        if e.reason == "missing-field":
            raise ProtocolError(e.reason, f"{path} is required") from None
        raise ProtocolError(e.reason, f"{path}: {e.message}") from None


@cache
def _parser_for(annotation: Any) -> Parser:
    """Build (once per type) a parser that validates a plain value into ``annotation``."""
    if annotation is int:
        return _parse_int
    if annotation is float:
        return _parse_float
    if annotation is str:
        return _parse_str
    if annotation is bool:
        return _parse_bool
    if isinstance(annotation, type) and issubclass(annotation, Enum):
        return _enum_parser(annotation)
    if dataclasses.is_dataclass(annotation):
        return _struct_parser(annotation)
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin is tuple and len(args) == 2 and args[1] is Ellipsis:
        return _sequence_parser(_parser_for(args[0]))
    if origin in (typing.Union, types.UnionType) and len(args) == 2 and type(None) in args:
        inner = _parser_for(next(arg for arg in args if arg is not type(None)))
        return lambda value: None if value is None else inner(value)
    raise TypeError(f"protocol codec cannot validate fields of type {annotation!r}")


def _enum_parser(enum_type: type[Enum]) -> Parser:
    allowed = {member.value: member for member in enum_type}

    def parse(value: Any) -> Enum:
        if type(value) is not str or value not in allowed:
            _fail(f"one of {sorted(allowed)}", value)
        return allowed[value]

    return parse


def _sequence_parser(item: Parser) -> Parser:
    def parse(value: Any) -> tuple[Any, ...]:
        if type(value) is not list:
            _fail("a list", value)
        try:
            return tuple(map(item, value))
        except _Invalid as e:
            # Find which element failed, for the path (only ever on the error path).
            for index, element in enumerate(value):
                try:
                    item(element)
                except _Invalid:
                    e.path.append(f"[{index}]")
                    break
            raise

    return parse


def _struct_parser(struct_type: type) -> Parser:
    hints = typing.get_type_hints(struct_type)
    fields = [
        (field.name, _parser_for(hints[field.name]), field.default is dataclasses.MISSING)
        for field in dataclasses.fields(struct_type)
    ]

    def parse(value: Any) -> Any:
        if type(value) is not dict:
            _fail("a map", value)
        # Unknown keys are ignored on purpose: a newer minor version may add fields.
        arguments = {}
        for name, parser, required in fields:
            if name in value:
                try:
                    arguments[name] = parser(value[name])
                except _Invalid as e:
                    e.path.append("." + name)
                    raise
            elif required:
                missing = _Invalid("missing-field", "")
                missing.path.append("." + name)
                raise missing
        return struct_type(**arguments)

    return parse
