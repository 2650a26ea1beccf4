"""
The PROXY protocol (HAProxy v1 and v2) in front of nbecho's listeners.

Twisted's C{haproxy:} endpoint starts the wrapped protocol as soon as the
connection is accepted, before the header has named the client:
C{connectionMade} would log the load balancer's address
(U{twisted#12501<https://github.com/twisted/twisted/issues/12501>}).  Its
wrapper is not half-closeable either, so a client's end of input would close
the connection at once and lose the echoes still on their way; it drops a
connection whose first read holds less than 16 bytes of a header, lets a
malformed header raise out of C{dataReceived}, and never times out a client
that sends no header.  Here Twisted's parsers read the header
(L{nbecho.deploy.proxyheader}), and the echo protocol starts once it is read.

A connection waiting for its header is an open connection like any other:
it holds its C{--max-connections} and C{--max-per-peer} slot (under the
proxy's address), shutdown closes it, and it has C{--proxy-timeout} seconds
from its accept to send the whole header.  Until the header is read, the
L{ProxiedConnection} stands for it in the factory's registry; from then on,
the echo protocol it has started.
"""

from __future__ import annotations

from typing import Any, cast

import attrs
from twisted.internet.defer import Deferred
from twisted.internet.endpoints import serverFromString
from twisted.internet.error import ConnectionDone
from twisted.internet.interfaces import (
    IAddress,
    IDelayedCall,
    IHalfCloseableProtocol,
    IListeningPort,
    IProtocolFactory,
    IStreamServerEndpoint,
    ITransport,
)
from twisted.internet.protocol import Protocol, connectionDone
from twisted.logger import Logger
from twisted.protocols.policies import ProtocolWrapper, TimeoutMixin, WrappingFactory
from twisted.python.failure import Failure
from zope.interface import directlyProvides, implementer, providedBy

from nbecho._words import counted
from nbecho.deploy.proxyheader import Header, HeaderError, HeaderReader
from nbecho.interfaces import IEchoConnection
from nbecho.logs.escape import escapeMessage
from nbecho.server._address import formatAddress, logKey
from nbecho.server.factory import EchoFactory, Refusal
from nbecho.stats import EchoStats

log = Logger(namespace="nbecho")

PREFIX = "haproxy:"


@implementer(IHalfCloseableProtocol, IEchoConnection)
class ProxiedConnection(ProtocolWrapper, TimeoutMixin):
    """
    A PROXY-protocol connection whose echo protocol starts once the header
    has given the client's own address.

    @ivar started: the echo protocol (or the refusal of a client over a
        limit) has started: everything is passed on to it.
    @ivar ended: the connection was closed before its header was read:
        nothing more is read, and the echo protocol never starts.
    """

    factory: ProxiedFactory
    transport: Any
    wrappedProtocol: Any
    started = False
    ended = False

    def __init__(self, factory: ProxiedFactory, wrappedProtocol: Any) -> None:
        # Recent Twisted releases type the wrapper's factory as generic.
        super().__init__(cast(Any, factory), wrappedProtocol)
        self._reader = HeaderReader()
        self._header = Header()

    @property
    def echoFactory(self) -> EchoFactory:
        return self.factory.wrappedFactory

    def callLater(self, period: float, func: Any) -> IDelayedCall:
        return self.echoFactory.clock.callLater(period, func)

    def makeConnection(self, transport: ITransport) -> None:
        # ProtocolWrapper.makeConnection, except that the wrapped protocol
        # waits for the header.
        directlyProvides(self, providedBy(transport))
        Protocol.makeConnection(self, transport)
        self.factory.registerProtocol(self)
        if isinstance(self.wrappedProtocol, Refusal):
            # Over a limit: the client learns it at once, header or not.
            self._start(b"")
            return
        self.echoFactory.handOver(self.wrappedProtocol, self)
        settings = self.echoFactory.settings
        self.setTimeout(settings.proxyTimeout or settings.idleTimeout or None)

    def getPeer(self) -> IAddress:
        return self._header.source or self.transport.getPeer()

    def getHost(self) -> IAddress:
        return self._header.destination or self.transport.getHost()

    def dataReceived(self, data: bytes) -> None:
        if self.started:
            self.wrappedProtocol.dataReceived(data)
            return
        if self.ended:
            return
        try:
            read = self._reader.feed(data)
        except HeaderError as error:
            self._end(error.problem)
            return
        if read is not None:
            self._header, remaining = read
            self._start(remaining)

    def _start(self, remaining: bytes) -> None:
        self.setTimeout(None)
        protocol = self.wrappedProtocol
        self.echoFactory.handOver(self, protocol)
        self.started = True
        protocol.makeConnection(self)
        if remaining:
            protocol.dataReceived(remaining)

    def _end(self, problem: str, abort: bool = False) -> None:
        """
        Close a connection whose echo protocol never started, with one
        warning that says why.
        """
        if not self.ended:
            self.ended = True
            self.setTimeout(None)
            self._warn(problem)
        if abort:
            self.transport.abortConnection()
        else:
            self.loseConnection()

    def _warn(self, problem: str) -> None:
        peer = self.transport.getPeer()
        limit = self.echoFactory.connectionLog
        key = logKey(peer)
        if not limit.admit(key):
            limit.hold(key, "without a valid PROXY header")
            return
        log.warn(
            "No valid PROXY header from {peer}: {problem}",
            peer=formatAddress(peer),
            problem=problem,
            received=escapeMessage(self._reader.first),
            nbecho_event="proxy_refused",
        )

    def timeoutConnection(self) -> None:
        self._end(f"no complete header within {self.timeOut:g}s")

    # IEchoConnection: what shutdown asks of a connection still waiting for
    # its header (the echo protocol answers once it has started).

    def finish(self, why: str) -> None:
        self._end(why)

    def close(self, why: str) -> None:
        self._end(why)

    def cut(self, why: str) -> None:
        self._end(why, abort=True)

    def addTo(self, stats: EchoStats) -> None:
        """
        Nothing is echoed before the header: nothing to count.
        """

    # IHalfCloseableProtocol: the echo protocol's once started.

    def readConnectionLost(self) -> None:
        if not self.started:
            self._end(self._cutShort("input ended"))
            return
        protocol = IHalfCloseableProtocol(self.wrappedProtocol, None)
        if protocol is not None:
            protocol.readConnectionLost()
        else:
            self.loseConnection()

    def writeConnectionLost(self) -> None:
        if not self.started:
            self._end(self._cutShort("output closed"))
            return
        protocol = IHalfCloseableProtocol(self.wrappedProtocol, None)
        if protocol is not None:
            protocol.writeConnectionLost()
        else:
            self.loseConnection()

    def _cutShort(self, what: str) -> str:
        received = self._reader.received
        return f"{what} after {counted(received, 'byte')}, before a whole header"

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        if self.started:
            super().connectionLost(reason)
            return
        self.setTimeout(None)
        self.factory.unregisterProtocol(self)
        if not self.ended:
            self.ended = True
            ending = "closed" if reason.check(ConnectionDone) else "connection lost"
            self._warn(self._cutShort(ending))
        self.echoFactory.release(self)


class ProxiedFactory(WrappingFactory):
    """
    Wrap each connection of an L{EchoFactory} in a L{ProxiedConnection}.
    """

    protocol = ProxiedConnection
    noisy = False
    wrappedFactory: EchoFactory


@implementer(IStreamServerEndpoint)
@attrs.frozen
class ProxiedEndpoint:
    """
    Listen on C{wrapped}, expecting a PROXY header on every connection.
    """

    wrapped: IStreamServerEndpoint

    def listen(self, factory: IProtocolFactory) -> Deferred[IListeningPort]:
        return self.wrapped.listen(ProxiedFactory(factory))


def proxiedFromString(reactor: Any, description: str) -> ProxiedEndpoint | None:
    """
    The endpoint for a C{haproxy:ENDPOINT} description, or C{None} for any
    other kind, which L{serverFromString} handles as usual.
    """
    if not description.startswith(PREFIX):
        return None
    return ProxiedEndpoint(serverFromString(reactor, description[len(PREFIX) :]))
