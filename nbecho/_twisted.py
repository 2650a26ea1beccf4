"""
Every use nbecho makes of Twisted's private API, in one place.

Twisted keeps these names to itself and may change them in any release.
nbecho uses them where the public API has no equivalent: reading an endpoint
string exactly as C{serverFromString} does, parsing PROXY headers with
Twisted's own parsers, telling a failed TLS handshake from a later TLS
error, building an C{ssl:} endpoint's context at start-up, handing a
UNIX socket's lock file to the daemon after twistd forks, and echoing over
TLS without Twisted's write aggregation, which loses echoes when the
client's close_notify arrives with its last data.  (The write fast
path's use of C{FileDescriptor}'s buffers lives in
L{nbecho.server._fastwrite}, which steps aside on its own when they change.)

C{nbecho/test/test_twisted.py} checks each of them against the installed
Twisted and fails with a message naming what changed, so that a new Twisted
release is caught by C{trial nbecho} (CI runs it against the newest Twisted
on PyPI, pre-releases included) before a user meets it.
"""

from __future__ import annotations

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
    "InvalidNetworkProtocol",
    "InvalidProxyHeader",
    "MissingAddressData",
    "V1Parser",
    "V2Parser",
    "endpointArguments",
    "handshakeDone",
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
