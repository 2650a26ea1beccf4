"""
Tests for L{nbecho._twisted}: each private name of Twisted's that nbecho
uses is still there and still behaves as nbecho expects.  A failure here
means a Twisted release changed it; the message names what to update.
"""

from __future__ import annotations

import inspect
import os
import sys
from typing import Any

from twisted.internet import reactor
from twisted.internet.abstract import FileDescriptor
from twisted.internet.endpoints import serverFromString
from twisted.internet.protocol import Factory, Protocol
from twisted.internet.testing import MemoryReactor
from twisted.trial.unittest import SkipTest, SynchronousTestCase

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


class EPollReactorTests(SynchronousTestCase):
    """
    Twisted's C{EPollReactor} still has what L{_twisted.EchoEPollReactor}
    overrides, calls and copies, and its log contexts are still made as the
    copy makes them.
    """

    def setUp(self) -> None:
        if sys.platform != "linux":
            raise SkipTest("epoll, and so EchoEPollReactor, is Linux only")

    def test_privates(self) -> None:
        """
        An C{EPollReactor} polls C{_poller} (C{poll(timeout, maxevents)}),
        keeps its selectables by descriptor in C{_selectables}, handles an
        event with C{_doReadOrWrite(selectable, fd, event)}, and its
        C{doIteration} is its C{doPoll}.
        """
        from twisted.internet.epollreactor import EPollReactor

        reactor = EPollReactor()
        poller = getattr(reactor, "_poller", None)
        if poller is not None:
            self.addCleanup(poller.close)
        for waker in getattr(reactor, "_internalReaders", ()):
            self.addCleanup(waker.connectionLost, None)
        self.assertTrue(
            callable(getattr(poller, "poll", None)), _changed("EPollReactor._poller")
        )
        readFd, writeFd = os.pipe()
        self.addCleanup(os.close, readFd)
        self.addCleanup(os.close, writeFd)
        reader = FileDescriptor(reactor)
        reader.fileno = lambda: readFd  # type: ignore[method-assign]
        reactor.addReader(reader)
        self.addCleanup(reactor.removeReader, reader)
        selectables = getattr(reactor, "_selectables", None)
        self.assertIsInstance(selectables, dict, _changed("EPollReactor._selectables"))
        assert isinstance(selectables, dict)
        self.assertIs(
            selectables.get(readFd), reader, _changed("EPollReactor._selectables")
        )
        dispatch = getattr(EPollReactor, "_doReadOrWrite", None)
        self.assertIsNotNone(dispatch, _changed("EPollReactor._doReadOrWrite"))
        assert dispatch is not None
        self.assertEqual(
            list(inspect.signature(dispatch).parameters),
            ["self", "selectable", "fd", "event"],
            _changed("EPollReactor._doReadOrWrite's arguments"),
        )
        self.assertIs(
            EPollReactor.doIteration,
            EPollReactor.doPoll,
            _changed("EPollReactor.doIteration (no longer its doPoll)"),
        )

    def test_doPoll(self) -> None:
        """
        C{EPollReactor.doPoll}, which EchoEPollReactor copies, still waits
        indefinitely for no timeout, returns on C{EINTR}, polls for at most
        as many events as there are selectables and dispatches each with
        C{callWithLogger} around C{_doReadOrWrite}.
        """
        from twisted.internet.epollreactor import EPollReactor

        source = inspect.getsource(EPollReactor.doPoll)
        for needed in (
            "timeout = -1",
            "self._poller.poll(timeout, len(self._selectables))",
            "errno.EINTR",
            "self._selectables[fd]",
            "log.callWithLogger(selectable, _drdw, selectable, fd, event)",
        ):
            self.assertIn(needed, source, _changed("EPollReactor.doPoll"))

    def test_logContexts(self) -> None:
        """
        C{callWithLogger} still pushes, on this thread's stack of contexts
        (a list), one context whose only key is C{ILogContext}: the
        enclosing log context copied with C{system} set to the prefix; and
        what is appended to that list is what C{context.get} finds.
        """
        from twisted.python import context, log

        tracker = context.theContextTracker.currentContext()
        contexts = getattr(tracker, "contexts", None)
        self.assertIsInstance(
            contexts, list, _changed("ContextTracker.contexts (not a list)")
        )
        assert isinstance(contexts, list)
        depth = len(contexts)
        seen: list[tuple[int, Any, Any]] = []

        class Logged:
            def logPrefix(self) -> str:
                return "prefix"

        def inside() -> None:
            seen.append((len(contexts), contexts[-1], context.get(log.ILogContext)))

        def outer() -> None:
            enclosing.append(context.get(log.ILogContext))
            log.callWithLogger(Logged(), inside)

        enclosing: list[Any] = []
        log.callWithContext({"tag": "outer"}, outer)
        ((pushedDepth, top, logContext),) = seen
        self.assertEqual(pushedDepth, depth + 2, _changed("log.callWithLogger"))
        self.assertEqual(
            top,
            {log.ILogContext: {**enclosing[0], "system": "prefix"}},
            _changed("log.callWithLogger's context"),
        )
        self.assertIs(top[log.ILogContext], logContext, _changed("context.get"))
        self.assertEqual(len(contexts), depth, _changed("ContextTracker"))
        pushed = {"system": "pushed"}
        contexts.append({log.ILogContext: pushed})
        try:
            self.assertIs(
                tracker.getContext(log.ILogContext),
                pushed,
                _changed("ContextTracker.getContext"),
            )
            self.assertIs(context.get(log.ILogContext), pushed, _changed("context.get"))
        finally:
            contexts.pop()
