"""
A worker process of C{--workers N}: the echo server on sockets inherited
from twisted's process, with its log and totals sent back there.

Started by L{nbecho.deploy.workers.WorkerPool} as C{python -m
nbecho.deploy.worker NUMBER CONFIG}, where CONFIG is JSON: the server's
settings and, for each inherited socket (file descriptors from 4 on), its
listener's description and address family.
"""

from __future__ import annotations

import json
import os
import socket
import sys
from collections.abc import Sequence
from typing import Any

import attrs
from twisted.internet import protocol
from twisted.internet.endpoints import AdoptedStreamServerEndpoint
from twisted.internet.main import installReactor
from twisted.logger import globalLogBeginner, jsonFileLogObserver
from twisted.python.failure import Failure
from twisted.python.reflect import namedAny

from nbecho._twisted import ECHO_REACTOR, installEchoReactor
from nbecho.server.service import ServerService, buildServer
from nbecho.settings import EchoSettings

#: The worker's file descriptor for its log pipe; listening sockets follow.
LOG_FD = 3

#: What twistd's process writes to a worker's stdin to ask for its totals
#: (followed by the request's number), the key of the worker's answer on
#: its log pipe, and the key under which the answer repeats the number.
STATS_REQUEST = b"stats"
STATS_KEY = "nbecho_worker_stats"
REQUEST_KEY = "nbecho_request"

#: The longest request line a worker keeps while waiting for its end.
MAX_REQUEST = 64


def statsRequest(number: int) -> bytes:
    """
    The line that asks a worker for its totals, as request C{number}.
    """
    return b"%s %d\n" % (STATS_REQUEST, number)


def settingsToJSON(settings: EchoSettings) -> str:
    """
    C{settings} as JSON (the exit word, any bytes, as hex).
    """
    fields = attrs.asdict(settings)
    fields["exitWord"] = settings.exitWord.hex()
    return json.dumps(fields)


def settingsFromJSON(text: str) -> EchoSettings:
    """
    The settings L{settingsToJSON} wrote.
    """
    fields = json.loads(text)
    fields["exitWord"] = bytes.fromhex(fields["exitWord"])
    return EchoSettings(**fields)


class _Parent(protocol.Protocol):
    """
    twistd's process on the worker's standard input: a request for totals,
    or the end of input when twistd's process goes away.
    """

    def __init__(self, server: ServerService, logFile: Any) -> None:
        self.server = server
        self.logFile = logFile
        self._partial = b""

    def dataReceived(self, data: bytes) -> None:
        lines = (self._partial + data).split(b"\n")
        self._partial = lines.pop()[:MAX_REQUEST]
        for line in lines:
            words = line.split()
            if len(words) == 2 and words[0] == STATS_REQUEST and words[1].isdigit():
                self.sendStats(int(words[1]))

    def sendStats(self, request: int | None = None) -> None:
        """
        Write the totals on the log pipe, answering C{request} (C{None}:
        the last totals, as the worker stops).
        """
        answer: dict[str, Any] = {STATS_KEY: self.server.factory.stats.toJSON()}
        if request is not None:
            answer[REQUEST_KEY] = request
        self.logFile.write(json.dumps(answer) + "\n")

    def connectionLost(self, reason: Failure = protocol.connectionDone) -> None:
        from twisted.internet import reactor as _reactor

        reactor: Any = _reactor
        if reactor.running:
            reactor.stop()


def installReactorNamed(name: str | None) -> None:
    """
    Install the reactor class C{name} (twistd's process's, a fully
    qualified name), or nbecho's when C{name} is that or L{None}; a class
    that cannot be imported or built leaves the choice to Twisted.
    """
    if name is None or name == ECHO_REACTOR:
        installEchoReactor()
        return
    try:
        chosen = namedAny(name)()
    except (ImportError, AttributeError, TypeError, ValueError, OSError):
        return
    installReactor(chosen)


def runWorker(number: int, config: dict[str, Any]) -> None:
    """
    Serve the inherited sockets with the server L{buildServer} makes from
    C{config}'s settings, logging to the pipe twistd's process reads.
    """
    logFile = os.fdopen(LOG_FD, "w", buffering=1, encoding="utf-8")
    globalLogBeginner.beginLoggingTo(
        [jsonFileLogObserver(logFile)], redirectStandardIO=False
    )
    installReactorNamed(config.get("reactor"))
    from twisted.internet import reactor as _reactor
    from twisted.internet import stdio

    reactor: Any = _reactor
    settings = settingsFromJSON(config["settings"])
    endpoints = [
        (
            description,
            AdoptedStreamServerEndpoint(
                reactor, LOG_FD + 1 + i, socket.AddressFamily(family)
            ),
        )
        for i, (description, family) in enumerate(config["listeners"])
    ]
    server = buildServer(settings, endpoints)
    server.handleSignals = True
    server.isWorker = True
    parent = _Parent(server, logFile)
    standardIO: Any = stdio.StandardIO
    standardIO(parent, stdin=0, stdout=os.open(os.devnull, os.O_WRONLY))
    server.privilegedStartService()
    server.startService()
    reactor.addSystemEventTrigger("before", "shutdown", server.stopService)
    # The last totals, once every connection is closed: the shutdown line
    # of twistd's process counts them.
    reactor.addSystemEventTrigger("after", "shutdown", parent.sendStats)
    reactor.run()


def main(argv: Sequence[str] | None = None) -> None:
    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) != 2 or not args[0].isdigit():
        raise SystemExit("nbecho.deploy.worker: run by twistd nbecho --workers only")
    runWorker(int(args[0]), json.loads(args[1]))


if __name__ == "__main__":
    main()
