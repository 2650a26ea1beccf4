"""
Tests for L{nbecho.tap}: the C{twistd nbecho} options and the service they
build.
"""

from __future__ import annotations

import socket
import tempfile

from twisted.application.service import IServiceMaker, MultiService
from twisted.internet.address import IPv4Address
from twisted.internet.endpoints import (
    TCP4ServerEndpoint,
    TCP6ServerEndpoint,
    UNIXServerEndpoint,
)
from twisted.internet.interfaces import IStreamServerEndpoint
from twisted.plugin import getPlugins
from twisted.python.filepath import FilePath
from twisted.trial.unittest import SynchronousTestCase, TestCase

from nbecho import __version__
from nbecho.deploy import endpoints
from nbecho.deploy.workers import WorkerPool
from nbecho.server.factory import EchoFactory
from nbecho.server.listening import ListenFailed, ListeningService
from nbecho.server.service import ServerService
from nbecho.settings import EchoSettings
from nbecho.tap import Options, buildEndpoints, makeService
from nbecho.test._helpers import captureLogs, logLines


def parse(*argv: str) -> Options:
    """
    Parse C{argv} as twistd would after C{twistd nbecho}.
    """
    options = Options()
    options.parseOptions(list(argv))
    return options


def _built(options: Options) -> list[tuple[str, IStreamServerEndpoint]]:
    """
    The endpoints C{makeService} would listen on, with the global reactor.
    """
    from twisted.internet import reactor

    return buildEndpoints(options, reactor)


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
            ["--port", "http"], "--port takes a whole number from 0 to 65535", "'http'"
        )
        self.assertUsageError(["-p", "1.5"], "--port", "'1.5'")
        self.assertUsageError(["-p", "\u0660"], "--port", "'\u0660'")

    def test_portOutOfRange(self) -> None:
        """
        Ports below 0 or above 65535 are refused; the bounds themselves work.
        """
        self.assertUsageError(["--port", "65536"], "from 0 to 65535", "'65536'")
        self.assertUsageError(["--port=-1"], "from 0 to 65535", "'-1'")
        for port in ("0", "65535"):
            [(name, _)] = _built(parse("--port", port, "-i", "127.0.0.1"))
            self.assertEqual(name, f"tcp:{port}:interface=127.0.0.1")

    def test_unknownFraming(self) -> None:
        """
        An unknown framing is refused with the list of known ones.
        """
        self.assertUsageError(
            ["--framing", "words"], "--framing takes one of line, raw", "'words'"
        )

    def test_badMaxLineLength(self) -> None:
        """
        A line limit that is not a plain number from 1 to 1 GiB is refused.
        """
        for value in ("0", "-5", "lots", "1e3", "1_000", "\u0663", str(2**30 + 1)):
            self.assertUsageError(
                ["--max-line-length", value],
                "--max-line-length takes a whole number from 1 to 1073741824",
                repr(value),
            )
        self.assertEqual(
            parse("--max-line-length", str(2**30))["settings"].maxLineLength, 2**30
        )

    def test_badCounts(self) -> None:
        """
        Connection limits take plain numbers from 0 to 1,000,000; a huge value
        is shown cut to one short line.
        """
        for option in ("--max-connections", "--max-per-peer"):
            for value in ("-1", "1_000", "1000001", "\u0663", "+5", " 5"):
                self.assertUsageError(
                    [option, value],
                    f"{option} takes a whole number from 0 to 1000000",
                    repr(value),
                )
            huge = "1" * 5000
            error = self.assertRaises(SystemExit, parse, option, huge)
            self.assertLess(len(str(error.code)), 200)

    def test_badTimeouts(self) -> None:
        """
        Timeouts are 0 or plain decimal seconds from 0.1 to 86400; 0, 0.1 and
        86400 themselves are fine.
        """
        for option in ("--idle-timeout", "--shutdown-grace"):
            for value in ("1e-9", "0.05", "86400.5", "-1", "1_0", "\u0661", "inf",
                          "nan", "1e3", ""):  # fmt: skip
                self.assertUsageError(
                    [option, value],
                    f"{option} takes 0 or a number of seconds from 0.1 to 86400",
                    repr(value),
                )
        for value, seconds in (("0", 0.0), ("0.1", 0.1), (".5", 0.5), ("86400", 86400)):
            settings = parse("--idle-timeout", value, "--shutdown-grace", value)[
                "settings"
            ]
            self.assertEqual(
                (settings.idleTimeout, settings.shutdownGrace), (seconds,) * 2
            )

    def test_badExitWord(self) -> None:
        """
        An exit word longer than 1024 bytes, with a line break, or longer than
        the longest line is refused.
        """
        for word in ("a\nb", "a\rb", "exit\n"):
            self.assertUsageError(["--exit-word", word], "--exit-word", "line break")
        self.assertUsageError(["--exit-word", "x" * 1025], "at most 1024 bytes")
        self.assertUsageError(["--exit-word", "\u00e9" * 513], "not 1026")
        self.assertUsageError(
            ["--exit-word", "long", "--max-line-length", "3"], "--max-line-length"
        )
        self.assertEqual(
            parse("--exit-word", "x" * 1024)["settings"].exitWord, b"x" * 1024
        )

    def test_badLogRate(self) -> None:
        """
        The log rates take plain numbers from 0 to 10**9.
        """
        for option in ("--log-rate", "--log-rate-total"):
            for value in ("-1", "1.5", "1_000", "\u0663", "1000000001", ""):
                self.assertUsageError(
                    [option, value],
                    f"{option} takes a whole number from 0 to 1000000000",
                    repr(value),
                )

    def test_logRates(self) -> None:
        """
        The log rates default to 100 a connection and 1000 in all, and 0
        (no limit) is accepted.
        """
        options = Options()
        options.parseOptions([])
        settings = options["settings"]
        self.assertEqual((settings.logRate, settings.logRateTotal), (100, 1000))
        options = Options()
        options.parseOptions(["--log-rate", "0", "--log-rate-total", "7"])
        settings = options["settings"]
        self.assertEqual((settings.logRate, settings.logRateTotal), (0, 7))

    def test_unparsableEndpoint(self) -> None:
        """
        An endpoint string Twisted cannot parse is refused, quoted, naming
        C{--listen} and what is wrong in words.
        """
        self.assertUsageError(
            ["--listen", "bogus:1"], "--listen 'bogus:1'", "unknown endpoint type"
        )
        self.assertUsageError(["--listen", "tcp:port=x"], "'tcp:port=x'")
        self.assertUsageError(
            ["--listen", "tcp:0", "--listen", "nope:"], "--listen 'nope:'"
        )
        self.assertUsageError(
            ["--listen", "tcp:notaport"],
            "--listen 'tcp:notaport'",
            "port must be a number",
        )

    def test_tlsRefusedIsNotUsage(self) -> None:
        """
        A TLS file OpenSSL cannot read ends twistd with one line, without
        pointing to C{--help}: the option was right, the file is not.
        """
        path = self.mktemp()
        with open(path, "w") as pem:
            pem.write("not a certificate\n")
        error = self.assertRaises(
            SystemExit, parse, "--listen", f"ssl:0:privateKey={path}"
        )
        message = str(error.code)
        self.assertIn("not a PEM certificate", message)
        self.assertTrue(message.startswith("twistd nbecho: --listen 'ssl:0:"), message)
        self.assertNotIn("--help", message)
        self.assertNotIn("\n", message)

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

    def test_badProxyTimeout(self) -> None:
        """
        A PROXY header timeout that is negative, not a number, or so short it
        would close every connection at once is refused.
        """
        for value in ("-1", "soon", "nan"):
            self.assertUsageError(
                ["--proxy-timeout", value],
                "--proxy-timeout takes 0 or a number of seconds",
                repr(value),
            )
        for value in ("0.05", "1e-9"):
            self.assertUsageError(
                ["--proxy-timeout", value],
                "--proxy-timeout takes 0 or a number of seconds from 0.1",
                repr(value),
            )


class OptionTests(SynchronousTestCase):
    """
    Good options become settings and endpoint strings.
    """

    def test_defaults(self) -> None:
        """
        Without options nbecho listens on TCP port 9999 on every interface,
        IPv4 and IPv6 on one dual-stack socket, with the default settings and
        a backlog for bursts.
        """
        self.patch(endpoints, "probeIPv6", lambda: True)
        options = parse()
        self.assertEqual(options["listen"], ["tcp6:9999"])
        self.assertEqual(options["settings"], EchoSettings())
        [(description, endpoint)] = _built(options)
        self.assertEqual(description, "tcp6:9999, IPv4 and IPv6")
        assert isinstance(endpoint, TCP6ServerEndpoint)
        self.assertEqual(endpoint._interface, "::")
        self.assertEqual(endpoint._backlog, endpoints.listenBacklog())
        self.assertGreaterEqual(endpoint._backlog, 1024)

    def test_defaultWithoutIPv6(self) -> None:
        """
        On a machine without IPv6 the default listener is IPv4 only, and its
        name says so.
        """
        self.patch(endpoints, "probeIPv6", lambda: None)
        [(description, endpoint)] = _built(parse("-p", "0"))
        self.assertIn("IPv4 only", description)
        self.assertIsInstance(endpoint, TCP4ServerEndpoint)

    def test_rawHasNoDefaultExitWord(self) -> None:
        """
        Raw framing has no exit word unless one is given; line framing's is
        C{exit}.
        """
        self.assertEqual(parse("--framing", "raw")["settings"].exitWord, b"")
        self.assertEqual(
            parse("--framing", "raw", "--exit-word", "exit")["settings"].exitWord,
            b"exit",
        )
        self.assertEqual(parse("--framing", "line")["settings"].exitWord, b"exit")

    def test_interfaceQuoted(self) -> None:
        """
        An IPv6 interface is quoted so that its colons survive the endpoint
        string.
        """
        options = parse("--port", "8000", "--interface", "::1")
        [(name, _)] = _built(options)
        self.assertEqual(name, "tcp:8000:interface=\\:\\:1")
        options = parse("-i", "127.0.0.1")
        [(name, _)] = _built(options)
        self.assertEqual(name, "tcp:9999:interface=127.0.0.1")

    def test_listenRepeatable(self) -> None:
        """
        Each C{--listen} adds an endpoint, in order, and C{--port} and
        C{--interface}, if given as well, add theirs first: nothing on the
        command line is ignored.
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
            [
                r"tcp:1234:interface=\:\:1",
                "tcp:0:interface=127.0.0.1",
                "unix:/tmp/nbecho-test.sock",
            ],
        )
        [(first, tcp6), (second, tcp), (third, unix)] = _built(options)
        self.assertEqual(
            (first, second, third),
            (
                r"tcp:1234:interface=\:\:1",
                "tcp:0:interface=127.0.0.1",
                "unix:/tmp/nbecho-test.sock",
            ),
        )
        self.assertIsInstance(tcp6, TCP4ServerEndpoint)
        self.assertIsInstance(tcp, TCP4ServerEndpoint)
        self.assertIsInstance(unix, UNIXServerEndpoint)

    def test_listenAlone(self) -> None:
        """
        C{--listen} without C{--port} or C{--interface} listens only where
        it says: the default TCP port is not added.
        """
        options = parse("--listen", "udp:0")
        self.assertEqual(options["listen"], ["udp:0"])
        self.assertEqual(_built(options), [])

    def test_portWithUDP(self) -> None:
        """
        C{--port} with a C{udp:} C{--listen} serves TCP on that port and UDP
        on the other, rather than dropping the TCP listener.
        """
        options = parse("--port", "9998", "--listen", "udp:9997")
        self.assertEqual(options["udp"], ["udp:9997"])
        [(name, _)] = _built(options)
        self.assertIn("9998", name)

    def test_interfaceWithListen(self) -> None:
        """
        C{--interface} alone with C{--listen} adds the default port on that
        interface.
        """
        options = parse("--interface", "127.0.0.1", "--listen", "udp:0")
        [(name, _)] = _built(options)
        self.assertEqual(name, "tcp:9999:interface=127.0.0.1")

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

    def test_proxyTimeout(self) -> None:
        """
        --proxy-timeout becomes the settings' PROXY header timeout, 0 and
        0.1 seconds included.
        """
        for value, seconds in (("2.5", 2.5), ("0", 0.0), ("0.1", 0.1)):
            settings = parse("--proxy-timeout", value)["settings"]
            self.assertEqual(settings.proxyTimeout, seconds)

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
            "--proxy-timeout",
        ):
            self.assertIn(option, text)

    def test_version(self) -> None:
        """
        C{twistd nbecho --version} names nbecho's version, then Twisted's.
        """
        import io
        from contextlib import redirect_stdout

        import twisted
        from nbecho import __version__

        output = io.StringIO()
        with redirect_stdout(output):
            error = self.assertRaises(SystemExit, parse, "--version")
        self.assertEqual(error.code, 0)
        self.assertEqual(
            output.getvalue(), f"nbecho {__version__} (Twisted {twisted.__version__})\n"
        )

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


class MakeServiceTests(TestCase):
    """
    L{makeService} builds one listening service per endpoint, listening
    already (twistd forks a daemon after it returns).
    """

    def make(self, *argv: str) -> MultiService:
        """
        L{makeService} for C{argv}; its sockets are closed when the test
        ends.
        """
        service = makeService(parse(*argv))
        assert isinstance(service, MultiService)
        self.addCleanup(service.stopService)
        return service

    def unixSocket(self) -> str:
        """
        A UNIX socket path of this test's own.
        """
        directory = FilePath(tempfile.mkdtemp(prefix="nbecho-"))
        self.addCleanup(directory.remove)
        return "unix:" + directory.child("x.sock").path

    def test_onePerEndpoint(self) -> None:
        """
        The service is a L{MultiService} of one L{ListeningService} per
        endpoint, in order, sharing one factory with the chosen settings.
        """
        options = parse("-l", "tcp:0", "-l", self.unixSocket(), "--framing", "raw")
        service = makeService(options)
        self.addCleanup(service.stopService)
        self.assertIsInstance(service, MultiService)
        assert isinstance(service, MultiService)
        children = list(service)
        self.assertEqual(len(children), 2)
        for child, (description, endpoint) in zip(children, _built(options)):
            assert isinstance(child, ListeningService)
            self.assertEqual(child.description, description)
            self.assertIs(type(child.endpoint), type(endpoint))
            self.assertIs(child.factory, children[0].factory)
        self.assertIsInstance(service, ServerService)
        factory = children[0].factory
        assert isinstance(factory, EchoFactory)
        self.assertIs(factory, service.factory)  # type: ignore[attr-defined]
        self.assertEqual(factory.settings, options["settings"])

    def test_workersShareTheEchoListeners(self) -> None:
        """
        With C{--workers 3} a pool of workers joins the server, gets the
        echo listeners and the server's share of C{--max-connections}, and
        its totals count in the server's (refreshed before SIGUSR1's line).
        """
        unix = self.unixSocket()
        service = self.make(
            *("-l", "tcp:0", "-l", unix, "--workers", "3", "--max-connections", "10")
        )
        assert isinstance(service, ServerService)
        [pool] = [child for child in service if isinstance(child, WorkerPool)]
        self.assertEqual(pool.count, 3)
        self.assertEqual(pool.settings.maxConnections, 3)
        self.assertEqual(service.factory.settings.maxConnections, 3)
        self.assertEqual(
            [listener.description for listener in pool.listeners],
            ["tcp:0", unix],
        )
        self.assertEqual(service.statsSources, [pool.stats])
        self.assertEqual(service.statsRefreshers, [pool.refresh])

    def test_oneProcessNoPool(self) -> None:
        """
        Without C{--workers} the server runs alone and counts only itself.
        """
        service = self.make("-l", "tcp:0")
        assert isinstance(service, ServerService)
        self.assertFalse([child for child in service if isinstance(child, WorkerPool)])
        self.assertEqual(service.statsSources, [])

    def test_listensBeforeStarting(self) -> None:
        """
        Every endpoint listens when L{makeService} returns, before the
        service starts (and before twistd forks a daemon), with the metrics
        one; the C{Ready?} lines wait for the start.
        """
        events = captureLogs(self)
        service = self.make(
            "-l", "tcp:0:interface=127.0.0.1", "--metrics", "tcp:0:interface=127.0.0.1"
        )
        listeners = [
            child
            for child in service
            if isinstance(child, ListeningService)
            or (
                isinstance(child, MultiService)
                and any(isinstance(c, ListeningService) for c in child)
            )
        ]
        self.assertEqual(len(listeners), 2)
        for listener in listeners:
            assert isinstance(listener, ListeningService)
            port = listener._early
            assert port is not None
            host = port.getHost()
            assert isinstance(host, IPv4Address)
            socket.create_connection(("127.0.0.1", host.port), 10).close()
        # Only the version line: Ready? waits until the service starts.
        self.assertEqual(logLines(events), [f"nbecho {__version__} starting up"])

    def test_listenFailsInMakeService(self) -> None:
        """
        A port already in use ends L{makeService} with the one-line
        L{ListenFailed}, which twistd prints on the terminal before it forks.
        """
        with socket.socket() as taken:
            taken.bind(("127.0.0.1", 0))
            taken.listen()
            port = taken.getsockname()[1]
            options = parse("--port", str(port), "--interface", "127.0.0.1")
            failed = self.assertRaises(ListenFailed, makeService, options)
        self.assertEqual(
            str(failed),
            f"nbecho: port {port} is already in use on 127.0.0.1",
        )
