"""
C{--workers N}: N processes serving the same listening sockets.

One Python process uses one core.  With C{--workers N}, twistd's process
listens as usual and serves, and starts N-1 worker processes that inherit
its echo listeners' sockets (never the metrics one) and serve them too: the
kernel hands each new connection to whichever process accepts first.

A worker is built from data, not from the command line: it receives the
server's L{EchoSettings} as JSON and the sockets as file descriptors, and
calls the same L{buildServer} as twistd's process.  It sends its log events
to twistd's process as JSON over a pipe, where they reach every observer
like the process's own, with C{worker N} in the system column; asked over
its standard input, it answers with its totals, so that metrics and the
shutdown line count every process.  Each request carries a number that the
answer repeats: an answer that comes after its request gave up waiting (a
worker stopped or swapping), twice, garbled or never, only leaves the
worker's last totals in place; it never raises, never stops the reading of
the worker's log, and never delays the next request.  A worker that dies unexpectedly is
started again after a back-off; stopping twistd (SIGTERM) stops them all.
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Sequence
from typing import Any

import attrs
from twisted.application.service import Service
from twisted.internet import protocol
from twisted.internet.defer import Deferred, DeferredList, succeed
from twisted.logger import Logger, eventFromJSON, globalLogPublisher
from twisted.python import usage
from twisted.python.failure import Failure
from twisted.python.reflect import qual

from nbecho.deploy.worker import (
    LOG_FD,
    REQUEST_KEY,
    STATS_KEY,
    settingsToJSON,
    statsRequest,
)
from nbecho.server.listening import ListeningService
from nbecho.server.service import ServerService, cancelling
from nbecho.settings import EchoSettings
from nbecho.stats import EchoStats

log = Logger(namespace="nbecho")

#: Endpoint types whose listening socket a worker can share as it is.
SHAREABLE = ("tcp:", "tcp6:", "unix:", "systemd:")

#: Seconds a worker gets to stop after SIGTERM before it is killed.
STOP_TIMEOUT = 30.0

#: Seconds to wait before starting a dead worker again, doubled each time
#: the same worker dies soon after starting.
RESTART_DELAY = 1.0
#: The longest wait before starting a dead worker again.
RESTART_MAX = 60.0
#: A worker that ran this long before dying restarts after L{RESTART_DELAY}.
STABLE_AFTER = 30.0

#: Seconds a metrics scrape waits for the workers' totals.
STATS_TIMEOUT = 1.0


def checkWorkers(text: str, listen: Sequence[str]) -> int:
    """
    Parse C{--workers}; refuse endpoints whose sockets cannot be shared
    (TLS and other wrapping endpoints would reach workers as plain TCP).
    """
    count = int(text) if text.isascii() and text.isdigit() else 0
    if not 1 <= count <= 256:
        raise usage.UsageError(f"--workers takes a number from 1 to 256, not {text!r}")
    if count > 1:
        for description in listen:
            if not description.startswith(SHAREABLE):
                raise usage.UsageError(
                    f"--workers works with {', '.join(SHAREABLE)} endpoints, "
                    f"not {description!r}"
                )
    return count


def shareLimits(settings: EchoSettings, workers: int) -> EchoSettings:
    """
    Split the server-wide limits (connections, log lines a second) between
    the workers, so that all of them together stay within what the operator
    gave (each at least one).
    """
    if workers <= 1:
        return settings
    shares = {
        name: max(1, getattr(settings, name) // workers)
        for name in ("maxConnections", "logRateTotal", "logConnectionRateTotal")
        if getattr(settings, name)
    }
    return attrs.evolve(settings, **shares) if shares else settings


class _WorkerProtocol(protocol.ProcessProtocol):
    """
    One worker process seen from twistd's: its log events, its totals, its
    end.
    """

    def __init__(self, number: int) -> None:
        self.number = number
        self.ended: Deferred[None] = Deferred()
        self.pid: int | None = None
        self.started = time.monotonic()
        self.stats = EchoStats()
        self._asking: dict[int, Deferred[None]] = {}
        self._lastRequest = 0
        self._partial = b""

    def childDataReceived(self, childFD: int, data: bytes) -> None:
        if childFD != LOG_FD:
            return
        lines = (self._partial + data).split(b"\n")
        self._partial = lines.pop()
        for line in lines:
            text = line.decode("utf-8", "replace").lstrip("\x1e")
            if text:
                self._received(text)

    def _received(self, text: str) -> None:
        try:
            event = eventFromJSON(text)
        except ValueError:
            return
        if not isinstance(event, dict):
            return
        if STATS_KEY in event:
            self._answered(event)
            return
        # Formatted again from its fields, exactly as this process formats
        # its own events: the flattened copy JSON carries lost the format
        # specifications ({duration:.3f}).
        event.pop("log_flattened", None)
        event["worker"] = self.number
        system = event.get("log_system")
        if system is None:
            level = event.get("log_level")
            system = "{}#{}".format(
                event.get("log_namespace", "-"), getattr(level, "name", "-")
            )
        event["log_system"] = f"{system} worker {self.number}"
        globalLogPublisher(event)

    def _answered(self, event: dict[str, Any]) -> None:
        """
        The worker's totals arrived: keep them, and fire the requests they
        answer.  A worker answers in the order it was asked, so an answer
        to request N answers every earlier one too; an answer without a
        number (its last totals, as it stops) answers all.
        """
        try:
            stats = EchoStats.fromJSON(event[STATS_KEY])
        except ValueError as error:
            log.warn(
                "worker {number} sent totals that cannot be read ({error}); "
                "its last ones are kept",
                number=self.number,
                error=str(error),
                nbecho_event="worker_stats_unreadable",
            )
            return
        self.stats = stats
        request = event.get(REQUEST_KEY)
        if type(request) is not int:
            request = self._lastRequest
        for number in [n for n in self._asking if n <= request]:
            self._asking.pop(number).callback(None)

    def askStats(self, clock: Any) -> Deferred[None]:
        """
        Ask the worker for its totals; fire when they arrive, or after
        L{STATS_TIMEOUT} with the last ones known (a late answer then only
        updates the totals).
        """
        if self.transport is None or self.pid is None:
            return succeed(None)
        self._lastRequest += 1
        number = self._lastRequest
        d: Deferred[None] = Deferred()
        self._asking[number] = d
        self.transport.writeToChild(0, statsRequest(number))
        d.addTimeout(STATS_TIMEOUT, clock, onTimeoutCancel=_lastKnown)

        def forget(result: None) -> None:
            self._asking.pop(number, None)

        return d.addBoth(forget)

    def processEnded(self, reason: Failure) -> None:
        status = getattr(reason.value, "exitCode", None)
        signalled = getattr(reason.value, "signal", None)
        log.info(
            "worker {number} (pid {pid}) ended: {how}",
            number=self.number,
            pid=self.pid,
            how=f"signal {signalled}" if signalled else f"exit status {status}",
        )
        self.pid = None
        asking, self._asking = self._asking, {}
        for d in asking.values():
            d.callback(None)
        self.ended.callback(None)


class WorkerPool(Service):
    """
    Start C{count - 1} workers on the sockets of C{listeners} once they
    listen; start a dead one again; stop them with the server.
    """

    def __init__(
        self,
        count: int,
        settings: EchoSettings,
        listeners: Sequence[ListeningService],
        clock: Any = None,
    ) -> None:
        if clock is None:
            from twisted.internet import reactor as clock
        self.clock = clock
        self.count = count
        self.settings = settings
        self.listeners = list(listeners)
        self.workers: dict[int, tuple[Any, _WorkerProtocol]] = {}
        self._retired = EchoStats()
        self._failures: dict[int, int] = {}
        self._restarts: dict[int, Any] = {}

    def _sockets(self) -> list[tuple[int, int]]:
        sockets = []
        for listener in self.listeners:
            port: Any = listener.port
            if port is None:
                raise SystemExit(
                    f"nbecho: --workers cannot share {listener.description}"
                )
            handle = port.getHandle() if hasattr(port, "getHandle") else port.socket
            sockets.append((handle.fileno(), int(handle.family)))
        return sockets

    def startService(self) -> None:
        super().startService()
        sockets = self._sockets()
        self._childFDs: dict[int, Any] = {0: "w", 1: 1, 2: 2, LOG_FD: "r"}
        for index, (fd, _) in enumerate(sockets):
            self._childFDs[LOG_FD + 1 + index] = fd
        from twisted.internet import reactor

        self._config = json.dumps(
            {
                # Workers run the reactor twistd's process runs (--reactor).
                "reactor": qual(type(reactor)),
                "settings": settingsToJSON(self.settings),
                "listeners": [
                    [listener.description, family]
                    for listener, (_, family) in zip(self.listeners, sockets)
                ],
            }
        )
        for number in range(2, self.count + 1):
            self._start(number)

    def _start(self, number: int) -> None:
        self._restarts.pop(number, None)
        worker = _WorkerProtocol(number)
        args = [sys.executable, "-m", "nbecho.deploy.worker", str(number)]
        transport = self.clock.spawnProcess(
            worker,
            sys.executable,
            [*args, self._config],
            env=os.environ.copy(),
            childFDs=self._childFDs,
        )
        worker.pid = transport.pid
        self.workers[number] = (transport, worker)
        worker.ended.addCallback(lambda _: self._ended(number, worker))
        log.info("worker {number} started, pid {pid}", number=number, pid=worker.pid)

    def _ended(self, number: int, worker: _WorkerProtocol) -> None:
        self._retire(worker)
        if not self.running:
            return
        lived = time.monotonic() - worker.started
        failures = 0 if lived >= STABLE_AFTER else self._failures.get(number, 0) + 1
        self._failures[number] = failures
        delay = min(RESTART_MAX, RESTART_DELAY * 2 ** max(0, failures - 1))
        log.warn(
            "worker {number} ended unexpectedly; starting it again in {delay:g}s",
            number=number,
            delay=delay,
            nbecho_event="worker_restart",
        )
        self._restarts[number] = self.clock.callLater(delay, self._start, number)

    def _retire(self, worker: _WorkerProtocol) -> None:
        """
        Keep the counts of a worker that ended: the totals stay totals.
        """
        self.workers.pop(worker.number, None)
        self._retired = self._retired + attrs.evolve(worker.stats, connectionsOpen=0)

    def stats(self) -> EchoStats:
        """
        The workers' totals, as last reported, retired workers' included.
        """
        stats = self._retired
        for _, worker in self.workers.values():
            stats = stats + worker.stats
        return stats

    def refresh(self) -> Deferred[Any]:
        """
        Ask every worker for its totals now; fire when all have answered.
        """
        return DeferredList(
            [worker.askStats(self.clock) for _, worker in self.workers.values()]
        )

    def stopService(self) -> Deferred[Any]:
        super().stopService()
        for call in self._restarts.values():
            if call.active():
                call.cancel()
        self._restarts = {}
        waiting = []
        for transport, worker in list(self.workers.values()):
            if transport.pid is None:
                continue
            transport.signalProcess("TERM")
            waiting.append(worker.ended)
            kill = self.clock.callLater(STOP_TIMEOUT, _kill, transport)
            worker.ended.addBoth(cancelling(kill))
        if not waiting:
            return succeed(None)
        return DeferredList(waiting)


def _lastKnown(result: object, timeout: float) -> None:
    """
    A request that timed out fires with nothing: the totals stay the last
    ones known.
    """


def _kill(transport: Any) -> None:
    if transport.pid is not None:
        transport.signalProcess("KILL")


def addWorkers(server: ServerService, count: int) -> WorkerPool | None:
    """
    Add a pool of C{count - 1} workers to C{server}, sharing the sockets of
    its echo listeners, and count their totals in the server's.
    """
    if count <= 1:
        return None
    listeners = [
        child
        for child in server
        if isinstance(child, ListeningService) and child.factory is server.factory
    ]
    pool = WorkerPool(count, server.factory.settings, listeners)
    pool.setServiceParent(server)
    server.statsSources.append(pool.stats)
    server.statsRefreshers.append(pool.refresh)
    return pool
