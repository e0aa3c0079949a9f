"""Wire sizes (bytes) shared by every system on the simulated WAN, so that their byte counts compare.

A key, a packed version, a version-vector entry, a message header and a per-shard entry header.
"""

KEY_BYTES, VERSION_BYTES, VV_ENTRY_BYTES, HEADER_BYTES, SHARD_ENTRY_BYTES = 8, 8, 12, 32, 16
