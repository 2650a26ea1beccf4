"""
Tests for L{nbecho.server.service} and L{nbecho.server._rlimit}: the server built from
settings and endpoints, its totals, the graceful stop and the open file
limit.
"""

from __future__ import annotations

import signal
from typing import Any

from twisted.application.service import Service
from twisted.internet.defer import Deferred
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from nbecho.server import _rlimit
from nbecho.server.listening import ListeningService
from nbecho.server.service import ServerService, buildServer
from nbecho.settings import EchoSettings
from nbecho.stats import EchoStats
from nbecho.test._helpers import Harness, captureLogs, tcp, texts


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
        events = captureLogs(self)
        harness = Harness()
        service, listener = serverService(harness)
        first, firstTransport = harness.connect(tcp("10.0.0.1", 1))
        second, secondTransport = harness.connect(tcp("10.0.0.2", 2))
        first.dataReceived(b"whole\nparti")
        second.dataReceived(b"x\n")
        stopped = service.stopService()
        self.assertTrue(listener.stopped)
        self.assertEqual(firstTransport.value(), b"whole\nparti")
        self.assertTrue(firstTransport.writeClosed)
        self.assertTrue(secondTransport.writeClosed)
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
        events = captureLogs(self)
        harness = Harness()
        service, _ = serverService(harness, grace=2)
        protocol, transport = harness.connect()
        stopped = service.stopService()
        harness.clock.advance(1.9)
        self.assertFalse(transport.aborted)
        harness.clock.advance(0.1)
        self.assertTrue(transport.aborted)
        self.assertIn(
            "Shutdown grace of 2s is over: cutting 1 connection", texts(events)
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
        events = captureLogs(self)
        harness = Harness(maxConnections=2, maxPerPeer=1)
        # Two refused by --max-per-peer, then one by --max-connections.
        opened = [harness.connect(tcp("10.0.0.1", 1))[0]]
        opened += [harness.connect(tcp("10.0.0.1", port))[0] for port in (2, 3)]
        opened.append(harness.connect(tcp("10.0.0.2", 4))[0])
        opened.append(harness.connect(tcp("10.0.0.3", 5))[0])
        for protocol in opened:
            harness.lose(protocol)
        service, _ = serverService(harness)
        self.successResultOf(service.stopService())
        self.assertEqual(
            texts(events)[-1],
            "nbecho stopped: 2 connections, 0 messages, 0 bytes in, 0 bytes "
            "out, 3 refused, 1 by --max-connections, 2 by --max-per-peer",
        )


class TotalsTests(SynchronousTestCase):
    def test_addsStatsSources(self) -> None:
        """
        The server's totals are its own connections' plus every stats
        source's (the worker processes'), refusals merged by limit.
        """
        harness = Harness(maxConnections=1)
        service, _ = serverService(harness)
        accepted, _ = harness.connect(tcp("10.0.0.1"))
        harness.connect(tcp("10.0.0.2"))
        accepted.dataReceived(b"one\n")
        service.statsSources.append(
            lambda: EchoStats(1, 4, 10, 100, 90, {"max-connections": 2})
        )
        service.statsSources.append(lambda: EchoStats(2, 3, 5, 50, 50))
        self.assertEqual(
            service.totals(),
            EchoStats(4, 8, 16, 154, 144, {"max-connections": 3}),
        )
        self.assertEqual(harness.factory.stats.messages, 1)

    def test_withoutSources(self) -> None:
        """
        Without stats sources the totals are the factory's own.
        """
        harness = Harness()
        service, _ = serverService(harness)
        protocol, _ = harness.connect()
        protocol.dataReceived(b"x\n")
        self.assertEqual(service.totals(), harness.factory.stats)

    def test_stopLineCountsSources(self) -> None:
        """
        The line logged at the stop gives the totals of the whole server.
        """
        events = captureLogs(self)
        harness = Harness()
        service, _ = serverService(harness)
        service.statsSources.append(
            lambda: EchoStats(0, 3, 7, 70, 70, {"max-per-peer": 1})
        )
        self.successResultOf(service.stopService())
        self.assertEqual(
            texts(events)[-1],
            "nbecho stopped: 3 connections, 7 messages, 70 bytes in, 70 bytes "
            "out, 1 refused, 1 by --max-per-peer",
        )


class BuildServerTests(SynchronousTestCase):
    def test_oneFactoryForAllEndpoints(self) -> None:
        """
        Every endpoint is listened on by its own service, named by its
        description, all sharing one factory with the settings, the clock
        and the settings' shutdown grace.
        """
        clock = Clock()
        settings = EchoSettings(framing="raw", shutdownGrace=2.5)
        endpoints: list[tuple[str, Any]] = [("tcp:0", object()), ("unix:s", object())]
        server = buildServer(settings, endpoints, clock)
        children = list(server)
        self.assertEqual(len(children), 2)
        for child, (description, endpoint) in zip(children, endpoints):
            assert isinstance(child, ListeningService)
            self.assertEqual(child.description, description)
            self.assertIs(child.endpoint, endpoint)
            self.assertIs(child.factory, server.factory)
        self.assertIs(server.factory.settings, settings)
        self.assertIs(server.factory.clock, clock)
        self.assertIs(server.clock, clock)
        self.assertEqual(server.grace, 2.5)
        self.assertEqual(server.statsSources, [])


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
        events = captureLogs(self)
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
        self.assertFalse(transport.aborted)
        service._stopFromSignal(signal.SIGINT)
        self.assertTrue(transport.aborted)
        harness.lose(protocol)
        self.successResultOf(stopped)


class OperatorSignalTests(SynchronousTestCase):
    """
    SIGUSR1 (totals), SIGHUP (reopen the log, or stop) and the workers'
    indifference to both, with the handlers called as the signal would.
    """

    def setUp(self) -> None:
        self.events = captureLogs(self)
        self.harness = Harness()
        self.reactor = FakeReactor()
        self.service = ServerService(self.harness.factory, 5, self.reactor)
        for number in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGUSR1):
            self.addCleanup(signal.signal, number, signal.getsignal(number))
        # No log rotation of another test's to chain to.
        signal.signal(signal.SIGUSR1, signal.SIG_DFL)

    def deliver(self, number: int) -> None:
        """
        Call the handler installed for C{number}, then what it handed to
        the reactor.
        """
        handler = signal.getsignal(number)
        assert callable(handler)
        handler(number, None)
        calls, self.reactor.calls = self.reactor.calls, []
        for f, args in calls:
            f(*args)

    def test_usr1LogsTotals(self) -> None:
        """
        SIGUSR1 logs one line with the connections open and in total, the
        messages, bytes and refusals, and stops nothing.
        """
        self.service._installSignalHandlers()
        protocol, _ = self.harness.connect()
        protocol.dataReceived(b"hello\n")
        before = len(self.events)
        self.deliver(signal.SIGUSR1)
        self.assertEqual(
            texts(self.events)[before:],
            [
                "Received SIGUSR1: 1 connection open, 1 in total, 1 message, "
                "6 bytes in, 6 bytes out, 0 refused"
            ],
        )
        self.assertEqual(self.reactor.stops, 0)

    def test_usr1ChainsRotation(self) -> None:
        """
        The SIGUSR1 handler found at start (twistd's log rotation) is still
        called.
        """
        rotated: list[int] = []
        signal.signal(signal.SIGUSR1, lambda number, frame: rotated.append(number))
        self.service._installSignalHandlers()
        self.deliver(signal.SIGUSR1)
        self.assertEqual(rotated, [signal.SIGUSR1])
        self.assertEqual(len(self.events), 1)

    def test_usr1WaitsForWorkers(self) -> None:
        """
        The totals line waits for the workers' totals to be refreshed and
        counts them.
        """
        refreshed: Deferred[None] = Deferred()
        workers = EchoStats(connectionsOpen=2, connectionsTotal=7, messages=3)
        self.service.statsRefreshers.append(lambda: refreshed)
        self.service.statsSources.append(lambda: workers)
        self.service._installSignalHandlers()
        self.deliver(signal.SIGUSR1)
        self.assertEqual(texts(self.events), [])
        refreshed.callback(None)
        [line] = texts(self.events)
        self.assertTrue(
            line.startswith(
                "Received SIGUSR1: 2 connections open, 7 in total, 3 messages"
            ),
            line,
        )

    def test_hupReopensLog(self) -> None:
        """
        SIGHUP with a log file reopens it, says so and keeps serving.
        """
        self.service.reopenLogs = lambda: ["/var/log/nbecho.log"]
        self.service._installSignalHandlers()
        self.deliver(signal.SIGHUP)
        self.assertEqual(
            texts(self.events),
            [
                "Received SIGHUP: reopened the log file /var/log/nbecho.log; "
                "still serving"
            ],
        )
        self.assertEqual(self.reactor.stops, 0)

    def test_hupWithoutLogFileStops(self) -> None:
        """
        SIGHUP without a log file (a foreground server whose terminal went
        away) stops the server gracefully, like SIGTERM.
        """
        self.service.reopenLogs = lambda: []
        self.service._installSignalHandlers()
        self.deliver(signal.SIGHUP)
        self.assertEqual(self.reactor.stops, 1)
        self.assertEqual(
            texts(self.events),
            [
                "Received SIGHUP, shutting down. Open connections have 5s to "
                "receive their echoes."
            ],
        )

    def test_hupCannotReopen(self) -> None:
        """
        A log file that cannot be reopened is a warning in words; the server
        keeps serving and writing to the old file.
        """

        def cannot() -> list[str]:
            raise PermissionError(13, "Permission denied", "/var/log/nbecho.log")

        self.service.reopenLogs = cannot
        self.service._installSignalHandlers()
        self.deliver(signal.SIGHUP)
        self.assertEqual(self.reactor.stops, 0)
        self.assertEqual(
            texts(self.events),
            [
                "Received SIGHUP: cannot reopen the log file, still writing to the "
                "old one: /var/log/nbecho.log: Permission denied"
            ],
        )

    def test_workerIgnoresHupAndUsr1(self) -> None:
        """
        A worker process ignores SIGHUP and SIGUSR1, which twistd's process
        answers for the whole server, and still stops on SIGTERM.
        """
        self.service.isWorker = True
        self.service._installSignalHandlers()
        self.assertEqual(signal.getsignal(signal.SIGHUP), signal.SIG_IGN)
        self.assertEqual(signal.getsignal(signal.SIGUSR1), signal.SIG_IGN)
        self.deliver(signal.SIGTERM)
        self.assertEqual(self.reactor.stops, 1)


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
        events = captureLogs(self)
        (get, set_), calls = self.limits(256, 1024)
        _rlimit.raiseFileLimit(10000, get, set_)
        self.assertEqual(calls, [(1024, 1024)])
        self.assertIn(
            "The open file limit 1024 (hard limit 1024) is below "
            "--max-connections 10000: connections beyond 960 will be refused",
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
        events = captureLogs(self)

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
