"""
Tests for L{nbecho.service} and L{nbecho._rlimit}: the graceful stop and
the open file limit.
"""

from __future__ import annotations

import signal
from typing import Any

from twisted.application.service import Service
from twisted.internet.defer import Deferred
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from nbecho import _rlimit
from nbecho.service import ServerService
from nbecho.test.test_limits import Harness, captureLog, tcp, texts


class Listener(Service):
    """
    Stands for a listening service: records that it was stopped.
    """

    stopped = False

    def stopService(self) -> None:
        super().stopService()
        self.stopped = True


def serverService(harness: Harness, grace: float = 5) -> tuple[ServerService, Listener]:
    service = ServerService(harness.factory, grace, harness.clock)
    listener = Listener()
    listener.setServiceParent(service)
    service.startService()
    return service, listener


class DrainTests(SynchronousTestCase):
    def test_everyEchoBeforeStopping(self) -> None:
        """
        Stopping stops the listeners, sends each open connection what it
        has read (a partial line too), and finishes only once every
        connection has closed, with one line of totals.
        """
        events = captureLog(self)
        harness = Harness()
        service, listener = serverService(harness)
        first, firstTransport = harness.connect(tcp("10.0.0.1", 1))
        second, secondTransport = harness.connect(tcp("10.0.0.2", 2))
        first.dataReceived(b"whole\nparti")
        second.dataReceived(b"x\n")
        stopped = service.stopService()
        self.assertTrue(listener.stopped)
        self.assertEqual(firstTransport.value(), b"whole\nparti")
        self.assertTrue(firstTransport.writeClosed)  # type: ignore[attr-defined]
        self.assertTrue(secondTransport.writeClosed)  # type: ignore[attr-defined]
        self.assertNoResult(stopped)
        first.readConnectionLost()
        harness.lose(first)
        self.assertNoResult(stopped)
        second.readConnectionLost()
        harness.lose(second)
        self.successResultOf(stopped)
        self.assertEqual(
            texts(events)[-1],
            "nbecho stopped: 2 connections, 3 messages, 13 bytes in, "
            "13 bytes out, 0 refused",
        )
        self.assertEqual(harness.clock.getDelayedCalls(), [])

    def test_graceCutsTheRest(self) -> None:
        """
        Connections still open when the grace period ends are aborted, and
        the stop completes.
        """
        events = captureLog(self)
        harness = Harness()
        service, _ = serverService(harness, grace=2)
        protocol, transport = harness.connect()
        stopped = service.stopService()
        harness.clock.advance(1.9)
        self.assertFalse(transport.aborted)  # type: ignore[attr-defined]
        harness.clock.advance(0.1)
        self.assertTrue(transport.aborted)  # type: ignore[attr-defined]
        self.assertIn(
            "Shutdown grace of 2s is over: cutting 1 connections", texts(events)
        )
        harness.lose(protocol)
        self.successResultOf(stopped)

    def test_refusedClientLingering(self) -> None:
        """
        A refused client still connected when the server stops is let go
        like the others: its refusal line stays sent and the stop completes
        once it is gone.
        """
        harness = Harness(maxConnections=1)
        service, _ = serverService(harness)
        accepted, _ = harness.connect(tcp("10.0.0.1", 1))
        refused, refusedTransport = harness.connect(tcp("10.0.0.2", 2))
        stopped = service.stopService()
        self.assertEqual(refusedTransport.value(), b"error: too many connections\n")
        accepted.readConnectionLost()
        harness.lose(accepted)
        self.assertNoResult(stopped)
        harness.lose(refused)
        self.successResultOf(stopped)

    def test_nothingOpen(self) -> None:
        """
        With no connection open, stopping completes at once and counts
        refusals in the totals.
        """
        events = captureLog(self)
        harness = Harness()
        harness.echo.stats.refused.update({"max-per-peer": 2, "max-connections": 1})
        service, _ = serverService(harness)
        self.successResultOf(service.stopService())
        self.assertEqual(
            texts(events)[-1],
            "nbecho stopped: 0 connections, 0 messages, 0 bytes in, 0 bytes "
            "out, 3 refused, 1 by --max-connections, 2 by --max-per-peer",
        )


class FakeReactor(Clock):
    """
    A clock that records stops and calls from threads (signal handlers).
    """

    stops = 0

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[Any] = []

    def stop(self) -> None:
        self.stops += 1

    def callFromThread(self, f: Any, *args: Any) -> None:
        self.calls.append((f, args))


class SignalTests(SynchronousTestCase):
    def test_signalStopsOnce(self) -> None:
        """
        SIGTERM hands the stop to the reactor thread-safely, once; a second
        signal is logged as such.
        """
        events = captureLog(self)
        harness = Harness()
        reactor = FakeReactor()
        service = ServerService(harness.factory, 5, reactor)
        service._onSignal(signal.SIGTERM, None)
        service._onSignal(signal.SIGINT, None)
        self.assertEqual(reactor.stops, 0)
        for f, args in reactor.calls:
            f(*args)
        self.assertEqual(reactor.stops, 1)
        self.assertIn(
            "Received SIGTERM, shutting down. Open connections have 5s to receive "
            "their echoes.",
            texts(events),
        )
        self.assertIn(
            "Received SIGINT again: cutting open connections now", texts(events)
        )

    def test_secondSignalCuts(self) -> None:
        """
        A second signal while draining cuts the open connections at once.
        """
        harness = Harness()
        reactor = FakeReactor()
        service = ServerService(harness.factory, 5, reactor)
        protocol, transport = harness.connect()
        service._stopFromSignal(signal.SIGINT)
        stopped = service.stopService()
        self.assertFalse(transport.aborted)  # type: ignore[attr-defined]
        service._stopFromSignal(signal.SIGINT)
        self.assertTrue(transport.aborted)  # type: ignore[attr-defined]
        harness.lose(protocol)
        self.successResultOf(stopped)


class FileLimitTests(SynchronousTestCase):
    def limits(self, soft: int, hard: int) -> tuple[Any, list[tuple[int, int]]]:
        calls: list[tuple[int, int]] = []

        def getrlimit(kind: int) -> tuple[int, int]:
            return soft, hard

        def setrlimit(kind: int, value: tuple[int, int]) -> None:
            calls.append(value)

        return (getrlimit, setrlimit), calls

    def test_raisedForMaxConnections(self) -> None:
        """
        A soft limit too low for --max-connections is raised to fit them.
        """
        (get, set_), calls = self.limits(1024, 65536)
        limit = _rlimit.raiseFileLimit(10000, get, set_)
        self.assertEqual(calls, [(10000 + _rlimit.SPARE, 65536)])
        assert limit is not None
        self.assertEqual(limit.after, 10000 + _rlimit.SPARE)

    def test_highEnoughLeftAlone(self) -> None:
        """
        A soft limit that already fits is not touched.
        """
        (get, set_), calls = self.limits(20000, 20000)
        _rlimit.raiseFileLimit(10000, get, set_)
        self.assertEqual(calls, [])

    def test_warnsWhenHardLimitTooLow(self) -> None:
        """
        A hard limit below --max-connections raises the soft one to it and
        warns how many connections fit.
        """
        events = captureLog(self)
        (get, set_), calls = self.limits(256, 1024)
        _rlimit.raiseFileLimit(10000, get, set_)
        self.assertEqual(calls, [(1024, 1024)])
        self.assertIn(
            "The open file limit 1024 (hard limit 1024) is below "
            "--max-connections 10000: accepting will fail at about 960 "
            "connections",
            texts(events),
        )

    def test_noLimitTakesTheHardLimit(self) -> None:
        """
        --max-connections 0 raises the soft limit all the way.
        """
        (get, set_), calls = self.limits(1024, 4096)
        _rlimit.raiseFileLimit(0, get, set_)
        self.assertEqual(calls, [(4096, 4096)])

    def test_refusedRaiseWarns(self) -> None:
        """
        When the system refuses the raise, the server says so and goes on.
        """
        events = captureLog(self)

        def get(kind: int) -> tuple[int, int]:
            return 1024, 65536

        def refuse(kind: int, value: tuple[int, int]) -> None:
            raise ValueError("not allowed")

        limit = _rlimit.raiseFileLimit(10000, get, refuse)
        assert limit is not None
        self.assertEqual(limit.after, 1024)
        self.assertIn(
            "Cannot raise the open file limit from 1024 to 10064: not allowed",
            texts(events),
        )


class WhenEmptyTests(SynchronousTestCase):
    def test_firesForEachWaiter(self) -> None:
        """
        Every waiter hears when the last connection closes.
        """
        harness = Harness()
        protocol, _ = harness.connect()
        waiters: list[Deferred[None]] = [harness.factory.whenEmpty() for _ in "ab"]
        for waiter in waiters:
            self.assertNoResult(waiter)
        harness.lose(protocol)
        for waiter in waiters:
            self.successResultOf(waiter)
