"""Protocol version. Within one major version only additions are allowed: decoders ignore unknown keys
and fill defaults for missing optional ones. Anything that breaks that bumps the major (and the tag)."""

PROTOCOL_MAJOR = 1
PROTOCOL_MINOR = 5  # 1.1: Snapshot.server, ErrorMessage.terminal/boot_id
# 1.2: positions: CommandKind SLTP/CLOSE/MARKET, Command.expected_volume/deviation, CommandResult.price/volume,
# PositionFacts prices and levels, HistoryRequest.positions, HistoryReport.positions/unknown_positions.
# A 1.1 worker cannot decode the new command kinds: the coordinator sends them only to workers of 1.2 or newer.
# 1.3: workers on other machines: Hello.configured_login/configured_server/worker_file, Welcome.role,
# Shutdown.code. A worker from a worker.toml says role "" and needs a 1.3 coordinator (an older one refuses it).
# 1.4: SnapshotChanges (a snapshot's orders as their changes to the last one), sent only to a coordinator whose
# Welcome says 1.4 or newer; an older coordinator gets whole snapshots.
# 1.5: SnapshotChanges.closed_removed/closed_as_changes (the closed orders' records as their changes too), sent
# only to a coordinator of 1.5 or newer; a 1.4 coordinator gets them whole.
PROTOCOL_TAG = b"MTC%d" % PROTOCOL_MAJOR
TAG_FAMILY = b"MTC"
PROTOCOL_VERSION = f"{PROTOCOL_MAJOR}.{PROTOCOL_MINOR}"


def tag_version(tag: bytes) -> str:
    """The protocol a frame's tag names, as a person reads it: b"MTC2" -> "2" (the tag carries the major only)."""
    if tag.startswith(TAG_FAMILY):
        return tag[len(TAG_FAMILY):][:16].decode("ascii", "replace") or "?"
    return repr(tag[:16])


def protocol_mismatch(peer: str, peer_tag: bytes, this_side: str, product_version: str) -> str:
    """What to tell a person whose two sides speak different protocol majors (``peer`` sent ``peer_tag``)."""
    return (f"{peer} speaks protocol {tag_version(peer_tag)}.x and {this_side} (mt5-copier {product_version}) "
            f"protocol {PROTOCOL_VERSION}: they cannot understand each other; install the same mt5-copier release on "
            "both machines")
