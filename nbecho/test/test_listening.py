"""
Tests for L{nbecho.server.listening}: listening on one endpoint as a service, with
its C{Ready?} line, and failing to listen in one line.
"""

from __future__ import annotations

import errno
import os
import socket
import tempfile

from twisted.application.service import MultiService
from twisted.internet import reactor
from twisted.internet.address import IPv4Address
from twisted.internet.defer import Deferred, fail, succeed
from twisted.internet.endpoints import serverFromString
from twisted.internet.error import CannotListenError
from twisted.internet.interfaces import (
    IListeningPort,
    IProtocolFactory,
    IStreamServerEndpoint,
)
from twisted.internet.task import Clock
from twisted.internet.testing import RaisingMemoryReactor
from twisted.python.filepath import FilePath
from twisted.trial.unittest import SkipTest, SynchronousTestCase, TestCase
from zope.interface import implementer

from nbecho.server.factory import EchoFactory
from nbecho.server.listening import ListenFailed, ListeningService, listenBeforeStart
from nbecho.tap import Options
from nbecho.test._helpers import captureLogs, logLines, portOf


def echoFactory() -> EchoFactory:
    """
    A factory whose connections time out on a clock of their own.
    """
    return EchoFactory(clock=Clock())


@implementer(IListeningPort)
class FakePort:
    """
    A listening port that only remembers whether it still listens.
    """

    listening = True

    def startListening(self) -> None:
        self.listening = True

    def stopListening(self) -> Deferred[None]:
        self.listening = False
        return succeed(None)

    def getHost(self) -> IPv4Address:
        return IPv4Address("TCP", "127.0.0.1", 4321)


@implementer(IStreamServerEndpoint)
class FakeEndpoint:
    """
    An endpoint whose C{listen} gives the result the test chose.
    """

    def __init__(self, result: Deferred[IListeningPort]) -> None:
        self.result = result
        self.factories: list[IProtocolFactory] = []

    def listen(self, factory: IProtocolFactory) -> Deferred[IListeningPort]:
        self.factories.append(factory)
        return self.result


class ListeningServiceTests(SynchronousTestCase):
    """
    L{ListeningService} with endpoints that listen, fail or never answer.
    """

    def test_listens(self) -> None:
        """
        Starting listens with the factory and logs C{Ready?} with the address
        and the description; stopping stops listening.
        """
        events = captureLogs(self)
        port = FakePort()
        endpoint = FakeEndpoint(succeed(port))
        factory = echoFactory()
        service = ListeningService("tcp:4321", endpoint, factory)
        service.privilegedStartService()
        service.startService()
        self.assertEqual(endpoint.factories, [factory])
        self.assertIs(service.port, port)
        self.assertEqual(
            logLines(events), ["Ready? nbecho listening on 127.0.0.1:4321 (tcp:4321)"]
        )
        self.successResultOf(service.stopService())
        self.assertFalse(port.listening)
        self.assertFalse(service.running)

    def test_startWithoutPrivileged(self) -> None:
        """
        A plain C{startService} (no privileged start first) listens too.
        """
        endpoint = FakeEndpoint(succeed(FakePort()))
        service = ListeningService("tcp:4321", endpoint, echoFactory())
        service.startService()
        self.assertEqual(len(endpoint.factories), 1)

    def test_listenFails(self) -> None:
        """
        A port in use raises L{ListenFailed}, a L{SystemExit} whose one line
        says so in words, naming the port and the interface.
        """
        error = CannotListenError(
            "127.0.0.1", 9999, OSError(errno.EADDRINUSE, "Address already in use")
        )
        endpoint = serverFromString(
            RaisingMemoryReactor(listenException=error), "tcp:9999:interface=127.0.0.1"
        )
        service = ListeningService(
            "tcp:9999:interface=127.0.0.1", endpoint, echoFactory()
        )
        failed = self.assertRaises(ListenFailed, service.privilegedStartService)
        self.assertIsInstance(failed, SystemExit)
        self.assertEqual(
            str(failed), "nbecho: port 9999 is already in use on 127.0.0.1"
        )
        self.assertIsNone(service.port)
        self.successResultOf(service.stopService())

    def test_listenFailsLater(self) -> None:
        """
        An endpoint whose listen fails after start-up gets a critical log line
        naming it and the reason, rather than a silently idle server.
        """
        events = captureLogs(self)
        pending: Deferred[IListeningPort] = Deferred()
        service = ListeningService("slow:", FakeEndpoint(pending), echoFactory())
        service.privilegedStartService()
        pending.errback(OSError("no such device"))
        self.assertEqual(
            logLines(events), ["nbecho: cannot listen on slow:: no such device"]
        )
        self.assertEqual(events[0]["log_level"].name, "critical")
        self.assertIsNone(service.port)

    def test_stopWhilePending(self) -> None:
        """
        Stopping before a slow endpoint has answered cancels the listen.
        """
        cancelled: list[Deferred[IListeningPort]] = []
        pending: Deferred[IListeningPort] = Deferred(cancelled.append)
        service = ListeningService("slow:", FakeEndpoint(pending), echoFactory())
        service.startService()
        events = captureLogs(self)
        self.successResultOf(service.stopService())
        self.assertEqual(cancelled, [pending])
        self.assertIsNone(service.port)
        self.assertEqual(logLines(events), [])


class ListenNowTests(SynchronousTestCase):
    """
    L{ListeningService.listenNow} and L{listenBeforeStart}: listening before
    the service starts, as C{makeService} does before twistd forks.
    """

    def test_listensEarlyReadyOnStart(self) -> None:
        """
        C{listenNow} listens once, without a C{Ready?} line; starting the
        service logs it and listens no more.
        """
        events = captureLogs(self)
        port = FakePort()
        endpoint = FakeEndpoint(succeed(port))
        service = ListeningService("tcp:4321", endpoint, echoFactory())
        service.listenNow()
        service.listenNow()
        self.assertEqual(len(endpoint.factories), 1)
        self.assertIsNone(service.port)
        self.assertEqual(logLines(events), [])
        service.privilegedStartService()
        service.startService()
        self.assertEqual(len(endpoint.factories), 1)
        self.assertIs(service.port, port)
        self.assertEqual(
            logLines(events), ["Ready? nbecho listening on 127.0.0.1:4321 (tcp:4321)"]
        )

    def test_failsAtOnce(self) -> None:
        """
        C{listenNow} raises L{ListenFailed} itself, in words.
        """
        endpoint = FakeEndpoint(fail(OSError(errno.EACCES, "Permission denied")))
        service = ListeningService("tcp:80", endpoint, echoFactory())
        failed = self.assertRaises(ListenFailed, service.listenNow)
        self.assertEqual(
            str(failed), "nbecho: cannot listen on tcp:80: Permission denied"
        )

    def test_stopBeforeStart(self) -> None:
        """
        A service that listened early but never started stops listening when
        stopped.
        """
        port = FakePort()
        service = ListeningService(
            "tcp:4321", FakeEndpoint(succeed(port)), echoFactory()
        )
        service.listenNow()
        self.successResultOf(service.stopService())
        self.assertFalse(port.listening)

    def test_listenBeforeStartWalksTheTree(self) -> None:
        """
        L{listenBeforeStart} makes the listening services at every depth
        listen; when one fails, the others stop listening and the failure
        is raised.
        """
        ports = [FakePort(), FakePort()]
        top = MultiService()
        inner = MultiService()
        inner.setServiceParent(top)
        first = ListeningService("a:", FakeEndpoint(succeed(ports[0])), echoFactory())
        first.setServiceParent(top)
        second = ListeningService("b:", FakeEndpoint(succeed(ports[1])), echoFactory())
        second.setServiceParent(inner)
        listenBeforeStart([top])
        self.assertEqual([first._early, second._early], ports)
        broken = ListeningService(
            "c:", FakeEndpoint(fail(OSError("gone"))), echoFactory()
        )
        broken.setServiceParent(inner)
        for service in (first, second):
            service.stopService()
            service.listenNow()
        self.assertRaises(ListenFailed, listenBeforeStart, [top])
        self.assertEqual([port.listening for port in ports], [False, False])


class RealListenTests(TestCase):
    """
    L{ListeningService} on real loopback sockets.
    """

    def listen(self, description: str) -> ListeningService:
        """
        Start listening on C{description} with the real reactor until the
        test ends.
        """
        endpoint = serverFromString(reactor, description)
        service = ListeningService(description, endpoint, echoFactory())
        service.privilegedStartService()
        self.addCleanup(service.stopService)
        return service

    def test_readyLineHasRealPort(self) -> None:
        """
        Listening on port 0 logs the port the system picked.
        """
        events = captureLogs(self)
        service = self.listen("tcp:0:interface=127.0.0.1")
        port = portOf(service)
        self.assertNotEqual(port, 0)
        self.assertEqual(
            logLines(events),
            [
                f"Ready? nbecho listening on 127.0.0.1:{port} "
                "(tcp:0:interface=127.0.0.1)"
            ],
        )

    def test_ipv6ReadyLine(self) -> None:
        """
        An IPv6 interface given with C{--interface ::1} listens on ::1 and is
        logged bracketed.
        """
        if not socket.has_ipv6:
            raise SkipTest("no IPv6")
        events = captureLogs(self)
        options = Options()
        options.parseOptions(["--port", "0", "--interface", "::1"])
        [description] = options["listen"]
        try:
            service = self.listen(description)
        except ListenFailed as error:
            raise SkipTest(f"cannot listen on ::1: {error}") from None
        port = portOf(service)
        self.assertEqual(
            logLines(events),
            [f"Ready? nbecho listening on [::1]:{port} ({description})"],
        )

    def test_portInUse(self) -> None:
        """
        A port already in use gives L{ListenFailed} naming the address.
        """
        first = self.listen("tcp:0:interface=127.0.0.1")
        description = f"tcp:{portOf(first)}:interface=127.0.0.1"
        failed = self.assertRaises(ListenFailed, self.listen, description)
        self.assertEqual(
            str(failed),
            f"nbecho: port {portOf(first)} is already in use on 127.0.0.1",
        )

    def test_unixPathInWords(self) -> None:
        """
        A UNIX socket path in a missing directory fails in words, naming the
        path once, with no error number, lock file or byte string.
        """
        directory = FilePath(tempfile.mkdtemp(prefix="nbecho-"))
        self.addCleanup(directory.remove)
        description = "unix:" + directory.child("missing").child("echo.sock").path
        failed = self.assertRaises(ListenFailed, self.listen, description)
        self.assertEqual(
            str(failed),
            f"nbecho: cannot listen on {description}: No such file or directory",
        )

    async def test_daemonOwnsUnixLock(self) -> None:
        """
        A UNIX socket listened on before a fork has its lock file name the
        process that serves it once started, which can then stop cleanly.
        """
        directory = FilePath(tempfile.mkdtemp(prefix="nbecho-"))
        self.addCleanup(directory.remove)
        path = directory.child("echo.sock").path
        description = f"unix:{path}"
        service = ListeningService(
            description, serverFromString(reactor, description), echoFactory()
        )
        service.listenNow()
        # What twistd's fork leaves: the lock names the parent, gone.
        os.remove(path + ".lock")
        os.symlink("1", path + ".lock")
        service.privilegedStartService()
        self.assertEqual(os.readlink(path + ".lock"), str(os.getpid()))
        await service.stopService()
        self.assertFalse(os.path.lexists(path + ".lock"))
        self.assertFalse(os.path.exists(path))

    async def test_stopListening(self) -> None:
        """
        After C{stopService} the port refuses connections.
        """
        service = self.listen("tcp:0:interface=127.0.0.1")
        port = portOf(service)
        socket.create_connection(("127.0.0.1", port), timeout=10).close()
        await service.stopService()
        self.assertIsNone(service.port)
        self.assertRaises(
            ConnectionRefusedError,
            socket.create_connection,
            ("127.0.0.1", port),
            10,
        )
