"""
Tests for reading into the shared read buffer
(L{nbecho._twisted.readInto}, L{nbecho.server.protocol.EchoProtocol.bufferReceived}
and the C{readView} of both framings): the same echoes, counts, close
reasons and log as reads handed to C{dataReceived}, whatever the reads
contain and wherever they end; and only Twisted's plain TCP transport reads
that way.
"""

from __future__ import annotations

import socket
import sys
from typing import Any

from hypothesis import example, given, settings
from hypothesis import strategies as st
from twisted.internet import reactor as _reactor
from twisted.internet.testing import StringTransport
from twisted.trial.unittest import SynchronousTestCase, TestCase

from nbecho import _twisted
from nbecho.server import _fastwrite, protocol
from nbecho.settings import EchoSettings
from nbecho.test.test_lines import _run, _texts

reactor: Any = _reactor

_cuts = st.lists(st.integers(0, 400), max_size=12)

#: Reads made of whole tokens: lines of every kind, the exit word alone.
_reads = st.lists(
    st.lists(
        st.one_of(
            st.sampled_from([b"abc\n", b"a\r\n", b"\n", b"xy", b"\r", b"0123456\n"]),
            st.sampled_from([b"exit", b"exit\n", b"exit\r\n"]),
        ),
        min_size=1,
        max_size=12,
    ).map(b"".join),
    max_size=10,
)


def _chunks(data: bytes, cuts: list[int]) -> list[bytes]:
    bounds = sorted({0, len(data), *(cut % (len(data) + 1) for cut in cuts)})
    return [data[a:b] for a, b in zip(bounds, bounds[1:])]


class SameAsDataReceivedTests(SynchronousTestCase):
    """
    A read delivered through the read buffer gives what the same read
    handed to C{dataReceived} gives.
    """

    def setUp(self) -> None:
        # Every read takes the buffer's own path, not only long ones.
        self.patch(protocol.EchoProtocol, "viewAbove", 0)

    @settings(max_examples=300, deadline=None, database=None)
    @given(
        _texts,
        _cuts,
        st.sampled_from([1, 3, 4, 5, 12, 1000]),
        st.booleans(),
        st.booleans(),
        st.sampled_from([1, sys.maxsize]),
        st.sampled_from([1, 4096]),
        st.booleans(),
    )
    def test_lines(
        self,
        data: bytes,
        cuts: list[int],
        limit: int,
        quiet: bool,
        halfClose: bool,
        splitAbove: int,
        pieceSize: int,
        pooled: bool,
    ) -> None:
        """
        Line framing: any text (exit words, CRs, too-long lines), any
        reads, quiet or logging, walking or splitting short lines, partial
        lines kept in new strings or in spare buffers.
        """
        echoSettings = EchoSettings(maxLineLength=limit, quiet=quiet, logRate=0)
        chunks = _chunks(data, cuts)
        options: dict[str, Any] = {"splitAbove": splitAbove, "pieceSize": pieceSize}
        expected = _run(self, echoSettings, chunks, halfClose, **options)
        got = _run(
            self,
            echoSettings,
            chunks,
            halfClose,
            throughBuffer=True,
            pooled=pooled,
            **options,
        )
        self.assertEqual(got, expected)

    @settings(max_examples=300, deadline=None, database=None)
    @given(
        _reads,
        st.sampled_from([1, 5, 1000]),
        st.booleans(),
        st.booleans(),
        st.booleans(),
    )
    @example(
        [b"abc\nabc\nabc\nabc\nabc\nxy", b"abc\nabc\nabc\n"], 1000, True, False, False
    )
    def test_linesInWholeTokens(
        self,
        chunks: list[bytes],
        limit: int,
        quiet: bool,
        halfClose: bool,
        pooled: bool,
    ) -> None:
        """
        Line framing, reads made of whole lines and words: many complete
        lines a read, exit words in every form, partial lines in new
        strings or in spare buffers.
        """
        echoSettings = EchoSettings(maxLineLength=limit, quiet=quiet, logRate=0)
        options: dict[str, Any] = {"splitAbove": sys.maxsize, "pooled": pooled}
        expected = _run(self, echoSettings, chunks, halfClose, splitAbove=sys.maxsize)
        got = _run(self, echoSettings, chunks, halfClose, throughBuffer=True, **options)
        self.assertEqual(got, expected)

    @settings(max_examples=200, deadline=None, database=None)
    @given(_reads, st.booleans(), st.sampled_from([b"", b"exit"]))
    def test_raw(self, chunks: list[bytes], quiet: bool, exitWord: bytes) -> None:
        """
        Raw framing: every read is one message, the exit word (when one is
        given) alone in one ends the connection, either way.
        """
        echoSettings = EchoSettings(
            framing="raw", quiet=quiet, logRate=0, exitWord=exitWord
        )
        expected = _run(self, echoSettings, chunks, False)
        got = _run(self, echoSettings, chunks, False, throughBuffer=True)
        self.assertEqual(got, expected)

    def test_longLinesQuiet(self) -> None:
        """
        Lines of 100 KiB in reads of 64 KiB (each ending inside a line),
        quiet, as a benchmark sends them: all echoed and counted, none
        copied into a new string on the way back.
        """
        self.patch(protocol.EchoProtocol, "viewAbove", 4096)
        line = b"y" * 102399 + b"\n"
        data = line * 5
        chunks = [data[i : i + 65536] for i in range(0, len(data), 65536)]
        echoSettings = EchoSettings(quiet=True)
        got = _run(self, echoSettings, chunks, False, throughBuffer=True)
        self.assertEqual(got[:2], (data, 5))


class ReadIntoTests(TestCase):
    """
    Only a transport that reads as Twisted's TCP connection does is made
    to read into the buffer.
    """

    def setUp(self) -> None:
        self.patch(_fastwrite, "twistedWritesAtOnce", lambda: False)

    async def test_tcpReadsIntoBuffer(self) -> None:
        """
        A quiet echo connection on TCP reads into the shared buffer, and a
        long read comes back whole.
        """
        from nbecho.server.factory import EchoFactory

        factory = EchoFactory(EchoSettings(quiet=True))
        port = reactor.listenTCP(0, factory, interface="127.0.0.1")
        self.addCleanup(port.stopListening)
        client = socket.create_connection(("127.0.0.1", port.getHost().port))
        self.addCleanup(client.close)
        client.setblocking(False)
        data = b"".join(b"%09d\n" % (i,) for i in range(20000))
        sent = 0
        received = bytearray()
        from twisted.internet.task import deferLater

        for _ in range(2000):
            if sent < len(data):
                try:
                    sent += client.send(data[sent:])
                except BlockingIOError:
                    pass
            try:
                received += client.recv(1 << 20)
            except BlockingIOError:
                await deferLater(reactor, 0.001, lambda: None)
            if len(received) == len(data):
                break
        self.assertEqual(bytes(received), data)
        (connection,) = factory.connections
        assert isinstance(connection, protocol.EchoProtocol)
        proto = connection
        self.assertIsNotNone(proto._buffer)
        self.assertEqual(proto.messages, 20000)

    def test_otherTransports(self) -> None:
        """
        A test transport, or a TCP transport whose class reads its own
        way, is left alone.
        """
        buffer = bytearray(16)
        self.assertFalse(_twisted.readInto(StringTransport(), buffer, print))

        from twisted.internet import tcp

        class OwnRead(tcp.Server):
            def doRead(self) -> None:
                """
                Reads its own way.
                """

        transport = OwnRead.__new__(OwnRead)
        self.assertFalse(_twisted.readInto(transport, buffer, print))
