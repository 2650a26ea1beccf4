"""
Tests for L{nbecho.server._libc}: the libc LF search agrees with
C{bytes.find} and C{bytes.rfind}, line framing gives the same echoes with
it as without, and the libc senders send what C{socket.send} sends and fail
as it fails.
"""

from __future__ import annotations

import errno
import socket
import sys

from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.trial.unittest import SkipTest, SynchronousTestCase

from nbecho.server import _libc, lines
from nbecho.settings import EchoSettings
from nbecho.test.test_lines import _run, _texts

_scanners = _libc.libcScanners()
_senders = _libc.libcSenders()


class LibcScannerTests(SynchronousTestCase):
    """
    C{memchr} and C{memrchr} through cffi find the LFs C{bytes} finds.
    """

    def setUp(self) -> None:
        if _scanners is None:
            raise SkipTest("no cffi, or no memrchr in this libc")

    @settings(max_examples=300, deadline=None, database=None)
    @given(st.binary(max_size=300), st.integers(0, 400))
    def test_sameAsBytes(self, data: bytes, start: int) -> None:
        """
        Any bytes, any start (past the end too): the same index, or -1.
        """
        assert _scanners is not None
        findLF, rfindLF = _scanners
        start = min(start, len(data))
        self.assertEqual(findLF(data, start), data.find(b"\n", start))
        self.assertEqual(rfindLF(data), data.rfind(b"\n"))

    def test_edges(self) -> None:
        """
        An LF first, last, alone, or none at all, in a long read.
        """
        assert _scanners is not None
        findLF, rfindLF = _scanners
        long = b"x" * 100_000
        for data in (b"\n" + long, long + b"\n", b"\n", b"", long, long + b"\n" + long):
            self.assertEqual(findLF(data, 0), data.find(b"\n"), len(data))
            self.assertEqual(rfindLF(data), data.rfind(b"\n"), len(data))

    def test_onlyOnPyPy(self) -> None:
        """
        The module's own scanners and senders are the libc ones on PyPy
        only: CPython's C{find} already calls C{memchr}, and its socket
        methods send views and gather buffers without copying them.
        """
        pypy = sys.implementation.name == "pypy"
        self.assertEqual(_libc.findLF is not None, pypy)
        self.assertEqual(_libc.rfindLF is not None, pypy)
        self.assertEqual(_libc.sendView is not None, pypy)
        self.assertEqual(_libc.sendGathered is not None, pypy)

    @settings(max_examples=200, deadline=None, database=None)
    @given(_texts, st.lists(st.integers(0, 200), max_size=12), st.integers(1, 12))
    def test_linesSameWithLibc(self, data: bytes, cuts: list[int], limit: int) -> None:
        """
        Line framing searching every stretch with the libc scanners gives
        the same echoes, counts, close reason and log as with C{bytes}.
        """
        assert _scanners is not None
        bounds = sorted({0, len(data), *(cut % (len(data) + 1) for cut in cuts)})
        chunks = [data[a:b] for a, b in zip(bounds, bounds[1:])]
        echoSettings = EchoSettings(maxLineLength=limit)
        self.patch(lines, "findLF", None)
        self.patch(lines, "rfindLF", None)
        expected = _run(self, echoSettings, chunks, False, pieceSize=1)
        self.patch(lines, "findLF", _scanners[0])
        self.patch(lines, "rfindLF", _scanners[1])
        self.patch(lines, "LONG", 0)
        self.assertEqual(_run(self, echoSettings, chunks, False, pieceSize=1), expected)


class LibcSenderTests(SynchronousTestCase):
    """
    C{send} and C{writev} through cffi send views and pieces in place, and
    raise the C{OSError}s C{socket.send} raises.
    """

    def setUp(self) -> None:
        if _senders is None:
            raise SkipTest("no cffi in this interpreter")
        self.near, self.far = socket.socketpair()
        self.addCleanup(self.near.close)
        self.addCleanup(self.far.close)
        self.near.setblocking(False)
        self.far.setblocking(False)

    def received(self) -> bytes:
        chunks: list[bytes] = []
        while True:
            try:
                chunk = self.far.recv(1 << 20)
            except BlockingIOError:
                return b"".join(chunks)
            chunks.append(chunk)

    def test_sendsViews(self) -> None:
        """
        A view of part of a read, a bytearray and bytes arrive as they are.
        """
        assert _senders is not None
        sendView, _ = _senders
        data = bytes(range(256)) * 40
        fd = self.near.fileno()
        self.assertEqual(sendView(fd, memoryview(data)[3:5003]), 5000)
        self.assertEqual(sendView(fd, bytearray(b"ba")), 2)
        self.assertEqual(sendView(fd, b"by"), 2)
        self.assertEqual(self.received(), data[3:5003] + b"baby")

    def test_gathersInOrder(self) -> None:
        """
        Pieces of every kind arrive as their concatenation, in order.
        """
        assert _senders is not None
        _, sendGathered = _senders
        pieces: list[bytes | bytearray | memoryview] = [
            b"one ",
            bytearray(b"two "),
            memoryview(b"xthree ")[1:],
            b"x" * 10000,
        ]
        sent = sendGathered(self.near.fileno(), pieces)
        self.assertEqual(sent, 4 + 4 + 6 + 10000)
        self.assertEqual(self.received(), b"one two three " + b"x" * 10000)

    def test_partialWhenFull(self) -> None:
        """
        Into a full socket buffer the kernel takes part, then nothing:
        C{BlockingIOError}, as C{socket.send} raises.
        """
        assert _senders is not None
        sendView, sendGathered = _senders
        fd = self.near.fileno()
        chunk = memoryview(b"z" * (1 << 20))
        total = 0
        with self.assertRaises(BlockingIOError):
            for _ in range(64):
                total += sendView(fd, chunk)
        self.assertGreater(total, 0)
        with self.assertRaises(BlockingIOError):
            sendGathered(fd, [chunk, chunk])
        with self.assertRaises(BlockingIOError):
            self.near.send(chunk)

    def test_peerGone(self) -> None:
        """
        To a peer that closed, both fail with EPIPE, as C{socket.send} does,
        and no SIGPIPE ends the process.
        """
        assert _senders is not None
        sendView, sendGathered = _senders
        self.far.close()
        fd = self.near.fileno()
        for call in (
            lambda: sendView(fd, memoryview(b"late")),
            lambda: sendGathered(fd, [b"la", b"te"]),
            lambda: self.near.send(b"late"),
        ):
            with self.assertRaises(OSError) as caught:
                call()
            self.assertEqual(caught.exception.errno, errno.EPIPE)
