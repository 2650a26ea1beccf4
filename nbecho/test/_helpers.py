"""
Stand-ins shared by nbecho's unit tests: in-memory transports, a factory on
a fake clock, log capture, and a client that collects what a real socket
receives.

Every test module takes its helpers from here, never from another test
module, and every L{EchoFactory} built here runs on a L{Clock}: no test
leaves a timeout behind on the global reactor.
"""

from __future__ import annotations

import socket
from collections.abc import Iterable
from typing import Any

from twisted.internet.address import IPv4Address, IPv6Address
from twisted.internet.defer import Deferred
from twisted.internet.error import ConnectionDone
from twisted.internet.protocol import (
    ClientFactory,
    Protocol,
    ServerFactory,
    connectionDone,
)
from twisted.internet.task import Clock
from twisted.internet.testing import EventLoggingObserver, StringTransport
from twisted.logger import LogEvent, formatEvent, globalLogPublisher
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase

from nbecho.server.connection import Connection
from nbecho.server.factory import EchoFactory
from nbecho.server.listening import ListeningService
from nbecho.server.protocol import EchoProtocol
from nbecho.settings import EchoSettings

PEER = IPv4Address("TCP", "127.0.0.1", 40000)


def tcp(host: str, port: int = 40000) -> IPv4Address:
    """
    The address of a TCP client at C{host}:C{port}.
    """
    return IPv4Address("TCP", host, port)


class RecordingTransport(StringTransport):
    """
    A L{StringTransport} that keeps each write apart, remembers which
    producer was still registered when the connection was closed (the real
    transports never resume a paused producer that is left registered), and
    whether it was aborted.

    Like a TLS transport it cannot shut only its sending side, so a closing
    connection closes it plainly.
    """

    producerAtClose: object = "never closed"
    aborted = False

    def __init__(self, peer: object = PEER) -> None:
        super().__init__(peerAddress=peer)
        self.writes: list[bytes] = []

    def write(self, data: bytes) -> None:
        super().write(data)
        self.writes.append(data)

    def loseConnection(self) -> None:
        if not self.disconnecting:
            self.producerAtClose = self.producer
        super().loseConnection()

    def abortConnection(self) -> None:
        self.aborted = True
        super().abortConnection()


class HalfCloseTransport(RecordingTransport):
    """
    A L{RecordingTransport} that, like TCP, can shut only its sending side.
    """

    writeClosed = False

    def loseWriteConnection(self) -> None:
        self.writeClosed = True


class FakeTime:
    """
    Stands in for the C{time} module inside L{nbecho.server.protocol}, so that a
    L{Clock} decides how long a connection lasted.
    """

    def __init__(self, clock: Clock) -> None:
        self.monotonic = clock.seconds


def attach(
    factory: EchoFactory,
    address: Any = PEER,
    transport: StringTransport | None = None,
) -> tuple[Connection, StringTransport]:
    """
    Build a connection the way a listening port would (admitted or refused)
    and connect it to C{transport}, by default a half-closeable one.
    """
    protocol = factory.buildProtocol(address)
    if transport is None:
        transport = HalfCloseTransport(address)
    protocol.makeConnection(transport)
    return protocol, transport


def connect(
    settings: EchoSettings | None = None,
    factory: EchoFactory | None = None,
    peer: Any = PEER,
) -> tuple[EchoProtocol, RecordingTransport]:
    """
    Build an admitted echo protocol on a transport that closes plainly, so
    that a close shows at once as C{transport.disconnecting}.
    """
    if factory is None:
        factory = EchoFactory(settings, Clock())
    transport = RecordingTransport(peer)
    proto, _ = attach(factory, peer, transport)
    assert isinstance(proto, EchoProtocol)
    return proto, transport


def disconnect(proto: Protocol, reason: Exception | None = None) -> None:
    """
    Tell C{proto} its connection is gone, as the reactor would.
    """
    proto.connectionLost(Failure(reason if reason is not None else ConnectionDone()))


class Harness:
    """
    An L{EchoFactory} on a L{Clock}, and a way to connect to it over
    half-closeable transports (lingering closes show as C{writeClosed}).
    """

    def __init__(self, **settings: Any) -> None:
        self.clock = Clock()
        self.factory = EchoFactory(EchoSettings(**settings), self.clock)

    def connect(
        self, address: Any = None, transport: StringTransport | None = None
    ) -> tuple[Connection, Any]:
        """
        Connect a client from C{address} (C{10.0.0.1:40000} by default).
        """
        return attach(
            self.factory, address if address is not None else tcp("10.0.0.1"), transport
        )

    def lose(self, protocol: Protocol) -> None:
        """
        The connection of C{protocol} is gone, cleanly.
        """
        disconnect(protocol)


def captureLogs(case: SynchronousTestCase) -> EventLoggingObserver:
    """
    Collect every event logged from now until the end of C{case}.
    """
    events = EventLoggingObserver()
    globalLogPublisher.addObserver(events)
    case.addCleanup(globalLogPublisher.removeObserver, events)
    return events


def texts(events: Iterable[LogEvent]) -> list[str]:
    """
    Every event in C{events}, formatted.
    """
    return [formatEvent(event) for event in events]


def logLines(events: Iterable[LogEvent]) -> list[str]:
    """
    The nbecho lines among C{events}, formatted as an operator sees them.
    """
    return [
        line
        for event in events
        if event.get("log_namespace") == "nbecho"
        # The messages of one chunk are one event, one line each.
        for line in formatEvent(event).split("\n")
    ]


class LogTestCase(SynchronousTestCase):
    """
    A test case that sees every event logged while it runs.
    """

    def setUp(self) -> None:
        self.events = captureLogs(self)

    def logLines(self) -> list[str]:
        """
        The nbecho log lines so far.
        """
        return logLines(self.events)

    def readData(self) -> list[str]:
        """
        The C{Read Data} lines so far.
        """
        return [line for line in self.logLines() if line.startswith("Read Data ")]


class ServerSide(Protocol):
    """
    Hand the connected server-side transport to the test.
    """

    def connectionMade(self) -> None:
        self.factory.connected.callback(self)


class Collector(Protocol):
    """
    A client that keeps every byte it receives; C{done} fires with them all
    when the server closes.
    """

    def __init__(self) -> None:
        self.received = bytearray()
        self.done: Deferred[bytes] = Deferred()
        self.made: Deferred[None] = Deferred()
        self.arrived: Deferred[None] | None = None
        self.expect = 0

    def connectionMade(self) -> None:
        self.made.callback(None)

    def dataReceived(self, data: bytes) -> None:
        self.received += data
        if self.arrived is not None and len(self.received) >= self.expect:
            arrived, self.arrived = self.arrived, None
            arrived.callback(None)

    def waitFor(self, count: int) -> Deferred[None]:
        """
        Fire once C{count} bytes in all have arrived.
        """
        self.expect = count
        self.arrived = Deferred()
        if len(self.received) >= count:
            self.dataReceived(b"")
        return self.arrived

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        self.done.callback(bytes(self.received))


#: The send and receive buffer of each end of a L{loopbackPair}.
SOCKET_BUFFER = 65536


async def loopbackPair(
    case: SynchronousTestCase, reactor: Any
) -> tuple[Any, Collector]:
    """
    A real TCP connection on 127.0.0.1: the server side's transport and a
    L{Collector} client, both closed when C{case} ends.

    Both ends' kernel buffers are fixed at L{SOCKET_BUFFER}: left to
    autotuning, loopback buffers grow with what the kernel has learnt of
    earlier connections to the same address (its TCP metrics cache), and a
    client that stops reading could absorb several MiB before the server
    backs up.
    """
    serverFactory = ServerFactory.forProtocol(ServerSide)
    connected: Deferred[ServerSide] = Deferred()
    serverFactory.connected = connected  # type: ignore[attr-defined]
    port = reactor.listenTCP(0, serverFactory, interface="127.0.0.1")
    case.addCleanup(port.stopListening)
    client = Collector()
    clientFactory = ClientFactory.forProtocol(lambda: client)
    connector = reactor.connectTCP("127.0.0.1", port.getHost().port, clientFactory)
    case.addCleanup(connector.disconnect)
    server = await connected
    await client.made
    ends: list[Any] = [server.transport, client.transport]
    ends[0].socket.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, SOCKET_BUFFER)
    ends[1].socket.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, SOCKET_BUFFER)
    return server.transport, client


def portOf(service: ListeningService) -> int:
    """
    The port number C{service} listens on.
    """
    assert service.port is not None
    address = service.port.getHost()
    assert isinstance(address, (IPv4Address, IPv6Address))
    return address.port
