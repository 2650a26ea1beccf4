"""
Tests for the client's UDP session (L{nbecho.client.datagram},
L{nbecho.client._udpoptions}): a console wired to an in-memory datagram socket, a
L{Clock} for the timeouts and retries, and the UDP options.
"""

from __future__ import annotations

import io
import sys

from twisted.internet.defer import Deferred
from twisted.internet.error import MessageLengthError
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from twisted.python import usage
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase

from nbecho.client._udpoptions import parseUDPTarget
from nbecho.client.cli import EXIT_USAGE, Options, main
from nbecho.client.datagram import (
    MAX_DATAGRAM,
    READ_AHEAD,
    DatagramClient,
    DatagramConsole,
    ServerUnreachableError,
)
from nbecho.client.terminal import OutputClosedError, SessionLostError, prompt

#: The seed's prompt, with its exit word.
PROMPT = prompt(b"exit")


class FakeDatagramSocket:
    """
    A connected UDP socket in memory: records what is sent and whether it
    was closed; can refuse a datagram as a too long one is refused.
    """

    def __init__(self) -> None:
        self.sent: list[bytes] = []
        self.listening = True
        self.tooLong = False

    def write(self, packet: bytes, addr: object = None) -> None:
        if self.tooLong:
            raise MessageLengthError("message too long")
        self.sent.append(packet)

    def stopListening(self) -> None:
        self.listening = False


class DatagramConsoleTests(SynchronousTestCase):
    """
    A UDP session between a console and a server, both in memory.
    """

    def connect(
        self, prompt: bytes = b"", timeout: float = 1.0, retries: int = 3
    ) -> None:
        """
        Wire a console to a fake socket and a stdio transport, as
        L{nbecho.client._udpoptions.udpSession} does.
        """
        self.socket = FakeDatagramSocket()
        self.clock = Clock()
        self.done: Deferred[None] = Deferred()
        self.client = DatagramClient()
        self.console = DatagramConsole(
            self.socket,  # type: ignore[arg-type]
            self.clock,
            self.done,
            prompt,
            b"exit",
            timeout,
            retries,
        )
        self.client.console = self.console
        self.stdio = StringTransport()
        self.console.makeConnection(self.stdio)

    def stdioCloses(self) -> None:
        """
        Stdio finishes writing and closes, as StandardIO does once asked to.
        """
        self.assertTrue(self.stdio.disconnecting)
        self.assertFalse(self.socket.listening)
        self.console.connectionLost(Failure(Exception("closed")))

    def echo(self) -> None:
        """
        The server echoes the last datagram sent.
        """
        self.client.datagramReceived(self.socket.sent[-1], ("127.0.0.1", 7))

    def test_oneDatagramPerLine(self) -> None:
        """
        Each line goes out as one datagram without its newline, the next
        only once the previous one's echo arrived.
        """
        self.connect()
        self.console.dataReceived(b"one\ntwo\r\nthr")
        self.assertEqual(self.socket.sent, [b"one"])
        self.echo()
        self.assertEqual(self.socket.sent, [b"one", b"two\r"])
        self.echo()
        self.assertEqual(self.socket.sent, [b"one", b"two\r"])
        self.assertEqual(self.stdio.value(), b"one\ntwo\r\n")
        self.assertNoResult(self.done)

    def test_endOfInput(self) -> None:
        """
        At the end of input a last partial line is sent and its echo printed
        without a newline; the session ends once every echo is printed.
        """
        self.connect()
        self.console.dataReceived(b"a\nb")
        self.console.readConnectionLost()
        self.assertEqual(self.socket.sent, [b"a"])
        self.assertFalse(self.stdio.disconnecting)
        self.echo()
        self.echo()
        self.assertEqual(self.socket.sent, [b"a", b"b"])
        self.assertEqual(self.stdio.value(), b"a\nb")
        self.stdioCloses()
        self.assertIsNone(self.successResultOf(self.done))

    def test_exitWord(self) -> None:
        """
        The exit word is sent and its echo awaited; input after it is not
        sent, and the session ends cleanly.
        """
        self.connect()
        self.console.dataReceived(b"a\nexit\nb\n")
        self.echo()
        self.echo()
        self.assertEqual(self.socket.sent, [b"a", b"exit"])
        self.assertEqual(self.stdio.value(), b"a\nexit\n")
        self.stdioCloses()
        self.assertIsNone(self.successResultOf(self.done))

    def test_retry(self) -> None:
        """
        A line not echoed within the timeout is sent again, each timeout
        later, and an echo then completes it.
        """
        self.connect(timeout=2.0, retries=3)
        self.console.dataReceived(b"a\n")
        self.clock.advance(1.9)
        self.assertEqual(self.socket.sent, [b"a"])
        self.clock.advance(0.1)
        self.assertEqual(self.socket.sent, [b"a", b"a"])
        self.clock.advance(2.0)
        self.assertEqual(self.socket.sent, [b"a", b"a", b"a"])
        self.echo()
        self.clock.advance(10)
        self.assertEqual(self.socket.sent, [b"a", b"a", b"a"])
        self.assertEqual(self.stdio.value(), b"a\n")
        self.assertNoResult(self.done)

    def test_neverAnswered(self) -> None:
        """
        With no echo at all after the last retry, the server was never
        reached: the session ends with L{ServerUnreachableError}.
        """
        self.connect(timeout=1.0, retries=2)
        self.console.dataReceived(b"a\nb\n")
        self.clock.pump([1.0, 1.0])
        self.assertEqual(self.socket.sent, [b"a"] * 3)
        self.assertNoResult(self.done)
        self.clock.advance(1.0)
        self.stdioCloses()
        error = self.failureResultOf(self.done, ServerUnreachableError).value
        self.assertEqual(str(error), "no echo after 3 tries, 1 s each")
        self.assertEqual(self.socket.sent, [b"a"] * 3)

    def test_lostMidSession(self) -> None:
        """
        A line unanswered after every retry, once earlier ones were echoed,
        ends the session with L{SessionLostError} naming the line.
        """
        self.connect(timeout=0.5, retries=0)
        self.console.dataReceived(b"a\nb\n")
        self.echo()
        self.clock.advance(0.5)
        self.stdioCloses()
        error = self.failureResultOf(self.done, SessionLostError).value
        self.assertEqual(str(error), "no echo of line 2 after 1 try, 0.5 s each")
        self.assertEqual(self.stdio.value(), b"a\n")

    def test_lateDuplicateDropped(self) -> None:
        """
        The late echo of a line sent twice is not taken for the next line's
        echo.
        """
        self.connect()
        self.console.dataReceived(b"a\nb\n")
        self.clock.advance(1.0)
        self.echo()  # the echo of a's second copy
        self.assertEqual(self.socket.sent, [b"a", b"a", b"b"])
        self.client.datagramReceived(b"a", ("127.0.0.1", 7))  # the first copy's
        self.assertEqual(self.stdio.value(), b"a\n")
        self.echo()
        self.assertEqual(self.stdio.value(), b"a\nb\n")

    def test_refusedFirst(self) -> None:
        """
        An ICMP port unreachable before any echo means nothing listens: the
        server is unreachable, whether the reactor reports it as refused or
        closes the socket (as the epoll reactor does).
        """
        for report in ("connectionRefused", "stopProtocol"):
            self.connect()
            self.console.dataReceived(b"a\n")
            getattr(self.client, report)()
            self.stdioCloses()
            error = self.failureResultOf(self.done, ServerUnreachableError).value
            self.assertIn("connection refused", str(error))

    def test_refusedLater(self) -> None:
        """
        Refused after echoes came back, the session was lost.
        """
        self.connect()
        self.console.dataReceived(b"a\nb\n")
        self.echo()
        self.client.stopProtocol()
        self.stdioCloses()
        error = self.failureResultOf(self.done, SessionLostError).value
        self.assertIn("any more", str(error))

    def test_ownCloseIsNoRefusal(self) -> None:
        """
        The socket closing after the session ended on its own does not turn
        a clean end into an error.
        """
        self.connect()
        self.console.dataReceived(b"exit\n")
        self.echo()
        self.client.stopProtocol()
        self.stdioCloses()
        self.assertIsNone(self.successResultOf(self.done))

    def test_prompt(self) -> None:
        """
        On a terminal the prompt is shown whenever no line is waiting for
        its echo, and the session ends on a new line.
        """
        self.connect(prompt=PROMPT)
        self.assertEqual(self.stdio.value(), PROMPT)
        self.console.dataReceived(b"a\n")
        self.assertEqual(self.stdio.value(), PROMPT)
        self.echo()
        self.assertEqual(self.stdio.value(), PROMPT + b"a\n" + PROMPT)
        self.console.readConnectionLost()
        self.assertEqual(self.stdio.value(), PROMPT + b"a\n" + PROMPT + b"\n")

    def test_outputBackedUp(self) -> None:
        """
        While stdout is backed up no new line is sent; the echo of the line
        in flight is still taken.
        """
        self.connect()
        self.assertIs(self.stdio.producer, self.console)
        self.console.dataReceived(b"a\nb\n")
        self.console.pauseProducing()
        self.echo()
        self.assertEqual(self.socket.sent, [b"a"])
        self.console.resumeProducing()
        self.assertEqual(self.socket.sent, [b"a", b"b"])

    def test_readAhead(self) -> None:
        """
        Reading stdin pauses while many lines wait to be sent and resumes as
        they go.
        """
        self.connect()
        self.console.dataReceived(b"x\n" * (READ_AHEAD + 1))
        self.assertEqual(self.stdio.producerState, "paused")
        for _ in range(READ_AHEAD // 2 + 1):
            self.echo()
        self.assertEqual(self.stdio.producerState, "producing")

    def test_stdoutClosed(self) -> None:
        """
        A closed stdout ends the session at once.
        """
        self.connect()
        self.console.dataReceived(b"a\nb\n")
        self.console.writeConnectionLost()
        self.failureResultOf(self.done, OutputClosedError)
        self.assertFalse(self.socket.listening)
        self.clock.advance(60)
        self.assertEqual(self.socket.sent, [b"a"])

    def test_lineTooLong(self) -> None:
        """
        A line longer than a datagram holds ends the session with an error.
        """
        self.connect()
        self.console.dataReceived(b"x" * (MAX_DATAGRAM + 1) + b"\n")
        self.stdioCloses()
        error = self.failureResultOf(self.done, SessionLostError).value
        self.assertIn(str(MAX_DATAGRAM), str(error))
        self.assertEqual(self.socket.sent, [])

    def test_refusedBySystem(self) -> None:
        """
        A datagram the system refuses as too long ends the session.
        """
        self.connect()
        self.socket.tooLong = True
        self.console.dataReceived(b"a\n")
        self.stdioCloses()
        error = self.failureResultOf(self.done, SessionLostError).value
        self.assertEqual(str(error), "line 1 is too long for UDP")


class UDPOptionsTests(SynchronousTestCase):
    """
    The UDP part of C{nbecho-client}'s command line.
    """

    def parse(self, *argv: str) -> Options:
        options = Options()
        options.parseOptions(argv)
        return options

    def test_udpFlag(self) -> None:
        """
        C{--udp} (C{-u}) takes the host and port as TCP does, with a timeout
        of 1 s and 3 retries by default.
        """
        options = self.parse("-u", "::1", "7")
        self.assertEqual(options.udpAddress, ("::1", 7))
        self.assertEqual((options["timeout"], options["retries"]), (1.0, 3))
        self.assertEqual(self.parse("--udp").udpAddress, ("127.0.0.1", 9999))
        self.assertIsNone(self.parse().udpAddress)

    def test_connectString(self) -> None:
        """
        A C{udp:} connect string implies C{--udp}; its IPv6 colons are
        escaped as in Twisted's endpoint strings.
        """
        options = self.parse("--connect", "udp:host=localhost:port=7")
        self.assertEqual(options.udpAddress, ("localhost", 7))
        self.assertEqual(parseUDPTarget("udp:127.0.0.1:9"), ("127.0.0.1", 9))
        self.assertEqual(parseUDPTarget(r"udp:port=9:host=\:\:1"), ("::1", 9))

    def test_timeoutRetries(self) -> None:
        """
        C{--timeout} takes seconds, C{--retries} a count, 0 for none.
        """
        options = self.parse("-u", "--timeout", "0.25", "--retries", "0")
        self.assertEqual((options["timeout"], options["retries"]), (0.25, 0))

    def test_usageErrors(self) -> None:
        """
        A stream endpoint with C{--udp}, UDP options without it, bad values
        and bad C{udp:} strings are one-line usage errors.
        """
        cases = [
            ("--udp", "--connect", "tls:host=h:port=1"),
            ("--udp", "--connect", "tcp:h:1"),
            ("--timeout", "2"),
            ("--retries", "2"),
            ("-u", "--timeout", "0"),
            ("-u", "--timeout", "nan"),
            ("-u", "--timeout", "x"),
            ("-u", "--retries", "-1"),
            ("-u", "--retries", "1.5"),
            ("--connect", "udp:host=h"),
            ("--connect", "udp:host=h:port=0"),
            ("--connect", "udp:host=h:port=1:bind=x"),
            ("--connect", "udp:h:1:2"),
            ("--connect", "udp:h:1", "--ca", "x.pem"),
        ]
        for argv in cases:
            error = self.assertRaises(usage.UsageError, self.parse, *argv)
            self.assertNotIn("\n", str(error))

    def test_usageExit(self) -> None:
        """
        C{--udp} with a TLS endpoint exits with status 2 and one line.
        """
        stderr = io.StringIO()
        self.patch(sys, "stderr", stderr)
        error = self.assertRaises(
            SystemExit, main, ["--udp", "--connect", "tls:host=h:port=1"]
        )
        self.assertEqual(error.code, EXIT_USAGE)
        self.assertEqual(
            stderr.getvalue(),
            "nbecho-client: --udp sends datagrams: give --connect "
            "udp:host=HOST:port=PORT, not 'tls:host=h:port=1' "
            "(see: nbecho-client --help)\n",
        )
