"""
Tests for L{nbecho._twisted}: each private name of Twisted's that nbecho
uses is still there and still behaves as nbecho expects.  A failure here
means a Twisted release changed it; the message names what to update.
"""

from __future__ import annotations

import os

from twisted.internet import reactor
from twisted.internet.endpoints import serverFromString
from twisted.internet.protocol import Factory, Protocol
from twisted.internet.testing import MemoryReactor
from twisted.trial.unittest import SynchronousTestCase

import twisted
from nbecho import _twisted
from nbecho.server import _fastwrite


def _changed(what: str) -> str:
    return (
        f"Twisted {twisted.__version__} changed {what}: update nbecho/_twisted.py"
        " (or nbecho/server/_fastwrite.py) to match"
    )


class EndpointArgumentsTests(SynchronousTestCase):
    def test_splitsAndUnescapes(self) -> None:
        """
        Endpoint strings split on colons, unescape backslashes and keep
        keyword arguments, as C{serverFromString} reads them.
        """
        self.assertEqual(
            _twisted.endpointArguments(r"tcp:9999:interface=\:\:1:backlog=5"),
            (["tcp", "9999"], {"interface": "::1", "backlog": "5"}),
            _changed("twisted.internet.endpoints._parse"),
        )


class ProxyParserTests(SynchronousTestCase):
    def test_v1(self) -> None:
        """
        Twisted's v1 parser returns the header's addresses once the line ends.
        """
        parser = _twisted.V1Parser()
        info, rest = parser.feed(b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2\r\nrest")
        self.assertIsNotNone(info, _changed("haproxy._v1parser.V1Parser.feed"))
        assert info is not None
        source = info.source
        self.assertEqual(
            getattr(source, "host", None), "1.2.3.4", _changed("V1Parser's result")
        )
        self.assertEqual(rest, b"rest", _changed("V1Parser's remainder"))

    def test_v2Exceptions(self) -> None:
        """
        Twisted's v2 parser and its exceptions are where nbecho imports them.
        """
        for name in (
            "InvalidProxyHeader",
            "InvalidNetworkProtocol",
            "MissingAddressData",
        ):
            self.assertTrue(
                issubclass(getattr(_twisted, name), Exception),
                _changed(f"twisted.protocols.haproxy._exceptions.{name}"),
            )
        self.assertTrue(
            callable(getattr(_twisted.V2Parser, "feed", None)),
            _changed("twisted.protocols.haproxy._v2parser.V2Parser.feed"),
        )


class EndpointPrivatesTests(SynchronousTestCase):
    def test_serverContextFactory(self) -> None:
        """
        An C{ssl:} server endpoint still keeps its context factory as
        C{_sslContextFactory}; other endpoints have none.
        """
        try:
            from twisted.internet.endpoints import SSL4ServerEndpoint
            from twisted.internet.ssl import CertificateOptions
        except ImportError as error:  # pragma: no cover - no tls extra
            from twisted.trial.unittest import SkipTest

            raise SkipTest(f"the tls extra is not installed: {error}") from None
        options = CertificateOptions()
        endpoint = SSL4ServerEndpoint(MemoryReactor(), 0, options)
        self.assertIs(
            _twisted.serverContextFactory(endpoint),
            options,
            _changed("SSL4ServerEndpoint._sslContextFactory"),
        )
        tcp = serverFromString(MemoryReactor(), "tcp:0")
        self.assertIsNone(_twisted.serverContextFactory(tcp))

    def test_handshakeDone(self) -> None:
        """
        Twisted's TLS protocol still says whether its handshake finished.
        """
        try:
            from twisted.protocols.tls import TLSMemoryBIOProtocol
        except ImportError as error:  # pragma: no cover - no tls extra
            from twisted.trial.unittest import SkipTest

            raise SkipTest(f"the tls extra is not installed: {error}") from None
        tls = TLSMemoryBIOProtocol.__new__(TLSMemoryBIOProtocol)
        tls.__init__(None, Protocol(), True)  # type: ignore[misc]
        self.assertFalse(
            _twisted.handshakeDone(tls, default=True),
            _changed("TLSMemoryBIOProtocol._handshakeDone"),
        )
        self.assertTrue(_twisted.handshakeDone(object(), default=True))


class UnixLockFileTests(SynchronousTestCase):
    def test_lockFile(self) -> None:
        """
        A listening UNIX port still holds its path's lock as C{lockFile},
        naming this process.
        """
        path = self.mktemp()
        port = reactor.listenUNIX(path, Factory.forProtocol(Protocol), wantPID=True)  # type: ignore[attr-defined]
        self.addCleanup(port.stopListening)
        lock = _twisted.unixLockFile(port)
        self.assertIsNotNone(lock, _changed("twisted.internet.unix.Port.lockFile"))
        self.assertEqual(
            os.fsdecode(os.readlink(lock.name)),
            str(os.getpid()),
            _changed("FilesystemLock.name"),
        )


class FastWriteTests(SynchronousTestCase):
    def test_fileDescriptorBuffers(self) -> None:
        """
        Twisted's TCP connections still have the buffers the write fast path
        reads, or send at once themselves (then the fast path is not needed).
        """
        from twisted.internet.tcp import Connection

        if _fastwrite.twistedWritesAtOnce():
            return
        missing = [
            name
            for name in (*_fastwrite._REQUIRED, "_writeDisconnecting")
            if not hasattr(Connection, name)
            and name not in getattr(Connection, "__dict__", {})
            and not _hasInstanceAttribute(name)
        ]
        self.assertEqual(missing, [], _changed(f"FileDescriptor's {missing}"))


def _hasInstanceAttribute(name: str) -> bool:
    """
    Whether a fresh C{FileDescriptor} instance has C{name}.
    """
    from twisted.internet.abstract import FileDescriptor

    return hasattr(FileDescriptor(reactor=MemoryReactor()), name)
