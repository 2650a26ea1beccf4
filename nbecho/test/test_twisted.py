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


class TLSWriteTests(SynchronousTestCase):
    def test_unbufferedWrite(self) -> None:
        """
        Twisted's TLS transport is a C{TLSMemoryBIOProtocol} whose
        C{write}, called on the base class, skips the aggregation of small
        writes, and which says when its TLS session is lost.
        """
        from twisted.protocols.tls import TLSMemoryBIOFactory, TLSMemoryBIOProtocol

        transportClass = TLSMemoryBIOFactory.protocol
        self.assertTrue(
            issubclass(transportClass, TLSMemoryBIOProtocol),
            _changed("TLSMemoryBIOFactory.protocol"),
        )
        self.assertIs(
            getattr(TLSMemoryBIOProtocol, "_lostTLSConnection", None),
            False,
            _changed("TLSMemoryBIOProtocol._lostTLSConnection"),
        )
        transport = transportClass.__new__(transportClass)
        writer = _twisted.tlsWriter(transport)
        assert writer is not None
        self.assertIs(writer.func, TLSMemoryBIOProtocol.write)  # type: ignore[attr-defined]
        self.assertIsNone(_twisted.tlsWriter(Protocol()))
        self.assertFalse(_twisted.tlsSendClosed(transport))
        transport._lostTLSConnection = True
        self.assertTrue(_twisted.tlsSendClosed(transport))

    def test_closeNotifyWatched(self) -> None:
        """
        Twisted's TLS transport reads application data with
        C{_tlsConnection.recv} and meets the peer's close_notify there as
        C{ZeroReturnError}, where L{_twisted.watchCloseNotify} hooks in.
        """
        import inspect

        from twisted.protocols.tls import TLSMemoryBIOProtocol

        source = inspect.getsource(TLSMemoryBIOProtocol._flushReceiveBIO)
        for needed in ("self._tlsConnection.recv(", "except ZeroReturnError"):
            self.assertIn(
                needed, source, _changed("TLSMemoryBIOProtocol._flushReceiveBIO")
            )
        calls: list[str] = []

        class Connection:
            def bio_write(self, data: bytes) -> None: ...
            def bio_read(self, size: int) -> bytes:
                return b""

            def send(self, data: bytes) -> int:
                return len(data)

            def recv(self, size: int) -> bytes:
                from OpenSSL.SSL import ZeroReturnError

                raise ZeroReturnError()

            def get_cipher_name(self) -> str:
                return "cipher"

        transport = TLSMemoryBIOProtocol.__new__(TLSMemoryBIOProtocol)
        transport._tlsConnection = Connection()  # type: ignore[assignment]
        self.assertTrue(
            _twisted.watchCloseNotify(transport, lambda: calls.append("closed"))
        )
        from OpenSSL.SSL import ZeroReturnError

        watched = transport._tlsConnection
        self.assertRaises(ZeroReturnError, watched.recv, 100)
        self.assertRaises(ZeroReturnError, watched.recv, 100)
        self.assertEqual(calls, ["closed"])
        self.assertEqual(watched.get_cipher_name(), "cipher")
        self.assertFalse(_twisted.watchCloseNotify(Protocol(), lambda: None))
