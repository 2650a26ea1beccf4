"""
Tests for L{nbecho.client}: the console relaying stdin to the server and
echoes to stdout, with in-memory transports for the socket and for stdio.
"""

from __future__ import annotations

import io
import sys

from twisted.internet.defer import Deferred
from twisted.internet.endpoints import HostnameEndpoint
from twisted.internet.error import (
    ConnectionDone,
    ConnectionLost,
    ConnectionRefusedError,
)
from twisted.internet.testing import MemoryReactorClock, StringTransport
from twisted.python import usage
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase

from nbecho._console import (
    PROMPT,
    Console,
    EchoClient,
    OutputClosedError,
    SessionLostError,
    prompt,
)
from nbecho.client import (
    EXIT_UNREACHABLE,
    EXIT_USAGE,
    Options,
    main,
    session,
)


class SocketTransport(StringTransport):
    """
    A L{StringTransport} that can be half-closed, like a TCP socket.
    """

    writeClosed = False

    def loseWriteConnection(self) -> None:
        self.writeClosed = True


class ConsoleTests(SynchronousTestCase):
    """
    A session between a console and a server, both in memory.
    """

    def connect(self, prompt: bool = False, exitWord: bytes = b"exit") -> None:
        """
        Wire a console to a connected server protocol, as L{session} does.
        """
        self.server = EchoClient()
        self.socket = SocketTransport()
        self.server.makeConnection(self.socket)
        self.done: Deferred[None] = Deferred()
        self.console = Console(
            self.server, self.done, PROMPT if prompt else b"", exitWord
        )
        self.server.console = self.console
        self.stdio = StringTransport()
        self.console.makeConnection(self.stdio)

    def serverCloses(self, reason: Exception | None = None) -> None:
        """
        The server closes the socket; stdio then closes as StandardIO would.
        """
        failure = Failure(reason if reason is not None else ConnectionDone())
        self.server.connectionLost(failure)
        self.assertTrue(self.stdio.disconnecting)
        self.console.connectionLost(Failure(ConnectionDone()))

    def sessionError(self) -> str:
        """
        The one-line reason the session failed with.
        """
        return str(self.failureResultOf(self.done, SessionLostError).value)

    def test_linesSent(self) -> None:
        """
        Each complete line typed is sent with its terminator; a partial line
        waits.
        """
        self.connect()
        self.console.dataReceived(b"one\ntwo\r\nthr")
        self.assertEqual(self.socket.value(), b"one\ntwo\r\n")
        self.console.dataReceived(b"ee\n")
        self.assertEqual(self.socket.value(), b"one\ntwo\r\nthree\n")
        self.assertNoResult(self.done)

    def test_echoesPrinted(self) -> None:
        """
        Echoed lines are written to stdout as they complete, as sent.
        """
        self.connect()
        self.server.dataReceived(b"one\r\ntw")
        self.assertEqual(self.stdio.value(), b"one\r\n")
        self.server.dataReceived(b"o\n")
        self.assertEqual(self.stdio.value(), b"one\r\ntwo\n")

    def test_backpressureWiring(self) -> None:
        """
        Stdin feeds the socket and the socket feeds stdout as streaming
        producers, so a slow side pauses the other.
        """
        self.connect()
        self.assertIs(self.socket.producer, self.stdio)
        self.assertIs(self.stdio.producer, self.socket)
        self.assertTrue(self.socket.streaming)
        self.assertTrue(self.stdio.streaming)

    def test_exit(self) -> None:
        """
        After C{exit} is sent, stdin is no longer read or relayed, and the
        socket is half-closed so the server can finish.
        """
        self.connect()
        self.console.dataReceived(b"a\nexit\nb\n")
        self.assertEqual(self.socket.value(), b"a\nexit\n")
        self.assertTrue(self.socket.writeClosed)
        self.assertIsNone(self.socket.producer)
        self.assertEqual(self.stdio.producerState, "paused")
        self.console.dataReceived(b"c\n")
        self.console.readConnectionLost()
        self.assertEqual(self.socket.value(), b"a\nexit\n")

    def test_exitCRLF(self) -> None:
        """
        C{exit} typed with CRLF ends the session too.
        """
        self.connect()
        self.console.dataReceived(b"exit\r\nmore\r\n")
        self.assertEqual(self.socket.value(), b"exit\r\n")
        self.assertTrue(self.socket.writeClosed)

    def test_cleanCloseAfterExit(self) -> None:
        """
        When the server echoes C{exit} and closes, every echo is printed and
        the session succeeds.
        """
        self.connect()
        self.console.dataReceived(b"hello\nexit\n")
        self.server.dataReceived(b"hello\nexit\n")
        self.assertNoResult(self.done)
        self.serverCloses()
        self.assertEqual(self.stdio.value(), b"hello\nexit\n")
        self.assertIsNone(self.successResultOf(self.done))

    def test_endOfInput(self) -> None:
        """
        End of input sends a trailing partial line, half-closes the socket,
        and the session succeeds once the server has echoed it and closed.
        """
        self.connect()
        self.console.dataReceived(b"x\ny")
        self.console.readConnectionLost()
        self.assertEqual(self.socket.value(), b"x\ny")
        self.assertTrue(self.socket.writeClosed)
        self.server.dataReceived(b"x\ny")
        self.assertEqual(self.stdio.value(), b"x\n")
        self.serverCloses()
        self.assertEqual(self.stdio.value(), b"x\ny")
        self.assertIsNone(self.successResultOf(self.done))

    def test_endOfEmptyInput(self) -> None:
        """
        End of input with nothing typed only half-closes the socket.
        """
        self.connect()
        self.console.readConnectionLost()
        self.assertEqual(self.socket.value(), b"")
        self.assertTrue(self.socket.writeClosed)
        self.serverCloses()
        self.assertIsNone(self.successResultOf(self.done))

    def test_promptShown(self) -> None:
        """
        With prompting on, the seed's prompt is shown at the start and after
        the echo of everything sent, but not after C{exit}.
        """
        self.connect(prompt=True)
        self.assertEqual(self.stdio.value(), b'send server (exit is "exit"): ')
        self.assertEqual(PROMPT, b'send server (exit is "exit"): ')
        self.console.dataReceived(b"a\nb\n")
        self.server.dataReceived(b"a\n")
        self.assertEqual(self.stdio.value(), PROMPT + b"a\n")
        self.server.dataReceived(b"b\n")
        self.assertEqual(self.stdio.value(), PROMPT + b"a\nb\n" + PROMPT)
        self.console.dataReceived(b"exit\n")
        self.server.dataReceived(b"exit\n")
        self.serverCloses()
        self.assertEqual(self.stdio.value(), PROMPT + b"a\nb\n" + PROMPT + b"exit\n")

    def test_noPromptWhenPiped(self) -> None:
        """
        With prompting off (stdin not a terminal) stdout gets only echoes.
        """
        self.connect(prompt=False)
        self.console.dataReceived(b"a\n")
        self.server.dataReceived(b"a\n")
        self.console.readConnectionLost()
        self.serverCloses()
        self.assertEqual(self.stdio.value(), b"a\n")

    def test_serverClosesFirst(self) -> None:
        """
        The server closing while the user may still type ends the session
        with L{SessionLostError} and a one-line reason.
        """
        self.connect()
        self.console.dataReceived(b"a\n")
        self.serverCloses()
        message = self.sessionError()
        self.assertEqual(message, "the server closed the connection mid-session")
        self.assertNotIn("\n", message)

    def test_resetAfterExit(self) -> None:
        """
        A connection lost uncleanly after C{exit} is still an error: echoes
        may be missing.
        """
        self.connect()
        self.console.dataReceived(b"exit\n")
        self.serverCloses(ConnectionLost("reset"))
        message = self.sessionError()
        self.assertTrue(message.startswith("connection lost: "), message)
        self.assertIn("reset", message)

    def test_stdoutClosed(self) -> None:
        """
        When stdout goes away (the reader of a pipe quit) the socket is
        dropped at once: nobody would see the echoes.
        """
        self.connect()
        self.console.writeConnectionLost()
        self.assertTrue(self.socket.disconnected)

    def test_echoTooLong(self) -> None:
        """
        An echoed line over the client's limit ends the session with that
        reason.
        """
        self.connect()
        self.server.MAX_LENGTH = 10
        self.server.dataReceived(b"x" * 11)
        self.assertTrue(self.socket.disconnecting)
        self.serverCloses(ConnectionLost())
        self.assertEqual(self.sessionError(), "echoed line longer than 10 bytes")

    def test_inputTooLong(self) -> None:
        """
        An input line over the client's limit aborts the connection and ends
        the session with that reason.
        """
        self.connect()
        self.console.MAX_LENGTH = 10
        self.console.dataReceived(b"y" * 11)
        self.assertTrue(self.socket.disconnected)
        self.serverCloses(ConnectionLost())
        self.assertEqual(self.sessionError(), "input line longer than 10 bytes")


class OptionsTests(SynchronousTestCase):
    """
    The command line of C{nbecho-client}.
    """

    def test_defaults(self) -> None:
        """
        By default the client connects to 127.0.0.1 port 9999 by host name.
        """
        options = Options()
        options.parseOptions([])
        name, endpoint = options.endpoint(MemoryReactorClock())
        self.assertEqual(name, "127.0.0.1:9999")
        self.assertIsInstance(endpoint, HostnameEndpoint)

    def test_ipv6Name(self) -> None:
        """
        An IPv6 host is bracketed in the name used in error messages.
        """
        options = Options()
        options.parseOptions(["--host", "::1", "--port", "7"])
        self.assertEqual(options.endpoint(MemoryReactorClock())[0], "[::1]:7")

    def test_badPort(self) -> None:
        """
        A port that is not a number from 1 to 65535 is a usage error.
        """
        for port in ("x", "0", "65536", "-3"):
            error = self.assertRaises(
                usage.UsageError, Options().parseOptions, ["--port", port]
            )
            self.assertEqual(
                str(error), f"--port takes a number from 1 to 65535, not {port!r}"
            )


class MainTests(SynchronousTestCase):
    """
    How C{nbecho-client} ends when it cannot start a session.
    """

    def setUp(self) -> None:
        self.stderr = io.StringIO()
        self.patch(sys, "stderr", self.stderr)

    def test_usageError(self) -> None:
        """
        A bad option exits with status 2 and one line on stderr.
        """
        error = self.assertRaises(SystemExit, main, ["--port", "nine"])
        self.assertEqual(error.code, EXIT_USAGE)
        self.assertEqual(
            self.stderr.getvalue(),
            "nbecho-client: --port takes a number from 1 to 65535, not 'nine' "
            "(see: nbecho-client --help)\n",
        )

    def test_badEndpoint(self) -> None:
        """
        An unparsable C{--connect} endpoint exits with status 2.
        """
        options = Options()
        options.parseOptions(["--connect", "bogus:1"])
        result = Deferred.fromCoroutine(session(MemoryReactorClock(), options))
        error = self.failureResultOf(result, SystemExit).value
        self.assertEqual(error.code, EXIT_USAGE)
        self.assertTrue(
            self.stderr.getvalue().startswith(
                "nbecho-client: cannot use endpoint 'bogus:1': "
            )
        )

    def test_unreachable(self) -> None:
        """
        A refused connection exits with status 1 and one line naming the
        address.
        """
        reactor = MemoryReactorClock()
        options = Options()
        options.parseOptions(["--port", "4242"])
        result = Deferred.fromCoroutine(session(reactor, options))
        self.assertNoResult(result)
        [(host, port, factory, _, _)] = reactor.tcpClients
        self.assertEqual((host, port), ("127.0.0.1", 4242))
        factory.clientConnectionFailed(
            reactor.connectors[0], Failure(ConnectionRefusedError())
        )
        reactor.advance(1)
        error = self.failureResultOf(result, SystemExit).value
        self.assertEqual(error.code, EXIT_UNREACHABLE)
        output = self.stderr.getvalue()
        self.assertTrue(
            output.startswith("nbecho-client: cannot connect to 127.0.0.1:4242: "),
            output,
        )
        self.assertIn("refused", output)
        self.assertEqual(output.count("\n"), 1)
