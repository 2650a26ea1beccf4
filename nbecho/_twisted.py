"""
Every use nbecho makes of Twisted's private API, in one place.

Twisted keeps these names to itself and may change them in any release.
nbecho uses them where the public API has no equivalent: reading an endpoint
string exactly as C{serverFromString} does, parsing PROXY headers with
Twisted's own parsers, telling a failed TLS handshake from a later TLS
error, building an C{ssl:} endpoint's context at start-up, and handing a
UNIX socket's lock file to the daemon after twistd forks.  (The write fast
path's use of C{FileDescriptor}'s buffers lives in
L{nbecho.server._fastwrite}, which steps aside on its own when they change.)

C{nbecho/test/test_twisted.py} checks each of them against the installed
Twisted and fails with a message naming what changed, so that a new Twisted
release is caught by C{trial nbecho} (CI runs it against the newest Twisted
on PyPI, pre-releases included) before a user meets it.
"""

from __future__ import annotations

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
    "unixLockFile",
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
