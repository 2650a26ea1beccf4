"""
The whole server as one service: its listeners, the file limit at start,
and a graceful stop.  L{buildServer} makes it from settings and endpoints;
twistd's process and every worker process call it.

twistd stops the application from a "before shutdown" trigger and waits
for the L{Deferred} that C{stopService} returns, so the drain below delays
the exit until every open connection has received its echoes (or the grace
period is over).
"""

from __future__ import annotations

import signal
from collections.abc import Callable, Sequence
from types import FrameType
from typing import Any, Optional, TypeVar

from twisted.application.service import MultiService
from twisted.internet.defer import Deferred, gatherResults
from twisted.internet.interfaces import (
    IDelayedCall,
    IReactorCore,
    IReactorTime,
    IStreamServerEndpoint,
)
from twisted.logger import Logger

from nbecho._words import counted
from nbecho.logs.textlog import reopenLogFiles, rotateLogFiles
from nbecho.server._errors import inWords
from nbecho.server._rlimit import SPARE, raiseFileLimit
from nbecho.server.factory import EchoFactory
from nbecho.server.listening import ListeningService
from nbecho.settings import EchoSettings
from nbecho.stats import EchoStats

log = Logger(namespace="nbecho")

_T = TypeVar("_T")

SHUTDOWN = "server shutting down"


class ServerService(MultiService):
    """
    The listening services of one server, sharing one L{EchoFactory}.

    Stopping it stops accepting at once, asks every open connection to send
    back what it has read (a partial line too) and close, waits for them up
    to C{grace} seconds, cuts the rest, then logs the totals.

    @ivar handleSignals: make SIGTERM and SIGINT stop the server with exit
        status 0 (twistd would otherwise re-raise the signal at exit, and a
        supervisor reads that as a crash); make SIGUSR1 log the totals and
        SIGHUP reopen the log file, or stop the server where there is none
        (a foreground server whose terminal went away).
    @ivar isWorker: this is a worker process of C{--workers}: it ignores
        SIGHUP and SIGUSR1, which twistd's process answers for all (a
        signal sent to the whole process group reaches both).
    @ivar statsSources: callables whose totals add to this process's own
        (the worker processes').
    @ivar statsRefreshers: callables that bring C{statsSources} up to date,
        before the totals of SIGUSR1 are logged.
    @ivar reopenLogs: reopens the log files and returns their paths (none
        when the log does not go to a file of nbecho's).
    """

    handleSignals = False
    isWorker = False

    def __init__(
        self,
        factory: EchoFactory,
        grace: float,
        clock: Optional[IReactorTime] = None,
    ) -> None:
        super().__init__()
        self.factory = factory
        self.grace = grace
        if clock is None:
            from twisted.internet import reactor

            clock = reactor
        assert clock is not None
        self.clock = clock
        self._signalled = False
        self.statsSources: list[Callable[[], EchoStats]] = []
        self.statsRefreshers: list[Callable[[], Deferred[Any]]] = []
        self.reopenLogs: Callable[[], list[str]] = reopenLogFiles
        self._previousUSR1: Any = None

    def totals(self) -> EchoStats:
        """
        The totals of the whole server, worker processes included.
        """
        stats = self.factory.stats
        for source in self.statsSources:
            stats = stats + source()
        return stats

    def privilegedStartService(self) -> None:
        limit = raiseFileLimit(self.factory.settings.maxConnections)
        if limit is not None and not limit.unlimited:
            # Connections never take the descriptors the server keeps for
            # itself (listeners, log files, the metrics port).
            self.factory.fileRoom = max(limit.after - SPARE, 1)
        super().privilegedStartService()

    def startService(self) -> None:
        super().startService()
        if self.handleSignals:
            reactor: Any = self.clock
            reactor.callWhenRunning(self._installSignalHandlers)

    def _installSignalHandlers(self) -> None:
        signal.signal(signal.SIGTERM, self._onSignal)
        signal.signal(signal.SIGINT, self._onSignal)
        if self.isWorker:
            signal.signal(signal.SIGHUP, signal.SIG_IGN)
            signal.signal(signal.SIGUSR1, signal.SIG_IGN)
            return
        signal.signal(signal.SIGHUP, self._onHangUp)
        # SIGUSR1 rotates the log files (nbecho's, and twistd's own when its
        # observer is in use), then logs the totals.
        self._previousUSR1 = signal.signal(signal.SIGUSR1, self._onStatus)

    def _onHangUp(self, number: int, frame: Optional[FrameType]) -> None:
        reactor: Any = self.clock
        reactor.callFromThread(self._hangUp)

    def _hangUp(self) -> None:
        """
        Reopen the log file (after logrotate moved it); with no log file,
        the hangup of a foreground server's terminal: stop gracefully.
        """
        try:
            paths = self.reopenLogs()
        except OSError as error:
            log.warn(
                "Received SIGHUP: cannot reopen the log file, still writing to "
                "the old one: {error}",
                error=inWords(error),
                nbecho_event="reopen_failed",
            )
            return
        if not paths:
            self._stopFromSignal(signal.SIGHUP)
            return
        log.info(
            "Received SIGHUP: reopened the log file {paths}; still serving",
            paths=", ".join(paths),
            nbecho_event="log_reopened",
        )

    def _onStatus(self, number: int, frame: Optional[FrameType]) -> None:
        previous = self._previousUSR1
        if callable(previous):
            previous(number, frame)  # twistd's own log rotation, if any
        reactor: Any = self.clock
        reactor.callFromThread(rotateLogFiles)
        reactor.callFromThread(self.logStatus)

    def logStatus(self) -> Deferred[None]:
        """
        Log one line with the totals so far, worker processes' included once
        they have answered.
        """
        refreshed: Deferred[Any] = gatherResults(
            [refresh() for refresh in self.statsRefreshers]
        )
        return refreshed.addCallback(lambda _: self._logStatusLine())

    def _logStatusLine(self) -> None:
        stats = self.totals()
        log.info(
            "Received SIGUSR1: {openText} open, {connections} in total, "
            "{messagesText}, {bytesInText} in, {bytesOutText} out, "
            "{refusals} refused{detail}{udp}",
            open=stats.connectionsOpen,
            openText=counted(stats.connectionsOpen, "connection"),
            **_totalsFields(stats),
            nbecho_event="status",
        )

    def _onSignal(self, number: int, frame: Optional[FrameType]) -> None:
        # Only thread-safe work in a signal handler: hand over to the reactor.
        reactor: Any = self.clock
        reactor.callFromThread(self._stopFromSignal, number)

    def _stopFromSignal(self, number: int) -> None:
        name = signal.Signals(number).name
        if self._signalled:
            # An impatient operator (Ctrl-C twice): stop waiting.
            log.info(
                "Received {signal} again: cutting open connections now",
                signal=name,
                nbecho_event="shutdown",
            )
            self._cut("cut by a second signal")
            return
        self._signalled = True
        log.info(
            "Received {signal}, shutting down. Open connections have {grace:g}s "
            "to receive their echoes.",
            signal=name,
            grace=self.grace,
            nbecho_event="shutdown",
        )
        reactor: IReactorCore = self.clock  # type: ignore[assignment]
        reactor.stop()

    def stopService(self) -> Deferred[None]:
        listeners = super().stopService()
        drained = self.drain()
        d: Deferred[Any] = gatherResults([listeners, drained])
        return d.addCallback(lambda _: self._logTotals())

    def drain(self) -> Deferred[None]:
        """
        Let open connections finish, then cut whatever is left after
        C{grace} seconds.
        """
        factory = self.factory
        for connection in list(factory.connections):
            connection.finish(SHUTDOWN)
        empty = factory.whenEmpty()
        if not factory.connections:
            return empty
        cut = self.clock.callLater(self.grace, self._graceOver)
        empty.addBoth(cancelling(cut))
        return empty

    def _graceOver(self) -> None:
        log.warn(
            "Shutdown grace of {grace:g}s is over: cutting {countText}",
            grace=self.grace,
            count=len(self.factory.connections),
            countText=counted(len(self.factory.connections), "connection"),
            nbecho_event="shutdown_cut",
        )
        self._cut("cut after the shutdown grace")

    def _cut(self, why: str) -> None:
        for connection in list(self.factory.connections):
            connection.cut(why)

    def _logTotals(self) -> None:
        log.info(
            "nbecho stopped: {connectionsText}, {messagesText}, "
            "{bytesInText} in, {bytesOutText} out, {refusals} refused{detail}"
            "{udp}",
            **_totalsFields(self.totals()),
            nbecho_event="stopped",
        )


def _totalsFields(stats: EchoStats) -> dict[str, Any]:
    """
    The log fields of the totals lines (stop and SIGUSR1).
    """
    refused = stats.refused
    return {
        "connections": stats.connectionsTotal,
        "messages": stats.messages,
        "bytesIn": stats.bytesIn,
        "bytesOut": stats.bytesOut,
        "connectionsText": counted(stats.connectionsTotal, "connection"),
        "messagesText": counted(stats.messages, "message"),
        "bytesInText": counted(stats.bytesIn, "byte"),
        "bytesOutText": counted(stats.bytesOut, "byte"),
        "refusals": sum(refused.values()),
        "refused": dict(refused),
        "detail": "".join(
            f", {count} by --{name}" for name, count in sorted(refused.items())
        ),
        "udpDatagrams": stats.udpDatagrams,
        "udpDropped": dict(stats.udpDropped),
        "udp": (
            f"; UDP: {counted(stats.udpDatagrams, 'datagram')} echoed, "
            f"{sum(stats.udpDropped.values())} dropped"
            if stats.udpDatagrams or stats.udpDropped
            else ""
        ),
    }


def buildServer(
    settings: EchoSettings,
    endpoints: Sequence[tuple[str, IStreamServerEndpoint]],
    clock: Optional[IReactorTime] = None,
) -> ServerService:
    """
    The echo server: one factory for all of C{endpoints}, each listened on
    by its own L{ListeningService} (named by its description), stopped
    gracefully within C{settings.shutdownGrace}.
    """
    factory = EchoFactory(settings, clock)
    server = ServerService(factory, settings.shutdownGrace, clock)
    for description, endpoint in endpoints:
        ListeningService(description, endpoint, factory).setServiceParent(server)
    return server


def cancelling(call: IDelayedCall) -> Callable[[_T], _T]:
    """
    A callback for C{Deferred.addBoth} that cancels C{call} (a timer that
    acts if the Deferred takes too long) and passes the result on.
    """

    def cancel(result: _T) -> _T:
        if call.active():
            call.cancel()
        return result

    return cancel
