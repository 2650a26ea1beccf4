"""
Tests for L{nbecho.deploy.proxy}: the echo protocol behind a PROXY header starts
with the client's own address, and half-close reaches it.
"""

from __future__ import annotations

import socket
import struct

from twisted.internet.address import IPv4Address
from twisted.internet.interfaces import IHalfCloseableProtocol
from twisted.internet.task import Clock
from twisted.internet.testing import MemoryReactor, StringTransport
from twisted.logger import capturedLogs
from twisted.trial.unittest import SynchronousTestCase

from nbecho.deploy.proxy import (
    ProxiedConnection,
    ProxiedEndpoint,
    ProxiedFactory,
    proxiedFromString,
)
from nbecho.factory import EchoFactory
from nbecho.service import ServerService

BALANCER = IPv4Address("TCP", "127.0.0.1", 50000)
V1 = b"PROXY TCP4 203.0.113.9 127.0.0.1 56324 9999\r\n"


def v2(source: str, sourcePort: int) -> bytes:
    """
    A binary PROXY v2 header for a TCP over IPv4 connection.
    """
    addresses = socket.inet_aton(source) + socket.inet_aton("127.0.0.1")
    addresses += struct.pack("!HH", sourcePort, 9999)
    return b"\r\n\r\n\x00\r\nQUIT\n\x21\x11" + struct.pack("!H", 12) + addresses


class ProxiedConnectionTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.clock = Clock()
        self.echo = EchoFactory(clock=self.clock)
        connection = ProxiedFactory(self.echo).buildProtocol(BALANCER)
        assert isinstance(connection, ProxiedConnection)
        self.connection = connection
        self.transport = StringTransport(peerAddress=BALANCER)
        with capturedLogs() as self.events:
            self.connection.makeConnection(self.transport)

    def receive(self, data: bytes) -> list[dict[str, object]]:
        with capturedLogs() as events:
            self.connection.dataReceived(data)
        return [dict(event) for event in events]

    def test_waitsForHeader(self) -> None:
        """Before the header nothing is accepted, counted or logged."""
        self.assertEqual(self.echo.stats.connectionsOpen, 0)
        self.assertFalse([e for e in self.events if "nbecho_event" in e])

    def test_acceptNamesClientV1(self) -> None:
        """A v1 header makes Accept, and every later line, name the client."""
        events = self.receive(V1 + b"hello\n")
        peers = {e["peer"] for e in events if "nbecho_event" in e}
        self.assertEqual(peers, {"203.0.113.9:56324"})
        self.assertEqual(events[0]["nbecho_event"], "accept")
        self.assertEqual(self.transport.value(), b"hello\n")
        self.assertEqual(self.echo.stats.connectionsOpen, 1)

    def test_acceptNamesClientV2(self) -> None:
        """A binary v2 header split across reads names the client too."""
        header = v2("198.51.100.7", 4242)
        self.assertEqual(self.receive(header[:10]), [])
        events = self.receive(header[10:] + b"hi\n")
        self.assertEqual(events[0]["peer"], "198.51.100.7:4242")
        self.assertEqual(self.transport.value(), b"hi\n")

    def test_headerByteByByte(self) -> None:
        """A v1 header arriving a few bytes at a time is still read whole."""
        pieces = [V1[index : index + 3] for index in range(0, len(V1), 3)]
        for piece in pieces[:-1]:
            self.assertEqual(self.receive(piece), [])
            self.assertFalse(self.transport.disconnecting)
        events = self.receive(pieces[-1] + b"ok\n")
        self.assertEqual(events[0]["peer"], "203.0.113.9:56324")
        self.assertEqual(self.transport.value(), b"ok\n")

    def test_halfClosePassedThrough(self) -> None:
        """End of input reaches the echo protocol, which echoes a last partial line."""
        self.assertTrue(IHalfCloseableProtocol.providedBy(self.connection))
        self.receive(V1 + b"a\npartial")
        self.connection.readConnectionLost()
        self.assertEqual(self.transport.value(), b"a\npartial")
        self.assertTrue(self.transport.disconnecting)

    def test_halfCloseBeforeHeader(self) -> None:
        """End of input before any header just closes the connection."""
        self.connection.readConnectionLost()
        self.assertTrue(self.transport.disconnecting)

    def test_invalidHeader(self) -> None:
        """A connection without a valid header is closed and logged, never echoed."""
        self.receive(b"GET / HTTP/1.1\r\n\r\n")
        self.assertTrue(self.transport.disconnecting)
        with capturedLogs() as events:
            self.connection.connectionLost()
        self.assertEqual(
            [(e["nbecho_event"], e["peer"]) for e in events],
            [("proxy_refused", "127.0.0.1:50000")],
        )
        self.assertEqual(self.transport.value(), b"")
        self.assertEqual(self.echo.stats.connectionsTotal, 0)

    def test_stopBeforeHeader(self) -> None:
        """A stopping server closes a client that has sent no header yet."""
        service = ServerService(self.echo, 5, self.clock)
        service.startService()
        stopped = service.stopService()
        self.clock.advance(5)
        self.assertTrue(self.transport.disconnecting)
        with capturedLogs():
            self.connection.connectionLost()
        self.successResultOf(stopped)
        self.assertEqual(self.transport.value(), b"")


class ProxiedFromStringTests(SynchronousTestCase):
    def test_haproxyPrefix(self) -> None:
        """haproxy:ENDPOINT wraps the endpoint ENDPOINT describes."""
        reactor = MemoryReactor()
        endpoint = proxiedFromString(reactor, "haproxy:tcp:0:interface=127.0.0.1")
        assert isinstance(endpoint, ProxiedEndpoint)
        endpoint.listen(EchoFactory(clock=Clock()))
        ((port, factory, _, interface),) = reactor.tcpServers
        self.assertEqual((port, interface), (0, "127.0.0.1"))
        self.assertIsInstance(factory, ProxiedFactory)

    def test_otherEndpoints(self) -> None:
        """Any other description is left to serverFromString."""
        self.assertIsNone(proxiedFromString(MemoryReactor(), "tcp:0"))
