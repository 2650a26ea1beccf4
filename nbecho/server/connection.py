"""
The life of one connection, whatever it serves: an idle timeout, a lingering
close, and giving its slot back to the factory exactly once.

Closing a socket that still has unread input makes the kernel send a reset
and throw away output not yet delivered -- the echoes, or the error line,
the client is owed.  So a connection closes in two steps: it shuts its
sending side once every queued byte is written, then reads and discards
until the client closes, at most L{Connection.lingerTimeout} seconds from
then (the idle timeout bounds the writing before that).

The idle timeout lives in the protocol, as Twisted's own C{HTTPChannel}
mixes L{twisted.protocols.policies.TimeoutMixin} into its protocol; no
wrapper stands between the transport and the protocol.  Unlike
C{TimeoutMixin}, input does not reschedule the timer (a C{DelayedCall.reset}
on every read, a good part of a message's cost in nbecho's own code): it
only notes the time, and the timer, when it fires early, waits for the rest.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any
from typing import Protocol as Structural

from twisted.internet.interfaces import (
    IDelayedCall,
    IHalfCloseableProtocol,
    INegotiated,
)
from twisted.internet.protocol import Protocol, connectionDone
from twisted.logger import Logger
from twisted.python.failure import Failure
from zope.interface import implementer

from nbecho.interfaces import IEchoConnection

if TYPE_CHECKING:
    from nbecho.logs.connlimit import ConnectionLogLimit
    from nbecho.logs.ratelimit import LogBudget
    from nbecho.settings import EchoSettings
    from nbecho.stats import EchoStats

log = Logger(namespace="nbecho")


class ConnectionOwner(Structural):
    """
    What a L{Connection} needs from the factory that built it (an
    L{nbecho.server.factory.EchoFactory}), spelled out for the type checker.
    """

    settings: EchoSettings
    clock: Any
    logBudget: LogBudget
    connectionLog: ConnectionLogLimit

    def release(self, connection: Connection) -> None: ...


@implementer(IHalfCloseableProtocol, IEchoConnection)
class Connection(Protocol):
    """
    A connection that times out when idle and closes without losing output.

    @ivar closing: C{close} was called: nothing more is read or echoed.
    @ivar lingering: the sending side is shut; waiting for the client's end.
    @ivar closeWhy: why the connection closed, for its close line.
    @ivar lastInput: the clock's time of the timer's start or of the last
        input since, whichever is later: each read sets it, and the timer,
        when it fires, waits again for what is left.
    """

    factory: ConnectionOwner
    transport: Any
    peer = "?"
    closing = False
    lingering = False
    readClosed = False
    closeWhy = ""
    #: Seconds a closing connection waits for the client to close its side.
    lingerTimeout = 5.0
    lastInput = 0.0
    _timeout: float | None = None
    _timer: IDelayedCall | None = None

    def callLater(self, period: float, func: Callable[[], object]) -> IDelayedCall:
        return self.factory.clock.callLater(period, func)

    def seconds(self) -> float:
        """
        The factory's clock's time (a L{twisted.internet.task.Clock} in tests).
        """
        now: float = self.factory.clock.seconds()
        return now

    def connectionMade(self) -> None:
        # Bound once: every read calls it to set lastInput.
        self.seconds = self.factory.clock.seconds  # type: ignore[method-assign]
        self.setTimeout(self.factory.settings.idleTimeout or None)

    def setTimeout(self, period: float | None) -> None:
        """
        Call C{timeoutConnection} once C{period} seconds pass without input
        (see C{lastInput}); L{None} stops the timer.
        """
        if self._timer is not None:
            if self._timer.active():
                self._timer.cancel()
            self._timer = None
        self._timeout = period
        if period is not None:
            self.lastInput = self.seconds()
            self._timer = self.callLater(period, self._timerFired)

    def _timerFired(self) -> None:
        self._timer = None
        period = self._timeout
        if period is None:
            return
        left = self.lastInput + period - self.seconds()
        if left > 0:
            # Input came since the timer was set: wait for what is left.
            self._timer = self.callLater(left, self._timerFired)
            return
        self._timeout = None
        self.timeoutConnection()

    def close(self, why: str) -> None:
        if self.closing:
            return
        self.closing = True
        self.closeWhy = why
        transport = self.transport
        if (
            self.readClosed
            or INegotiated.providedBy(transport)
            or not hasattr(transport, "loseWriteConnection")
        ):
            # Nothing more can arrive, or TLS, whose close must go through
            # its own buffer: a plain close is safe.
            self.setTimeout(None)
            transport.loseConnection()
            return
        self.lingering = True
        transport.loseWriteConnection()
        # Reading may have been paused by backpressure: read (and discard)
        # again, or the client's end of input would go unnoticed.
        transport.resumeProducing()
        # Sending what is queued may take a slow reader a while: the idle
        # timeout bounds that; the linger timeout starts once it is sent.
        self.setTimeout(self.factory.settings.idleTimeout or None)

    def finish(self, why: str) -> None:
        self.close(why)

    def cut(self, why: str) -> None:
        self.closeWhy = f"{self.closeWhy or 'open'}, then {why}"
        self.setTimeout(None)
        self.transport.abortConnection()

    def readConnectionLost(self) -> None:
        self.readClosed = True
        if self.lingering:
            self.setTimeout(None)
            self.transport.loseConnection()
            return
        self.finish("client finished sending")

    def writeConnectionLost(self) -> None:
        if self.lingering:
            self.setTimeout(self.lingerTimeout)
            return
        self.close("write side closed")

    def timeoutConnection(self) -> None:
        if self.closing:
            self.cut("client did not close in time")
            return
        log.info(
            "Idle timeout {peer}: nothing received for {seconds:g}s",
            peer=self.peer,
            seconds=self.factory.settings.idleTimeout,
            nbecho_event="idle_timeout",
        )
        self.close("idle timeout")

    def addTo(self, stats: EchoStats) -> None:
        """
        A connection that echoes nothing counts nothing.
        """

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        self.setTimeout(None)
        self.factory.release(self)
