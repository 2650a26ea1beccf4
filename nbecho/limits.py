"""
Limits that keep one client from hurting the others: connection counts (in
total and per client IP), an idle timeout, and a lingering close so that a
client always receives what the server sent before it hung up.

L{LimitingFactory} wraps the L{EchoFactory} the way the factories of
L{twisted.protocols.policies} do, and keeps every open connection so that a
stopping server can drain them (see L{nbecho._shutdown}).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Optional, Union

from twisted.internet.address import IPv4Address, IPv6Address
from twisted.internet.defer import Deferred, succeed
from twisted.internet.interfaces import (
    IAddress,
    IDelayedCall,
    IHalfCloseableProtocol,
    INegotiated,
    IReactorTime,
    ITransport,
)
from twisted.internet.protocol import Protocol, connectionDone
from twisted.logger import Logger
from twisted.protocols.policies import ProtocolWrapper, TimeoutMixin, WrappingFactory
from twisted.python.failure import Failure
from zope.interface import implementer

from nbecho._address import formatAddress
from nbecho.factory import EchoFactory
from nbecho.protocol import EchoProtocol

log = Logger(namespace="nbecho")

#: What a refused client reads before the server closes its connection.
REFUSAL = b"error: too many connections\n"

#: The limit names that L{EchoStats.refused} counts refusals under.
MAX_CONNECTIONS = "max-connections"
MAX_PER_PEER = "max-per-peer"


def peerKey(address: IAddress | None) -> str | None:
    """
    The client IP that C{--max-per-peer} counts C{address} under.

    UNIX-socket peers have no host: they are local processes already
    admitted by the socket file's permissions, so only the total limit
    applies to them (C{None}).
    """
    if isinstance(address, (IPv4Address, IPv6Address)):
        return address.host
    host = getattr(address, "host", None)
    return host if isinstance(host, str) else None


class Refusal(Protocol):
    """
    Tell a client over a limit why it is turned away, then hang up.
    """

    def connectionMade(self) -> None:
        assert self.transport is not None
        self.transport.write(REFUSAL)
        self.transport.loseConnection()

    def close(self, why: str) -> None:
        assert self.transport is not None
        self.transport.loseConnection()

    #: Nothing was read from a refused client: finishing is closing.
    finish = close


_Guarded = Union[EchoProtocol, Refusal]


@implementer(IHalfCloseableProtocol)
class GuardedProtocol(ProtocolWrapper, TimeoutMixin):
    """
    Stand between the transport and one connection's protocol.

    It closes the connection after C{idleTimeout} seconds without input
    (L{TimeoutMixin}), and turns the protocol's C{loseConnection} into a
    lingering close: the server shuts its sending side once every queued
    byte is written, then reads and discards until the client closes, at
    most C{lingerTimeout} seconds from then (the idle timeout bounds the
    writing before that).  Closing a socket that still has unread
    input makes the kernel send a reset and throw away output not yet
    delivered -- the echoes, or the error line, the client is owed.
    """

    factory: LimitingFactory
    wrappedProtocol: _Guarded
    transport: Any
    lingering = False
    readClosed = False
    limitKey: Optional[str] = None
    counted = False
    #: Seconds to linger; C{None} takes the factory's.
    lingerTimeout: Optional[float] = None

    def callLater(self, period: float, func: Callable[[], object]) -> IDelayedCall:
        return self.factory.clock.callLater(period, func)

    def makeConnection(self, transport: ITransport) -> None:
        # Before the wrapped protocol starts: a refusal starts closing at
        # once, and the timeout it sets must not be replaced by this one.
        self.setTimeout(self.factory.idleTimeout or None)
        super().makeConnection(transport)

    def dataReceived(self, data: bytes) -> None:
        if self.lingering:
            return
        self.resetTimeout()
        self.wrappedProtocol.dataReceived(data)

    def loseConnection(self) -> None:
        if self.lingering or self.disconnecting:
            return
        transport = self.transport
        if (
            self.readClosed
            or INegotiated.providedBy(transport)
            or not hasattr(transport, "loseWriteConnection")
        ):
            # Nothing more can arrive, or TLS, whose close must go through
            # its own buffer: a plain close is safe.
            self.disconnecting = 1
            self.setTimeout(None)
            transport.loseConnection()
            return
        self.lingering = True
        transport.loseWriteConnection()
        # The protocol may have been paused by backpressure: read (and
        # discard) again, or the client's end of input would go unnoticed.
        transport.resumeProducing()
        # Sending what is queued may take a slow reader a while: the idle
        # timeout bounds that; the linger timeout starts once it is sent.
        self.setTimeout(self.factory.idleTimeout or None)

    def readConnectionLost(self) -> None:
        self.readClosed = True
        if self.lingering:
            self.setTimeout(None)
            self.transport.loseConnection()
            return
        wrapped = IHalfCloseableProtocol(self.wrappedProtocol, None)
        if wrapped is not None:
            wrapped.readConnectionLost()
        else:
            self.loseConnection()

    def writeConnectionLost(self) -> None:
        if self.lingering:
            linger = self.lingerTimeout
            self.setTimeout(self.factory.lingerTimeout if linger is None else linger)
            return
        wrapped = IHalfCloseableProtocol(self.wrappedProtocol, None)
        if wrapped is not None:
            wrapped.writeConnectionLost()

    def timeoutConnection(self) -> None:
        if self.lingering or self.disconnecting:
            self.abortConnection("client did not close in time")
            return
        log.info(
            "Idle timeout {peer}: nothing received for {seconds:g}s",
            peer=formatAddress(self.getPeer()),
            seconds=self.factory.idleTimeout,
            nbecho_event="idle_timeout",
        )
        self.wrappedProtocol.close("idle timeout")

    def finish(self, why: str) -> None:
        """
        Send back what was read, then close: the server is stopping.
        """
        self.wrappedProtocol.finish(why)

    def abortConnection(self, why: str = "aborted") -> None:
        """
        Cut the connection now, output not yet sent included, and say why
        in its close line.
        """
        wrapped = self.wrappedProtocol
        if isinstance(wrapped, EchoProtocol):
            wrapped.closeWhy = f"{wrapped.closeWhy or 'open'}, then {why}"
        self.setTimeout(None)
        self.transport.abortConnection()

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        # The protocol logs its close line before the factory hears of it:
        # the last connection's line then comes before the shutdown totals.
        self.setTimeout(None)
        self.wrappedProtocol.connectionLost(reason)
        self.factory.unregisterProtocol(self)


class LimitingFactory(WrappingFactory):
    """
    Refuse connections over C{--max-connections} or C{--max-per-peer}.

    L{twisted.protocols.policies.LimitConnectionsByPeer} would count per
    peer, but it indexes addresses as tuples (broken since addresses became
    objects) and drops refused clients without a word; this keys on
    C{address.host} and answers with L{REFUSAL}.

    @ivar protocols: every open connection (refusals included), as
        L{WrappingFactory} keeps them.
    """

    protocol = GuardedProtocol
    noisy = False
    wrappedFactory: EchoFactory
    #: Seconds a closing connection waits for the client to close its side.
    lingerTimeout = 5.0
    #: The same for a refused client: refusals must not pile up.
    refusalLingerTimeout = 1.0

    def __init__(
        self, wrappedFactory: EchoFactory, clock: IReactorTime | None = None
    ) -> None:
        super().__init__(wrappedFactory)
        if clock is None:
            from twisted.internet import reactor

            clock = reactor
        assert clock is not None
        self.clock = clock
        settings = wrappedFactory.settings
        self.idleTimeout = settings.idleTimeout
        self.maxConnections = settings.maxConnections
        self.maxPerPeer = settings.maxPerPeer
        self.open = 0
        self.perPeer: dict[str, int] = {}
        self._whenEmpty: list[Deferred[None]] = []

    def buildProtocol(  # type: ignore[override]
        self, addr: IAddress | None
    ) -> GuardedProtocol | None:
        key = peerKey(addr)
        if self.maxConnections and self.open >= self.maxConnections:
            return self._refuse(addr, MAX_CONNECTIONS, self.maxConnections)
        if (
            key is not None
            and self.maxPerPeer
            and self.perPeer.get(key, 0) >= self.maxPerPeer
        ):
            return self._refuse(addr, MAX_PER_PEER, self.maxPerPeer)
        wrapped = self.wrappedFactory.buildProtocol(addr)
        if wrapped is None:
            return None
        protocol = GuardedProtocol(self, wrapped)  # type: ignore[arg-type]
        protocol.counted = True
        protocol.limitKey = key
        self.open += 1
        if key is not None:
            self.perPeer[key] = self.perPeer.get(key, 0) + 1
        return protocol

    def _refuse(self, addr: IAddress | None, limit: str, value: int) -> GuardedProtocol:
        refused = self.wrappedFactory.stats.refused
        refused[limit] = refused.get(limit, 0) + 1
        log.warn(
            "Refused {peer}: too many connections (--{limit} {value})",
            peer=formatAddress(addr),
            limit=limit,
            value=value,
            nbecho_event="refused",
        )
        protocol = GuardedProtocol(self, Refusal())  # type: ignore[arg-type]
        protocol.lingerTimeout = self.refusalLingerTimeout
        return protocol

    def unregisterProtocol(self, p: GuardedProtocol) -> None:
        super().unregisterProtocol(p)
        if p.counted:
            p.counted = False
            self.open -= 1
            key = p.limitKey
            if key is not None:
                left = self.perPeer[key] - 1
                if left:
                    self.perPeer[key] = left
                else:
                    del self.perPeer[key]
        if not self.protocols:
            waiting, self._whenEmpty = self._whenEmpty, []
            for d in waiting:
                d.callback(None)

    def whenEmpty(self) -> Deferred[None]:
        """
        A L{Deferred} that fires once no connection is open.
        """
        if not self.protocols:
            return succeed(None)
        d: Deferred[None] = Deferred()
        self._whenEmpty.append(d)
        return d
