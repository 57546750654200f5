"""Protocol version. Within one major version only additions are allowed: decoders ignore unknown keys
and fill defaults for missing optional ones. Anything that breaks that bumps the major (and the tag)."""

PROTOCOL_MAJOR = 1
PROTOCOL_MINOR = 1  # 1.1: Snapshot.server, ErrorMessage.terminal/boot_id
PROTOCOL_TAG = b"MTC%d" % PROTOCOL_MAJOR
TAG_FAMILY = b"MTC"
