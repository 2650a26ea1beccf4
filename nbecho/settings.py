"""
What an operator chose: the settings every connection of one server shares.

This module sits at the bottom of nbecho's layers: it knows no protocol and
no reactor, so the protocol, the factory, the services, the worker processes
and the command line all build on the same record.
"""

from __future__ import annotations

import attrs

#: The framings C{--framing} accepts: C{line} (a message ends in LF or
#: CRLF) and C{raw} (each chunk read from the socket is a message).
FRAMINGS = ("line", "raw")


@attrs.frozen
class EchoSettings:
    """
    How every connection of one server behaves.

    @ivar framing: one of L{FRAMINGS}.
    @ivar exitWord: a message equal to this ends the connection once echoed;
        empty turns that off.
    @ivar quiet: leave out the per-message log lines.
    @ivar maxLineLength: the longest line, terminator excluded, that line
        framing accepts; longer ones end the connection so that a client
        cannot make the server buffer without bound.
    @ivar idleTimeout: seconds without input after which a connection is
        closed; 0 turns that off.
    @ivar maxConnections: open connections beyond this are refused; 0 means
        no limit.
    @ivar maxPerPeer: open connections from one client IP beyond this are
        refused; 0 means no limit.
    @ivar shutdownGrace: seconds a stopping server waits for open
        connections to receive their echoes before it cuts them.
    @ivar proxyTimeout: seconds a C{haproxy:} listener's connection has to
        send its whole PROXY header, counted from its accept; 0 leaves only
        C{idleTimeout}.
    """

    framing: str = "line"
    exitWord: bytes = b"exit"
    quiet: bool = False
    maxLineLength: int = 65536
    idleTimeout: float = 300.0
    maxConnections: int = 10000
    maxPerPeer: int = 0
    shutdownGrace: float = 5.0
    proxyTimeout: float = 5.0

    def __attrs_post_init__(self) -> None:
        if self.framing not in FRAMINGS:
            raise ValueError(f"unknown framing {self.framing!r}")
        if self.maxLineLength < 1:
            raise ValueError("maxLineLength must be at least 1")
        if min(self.idleTimeout, self.maxConnections, self.maxPerPeer) < 0:
            raise ValueError("limits cannot be negative")
        if self.shutdownGrace < 0:
            raise ValueError("shutdownGrace cannot be negative")
        if self.proxyTimeout < 0:
            raise ValueError("proxyTimeout cannot be negative")
