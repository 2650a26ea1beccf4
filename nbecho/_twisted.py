"""
Every use nbecho makes of Twisted's private API, in one place.

Twisted keeps these names to itself and may change them in any release.
nbecho uses them where the public API has no equivalent: reading an endpoint
string exactly as C{serverFromString} does, parsing PROXY headers with
Twisted's own parsers, telling a failed TLS handshake from a later TLS
error, building an C{ssl:} endpoint's context at start-up, handing a
UNIX socket's lock file to the daemon after twistd forks, echoing over
TLS without Twisted's write aggregation, which loses echoes when the
client's close_notify arrives with its last data, dispatching I/O
events without Twisted's per-event cost of a new log context
(C{EchoEPollReactor}), and reading a TCP connection into a buffer shared
by all (L{readInto}).  (The write fast
path's use of C{FileDescriptor}'s buffers lives in
L{nbecho.server._fastwrite}, which steps aside on its own when they change.)

C{nbecho/test/test_twisted.py} checks each of them against the installed
Twisted and fails with a message naming what changed, so that a new Twisted
release is caught by C{trial nbecho} (CI runs it against the newest Twisted
on PyPI, pre-releases included) before a user meets it.
"""

from __future__ import annotations

import errno
import sys
from collections.abc import Callable
from functools import cache, partial
from typing import Any

from twisted.internet.endpoints import _parse
from twisted.protocols.haproxy._exceptions import (
    InvalidNetworkProtocol,
    InvalidProxyHeader,
    MissingAddressData,
)
from twisted.protocols.haproxy._v1parser import V1Parser
from twisted.protocols.haproxy._v2parser import V2Parser

__all__ = [
    "ECHO_REACTOR",
    "InvalidNetworkProtocol",
    "InvalidProxyHeader",
    "MissingAddressData",
    "V1Parser",
    "V2Parser",
    "endpointArguments",
    "handshakeDone",
    "installEchoReactor",
    "readInto",
    "serverContextFactory",
    "tlsSendClosed",
    "tlsWriter",
    "unixLockFile",
    "watchCloseNotify",
]


def endpointArguments(description: str) -> tuple[list[str], dict[str, str]]:
    """
    The positional and keyword arguments of an endpoint string, split and
    unescaped exactly as C{serverFromString} and C{clientFromString} read it
    (C{twisted.internet.endpoints._parse}).

    @raise Exception: whatever Twisted raises for a string it cannot read (a
        lone trailing backslash, say).
    """
    args, kw = _parse(description)
    return list(args), dict(kw)


def handshakeDone(transport: object, default: bool) -> bool:
    """
    Whether the TLS handshake of C{transport} (Twisted's
    C{TLSMemoryBIOProtocol}) had finished, or C{default} for a transport that
    does not say.
    """
    return bool(getattr(transport, "_handshakeDone", default))


def serverContextFactory(endpoint: object) -> Any:
    """
    The context factory an C{ssl:} server endpoint (C{SSL4ServerEndpoint})
    will use, or L{None} for any other endpoint.
    """
    return getattr(endpoint, "_sslContextFactory", None)


def unixLockFile(port: object) -> Any:
    """
    The C{FilesystemLock} a listening UNIX port (C{twisted.internet.unix.Port}
    with C{wantPID=True}) holds for its path, or L{None} when it holds none.
    """
    lock = getattr(port, "lockFile", None)
    if lock is None or not getattr(lock, "locked", False):
        return None
    return lock


@cache
def _tlsTransport() -> Any:
    """
    Twisted's C{TLSMemoryBIOProtocol} and pyOpenSSL's C{ZeroReturnError},
    or C{None} where pyOpenSSL is not installed (nbecho runs without TLS).
    """
    try:
        from OpenSSL.SSL import ZeroReturnError
        from twisted.protocols.tls import TLSMemoryBIOProtocol
    except ImportError:
        return None
    return TLSMemoryBIOProtocol, ZeroReturnError


def _isTLS(transport: object) -> bool:
    tls = _tlsTransport()
    return tls is not None and isinstance(transport, tls[0])


def tlsWriter(transport: object) -> Callable[[bytes], None] | None:
    """
    A write for the TLS C{transport} (C{TLSMemoryBIOProtocol}) that hands
    the bytes to OpenSSL and the socket's buffer at once, or L{None} for a
    transport that is not TLS.

    Twisted's default TLS transport (C{BufferingTLSTransport}) holds small
    writes until the next reactor iteration; when the client's close_notify
    arrives in the same read as its last data, Twisted answers it and marks
    the TLS connection lost first, and the held echoes are then dropped
    without a word.  An echo server writes once per read anyway, so it
    loses nothing by skipping the aggregation.
    """
    if not _isTLS(transport):
        return None
    write: Callable[..., None] = _tlsTransport()[0].write
    return partial(write, transport)


def tlsSendClosed(transport: object) -> bool:
    """
    Whether the TLS C{transport} drops what is written to it now: its TLS
    session ended (C{_lostTLSConnection}: the peer's close_notify answered,
    or a TLS error) or its socket is no longer connected.
    """
    if getattr(transport, "_lostTLSConnection", False):
        return True
    socket = getattr(transport, "transport", None)
    return socket is not None and not getattr(socket, "connected", True)


class _CloseNotifyWatch:
    """
    An C{OpenSSL.SSL.Connection} as Twisted's TLS transport uses it, except
    that C{recv} calls C{callback} once when it meets the peer's
    close_notify, before Twisted answers it and ends the session.
    """

    def __init__(self, connection: Any, callback: Callable[[], object]) -> None:
        self._connection = connection
        self._callback: Callable[[], object] | None = callback
        # The calls of every read and write, without __getattr__ in between.
        self.bio_write = connection.bio_write
        self.bio_read = connection.bio_read
        self.send = connection.send

    def recv(self, size: int) -> bytes:
        try:
            data: bytes = self._connection.recv(size)
        except _tlsTransport()[1]:
            callback, self._callback = self._callback, None
            if callback is not None:
                callback()
            raise
        return data

    def __getattr__(self, name: str) -> Any:
        return getattr(self._connection, name)


def watchCloseNotify(transport: object, callback: Callable[[], object]) -> bool:
    """
    Call C{callback} when the TLS C{transport}'s peer ends its side of the
    session (close_notify), while the session can still send; return
    whether C{transport} is one this works on.

    Twisted's C{TLSMemoryBIOProtocol} answers a close_notify with its own
    and closes the connection at once (C{_flushReceiveBIO} on
    C{ZeroReturnError}), without telling an C{IHalfCloseableProtocol}: what
    the protocol would still send (the echo of a last line without its line
    feed) is lost.  The callback runs first, as C{readConnectionLost} runs
    for a TCP half-close; it may write, then close.
    """
    connection = getattr(transport, "_tlsConnection", None)
    if not _isTLS(transport) or connection is None:
        return False
    transport._tlsConnection = _CloseNotifyWatch(connection, callback)  # type: ignore[attr-defined]
    return True


#: The fully qualified name of C{EchoEPollReactor}, as twistd logs it.
ECHO_REACTOR = "nbecho._twisted.EchoEPollReactor"

#: Log contexts C{EchoEPollReactor} keeps, one per descriptor number.
_LogContexts = dict[int, tuple[object, str, dict[Any, Any]]]


if sys.platform == "linux":
    from twisted.internet.epollreactor import EPollReactor
    from twisted.python import context, log

    class EchoEPollReactor(EPollReactor):
        """
        Twisted's epoll reactor, with the log context of an I/O event built
        once per connection instead of once per event.

        Twisted dispatches every event through C{log.callWithLogger}, which
        copies the current log context into a new dictionary to set its
        C{system} (the connection's C{logPrefix}), so that a legacy log line
        or traceback from the call names the connection.  For an echo that
        is one small message a read, the copy and the context calls around
        it were a third of the server's own (user-space) time on PyPy:
        0.3-0.4 µs of 1.0-1.2 µs a message, ping-pong
        (docs/performance.rst, section PyPy).

        Here the context pushed for a descriptor is kept and pushed again
        as long as the connection's prefix and the enclosing log context
        are the ones it was made from, so legacy lines and tracebacks are
        logged exactly as Twisted logs them.  Everything else is Twisted's
        C{EPollReactor}: C{doPoll} below is its own, with the call of
        C{callWithLogger} inlined; C{_poller}, C{_selectables} and
        C{_doReadOrWrite} are its private names.

        @ivar _logContexts: per descriptor number, the enclosing log context
            and prefix its pushed context was made from, and that context.
            Descriptor numbers are reused, so it holds no more entries than
            the process ever had descriptors open at once.
        """

        def __init__(self) -> None:
            super().__init__()
            self._logContexts: _LogContexts = {}

        def doPoll(self, timeout: float | None) -> None:
            """
            Poll for events and dispatch each as C{log.callWithLogger}
            would, with a kept context.
            """
            if timeout is None:
                timeout = -1  # Wait indefinitely.
            try:
                events = self._poller.poll(timeout, len(self._selectables))
            except OSError as error:
                if error.errno == errno.EINTR:
                    return
                raise
            if not events:
                return
            tracker = context.theContextTracker.currentContext()
            contexts = tracker.contexts
            selectables = self._selectables
            dispatch = self._doReadOrWrite
            for fd, event in events:
                selectable = selectables.get(fd)
                if selectable is None:
                    continue
                try:
                    prefix = selectable.logPrefix()
                except KeyboardInterrupt:
                    raise
                except BaseException:  # noqa: BLE001 - as callWithLogger does
                    prefix = "(buggy logPrefix method)"
                    log.err(system=prefix)
                parent = tracker.getContext(log.ILogContext)
                kept = self._logContexts.get(fd)
                if kept is None or kept[0] is not parent or kept[1] != prefix:
                    kept = self._keepContext(fd, parent, prefix)
                contexts.append(kept[2])
                try:
                    try:
                        dispatch(selectable, fd, event)
                    finally:
                        contexts.pop()
                except KeyboardInterrupt:
                    raise
                except BaseException:  # noqa: BLE001 - as callWithLogger does
                    log.err(system=prefix)

        doIteration = doPoll

        def _keepContext(
            self, fd: int, parent: dict[str, Any] | None, prefix: str
        ) -> tuple[object, str, dict[Any, Any]]:
            """
            Make, keep and return the context to push for descriptor C{fd}:
            C{parent}, the enclosing log context, with C{prefix} as its
            C{system}, as C{log.callWithContext} makes it.
            """
            logContext = dict(parent) if parent is not None else {}
            logContext["system"] = prefix
            kept = (parent, prefix, {log.ILogContext: logContext})
            self._logContexts[fd] = kept
            return kept


def installEchoReactor() -> bool:
    """
    Install C{EchoEPollReactor} as the reactor, unless one is installed
    already (chosen with twistd's C{--reactor}, or imported by something
    earlier) or this system has no epoll; return whether it was installed.
    """
    if sys.platform != "linux" or "twisted.internet.reactor" in sys.modules:
        return False
    from twisted.internet.main import installReactor

    installReactor(EchoEPollReactor())
    return True


def readInto(
    transport: object, buffer: bytearray, receive: Callable[[int], object]
) -> bool:
    """
    Make Twisted's TCP C{transport} read into C{buffer} and call
    C{receive(length)} with the length of each read, instead of calling
    its protocol's C{dataReceived} with a new C{bytes}; return whether it
    does.

    A transport that does not read exactly as C{tcp.Connection.doRead}
    reads (a UNIX socket, which may pass descriptors; TLS; a wrapper; a
    test transport) is left as it is.  The replacement is that method with
    C{recv_into} for C{recv}: the same read size (C{bufferSize}, at most
    the buffer's), the same answers to the reactor for a read that would
    block, failed or found the end of the stream, so half-close,
    backpressure (C{stopReading}) and errors stay Twisted's.  C{buffer} may
    be shared by every connection: the reactor runs one read at a time, and
    C{receive} must copy what it keeps.
    """
    from twisted.internet import main, tcp

    if getattr(type(transport), "doRead", None) is not tcp.Connection.doRead:
        return False
    if getattr(transport, "TLS", False):
        return False
    sock = getattr(transport, "socket", None)
    if sock is None:
        return False
    receiveInto = sock.recv_into
    size = len(buffer)
    wouldBlock = (errno.EWOULDBLOCK, errno.EAGAIN)

    def doRead() -> object:
        try:
            length = receiveInto(buffer, min(transport.bufferSize, size))  # type: ignore[attr-defined]
        except OSError as error:
            if error.args[0] in wouldBlock:
                return None
            return main.CONNECTION_LOST
        if not length:
            return main.CONNECTION_DONE
        receive(length)
        return None

    transport.doRead = doRead  # type: ignore[attr-defined]
    return True
