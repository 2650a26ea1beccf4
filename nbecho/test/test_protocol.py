"""
Tests for L{nbecho.server.protocol}: raw framing, echo, C{exit}, half-close,
backpressure wiring, counters and log lines, over in-memory transports.
"""

from __future__ import annotations

from twisted.internet.address import IPv6Address
from twisted.internet.error import ConnectionLost
from twisted.internet.task import Clock
from twisted.logger import LogLevel, formatEvent
from twisted.trial.unittest import SynchronousTestCase

from nbecho.server import protocol
from nbecho.server.factory import EchoFactory
from nbecho.settings import EchoSettings
from nbecho.test._helpers import (
    PEER,
    FakeTime,
    LogTestCase,
    RecordingTransport,
    attach,
    connect,
    disconnect,
)


class RawFramingTests(SynchronousTestCase):
    """
    In raw framing each chunk read is one message, echoed as it came.
    """

    settings = EchoSettings(framing="raw", exitWord=b"exit")

    def test_chunkEchoedAsIs(self) -> None:
        """
        Each chunk, lines or not, comes back unchanged in a write of its own.
        """
        proto, transport = connect(self.settings)
        chunks = [b"no newline", b"a\nb\r\n", b"\n"]
        for chunk in chunks:
            proto.dataReceived(chunk)
        self.assertEqual(transport.writes, chunks)
        self.assertEqual(proto.messages, 3)

    def test_bulkReadsRaiseReadSize(self) -> None:
        """
        A chunk that fills the transport's read buffer (Twisted's
        C{bufferSize}) raises it to C{bulkReadSize}, once, as in line
        framing; a smaller chunk leaves it as it is.
        """
        transport = RecordingTransport(PEER)
        transport.bufferSize = 8  # type: ignore[attr-defined]
        proto, _ = attach(EchoFactory(self.settings, Clock()), PEER, transport)
        proto.dataReceived(b"1234567")
        self.assertEqual(transport.bufferSize, 8)  # type: ignore[attr-defined]
        proto.dataReceived(b"12345678")
        self.assertEqual(
            transport.bufferSize,  # type: ignore[attr-defined]
            protocol.EchoProtocol.bulkReadSize,
        )
        self.assertEqual(transport.value(), b"123456712345678")

    def test_binary(self) -> None:
        """
        Every byte value comes back, including NUL, CR and LF.
        """
        proto, transport = connect(self.settings)
        data = bytes(range(256)) * 4
        proto.dataReceived(data)
        self.assertEqual(transport.value(), data)
        self.assertFalse(transport.disconnecting)

    def test_exitWord(self) -> None:
        """
        A chunk that is the exit word given for raw framing, bare or with LF
        or CRLF, is echoed, then the connection closes.
        """
        for chunk in (b"exit", b"exit\n", b"exit\r\n"):
            proto, transport = connect(self.settings)
            proto.dataReceived(chunk)
            self.assertEqual(transport.value(), chunk)
            self.assertTrue(transport.disconnecting, chunk)
            proto.dataReceived(b"late")
            self.assertEqual(transport.value(), chunk)

    def test_notExitWord(self) -> None:
        """
        Chunks that only contain the exit word are ordinary messages.
        """
        proto, transport = connect(self.settings)
        for chunk in (b"exit\n\n", b"exits", b"\nexit", b"a\nexit\n"):
            proto.dataReceived(chunk)
        self.assertFalse(transport.disconnecting)

    def test_exitWordOff(self) -> None:
        """
        Raw framing has no exit word unless one is given: C{exit} is just
        echoed.
        """
        proto, transport = connect(EchoSettings(framing="raw"))
        proto.dataReceived(b"exit\n")
        proto.dataReceived(b"")
        self.assertEqual(transport.value(), b"exit\n")
        self.assertFalse(transport.disconnecting)

    def test_halfClose(self) -> None:
        """
        When the client stops sending, the connection closes after what was
        already echoed.
        """
        proto, transport = connect(self.settings)
        proto.dataReceived(b"abc")
        proto.readConnectionLost()
        self.assertEqual(transport.value(), b"abc")
        self.assertTrue(transport.disconnecting)
        self.assertEqual(proto.closeWhy, "client finished sending")


class BackpressureTests(SynchronousTestCase):
    """
    The transport is its own streaming producer, so a client that stops
    reading gets its reading paused; closing must undo that first.
    """

    def test_registeredAtConnect(self) -> None:
        """
        After connectionMade the transport is registered as a streaming
        producer on itself, in both framings.
        """
        for framing in ("line", "raw"):
            _, transport = connect(EchoSettings(framing=framing))
            self.assertIs(transport.producer, transport)
            self.assertTrue(transport.streaming)

    def test_closeUnregistersFirst(self) -> None:
        """
        Every way of closing unregisters the producer before loseConnection,
        even while the transport is paused.
        """
        ways = [
            ("line", b"exit\n", False),
            ("line", b"x" * 140000, False),
            ("line", b"partial", True),
            ("raw", b"exit", False),
            ("raw", b"data", True),
        ]
        for framing, data, halfClose in ways:
            proto, transport = connect(EchoSettings(framing=framing, exitWord=b"exit"))
            transport.pauseProducing()
            proto.dataReceived(data)
            if halfClose:
                proto.readConnectionLost()
            self.assertTrue(transport.disconnecting, (framing, data))
            self.assertIsNone(transport.producerAtClose, (framing, data))
            self.assertIsNone(transport.producer)

    def test_closeOnce(self) -> None:
        """
        Closing twice (exit, then the write side going away) is harmless and
        keeps the first reason.
        """
        proto, _ = connect()
        proto.dataReceived(b"exit\n")
        proto.writeConnectionLost()
        proto.readConnectionLost()
        self.assertEqual(proto.closeWhy, "exit word")


class CounterTests(SynchronousTestCase):
    """
    Per-connection counters, for the close line.
    """

    def test_perConnection(self) -> None:
        """
        Messages, bytes in and bytes out are counted per connection,
        including the half-close partial line.
        """
        proto, _ = connect()
        proto.dataReceived(b"ab\r\ncd\nef")
        proto.readConnectionLost()
        self.assertEqual((proto.messages, proto.bytesIn, proto.bytesOut), (3, 9, 9))


class LoggingTests(LogTestCase):
    """
    The seed's C{Accept}, C{Read Data} and C{close} lines, safe to print.
    """

    def test_accept(self) -> None:
        """
        Each connection logs C{Accept} with its peer, IPv6 bracketed.
        """
        connect()
        connect(peer=IPv6Address("TCP", "::1", 40001))
        self.assertEqual(
            self.logLines(), ["Accept 127.0.0.1:40000", "Accept [::1]:40001"]
        )

    def test_readDataEscaped(self) -> None:
        """
        Each message, the half-close partial line too, is logged with its
        peer, without its terminator, and with terminal control bytes escaped.
        """
        proto, _ = connect()
        proto.dataReceived(b"hi\r\n\x1b]0;owned\x07\n\xff\xfe\nlast")
        proto.readConnectionLost()
        self.assertEqual(
            self.readData(),
            [
                "Read Data 127.0.0.1:40000 hi",
                "Read Data 127.0.0.1:40000 \\x1b]0;owned\\x07",
                "Read Data 127.0.0.1:40000 \\xff\\xfe",
                "Read Data 127.0.0.1:40000 last",
            ],
        )

    def test_readDataRaw(self) -> None:
        """
        In raw framing each chunk is logged once, escaped.
        """
        proto, _ = connect(EchoSettings(framing="raw"))
        proto.dataReceived(b"\x00bin\x9b")
        self.assertEqual(self.readData(), ["Read Data 127.0.0.1:40000 \\x00bin\\x9b"])

    def test_quiet(self) -> None:
        """
        Quiet mode drops the per-message lines but still counts messages and
        logs the connection's start and end.
        """
        for framing in ("line", "raw"):
            proto, transport = connect(
                EchoSettings(framing=framing, quiet=True, exitWord=b"exit")
            )
            proto.dataReceived(b"one\ntwo\n")
            proto.dataReceived(b"exit\n")
            self.assertEqual(transport.value(), b"one\ntwo\nexit\n")
            self.assertTrue(transport.disconnecting)
            self.assertEqual(proto.messages, 3 if framing == "line" else 2)
            disconnect(proto)
        self.assertEqual(self.readData(), [])
        self.assertEqual(
            [line.split(" ")[0] for line in self.logLines()],
            ["Accept", "close", "Accept", "close"],
        )

    def test_closeLine(self) -> None:
        """
        The close line names the peer, why it closed, the message count, the
        bytes received and sent, and how long the connection lasted.
        """
        clock = Clock()
        clock.advance(100)
        self.patch(protocol, "time", FakeTime(clock))
        proto, _ = connect()
        proto.dataReceived(b"hello\nworld\nexit\n")
        clock.advance(1.5)
        disconnect(proto)
        self.assertEqual(
            self.logLines()[-1],
            "close 127.0.0.1:40000 (exit word): "
            "3 messages, 17 bytes in, 17 bytes out, 1.500s",
        )

    def test_closeReasons(self) -> None:
        """
        Without a reason of its own, the close line says whether the client
        closed cleanly or how the connection was lost.
        """
        proto, _ = connect()
        disconnect(proto)
        proto, _ = connect(EchoSettings(maxLineLength=3))
        proto.dataReceived(b"long")
        disconnect(proto)
        proto, _ = connect()
        proto.dataReceived(b"a\n")
        disconnect(proto, ConnectionLost("reset by peer"))
        closes = [line for line in self.logLines() if line.startswith("close ")]
        self.assertEqual(len(closes), 3)
        self.assertIn("(client closed): 0 messages, 0 bytes in, 0 bytes out", closes[0])
        # The error line the client received counts as sent.
        error = (
            b"error: line too long (limit 3 bytes; raise it with --max-line-length)\n"
        )
        self.assertIn(
            f"(line too long): 0 messages, 4 bytes in, {len(error)} bytes out",
            closes[1],
        )
        self.assertIn("reset by peer", closes[2])
        self.assertIn("1 message, 2 bytes in, 2 bytes out", closes[2])

    def test_lineTooLongWarning(self) -> None:
        """
        A refused line is logged as a warning with its length and the limit.
        """
        proto, _ = connect(EchoSettings(maxLineLength=4))
        proto.dataReceived(b"123456\n")
        warnings = [e for e in self.events if e["log_level"] == LogLevel.warn]
        self.assertEqual(
            [formatEvent(e) for e in warnings],
            ["Line too long from 127.0.0.1:40000: 6 bytes, limit 4"],
        )


class TLSEchoTests(SynchronousTestCase):
    def test_endedSessionNotCounted(self) -> None:
        """
        An echo a TLS session that has ended can no longer send is counted
        as not echoed, not as bytes out, and the close reason says so.
        """
        from twisted.protocols.tls import TLSMemoryBIOProtocol

        transport = TLSMemoryBIOProtocol.__new__(TLSMemoryBIOProtocol)
        transport._lostTLSConnection = True
        echo = protocol.EchoProtocol()
        echo.transport = transport  # type: ignore[assignment]
        echo._echoTLS(b"x" * 20_000)
        self.assertEqual((echo.bytesOut, echo.notEchoed), (0, 20_000))
        self.assertEqual(
            protocol._notEchoed("client closed", echo.notEchoed),
            "client closed TLS with 20,000 bytes not echoed",
        )
        self.assertEqual(
            protocol._notEchoed("idle timeout", 5), "idle timeout, 5 bytes not echoed"
        )
        self.assertEqual(protocol._notEchoed("client closed", 0), "client closed")


class _NoDelayTransport(RecordingTransport):
    """
    A transport that records C{setTcpNoDelay}, or refuses it as a UNIX
    socket does.
    """

    noDelay: bool | None = None
    refuse = False

    def setTcpNoDelay(self, enabled: bool) -> None:
        if self.refuse:
            raise OSError(95, "Operation not supported")
        self.noDelay = enabled


class NoDelayTests(SynchronousTestCase):
    """
    Echoes are not held back by Nagle's algorithm.
    """

    def test_noDelaySet(self) -> None:
        """
        A new connection turns Nagle's algorithm off, as asyncio does, so
        the tail of a large echo does not wait for a delayed ACK.
        """
        transport = _NoDelayTransport(PEER)
        attach(EchoFactory(EchoSettings(), Clock()), PEER, transport)
        self.assertIs(transport.noDelay, True)

    def test_noDelayRefused(self) -> None:
        """
        A transport that cannot turn it off (a UNIX socket) still echoes.
        """
        transport = _NoDelayTransport(PEER)
        transport.refuse = True
        proto, _ = attach(EchoFactory(EchoSettings(), Clock()), PEER, transport)
        proto.dataReceived(b"hi\n")
        self.assertEqual(transport.value(), b"hi\n")
        self.assertIsNone(transport.noDelay)
