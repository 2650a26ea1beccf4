"""
Twisted's own reactor test suites (C{ReactorBuilder}s: TCP, UNIX, UDP,
TLS, standard I/O, threads, system events, time) run against
L{nbecho._twisted.EchoEPollReactor}, which promises to behave as Twisted's
C{EPollReactor}.
"""

from __future__ import annotations

import socket
import sys
from typing import Any, cast

from twisted.trial.unittest import SkipTest, SynchronousTestCase

from nbecho._twisted import ECHO_REACTOR

if sys.platform == "linux":
    from twisted.internet.test import (
        test_core,
        test_fdset,
        test_stdio,
        test_tcp,
        test_threads,
        test_time,
        test_tls,
        test_unix,
    )
    from twisted.internet.test.reactormixins import ReactorBuilder

    from nbecho._twisted import EchoEPollReactor

#: The fully qualified name Twisted's C{ReactorBuilder} builds reactors from.
ECHO = ECHO_REACTOR

if sys.platform == "linux":
    #: Twisted's own reactor test suites that dispatch I/O events, run
    #: against EchoEPollReactor: TCP (connections, ports, connectors,
    #: half-close, abort, adopted sockets), UNIX, TLS, standard I/O,
    #: descriptors added and removed, the waker of threads, system events,
    #: timed calls, and UDP.  Each exists since Twisted 25.5, nbecho's floor.
    SUITES: list[type[ReactorBuilder]] = [
        test_tcp.TCP4ClientTestsBuilder,
        test_tcp.TCPPortTestsBuilder,
        test_tcp.TCPFDPortTestsBuilder,
        test_tcp.TCPConnectionTestsBuilder,
        test_tcp.TCP4ConnectorTestsBuilder,
        test_tcp.TCPTransportTestsBuilder,
        test_tcp.AdoptStreamConnectionTestsBuilder,
        test_tcp.AbortConnectionTests,
        test_unix.UNIXTestsBuilder,
        test_unix.UNIXPortTestsBuilder,
        test_unix.UnixClientTestsBuilder,
        test_unix.UNIXDatagramTestsBuilder,
        test_tls.SSLClientTestsMixin,
        test_tls.TLSPortTestsBuilder,
        test_tls.AbortSSLConnectionTests,
        test_stdio.StdioFilesTests,
        test_fdset.ReactorFDSetTestsBuilder,
        test_threads.ThreadTestsBuilder,
        test_core.SystemEventTestsBuilder,
        test_time.TimeTestsBuilder,
    ]
    # Twisted's UDP tests import socket.if_nameindex, which PyPy 3.9 lacks.
    if hasattr(socket, "if_nameindex"):
        from twisted.internet.test import test_udp

        SUITES.append(test_udp.UDPServerTestsBuilder)

    class _EchoBuilder(ReactorBuilder):
        """
        Builds EchoEPollReactors only, and closes each one's epoll
        descriptor when its test ends (Twisted leaves that to the garbage
        collector).
        """

        _reactors = [ECHO]

        def _unbuildReactor(self, reactor: Any) -> None:
            try:
                super()._unbuildReactor(reactor)
            finally:
                reactor._poller.close()

    def _skippedAsForEPoll(self: object) -> None:
        """
        Twisted skips this test for its own C{EPollReactor}, by class name:
        closing a descriptor drops it from the epoll set without an event,
        so no epoll reactor can tell that it was replaced.
        """
        raise SkipTest("epoll cannot tell a lost descriptor (as for EPollReactor)")

    #: The tests Twisted skips for C{EPollReactor} by its name, which
    #: EchoEPollReactor's does not match.
    _SKIPPED: dict[type[ReactorBuilder], tuple[str, ...]] = {
        test_fdset.ReactorFDSetTestsBuilder: ("test_lostFileDescriptor",),
    }

    for _suite in SUITES:
        _namespace: dict[str, Any] = {"__module__": __name__}
        for _name in _SKIPPED.get(_suite, ()):
            _namespace[_name] = _skippedAsForEPoll
        _builder = cast(
            "type[ReactorBuilder]",
            type(_suite.__name__, (_EchoBuilder, _suite), _namespace),
        )
        globals().update(_builder.makeTestCaseClasses())


class TwistedSuitesTests(SynchronousTestCase):
    """
    Twisted's reactor test suites are here, on EchoEPollReactor.
    """

    def setUp(self) -> None:
        if sys.platform != "linux":
            raise SkipTest("epoll, and so EchoEPollReactor, is Linux only")

    def test_generated(self) -> None:
        """
        Each suite of L{SUITES} has a test case class here that
        builds EchoEPollReactors and is not skipped as a whole (as
        C{ReactorBuilder} skips the reactors it cannot import).
        """
        generated = {
            name: case
            for name, case in globals().items()
            if name.endswith("_EchoEPollReactorTests")
        }
        self.assertEqual(
            sorted(generated),
            sorted(f"{suite.__name__}_EchoEPollReactorTests" for suite in SUITES),
        )
        for name, case in generated.items():
            self.assertIs(case.reactorFactory, EchoEPollReactor, name)
            self.assertIsNone(getattr(case, "skip", None), name)
