"""
Peer addresses rendered the way operators read them in a log line.
"""

from __future__ import annotations

import os

from twisted.internet.address import IPv4Address, IPv6Address, UNIXAddress
from twisted.internet.interfaces import IAddress

from nbecho.logs.escape import escapeMessage

#: How an IPv4 client of a dual-stack IPv6 socket appears: ::ffff:a.b.c.d.
_MAPPED = "::ffff:"


def unmapped(host: str) -> str:
    """
    C{host} as the client knows it: an IPv4 client of a dual-stack socket
    (C{::ffff:127.0.0.1}) as its IPv4 address, so that it reads and counts
    the same whichever socket it reached.
    """
    if host.lower().startswith(_MAPPED) and "." in host:
        return host[len(_MAPPED) :]
    return host


def formatAddress(address: IAddress | None) -> str:
    """
    Render C{address} as C{host:port}, C{[host]:port} or C{unix:path}.

    IPv6 hosts are bracketed so that the port stays unambiguous (IPv4
    clients of a dual-stack socket show as IPv4, see L{unmapped}); an unnamed
    UNIX peer (the usual case for a client socket) shows as C{unix:-}.  A
    UNIX client may bind its socket to any path it likes before connecting,
    so the path is escaped like a message.
    """
    if isinstance(address, IPv6Address):
        host = unmapped(address.host)
        if host != address.host:
            return f"{host}:{address.port}"
        return f"[{host}]:{address.port}"
    if isinstance(address, IPv4Address):
        return f"{address.host}:{address.port}"
    if isinstance(address, UNIXAddress):
        name = address.name
        if isinstance(name, str):
            name = os.fsencode(name)
        return f"unix:{escapeMessage(name) if name else '-'}"
    host = getattr(address, "host", None)
    port = getattr(address, "port", None)
    if host is not None and port is not None:
        return f"{host}:{port}"
    return str(address)


def peerKey(address: IAddress | None) -> str | None:
    """
    The client IP that C{--max-per-peer} counts C{address} under.

    UNIX-socket peers have no host: they are local processes already
    admitted by the socket file's permissions, so only the total limit
    applies to them (C{None}).
    """
    if isinstance(address, (IPv4Address, IPv6Address)):
        return unmapped(address.host)
    host = getattr(address, "host", None)
    return host if isinstance(host, str) else None


def logKey(address: IAddress | None) -> str:
    """
    The client address that connection lines are rate-limited under: the
    IP without its port, or the socket path (C{unix:...}) of a UNIX peer.
    """
    key = peerKey(address)
    if key is not None:
        return key
    return formatAddress(address)
