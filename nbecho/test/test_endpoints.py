"""
Tests for L{nbecho.deploy.endpoints}: the backlog added to endpoint strings,
the default listeners of C{--port}, errors in words and the TLS check.
"""

from __future__ import annotations

import datetime
import os
from pathlib import Path

from twisted.internet.endpoints import (
    SSL4ServerEndpoint,
    TCP4ServerEndpoint,
    TCP6ServerEndpoint,
    UNIXServerEndpoint,
)
from twisted.internet.testing import MemoryReactor
from twisted.trial.unittest import SkipTest, SynchronousTestCase

from nbecho._twisted import endpointArguments
from nbecho.deploy.endpoints import (
    BACKLOG_MAX,
    BACKLOG_MIN,
    EndpointError,
    TLSRefusedError,
    defaultListeners,
    listenBacklog,
    listenOn,
    udpListeners,
    withBacklog,
)
from nbecho.deploy.proxy import ProxiedEndpoint


class ListenBacklogTests(SynchronousTestCase):
    """
    The backlog follows the kernel's C{somaxconn}, from L{BACKLOG_MIN} to
    L{BACKLOG_MAX}.
    """

    def backlogFor(self, content: str | None) -> int:
        path = Path(self.mktemp())
        if content is not None:
            path.write_text(content)
        return listenBacklog(path)

    def test_followsKernel(self) -> None:
        """
        A C{somaxconn} within the bounds is the backlog.
        """
        self.assertEqual(self.backlogFor("2048\n"), 2048)
        self.assertEqual(self.backlogFor("4096\n"), 4096)

    def test_bounds(self) -> None:
        """
        An old kernel's 128 still asks for 1024 (the kernel cuts it, but a
        raised C{somaxconn} needs no restart of nbecho's settings); a huge
        one is kept to 4096.
        """
        self.assertEqual(self.backlogFor("128\n"), BACKLOG_MIN)
        self.assertEqual(self.backlogFor("65535\n"), BACKLOG_MAX)

    def test_unreadable(self) -> None:
        """
        Without a readable C{somaxconn} (not Linux) the backlog is 1024.
        """
        self.assertEqual(self.backlogFor(None), BACKLOG_MIN)
        self.assertEqual(self.backlogFor("many"), BACKLOG_MIN)


class WithBacklogTests(SynchronousTestCase):
    """
    L{withBacklog} adds C{backlog=} where Twisted's parser takes it and the
    string has none, whatever the escapes.
    """

    def assertAdded(self, description: str) -> None:
        """
        Twisted reads C{description} with the backlog added exactly as it
        reads C{description}, plus C{backlog=1234}.
        """
        result = withBacklog(description, 1234)
        args, kw = endpointArguments(description.removeprefix("haproxy:"))
        self.assertEqual(
            endpointArguments(result.removeprefix("haproxy:")),
            (args, {**kw, "backlog": "1234"}),
        )
        self.assertEqual(
            result.startswith("haproxy:"), description.startswith("haproxy:")
        )

    def test_added(self) -> None:
        """
        tcp:, tcp6:, unix:, ssl: and haproxy: strings get the backlog, escaped
        colons and all.
        """
        for description in [
            "tcp:0",
            "TCP:0:interface=127.0.0.1",
            "tcp6:0:interface=\\:\\:1",
            "unix:/tmp/a\\:b.sock:mode=600",
            "ssl:0:privateKey=k.pem:certKey=c.pem",
            "haproxy:tcp:0:interface=127.0.0.1",
            "haproxy:tcp6:0",
            "unix:/tmp/ends-with-escaped-backslash\\\\",
        ]:
            self.assertAdded(description)

    def test_ownBacklogKept(self) -> None:
        """
        A string with its own C{backlog=} is left as it is.
        """
        for description in [
            "tcp:0:backlog=5",
            "haproxy:tcp:0:backlog=5",
            "unix:/tmp/x.sock:backlog=7",
        ]:
            self.assertEqual(withBacklog(description, 1234), description)

    def test_othersUntouched(self) -> None:
        """
        Endpoint types whose parser takes no backlog (systemd:, whose socket
        systemd made) and strings Twisted cannot read are left as they are.
        """
        for description in [
            "systemd:domain=INET:index=0",
            "stdio:",
            "nosuchtype:1",
            "tcp:0\\",
            "",
        ]:
            self.assertEqual(withBacklog(description, 1234), description)

    def test_listeners(self) -> None:
        """
        The endpoints built from strings without a backlog get it; one built
        from a string with its own keeps that.
        """
        reactor = MemoryReactor()
        tcp = listenOn(reactor, "tcp:0", 1234)
        assert isinstance(tcp, TCP4ServerEndpoint)
        self.assertEqual(tcp._backlog, 1234)
        own = listenOn(reactor, "tcp:0:backlog=9", 1234)
        assert isinstance(own, TCP4ServerEndpoint)
        self.assertEqual(own._backlog, 9)
        proxied = listenOn(reactor, "haproxy:tcp6:0", 1234)
        assert isinstance(proxied, ProxiedEndpoint)
        assert isinstance(proxied.wrapped, TCP6ServerEndpoint)
        self.assertEqual(proxied.wrapped._backlog, 1234)
        unix = listenOn(reactor, f"unix:{self.mktemp()}", 1234)
        assert isinstance(unix, UNIXServerEndpoint)
        self.assertEqual(unix._backlog, 1234)


class DefaultListenersTests(SynchronousTestCase):
    """
    C{--port} alone listens on IPv4 and IPv6 as the machine allows, and says
    which; C{--interface} keeps to the address given.
    """

    def test_dualStack(self) -> None:
        """
        Where an IPv6 socket also serves IPv4, one C{tcp6:} listener on
        C{::} serves both.
        """
        self.assertEqual(
            defaultListeners(9999, "", lambda: True),
            [("tcp6:9999", "tcp6:9999, IPv4 and IPv6")],
        )

    def test_separateStacks(self) -> None:
        """
        Where IPv6 sockets serve IPv6 only, an IPv6 and an IPv4 listener.
        """
        self.assertEqual(
            defaultListeners(9999, "", lambda: False),
            [("tcp6:9999", "tcp6:9999, IPv6"), ("tcp:9999", "tcp:9999, IPv4")],
        )

    def test_noIPv6(self) -> None:
        """
        Without IPv6, IPv4 only, and the name says so.
        """
        [(description, name)] = defaultListeners(0, "", lambda: None)
        self.assertEqual(description, "tcp:0")
        self.assertIn("IPv4 only", name)

    def test_udpDualStack(self) -> None:
        """
        C{udp:PORT} without an interface binds C{::}, IPv4 and IPv6, where
        the kernel allows it, as C{--port} does.
        """
        self.assertEqual(
            udpListeners("udp:9997", lambda: True),
            [("udp:9997:interface=\\:\\:", "udp:9997, IPv4 and IPv6")],
        )

    def test_udpSeparateStacks(self) -> None:
        """
        Where IPv6 sockets serve IPv6 only, C{udp:PORT} binds two sockets.
        """
        self.assertEqual(
            udpListeners("udp:9997", lambda: False),
            [
                ("udp:9997:interface=\\:\\:", "udp:9997, IPv6"),
                ("udp:9997:interface=0.0.0.0", "udp:9997, IPv4"),
            ],
        )

    def test_udpNoIPv6OrInterface(self) -> None:
        """
        Without IPv6 C{udp:PORT} binds IPv4 and says so; an interface given
        is kept as it is.
        """
        [(description, name)] = udpListeners("udp:0", lambda: None)
        self.assertEqual(description, "udp:0")
        self.assertIn("IPv4 only", name)
        given = "udp:0:interface=127.0.0.1"
        self.assertEqual(udpListeners(given, lambda: True), [(given, given)])

    def test_interface(self) -> None:
        """
        An interface, quoted, gives one C{tcp:} listener on it.
        """
        self.assertEqual(
            defaultListeners(8000, "::1", lambda: True),
            [("tcp:8000:interface=\\:\\:1",) * 2],
        )
        self.assertEqual(
            defaultListeners(0, "0.0.0.0", lambda: True),
            [("tcp:0:interface=0.0.0.0",) * 2],
        )


class EndpointErrorTests(SynchronousTestCase):
    """
    Endpoint strings that cannot work are refused in words.
    """

    def assertRefused(self, description: str, *expected: str) -> str:
        error = self.assertRaises(
            EndpointError, listenOn, MemoryReactor(), description, 1024
        )
        message = str(error)
        for part in expected:
            self.assertIn(part, message)
        for jargon in ("invalid literal", "Errno", "[(", "_parse"):
            self.assertNotIn(jargon, message)
        return message

    def test_port(self) -> None:
        """
        A missing port, one that is not a number or out of range is named.
        """
        self.assertRefused("tcp:notaport", "port must be a number", "'notaport'")
        self.assertRefused("tcp6:70000", "from 0 to 65535", "'70000'")
        self.assertRefused("ssl:-1", "'-1'")
        self.assertRefused("haproxy:tcp:x", "port must be a number", "'x'")
        self.assertRefused("tcp", "needs a port")

    def test_backlog(self) -> None:
        """
        A backlog that is not a number from 1 to 65535 is named.
        """
        self.assertRefused("tcp:0:backlog=many", "backlog=", "'many'")
        self.assertRefused("unix:/tmp/x.sock:backlog=0", "backlog=", "'0'")

    def test_unknown(self) -> None:
        """
        An unknown endpoint type or option is named.
        """
        self.assertRefused("bogus:1", "unknown endpoint type 'bogus'")
        self.assertRefused("tcp:0:colour=blue", "tcp: endpoints take no option colour=")

    def test_unixPaths(self) -> None:
        """
        A UNIX socket path in a missing directory, under a file, naming a
        directory or another file, or too long for the kernel is refused
        before listening.
        """
        base = Path(self.mktemp())
        base.mkdir()
        missing = base / "missing" / "echo.sock"
        self.assertRefused(f"unix:{missing}", str(missing), "does not exist")
        (base / "file").write_text("")
        self.assertRefused(f"unix:{base / 'file' / 'echo.sock'}", "not a directory")
        self.assertRefused(f"unix:{base}", "is a directory")
        self.assertRefused(f"unix:{base / 'file'}", "exists and is not a socket")
        self.assertRefused(f"unix:{base / ('x' * 120)}", "too long")
        self.assertRefused("unix:", "needs a socket path")

    def test_unreadableFile(self) -> None:
        """
        A TLS file that is missing is named with the reason in words.
        """
        self.assertRefused(
            "ssl:0:privateKey=/nonexistent/key.pem",
            "/nonexistent/key.pem",
            "No such file or directory",
        )

    def test_systemdMissing(self) -> None:
        """
        A C{systemd:} endpoint without an inherited socket says what is
        missing.
        """
        saved = os.environ.pop("LISTEN_FDS", None)
        if saved is not None:
            self.addCleanup(os.environ.__setitem__, "LISTEN_FDS", saved)
        self.assertRefused("systemd:domain=INET:index=0", "no socket 0", "systemd")


def _weakPKI(directory: Path) -> tuple[Path, Path]:
    """
    A 1024-bit RSA key and its self-signed certificate, in two files.
    """
    try:
        from cryptography import x509
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import rsa
        from cryptography.x509.oid import NameOID
    except ImportError as error:
        raise SkipTest(f"needs nbecho[tls]: {error}") from None
    key = rsa.generate_private_key(public_exponent=65537, key_size=1024)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.timezone.utc)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(now)
        .not_valid_after(now + datetime.timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    keyPath, certificatePath = directory / "weak.key", directory / "weak.crt"
    keyPath.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.TraditionalOpenSSL,
            serialization.NoEncryption(),
        )
    )
    certificatePath.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    return keyPath, certificatePath


class TLSCheckTests(SynchronousTestCase):
    """
    The TLS context is built when the endpoint is, so that a certificate
    OpenSSL refuses stops the server before it listens.
    """

    def test_weakKeyRefused(self) -> None:
        """
        A 1024-bit RSA key under OpenSSL's default security level is refused
        naming both files and OpenSSL's reason.
        """
        from OpenSSL import SSL

        directory = Path(self.mktemp())
        directory.mkdir()
        key, certificate = _weakPKI(directory)
        try:
            context = SSL.Context(SSL.TLS_METHOD)
            context.use_certificate_file(str(certificate))
        except SSL.Error:
            pass
        else:
            raise SkipTest("this OpenSSL accepts 1024-bit RSA keys")
        description = f"ssl:0:privateKey={key}:certKey={certificate}"
        error = self.assertRaises(
            TLSRefusedError, listenOn, MemoryReactor(), description, 1024
        )
        message = str(error)
        self.assertIn(str(certificate), message)
        self.assertIn(str(key), message)
        self.assertIn("key too small", message)
        self.assertNotIn("[(", message)
        proxied = self.assertRaises(
            TLSRefusedError, listenOn, MemoryReactor(), "haproxy:" + description, 1024
        )
        self.assertEqual(str(proxied), message)

    def test_garbageRefused(self) -> None:
        """
        A file that holds no certificate is refused with OpenSSL's reason in
        words.
        """
        path = Path(self.mktemp())
        path.write_text("not a certificate\n")
        error = self.assertRaises(
            EndpointError, listenOn, MemoryReactor(), f"ssl:0:privateKey={path}", 1024
        )
        self.assertIn("not a PEM certificate and key", str(error))
        self.assertNotIn("[(", str(error))

    def test_goodKeyAccepted(self) -> None:
        """
        A certificate OpenSSL accepts gives an endpoint whose context is
        built.
        """
        import twisted.test

        pem = Path(twisted.test.__file__).parent / "server.pem"
        endpoint = listenOn(MemoryReactor(), f"ssl:0:privateKey={pem}", 1024)
        assert isinstance(endpoint, SSL4ServerEndpoint)
        self.assertIsNotNone(endpoint._sslContextFactory._context)
