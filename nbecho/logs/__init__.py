"""
Log helpers: escaping what clients send, cheap per-message events, and the
text and JSON observers twistd writes with.

Nothing here knows about connections: the protocol layer above calls in.
"""
