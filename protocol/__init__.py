"""What crosses the wire between the coordinator and its terminal workers.

Frames are ``[tag, kind, body]``: ``tag`` carries the protocol's major version (``b"MTC1"``), ``kind`` names
the message type in ASCII, ``body`` is a msgpack map. Decoding is strict and bounded (see ``codec``).
"""

from protocol.codec import MAX_MESSAGE_BYTES, ProtocolError, decode, encode
from protocol.messages import (
    MESSAGE_TYPES,
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
    Message,
    PendingOrder,
    PositionFacts,
    Shutdown,
    Snapshot,
    SymbolRequest,
    SymbolSpec,
    SymbolSpecs,
    TerminalFacts,
    Welcome,
)
from protocol.version import PROTOCOL_MAJOR, PROTOCOL_MINOR, PROTOCOL_TAG

__all__ = [
    "MAX_MESSAGE_BYTES",
    "MESSAGE_TYPES",
    "PROTOCOL_MAJOR",
    "PROTOCOL_MINOR",
    "PROTOCOL_TAG",
    "AccountFacts",
    "ClosedOrder",
    "Command",
    "CommandBatch",
    "CommandKind",
    "CommandResult",
    "CommandResults",
    "CommandStatus",
    "ErrorMessage",
    "Goodbye",
    "Heartbeat",
    "Hello",
    "Message",
    "PendingOrder",
    "PositionFacts",
    "ProtocolError",
    "Shutdown",
    "Snapshot",
    "SymbolRequest",
    "SymbolSpec",
    "SymbolSpecs",
    "TerminalFacts",
    "Welcome",
    "decode",
    "encode",
]
