"""
C{nbecho-client load}: connect, run the schedule, report.
"""

from __future__ import annotations

import json
import os
import platform
import signal
import sys
from collections.abc import Sequence
from typing import Any, cast

from twisted.internet.defer import Deferred, DeferredList, FirstError, gatherResults
from twisted.internet.interfaces import IReactorCore, IReactorTime
from twisted.internet.protocol import Factory
from twisted.internet.task import react
from twisted.python import usage
from twisted.python.failure import Failure

import twisted
from nbecho import __version__
from nbecho.client._udpoptions import resolve
from nbecho.client.cli import _describe, _fatal, _tlsProblem
from nbecho.client.load.connection import LoadProtocol
from nbecho.client.load.datagram import LoadDatagrams, listenFor
from nbecho.client.load.figures import Figures, MissingLibraryError
from nbecho.client.load.messages import Messages
from nbecho.client.load.options import (
    EXIT_FAILED,
    EXIT_OK,
    EXIT_UNREACHABLE,
    EXIT_USAGE,
    LoadOptions,
)
from nbecho.client.load.report import Progress, shortfallWarning, table
from nbecho.client.load.scheduler import Run
from nbecho.client.stream import overTLS


class _LoadFactory(Factory):
    def __init__(self, clock: IReactorTime, run: Run) -> None:
        self.clock = clock
        self.run = run

    def buildProtocol(self, addr: object) -> LoadProtocol:
        return LoadProtocol(self.clock, self.run)


def buildRun(reactor: IReactorTime, options: LoadOptions, figures: Figures) -> Run:
    """
    The run the options describe.
    """
    messages = Messages(
        options["sizes"],
        "raw" if options["raw"] else "line",
        options["exit-word"],
        (options["seed"] and int(options["seed"])) or 0,
    )
    return Run(
        reactor,
        messages,
        figures,
        rate=options["rate"],
        pipeline=options["pipeline"],
        warmup=options["warmup"],
        duration=options["duration"],
        count=options["count"],
        drain=options["drain"],
    )


async def load(reactor: IReactorCore, options: LoadOptions) -> Figures:
    """
    Open the connections, run the load over them and return the figures.
    """
    figures = Figures()
    run = buildRun(reactor, options, figures)  # type: ignore[arg-type]
    if options.udpAddress is not None:
        host, port = options.udpAddress
        address = await resolve(reactor, host, port)
        udp: list[Any] = [
            LoadDatagrams(reactor, run, options["timeout"])  # type: ignore[arg-type]
            for _ in range(options["connections"])
        ]
        for protocol in udp:
            listenFor(reactor, address, port, protocol)
        return await _measure(reactor, options, run, udp)
    name, endpoint = options.usableEndpoint(reactor)
    factory = _LoadFactory(reactor, run)  # type: ignore[arg-type]
    attempts = [endpoint.connect(factory) for _ in range(options["connections"])]
    results = await DeferredList(attempts, consumeErrors=True)
    connections: list[LoadProtocol] = []
    reasons: list[str] = []
    for ok, value in results:
        if ok:
            assert isinstance(value, LoadProtocol)
            connections.append(value)
        else:
            figures.count("connect")
            problem = cast(Failure, value).value
            assert isinstance(problem, Exception)
            reasons.append(_describe(problem))
    if not connections:
        raise _fatal(EXIT_UNREACHABLE, f"cannot connect to {name}: {reasons[0]}")
    if overTLS(connections[0].transport):
        # The clock starts once every handshake is done, and a server that
        # fails verification is reported as such, not as lost connections.
        try:
            await gatherResults([c.secured for c in connections], consumeErrors=True)
        except FirstError as error:
            for connection in connections:
                connection.transport.abortConnection()  # type: ignore[union-attr]
            problem = error.subFailure.value
            assert isinstance(problem, Exception)
            raise _fatal(
                EXIT_UNREACHABLE, f"cannot connect to {name}: {_tlsProblem(problem)}"
            ) from None
    return await _measure(reactor, options, run, connections)


async def _measure(
    reactor: IReactorCore, options: LoadOptions, run: Run, connections: list[Any]
) -> Figures:
    """
    Run the load over C{connections}, with the progress line on a terminal.
    """
    figures = run.figures
    progress = None
    if not options["no-progress"] and not options["json"] and _terminal():
        progress = Progress(reactor, figures, sys.stderr)  # type: ignore[arg-type]
        progress.start()
    signal.signal(signal.SIGINT, lambda *_: reactor.callFromThread(run.stop))  # type: ignore[attr-defined]
    began, wall = os.times(), reactor.seconds()  # type: ignore[attr-defined]
    try:
        figures = await run.start(connections)
        ended = os.times()
        busy = ended.user - began.user + ended.system - began.system
        elapsed = reactor.seconds() - wall  # type: ignore[attr-defined]
        figures.cpu = busy / elapsed if elapsed > 0 else 0.0
        return figures
    finally:
        if progress is not None:
            progress.stop()


def _terminal() -> bool:
    return sys.stderr.isatty() and sys.stdout.isatty()


def describe(options: LoadOptions) -> dict[str, Any]:
    """
    What was run, for the report: the command line and the versions.
    """
    return {
        "command": ["nbecho-client", "load", *options.argv],
        "versions": {
            "nbecho": __version__,
            "twisted": twisted.__version__,
            "python": f"{platform.python_implementation()} {platform.python_version()}",
        },
        "target": options["connect"] or f"{options['host']}:{options['port']}",
        "connections": options["connections"],
        "processes": options["processes"],
        "size": options["size"],
        "framing": "raw" if options["raw"] else "line",
        "loop": "open" if options["rate"] is not None else "closed",
        "pipeline": options["pipeline"],
        "rate": options["rate"],
        "duration": options["duration"],
        "count": options["count"],
        "warmup": options["warmup"],
    }


def report(options: LoadOptions, figures: Figures) -> int:
    """
    Print the figures and return the exit status.
    """
    if figures.shortfall:
        sys.stderr.write(shortfallWarning(figures) + "\n")
    if options["json"]:
        result = {**describe(options), **figures.toJSON(), "ok": not figures.failures}
        sys.stdout.write(json.dumps(result) + "\n")
    else:
        sys.stdout.write(table(describe(options), figures))
    sys.stdout.flush()
    return EXIT_FAILED if figures.failures else EXIT_OK


def main(argv: Sequence[str]) -> None:
    """
    C{nbecho-client load ...}: C{argv} is what follows C{load}.
    """
    options = LoadOptions()
    options.argv = list(argv)
    try:
        options.parseOptions(argv)
        Figures()
    except usage.UsageError as error:
        raise _fatal(EXIT_USAGE, f"{error} (see: nbecho-client load --help)") from None
    except MissingLibraryError as error:
        raise _fatal(EXIT_USAGE, str(error)) from None
    if options["processes"] > 1:
        from nbecho.client.load.processes import spread

        figures, problems = spread(
            options.argv,
            options["processes"],
            options["connections"],
            options["rate"],
            options["count"],
        )
        for problem in problems:
            sys.stderr.write(problem + "\n")
        if not figures.connections:
            raise SystemExit(EXIT_UNREACHABLE)
        raise SystemExit(report(options, figures))

    async def body(reactor: IReactorCore) -> None:
        figures = await load(reactor, options)
        code = report(options, figures)
        if code:
            raise SystemExit(code)

    react(lambda reactor: Deferred.fromCoroutine(body(reactor)))


if __name__ == "__main__":
    main(sys.argv[1:])
