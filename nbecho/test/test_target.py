"""
Tests for L{nbecho.client.target}: which server the client's arguments name.
"""

from __future__ import annotations

from twisted.python import usage
from twisted.trial.unittest import SynchronousTestCase

from nbecho.client.cli import Options
from nbecho.client.target import checkHost, splitTarget


class SplitTargetTests(SynchronousTestCase):
    def test_forms(self) -> None:
        """
        A number alone is the port; C{HOST:PORT} and C{[V6]:PORT} are both;
        an IPv6 address or a name alone is the host.
        """
        cases = {
            "9999": (None, "9999"),
            "localhost:9999": ("localhost", "9999"),
            "[::1]:9999": ("::1", "9999"),
            "[::1]": ("::1", None),
            "::1": ("::1", None),
            "example.org": ("example.org", None),
        }
        for argument, expected in cases.items():
            self.assertEqual(splitTarget(argument), expected, argument)

    def test_unreadable(self) -> None:
        """
        A colon with no port and an unclosed bracket are usage errors.
        """
        for argument in ("localhost:", "[::1", "[::1]x", "[nohost]:1"):
            self.assertRaises(usage.UsageError, splitTarget, argument)


class CheckHostTests(SynchronousTestCase):
    def test_shortForms(self) -> None:
        """
        Forms only C{inet_aton} reads as an address are refused, naming the
        full address.
        """
        for host, full in [
            ("9999", "0.0.39.15"),
            ("10.1", "10.0.0.1"),
            ("127.1", "127.0.0.1"),
            ("0x7f.1", "127.0.0.1"),
            ("010.0.0.1", "8.0.0.1"),
        ]:
            error = self.assertRaises(usage.UsageError, checkHost, host)
            self.assertIn(f"write {full} if you mean it", str(error))

    def test_fullForms(self) -> None:
        """
        Dotted quads, IPv6 addresses and names pass unchanged.
        """
        for host in ("127.0.0.1", "::1", "localhost", "1e3", "10.1.example"):
            self.assertEqual(checkHost(host), host)


class OptionsTargetTests(SynchronousTestCase):
    def parse(self, *args: str) -> Options:
        options = Options()
        options.parseOptions(list(args))
        return options

    def test_lonePort(self) -> None:
        """
        C{nbecho-client 9999} is port 9999 on 127.0.0.1.
        """
        options = self.parse("9999")
        self.assertEqual((options["host"], options["port"]), ("127.0.0.1", 9999))

    def test_hostPortOneArgument(self) -> None:
        """
        C{[::1]:7} sets both host and port.
        """
        options = self.parse("[::1]:7")
        self.assertEqual((options["host"], options["port"]), ("::1", 7))

    def test_portTwice(self) -> None:
        """
        A port in C{HOST:PORT} and a second argument conflict, as do
        C{HOST:PORT} and C{--port}.
        """
        self.assertRaises(usage.UsageError, self.parse, "localhost:1", "2")
        self.assertRaises(usage.UsageError, self.parse, "--port", "2", "localhost:1")

    def test_connectHost(self) -> None:
        """
        The host of a C{--connect} string is checked like C{--host}.
        """
        self.assertRaises(
            usage.UsageError, self.parse, "--connect", "udp:host=127.1:port=9"
        )
        self.assertEqual(self.parse("--connect", "unix:/x")["connect"], "unix:/x")
