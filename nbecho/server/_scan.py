"""
Finding LFs in long stretches of bytes at C speed on PyPy.

CPython's C{bytes.find} and C{bytes.rfind} of one byte call C{memchr} and
C{memrchr}; PyPy 7.3's compare a byte at a time, about 12 times slower: 30
µs to find the LF of a 100 KiB line, against 0.9 µs through C{memchr}
(docs/performance.rst, section PyPy).  On PyPy, line framing therefore
searches long stretches (over L{LONG} bytes) with libc's C{memchr} and
C{memrchr} through cffi, which PyPy bundles: C{ffi.from_buffer} hands C
the bytes where they are, without a copy.  Short stretches keep the
interpreter's own search, cheaper than a call into C.

On CPython, or where cffi or libc's C{memrchr} is missing, C{findLF} and
C{rfindLF} are L{None}, and the callers use C{bytes.find} and
C{bytes.rfind}.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable
from typing import Any

#: Stretches shorter than this are searched with the interpreter's own
#: C{find}: a call through cffi costs about 0.5 µs on PyPy.
LONG = 4096

#: C{findLF(data, start)}: the index of the first LF of C{data} at or after
#: C{start}, or -1.
FindLF = Callable[[bytes, int], int]
#: C{rfindLF(data)}: the index of the last LF of C{data}, or -1.
RFindLF = Callable[[bytes], int]


def libcScanners() -> tuple[FindLF, RFindLF] | None:
    """
    L{FindLF} and L{RFindLF} calling libc's C{memchr} and C{memrchr}
    through cffi, on any interpreter that has cffi and a libc with both
    (glibc, musl); L{None} elsewhere.
    """
    try:
        # Imported by name: cffi ships no type hints.
        ffi: Any = importlib.import_module("cffi").FFI()
    except ImportError:
        return None
    ffi.cdef(
        "void *memchr(const void *s, int c, size_t n);"
        "void *memrchr(const void *s, int c, size_t n);"
    )
    try:
        libc = ffi.dlopen(None)
        memchr = libc.memchr
        memrchr = libc.memrchr
    except (OSError, AttributeError, ffi.error):
        return None
    fromBuffer = ffi.from_buffer
    cast = ffi.cast
    null = ffi.NULL

    # The cdata of from_buffer keeps the bytes where they are while it
    # lives: every pointer is taken from it, and it is used last.
    def findLF(data: bytes, start: int) -> int:
        buffer = fromBuffer(data)
        found = memchr(buffer + start, 10, len(data) - start)
        if found == null:
            return -1
        offset: int = cast("char *", found) - cast("char *", buffer)
        return offset

    def rfindLF(data: bytes) -> int:
        buffer = fromBuffer(data)
        found = memrchr(buffer, 10, len(data))
        if found == null:
            return -1
        offset: int = cast("char *", found) - cast("char *", buffer)
        return offset

    return findLF, rfindLF


def _forThisInterpreter() -> tuple[FindLF | None, RFindLF | None]:
    if sys.implementation.name != "pypy":
        return None, None
    scanners = libcScanners()
    return (None, None) if scanners is None else scanners


findLF, rfindLF = _forThisInterpreter()  # noqa: N816
