"""
Which server the client's arguments name: C{nbecho-client 9999}, C{HOST
PORT}, C{HOST:PORT}, C{[V6ADDR]:PORT}, and never an address the user did not
clearly write.

The system's resolver reads C{9999} as the IPv4 address 0.0.39.15 and
C{127.1} as 127.0.0.1 (the forms of C{inet_aton}), so a port typed alone
would send the user's input off the machine.  A lone number is the port;
a host that only C{inet_aton} reads as an address is refused until it is
written in full.
"""

from __future__ import annotations

import socket

from twisted.internet.abstract import isIPv6Address
from twisted.python import usage

from nbecho._twisted import endpointArguments


def checkHost(host: str) -> str:
    """
    C{host}, unless the resolver would read it as a shorthand IPv4 address
    (C{9999}, C{10.1}, C{0x7f.1}): a full dotted quad, an IPv6 address or a
    host name is what the user meant.

    @raise twisted.python.usage.UsageError: for a shorthand address, naming
        the full address it stands for.
    """
    try:
        packed = socket.inet_aton(host)
    except (OSError, ValueError):
        return host
    try:
        socket.inet_pton(socket.AF_INET, host)
    except OSError:
        full = socket.inet_ntoa(packed)
        raise usage.UsageError(
            f"{host!r} is not a host name but a short form of the address {full}:"
            f" write {full} if you mean it"
        ) from None
    return host


def splitTarget(argument: str) -> tuple[str | None, str | None]:
    """
    The host and port of one positional argument: C{9999} is the port,
    C{HOST:PORT} and C{[V6ADDR]:PORT} are both, anything else (C{::1},
    C{[::1]}, C{localhost}) is the host.

    @raise twisted.python.usage.UsageError: for C{HOST:} with no port.
    """
    if argument.isascii() and argument.isdigit():
        return None, argument
    if argument.startswith("["):
        address, bracket, rest = argument[1:].partition("]")
        if bracket and isIPv6Address(address):
            if not rest:
                return address, None
            if rest.startswith(":"):
                return address, _port(argument, rest[1:])
        raise usage.UsageError(
            f"cannot read {argument!r}: write an IPv6 address as [ADDRESS]:PORT"
        )
    if argument.count(":") == 1:
        host, _, port = argument.partition(":")
        return host, _port(argument, port)
    return argument, None


def _port(argument: str, port: str) -> str:
    if not port:
        raise usage.UsageError(f"{argument!r} has no port after the colon")
    return port


def connectHost(description: str | None) -> None:
    """
    Check the host of a C{--connect} string (C{tcp:}, C{tls:}, C{udp:}) as
    L{checkHost} checks C{--host}: C{tcp:9999:7} is not port 9999.

    @raise twisted.python.usage.UsageError: for a shorthand address.
    """
    if not description:
        return
    try:
        args, keywords = endpointArguments(description)
    except Exception:  # noqa: BLE001 - reported when the endpoint is made
        return
    if args[:1] not in (["tcp"], ["tls"], ["udp"]):
        return
    host = keywords.get("host", args[1] if len(args) > 1 else None)
    if host is not None:
        checkHost(host)
