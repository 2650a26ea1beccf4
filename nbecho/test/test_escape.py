"""
Tests for L{nbecho.logs.escape} and L{nbecho.server._address}: what a client controls
reaches the operator's terminal only as printable, unambiguous text.
"""

from __future__ import annotations

import re

from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.internet.address import IPv4Address, IPv6Address, UNIXAddress
from twisted.trial.unittest import SynchronousTestCase

from nbecho.logs.escape import LOG_LIMIT, escapeMessage
from nbecho.server._address import formatAddress

_ESCAPE = re.compile(r"\\(\\|x[0-9a-f]{2}|u[0-9a-f]{4}|U[0-9a-f]{8})|([^\\])", re.S)


def unescape(text: str) -> bytes:
    """
    The bytes an operator would read back from C{text}, the inverse of
    L{escapeMessage} on a message that was not cut.
    """
    out = bytearray()
    position = 0
    for match in _ESCAPE.finditer(text):
        if match.start() != position:
            raise ValueError(f"stray backslash at {position} in {text!r}")
        position = match.end()
        escape, plain = match.groups()
        if plain is not None:
            out += plain.encode("utf-8")
        elif escape == "\\":
            out += b"\\"
        elif escape[0] == "x":
            out.append(int(escape[1:], 16))
        else:
            out += chr(int(escape[1:], 16)).encode("utf-8")
    if position != len(text):
        raise ValueError(f"stray backslash at {position} in {text!r}")
    return bytes(out)


def isSafe(text: str) -> bool:
    """
    Whether C{text} could be written to a terminal without it acting on it.
    """
    return all(char.isprintable() for char in text)


class EscapeMessageTests(SynchronousTestCase):
    """
    L{escapeMessage} turns client bytes into one printable log field.
    """

    def test_printableASCII(self) -> None:
        """
        Printable ASCII other than the backslash is shown as is.
        """
        text = bytes(range(0x20, 0x7F)).replace(b"\\", b"")
        self.assertEqual(escapeMessage(text), text.decode("ascii"))

    def test_utf8Unchanged(self) -> None:
        """
        Printable UTF-8 text in any script, emoji included, stays readable.
        """
        text = "café 日本語 Ελληνικά 😀 «ok»"
        self.assertEqual(escapeMessage(text.encode("utf-8")), text)

    def test_asciiControls(self) -> None:
        """
        ESC, NUL, DEL, tab, CR and LF become C{\\xNN}, so that no escape
        sequence reaches the terminal.
        """
        self.assertEqual(
            escapeMessage(b"\x1b[2J\x1b]0;title\x07\x00\x7f\t\r\n"),
            "\\x1b[2J\\x1b]0;title\\x07\\x00\\x7f\\x09\\x0d\\x0a",
        )

    def test_unicodeControls(self) -> None:
        """
        C1 controls, bidirectional overrides, zero-width and other unprintable
        characters become C{\\uNNNN} or C{\\UNNNNNNNN} escapes.
        """
        cases = {
            "\u0085": "\\u0085",  # NEL, a C1 control
            "\u009b": "\\u009b",  # CSI, a C1 control
            "\u202e": "\\u202e",  # RIGHT-TO-LEFT OVERRIDE
            "\u2066": "\\u2066",  # LEFT-TO-RIGHT ISOLATE
            "\u200b": "\\u200b",  # ZERO WIDTH SPACE
            "\u00a0": "\\u00a0",  # NO-BREAK SPACE
            "\U000e0001": "\\U000e0001",  # LANGUAGE TAG
        }
        for char, escaped in cases.items():
            self.assertEqual(escapeMessage(char.encode("utf-8")), escaped)

    def test_invalidUTF8(self) -> None:
        """
        Bytes that are not UTF-8 (stray continuation bytes, a cut sequence,
        encoded surrogates, overlong forms) become C{\\xNN} escapes, one per
        byte.
        """
        cases = {
            b"\x85": "\\x85",
            b"\xff\xfe": "\\xff\\xfe",
            b"ok\xf0\x9f": "ok\\xf0\\x9f",
            b"\xed\xa0\x80": "\\xed\\xa0\\x80",
            b"\xc0\xaf": "\\xc0\\xaf",
        }
        for data, escaped in cases.items():
            self.assertEqual(escapeMessage(data), escaped)

    def test_c1DiffersFromInvalidByte(self) -> None:
        """
        The C1 character U+0085 and a lone byte 0x85 are told apart.
        """
        self.assertNotEqual(escapeMessage(b"\xc2\x85"), escapeMessage(b"\x85"))

    def test_backslashDoubled(self) -> None:
        """
        A backslash sent by the client is doubled, so it cannot fake an
        escape.
        """
        self.assertEqual(escapeMessage(b"a\\x1b\\"), "a\\\\x1b\\\\")

    def test_empty(self) -> None:
        """
        An empty message is an empty field.
        """
        self.assertEqual(escapeMessage(b""), "")

    def test_limit(self) -> None:
        """
        A message up to the limit is shown whole; a longer one is cut at the
        limit and its full length is shown.
        """
        self.assertEqual(escapeMessage(b"x" * LOG_LIMIT), "x" * LOG_LIMIT)
        self.assertEqual(
            escapeMessage(b"x" * (LOG_LIMIT + 1)),
            "x" * LOG_LIMIT + f"... ({LOG_LIMIT + 1} bytes)",
        )
        self.assertEqual(escapeMessage(b"abcdef", limit=3), "abc... (6 bytes)")

    def test_cutCountsBytes(self) -> None:
        """
        The limit counts bytes: a multi-byte character cut in half shows its
        first bytes escaped.
        """
        self.assertEqual(escapeMessage("aé".encode(), limit=2), "a\\xc3... (3 bytes)")

    def test_bigMessage(self) -> None:
        """
        A 10 MB message gives a log field of bounded size.
        """
        text = escapeMessage(b"\x1b" * 10_000_000)
        self.assertEqual(text, "\\x1b" * LOG_LIMIT + "... (10000000 bytes)")

    @settings(max_examples=300, deadline=None, database=None)
    @given(st.binary(max_size=LOG_LIMIT))
    def test_roundTrip(self, data: bytes) -> None:
        """
        Any message up to the limit escapes to printable text from which the
        exact bytes can be read back.
        """
        text = escapeMessage(data)
        self.assertTrue(isSafe(text), text)
        self.assertEqual(unescape(text), data)

    @settings(max_examples=200, deadline=None, database=None)
    @given(st.text(max_size=50))
    def test_roundTripText(self, message: str) -> None:
        """
        Any Unicode text escapes to printable text that reads back to it.
        """
        data = message.encode("utf-8", "surrogatepass")
        text = escapeMessage(data)
        self.assertTrue(isSafe(text), text)
        self.assertEqual(unescape(text), data)


class FormatAddressTests(SynchronousTestCase):
    """
    L{formatAddress} names a peer the way an operator reads it.
    """

    def test_ipv4(self) -> None:
        """
        An IPv4 peer is C{host:port}.
        """
        address = IPv4Address("TCP", "127.0.0.1", 9999)
        self.assertEqual(formatAddress(address), "127.0.0.1:9999")

    def test_ipv6(self) -> None:
        """
        An IPv6 host is bracketed so the port stays unambiguous.
        """
        address = IPv6Address("TCP", "::1", 9999)
        self.assertEqual(formatAddress(address), "[::1]:9999")
        scoped = IPv6Address("TCP", "fe80::1%lo", 80)
        self.assertEqual(formatAddress(scoped), "[fe80::1%lo]:80")

    def test_ipv4MappedShowsAsIPv4(self) -> None:
        """
        An IPv4 client of a dual-stack socket shows as the IPv4 address it
        connected from, not as C{[::ffff:127.0.0.1]}.
        """
        address = IPv6Address("TCP", "::ffff:127.0.0.1", 5000)
        self.assertEqual(formatAddress(address), "127.0.0.1:5000")
        self.assertEqual(
            formatAddress(IPv6Address("TCP", "::ffff:1", 5)), "[::ffff:1]:5"
        )

    def test_unix(self) -> None:
        """
        A UNIX socket is C{unix:path}; an unnamed client socket C{unix:-}.
        """
        self.assertEqual(
            formatAddress(UNIXAddress(b"/run/echo.sock")), "unix:/run/echo.sock"
        )
        self.assertEqual(
            formatAddress(UNIXAddress("/run/echo.sock")), "unix:/run/echo.sock"
        )
        self.assertEqual(formatAddress(UNIXAddress(None)), "unix:-")
        self.assertEqual(formatAddress(UNIXAddress(b"")), "unix:-")

    def test_unixHostilePath(self) -> None:
        """
        A client may bind its UNIX socket to any path before connecting: the
        path is escaped like a message, so it cannot reach the terminal raw.
        """
        address = UNIXAddress(b"/tmp/\x1b[2J\xff\\")
        self.assertEqual(formatAddress(address), "unix:/tmp/\\x1b[2J\\xff\\\\")

    def test_otherAddresses(self) -> None:
        """
        An address of another kind with a host and port is C{host:port};
        anything else is its C{str}.
        """

        class Proxied:
            host = "10.0.0.1"
            port = 1234

        self.assertEqual(formatAddress(Proxied()), "10.0.0.1:1234")  # type: ignore[arg-type]
        self.assertEqual(formatAddress(None), "None")
