"""
Tests for L{nbecho.limits}: connection limits, idle timeout, lingering close.
"""

from __future__ import annotations

from typing import Any, cast

from twisted.internet.address import IPv4Address, IPv6Address, UNIXAddress
from twisted.internet.error import ConnectionDone
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from twisted.logger import ILogObserver, formatEvent, globalLogPublisher
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase

from nbecho.factory import EchoFactory
from nbecho.settings import EchoSettings
from nbecho.limits import (
    MAX_CONNECTIONS,
    MAX_PER_PEER,
    REFUSAL,
    GuardedProtocol,
    LimitingFactory,
    Refusal,
    peerKey,
)


class HalfCloseTransport(StringTransport):
    """
    A L{StringTransport} that, like TCP, can shut only its sending side.
    """

    writeClosed = False
    aborted = False

    def loseWriteConnection(self) -> None:
        self.writeClosed = True

    def abortConnection(self) -> None:
        self.aborted = True
        super().abortConnection()


def tcp(host: str, port: int = 40000) -> IPv4Address:
    return IPv4Address("TCP", host, port)


def captureLog(case: SynchronousTestCase) -> list[dict[str, Any]]:
    events: list[dict[str, Any]] = []
    observer = cast(ILogObserver, events.append)
    globalLogPublisher.addObserver(observer)
    case.addCleanup(globalLogPublisher.removeObserver, observer)
    return events


def texts(events: list[dict[str, Any]]) -> list[str]:
    return [formatEvent(event) for event in events]


class Harness:
    """
    A L{LimitingFactory} on a L{Clock}, and a way to connect to it.
    """

    def __init__(self, **settings: Any) -> None:
        self.clock = Clock()
        self.echo = EchoFactory(EchoSettings(**settings))
        self.factory = LimitingFactory(self.echo, self.clock)

    def connect(
        self, address: Any = None, transport: StringTransport | None = None
    ) -> tuple[GuardedProtocol, StringTransport]:
        address = address if address is not None else tcp("10.0.0.1")
        protocol = self.factory.buildProtocol(address)
        assert protocol is not None
        if transport is None:
            transport = HalfCloseTransport(peerAddress=address)
        protocol.makeConnection(transport)
        return protocol, transport

    def lose(self, protocol: GuardedProtocol) -> None:
        protocol.connectionLost(Failure(ConnectionDone()))


class PeerKeyTests(SynchronousTestCase):
    def test_ipHosts(self) -> None:
        """
        IPv4 and IPv6 peers are counted by host, whatever their port.
        """
        self.assertEqual(peerKey(tcp("192.0.2.1", 1)), "192.0.2.1")
        self.assertEqual(peerKey(IPv6Address("TCP", "::1", 2)), "::1")

    def test_unixPeersHaveNoKey(self) -> None:
        """
        UNIX-socket peers have no host to count them under.
        """
        self.assertIsNone(peerKey(UNIXAddress(None)))
        self.assertIsNone(peerKey(None))


class ConnectionLimitTests(SynchronousTestCase):
    def test_perPeerRefusal(self) -> None:
        """
        A connection over --max-per-peer from one host reads the refusal
        line and is closed, is logged once with its peer and counted, while
        another host still gets in.
        """
        events = captureLog(self)
        harness = Harness(maxPerPeer=2)
        harness.connect(tcp("10.0.0.1", 1))
        harness.connect(tcp("10.0.0.1", 2))
        refused, transport = harness.connect(tcp("10.0.0.1", 3))
        self.assertIsInstance(refused.wrappedProtocol, Refusal)
        self.assertEqual(transport.value(), REFUSAL)
        self.assertTrue(transport.writeClosed)  # type: ignore[attr-defined]
        other, _ = harness.connect(tcp("10.0.0.2", 4))
        self.assertNotIsInstance(other.wrappedProtocol, Refusal)
        self.assertEqual(harness.echo.stats.refused, {MAX_PER_PEER: 1})
        refusals = [text for text in texts(events) if text.startswith("Refused")]
        self.assertEqual(
            refusals,
            ["Refused 10.0.0.1:3: too many connections (--max-per-peer 2)"],
        )

    def test_totalRefusalAndReuse(self) -> None:
        """
        A connection over --max-connections is refused; once one closes,
        the next is accepted again.
        """
        harness = Harness(maxConnections=2)
        first, _ = harness.connect(tcp("10.0.0.1"))
        harness.connect(tcp("10.0.0.2"))
        refused, transport = harness.connect(tcp("10.0.0.3"))
        self.assertEqual(transport.value(), REFUSAL)
        self.assertEqual(harness.echo.stats.refused, {MAX_CONNECTIONS: 1})
        harness.lose(refused)
        self.assertEqual(harness.factory.open, 2)
        harness.lose(first)
        self.assertEqual(harness.factory.open, 1)
        self.assertEqual(harness.factory.perPeer, {"10.0.0.2": 1})
        accepted, transport = harness.connect(tcp("10.0.0.3"))
        self.assertNotIsInstance(accepted.wrappedProtocol, Refusal)
        self.assertEqual(transport.value(), b"")

    def test_zeroMeansNoLimit(self) -> None:
        """
        With both limits 0, nothing is refused.
        """
        harness = Harness(maxConnections=0, maxPerPeer=0)
        for port in range(50):
            protocol, _ = harness.connect(tcp("10.0.0.1", port))
            self.assertNotIsInstance(protocol.wrappedProtocol, Refusal)
        self.assertEqual(harness.echo.stats.refused, {})

    def test_unixPeersOnlyCountInTotal(self) -> None:
        """
        UNIX-socket peers are exempt from --max-per-peer but count toward
        --max-connections.
        """
        harness = Harness(maxConnections=3, maxPerPeer=1)
        for _ in range(3):
            protocol, _ = harness.connect(UNIXAddress(None))
            self.assertNotIsInstance(protocol.wrappedProtocol, Refusal)
        _, transport = harness.connect(UNIXAddress(None))
        self.assertEqual(transport.value(), REFUSAL)
        self.assertEqual(harness.echo.stats.refused, {MAX_CONNECTIONS: 1})

    def test_refusalLingersBriefly(self) -> None:
        """
        A refused client that never closes is cut after the short refusal
        linger, so refusals cannot pile up.
        """
        harness = Harness(maxConnections=1)
        harness.connect()
        refused, transport = harness.connect()
        refused.writeConnectionLost()
        harness.clock.advance(harness.factory.refusalLingerTimeout)
        self.assertTrue(transport.aborted)  # type: ignore[attr-defined]


class IdleTimeoutTests(SynchronousTestCase):
    def test_silentConnectionClosed(self) -> None:
        """
        A connection that sends nothing for --idle-timeout seconds is
        closed with a log line; input restarts the count.
        """
        events = captureLog(self)
        harness = Harness(idleTimeout=10)
        protocol, transport = harness.connect()
        harness.clock.advance(9)
        protocol.dataReceived(b"hi\n")
        harness.clock.advance(9)
        self.assertFalse(transport.writeClosed)  # type: ignore[attr-defined]
        harness.clock.advance(1)
        self.assertTrue(transport.writeClosed)  # type: ignore[attr-defined]
        self.assertIn(
            "Idle timeout 10.0.0.1:40000: nothing received for 10s", texts(events)
        )
        harness.lose(protocol)
        self.assertIn("(idle timeout)", texts(events)[-1])

    def test_zeroTurnsItOff(self) -> None:
        """
        --idle-timeout 0 schedules nothing.
        """
        harness = Harness(idleTimeout=0)
        harness.connect()
        self.assertEqual(harness.clock.getDelayedCalls(), [])


class LingeringCloseTests(SynchronousTestCase):
    def test_exitLingers(self) -> None:
        """
        After the exit word the server shuts only its sending side and
        discards further input, so the client's unread data cannot make the
        kernel reset the connection and drop the echo.
        """
        harness = Harness()
        protocol, transport = harness.connect()
        protocol.dataReceived(b"exit\n")
        self.assertEqual(transport.value(), b"exit\n")
        self.assertTrue(transport.writeClosed)  # type: ignore[attr-defined]
        self.assertFalse(transport.disconnecting)
        protocol.dataReceived(b"more\n")
        self.assertEqual(transport.value(), b"exit\n")
        protocol.readConnectionLost()
        self.assertTrue(transport.disconnecting)

    def test_lingerIsBounded(self) -> None:
        """
        A client that never closes its side is cut after the linger timeout.
        """
        harness = Harness(idleTimeout=60)
        protocol, transport = harness.connect()
        protocol.dataReceived(b"exit\n")
        # Still sending the echoes to a slow reader: the idle timeout rules.
        harness.clock.advance(harness.factory.lingerTimeout + 1)
        self.assertFalse(transport.aborted)  # type: ignore[attr-defined]
        # All sent: now the client has the linger timeout to close.
        protocol.writeConnectionLost()
        harness.clock.advance(harness.factory.lingerTimeout)
        self.assertTrue(transport.aborted)  # type: ignore[attr-defined]

    def test_slowFlushBoundedByIdleTimeout(self) -> None:
        """
        A client that never reads what is queued for it is cut after the
        idle timeout.
        """
        harness = Harness(idleTimeout=60)
        protocol, transport = harness.connect()
        protocol.dataReceived(b"exit\n")
        harness.clock.advance(60)
        self.assertTrue(transport.aborted)  # type: ignore[attr-defined]

    def test_halfCloseClosesAtOnce(self) -> None:
        """
        When the client has finished sending, its partial line is echoed and
        the connection closes without lingering.
        """
        harness = Harness()
        protocol, transport = harness.connect()
        protocol.dataReceived(b"a\nb")
        protocol.readConnectionLost()
        self.assertEqual(transport.value(), b"a\nb")
        self.assertTrue(transport.disconnecting)
        self.assertFalse(transport.writeClosed)  # type: ignore[attr-defined]

    def test_withoutHalfCloseClosesPlainly(self) -> None:
        """
        A transport that cannot shut one side only (TLS) is closed plainly.
        """
        harness = Harness()
        protocol, transport = harness.connect(transport=StringTransport())
        protocol.dataReceived(b"exit\n")
        self.assertTrue(transport.disconnecting)

    def test_closeLineBeforeEmpty(self) -> None:
        """
        The last connection's close line is logged before the factory
        reports that none is left.
        """
        events = captureLog(self)
        harness = Harness()
        protocol, _ = harness.connect()
        order: list[str] = []
        harness.factory.whenEmpty().addCallback(lambda _: order.append("empty"))

        def logged(event: dict[str, Any]) -> None:
            order.append("log")

        observer = cast(ILogObserver, logged)
        globalLogPublisher.addObserver(observer)
        self.addCleanup(globalLogPublisher.removeObserver, observer)
        harness.lose(protocol)
        self.assertEqual(order, ["log", "empty"])
        self.assertIn("close 10.0.0.1:40000", texts(events)[-1])
