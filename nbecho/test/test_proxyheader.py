"""
Tests for L{nbecho.deploy.proxyheader}: which first bytes of a connection make
a PROXY header nbecho accepts, and what it says about the others.
"""

from __future__ import annotations

import struct

from twisted.internet.address import IPv4Address, IPv6Address
from twisted.trial.unittest import SynchronousTestCase

from nbecho.deploy.proxyheader import Header, HeaderError, HeaderReader

V2 = b"\r\n\r\n\x00\r\nQUIT\n"
TCP4 = struct.pack("!4s4sHH", bytes([192, 0, 2, 1]), bytes([127, 0, 0, 1]), 5000, 80)


def v2(command: int, family: int, addresses: bytes) -> bytes:
    """
    A v2 header: C{command} 0 (LOCAL) or 1 (PROXY), C{family} its address
    family and protocol byte.
    """
    return V2 + struct.pack("!BBH", 0x20 | command, family, len(addresses)) + addresses


def tcp4(host: str, port: int) -> IPv4Address:
    return IPv4Address("TCP", host, port)


#: Headers refused, and the problem each is refused with.
REFUSED = {
    b"GET / HTTP/1.1\r\n": "not a PROXY header: 'GET / HTTP/1.1\\x0d\\x0a'",
    b"PROXY TCP4 127.0.0.1 127.0.0.1 abc 80\r\n": (
        "source port 'abc' is not a number from 0 to 65535"
    ),
    b"PROXY TCP4 127.0.0.1 127.0.0.1 1 70000\r\n": (
        "destination port '70000' is not a number from 0 to 65535"
    ),
    b"PROXY TCP4 127.0.0.1 127.0.0.1 -1 80\r\n": (
        "source port '-1' is not a number from 0 to 65535"
    ),
    b"PROXY TCP4 127.0.0.1 127.0.0.1 +1 80\r\n": (
        "source port '+1' is not a number from 0 to 65535"
    ),
    b"PROXY TCP4 127.0.0.1 127.0.0.1 1_0 80\r\n": (
        "source port '1_0' is not a number from 0 to 65535"
    ),
    "PROXY TCP4 127.0.0.1 127.0.0.1 \u0663 80\r\n".encode(): (
        "source port '\u0663' is not a number from 0 to 65535"
    ),
    b"PROXY TCP4 999.0.0.1 127.0.0.1 1 80\r\n": (
        "source address '999.0.0.1' is not an IPv4 address"
    ),
    b"PROXY TCP4 127.0.0.1 localhost 1 80\r\n": (
        "destination address 'localhost' is not an IPv4 address"
    ),
    b"PROXY TCP4 \xff\xfe.0.0.1 127.0.0.1 1 80\r\n": (
        "source address '\\xff\\xfe.0.0.1' is not an IPv4 address"
    ),
    b"PROXY TCP4 \x1b[31m 127.0.0.1 1 80\r\n": (
        "source address '\\x1b[31m' is not an IPv4 address"
    ),
    b"PROXY TCP4 ::1 ::1 1 80\r\n": "source address '::1' is not an IPv4 address",
    b"PROXY TCP6 127.0.0.1 ::1 1 80\r\n": (
        "source address '127.0.0.1' is not an IPv6 address"
    ),
    b"PROXY TCP6 fe80::1%eth0 ::1 1 80\r\n": (
        "source address 'fe80::1%eth0' is not an IPv6 address"
    ),
    b"PROXY TCP4 127.0.0.1 127.0.0.1 1\r\n": "addresses or ports missing",
    b"PROXY TCP4 127.0.0.1 127.0.0.1 1 2 3\r\n": (
        "7 fields instead of 6 in 'PROXY TCP4 127.0.0.1 127.0.0.1 1 2 3'"
    ),
    b"PROXY UDP4 127.0.0.1 127.0.0.1 1 80\r\n": (
        "unknown protocol 'UDP4' (TCP4, TCP6 or UNKNOWN)"
    ),
    b"PROXY \x1b[31mUNKNOWN\r\n": (
        "unknown protocol '\\x1b[31mUNKNOWN' (TCP4, TCP6 or UNKNOWN)"
    ),
    b"PROXY " + b"1" * 101: "no CRLF within the 107 bytes of a header",
    v2(1, 0x11, TCP4[:6]): "v2: address block too short for its family",
    v2(0xF, 0x11, TCP4): "v2: unknown version or command",
    V2 + b"\x11\x11\x00\x0c" + TCP4: "v2: unknown version or command",
    v2(1, 0x13, TCP4): "v2: unknown address family or protocol",
    v2(1, 0x41, TCP4): "v2: unknown address family or protocol",
}


class HeaderReaderTests(SynchronousTestCase):
    def read(self, *pieces: bytes) -> tuple[Header, bytes] | None:
        """
        Feed C{pieces} one by one; return what the last one gave.
        """
        reader = HeaderReader()
        for piece in pieces[:-1]:
            self.assertIsNone(reader.feed(piece))
        return reader.feed(pieces[-1])

    def test_v1(self) -> None:
        """A v1 header names both ends; the bytes after it are kept."""
        self.assertEqual(
            self.read(b"PROXY TCP4 192.0.2.1 127.0.0.1 5000 80\r\nhello"),
            (Header(tcp4("192.0.2.1", 5000), tcp4("127.0.0.1", 80)), b"hello"),
        )

    def test_v1IPv6(self) -> None:
        """
        A TCP6 header holds IPv6 addresses, spelled the usual way; ports 0 and
        65535 are fine.
        """
        result = self.read(b"PROXY TCP6 2001:db8:0::1 ::1 0 65535\r\n")
        assert result is not None
        header = result[0]
        self.assertEqual(header.source, IPv6Address("TCP", "2001:db8::1", 0))
        self.assertEqual(header.destination, IPv6Address("TCP", "::1", 65535))

    def test_v1Longest(self) -> None:
        """A v1 header of 107 bytes, CRLF included, is read."""
        line = b"PROXY UNKNOWN " + b"x" * 91 + b"\r\n"
        self.assertEqual(len(line), 107)
        self.assertEqual(self.read(line[:106], line[106:]), (Header(), b""))

    def test_v1TooLong(self) -> None:
        """A CRLF after byte 107 comes too late."""
        line = b"PROXY UNKNOWN " + b"x" * 92 + b"\r\n"
        error = self.assertRaises(HeaderError, self.read, line)
        self.assertEqual(error.problem, "no CRLF within the 107 bytes of a header")

    def test_unknown(self) -> None:
        """PROXY UNKNOWN, with or without addresses, names no client."""
        self.assertEqual(self.read(b"PROXY UNKNOWN\r\n"), (Header(), b""))
        self.assertEqual(
            self.read(b"PROXY UNKNOWN ::1 ::1 1 2\r\nhi"), (Header(), b"hi")
        )

    def test_v2(self) -> None:
        """A v2 header for TCP over IPv4, split anywhere, names both ends."""
        header = v2(1, 0x11, TCP4)
        expected = Header(tcp4("192.0.2.1", 5000), tcp4("127.0.0.1", 80))
        for cut in (1, 12, 15, 16, 20):
            self.assertEqual(
                self.read(header[:cut], header[cut:] + b"x"), (expected, b"x")
            )

    def test_v2IPv6(self) -> None:
        """A v2 header for TCP over IPv6 names IPv6 addresses, compressed."""
        addresses = struct.pack(
            "!16s16sHH", b"\x20\x01" + bytes(14), bytes(15) + b"\x01", 1, 2
        )
        result = self.read(v2(1, 0x21, addresses))
        assert result is not None
        self.assertEqual(result[0].source, IPv6Address("TCP", "2001::", 1))
        self.assertEqual(result[0].destination, IPv6Address("TCP", "::1", 2))

    def test_v2NoClient(self) -> None:
        """LOCAL, UNSPEC and UNIX-socket v2 headers name no client."""
        for header in (
            v2(0, 0x00, b""),
            v2(0, 0x11, TCP4),
            v2(1, 0x00, b""),
            v2(1, 0x31, b"/a" * 108),
        ):
            self.assertEqual(self.read(header + b"x"), (Header(), b"x"))

    def test_shortStartWaits(self) -> None:
        """A first read too short to tell a header from garbage waits for more."""
        reader = HeaderReader()
        for piece in (b"P", b"RO", b"XY", b" TC"):
            self.assertIsNone(reader.feed(piece))
        self.assertEqual(reader.received, 8)
        self.assertEqual(reader.first, b"PROXY TC")
        for start in (b"\r", b"\r\n\r\n\x00\r\nQUI"):
            self.assertIsNone(HeaderReader().feed(start))

    def test_garbageRefusedAtOnce(self) -> None:
        """A first byte no header starts with is refused without waiting."""
        for start in (b"G", b"\x16\x03\x01", b"PROXX", b"\r\n\r\n\x01"):
            self.assertRaises(HeaderError, HeaderReader().feed, start)

    def test_refused(self) -> None:
        """Each malformed or out-of-range header is refused, saying what is wrong."""
        problems = {}
        for header, expected in REFUSED.items():
            try:
                self.read(header)
            except HeaderError as error:
                if error.problem != expected:
                    problems[header] = error.problem
            else:
                problems[header] = "accepted"
        self.assertEqual(problems, {})

    def test_firstBytesBounded(self) -> None:
        """Only the first 107 bytes are kept for the log."""
        reader = HeaderReader()
        header = v2(1, 0x11, TCP4 + bytes(200))
        reader.feed(header[:100])
        reader.feed(header[100:])
        self.assertEqual(reader.first, header[:107])
        self.assertEqual(reader.received, len(header))
