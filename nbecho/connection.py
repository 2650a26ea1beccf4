"""
The life of one connection, whatever it serves: an idle timeout, a lingering
close, and giving its slot back to the factory exactly once.

Closing a socket that still has unread input makes the kernel send a reset
and throw away output not yet delivered -- the echoes, or the error line,
the client is owed.  So a connection closes in two steps: it shuts its
sending side once every queued byte is written, then reads and discards
until the client closes, at most L{Connection.lingerTimeout} seconds from
then (the idle timeout bounds the writing before that).

Twisted's own C{HTTPChannel} mixes L{TimeoutMixin} into the protocol the same
way; no wrapper stands between the transport and the protocol.
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
from twisted.protocols.policies import TimeoutMixin
from twisted.python.failure import Failure
from zope.interface import implementer

from nbecho.interfaces import IEchoConnection

if TYPE_CHECKING:
    from nbecho.logs.ratelimit import LogBudget
    from nbecho.settings import EchoSettings

log = Logger(namespace="nbecho")


class ConnectionOwner(Structural):
    """
    What a L{Connection} needs from the factory that built it (an
    L{nbecho.factory.EchoFactory}), spelled out for the type checker.
    """

    settings: EchoSettings
    clock: Any
    logBudget: LogBudget

    def release(self, connection: Connection) -> None: ...


@implementer(IHalfCloseableProtocol, IEchoConnection)
class Connection(Protocol, TimeoutMixin):
    """
    A connection that times out when idle and closes without losing output.

    @ivar closing: C{close} was called: nothing more is read or echoed.
    @ivar lingering: the sending side is shut; waiting for the client's end.
    @ivar closeWhy: why the connection closed, for its close line.
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

    def callLater(self, period: float, func: Callable[[], object]) -> IDelayedCall:
        return self.factory.clock.callLater(period, func)

    def connectionMade(self) -> None:
        self.setTimeout(self.factory.settings.idleTimeout or None)

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

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        self.setTimeout(None)
        self.factory.release(self)
