"""
Tests for L{nbecho.server._scan}: the libc LF search agrees with
C{bytes.find} and C{bytes.rfind}, and line framing gives the same echoes
with it as without.
"""

from __future__ import annotations

import sys

from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.trial.unittest import SkipTest, SynchronousTestCase

from nbecho.server import _scan, lines
from nbecho.settings import EchoSettings
from nbecho.test.test_lines import _run, _texts

_scanners = _scan.libcScanners()


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
        The module's own scanners are the libc ones on PyPy only: CPython's
        C{find} already calls C{memchr}.
        """
        pypy = sys.implementation.name == "pypy"
        self.assertEqual(_scan.findLF is not None, pypy)
        self.assertEqual(_scan.rfindLF is not None, pypy)

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
