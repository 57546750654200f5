"""Protocol version. Within one major version only additions are allowed: decoders ignore unknown keys
and fill defaults for missing optional ones. Anything that breaks that bumps the major (and the tag)."""

PROTOCOL_MAJOR = 1
PROTOCOL_MINOR = 2  # 1.1: Snapshot.server, ErrorMessage.terminal/boot_id
# 1.2: positions: CommandKind SLTP/CLOSE/MARKET, Command.expected_volume/deviation, CommandResult.price/volume,
# PositionFacts prices and levels, HistoryRequest.positions, HistoryReport.positions/unknown_positions.
# A 1.1 worker cannot decode the new command kinds: the coordinator sends them only to workers of 1.2 or newer.
PROTOCOL_TAG = b"MTC%d" % PROTOCOL_MAJOR
TAG_FAMILY = b"MTC"
