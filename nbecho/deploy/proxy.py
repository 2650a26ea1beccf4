"""
The PROXY protocol (HAProxy v1 and v2) in front of nbecho's listeners.

Twisted's C{haproxy:} endpoint parses the header, but starts the wrapped
protocol as soon as the connection is accepted, before the header has
named the client: C{connectionMade} would log the load balancer's address
(U{twisted#12501<https://github.com/twisted/twisted/issues/12501>}).  Its
wrapper is not half-closeable either, so a client's end of input would close
the connection at once and lose the echoes still on their way; and it drops
a connection whose first read holds less than 16 bytes of a header.  Here
the same parsers and wrapper are used, with the echo protocol started once
the header is read, half-close passed through, and a short first read kept
until it can be told apart.
"""

from __future__ import annotations

from typing import Any

import attrs
from twisted.internet.defer import Deferred
from twisted.internet.endpoints import serverFromString
from twisted.internet.interfaces import (
    IHalfCloseableProtocol,
    IListeningPort,
    IProtocolFactory,
    IStreamServerEndpoint,
    ITransport,
)
from twisted.internet.protocol import Protocol, connectionDone
from twisted.logger import Logger

# The wrapper and its factory are public in all but name: proxyEndpoint, the
# one exported name, returns an endpoint built from them.
from twisted.protocols.haproxy._wrapper import (
    HAProxyProtocolWrapper,
    HAProxyWrappingFactory,
)
from twisted.python.failure import Failure
from zope.interface import directlyProvides, implementer, providedBy

from nbecho._address import formatAddress

log = Logger(namespace="nbecho")

PREFIX = "haproxy:"

# Shortest first reads from which Twisted's wrapper can pick the version.
_V2_MINIMUM = 16
_V1_MINIMUM = 8


class _Held(Protocol):
    """
    Where the bytes that arrive together with the header wait while the
    echo protocol starts.
    """

    def __init__(self) -> None:
        self.data = b""

    def dataReceived(self, data: bytes) -> None:
        self.data += data


@implementer(IHalfCloseableProtocol)
class ProxiedConnection(HAProxyProtocolWrapper):
    """
    A PROXY-protocol connection whose echo protocol starts once the header
    has given the client's own address.
    """

    started = False
    _start = b""

    def makeConnection(self, transport: ITransport) -> None:
        # ProtocolWrapper.makeConnection, except that the wrapped protocol
        # waits for the header.
        directlyProvides(self, providedBy(transport))
        Protocol.makeConnection(self, transport)
        self.factory.registerProtocol(self)

    def dataReceived(self, data: bytes) -> None:
        if self.started:
            self.wrappedProtocol.dataReceived(data)
            return
        if self._parser is None:
            # Twisted tells the versions apart from the first read alone and
            # drops a connection whose first read is a short piece of a
            # header: wait for enough bytes to tell.
            data = self._start + data
            if len(data) < _V2_MINIMUM and not (
                data.startswith(b"PROXY ") and len(data) >= _V1_MINIMUM
            ):
                self._start = data
                return
            self._start = b""
        protocol, held = self.wrappedProtocol, _Held()
        self.wrappedProtocol = held
        try:
            super().dataReceived(data)
        finally:
            self.wrappedProtocol = protocol
        if self._proxyInfo is not None and self.connected:
            self.started = True
            protocol.makeConnection(self)  # type: ignore[arg-type]
            if held.data:
                protocol.dataReceived(held.data)

    def readConnectionLost(self) -> None:
        protocol = IHalfCloseableProtocol(self.wrappedProtocol, None)
        if self.started and protocol is not None:
            protocol.readConnectionLost()
        else:
            self.loseConnection()

    def writeConnectionLost(self) -> None:
        protocol = IHalfCloseableProtocol(self.wrappedProtocol, None)
        if self.started and protocol is not None:
            protocol.writeConnectionLost()
        else:
            self.loseConnection()

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        if self.started:
            super().connectionLost(reason)
            return
        self.factory.unregisterProtocol(self)
        # The echo protocol never started: give its slot back all the same.
        release = getattr(self.factory.wrappedFactory, "release", None)
        if release is not None:
            release(self.wrappedProtocol)
        log.warn(
            "No valid PROXY header from {peer}: closed",
            peer=formatAddress(self.transport.getPeer() if self.transport else None),
            nbecho_event="proxy_refused",
        )


class ProxiedFactory(HAProxyWrappingFactory):
    protocol = ProxiedConnection  # type: ignore[assignment]


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
