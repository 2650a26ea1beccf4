"""
Tests for L{nbecho.client.cli}: the console relaying stdin to the server and
echoes to stdout, with in-memory transports for the socket and for stdio.
"""

from __future__ import annotations

import io
import os
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

from nbecho import __version__
from nbecho.client.cli import (
    EXIT_UNREACHABLE,
    EXIT_USAGE,
    Options,
    main,
    session,
)
from nbecho.client.stream import Console, EchoClient
from nbecho.client.terminal import (
    OutputClosedError,
    SessionLostError,
    StdioModes,
    prompt,
)
from nbecho.test._helpers import HalfCloseTransport

#: The seed's prompt, with its exit word.
PROMPT = prompt(b"exit")


class ConsoleTests(SynchronousTestCase):
    """
    A session between a console and a server, both in memory.
    """

    def connect(self, prompt: bool = False, exitWord: bytes = b"exit") -> None:
        """
        Wire a console to a connected server protocol, as L{session} does.
        """
        self.server = EchoClient()
        self.socket = HalfCloseTransport()
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
        self.assertEqual(
            message, "the server closed the connection with 1 line not echoed"
        )
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
        dropped and the session ends at once with L{OutputClosedError}, even
        with echoes still to come.
        """
        self.connect()
        self.console.dataReceived(b"a\nb\n")
        self.console.writeConnectionLost()
        self.assertTrue(self.socket.disconnected)
        self.assertTrue(self.stdio.disconnecting)
        self.failureResultOf(self.done, OutputClosedError)
        self.server.connectionLost(Failure(ConnectionLost()))

    def test_exitWordGiven(self) -> None:
        """
        The exit word given ends the session; C{exit} is then just a line.
        """
        self.connect(exitWord=b"bye")
        self.console.dataReceived(b"exit\nbye\r\nmore\n")
        self.assertEqual(self.socket.value(), b"exit\nbye\r\n")
        self.assertTrue(self.socket.writeClosed)

    def test_noExitWord(self) -> None:
        """
        Without an exit word no line ends the session, not even an empty
        one: only the end of input does.
        """
        self.connect(exitWord=b"")
        self.console.dataReceived(b"exit\n\nx\n")
        self.assertEqual(self.socket.value(), b"exit\n\nx\n")
        self.assertFalse(self.socket.writeClosed)
        self.console.readConnectionLost()
        self.assertTrue(self.socket.writeClosed)

    def test_promptNamesExitWord(self) -> None:
        """
        The prompt names the exit word, and has no parenthesis without one.
        """
        self.assertEqual(prompt(b"exit"), PROMPT)
        self.assertEqual(prompt(b"bye"), b'send server (exit is "bye"): ')
        self.assertEqual(prompt(b""), b"send server: ")

    def test_newlineAfterPromptAtEnd(self) -> None:
        """
        On a terminal, input ended at the prompt (Ctrl-D) ends the output
        with a newline, so the shell's prompt starts on a line of its own.
        """
        self.connect(prompt=True)
        self.console.readConnectionLost()
        self.serverCloses()
        self.assertEqual(self.stdio.value(), PROMPT + b"\n")
        self.assertIsNone(self.successResultOf(self.done))

    def test_newlineAfterUnterminatedEcho(self) -> None:
        """
        On a terminal, a last line typed without a newline gets its echo on a
        line of its own (the typed text is on the screen), and the echo is
        followed by a newline.
        """
        self.connect(prompt=True)
        self.console.dataReceived(b"abc")
        self.console.readConnectionLost()
        self.server.dataReceived(b"abc")
        self.serverCloses()
        self.assertEqual(self.stdio.value(), PROMPT + b"\nabc\n")

    def test_noExtraNewline(self) -> None:
        """
        On a terminal, output that already ends a line gets no blank line.
        """
        self.connect(prompt=True)
        self.console.dataReceived(b"exit\n")
        self.server.dataReceived(b"exit\n")
        self.serverCloses()
        self.assertEqual(self.stdio.value(), PROMPT + b"exit\n")

    def test_newlineBeforeError(self) -> None:
        """
        On a terminal, a server that leaves mid-session leaves the cursor at
        the start of a line for the error message.
        """
        self.connect(prompt=True)
        self.serverCloses()
        self.assertEqual(self.stdio.value(), PROMPT + b"\n")
        self.sessionError()

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

    def parse(self, *argv: str) -> Options:
        """
        Parse C{argv} as the command line.
        """
        options = Options()
        options.parseOptions(argv)
        return options

    def test_positional(self) -> None:
        """
        C{HOST [PORT]} may be given as arguments, as to nc, with options
        before or after them.
        """
        options = self.parse("::1")
        self.assertEqual(options.endpoint(MemoryReactorClock())[0], "[::1]:9999")
        options = self.parse("localhost", "7", "--exit-word", "bye")
        self.assertEqual(options.endpoint(MemoryReactorClock())[0], "localhost:7")
        self.assertEqual(options["exit-word"], b"bye")

    def test_conflicts(self) -> None:
        """
        A host or port given twice, or beside C{--connect}, and a third
        argument are usage errors, each one line.
        """
        cases = [
            ("h", "--host", "g"),
            ("h", "1", "--port", "2"),
            ("h", "--connect", "tcp:h:1"),
            ("--port", "1", "--connect", "tcp:h:1"),
            ("h", "1", "2"),
        ]
        for argv in cases:
            error = self.assertRaises(usage.UsageError, self.parse, *argv)
            self.assertNotIn("\n", str(error))

    def test_exitWordOption(self) -> None:
        """
        C{--exit-word} defaults to C{exit}, takes any bytes and C{''} for
        none.
        """
        self.assertEqual(self.parse()["exit-word"], b"exit")
        self.assertEqual(self.parse("--exit-word", "")["exit-word"], b"")
        self.assertEqual(self.parse("--exit-word=caf\xe9")["exit-word"], b"caf\xc3\xa9")

    def test_version(self) -> None:
        """
        C{--version} prints nbecho's version, not Twisted's.
        """
        stdout = io.StringIO()
        self.patch(sys, "stdout", stdout)
        error = self.assertRaises(SystemExit, self.parse, "--version")
        self.assertEqual(error.code, 0)
        self.assertEqual(stdout.getvalue(), f"nbecho-client (nbecho) {__version__}\n")

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


class StdioModesTests(SynchronousTestCase):
    """
    Standard input and output are put back as the client found them.
    """

    def test_restore(self) -> None:
        """
        A descriptor made non-blocking after L{StdioModes.save} is blocking
        again after L{StdioModes.restore}.
        """
        reader, writer = os.pipe()
        self.addCleanup(os.close, reader)
        self.addCleanup(os.close, writer)
        modes = StdioModes.save((reader, writer))
        for fd in (reader, writer):
            os.set_blocking(fd, False)
        modes.restore()
        self.assertTrue(os.get_blocking(reader))
        self.assertTrue(os.get_blocking(writer))
