"""
Tests for L{nbecho._twisted.EchoEPollReactor}: Twisted's epoll reactor with
each descriptor's log context kept instead of rebuilt for every event.

Its promise is to behave exactly as Twisted's C{EPollReactor}, so most
scenarios here run on a new reactor of each class (never the global one,
which trial runs on) and compare what was logged, by system: the
C{logPrefix} of the connection whose event was being dispatched.
Twisted's own reactor test suites run against it in
L{nbecho.test.test_reactor_twisted}.
"""

from __future__ import annotations

import errno
import gc
import os
import re
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, Optional

from twisted.internet.abstract import FileDescriptor
from twisted.internet.error import ConnectionDone
from twisted.internet.protocol import (
    ClientFactory,
    Protocol,
    ServerFactory,
    connectionDone,
)
from twisted.logger import ILogObserver, LogEvent, formatEvent, globalLogPublisher
from twisted.python import context, log
from twisted.python.failure import Failure
from twisted.trial.unittest import SkipTest, SynchronousTestCase
from zope.interface import implementer

from nbecho import _twisted

if sys.platform == "linux":
    from select import EPOLLIN

    from twisted.internet.epollreactor import EPollReactor

    from nbecho._twisted import EchoEPollReactor

#: The class twistd's log names when nbecho installs its reactor.
ECHO = _twisted.ECHO_REACTOR

#: How long anything expected to happen soon may take on a loaded machine.
TIMEOUT = 10.0

#: What C{callWithLogger} logs as the system when C{logPrefix} raises.
BUGGY = "(buggy logPrefix method)"

#: What is logged as the system outside any I/O event.
NO_SYSTEM = "-"


def buildReactor(case: SynchronousTestCase, reactorClass: Any) -> Any:
    """
    A new reactor of C{reactorClass} (not installed), torn down when C{case}
    ends as Twisted's C{ReactorBuilder} tears its reactors down, and its
    epoll descriptor closed.
    """
    reactor = reactorClass()
    case.addCleanup(unbuildReactor, reactor)
    return reactor


def unbuildReactor(reactor: Any) -> None:
    """
    Close C{reactor}'s waker, connections and ports, cancel its timed calls
    and close its poller (C{ReactorBuilder._unbuildReactor} and more).
    """
    try:
        for reader in list(reactor._internalReaders):
            reactor.removeReader(reader)
            reader.connectionLost(None)
        reactor._internalReaders.clear()
        reactor.disconnectAll()
        for call in reactor.getDelayedCalls():
            call.cancel()
    finally:
        reactor._poller.close()


def logContexts() -> list[Any]:
    """
    This thread's stack of log contexts (C{twisted.python.context}).
    """
    contexts: list[Any] = context.theContextTracker.currentContext().contexts
    return contexts


def spin(
    case: SynchronousTestCase,
    reactor: Any,
    until: Callable[[], bool],
    what: str,
) -> None:
    """
    Iterate C{reactor} (C{runUntilCurrent}, C{doIteration}) until C{until()}
    holds, failing C{case} after L{TIMEOUT} seconds, or as soon as an
    iteration leaves the stack of log contexts deeper or shallower.
    """
    stack = logContexts()
    depth = len(stack)
    deadline = time.monotonic() + TIMEOUT
    while not until():
        if time.monotonic() > deadline:
            case.fail(f"timed out waiting for {what}")
        reactor.runUntilCurrent()
        reactor.doIteration(0.01)
        case.assertEqual(len(stack), depth, "an iteration left a log context pushed")


def summary(event: LogEvent) -> str:
    """
    C{event} as the comparisons see it: its text (numbers and addresses
    masked, as ports and object ids differ from run to run), the class of
    its failure for an error, and the C{tag} of its log context if any.
    """
    failure = event.get("log_failure", event.get("failure"))
    if failure is not None:
        text = f"error: {failure.type.__name__}"
    else:
        text = re.sub(r"0x[0-9a-fA-F]+|\d+", "N", formatEvent(event))
    if "tag" in event:
        text += f" [{event['tag']}]"
    return text


@contextmanager
def recording() -> Iterator[dict[str, list[str]]]:
    """
    Record every event logged inside the block, by system (C{log_system},
    as C{log.msg} and C{log.err} fill it in), in order.
    """
    observer = _Recorder()
    globalLogPublisher.addObserver(observer)
    try:
        yield observer.logged
    finally:
        globalLogPublisher.removeObserver(observer)


@implementer(ILogObserver)
class _Recorder:
    """
    Keep the L{summary} of each event, by system.
    """

    def __init__(self) -> None:
        self.logged: dict[str, list[str]] = {}

    def __call__(self, event: LogEvent) -> None:
        system = event.get("log_system", NO_SYSTEM)
        self.logged.setdefault(system, []).append(summary(event))


class Selectable(FileDescriptor):
    """
    One end of a pipe as a reactor reader or writer, whose C{logPrefix}, and
    what its C{doRead}, C{doWrite} and C{connectionLost} do, the test sets.

    @ivar prefix: what C{logPrefix} returns, or raises if an exception.
    @ivar onRead: called with the bytes each C{doRead} reads.
    @ivar onWrite: called by each C{doWrite}.
    @ivar onLost: called with the reason by C{connectionLost}.
    @ivar result: what C{doRead} and C{doWrite} return (a reason to
        disconnect, or L{None}).
    """

    def __init__(self, reactor: Any, fd: int, prefix: str | BaseException) -> None:
        super().__init__(reactor)
        self.fd = fd
        self.prefix = prefix
        self.onRead: Callable[[bytes], object] = lambda data: None
        self.onWrite: Callable[[], object] = lambda: None
        self.onLost: Callable[[Failure], object] = lambda reason: None
        self.result: Optional[Exception] = None
        self.reads: list[bytes] = []
        self.writes = 0
        self.lost: list[Failure] = []

    def fileno(self) -> int:
        return self.fd

    def logPrefix(self) -> str:
        if isinstance(self.prefix, BaseException):
            raise self.prefix
        return self.prefix

    def doRead(self) -> Optional[Exception]:
        data = os.read(self.fd, 4096)
        self.reads.append(data)
        self.onRead(data)
        return self.result

    def doWrite(self) -> Optional[Exception]:
        self.writes += 1
        self.onWrite()
        return self.result

    def connectionLost(self, reason: Failure) -> None:
        self.lost.append(reason)
        self.onLost(reason)


class Pipe:
    """
    A pipe whose read end is a L{Selectable} reading on a reactor.
    """

    def __init__(self, case: SynchronousTestCase, reactor: Any, prefix: str) -> None:
        readFd, self.writeFd = os.pipe()
        self.reader = Selectable(reactor, readFd, prefix)
        self.reactor = reactor
        reactor.addReader(self.reader)
        case.addCleanup(self.close)

    def send(self, data: bytes) -> None:
        """
        Make the read end readable with C{data}.
        """
        os.write(self.writeFd, data)

    def close(self) -> None:
        """
        Take the reader off the reactor, quietly, and close both ends.
        """
        self.reactor.removeReader(self.reader)
        os.close(self.reader.fd)
        os.close(self.writeFd)


class Server(Protocol):
    """
    Log each read with C{log.msg} and echo it; raise for C{raise}; log the
    reason the connection was lost.
    """

    fd = -1

    def connectionMade(self) -> None:
        self.fd = self.transport.fileno()  # type: ignore[union-attr]

    def dataReceived(self, data: bytes) -> None:
        log.msg(f"server read {data!r}")
        if data == b"raise":
            raise ZeroDivisionError("the server's dataReceived raised")
        self.transport.write(data)  # type: ignore[union-attr]

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        log.msg(f"server lost: {reason.type.__name__}")  # type: ignore[union-attr]
        self.factory.lost.append(self)


class Client(Protocol):
    """
    Send C{factory.message}, log the answer with C{log.msg} and close.
    """

    fd = -1

    def connectionMade(self) -> None:
        self.fd = self.transport.fileno()  # type: ignore[union-attr]
        self.transport.write(self.factory.message)  # type: ignore[union-attr]

    def dataReceived(self, data: bytes) -> None:
        log.msg(f"client read {data!r}")
        self.transport.loseConnection()  # type: ignore[union-attr]

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        log.msg(f"client lost: {reason.type.__name__}")  # type: ignore[union-attr]
        self.factory.lost.append(self)


class Servers(ServerFactory):
    """
    Makes L{Server}s and keeps each once its connection is lost.
    """

    protocol = Server
    noisy = False

    def __init__(self) -> None:
        self.lost: list[Server] = []


class Clients(ClientFactory):
    """
    Makes L{Client}s sending C{message} and keeps each once its connection
    is lost.
    """

    protocol = Client
    noisy = False

    def __init__(self, message: bytes) -> None:
        self.message = message
        self.lost: list[Client] = []


def listen(reactor: Any) -> Any:
    """
    A L{Servers} factory listening on 127.0.0.1, a free port, on C{reactor}.
    """
    return reactor.listenTCP(0, Servers(), interface="127.0.0.1")


def talk(
    case: SynchronousTestCase, reactor: Any, port: Any, message: bytes
) -> tuple[Server, Client]:
    """
    Connect a L{Client} sending C{message} to C{port} and iterate until
    both ends of the connection are gone.
    """
    servers: Servers = port.factory
    served = len(servers.lost)
    clients = Clients(message)
    reactor.connectTCP("127.0.0.1", port.getHost().port, clients)
    spin(
        case,
        reactor,
        lambda: len(servers.lost) > served and bool(clients.lost),
        f"both ends of the connection sending {message!r} to close",
    )
    (client,) = clients.lost
    return servers.lost[-1], client


class ReactorTestCase(SynchronousTestCase):
    """
    Runs only where epoll exists; runs scenarios on both reactors.
    """

    def setUp(self) -> None:
        if sys.platform != "linux":
            raise SkipTest("epoll, and so EchoEPollReactor, is Linux only")

    def onBoth(self, scenario: Callable[[Any], object]) -> dict[str, list[str]]:
        """
        Run C{scenario} on a new L{EchoEPollReactor}, then on a new Twisted
        C{EPollReactor}; check that both logged the same, by system, and
        return what was logged.
        """
        logged = []
        for reactorClass in (EchoEPollReactor, EPollReactor):
            reactor = buildReactor(self, reactorClass)
            with recording() as events:
                scenario(reactor)
                log.msg("after the scenario")
            logged.append(events)
        echo, twisted = logged
        self.assertEqual(echo, twisted, "EchoEPollReactor logs unlike EPollReactor")
        self.assertEqual(echo.get(NO_SYSTEM, [])[-1:], ["after the scenario"])
        return echo

    def pipe(self, reactor: Any, prefix: str = "pipe") -> Pipe:
        """
        A L{Pipe} reading on C{reactor} with C{prefix}, closed at the end.
        """
        return Pipe(self, reactor, prefix)

    def deliver(self, reactor: Any, pipe: Pipe, data: bytes) -> None:
        """
        Send C{data} through C{pipe} and iterate until it has been read.
        """
        reads = len(pipe.reader.reads)
        pipe.send(data)
        spin(self, reactor, lambda: len(pipe.reader.reads) > reads, f"{data!r} read")


class SystemTests(ReactorTestCase):
    """
    Legacy log lines and errors logged during an I/O event name the
    selectable's C{logPrefix} as their system, as Twisted's reactor logs.
    """

    def test_tcpDataReceived(self) -> None:
        """
        A C{log.msg} from C{dataReceived} or C{connectionLost} of either end
        of a TCP connection carries that end's prefix, and a line logged
        after the iterations none.
        """
        logged = self.onBoth(
            lambda reactor: talk(self, reactor, listen(reactor), b"hello")
        )
        self.assertEqual(
            logged["Server,0,127.0.0.1"],
            ["server read b'hello'", "server lost: ConnectionDone"],
        )
        self.assertEqual(
            logged["Client,client"],
            ["client read b'hello'", "client lost: ConnectionDone"],
        )

    def test_tcpDataReceivedRaises(self) -> None:
        """
        An exception from C{dataReceived} is logged with the connection's
        prefix, and the connection is lost with it as the reason.
        """
        logged = self.onBoth(
            lambda reactor: talk(self, reactor, listen(reactor), b"raise")
        )
        self.assertEqual(
            logged["Server,0,127.0.0.1"],
            [
                "server read b'raise'",
                "error: ZeroDivisionError",
                "server lost: ZeroDivisionError",
            ],
        )
        self.assertEqual(logged["Client,client"], ["client lost: ConnectionDone"])
        self.assertEqual(len(self.flushLoggedErrors(ZeroDivisionError)), 2)

    def test_doWriteRaises(self) -> None:
        """
        An exception from a writer's C{doWrite} is logged with its prefix
        and the writer is disconnected with it as the reason.
        """
        lost: list[list[Failure]] = []

        def scenario(reactor: Any) -> None:
            pipe = self.pipe(reactor)
            writer = Selectable(reactor, pipe.writeFd, "writer")
            writer.onWrite = lambda: 1 / 0
            reactor.addWriter(writer)
            self.addCleanup(reactor.removeWriter, writer)
            spin(self, reactor, lambda: bool(writer.lost), "the writer lost")
            lost.append(writer.lost)

        logged = self.onBoth(scenario)
        self.assertEqual(logged["writer"], ["error: ZeroDivisionError"])
        self.assertEqual(
            [[reason.type for reason in reasons] for reasons in lost],
            [[ZeroDivisionError]] * 2,
        )
        self.assertEqual(len(self.flushLoggedErrors(ZeroDivisionError)), 2)

    def test_connectionLostRaises(self) -> None:
        """
        An exception escaping the reactor's own handling of an event (here
        from C{connectionLost}, after C{doRead} said the connection is
        done) is logged with the prefix, and the other events of the same
        poll are still dispatched, each under its own prefix.
        """

        def scenario(reactor: Any) -> None:
            closing = self.pipe(reactor, "closing")
            closing.reader.result = ConnectionDone()
            closing.reader.onLost = lambda reason: int("not a number")
            other = self.pipe(reactor, "other")
            other.reader.onRead = lambda data: log.msg(f"read {data!r}")
            closing.send(b"x")
            other.send(b"y")
            spin(
                self,
                reactor,
                lambda: bool(closing.reader.lost and other.reader.reads),
                "both pipes read",
            )

        logged = self.onBoth(scenario)
        self.assertEqual(logged["closing"], ["error: ValueError"])
        self.assertEqual(logged["other"], ["read b'y'"])
        self.assertEqual(len(self.flushLoggedErrors(ValueError)), 2)

    def test_buggyLogPrefix(self) -> None:
        """
        A C{logPrefix} that raises is logged as C{callWithLogger} logs it,
        the event is then dispatched under C{(buggy logPrefix method)}, and
        once C{logPrefix} answers again its answer is the system.
        """

        def scenario(reactor: Any) -> None:
            pipe = self.pipe(reactor)
            pipe.reader.onRead = lambda data: log.msg(f"read {data!r}")
            pipe.reader.prefix = LookupError("no prefix")
            self.deliver(reactor, pipe, b"a")
            pipe.reader.prefix = "mended"
            self.deliver(reactor, pipe, b"b")

        logged = self.onBoth(scenario)
        self.assertEqual(logged[BUGGY], ["error: LookupError", "read b'a'"])
        self.assertEqual(logged["mended"], ["read b'b'"])
        self.assertEqual(len(self.flushLoggedErrors(LookupError)), 2)

    def test_descriptorReused(self) -> None:
        """
        A new connection on the descriptor number of a closed one is logged
        under its own prefix, not the closed connection's.
        """
        descriptors: list[tuple[int, int]] = []

        def scenario(reactor: Any) -> None:
            # No socket an earlier test left to the garbage collector may be
            # closed in between, freeing a lower number for the second.
            gc.collect()
            gc.collect()
            wasEnabled = gc.isenabled()
            gc.disable()
            try:
                port = listen(reactor)
                first, _ = talk(self, reactor, port, b"one")
                second, _ = talk(self, reactor, port, b"two")
            finally:
                if wasEnabled:
                    gc.enable()
            descriptors.append((first.fd, second.fd))

        logged = self.onBoth(scenario)
        for first, second in descriptors:
            self.assertEqual(first, second, "the kernel did not reuse the number")
        self.assertEqual(
            logged["Server,0,127.0.0.1"],
            ["server read b'one'", "server lost: ConnectionDone"],
        )
        self.assertEqual(
            logged["Server,1,127.0.0.1"],
            ["server read b'two'", "server lost: ConnectionDone"],
        )
        self.assertEqual(
            logged["Client,client"],
            [
                "client read b'one'",
                "client lost: ConnectionDone",
                "client read b'two'",
                "client lost: ConnectionDone",
            ],
        )

    def test_enclosingContext(self) -> None:
        """
        The log context the reactor is iterated in shows in what an event
        logs (with the prefix as system), and a change of it, through
        C{log.callWithContext} or C{context.call}, shows at once.
        """

        def scenario(reactor: Any) -> None:
            pipe = self.pipe(reactor)
            pipe.reader.onRead = lambda data: log.msg(f"read {data!r}")
            self.deliver(reactor, pipe, b"a")
            log.callWithContext({"tag": "first"}, self.deliver, reactor, pipe, b"b")
            log.callWithContext({"tag": "first"}, self.deliver, reactor, pipe, b"c")
            log.callWithContext({"tag": "second"}, self.deliver, reactor, pipe, b"d")
            logContext = {"system": "outer", "tag": "third"}
            context.call(
                {log.ILogContext: logContext}, self.deliver, reactor, pipe, b"e"
            )
            self.deliver(reactor, pipe, b"f")

        logged = self.onBoth(scenario)
        self.assertEqual(
            logged["pipe"],
            [
                "read b'a'",
                "read b'b' [first]",
                "read b'c' [first]",
                "read b'd' [second]",
                "read b'e' [third]",
                "read b'f'",
            ],
        )

    def test_contextKept(self) -> None:
        """
        The log context of a descriptor's event is built once and pushed
        again for its next events (the point of EchoEPollReactor), and
        built anew when the prefix changes.
        """
        reactor = buildReactor(self, EchoEPollReactor)
        pipe = self.pipe(reactor)
        seen: list[Any] = []
        pipe.reader.onRead = lambda data: seen.append(context.get(log.ILogContext))
        for data in (b"a", b"b"):
            self.deliver(reactor, pipe, data)
        pipe.reader.prefix = "renamed"
        self.deliver(reactor, pipe, b"c")
        self.assertIs(seen[0], seen[1])
        self.assertEqual(
            [logContext["system"] for logContext in seen],
            ["pipe", "pipe", "renamed"],
        )


class InterruptTests(ReactorTestCase):
    """
    C{KeyboardInterrupt} goes through the reactor, as through
    C{callWithLogger}, and leaves the log contexts as they were.
    """

    def assertInterrupts(self, setUp: Callable[[Pipe], object]) -> None:
        """
        On each reactor, a pipe event whose handling C{setUp} makes raise
        C{KeyboardInterrupt} makes C{doIteration} raise it, having logged
        nothing and left the stack of log contexts as it was.
        """
        for reactorClass in (EchoEPollReactor, EPollReactor):
            reactor = buildReactor(self, reactorClass)
            pipe = self.pipe(reactor)
            setUp(pipe)
            pipe.send(b"x")
            depth = len(logContexts())
            with recording() as logged:
                self.assertRaises(KeyboardInterrupt, reactor.doIteration, TIMEOUT)
            self.assertEqual(logged, {}, reactorClass)
            self.assertEqual(len(logContexts()), depth, reactorClass)

    def test_logPrefix(self) -> None:
        """
        C{KeyboardInterrupt} from C{logPrefix} propagates before the event
        is dispatched.
        """

        def setUp(pipe: Pipe) -> None:
            pipe.reader.prefix = KeyboardInterrupt()

        self.assertInterrupts(setUp)

    def test_dispatch(self) -> None:
        """
        C{KeyboardInterrupt} from the handling of an event (C{connectionLost}
        after C{doRead} said the connection is done) propagates.
        """

        def setUp(pipe: Pipe) -> None:
            pipe.reader.result = ConnectionDone()

            def interrupt(reason: Failure) -> None:
                raise KeyboardInterrupt()

            pipe.reader.onLost = interrupt

        self.assertInterrupts(setUp)


class FakePoller:
    """
    Stands in for a reactor's C{epoll} object: records each C{poll} and
    answers with C{events}, or raises C{error}.
    """

    def __init__(self, real: Any) -> None:
        self.real = real
        self.calls: list[tuple[float, int]] = []
        self.events: list[tuple[int, int]] = []
        self.error: Optional[OSError] = None

    def poll(self, timeout: float = -1, maxevents: int = -1) -> list[tuple[int, int]]:
        self.calls.append((timeout, maxevents))
        if self.error is not None:
            raise self.error
        return self.events

    def __getattr__(self, name: str) -> Any:
        return getattr(self.real, name)


class PollTests(ReactorTestCase):
    """
    C{doPoll} and C{doIteration} wait, and fail, as Twisted's do.
    """

    def fakePoller(self, reactor: Any) -> FakePoller:
        """
        Give C{reactor} a L{FakePoller}, until the test ends.
        """
        real = reactor._poller
        fake = FakePoller(real)
        reactor._poller = fake
        self.addCleanup(setattr, reactor, "_poller", real)
        return fake

    def test_timeouts(self) -> None:
        """
        No timeout waits indefinitely (-1); a timeout is passed on in
        seconds, and at most as many events are asked for as there are
        selectables.
        """
        calls = []
        for reactorClass in (EchoEPollReactor, EPollReactor):
            reactor = buildReactor(self, reactorClass)
            self.pipe(reactor)
            poller = self.fakePoller(reactor)
            reactor.doPoll(None)
            reactor.doPoll(0)
            reactor.doPoll(0.25)
            reactor.doIteration(None)
            reactor.doIteration(1.5)
            calls.append(poller.calls)
        selectables = 2  # the waker and the pipe
        self.assertEqual(
            calls[0],
            [
                (-1, selectables),
                (0, selectables),
                (0.25, selectables),
                (-1, selectables),
                (1.5, selectables),
            ],
        )
        self.assertEqual(calls[0], calls[1])

    def test_interrupted(self) -> None:
        """
        A poll interrupted by a signal (C{EINTR}) returns quietly; the next
        poll polls again.
        """

        def scenario(reactor: Any) -> None:
            poller = self.fakePoller(reactor)
            poller.error = OSError(errno.EINTR, os.strerror(errno.EINTR))
            self.assertIsNone(reactor.doPoll(1))
            self.assertIsNone(reactor.doIteration(1))
            self.assertEqual(len(poller.calls), 2)

        self.assertEqual(self.onBoth(scenario), {NO_SYSTEM: ["after the scenario"]})

    def test_fails(self) -> None:
        """
        Any other error of the poll propagates.
        """
        for reactorClass in (EchoEPollReactor, EPollReactor):
            reactor = buildReactor(self, reactorClass)
            poller = self.fakePoller(reactor)
            poller.error = OSError(errno.EBADF, os.strerror(errno.EBADF))
            error = self.assertRaises(OSError, reactor.doPoll, 1)
            self.assertEqual(error.errno, errno.EBADF, reactorClass)

    def test_unknownDescriptor(self) -> None:
        """
        An event for a descriptor the reactor no longer watches is skipped
        quietly; the others of the poll are dispatched.
        """

        def scenario(reactor: Any) -> None:
            pipe = self.pipe(reactor)
            pipe.reader.onRead = lambda data: log.msg(f"read {data!r}")
            pipe.send(b"x")
            poller = self.fakePoller(reactor)
            unknown = max(reactor._selectables) + 100
            poller.events = [(unknown, EPOLLIN), (pipe.reader.fd, EPOLLIN)]
            reactor.doPoll(0)

        logged = self.onBoth(scenario)
        self.assertEqual(logged["pipe"], ["read b'x'"])

    def test_noEvents(self) -> None:
        """
        A poll that times out with no event dispatches nothing.
        """
        logged = self.onBoth(lambda reactor: reactor.doPoll(0))
        self.assertEqual(logged, {NO_SYSTEM: ["after the scenario"]})


def runPython(code: str) -> str:
    """
    Run C{code} in a new Python process (this interpreter, this
    environment) and return its standard output.
    """
    result = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    if result.returncode != 0:
        raise AssertionError(f"{code}\nexited {result.returncode}:\n{result.stderr}")
    return result.stdout.strip()


class InstallTests(ReactorTestCase):
    """
    L{_twisted.installEchoReactor} installs L{EchoEPollReactor} only where
    no reactor is installed yet, on Linux.
    """

    def test_reactorInstalled(self) -> None:
        """
        With a reactor installed already (trial's), it installs nothing and
        leaves that reactor alone.
        """
        from twisted.internet import reactor

        installed = sys.modules["twisted.internet.reactor"]
        reactorClass = type(reactor)
        self.assertFalse(_twisted.installEchoReactor())
        self.assertIs(sys.modules["twisted.internet.reactor"], installed)
        self.assertIs(type(reactor), reactorClass)

    def test_installs(self) -> None:
        """
        In a new process, after importing what calls it (nbecho.tap and the
        worker), it installs an L{EchoEPollReactor} as
        C{twisted.internet.reactor}, once.
        """
        output = runPython(
            "import sys, nbecho.tap, nbecho.deploy.worker\n"
            "from nbecho._twisted import installEchoReactor\n"
            "print('twisted.internet.reactor' in sys.modules)\n"
            "print(installEchoReactor(), installEchoReactor())\n"
            "from twisted.internet import reactor\n"
            "print(type(reactor).__module__ + '.' + type(reactor).__qualname__)\n"
        )
        self.assertEqual(output.splitlines(), ["False", "True False", ECHO])

    def test_notLinux(self) -> None:
        """
        Elsewhere than on Linux it installs nothing.
        """
        output = runPython(
            "import sys\n"
            "from nbecho._twisted import installEchoReactor\n"
            "sys.platform = 'freebsd14'\n"
            "print(installEchoReactor(), 'twisted.internet.reactor' in sys.modules)\n"
        )
        self.assertEqual(output, "False False")
