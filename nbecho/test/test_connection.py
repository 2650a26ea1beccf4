"""
Tests for L{nbecho.server.connection}: the idle timeout, the lingering close, and
cutting a connection, for echo connections and refusals alike.
"""

from __future__ import annotations

from typing import Any, cast

from twisted.logger import ILogObserver, globalLogPublisher
from twisted.trial.unittest import SynchronousTestCase

from nbecho.interfaces import IEchoConnection
from nbecho.server.connection import Connection
from nbecho.server.factory import Refusal
from nbecho.test._helpers import (
    Harness,
    RecordingTransport,
    captureLogs,
    logLines,
    tcp,
    texts,
)


class IdleTimeoutTests(SynchronousTestCase):
    def test_silentConnectionClosed(self) -> None:
        """
        A connection that sends nothing for --idle-timeout seconds is
        closed with a log line; input restarts the count.
        """
        events = captureLogs(self)
        harness = Harness(idleTimeout=10)
        protocol, transport = harness.connect()
        harness.clock.advance(9)
        protocol.dataReceived(b"hi\n")
        harness.clock.advance(9)
        self.assertFalse(transport.writeClosed)
        harness.clock.advance(1)
        self.assertTrue(transport.writeClosed)
        self.assertIn(
            "Idle timeout 10.0.0.1:40000: nothing received for 10s", texts(events)
        )
        harness.lose(protocol)
        self.assertIn("(idle timeout)", texts(events)[-1])

    def test_countsFromLastInput(self) -> None:
        """
        The timeout counts from the last input, however many reads came
        before it and whether or not the timer fired between them.
        """
        harness = Harness(idleTimeout=10)
        protocol, transport = harness.connect()
        for step in (3, 4, 5):  # reads at 3, 7 and 12 seconds
            harness.clock.advance(step)
            protocol.dataReceived(b"x\n")
        harness.clock.advance(9.9)
        self.assertFalse(transport.writeClosed)
        harness.clock.advance(0.1)
        self.assertTrue(transport.writeClosed)
        self.assertEqual(protocol.closeWhy, "idle timeout")

    def test_readLeavesTimerAlone(self) -> None:
        """
        A read only notes the time: the timer is not rescheduled for every
        read, which would cost more than the rest of a message's handling.
        """
        harness = Harness(idleTimeout=10)
        protocol, _ = harness.connect()
        [timer] = harness.clock.getDelayedCalls()
        harness.clock.advance(4)
        protocol.dataReceived(b"x\n")
        self.assertEqual(harness.clock.getDelayedCalls(), [timer])
        self.assertEqual(timer.getTime(), 10)

    def test_zeroTurnsItOff(self) -> None:
        """
        --idle-timeout 0 schedules nothing.
        """
        harness = Harness(idleTimeout=0)
        harness.connect()
        self.assertEqual(harness.clock.getDelayedCalls(), [])

    def test_lostConnectionLeavesNoTimer(self) -> None:
        """
        A connection that ends leaves no timeout behind on the clock.
        """
        harness = Harness(idleTimeout=10)
        protocol, _ = harness.connect()
        harness.lose(protocol)
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
        self.assertTrue(transport.writeClosed)
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
        self.assertEqual(protocol.lingerTimeout, Connection.lingerTimeout)
        self.assertEqual(Connection.lingerTimeout, 5.0)
        protocol.dataReceived(b"exit\n")
        # Still sending the echoes to a slow reader: the idle timeout rules.
        harness.clock.advance(protocol.lingerTimeout + 1)
        self.assertFalse(transport.aborted)
        # All sent: now the client has the linger timeout to close.
        protocol.writeConnectionLost()
        harness.clock.advance(protocol.lingerTimeout - 0.1)
        self.assertFalse(transport.aborted)
        harness.clock.advance(0.1)
        self.assertTrue(transport.aborted)

    def test_slowFlushBoundedByIdleTimeout(self) -> None:
        """
        A client that never reads what is queued for it is cut after the
        idle timeout.
        """
        harness = Harness(idleTimeout=60)
        protocol, transport = harness.connect()
        protocol.dataReceived(b"exit\n")
        harness.clock.advance(60)
        self.assertTrue(transport.aborted)

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
        self.assertFalse(transport.writeClosed)

    def test_withoutHalfCloseClosesPlainly(self) -> None:
        """
        A transport that cannot shut one side only (TLS) is closed plainly.
        """
        harness = Harness()
        protocol, transport = harness.connect(transport=RecordingTransport())
        protocol.dataReceived(b"exit\n")
        self.assertTrue(transport.disconnecting)

    def test_closeLineBeforeEmpty(self) -> None:
        """
        The last connection's close line is logged before the factory
        reports that none is left.
        """
        events = captureLogs(self)
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


class RefusalLingerTests(SynchronousTestCase):
    def test_refusalLingersBriefly(self) -> None:
        """
        A refused client that never closes is cut one second after its
        refusal line is sent, so refusals cannot pile up.
        """
        harness = Harness(maxConnections=1, idleTimeout=60)
        harness.connect(tcp("10.0.0.1"))
        refused, transport = harness.connect(tcp("10.0.0.2"))
        self.assertIsInstance(refused, Refusal)
        self.assertEqual(refused.lingerTimeout, 1.0)
        self.assertTrue(transport.writeClosed)
        refused.writeConnectionLost()
        harness.clock.advance(0.9)
        self.assertFalse(transport.aborted)
        harness.clock.advance(0.1)
        self.assertTrue(transport.aborted)

    def test_refusalClosedByClient(self) -> None:
        """
        A refused client that closes its side after reading the reason is
        closed at once, with no timer left behind.
        """
        harness = Harness(maxConnections=1)
        harness.connect(tcp("10.0.0.1"))
        refused, transport = harness.connect(tcp("10.0.0.2"))
        refused.writeConnectionLost()
        refused.readConnectionLost()
        self.assertTrue(transport.disconnecting)
        self.assertFalse(transport.aborted)
        harness.lose(refused)
        # Only the accepted connection's idle timeout is left.
        self.assertEqual(len(harness.clock.getDelayedCalls()), 1)


class CutTests(SynchronousTestCase):
    def test_cutAborts(self) -> None:
        """
        Cutting aborts the connection at once and says in the close line how
        it was left, then why it was cut.
        """
        events = captureLogs(self)
        harness = Harness()
        protocol, transport = harness.connect()
        protocol.cut("cut by a test")
        self.assertTrue(transport.aborted)
        self.assertEqual(harness.clock.getDelayedCalls(), [])
        harness.lose(protocol)
        self.assertIn("(open, then cut by a test)", logLines(events)[-1])

    def test_cutWhileClosing(self) -> None:
        """
        Cutting a connection already closing keeps its first reason.
        """
        harness = Harness()
        protocol, _ = harness.connect()
        protocol.dataReceived(b"exit\n")
        protocol.cut("client did not close in time")
        self.assertEqual(
            protocol.closeWhy, "exit word, then client did not close in time"
        )

    def test_everyConnectionProvidesTheInterface(self) -> None:
        """
        Echo connections and refusals alike offer what shutdown relies on.
        """
        harness = Harness(maxConnections=1)
        accepted, _ = harness.connect(tcp("10.0.0.1"))
        refused, _ = harness.connect(tcp("10.0.0.2"))
        self.assertTrue(IEchoConnection.providedBy(accepted))
        self.assertTrue(IEchoConnection.providedBy(refused))
