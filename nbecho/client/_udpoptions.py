"""
The client's UDP session: each line of standard input goes out as one
datagram to the server and its echo is printed as a line (see
C{nbecho.client.datagram}).
"""

from __future__ import annotations

from typing import Any

from twisted.internet.abstract import isIPAddress, isIPv6Address
from twisted.internet.address import IPv4Address, IPv6Address
from twisted.internet.defer import Deferred
from twisted.internet.interfaces import (
    IAddress,
    IHostResolution,
    IResolutionReceiver,
)
from twisted.internet.stdio import StandardIO
from twisted.python import usage
from zope.interface import implementer

from nbecho._twisted import endpointArguments
from nbecho.client.datagram import (
    DatagramClient,
    DatagramConsole,
    ServerUnreachableError,
)


def parseUDPTarget(description: str) -> tuple[str, int]:
    """
    The host and port of a C{udp:host=HOST:port=PORT} connect string, in the
    syntax of Twisted's endpoint strings (C{udp:HOST:PORT} too, and C{\\:}
    for each colon of an IPv6 address).

    @raise ValueError: with the reason to show, if it does not parse.
    """
    try:
        args, keywords = endpointArguments(description)
    except Exception:  # noqa: BLE001 - a lone trailing backslash and the like
        raise ValueError(f"cannot read {description!r}") from None
    if args[:1] != ["udp"]:
        raise ValueError(f"not a udp: connect string: {description!r}")
    unknown = sorted(set(keywords) - {"host", "port"})
    if unknown:
        raise ValueError(f"unknown parameter {unknown[0]!r} (udp: takes host and port)")
    values = dict(keywords)
    for name, value in zip([n for n in ("host", "port") if n not in values], args[1:]):
        values[name] = value
    if len(args) - 1 > 2 - len(keywords):
        raise ValueError(f"unexpected {args[-1]!r}")
    host, port = values.get("host", ""), values.get("port", "")
    if not host or not port:
        raise ValueError("udp: needs host=HOST:port=PORT")
    if not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"port takes a number from 1 to 65535, not {port!r}")
    return host, int(port)


def udpOptions(options: usage.Options) -> tuple[str, int] | None:
    """
    The server's host and port over UDP, or C{None} for a stream; check the
    UDP options on the way.  A C{udp:} connect string implies C{--udp}, and
    C{--udp} takes no stream endpoint.

    @raise twisted.python.usage.UsageError: for a bad option.
    """
    address: tuple[str, int] | None = None
    connect = options["connect"] or ""
    if connect.startswith("udp:"):
        try:
            address = parseUDPTarget(connect)
        except ValueError as error:
            raise usage.UsageError(
                f"cannot use endpoint {connect!r}: {error}"
            ) from None
    elif options["udp"] and connect:
        raise usage.UsageError(
            f"--udp sends datagrams: give --connect udp:host=HOST:port=PORT,"
            f" not {connect!r}"
        )
    elif options["udp"]:
        address = (options["host"], options["port"])
    if address is None:
        given = [f"--{o}" for o in ("timeout", "retries") if options[o] is not None]
        if given:
            verb = "goes" if len(given) == 1 else "go"
            raise usage.UsageError(f"{' and '.join(given)} {verb} with --udp only")
        return None
    try:
        timeout = float(options["timeout"] or "1")
    except ValueError:
        timeout = -1.0
    if not 0 < timeout <= 3600:
        raise usage.UsageError(
            f"--timeout takes seconds above 0, at most 3600, not {options['timeout']!r}"
        )
    options["timeout"] = timeout
    retries = options["retries"] or "3"
    if not retries.isdigit() or int(retries) > 1000:
        raise usage.UsageError(
            f"--retries takes a number from 0 to 1000, not {options['retries']!r}"
        )
    options["retries"] = int(retries)
    return address


async def udpSession(
    reactor: Any,
    host: str,
    port: int,
    prompt: bytes,
    exitWord: bytes,
    timeout: float,
    retries: int,
) -> None:
    """
    Resolve C{host}, then relay standard input to the server as datagrams
    until the session ends.

    @raise ServerUnreachableError: the name does not resolve, or the server
        never answered.
    @raise SessionLostError: it stopped answering during the session.
    @raise OutputClosedError: standard output was closed.
    """
    address = await resolve(reactor, host, port)
    client = DatagramClient()
    # A socket of the server address's family, on any local address and a
    # port the system picks; connecting it makes the system pick the source
    # address and deliver only the server's datagrams (and its ICMP errors).
    interface = "::" if isIPv6Address(address) else "0.0.0.0"
    udpPort = reactor.listenUDP(0, client, interface=interface, maxPacketSize=65535)
    udpPort.connect(address, port)
    done: Deferred[None] = Deferred()
    console = DatagramConsole(
        client.transport, reactor, done, prompt, exitWord, timeout, retries
    )
    client.console = console
    StandardIO(console, reactor=reactor)
    await done


@implementer(IResolutionReceiver)
class _FirstAddress:
    """
    Keep the first address a name resolves to, as C{nc -u} uses the first.
    """

    def __init__(self) -> None:
        self.addresses: list[str] = []
        self.complete: Deferred[list[str]] = Deferred()

    def resolutionBegan(self, resolution: IHostResolution) -> None:
        pass

    def addressResolved(self, address: IAddress) -> None:
        if isinstance(address, (IPv4Address, IPv6Address)):
            self.addresses.append(address.host)

    def resolutionComplete(self) -> None:
        self.complete.callback(self.addresses)


async def resolve(reactor: Any, host: str, port: int) -> str:
    """
    The IP address to send to: C{host} itself if it is one, else the first
    address its name resolves to.
    """
    if isIPAddress(host) or isIPv6Address(host):
        return host
    receiver = _FirstAddress()
    reactor.nameResolver.resolveHostName(
        receiver, host, port, [IPv4Address, IPv6Address], "UDP"
    )
    addresses = await receiver.complete
    if not addresses:
        raise ServerUnreachableError(f"no address for the name {host!r}")
    return addresses[0]
