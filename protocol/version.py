"""Protocol version. Within one major version only additions are allowed: decoders ignore unknown keys
and fill defaults for missing optional ones. Anything that breaks that bumps the major (and the tag)."""

PROTOCOL_MAJOR = 1
PROTOCOL_MINOR = 0
PROTOCOL_TAG = b"MTC%d" % PROTOCOL_MAJOR
TAG_FAMILY = b"MTC"
