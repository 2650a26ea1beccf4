"""
Tests for L{nbecho.deploy.proxy}: the echo protocol behind a PROXY header starts
with the client's own address, and half-close reaches it; a connection
waiting for its header holds its slot, times out, and is closed by shutdown.
"""

from __future__ import annotations

import socket
import struct

from twisted.internet.address import IPv4Address
from twisted.internet.error import ConnectionDone, ConnectionLost
from twisted.internet.interfaces import IHalfCloseableProtocol
from twisted.internet.task import Clock
from twisted.internet.testing import MemoryReactor, StringTransport
from twisted.logger import LogLevel, capturedLogs, formatEvent
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase

from nbecho.deploy.proxy import (
    ProxiedConnection,
    ProxiedEndpoint,
    ProxiedFactory,
    proxiedFromString,
)
from nbecho.server.factory import REFUSAL, EchoFactory
from nbecho.server.lines import LineEchoProtocol
from nbecho.server.service import SHUTDOWN, ServerService
from nbecho.settings import EchoSettings

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
        self.connect(EchoSettings())

    def connect(self, settings: EchoSettings) -> None:
        self.echo = EchoFactory(settings, clock=self.clock)
        self.connection, self.transport, self.events = self.accept()

    def accept(
        self, peer: IPv4Address = BALANCER
    ) -> tuple[ProxiedConnection, StringTransport, list[dict[str, object]]]:
        """
        A connection from C{peer} to a C{haproxy:} listener of C{self.echo}.
        """
        transport = StringTransport(peerAddress=peer)
        with capturedLogs() as events:
            connection = ProxiedFactory(self.echo).buildProtocol(peer)
            assert isinstance(connection, ProxiedConnection)
            connection.makeConnection(transport)
        return connection, transport, [dict(event) for event in events]

    def receive(self, data: bytes) -> list[dict[str, object]]:
        with capturedLogs() as events:
            self.connection.dataReceived(data)
        return [dict(event) for event in events]

    def lose(self, reason: Failure | None = None) -> list[dict[str, object]]:
        with capturedLogs() as events:
            self.connection.connectionLost(reason or Failure(ConnectionDone()))
        return [dict(event) for event in events]

    def refusals(self, events: list[dict[str, object]]) -> list[tuple[object, ...]]:
        """
        The PROXY refusals among C{events}: peer and problem.
        """
        return [
            (e["peer"], e["problem"])
            for e in events
            if e.get("nbecho_event") == "proxy_refused"
        ]

    def test_waitsForHeader(self) -> None:
        """
        Before the header nothing is accepted or logged, but the connection is
        open: it holds its slot, under the proxy's address, and is counted.

        A client that never sends its header must not be free to hold a
        socket beyond --max-connections and --max-per-peer, so it counts
        from its accept; connectionsTotal counts it then too.
        """
        stats = self.echo.stats
        self.assertEqual((stats.connectionsOpen, stats.connectionsTotal), (1, 1))
        self.assertEqual(self.echo.perPeer, {"127.0.0.1": 1})
        self.assertEqual(self.echo.connections, {self.connection})
        self.assertFalse([e for e in self.events if "nbecho_event" in e])
        self.assertFalse(self.transport.disconnecting)

    def test_acceptNamesClientV1(self) -> None:
        """A v1 header makes Accept, and every later line, name the client."""
        events = self.receive(V1 + b"hello\n")
        peers = {e["peer"] for e in events if "nbecho_event" in e}
        self.assertEqual(peers, {"203.0.113.9:56324"})
        self.assertEqual(events[0]["nbecho_event"], "accept")
        self.assertEqual(self.transport.value(), b"hello\n")
        self.assertEqual(self.echo.stats.connectionsOpen, 1)
        self.assertEqual(self.echo.stats.connectionsTotal, 1)
        self.assertEqual(
            self.connection.getHost(), IPv4Address("TCP", "127.0.0.1", 9999)
        )

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

    def test_startedProtocolServesShutdown(self) -> None:
        """
        Once the header is read, the echo protocol stands for the connection:
        shutdown reaches it, and its close gives the slot back.
        """
        self.receive(V1)
        (protocol,) = self.echo.connections
        self.assertIsInstance(protocol, LineEchoProtocol)
        self.assertIs(protocol, self.connection.wrappedProtocol)
        events = self.lose()
        self.assertEqual([e.get("nbecho_event") for e in events], ["close"])
        self.assertEqual(self.echo.stats.connectionsOpen, 0)
        self.assertEqual(self.echo.connections, set())

    def test_halfClosePassedThrough(self) -> None:
        """End of input reaches the echo protocol, which echoes a last partial line."""
        self.assertTrue(IHalfCloseableProtocol.providedBy(self.connection))
        self.receive(V1 + b"a\npartial")
        self.connection.readConnectionLost()
        self.assertEqual(self.transport.value(), b"a\npartial")
        self.assertTrue(self.transport.disconnecting)

    def test_halfCloseBeforeHeader(self) -> None:
        """End of input before a whole header closes the connection, saying so."""
        self.receive(b"PROXY TCP4 ")
        with capturedLogs() as events:
            self.connection.readConnectionLost()
        self.assertTrue(self.transport.disconnecting)
        self.assertEqual(
            self.refusals([dict(e) for e in events]),
            [("127.0.0.1:50000", "input ended after 11 bytes, before a whole header")],
        )
        self.assertEqual(self.lose(), [])
        self.assertEqual(self.echo.stats.connectionsOpen, 0)

    def test_outputClosedBeforeHeader(self) -> None:
        """A connection whose sending side fails before its header is closed."""
        with capturedLogs() as events:
            self.connection.writeConnectionLost()
        self.assertTrue(self.transport.disconnecting)
        self.assertEqual(
            self.refusals([dict(e) for e in events]),
            [("127.0.0.1:50000", "output closed after 0 bytes, before a whole header")],
        )

    def test_invalidHeader(self) -> None:
        """
        A connection without a valid header is closed with one warning naming
        the proxy's side, is never echoed, and gives its slot back once.

        It was an open connection until then: connectionsTotal keeps it.
        """
        events = self.receive(b"GET / HTTP/1.1\r\n\r\n")
        self.assertTrue(self.transport.disconnecting)
        self.assertEqual(
            [(e["nbecho_event"], e["peer"], e["log_level"]) for e in events],
            [("proxy_refused", "127.0.0.1:50000", LogLevel.warn)],
        )
        self.assertIn("not a PROXY header: 'GET / HTTP/1.1", str(events[0]["problem"]))
        self.assertEqual(self.receive(V1 + b"hello\n"), [])
        self.assertEqual(self.lose(), [])
        self.assertEqual(self.transport.value(), b"")
        stats = self.echo.stats
        self.assertEqual((stats.connectionsOpen, stats.connectionsTotal), (0, 1))
        self.assertEqual((self.echo.perPeer, self.echo.connections), ({}, set()))

    def test_problemEscaped(self) -> None:
        """
        What a header holds reaches the log escaped, in the problem and in the
        bytes received.
        """
        events = self.receive(b"PROXY TCP4 \x1b[2J 127.0.0.1 1 2\r\n")
        (event,) = events
        self.assertEqual(
            event["problem"], "source address '\\x1b[2J' is not an IPv4 address"
        )
        self.assertEqual(
            event["received"], "PROXY TCP4 \\x1b[2J 127.0.0.1 1 2\\x0d\\x0a"
        )
        self.assertNotIn("\x1b", formatEvent(event))

    def test_unknownServedAsProxy(self) -> None:
        """PROXY UNKNOWN is served, under the proxy's own address."""
        events = self.receive(b"PROXY UNKNOWN\r\nhello\n")
        self.assertEqual(
            [(e["nbecho_event"], e["peer"]) for e in events],
            [("accept", "127.0.0.1:50000"), ("message", "127.0.0.1:50000")],
        )
        self.assertEqual(self.transport.value(), b"hello\n")

    def test_localServedAsProxy(self) -> None:
        """A v2 LOCAL header (a health check of HAProxy's) is served as the proxy's."""
        local = b"\r\n\r\n\x00\r\nQUIT\n\x20\x00\x00\x00"
        events = self.receive(local + b"ping\n")
        self.assertEqual(events[0]["peer"], "127.0.0.1:50000")
        self.assertEqual(self.transport.value(), b"ping\n")

    def test_headerTimeout(self) -> None:
        """
        A connection that has not sent its whole header 5 seconds after its
        accept is closed with a warning, however much it sent meanwhile.
        """
        self.receive(b"PROXY TCP4 1")
        self.clock.advance(4.5)
        self.receive(b"27.0.0.1 ")
        self.clock.advance(0.4)
        self.assertFalse(self.transport.disconnecting)
        with capturedLogs() as events:
            self.clock.advance(0.1)
        self.assertTrue(self.transport.disconnecting)
        self.assertEqual(
            self.refusals([dict(e) for e in events]),
            [("127.0.0.1:50000", "no complete header within 5s")],
        )
        self.assertEqual(self.lose(), [])
        self.assertEqual(self.echo.stats.connectionsOpen, 0)

    def test_proxyTimeoutSetting(self) -> None:
        """The header timeout is the proxyTimeout setting."""
        self.connect(EchoSettings(proxyTimeout=0.5))
        self.clock.advance(0.5)
        self.assertTrue(self.transport.disconnecting)

    def test_noProxyTimeout(self) -> None:
        """
        With proxyTimeout 0 the idle timeout bounds the wait for the header;
        with both 0 nothing does.
        """
        self.connect(EchoSettings(proxyTimeout=0, idleTimeout=30))
        self.clock.advance(29.9)
        self.assertFalse(self.transport.disconnecting)
        self.clock.advance(0.1)
        self.assertTrue(self.transport.disconnecting)
        self.connect(EchoSettings(proxyTimeout=0, idleTimeout=0))
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_headerStopsTimeout(self) -> None:
        """Once the header is read, only the idle timeout applies."""
        self.receive(V1)
        self.clock.advance(299)
        self.assertFalse(self.transport.disconnecting)
        self.clock.advance(1)
        self.assertTrue(self.transport.disconnecting)

    def test_lostBeforeHeader(self) -> None:
        """A client that resets before its header gives its slot back, logged once."""
        self.receive(b"\r\n\r\n")
        events = self.lose(Failure(ConnectionLost()))
        self.assertEqual(
            self.refusals(events),
            [
                (
                    "127.0.0.1:50000",
                    "connection lost after 4 bytes, before a whole header",
                )
            ],
        )
        self.assertEqual(self.echo.stats.connectionsOpen, 0)
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_overLimitRefusedAtOnce(self) -> None:
        """
        A connection over --max-connections is refused at once, without
        waiting for a header, while the connection holding the slot waits.
        """
        self.connect(EchoSettings(maxConnections=1))
        second, transport, events = self.accept(IPv4Address("TCP", "127.0.0.1", 50001))
        self.assertEqual(transport.value(), REFUSAL)
        self.assertEqual([e.get("nbecho_event") for e in events], ["refused"])
        self.assertEqual(self.echo.stats.connectionsOpen, 1)
        second.dataReceived(V1 + b"hello\n")
        self.assertEqual(transport.value(), REFUSAL)

    def test_stopBeforeHeader(self) -> None:
        """A stopping server closes a client that has sent no header yet."""
        service = ServerService(self.echo, 5, self.clock)
        service.startService()
        with capturedLogs() as events:
            stopped = service.stopService()
        self.assertTrue(self.transport.disconnecting)
        self.assertEqual(
            self.refusals([dict(e) for e in events]),
            [("127.0.0.1:50000", SHUTDOWN)],
        )
        self.assertEqual(self.receive(V1 + b"late\n"), [])
        events = self.lose()
        self.assertEqual([e.get("nbecho_event") for e in events], ["stopped"])
        self.successResultOf(stopped)
        self.assertEqual(self.transport.value(), b"")

    def test_cutBeforeHeader(self) -> None:
        """When the shutdown grace is over, a waiting client is cut."""
        service = ServerService(self.echo, 5, self.clock)
        service.startService()
        with capturedLogs():
            stopped = service.stopService()
            self.clock.advance(5)
        self.assertTrue(self.transport.disconnected)
        self.lose(Failure(ConnectionLost()))
        self.successResultOf(stopped)


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
