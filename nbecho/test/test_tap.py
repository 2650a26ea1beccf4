"""
Tests for L{nbecho.tap} and L{nbecho.listening}: the C{twistd nbecho}
options, the service they build, and listening with its C{Ready?} line.
"""

from __future__ import annotations

import errno
import socket

from twisted.application.service import IServiceMaker, MultiService
from twisted.internet import reactor
from twisted.internet.address import IPv4Address, IPv6Address
from twisted.internet.defer import Deferred, succeed
from twisted.internet.endpoints import (
    TCP4ServerEndpoint,
    UNIXServerEndpoint,
    serverFromString,
)
from twisted.internet.error import CannotListenError
from twisted.internet.interfaces import (
    IListeningPort,
    IProtocolFactory,
    IStreamServerEndpoint,
)
from twisted.internet.testing import RaisingMemoryReactor
from twisted.plugin import getPlugins
from twisted.trial.unittest import SkipTest, SynchronousTestCase, TestCase
from zope.interface import implementer

from nbecho.listening import ListenFailed, ListeningService
from nbecho.factory import EchoFactory
from nbecho.settings import EchoSettings
from nbecho.limits import LimitingFactory
from nbecho.tap import Options, makeService
from nbecho.test._helpers import captureLogs, logLines


def portOf(service: ListeningService) -> int:
    """
    The port number C{service} listens on.
    """
    assert service.port is not None
    address = service.port.getHost()
    assert isinstance(address, (IPv4Address, IPv6Address))
    return address.port


def parse(*argv: str) -> Options:
    """
    Parse C{argv} as twistd would after C{twistd nbecho}.
    """
    options = Options()
    options.parseOptions(list(argv))
    return options


class OptionErrorTests(SynchronousTestCase):
    """
    Every bad option ends twistd with one line naming the problem.
    """

    def assertUsageError(self, argv: list[str], *expected: str) -> None:
        """
        C{argv} is refused with a one-line C{SystemExit} containing each of
        C{expected}, as twistd prints it, without a traceback.
        """
        error = self.assertRaises(SystemExit, Options().parseOptions, argv)
        message = error.code
        assert isinstance(message, str), message
        self.assertNotIn("\n", message)
        self.assertTrue(message.startswith("twistd nbecho: "), message)
        self.assertTrue(message.endswith("(see: twistd nbecho --help)"), message)
        self.assertIsNone(error.__cause__)
        self.assertTrue(error.__suppress_context__)
        for part in expected:
            self.assertIn(part, message)

    def test_portNotANumber(self) -> None:
        """
        A port that is not a number is refused with the allowed range.
        """
        self.assertUsageError(
            ["--port", "http"], "--port takes a number from 0 to 65535", "'http'"
        )
        self.assertUsageError(["-p", "1.5"], "--port", "'1.5'")

    def test_portOutOfRange(self) -> None:
        """
        Ports below 0 or above 65535 are refused; the bounds themselves work.
        """
        self.assertUsageError(["--port", "65536"], "from 0 to 65535", "'65536'")
        self.assertUsageError(["--port=-1"], "from 0 to 65535", "'-1'")
        self.assertEqual(parse("--port", "0")["listen"], ["tcp:0"])
        self.assertEqual(parse("--port", "65535")["listen"], ["tcp:65535"])

    def test_unknownFraming(self) -> None:
        """
        An unknown framing is refused with the list of known ones.
        """
        self.assertUsageError(
            ["--framing", "words"], "--framing takes one of line, raw", "'words'"
        )

    def test_badMaxLineLength(self) -> None:
        """
        A line limit that is not a positive number is refused.
        """
        for value in ("0", "-5", "lots", "1e3"):
            self.assertUsageError(
                ["--max-line-length", value],
                "--max-line-length takes a number of at least 1",
                repr(value),
            )

    def test_unparsableEndpoint(self) -> None:
        """
        An endpoint string Twisted cannot parse is refused, quoted.
        """
        self.assertUsageError(
            ["--listen", "bogus:1"], "cannot use endpoint 'bogus:1'", "bogus"
        )
        self.assertUsageError(["--listen", "tcp:port=x"], "'tcp:port=x'")
        self.assertUsageError(
            ["--listen", "tcp:0", "--listen", "nope:"], "cannot use endpoint 'nope:'"
        )

    def test_unknownOption(self) -> None:
        """
        An option nbecho does not have is refused in one line too.
        """
        self.assertUsageError(["--colour"], "--colour")

    def test_missingValue(self) -> None:
        """
        An option missing its value is refused in one line.
        """
        self.assertUsageError(["--port"], "--port")


class OptionTests(SynchronousTestCase):
    """
    Good options become settings and endpoint strings.
    """

    def test_defaults(self) -> None:
        """
        Without options nbecho listens on TCP port 9999 on every interface
        with the default settings, as the seed did.
        """
        options = parse()
        self.assertEqual(options["listen"], ["tcp:9999"])
        self.assertEqual(options["settings"], EchoSettings())
        [(description, endpoint)] = options["endpoints"]
        self.assertEqual(description, "tcp:9999")
        self.assertIsInstance(endpoint, TCP4ServerEndpoint)

    def test_interfaceQuoted(self) -> None:
        """
        An IPv6 interface is quoted so that its colons survive the endpoint
        string.
        """
        options = parse("--port", "8000", "--interface", "::1")
        self.assertEqual(options["listen"], ["tcp:8000:interface=\\:\\:1"])
        options = parse("-i", "127.0.0.1")
        self.assertEqual(options["listen"], ["tcp:9999:interface=127.0.0.1"])

    def test_listenRepeatable(self) -> None:
        """
        Each C{--listen} adds an endpoint, in order, and C{--port} and
        C{--interface} are then ignored.
        """
        options = parse(
            "--port",
            "1234",
            "--interface",
            "::1",
            "--listen",
            "tcp:0:interface=127.0.0.1",
            "-l",
            "unix:/tmp/nbecho-test.sock",
        )
        self.assertEqual(
            options["listen"],
            ["tcp:0:interface=127.0.0.1", "unix:/tmp/nbecho-test.sock"],
        )
        [(first, tcp), (second, unix)] = options["endpoints"]
        self.assertEqual(
            (first, second),
            ("tcp:0:interface=127.0.0.1", "unix:/tmp/nbecho-test.sock"),
        )
        self.assertIsInstance(tcp, TCP4ServerEndpoint)
        self.assertIsInstance(unix, UNIXServerEndpoint)

    def test_settings(self) -> None:
        """
        Framing, exit word, quiet and line limit become the settings every
        connection uses.
        """
        options = parse(
            "--framing",
            "raw",
            "--exit-word",
            "quit",
            "--quiet",
            "--max-line-length",
            "100",
        )
        self.assertEqual(
            options["settings"],
            EchoSettings(
                framing="raw", exitWord=b"quit", quiet=True, maxLineLength=100
            ),
        )

    def test_exitWordOff(self) -> None:
        """
        An empty exit word turns the exit word off.
        """
        self.assertEqual(parse("--exit-word", "")["settings"].exitWord, b"")

    def test_exitWordBytes(self) -> None:
        """
        The exit word is matched as the bytes given on the command line, UTF-8
        or not (an argument that is not UTF-8 reaches Python as surrogates).
        """
        self.assertEqual(
            parse("--exit-word", "ciao👋")["settings"].exitWord, "ciao👋".encode()
        )
        self.assertEqual(parse("--exit-word", "\udcff")["settings"].exitWord, b"\xff")

    def test_helpDocumentsEveryOption(self) -> None:
        """
        C{twistd nbecho --help} mentions every option.
        """
        text = str(Options())
        for option in (
            "--port",
            "--interface",
            "--listen",
            "--framing",
            "--exit-word",
            "--quiet",
            "--max-line-length",
        ):
            self.assertIn(option, text)

    def test_plugin(self) -> None:
        """
        twistd finds a plugin called C{nbecho} that uses these options and
        L{makeService}.
        """
        [maker] = [
            maker for maker in getPlugins(IServiceMaker) if maker.tapname == "nbecho"
        ]
        self.assertIs(maker.options, Options)
        self.assertIs(maker.makeService, makeService)


class MakeServiceTests(SynchronousTestCase):
    """
    L{makeService} builds one listening service per endpoint.
    """

    def test_onePerEndpoint(self) -> None:
        """
        The service is a L{MultiService} of one L{ListeningService} per
        endpoint, in order, sharing one factory with the chosen settings.
        """
        options = parse("-l", "tcp:0", "-l", "unix:/tmp/x.sock", "--framing", "raw")
        service = makeService(options)
        self.assertIsInstance(service, MultiService)
        assert isinstance(service, MultiService)
        children = list(service)
        self.assertEqual(len(children), 2)
        for child, (description, endpoint) in zip(children, options["endpoints"]):
            assert isinstance(child, ListeningService)
            self.assertEqual(child.description, description)
            self.assertIs(child.endpoint, endpoint)
            self.assertIs(child.factory, children[0].factory)
        factory = children[0].factory
        assert isinstance(factory, LimitingFactory)
        assert isinstance(factory.wrappedFactory, EchoFactory)
        self.assertEqual(factory.wrappedFactory.settings, options["settings"])


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
        factory = EchoFactory()
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
        service = ListeningService("tcp:4321", endpoint, EchoFactory())
        service.startService()
        self.assertEqual(len(endpoint.factories), 1)

    def test_listenFails(self) -> None:
        """
        A failure to listen raises L{ListenFailed}, a L{SystemExit} whose one
        line names the endpoint and the reason.
        """
        error = CannotListenError(
            "127.0.0.1", 9999, OSError(errno.EADDRINUSE, "Address already in use")
        )
        endpoint = serverFromString(
            RaisingMemoryReactor(listenException=error), "tcp:9999:interface=127.0.0.1"
        )
        service = ListeningService(
            "tcp:9999:interface=127.0.0.1", endpoint, EchoFactory()
        )
        failed = self.assertRaises(ListenFailed, service.privilegedStartService)
        self.assertIsInstance(failed, SystemExit)
        message = str(failed)
        self.assertNotIn("\n", message)
        self.assertTrue(
            message.startswith("nbecho: cannot listen on tcp:9999:interface=127.0.0.1:")
        )
        self.assertIn("Address already in use", message)
        self.assertIsNone(service.port)
        self.successResultOf(service.stopService())

    def test_listenFailsLater(self) -> None:
        """
        An endpoint whose listen fails after start-up gets a critical log line
        naming it and the reason, rather than a silently idle server.
        """
        events = captureLogs(self)
        pending: Deferred[IListeningPort] = Deferred()
        service = ListeningService("slow:", FakeEndpoint(pending), EchoFactory())
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
        service = ListeningService("slow:", FakeEndpoint(pending), EchoFactory())
        service.startService()
        events = captureLogs(self)
        self.successResultOf(service.stopService())
        self.assertEqual(cancelled, [pending])
        self.assertIsNone(service.port)
        self.assertEqual(logLines(events), [])


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
        service = ListeningService(description, endpoint, EchoFactory())
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
        [description] = parse("--port", "0", "--interface", "::1")["listen"]
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
        self.assertIn(f"cannot listen on {description}: ", str(failed))
        self.assertIn("in use", str(failed))

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
