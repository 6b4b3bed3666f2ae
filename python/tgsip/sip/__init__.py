"""Sans-I/O SIP protocol layer (RFC 3261): message parsing and serialization."""
