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

#: The largest C{--max-line-length}: a partial line is held in memory, so
#: a limit beyond this could never be honoured by a real machine.
MAX_LINE_LENGTH_CEILING = 2**30

#: The largest C{--log-rate} and C{--log-rate-total}.
LOG_RATE_CEILING = 10**9


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
    @ivar logRate: per-message log lines one connection may write a second;
        the rest are summarised; 0 means no limit.
    @ivar logRateTotal: per-message log lines all connections together may
        write a second; 0 means no limit.
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
    logRate: int = 100
    logRateTotal: int = 1000
    proxyTimeout: float = 5.0

    def __attrs_post_init__(self) -> None:
        if self.framing not in FRAMINGS:
            raise ValueError(f"unknown framing {self.framing!r}")
        if not 1 <= self.maxLineLength <= MAX_LINE_LENGTH_CEILING:
            raise ValueError(
                f"maxLineLength must be from 1 to {MAX_LINE_LENGTH_CEILING}"
            )
        if not (
            0 <= self.logRate <= LOG_RATE_CEILING
            and 0 <= self.logRateTotal <= LOG_RATE_CEILING
        ):
            raise ValueError(f"log rates must be from 0 to {LOG_RATE_CEILING}")
        if min(self.idleTimeout, self.maxConnections, self.maxPerPeer) < 0:
            raise ValueError("limits cannot be negative")
        if self.shutdownGrace < 0:
            raise ValueError("shutdownGrace cannot be negative")
        if self.proxyTimeout < 0:
            raise ValueError("proxyTimeout cannot be negative")
