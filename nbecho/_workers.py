"""
C{--workers N}: N processes serving the same listening sockets.

One Python process uses one core.  With C{--workers N}, twistd's own process
listens as usual and serves, and starts N-1 worker processes that inherit
its listening sockets and serve them too (the kernel hands each new
connection to whichever process accepts first, so an idle worker picks up
the next client).  Each worker builds its service with the same
C{makeService} and the same options as twistd's process, but listening on
the inherited socket through L{AdoptedStreamServerEndpoint}, so framing,
logging and the limits behave the same in every worker.

Workers send their log events to twistd's process as JSON over a pipe;
there they go to every C{twisted.logger} observer (twistd's log file, a
JSON log) like the process's own events, with a C{worker} field.  Stopping
twistd (SIGTERM) stops every worker and waits for them; a worker whose
parent dies (its standard input closes) stops by itself.
"""

from __future__ import annotations

import json
import os
import socket
import sys
from collections.abc import Sequence
from typing import Any

import attrs
from twisted.application.service import IService, IServiceCollection, Service
from twisted.internet import protocol
from twisted.internet.defer import Deferred, DeferredList, succeed
from twisted.internet.endpoints import AdoptedStreamServerEndpoint
from twisted.logger import (
    Logger,
    eventFromJSON,
    globalLogBeginner,
    globalLogPublisher,
    jsonFileLogObserver,
)
from twisted.python import usage
from twisted.python.failure import Failure

log = Logger(namespace="nbecho")

#: Endpoint types whose listening socket a worker can share as it is.
SHAREABLE = ("tcp:", "tcp6:", "unix:", "systemd:")

#: The child's file descriptor for its log pipe; listening sockets follow.
_LOG_FD = 3

#: Set in a worker's environment, so that its makeService starts no workers
#: of its own (whatever module object runs it).
WORKER_ENV = "NBECHO_WORKER"

#: Seconds a worker gets to stop after SIGTERM before it is killed.
STOP_TIMEOUT = 30.0


def checkWorkers(text: str, listen: Sequence[str]) -> int:
    """
    Parse C{--workers}; refuse endpoints whose sockets cannot be shared
    (TLS and other wrapping endpoints would reach workers as plain TCP).
    """
    try:
        count = int(text)
    except ValueError:
        count = 0
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


def shareLimits(settings: Any, workers: int) -> Any:
    """
    Split a server-wide connection limit between the workers, so that all of
    them together admit at most the number the operator gave (each at least
    one).
    """
    limit = getattr(settings, "maxConnections", 0)
    if workers <= 1 or not limit or not attrs.has(type(settings)):
        return settings
    return attrs.evolve(settings, maxConnections=max(1, limit // workers))


class _WorkerProtocol(protocol.ProcessProtocol):
    """
    One worker process seen from twistd's: its log events, its end.
    """

    def __init__(self, number: int) -> None:
        self.number = number
        self.ended: Deferred[None] = Deferred()
        self.pid: int | None = None
        self._partial = b""

    def childDataReceived(self, childFD: int, data: bytes) -> None:
        if childFD != _LOG_FD:
            return
        lines = (self._partial + data).split(b"\n")
        self._partial = lines.pop()
        for line in lines:
            text = line.decode("utf-8", "replace").lstrip("\x1e")
            if not text:
                continue
            try:
                event = eventFromJSON(text)
            except ValueError:
                continue
            event["worker"] = self.number
            system = event.get("log_system")
            if system is None:
                level = event.get("log_level")
                system = "{}#{}".format(
                    event.get("log_namespace", "-"), getattr(level, "name", "-")
                )
            event["log_system"] = f"{system} worker {self.number}"
            globalLogPublisher(event)

    def processEnded(self, reason: Failure) -> None:
        status = getattr(reason.value, "exitCode", None)
        signalled = getattr(reason.value, "signal", None)
        log.info(
            "worker {number} (pid {pid}) ended: {how}",
            number=self.number,
            pid=self.pid,
            how=f"signal {signalled}" if signalled else f"exit status {status}",
        )
        self.ended.callback(None)


class WorkerPool(Service):
    """
    Start C{count - 1} workers on the sockets of C{listeners} once they
    listen; stop them with the server.
    """

    def __init__(self, count: int, argv: Sequence[str], listeners: list[Any]) -> None:
        self.count = count
        self.argv = list(argv)
        self.listeners = listeners
        self.workers: list[tuple[Any, _WorkerProtocol]] = []

    def _sockets(self) -> list[tuple[int, int]]:
        sockets = []
        for listener in self.listeners:
            port = listener.port
            if port is None or getattr(port, "factory", None) is not listener.factory:
                raise SystemExit(
                    f"nbecho: --workers cannot share {listener.description}"
                )
            handle = port.getHandle() if hasattr(port, "getHandle") else port.socket
            sockets.append((handle.fileno(), handle.family))
        return sockets

    def startService(self) -> None:
        super().startService()
        from twisted.internet import reactor as _reactor

        reactor: Any = _reactor
        sockets = self._sockets()
        descriptions = [listener.description for listener in self.listeners]
        childFDs: dict[int, Any] = {0: "w", 1: 1, 2: 2, _LOG_FD: "r"}
        families = []
        for index, (fd, family) in enumerate(sockets):
            childFDs[_LOG_FD + 1 + index] = fd
            families.append(str(int(family)))
        for number in range(2, self.count + 1):
            worker = _WorkerProtocol(number)
            args = [sys.executable, "-m", "nbecho._workers", str(number)]
            args += [",".join(families), json.dumps(descriptions), "--", *self.argv]
            transport = reactor.spawnProcess(
                worker,
                sys.executable,
                args,
                env={**os.environ, WORKER_ENV: str(number)},
                childFDs=childFDs,
            )
            worker.pid = transport.pid
            self.workers.append((transport, worker))
            log.info(
                "worker {number} started, pid {pid}", number=number, pid=transport.pid
            )

    def stopService(self) -> Deferred[Any]:
        super().stopService()
        from twisted.internet import reactor as _reactor

        reactor: Any = _reactor
        waiting = []
        for transport, worker in self.workers:
            if transport.pid is None:
                continue
            transport.signalProcess("TERM")
            waiting.append(worker.ended)
            kill = reactor.callLater(STOP_TIMEOUT, _kill, transport)
            worker.ended.addBoth(_cancel, kill)
        self.workers = []
        if not waiting:
            return succeed(None)
        return DeferredList(waiting)


def _cancel(result: None, call: Any) -> None:
    if call.active():
        call.cancel()


def _kill(transport: Any) -> None:
    if transport.pid is not None:
        transport.signalProcess("KILL")


def addWorkers(service: IService, options: Any) -> None:
    """
    Add the worker pool to C{service} (the one C{makeService} builds) when
    C{--workers} asks for more than one process.
    """
    count = options.get("workers", 1)
    if count <= 1 or os.environ.get(WORKER_ENV):
        return
    listeners = [
        child
        for child in IServiceCollection(service)
        if hasattr(child, "endpoint") and hasattr(child, "description")
    ]
    WorkerPool(count, options.get("argv", []), listeners).setServiceParent(service)


class _ParentWatch(protocol.Protocol):
    """
    Stop the worker when twistd's process goes away (its stdin closes).
    """

    def connectionLost(self, reason: Failure = protocol.connectionDone) -> None:
        from twisted.internet import reactor as _reactor

        reactor: Any = _reactor
        if reactor.running:
            reactor.stop()


def _standIn(arg: str) -> str:
    if arg.startswith("systemd:"):
        return "tcp:0"
    if arg.startswith("--listen=systemd:"):
        return "--listen=tcp:0"
    return arg


def runWorker(
    number: int,
    families: Sequence[int],
    descriptions: Sequence[str],
    argv: Sequence[str],
) -> None:
    """
    Serve the inherited sockets with the service C{twistd nbecho ARGV}
    would build, logging to the pipe twistd's process reads.
    """
    if not os.environ.get(WORKER_ENV):
        raise SystemExit("nbecho._workers: run by twistd nbecho --workers only")
    logFile = os.fdopen(_LOG_FD, "w", buffering=1, encoding="utf-8")
    globalLogBeginner.beginLoggingTo(
        [jsonFileLogObserver(logFile)], redirectStandardIO=False
    )
    from twisted.internet import reactor as _reactor
    from twisted.internet import stdio

    reactor: Any = _reactor
    standardIO: Any = stdio.StandardIO

    from nbecho import tap

    options = tap.Options()
    # Endpoints are parsed again only to be replaced by the inherited sockets;
    # a systemd: one cannot be (Twisted took systemd's variables away from
    # the environment when twistd parsed it), so parse a stand-in for it.
    options.parseOptions([_standIn(arg) for arg in argv])
    # One metrics listener, twistd's process's: workers would collide on it.
    options["metrics"] = None
    options["endpoints"] = [
        (description, AdoptedStreamServerEndpoint(reactor, _LOG_FD + 1 + i, family))
        for i, (description, family) in enumerate(zip(descriptions, families))
    ]
    service = tap.makeService(options)
    standardIO(_ParentWatch(), stdin=0, stdout=os.open(os.devnull, os.O_WRONLY))
    service.privilegedStartService()
    service.startService()
    reactor.addSystemEventTrigger("before", "shutdown", service.stopService)
    reactor.run()


def main() -> None:
    number = int(sys.argv[1])
    families = [int(f) for f in sys.argv[2].split(",") if f]
    descriptions = json.loads(sys.argv[3])
    argv = sys.argv[sys.argv.index("--") + 1 :]
    runWorker(number, [socket.AddressFamily(f) for f in families], descriptions, argv)


if __name__ == "__main__":
    main()
