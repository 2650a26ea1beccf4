"""
libc's C{memchr}, C{memrchr}, C{send} and C{writev} through cffi, on PyPy:
what PyPy's own bytes and socket methods do more slowly or with a copy.

CPython's C{bytes.find} and C{bytes.rfind} of one byte call C{memchr} and
C{memrchr}; PyPy 7.3's compare a byte at a time, about 12 times slower: 30
µs to find the LF of a 100 KiB line, against 0.9 µs through C{memchr}.  And
PyPy's C{socket.send} copies anything that is not C{bytes} (a
C{memoryview} of part of a read) into a new string before the call, and its
C{socket.sendmsg} copies every buffer, C{bytes} included: 2 to 10 µs and a
large allocation per 100 KiB echo, which its garbage collector pays for
again (docs/performance.rst, section PyPy).  C{ffi.from_buffer} hands C the
bytes where they are, without a copy.

On PyPy, line framing therefore searches long stretches (over L{LONG}
bytes) with C{findLF} and C{rfindLF}, and the write fast path
(L{nbecho.server._fastwrite}) sends views with C{sendView} and gathers
pieces with C{sendGathered}.  Short stretches keep the interpreter's own
search, cheaper than a call into C.  L{ReadBuffer}
searches the buffer long reads arrive in through C{memchr} too: PyPy's
C{bytearray.find} with bounds is six times slower again.

On CPython, or where cffi or one of the functions is missing, all four are
L{None}, and the callers use the interpreter's methods.
"""

from __future__ import annotations

import errno
import importlib
import os
import socket
import sys
from collections.abc import Callable, Sequence
from functools import partial
from typing import Any

#: Stretches shorter than this use the interpreter's own search: a call
#: through cffi on a C{bytes} costs about 60 ns on PyPy, PyPy's own search
#: of 64 bytes 16 ns.
LONG = 4096

#: C{findLF(data, start)}: the index of the first LF of C{data} at or after
#: C{start}, or -1.
FindLF = Callable[[bytes, int], int]
#: C{rfindLF(data)}: the index of the last LF of C{data}, or -1.
RFindLF = Callable[[bytes], int]
#: C{sendView(fd, view)}: send what the socket C{fd} takes of C{view}, and
#: return how much that was; raise C{OSError} as C{socket.send} does.
SendView = Callable[[int, "bytes | bytearray | memoryview"], int]
#: C{sendGathered(fd, buffers)}: the same for the buffers' concatenation,
#: without joining them (at most C{IOV_MAX} buffers).
SendGathered = Callable[[int, Sequence["bytes | bytearray | memoryview"]], int]

#: Do not raise SIGPIPE for a peer that is gone: fail with EPIPE, as
#: Python's own sockets (which ignore SIGPIPE) report it.
_MSG_NOSIGNAL = getattr(socket, "MSG_NOSIGNAL", 0x4000)


def _library(*names: str) -> tuple[Any, list[Any]] | None:
    """
    A cffi C{FFI} with the four functions declared, and libc's functions
    C{names} from it; or L{None} where cffi or one of them is missing.
    """
    try:
        # Imported by name: cffi ships no type hints.
        ffi: Any = importlib.import_module("cffi").FFI()
    except ImportError:
        return None
    ffi.cdef(
        "void *memchr(const void *s, int c, size_t n);"
        "void *memrchr(const void *s, int c, size_t n);"
        "long send(int fd, const void *buf, size_t n, int flags);"
        "struct iovec { void *iov_base; size_t iov_len; };"
        "long writev(int fd, const struct iovec *iov, int count);"
    )
    try:
        libc = ffi.dlopen(None)
        return ffi, [getattr(libc, name) for name in names]
    except (OSError, AttributeError, ffi.error):
        return None


def libcScanners() -> tuple[FindLF, RFindLF] | None:
    """
    L{FindLF} and L{RFindLF} calling libc's C{memchr} and C{memrchr}
    through cffi, on any interpreter that has cffi and a libc with both
    (glibc, musl); L{None} elsewhere.
    """
    library = _library("memchr", "memrchr")
    if library is None:
        return None
    ffi, (memchr, memrchr) = library
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


def libcSenders() -> tuple[SendView, SendGathered] | None:
    """
    L{SendView} and L{SendGathered} calling libc's C{send} and C{writev}
    through cffi, on any interpreter that has cffi and a libc with both;
    L{None} elsewhere.

    They take the socket's descriptor, not the socket: the caller makes
    sure it is still open (the fast path checks that its transport is
    connected before every call).  C{writev} has no C{MSG_NOSIGNAL}: a
    peer that is gone fails it with EPIPE because Python ignores SIGPIPE,
    as it does for every socket call.  An error is raised as the C{OSError}
    C{socket.send} raises for it (C{BlockingIOError} for EAGAIN), so the
    callers handle both alike.
    """
    library = _library("send", "writev")
    if library is None:
        return None
    ffi, (send, writev) = library
    fromBuffer = ffi.from_buffer
    newVectors = ffi.new

    def failed() -> OSError:
        code = ffi.errno
        if code in (errno.EAGAIN, errno.EWOULDBLOCK):
            return BlockingIOError(code, os.strerror(code))
        return OSError(code, os.strerror(code))

    def sendView(fd: int, view: bytes | bytearray | memoryview) -> int:
        sent: int = send(fd, fromBuffer(view), len(view), _MSG_NOSIGNAL)
        if sent < 0:
            raise failed()
        return sent

    def sendGathered(fd: int, buffers: Sequence[bytes | bytearray | memoryview]) -> int:
        vectors = newVectors("struct iovec[]", len(buffers))
        # Each from_buffer cdata pins its buffer until the call returns.
        held: list[Any] = []
        for vector, buffer in zip(vectors, buffers):
            pointer = fromBuffer(buffer)
            held.append(pointer)
            vector.iov_base = pointer
            vector.iov_len = len(buffer)
        sent: int = writev(fd, vectors, len(buffers))
        del held
        if sent < 0:
            raise failed()
        return sent

    return sendView, sendGathered


class ReadBuffer:
    """
    One buffer that long reads arrive in, whichever connection they come
    from, with the search for LFs in it.

    The reactor runs one read at a time, and what a read hands its protocol
    is a view of this buffer that nothing keeps past the call: what must
    stay (a partial line, an echo the socket did not take) is copied out.
    A read then costs no new string, which on PyPy is what its garbage
    collector spends most of a large echo's time on.

    @ivar data: the buffer.
    @ivar find: C{find(start, end)}, the index of the first LF of
        C{data[start:end]} (counted from the start of C{data}), or -1.
    @ivar rfind: C{rfind(end)}, the index of the last LF of C{data[:end]},
        or -1.
    @ivar spares: with C{pooled} (by default on PyPy), buffers that copies
        of partial lines (L{keep}) are made in, given back when their line
        has gone out (L{release}), C{spareLimit} at most.  On PyPy a new
        string per partial line is what drove its garbage collector at
        100 KiB lines, and slicing into a C{bytearray} copies a byte at a
        time: these copies are made with cffi's C{memmove} into buffers
        that are used again.
    @cvar keepAbove: partial lines this long or shorter are copied into a
        new string.
    """

    keepAbove = LONG
    spareLimit = 16

    def __init__(self, size: int, pooled: bool | None = None) -> None:
        self.data = bytearray(size)
        self.spares: list[_Spare] = []
        self._memmove: Callable[[Any, Any, int], None] | None = None
        if pooled or (pooled is None and sys.implementation.name == "pypy"):
            library = _library()
            self._memmove = None if library is None else library[0].memmove
        scanners = None
        if sys.implementation.name == "pypy":
            scanners = _bufferScanners(self.data)
        if scanners is None:
            data = self.data
            self.find: Callable[[int, int], int] = partial(data.find, b"\n")
            self.rfind: Callable[[int], int] = partial(data.rfind, b"\n", 0)
        else:
            self.find, self.rfind = scanners

    def keep(self, view: memoryview) -> bytes | memoryview:
        """
        A copy of C{view}, a partial line in this buffer, that outlives
        the read: in a spare buffer when there is C{memmove} and it is
        longer than C{keepAbove}, otherwise a new string.
        """
        length = len(view)
        if self._memmove is None or length <= self.keepAbove:
            return bytes(view)
        spare = self.spares.pop() if self.spares else _Spare(len(self.data))
        self._memmove(spare, view, length)
        return memoryview(spare)[:length]

    def release(self, pieces: list[bytes | bytearray | memoryview]) -> None:
        """
        C{pieces} (a line's, just sent or copied) are no longer needed:
        their spare buffers, if any, may hold the next partial lines.
        """
        for piece in pieces:
            if type(piece) is memoryview and type(piece.obj) is _Spare:
                if len(self.spares) < self.spareLimit:
                    self.spares.append(piece.obj)


class _Spare(bytearray):
    """
    A buffer of L{ReadBuffer.spares}: the type tells a piece made by
    L{ReadBuffer.keep} from any other view.
    """


def _bufferScanners(
    data: bytearray,
) -> tuple[Callable[[int, int], int], Callable[[int], int]] | None:
    """
    C{memchr} and C{memrchr} over C{data}, whose address is taken once:
    the cdata kept by the closures pins it, and a bytearray that is never
    resized keeps its storage.
    """
    library = _library("memchr", "memrchr")
    if library is None:
        return None
    ffi, (memchr, memrchr) = library
    pointer = ffi.from_buffer(data)
    base = ffi.cast("char *", pointer)
    cast = ffi.cast
    null = ffi.NULL

    def find(start: int, end: int) -> int:
        found = memchr(pointer + start, 10, end - start)
        if found == null:
            return -1
        offset: int = cast("char *", found) - base
        return offset

    def rfind(end: int) -> int:
        found = memrchr(pointer, 10, end)
        if found == null:
            return -1
        offset: int = cast("char *", found) - base
        return offset

    return find, rfind


def _forThisInterpreter() -> tuple[
    FindLF | None, RFindLF | None, SendView | None, SendGathered | None
]:
    if sys.implementation.name != "pypy":
        return None, None, None, None
    scanners = libcScanners() or (None, None)
    senders = libcSenders() or (None, None)
    return (*scanners, *senders)


findLF, rfindLF, sendView, sendGathered = _forThisInterpreter()  # noqa: N816
