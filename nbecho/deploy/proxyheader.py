"""
Reading a PROXY protocol header (HAProxy's v1 text and v2 binary formats)
from the first bytes of a connection, and refusing every header that does
not name a real client.

Twisted's parsers (C{twisted.protocols.haproxy}) split the header into its
fields; they take any text for an address and anything C{int()} takes for a
port (C{+80}, C{1_000}, C{70000}), fail with C{ValueError} or
C{UnicodeDecodeError} on others, and refuse C{PROXY UNKNOWN} without
addresses, which the specification allows.  L{HeaderReader} frames the
header, lets those parsers read it, and checks what they return: an IPv4 or
IPv6 address of the family the header names, a port of one to five ASCII
digits up to 65535.  Whatever is wrong becomes one L{HeaderError} whose
C{problem} is safe to log: every byte from the header in it is escaped.
"""

from __future__ import annotations

import ipaddress
import struct

import attrs
from twisted.internet.address import IPv4Address, IPv6Address

from nbecho._twisted import (
    InvalidNetworkProtocol,
    InvalidProxyHeader,
    MissingAddressData,
    V1Parser,
    V2Parser,
)
from nbecho.logs.escape import escapeMessage

#: How a v1 header starts, and how long it can be, CRLF included.
V1_SIGNATURE = b"PROXY "
V1_MAXIMUM = 107

#: How a v2 header starts; its first 16 bytes give its length.
V2_SIGNATURE = V2Parser.PREFIX
V2_FIXED = 16

#: What a v1 header's second field names, and the addresses it then holds.
_FAMILIES: dict[bytes, type[ipaddress.IPv4Address | ipaddress.IPv6Address]] = {
    b"TCP4": ipaddress.IPv4Address,
    b"TCP6": ipaddress.IPv6Address,
}


class HeaderError(Exception):
    """
    The first bytes of a connection are not a PROXY header nbecho accepts.

    @ivar problem: what is wrong, for the log; header bytes in it are escaped.
    """

    def __init__(self, problem: str) -> None:
        super().__init__(problem)
        self.problem = problem


@attrs.frozen
class Header:
    """
    What a valid header says about the connection.

    @ivar source: the client's address, or C{None} when the header names
        none (v1 C{UNKNOWN}, v2 C{LOCAL}, v2 with no IP addresses): the
        connection is then the proxy's own.
    @ivar destination: the address the client connected to, or C{None}.
    """

    source: IPv4Address | IPv6Address | None = None
    destination: IPv4Address | IPv6Address | None = None


def _shown(value: bytes) -> str:
    return "'" + escapeMessage(value, 48) + "'"


class HeaderReader:
    """
    Collect a connection's first bytes until they hold a whole header.

    Bytes are kept only up to the end of the header: at most 107 for v1, 16
    plus the length the v2 header gives (at most 64 KiB) for v2.

    @ivar received: how many bytes were fed.
    @ivar first: the first of them, as many as a v1 header can have, for the
        log of a connection that never completes its header.
    """

    def __init__(self) -> None:
        self._buffer = b""
        self._v2: V2Parser | None = None
        self.received = 0
        self.first = b""

    def feed(self, data: bytes) -> tuple[Header, bytes] | None:
        """
        Take the next bytes read.

        @return: C{None} while the header is incomplete, then the header and
            the bytes that followed it.
        @raise HeaderError: the bytes cannot begin, or do not make, a valid
            PROXY header.
        """
        if self.received < V1_MAXIMUM:
            self.first += data[: V1_MAXIMUM - self.received]
        self.received += len(data)
        if self._v2 is not None:
            return self._feedV2(data)
        buffer = self._buffer + data
        if buffer.startswith(V2_SIGNATURE):
            if len(buffer) < V2_FIXED:
                self._buffer = buffer
                return None
            self._buffer = b""
            self._v2 = V2Parser()
            return self._feedV2(buffer)
        if buffer.startswith(V1_SIGNATURE):
            return self._feedV1(buffer)
        if V2_SIGNATURE.startswith(buffer) or V1_SIGNATURE.startswith(buffer):
            # A short first read: wait for the bytes that tell.
            self._buffer = buffer
            return None
        raise HeaderError(f"not a PROXY header: {_shown(buffer[:V1_MAXIMUM])}")

    def _feedV1(self, buffer: bytes) -> tuple[Header, bytes] | None:
        end = buffer.find(b"\r\n", 0, V1_MAXIMUM)
        if end < 0:
            if len(buffer) >= V1_MAXIMUM:
                raise HeaderError(f"no CRLF within the {V1_MAXIMUM} bytes of a header")
            self._buffer = buffer
            return None
        self._buffer = b""
        return readV1(buffer[:end]), buffer[end + 2 :]

    def _feedV2(self, data: bytes) -> tuple[Header, bytes] | None:
        assert self._v2 is not None
        try:
            info, remaining = self._v2.feed(data)
        except InvalidNetworkProtocol:
            raise HeaderError("v2: unknown address family or protocol") from None
        except MissingAddressData:
            raise HeaderError("v2: address block too short for its family") from None
        except (InvalidProxyHeader, ValueError, LookupError, struct.error):
            raise HeaderError("v2: unknown version or command") from None
        if info is None:
            return None
        assert remaining is not None
        source, destination = info.source, info.destination
        if isinstance(source, (IPv4Address, IPv6Address)) and isinstance(
            destination, (IPv4Address, IPv6Address)
        ):
            # Built from packed bytes and 16-bit fields: valid by construction.
            return Header(_normal(source), _normal(destination)), remaining
        # LOCAL, UNSPEC or UNIX sockets: no client IP to name.
        return Header(), remaining


def readV1(line: bytes) -> Header:
    """
    Read a v1 header line, its CRLF removed.

    @raise HeaderError: it is malformed, or names no real address or port.
    """
    fields = line.split(b" ")
    if fields[1:2] == [b"UNKNOWN"]:
        # The specification: whatever follows UNKNOWN is to be ignored.
        return Header()
    try:
        info = V1Parser.parse(line)
    except InvalidNetworkProtocol:
        protocol = fields[1] if len(fields) > 1 else b""
        raise HeaderError(
            f"unknown protocol {_shown(protocol)} (TCP4, TCP6 or UNKNOWN)"
        ) from None
    except MissingAddressData:
        raise HeaderError("addresses or ports missing") from None
    except InvalidProxyHeader:
        raise HeaderError(f"malformed header {_shown(line)}") from None
    except ValueError:
        # A port int() refuses, or an address that is not UTF-8: checked
        # below field by field, to say which.
        info = None
    if len(fields) != 6:
        raise HeaderError(f"{len(fields)} fields instead of 6 in {_shown(line)}")
    _, protocol, source, destination, sourcePort, destinationPort = fields
    family = _FAMILIES[protocol]
    for what, address in (("source", source), ("destination", destination)):
        _checkAddress(what, address, family)
    for what, port in (("source", sourcePort), ("destination", destinationPort)):
        _checkPort(what, port)
    if info is None or not (
        isinstance(info.source, (IPv4Address, IPv6Address))
        and isinstance(info.destination, (IPv4Address, IPv6Address))
    ):
        raise HeaderError(f"malformed header {_shown(line)}")
    return Header(_normal(info.source), _normal(info.destination))


def _normal(address: IPv4Address | IPv6Address) -> IPv4Address | IPv6Address:
    """
    C{address} with its host spelled the one way C{ipaddress} spells it
    (C{2001:db8::1}, not C{2001:db8:0:0:0:0:0:1}): one client, one name.
    """
    return attrs.evolve(address, host=str(ipaddress.ip_address(address.host)))


def _checkAddress(
    what: str,
    address: bytes,
    family: type[ipaddress.IPv4Address | ipaddress.IPv6Address],
) -> None:
    name = "an IPv4" if family is ipaddress.IPv4Address else "an IPv6"
    try:
        # ipaddress would take a scope (fe80::1%eth0), which a header has not.
        if b"%" in address:
            raise ValueError("scope")
        family(address.decode("ascii"))
    except ValueError:
        raise HeaderError(
            f"{what} address {_shown(address)} is not {name} address"
        ) from None


def _checkPort(what: str, port: bytes) -> None:
    if not (0 < len(port) <= 5 and port.isdigit() and int(port) <= 65535):
        raise HeaderError(f"{what} port {_shown(port)} is not a number from 0 to 65535")
