"""
Send an echo at once when nothing is waiting to be sent before it.

Twisted's C{transport.write} only queues: it asks the reactor to watch the
socket for writability (an C{epoll_ctl}), and the data goes out on the next
reactor iteration (an C{epoll_wait}, C{doWrite}, the C{send}, and another
C{epoll_ctl} to stop watching).  An strace of C{twisted.protocols.wire.Echo}
shows 1 recv, 1 send, 2 epoll_ctl and 2 epoll_wait per round trip; asyncio
tries the C{send} at once and needs 1 recv, 1 send and 1 epoll_wait.

L{fastWriter} gives a protocol that second behaviour on Twisted's own TCP and
UNIX transports.  It depends on details of C{twisted.internet.abstract
.FileDescriptor} that are not public API (the write buffers C{dataBuffer} and
C{_tempDataLen}), so everything that knows them lives here: L{fastWriter}
checks they are there and otherwise returns the transport's public C{write}.
It sends directly only when Twisted's buffer is empty and the connection is
open for writing, so byte order, backpressure (a partial send hands the rest
to C{transport.write}, which pauses a producer over the high-water mark),
C{loseConnection} flushing and half-close all stay Twisted's.

A Twisted that sends at once itself (Twisted ticket 5303; the patch in
C{contrib/twisted-patches/}) needs none of this: L{twistedWritesAtOnce}
finds that out once, from how C{FileDescriptor.write} behaves, and
L{fastWriter} then returns the transport's public C{write}.
"""

from __future__ import annotations

from functools import cache, partial
from typing import Any, Callable

from nbecho.server._libc import sendGathered, sendView

#: FileDescriptor attributes the fast path reads; all must exist.
_REQUIRED = ("dataBuffer", "_tempDataLen", "connected", "disconnecting")


@cache
def twistedWritesAtOnce() -> bool:
    """
    Whether this Twisted's C{FileDescriptor.write} hands data to
    C{writeSomeData} at once when nothing is buffered.

    The probe is a descriptor that writes to memory, with no socket and no
    reactor: it uses only what a C{FileDescriptor} subclass overrides.
    """
    from twisted.internet.abstract import FileDescriptor

    written: list[bytes] = []

    class Probe(FileDescriptor):
        connected = 1

        def startWriting(self) -> None:
            """
            Buffered data stays where it is: the probe has no reactor.
            """

        def writeSomeData(self, data: bytes) -> int:
            written.append(bytes(data))
            return len(data)

    try:
        Probe(reactor=object()).write(b"probe")  # type: ignore[arg-type]
    except (AttributeError, TypeError, NotImplementedError):  # pragma: no cover
        # A FileDescriptor that changed: the fast path decides per transport.
        return False
    return written == [b"probe"]


def _directSocket(transport: object) -> Any:
    """
    Return the socket behind C{transport} when the fast path can use it,
    else L{None}.
    """
    try:
        from twisted.internet.tcp import Connection
    except ImportError:  # pragma: no cover - a Twisted without tcp
        return None
    if not isinstance(transport, Connection):
        # TLS (TLSMemoryBIOProtocol), stdio, test transports, wrappers.
        return None
    if getattr(transport, "TLS", False):
        return None
    if not all(hasattr(transport, name) for name in _REQUIRED):
        return None
    if not hasattr(transport, "_writeDisconnecting"):
        return None
    sock = getattr(transport, "socket", None)
    if sock is None or not callable(getattr(sock, "send", None)):
        return None
    return sock


#: Buffers one C{sendmsg} takes at most: well under Linux's C{IOV_MAX}
#: (1024), beyond which the call fails instead of sending.
_IOV_BATCH = 512


def fastWriter(transport: Any) -> Callable[[bytes | memoryview], None]:
    """
    Return a function that writes to C{transport} like C{transport.write},
    sending at once when Twisted has nothing buffered for it.

    A transport this module does not know (TLS, UNIX stdio, a test
    transport, a Twisted whose buffers have changed, a Twisted that sends at
    once itself) gets its own public C{write} back, and so does a wrapper such
    as the PROXY protocol's;
    whenever the fast path cannot send, the bytes go to the public C{write}.
    """
    writers = _writers(transport)
    return transport.write if writers is None else writers[0]


def fastSequenceWriter(
    transport: Any,
) -> Callable[[list[bytes | bytearray | memoryview]], None] | None:
    """
    Return a function that writes a list of buffers to C{transport} as
    their concatenation, handing them to the kernel in one C{sendmsg}
    (gathered, not joined) when Twisted has nothing buffered; or L{None}
    where L{fastWriter} would return the public C{write} (the caller then
    joins the buffers itself).

    A line that arrived in several reads goes back this way without being
    copied into one string first: on PyPy every such copy of a large line
    is a large allocation, and those, not the copying, drive its garbage
    collector (see the PyPy section of docs/performance.rst).
    """
    writers = _writers(transport)
    return None if writers is None else writers[1]


def _writers(
    transport: Any,
) -> (
    tuple[
        Callable[[bytes | memoryview], None],
        Callable[[list[bytes | bytearray | memoryview]], None],
    ]
    | None
):
    """
    The fast single-buffer and gathering writers for C{transport}, or
    L{None} when it must be written through its public C{write}.
    """
    if twistedWritesAtOnce():
        return None
    sock = _directSocket(transport)
    if sock is None:
        return None
    write = transport.write
    send = sock.send
    gather = getattr(sock, "sendmsg", None)
    # On PyPy, views and gathered pieces go through libc without the copy
    # its socket methods make (nbecho.server._libc); bytes do not need it.
    fd = sock.fileno()
    sendDirect = None if sendView is None else partial(sendView, fd)
    if gather is not None and sendGathered is not None:
        gather = partial(sendGathered, fd)
    # Without TLS support in this Twisted, startTLS can never turn it on.
    tlsPossible = hasattr(transport, "TLS")

    def blocked() -> bool:
        # Something is queued (keep the order), the connection is closing
        # or half-closed (Twisted decides what to do), or it is gone:
        # Twisted's public write handles all of those.
        return bool(
            transport._tempDataLen
            or transport.dataBuffer
            or transport.disconnecting
            or transport._writeDisconnecting
            or (tlsPossible and transport.TLS)
            or not transport.connected
        )

    def writeNow(data: bytes | memoryview) -> None:
        if blocked():
            # Twisted's write takes bytes only, and the caller may hand a view.
            write(bytes(data))
            return
        try:
            if sendDirect is not None and type(data) is not bytes:
                sent = sendDirect(data)
            else:
                sent = send(data)
        except OSError:
            # EAGAIN, ENOBUFS, or a socket error: queue it; Twisted's own
            # doWrite retries, or reports the error as it always does.
            sent = 0
        if sent < len(data):
            write(bytes(data[sent:]))

    def writeAllNow(buffers: list[bytes | bytearray | memoryview]) -> None:
        first = 0
        if gather is not None and not blocked():
            while first < len(buffers):
                batch = buffers[first : first + _IOV_BATCH]
                try:
                    sent = gather(batch)
                except OSError:
                    # As in writeNow: Twisted's write queues or reports it.
                    break
                for buffer in batch:
                    if sent < len(buffer):
                        break
                    sent -= len(buffer)
                    first += 1
                else:
                    continue
                # The kernel took part of the batch: queue the rest.
                if sent:
                    rest = memoryview(buffers[first])[sent:]
                    buffers = [rest, *buffers[first + 1 :]]
                    first = 0
                break
        if first < len(buffers):
            write(b"".join(buffers[first:]))

    return writeNow, writeAllNow
