"""
In-memory stand-ins shared by nbecho's unit tests.
"""

from __future__ import annotations

from collections.abc import Iterable

from twisted.internet.address import IPv4Address
from twisted.internet.error import ConnectionDone
from twisted.internet.task import Clock
from twisted.internet.testing import EventLoggingObserver, StringTransport
from twisted.logger import LogEvent, formatEvent, globalLogPublisher
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase

from nbecho.factory import EchoFactory
from nbecho.protocol import EchoProtocol
from nbecho.settings import EchoSettings

PEER = IPv4Address("TCP", "127.0.0.1", 40000)


class RecordingTransport(StringTransport):
    """
    A L{StringTransport} that keeps each write apart and remembers which
    producer was still registered when the connection was closed: the real
    transports never resume a paused producer that is left registered.
    """

    producerAtClose: object = "never closed"

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


class FakeTime:
    """
    Stands in for the C{time} module inside L{nbecho.protocol}, so that a
    L{Clock} decides how long a connection lasted.
    """

    def __init__(self, clock: Clock) -> None:
        self.monotonic = clock.seconds


def connect(
    settings: EchoSettings | None = None,
    factory: EchoFactory | None = None,
    peer: object = PEER,
) -> tuple[EchoProtocol, RecordingTransport]:
    """
    Build a protocol the way a listening port would and connect it.
    """
    if factory is None:
        factory = EchoFactory(settings, Clock())
    proto = factory.buildProtocol(PEER)
    assert isinstance(proto, EchoProtocol)
    transport = RecordingTransport(peer)
    proto.makeConnection(transport)
    return proto, transport


def disconnect(proto: EchoProtocol, reason: Exception | None = None) -> None:
    """
    Tell C{proto} its connection is gone, as the reactor would.
    """
    proto.connectionLost(Failure(reason if reason is not None else ConnectionDone()))


def captureLogs(case: SynchronousTestCase) -> EventLoggingObserver:
    """
    Collect every event logged from now until the end of C{case}.
    """
    events = EventLoggingObserver()
    globalLogPublisher.addObserver(events)
    case.addCleanup(globalLogPublisher.removeObserver, events)
    return events


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
