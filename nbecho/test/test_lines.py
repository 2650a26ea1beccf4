"""
Tests for L{nbecho.server.lines}: line framing wherever the chunk boundaries fall,
the exit word as a line, and the line length limit.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Callable

from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.internet.task import Clock
from twisted.internet.testing import EventLoggingObserver
from twisted.logger import globalLogPublisher
from twisted.trial.unittest import SynchronousTestCase

from nbecho.server._libc import ReadBuffer
from nbecho.server.factory import EchoFactory
from nbecho.server.lines import LineEchoProtocol
from nbecho.server.protocol import EchoProtocol
from nbecho.settings import EchoSettings
from nbecho.test._helpers import (
    PEER,
    RecordingTransport,
    attach,
    captureLogs,
    connect,
    disconnect,
    logLines,
)


class LineFramingTests(SynchronousTestCase):
    """
    Lines are found wherever the chunk boundaries fall.
    """

    def test_splitAtEveryPoint(self) -> None:
        """
        Lines cut into three chunks at any two points come back whole and are
        counted once each.
        """
        data = b"one\ntwo\r\n\nthree\r\n"
        for first in range(len(data) + 1):
            for second in range(first, len(data) + 1):
                proto, transport = connect()
                for chunk in (data[:first], data[first:second], data[second:]):
                    proto.dataReceived(chunk)
                self.assertEqual(transport.value(), data, (first, second))
                self.assertEqual(proto.messages, 4, (first, second))
                self.assertFalse(transport.disconnecting)

    def test_partialLineWaits(self) -> None:
        """
        A line is echoed only once its LF arrives, then in one write.
        """
        proto, transport = connect()
        proto.dataReceived(b"hel")
        proto.dataReceived(b"lo")
        self.assertEqual(transport.writes, [])
        proto.dataReceived(b" world\nnext")
        self.assertEqual(transport.writes, [b"hello world\n"])
        self.assertEqual(proto.messages, 1)

    def test_crlfSplitBetweenChunks(self) -> None:
        """
        A CR at the end of one chunk and its LF at the start of the next make
        one CRLF terminator: the CR is echoed but not part of the message.
        """
        proto, transport = connect()
        proto.dataReceived(b"hello\r")
        self.assertEqual(transport.value(), b"")
        proto.dataReceived(b"\nexit\r")
        self.assertFalse(transport.disconnecting)
        proto.dataReceived(b"\n")
        self.assertEqual(transport.value(), b"hello\r\nexit\r\n")
        self.assertTrue(transport.disconnecting)
        self.assertEqual(proto.messages, 2)

    def test_emptyLines(self) -> None:
        """
        Empty lines, LF or CRLF, are messages of their own and are echoed.
        """
        proto, transport = connect()
        proto.dataReceived(b"\n\r\n\n")
        self.assertEqual(transport.value(), b"\n\r\n\n")
        self.assertEqual(proto.messages, 3)
        self.assertFalse(transport.disconnecting)

    def test_thousandsOfLinesOneWrite(self) -> None:
        """
        All complete lines of one chunk go back in exactly one write.
        """
        data = b"".join(b"line %d\n" % (n,) for n in range(5000))
        proto, transport = connect()
        proto.dataReceived(data + b"tail")
        self.assertEqual(transport.writes, [data])
        self.assertEqual(proto.messages, 5000)

    def test_halfCloseEchoesPartialLine(self) -> None:
        """
        A partial line left when the client stops sending is echoed as the
        last message, then the connection closes.
        """
        proto, transport = connect()
        proto.dataReceived(b"a\nb")
        self.assertEqual(transport.value(), b"a\n")
        proto.readConnectionLost()
        self.assertEqual(transport.value(), b"a\nb")
        self.assertEqual(proto.messages, 2)
        self.assertTrue(transport.disconnecting)


class ExitWordTests(SynchronousTestCase):
    """
    A line equal to the exit word is echoed, then the connection closes.
    """

    def test_exitInsideBatch(self) -> None:
        """
        Lines before C{exit} and C{exit} itself are echoed; later lines in the
        same chunk and later chunks are not.
        """
        proto, transport = connect()
        proto.dataReceived(b"one\ntwo\nexit\nthree\nfour")
        self.assertEqual(transport.value(), b"one\ntwo\nexit\n")
        self.assertTrue(transport.disconnecting)
        self.assertEqual(proto.messages, 3)
        proto.dataReceived(b"five\n")
        proto.readConnectionLost()
        self.assertEqual(transport.value(), b"one\ntwo\nexit\n")

    def test_exitCRLF(self) -> None:
        """
        C{exit} ended by CRLF, as telnet sends it, closes the connection and
        is echoed with its CR.
        """
        proto, transport = connect()
        proto.dataReceived(b"exit\r\n")
        self.assertEqual(transport.value(), b"exit\r\n")
        self.assertTrue(transport.disconnecting)

    def test_notExactlyExit(self) -> None:
        """
        Lines that merely contain the exit word are ordinary messages.
        """
        data = b"exits\n exit\nexit \nEXIT\nexit\r\r\nxexit\n"
        proto, transport = connect()
        proto.dataReceived(data)
        self.assertEqual(transport.value(), data)
        self.assertFalse(transport.disconnecting)

    def test_exitWordChanged(self) -> None:
        """
        With C{--exit-word quit}, C{exit} is an ordinary line and C{quit}
        ends the connection.
        """
        proto, transport = connect(EchoSettings(exitWord=b"quit"))
        proto.dataReceived(b"exit\n")
        self.assertFalse(transport.disconnecting)
        proto.dataReceived(b"quit\nafter\n")
        self.assertEqual(transport.value(), b"exit\nquit\n")
        self.assertTrue(transport.disconnecting)

    def test_exitWordOff(self) -> None:
        """
        An empty exit word turns the feature off: neither C{exit} nor an
        empty line closes the connection.
        """
        proto, transport = connect(EchoSettings(exitWord=b""))
        proto.dataReceived(b"exit\n\n\r\nexit")
        proto.dataReceived(b"\r\n")
        self.assertEqual(transport.value(), b"exit\n\n\r\nexit\r\n")
        self.assertFalse(transport.disconnecting)
        self.assertEqual(proto.messages, 4)


class LineLengthTests(SynchronousTestCase):
    """
    A line longer than C{maxLineLength} ends the connection with an error
    line, so that no client makes the server buffer without bound.
    """

    error = b"error: line too long (limit 8 bytes; raise it with --max-line-length)\n"

    def test_tooLongCompleteLine(self) -> None:
        """
        Lines before the long one are echoed, then the error line, then the
        connection closes and later lines are dropped, quiet or not.
        """
        for quiet in (False, True):
            proto, transport = connect(EchoSettings(maxLineLength=8, quiet=quiet))
            proto.dataReceived(b"short\n" + b"x" * 9 + b"\nafter\n")
            self.assertEqual(transport.value(), b"short\n" + self.error, quiet)
            self.assertTrue(transport.disconnecting)
            self.assertEqual(proto.messages, 1)
            self.assertEqual(proto.closeWhy, "line too long")

    def test_oneByteTooLong(self) -> None:
        """
        A line one byte over the limit, alone in its chunk with its LF, is
        refused whether or not the server is quiet.
        """
        for quiet in (False, True):
            proto, transport = connect(EchoSettings(maxLineLength=8, quiet=quiet))
            proto.dataReceived(b"123456789\n")
            self.assertEqual(transport.value(), self.error, quiet)
            self.assertTrue(transport.disconnecting)

    def test_tooLongAmongManyLines(self) -> None:
        """
        A long line deep in a big quiet batch is still caught.
        """
        proto, transport = connect(EchoSettings(maxLineLength=8, quiet=True))
        proto.dataReceived(b"ok\n" * 100 + b"y" * 20 + b"\r\n")
        self.assertEqual(transport.value(), b"ok\n" * 100 + self.error)
        self.assertEqual(proto.messages, 100)

    def test_exactlyTheLimit(self) -> None:
        """
        A line of exactly C{maxLineLength} bytes is fine, with LF or CRLF.
        """
        for quiet in (False, True):
            proto, transport = connect(EchoSettings(maxLineLength=8, quiet=quiet))
            proto.dataReceived(b"12345678\n12345678\r\n")
            self.assertEqual(transport.value(), b"12345678\n12345678\r\n")
            self.assertFalse(transport.disconnecting)

    def test_tooLongPartialLine(self) -> None:
        """
        A partial line that already exceeds the limit is refused without
        waiting for its LF, and not echoed at half-close.
        """
        proto, transport = connect(EchoSettings(maxLineLength=8))
        proto.dataReceived(b"ok\n12345")
        proto.dataReceived(b"6789")
        self.assertEqual(transport.value(), b"ok\n" + self.error)
        self.assertTrue(transport.disconnecting)
        proto.readConnectionLost()
        self.assertEqual(transport.value(), b"ok\n" + self.error)

    def test_limitThenCRThenLF(self) -> None:
        """
        A partial line of exactly the limit followed by CR may still end in
        CRLF: its LF in the next chunk completes a valid line.
        """
        proto, transport = connect(EchoSettings(maxLineLength=8))
        proto.dataReceived(b"12345678\r")
        self.assertFalse(transport.disconnecting)
        proto.dataReceived(b"\n")
        self.assertEqual(transport.value(), b"12345678\r\n")
        self.assertFalse(transport.disconnecting)

    def test_limitThenCRThenMore(self) -> None:
        """
        A CR after a full-length partial line that is not followed by LF
        makes the line too long.
        """
        proto, transport = connect(EchoSettings(maxLineLength=8))
        proto.dataReceived(b"12345678\r")
        proto.dataReceived(b"x")
        self.assertEqual(transport.value(), self.error)
        self.assertTrue(transport.disconnecting)


class LongLineTests(SynchronousTestCase):
    """
    A long line costs each read only its own bytes: the partial line grows
    in place, its length is counted as it grows, and it is copied out once.
    """

    def test_partialHeldAsPieces(self) -> None:
        """
        Reads without an LF are held as they came when they are large
        (C{pieceSize} and over), never copied or joined; small ones are
        gathered in one C{bytearray} that grows in place.  The line then
        comes back whole, in order, in one write.
        """
        proto, transport = connect(EchoSettings(maxLineLength=1 << 20))
        assert isinstance(proto, LineEchoProtocol)
        first = b"x" * 5000
        proto.dataReceived(first)
        pieces = proto._pieces
        assert pieces is not None
        self.assertIs(pieces[0], first)
        large = [bytes([65 + i]) * 4096 for i in range(3)]
        for piece in large:
            proto.dataReceived(piece)
        self.assertEqual(len(pieces), 4)
        for held, piece in zip(pieces[1:], large):
            self.assertIs(held, piece)
        for _ in range(1000):
            proto.dataReceived(b"y" * 10)
        self.assertEqual(len(pieces), 5)
        self.assertIsInstance(pieces[-1], bytearray)
        self.assertEqual(transport.writes, [])
        proto.dataReceived(b"z\r\nnext")
        self.assertEqual(
            transport.writes, [first + b"".join(large) + b"y" * 10_000 + b"z\r\n"]
        )
        assert proto._pieces is not None
        self.assertEqual([bytes(piece) for piece in proto._pieces], [b"next"])
        self.assertEqual(proto.messages, 1)

    def test_spannedLineEndsConnection(self) -> None:
        """
        A line held in pieces that turns out too long is refused when its
        LF comes, and nothing of it is echoed; one that is the exit word,
        CR included, ends the connection after its echo.
        """
        proto, transport = connect(EchoSettings(maxLineLength=10))
        assert isinstance(proto, LineEchoProtocol)
        proto.pieceSize = 1
        for piece in (b"ok\n12345", b"67890", b"\r", b"1\n"):
            proto.dataReceived(piece)
        self.assertEqual(transport.value(), b"ok\n" + self.error)
        proto, transport = connect()
        assert isinstance(proto, LineEchoProtocol)
        proto.pieceSize = 1
        for piece in (b"a\nex", b"i", b"t\r", b"\nmore\n"):
            proto.dataReceived(piece)
        self.assertEqual(transport.value(), b"a\nexit\r\n")
        self.assertEqual(proto.closeWhy, "exit word")

    error = b"error: line too long (limit 10 bytes; raise it with --max-line-length)\n"

    def test_bulkReadsRaiseReadSize(self) -> None:
        """
        A read that fills the transport's read buffer (Twisted's
        C{bufferSize}) raises it to C{bulkReadSize}, once; smaller reads
        leave it as it is, and so does a transport without one.
        """
        transport = RecordingTransport(PEER)
        transport.bufferSize = 8  # type: ignore[attr-defined]
        proto, _ = attach(EchoFactory(EchoSettings(), Clock()), PEER, transport)
        assert isinstance(proto, LineEchoProtocol)
        proto.dataReceived(b"1234567")
        self.assertEqual(transport.bufferSize, 8)  # type: ignore[attr-defined]
        proto.dataReceived(b"12345678")
        self.assertEqual(transport.bufferSize, LineEchoProtocol.bulkReadSize)  # type: ignore[attr-defined]
        proto.dataReceived(b"\n")
        self.assertEqual(transport.value(), b"123456712345678\n")
        other, plain = connect()
        other.dataReceived(b"x" * 65536 + b"\n")
        self.assertFalse(hasattr(plain, "bufferSize"))

    def test_lengthCountedAcrossReads(self) -> None:
        """
        A line one byte over the limit, in one-byte reads, is refused on its
        last byte, not before; a CR at the limit waits for the next byte.
        """
        proto, transport = connect(EchoSettings(maxLineLength=8))
        for byte in b"12345678\r":
            proto.dataReceived(bytes([byte]))
        self.assertFalse(transport.disconnecting)
        proto.dataReceived(b"9")
        self.assertEqual(
            transport.value(),
            b"error: line too long (limit 8 bytes; raise it with --max-line-length)\n",
        )
        self.assertTrue(transport.disconnecting)

    def test_exitWordInPieces(self) -> None:
        """
        The exit word sent a byte a read, CRLF split too, ends the
        connection.
        """
        proto, transport = connect()
        for byte in b"hi\nexit\r\nmore\n":
            proto.dataReceived(bytes([byte]))
        self.assertEqual(transport.value(), b"hi\nexit\r\n")
        self.assertEqual(proto.closeWhy, "exit word")

    def test_finishEchoesPiecedPartialLine(self) -> None:
        """
        A partial line made of many reads is echoed whole, once, when the
        client stops sending, and logged as one message.
        """
        events = captureLogs(self)
        proto, transport = connect()
        for piece in (b"ab", b"cd", b"e\r"):
            proto.dataReceived(piece)
        proto.readConnectionLost()
        self.assertEqual(transport.writes, [b"abcde\r"])
        self.assertIn("Read Data 127.0.0.1:40000 abcde", logLines(events))
        self.assertEqual(proto.messages, 1)


_texts = st.lists(
    st.sampled_from([b"a", b"bc", b"\n", b"\r", b"\r\n", b"exit", b"\xff", b"\x1b"]),
    max_size=40,
).map(b"".join)


class AnySplitTests(SynchronousTestCase):
    """
    Where reads end changes nothing: not the echoes, not the log.
    """

    @settings(max_examples=300, deadline=None, database=None)
    @given(
        _texts,
        st.lists(st.integers(0, 200), max_size=12),
        st.integers(1, 12),
        st.integers(0, 4),
        st.booleans(),
    )
    def test_sameAsOneRead(
        self,
        data: bytes,
        cuts: list[int],
        limit: int,
        logRate: int,
        halfClose: bool,
    ) -> None:
        """
        The data cut at any points gives the same echoes, counts, close
        reason and log lines (rate limit and summaries included) as the
        data in one read.
        """
        bounds = sorted({0, len(data), *(cut % (len(data) + 1) for cut in cuts)})
        chunks = [data[a:b] for a, b in zip(bounds, bounds[1:])]
        echoSettings = EchoSettings(maxLineLength=limit, logRate=logRate)
        one = _run(self, echoSettings, [data] if data else [], halfClose)
        many = _run(self, echoSettings, chunks, halfClose)
        self.assertEqual(many, one)
        # Every read held as a piece of its own, as large reads are; every
        # line walked (PyPy) or all but the first split (CPython).
        for split in (1, sys.maxsize):
            pieces = _run(self, echoSettings, chunks, halfClose, 1, split)
            self.assertEqual(pieces, one)


def _run(
    case: SynchronousTestCase,
    echoSettings: EchoSettings,
    chunks: list[bytes],
    halfClose: bool,
    pieceSize: int = LineEchoProtocol.pieceSize,
    splitAbove: int = LineEchoProtocol.splitAbove,
    throughBuffer: bool = False,
    pooled: bool = False,
) -> tuple[bytes, int, str, list[str]]:
    """
    Feed C{chunks} to a new connection, end it, and return what came back,
    the message count, why it closed and its log lines.

    With C{throughBuffer}, each chunk arrives as a read into a shared read
    buffer does (L{EchoProtocol.bufferReceived}), and the buffer is
    overwritten after each: an echo or a held line that kept a view of it
    comes out wrong.  With C{pooled}, every partial line is copied into a
    spare buffer, and spares given back are overwritten at once: a spare
    given back while its line was still held comes out wrong too.
    """
    events = EventLoggingObserver()
    globalLogPublisher.addObserver(events)
    try:
        proto, transport = connect(echoSettings)
        proto.pieceSize = pieceSize  # type: ignore[attr-defined]
        proto.splitAbove = splitAbove  # type: ignore[attr-defined]
        feed: Callable[[bytes], None] = proto.dataReceived
        if throughBuffer:
            feed = _readsIntoBuffer(proto, transport, pooled)
        for chunk in chunks:
            feed(chunk)
        if halfClose:
            proto.readConnectionLost()
        disconnect(proto)
    finally:
        globalLogPublisher.removeObserver(events)
    # A line is refused as soon as it is too long: how much of it had
    # arrived by then depends on the reads.
    lines = [
        re.sub(r"^(Line too long from \S+) \d+ bytes", r"\1 N bytes", line)
        for line in logLines(events)
        if not line.startswith("close ")
    ]
    return transport.value(), proto.messages, proto.closeWhy, lines


class _Watched(bytes):
    """
    A read that fails the test if it is searched for anything but an LF.
    """

    def _only(self, sub: object) -> None:
        if sub != b"\n":
            raise AssertionError(f"the chunk was searched for {sub!r}")

    def __contains__(self, sub: object) -> bool:
        self._only(sub)
        return super().__contains__(sub)  # type: ignore[operator]

    def find(self, sub: object, *bounds: object) -> int:
        self._only(sub)
        return super().find(sub, *bounds)  # type: ignore[arg-type]

    def index(self, sub: object, *bounds: object) -> int:
        self._only(sub)
        return super().index(sub, *bounds)  # type: ignore[arg-type]

    def count(self, sub: object, *bounds: object) -> int:
        self._only(sub)
        return super().count(sub, *bounds)  # type: ignore[arg-type]


class ExitWordCostTests(SynchronousTestCase):
    """
    Only a line exactly as long as the exit word is compared with it: what
    a read costs does not depend on what its lines say.
    """

    def test_chunkNotSearched(self) -> None:
        """
        Reads of one, a few and many lines full of the exit word's letters
        are never searched for the word, quiet or not, and come back whole.
        """
        for quiet in (False, True):
            proto, transport = connect(EchoSettings(quiet=quiet))
            reads = [
                b"xexitx" * 2000 + b"\n",
                b"exit" * 3 + b"\nexi\nexits\r\n",
                b"".join(b"%dexit\n" % n for n in range(50)),
            ]
            for data in reads:
                proto.dataReceived(_Watched(data))
            self.assertEqual(transport.value(), b"".join(reads), quiet)
            self.assertEqual(proto.messages, 1 + 3 + 50)
            self.assertFalse(transport.disconnecting)

    def test_exitInsideLongLineIsData(self) -> None:
        """
        A 100 KiB line that starts with, contains and ends with the exit
        word, in one read or in 64 KiB pieces, is echoed and the
        connection stays open.
        """
        line = b"exit" + b"x" * 50_000 + b"exit" + b"x" * 52_332 + b"exit\r\n"
        for pieces in ([line], [line[:65536], line[65536:]]):
            proto, transport = connect(EchoSettings(maxLineLength=len(line)))
            for piece in pieces:
                proto.dataReceived(piece)
            self.assertEqual(transport.value(), line)
            self.assertFalse(transport.disconnecting)
            self.assertEqual(proto.messages, 1)

    def test_exitAmongManyLines(self) -> None:
        """
        The exit word among many short lines (the chunk is split) or many
        long ones (walked) still ends the connection after its own echo,
        and lines as long as the word but different are data.
        """
        short = b"".join(b"l%03d\n" % n for n in range(20)) + b"exi\r\nEXIT\n"
        long = b"".join(b"%0299d\n" % n for n in range(20)) + b"exi\r\nEXIT\n"
        for before, quiet in [(b, q) for b in (short, long) for q in (False, True)]:
            proto, transport = connect(EchoSettings(quiet=quiet))
            proto.dataReceived(before + b"exit\r\nafter\n" * 3)
            self.assertEqual(transport.value(), before + b"exit\r\n", quiet)
            self.assertEqual(proto.messages, 23)
            self.assertEqual(proto.closeWhy, "exit word")

    def test_tooLongAfterViewedLines(self) -> None:
        """
        Lines before a too-long one in the same read (walked, not split)
        are echoed first, then the error line.
        """
        proto, transport = connect(EchoSettings(maxLineLength=8))
        proto.dataReceived(b"ok\nfine\n123456789\nlost\n")
        self.assertEqual(
            transport.value(),
            b"ok\nfine\nerror: line too long (limit 8 bytes; raise it with "
            b"--max-line-length)\n",
        )
        self.assertEqual(proto.messages, 2)


def _readsIntoBuffer(
    proto: EchoProtocol, transport: RecordingTransport, pooled: bool = False
) -> Callable[[bytes], None]:
    """
    Give C{proto} a read buffer and writers that take views, as it has on
    a TCP connection with the fast writer, and return a function that
    delivers a chunk through the buffer and then spoils the buffer.
    """
    buffer = ReadBuffer(1 << 16, pooled=pooled)
    buffer.keepAbove = 0
    proto._buffer = buffer
    proto._writesViews = True
    proto._write = lambda data: transport.write(bytes(data))
    proto._writeAll = lambda pieces: transport.write(b"".join(pieces))

    def feed(chunk: bytes) -> None:
        buffer.data[: len(chunk)] = chunk
        proto.bufferReceived(len(chunk))
        buffer.data[:] = b"\xaa" * len(buffer.data)
        for spare in buffer.spares:
            spare[:] = b"\xbb" * len(spare)

    return feed
