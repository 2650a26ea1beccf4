"""
Tests for L{nbecho.deploy.metricsport}: the metrics port's connection
limit, timeout, paths and back-pressure, on in-memory transports.
"""

from __future__ import annotations

from twisted.internet.address import IPv4Address
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from twisted.trial.unittest import SynchronousTestCase
from twisted.web.resource import Resource
from twisted.web.static import Data

from nbecho.deploy.metricsport import MetricsChannel, MetricsSite

REQUEST = b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n"


class MetricsSiteTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.clock = Clock()
        root = Resource()
        root.putChild(b"metrics", Data(b"x" * 1000, "text/plain"))
        self.site = MetricsSite(root, connectionLimit=2, timeout=3, clock=self.clock)

    def connect(self) -> tuple[MetricsChannel | None, StringTransport]:
        transport = StringTransport()
        channel = self.site.buildProtocol(IPv4Address("TCP", "127.0.0.1", 1))
        if channel is not None:
            channel.callLater = self.clock.callLater
            channel.makeConnection(transport)
        return channel, transport

    def test_counted(self) -> None:
        """
        Open connections are counted while open, accepted ones for good.
        """
        channel, _transport = self.connect()
        assert channel is not None
        self.assertEqual((len(self.site.channels), self.site.accepted), (1, 1))
        channel.connectionLost(None)  # type: ignore[arg-type]
        self.assertEqual((len(self.site.channels), self.site.accepted), (0, 1))

    def test_evictsLongestIdle(self) -> None:
        """
        Past the limit a newcomer closes the connection idle longest.
        """
        _first, firstTransport = self.connect()
        self.clock.advance(1)
        _second, secondTransport = self.connect()
        third, _ = self.connect()
        self.assertIsNotNone(third)
        self.assertTrue(firstTransport.disconnecting)
        self.assertFalse(secondTransport.disconnecting)
        self.assertEqual(self.site.dropped["evicted"], 1)

    def test_refusedWhenAllBusy(self) -> None:
        """
        Past the limit, with a request in progress on every connection, a
        newcomer is refused and counted.
        """
        for _ in range(2):
            channel, _ = self.connect()
            assert channel is not None
            channel.requests.append(object())
        refused, _ = self.connect()
        self.assertIsNone(refused)
        self.assertEqual(self.site.dropped["refused"], 1)

    def test_timeoutNotExtendedByTrickle(self) -> None:
        """
        A request sent a byte at a time is cut at the timeout from the
        connection's start, and counted.
        """
        channel, transport = self.connect()
        assert channel is not None
        for byte in REQUEST[:20]:
            channel.dataReceived(bytes([byte]))
            self.clock.advance(0.5)
        self.assertTrue(transport.disconnecting)
        self.assertEqual(self.site.dropped["timeout"], 1)

    def test_noParsingWhilePaused(self) -> None:
        """
        While the send buffer is full, pipelined requests already read are
        not answered, and reading stops; they are answered on resume.
        """
        channel, transport = self.connect()
        assert channel is not None
        channel.pauseProducing()
        self.assertEqual(transport.producerState, "paused")
        channel.dataReceived(REQUEST * 5)
        self.assertEqual(transport.value(), b"")
        channel.resumeProducing()
        self.assertEqual(transport.value().count(b"HTTP/1.1 200"), 5)
