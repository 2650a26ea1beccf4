"""
What an operator chose: the settings every connection of one server shares,
and the bounds they must stay within.

This module sits at the bottom of nbecho's layers: it knows no protocol and
no reactor, so the protocol, the factory, the services, the worker processes
and the command line all build on the same record.

The bounds refuse values that can never work rather than values that are
merely unusual: a timeout of a nanosecond closes every connection before it
can send a byte, a line limit beyond memory promises what the server cannot
keep, an exit word with a line break can never equal a line.
"""

from __future__ import annotations

import attrs

#: The framings C{--framing} accepts: C{line} (a message ends in LF or
#: CRLF) and C{raw} (each chunk read from the socket is a message).
FRAMINGS = ("line", "raw")

#: The largest C{--log-rate} and C{--log-rate-total}.
LOG_RATE_CEILING = 10**9

#: The exit word of line framing when none is given.  Raw framing, which
#: carries any bytes, has none unless one is given.
DEFAULT_EXIT_WORD = b"exit"

#: The shortest timeout (idle timeout, shutdown grace) other than 0, in
#: seconds: shorter ones would close connections before a client could use
#: them.
MIN_SECONDS = 0.1

#: The longest timeout, in seconds (one day); 0 turns the idle timeout off.
MAX_SECONDS = 86400.0

#: The longest C{--max-line-length}: 1 GiB, a line the server can still
#: buffer.
MAX_LINE_LENGTH = 2**30

#: The highest count an option takes (C{--max-connections}, C{--max-per-peer}):
#: no process gets more file descriptors than this on common systems.
MAX_COUNT = 1_000_000

#: The longest exit word, in bytes.
MAX_EXIT_WORD = 1024


def checkSeconds(name: str, value: float) -> None:
    """
    Refuse a timeout that is neither 0 nor from L{MIN_SECONDS} to
    L{MAX_SECONDS}.
    """
    if value != 0 and not MIN_SECONDS <= value <= MAX_SECONDS:
        raise ValueError(
            f"{name} must be 0 or from {MIN_SECONDS:g} to {MAX_SECONDS:g} seconds, "
            f"not {value!r}"
        )


def checkCount(name: str, value: int, low: int, high: int) -> None:
    """
    Refuse a length or count outside C{low} to C{high}.
    """
    if not low <= value <= high:
        raise ValueError(f"{name} must be from {low} to {high}, not {value!r}")


def exitWordProblem(word: bytes) -> str | None:
    """
    Why C{word} can never end a connection, or C{None} if it can.
    """
    if len(word) > MAX_EXIT_WORD:
        return f"must be at most {MAX_EXIT_WORD} bytes long, not {len(word)}"
    if b"\r" in word or b"\n" in word:
        return "cannot contain a line break (CR or LF)"
    return None


def _defaultExitWord(settings: EchoSettings) -> bytes:
    return DEFAULT_EXIT_WORD if settings.framing == "line" else b""


@attrs.frozen
class EchoSettings:
    """
    How every connection of one server behaves.

    @ivar framing: one of L{FRAMINGS}.
    @ivar exitWord: a message equal to this ends the connection once echoed;
        empty turns that off.  By default L{DEFAULT_EXIT_WORD} in line
        framing and none in raw framing, which is binary-safe.
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
    @ivar logConnectionRate: connections from one client address that may
        have their lines (Accept, close, refusals) logged a second; the rest
        are summarised; 0 means no limit.
    @ivar logConnectionRateTotal: connections from all addresses together
        that may have their lines logged a second; 0 means no limit.
    @ivar proxyTimeout: seconds a C{haproxy:} listener's connection has to
        send its whole PROXY header, counted from its accept; 0 leaves only
        C{idleTimeout}.
    """

    framing: str = "line"
    exitWord: bytes = attrs.field(
        default=attrs.Factory(_defaultExitWord, takes_self=True)
    )
    quiet: bool = False
    maxLineLength: int = 131072
    idleTimeout: float = 300.0
    maxConnections: int = 10000
    maxPerPeer: int = 0
    shutdownGrace: float = 5.0
    logRate: int = 100
    logRateTotal: int = 1000
    logConnectionRate: int = 10
    logConnectionRateTotal: int = 100
    proxyTimeout: float = 5.0

    def __attrs_post_init__(self) -> None:
        if self.framing not in FRAMINGS:
            raise ValueError(f"unknown framing {self.framing!r}")
        problem = exitWordProblem(self.exitWord)
        if problem is not None:
            raise ValueError(f"the exit word {problem}")
        checkCount("maxLineLength", self.maxLineLength, 1, MAX_LINE_LENGTH)
        checkCount("maxConnections", self.maxConnections, 0, MAX_COUNT)
        checkCount("maxPerPeer", self.maxPerPeer, 0, MAX_COUNT)
        checkSeconds("idleTimeout", self.idleTimeout)
        checkSeconds("shutdownGrace", self.shutdownGrace)
        rates = (
            self.logRate,
            self.logRateTotal,
            self.logConnectionRate,
            self.logConnectionRateTotal,
        )
        if not all(0 <= rate <= LOG_RATE_CEILING for rate in rates):
            raise ValueError(f"log rates must be from 0 to {LOG_RATE_CEILING}")
        checkSeconds("proxyTimeout", self.proxyTimeout)
