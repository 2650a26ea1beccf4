"""
The server factory: one place for the settings every connection shares and
for the counters that outlive each connection.
"""

from __future__ import annotations

import attrs
from twisted.internet.protocol import ServerFactory

from nbecho.protocol import EchoProtocol, LineEchoProtocol

#: The framings C{--framing} accepts, each with the protocol that implements it.
FRAMINGS: dict[str, type[EchoProtocol]] = {
    "line": LineEchoProtocol,
    "raw": EchoProtocol,
}


@attrs.frozen
class EchoSettings:
    """
    How every connection of one listener behaves.

    @ivar framing: C{"line"} (a message ends in LF or CRLF) or C{"raw"} (each
        chunk read from the socket is a message, as in the seed).
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
    """

    framing: str = "line"
    exitWord: bytes = b"exit"
    quiet: bool = False
    maxLineLength: int = 65536
    idleTimeout: float = 300.0
    maxConnections: int = 10000
    maxPerPeer: int = 0
    shutdownGrace: float = 5.0

    def __attrs_post_init__(self) -> None:
        if self.framing not in FRAMINGS:
            raise ValueError(f"unknown framing {self.framing!r}")
        if self.maxLineLength < 1:
            raise ValueError("maxLineLength must be at least 1")
        if min(self.idleTimeout, self.maxConnections, self.maxPerPeer) < 0:
            raise ValueError("limits cannot be negative")
        if self.shutdownGrace < 0:
            raise ValueError("shutdownGrace cannot be negative")


@attrs.define
class EchoStats:
    """
    Totals since the server started, for the shutdown line and for metrics.
    """

    connectionsOpen: int = 0
    connectionsTotal: int = 0
    messages: int = 0
    bytesIn: int = 0
    bytesOut: int = 0
    #: Refused connections by the limit that refused them.
    refused: dict[str, int] = attrs.Factory(dict)


class EchoFactory(ServerFactory):
    """
    Build the protocol that C{settings.framing} names and keep the totals.
    """

    noisy = False

    def __init__(self, settings: EchoSettings | None = None) -> None:
        self.settings = settings if settings is not None else EchoSettings()
        self.stats = EchoStats()
        self.protocol = FRAMINGS[self.settings.framing]  # type: ignore[assignment]
