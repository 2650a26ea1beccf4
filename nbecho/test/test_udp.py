"""
Tests for L{nbecho.server.udp}: echo over UDP, its safety rules and limits,
the C{udp:} descriptions, and its place in the totals, metrics and options.
"""

from __future__ import annotations

from typing import Any

from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families
from twisted.internet import reactor
from twisted.internet.address import IPv4Address, IPv6Address
from twisted.internet.defer import Deferred, inlineCallbacks
from twisted.internet.error import MessageLengthError
from twisted.internet.protocol import DatagramProtocol
from twisted.internet.task import Clock
from twisted.internet.testing import FakeDatagramTransport
from twisted.logger import formatEvent
from twisted.python import usage
from twisted.trial.unittest import SynchronousTestCase, TestCase

from nbecho.deploy.metrics import instrument
from nbecho.server.listening import ListenFailed, listenBeforeStart
from nbecho.server.service import buildServer
from nbecho.server.udp import (
    OWN_PORT,
    RATE,
    RATE_TOTAL,
    SEND_ERROR,
    SOURCE_PORT,
    UDPEcho,
    UDPEchoService,
    UDPLimits,
    addUDP,
    parseUDPListener,
)
from nbecho.settings import EchoSettings
from nbecho.stats import EchoStats
from nbecho.tap import Options, buildEndpoints
from nbecho.test._helpers import LogTestCase, captureLogs, logLines

SERVER = ("127.0.0.1", 7777)
UNLIMITED = UDPLimits(0, 0)


def samples(registry: object) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """
    Every sample of C{registry}, by name and labels.
    """
    text = generate_latest(registry).decode()  # type: ignore[arg-type]
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def _built(options: Options) -> list[tuple[str, Any]]:
    """
    The endpoints C{makeService} would listen on, with the global reactor.
    """
    from twisted.internet import reactor

    return buildEndpoints(options, reactor)


class Transport(FakeDatagramTransport):
    """
    A datagram transport that keeps what is written, has an address, and
    fails to send when told to.
    """

    def __init__(self, host: str = SERVER[0], port: int = SERVER[1]) -> None:
        super().__init__()
        family = IPv6Address if ":" in host else IPv4Address
        self.host = family("UDP", host, port)
        self.failure: Exception | None = None

    def getHost(self) -> IPv4Address | IPv6Address:
        return self.host

    def write(self, packet: bytes, addr: Any = None) -> None:
        if self.failure is not None:
            raise self.failure
        super().write(packet, addr)


def echo(
    limits: UDPLimits = UNLIMITED,
    settings: EchoSettings | None = None,
    transport: Transport | None = None,
) -> tuple[UDPEcho, Transport, Clock]:
    """
    A started L{UDPEcho} on C{transport}, its clock a fake one.
    """
    clock = Clock()
    protocol = UDPEcho(settings or EchoSettings(), limits, clock)
    transport = transport or Transport()
    protocol.makeConnection(transport)
    return protocol, transport, clock


class DescriptionTests(SynchronousTestCase):
    def test_portAndInterface(self) -> None:
        """The port and the interface of a udp: description are read."""
        self.assertEqual(parseUDPListener("udp:7"), (7, ""))
        self.assertEqual(
            parseUDPListener("udp:0:interface=127.0.0.1"), (0, "127.0.0.1")
        )

    def test_quotedIPv6(self) -> None:
        """An IPv6 interface is quoted as in any Twisted endpoint string."""
        self.assertEqual(parseUDPListener(r"udp:9:interface=\:\:1"), (9, "::1"))

    def test_refused(self) -> None:
        """Anything but udp:PORT[:interface=IP] is a usage error naming the problem."""
        for description, expected in [
            ("udp:", "not udp:PORT"),
            ("udp:seven", "not udp:PORT"),
            ("udp:-1", "not udp:PORT"),
            ("udp:1:2", "not udp:PORT"),
            ("udp:65536", "over 65535"),
            ("udp:0:backlog=5", "not backlog="),
            ("udp:0:interface=localhost", "must be an IP address"),
            ("udp:0:interface=::1", "not udp:PORT"),
        ]:
            error = self.assertRaises(usage.UsageError, parseUDPListener, description)
            self.assertIn(expected, str(error), description)


class EchoTests(LogTestCase):
    def test_echoed(self) -> None:
        """A datagram goes back, whole, to the address it came from."""
        protocol, transport, _ = echo()
        protocol.datagramReceived(b"hello\n", ("127.0.0.1", 40000))
        protocol.datagramReceived(b"\x00" * 9000, ("10.0.0.2", 40001))
        self.assertEqual(
            transport.written,
            [(b"hello\n", ("127.0.0.1", 40000)), (b"\x00" * 9000, ("10.0.0.2", 40001))],
        )

    def test_counted(self) -> None:
        """Echoed datagrams count as messages, their bytes in and out."""
        protocol, _, _ = echo()
        protocol.datagramReceived(b"one\n", ("127.0.0.1", 40000))
        protocol.datagramReceived(b"three", ("127.0.0.1", 40000))
        stats = protocol.stats
        self.assertEqual(
            (stats.messages, stats.udpDatagrams, stats.bytesIn, stats.bytesOut),
            (2, 2, 9, 9),
        )
        self.assertEqual(stats.udpDropped, {})

    def test_logged(self) -> None:
        """Each datagram echoed is a Read Data line, escaped, one terminator cut."""
        protocol, _, _ = echo()
        protocol.datagramReceived(b"hello\r\n", ("127.0.0.1", 40000))
        protocol.datagramReceived(b"\x1b[2J\xff\n\n", ("::1", 40001))
        self.assertEqual(
            self.readData(),
            [
                "Read Data 127.0.0.1:40000 hello",
                r"Read Data [::1]:40001 \x1b[2J\xff\x0a",
            ],
        )
        (event,) = [e for e in self.events if e.get("peer") == "[::1]:40001"]
        self.assertEqual((event["nbecho_event"], event["size"]), ("message", 7))

    def test_quiet(self) -> None:
        """With --quiet, datagrams are echoed and counted but not logged."""
        protocol, transport, _ = echo(settings=EchoSettings(quiet=True))
        protocol.datagramReceived(b"hush\n", ("127.0.0.1", 40000))
        self.assertEqual(len(transport.written), 1)
        self.assertEqual(protocol.stats.messages, 1)
        self.assertEqual(self.readData(), [])

    def test_observed(self) -> None:
        """The size histogram, when set, sees each echoed datagram's size."""
        protocol, _, _ = echo()
        sizes: list[int] = []
        protocol.observe = sizes.append
        protocol.datagramReceived(b"abc\n", ("127.0.0.1", 40000))
        protocol.datagramReceived(b"abc\n", ("127.0.0.1", 80))
        self.assertEqual(sizes, [3])

    def test_sendError(self) -> None:
        """A reply the kernel refuses to send is counted as dropped, not echoed."""
        protocol, transport, _ = echo()
        for failure in [OSError(105, "No buffer space"), MessageLengthError()]:
            transport.failure = failure
            protocol.datagramReceived(b"x", ("127.0.0.1", 40000))
        self.assertEqual(protocol.stats.udpDropped, {SEND_ERROR: 2})
        self.assertEqual(protocol.stats.messages, 0)
        self.assertEqual(self.readData(), [])


class SafetyTests(SynchronousTestCase):
    def test_privilegedSourcePorts(self) -> None:
        """Datagrams from source ports below 1024 get no reply; 1024 does."""
        protocol, transport, _ = echo()
        for port in (0, 7, 19, 53, 1023):
            protocol.datagramReceived(b"loop?", ("127.0.0.1", port))
        self.assertEqual(transport.written, [])
        self.assertEqual(protocol.stats.udpDropped, {SOURCE_PORT: 5})
        protocol.datagramReceived(b"fine", ("127.0.0.1", 1024))
        self.assertEqual(transport.written, [(b"fine", ("127.0.0.1", 1024))])

    def test_ownAddress(self) -> None:
        """A datagram spoofed as from the server's own address gets no reply."""
        protocol, transport, _ = echo()
        protocol.datagramReceived(b"me?", SERVER)
        self.assertEqual(transport.written, [])
        self.assertEqual(protocol.stats.udpDropped, {OWN_PORT: 1})

    def test_ownPortElsewhere(self) -> None:
        """A datagram from the server's port on another host gets no reply."""
        protocol, transport, _ = echo(transport=Transport("::", 7777))
        protocol.datagramReceived(b"ping", ("::1", 7777))
        protocol.datagramReceived(b"ping", ("192.0.2.1", 7777))
        self.assertEqual(transport.written, [])
        self.assertEqual(protocol.stats.udpDropped, {OWN_PORT: 2})
        protocol.datagramReceived(b"ping", ("::1", 7778))
        self.assertEqual(len(transport.written), 1)

    def test_perSource(self) -> None:
        """One address gets --udp-rate replies a second, whatever its ports."""
        protocol, transport, clock = echo(UDPLimits(perSource=3, total=0))
        for port in range(2000, 2005):
            protocol.datagramReceived(b"a", ("10.0.0.1", port))
        protocol.datagramReceived(b"b", ("10.0.0.2", 2000))
        self.assertEqual(
            [addr for _, addr in transport.written],
            [("10.0.0.1", p) for p in (2000, 2001, 2002)] + [("10.0.0.2", 2000)],
        )
        self.assertEqual(protocol.stats.udpDropped, {RATE: 2})
        clock.advance(0.99)
        protocol.datagramReceived(b"a", ("10.0.0.1", 3000))
        self.assertEqual(len(transport.written), 4)
        clock.advance(0.01)
        protocol.datagramReceived(b"a", ("10.0.0.1", 3000))
        self.assertEqual(len(transport.written), 5)

    def test_mappedIPv4(self) -> None:
        """An IPv4 client reaching an IPv6 socket shares its address's limit."""
        protocol, transport, _ = echo(UDPLimits(perSource=1, total=0))
        protocol.datagramReceived(b"a", ("::ffff:10.0.0.1", 2000))
        protocol.datagramReceived(b"a", ("10.0.0.1", 2001))
        self.assertEqual(len(transport.written), 1)
        self.assertEqual(protocol.stats.udpDropped, {RATE: 1})

    def test_total(self) -> None:
        """All sources together get --udp-rate-total replies a second."""
        protocol, transport, clock = echo(UDPLimits(perSource=2, total=5))
        for n in range(8):
            protocol.datagramReceived(b"x", (f"10.0.0.{n}", 5000))
        self.assertEqual(len(transport.written), 5)
        self.assertEqual(protocol.stats.udpDropped, {RATE_TOTAL: 3})
        clock.advance(1)
        protocol.datagramReceived(b"x", ("10.0.0.7", 5000))
        self.assertEqual(len(transport.written), 6)

    def test_unlimited(self) -> None:
        """0 turns both limits off."""
        protocol, transport, _ = echo(UDPLimits(perSource=0, total=0))
        for n in range(3000):
            protocol.datagramReceived(b"x", ("10.0.0.1", 1024 + n))
        self.assertEqual(len(transport.written), 3000)

    def test_defaults(self) -> None:
        """By default one address gets 20 replies a second and all of them 1000."""
        self.assertEqual(UDPLimits(), UDPLimits(perSource=20, total=1000))
        protocol, transport, _ = echo(UDPLimits())
        for n in range(60):
            for host in range(30):
                protocol.datagramReceived(b"x", (f"10.0.1.{host}", 2000 + n))
        self.assertEqual(len(transport.written), 20 * 30)
        for n in range(500):
            protocol.datagramReceived(b"x", (f"10.0.2.{n % 250}", 2000 + n))
        self.assertEqual(len(transport.written), 1000)


class SummaryTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.events = captureLogs(self)

    def summaries(self) -> list[str]:
        return [
            formatEvent(event)
            for event in self.events
            if event.get("nbecho_event") == "udp_dropped"
        ]

    def test_oncePerSecond(self) -> None:
        """A flood of drops is one log line a second, with counts by reason."""
        protocol, _, clock = echo(UDPLimits(perSource=1, total=0))
        for n in range(500):
            protocol.datagramReceived(b"x", ("10.0.0.1", 2000 + n))
            protocol.datagramReceived(b"x", ("10.0.0.1", 53))
            clock.advance(0.0015)
        self.assertEqual(self.summaries(), [])
        clock.advance(1)
        lines = self.summaries()
        self.assertEqual(len(lines), 1)
        self.assertEqual(
            lines[0],
            "UDP echo dropped 999 datagrams (500 from source ports below 1024, "
            "499 over --udp-rate), the last from 10.0.0.1:53",
        )
        clock.advance(5)
        self.assertEqual(len(self.summaries()), 1)

    def test_fromFirstDrop(self) -> None:
        """A summary comes a second after the first drop it counts."""
        protocol, _, clock = echo()
        protocol.datagramReceived(b"x", ("10.0.0.1", 1))
        clock.advance(0.9)
        self.assertEqual(self.summaries(), [])
        clock.advance(0.1)
        self.assertEqual(len(self.summaries()), 1)
        for _ in range(30):
            protocol.datagramReceived(b"x", ("10.0.0.1", 1))
            clock.advance(0.1)
        self.assertEqual(len(self.summaries()), 4)
        self.assertIn("dropped 10 datagrams", self.summaries()[1])

    def test_flushedOnStop(self) -> None:
        """Drops not yet summarised when the endpoint stops are summarised then."""
        protocol, _, clock = echo()
        protocol.datagramReceived(b"x", ("10.0.0.1", 1))
        protocol.doStop()
        self.assertEqual(len(self.summaries()), 1)
        self.assertEqual(clock.getDelayedCalls(), [])


class StatsTests(SynchronousTestCase):
    def test_sum(self) -> None:
        """Totals add UDP datagrams and drops by reason, and cross processes as JSON."""
        one = EchoStats(messages=1, udpDatagrams=1, udpDropped={RATE: 2})
        other = EchoStats(udpDatagrams=3, udpDropped={RATE: 1, SOURCE_PORT: 4})
        total = one + other
        self.assertEqual(total.udpDatagrams, 4)
        self.assertEqual(total.udpDropped, {RATE: 3, SOURCE_PORT: 4})
        self.assertEqual(EchoStats.fromJSON(total.toJSON()), total)

    def test_serverTotalsAndMetrics(self) -> None:
        """The server's totals, its stop line and its metrics include UDP datagrams."""
        clock = Clock()
        server = buildServer(EchoSettings(), [], clock)
        (service,) = addUDP(
            server, [("udp:0", "udp:0")], UDPLimits(perSource=1, total=0)
        )
        registry = instrument(server)
        protocol = service.echo
        protocol.makeConnection(Transport())
        protocol.datagramReceived(b"12345\n", ("127.0.0.1", 40000))
        protocol.datagramReceived(b"again\n", ("127.0.0.1", 40001))
        protocol.datagramReceived(b"x", ("127.0.0.1", 123))
        totals = server.totals()
        self.assertEqual((totals.messages, totals.bytesIn, totals.bytesOut), (1, 6, 6))
        found = samples(registry)
        self.assertEqual(found["nbecho_messages_total", ()], 1)
        self.assertEqual(found["nbecho_udp_datagrams_total", ()], 1)
        self.assertEqual(found["nbecho_received_bytes_total", ()], 6)
        for reason in (RATE, SOURCE_PORT):
            key = ("nbecho_udp_dropped_total", (("reason", reason),))
            self.assertEqual(found[key], 1)
        self.assertEqual(found["nbecho_message_size_bytes_count", ()], 1)
        events = captureLogs(self)
        server._logTotals()
        self.assertTrue(
            logLines(events)[-1].endswith("; UDP: 1 datagram echoed, 2 dropped"),
            logLines(events),
        )


class OptionTests(SynchronousTestCase):
    def test_limits(self) -> None:
        """--udp-rate and --udp-rate-total set the limits, or the defaults hold."""
        options = Options()
        options.parseOptions(["--listen", "udp:0", "--udp-rate", "0"])
        self.assertEqual(options["udpLimits"], UDPLimits(perSource=0, total=1000))
        self.assertEqual(options["udp"], ["udp:0"])
        self.assertEqual(_built(options), [])

    def test_offByDefault(self) -> None:
        """Without a udp: endpoint nothing listens for datagrams."""
        options = Options()
        options.parseOptions([])
        self.assertEqual(options["udp"], [])
        names = [d for d, _ in _built(options)]
        self.assertTrue(names)
        self.assertFalse([name for name in names if "udp" in name], names)

    def test_beside(self) -> None:
        """udp: endpoints sit beside stream ones, which still listen."""
        options = Options()
        options.parseOptions(["--listen", "tcp:0", "--listen", "udp:0"])
        self.assertEqual(options["udp"], ["udp:0"])
        self.assertEqual([d for d, _ in _built(options)], ["tcp:0"])

    def test_errors(self) -> None:
        """Bad UDP options are one usage line: numbers, endpoints, --workers."""
        for argv, expected in [
            (["--udp-rate", "-1"], "--udp-rate takes a whole number from 0"),
            (["--udp-rate-total", "x"], "--udp-rate-total takes a whole number"),
            (["--listen", "udp:x"], "'udp:x' is not udp:PORT"),
            (["--listen", "udp:0", "--workers", "2"], "--workers cannot share"),
        ]:
            error = self.assertRaises(SystemExit, Options().parseOptions, argv)
            self.assertIsInstance(error.code, str)
            self.assertIn(expected, str(error.code))
            self.assertNotIn("\n", str(error.code))


class Client(DatagramProtocol):
    def __init__(self) -> None:
        self.replies: Deferred[tuple[bytes, Any]] = Deferred()

    def datagramReceived(self, datagram: bytes, addr: Any) -> None:
        self.replies.callback((datagram, addr))


class ServiceTests(TestCase):
    @inlineCallbacks
    def test_realSocket(self) -> Any:
        """The service listens on a real socket, says Ready?, and echoes there."""
        events = captureLogs(self)
        service = UDPEchoService(
            "udp:0:interface=127.0.0.1", EchoSettings(), UDPLimits()
        )
        service.startService()
        self.addCleanup(service.stopService)
        assert service.port is not None
        address = service.port.getHost()
        assert isinstance(address, IPv4Address)
        self.assertIn(
            f"Ready? nbecho listening on 127.0.0.1:{address.port} "
            "(udp:0:interface=127.0.0.1)",
            logLines(events),
        )
        client = Client()
        port = reactor.listenUDP(  # type: ignore[attr-defined]
            0, client, interface="127.0.0.1", maxPacketSize=65535
        )
        self.addCleanup(port.stopListening)
        big = b"b" * 60000
        port.write(big, ("127.0.0.1", address.port))
        data, source = yield client.replies
        self.assertEqual((data, source), (big, ("127.0.0.1", address.port)))
        self.assertEqual(service.stats().udpDatagrams, 1)

    def test_cannotListen(self) -> None:
        """A port in use ends the start with one line naming the endpoint."""
        taken = reactor.listenUDP(0, DatagramProtocol(), interface="127.0.0.1")  # type: ignore[attr-defined]
        self.addCleanup(taken.stopListening)
        description = f"udp:{taken.getHost().port}:interface=127.0.0.1"
        service = UDPEchoService(description, EchoSettings(), UDPLimits())
        error = self.assertRaises(ListenFailed, service.privilegedStartService)
        self.assertEqual(
            str(error),
            f"nbecho: UDP port {taken.getHost().port} is already in use on 127.0.0.1",
        )

    def test_bindsBeforeStart(self) -> None:
        """
        C{listenBeforeStart} binds a UDP listener (so that twistd's parent
        sees a taken port) without a C{Ready?} line, which comes only when
        the service starts.
        """
        events = captureLogs(self)
        service = UDPEchoService(
            "udp:0:interface=127.0.0.1", EchoSettings(), UDPLimits()
        )
        listenBeforeStart([service])
        self.addCleanup(service.stopService)
        self.assertIsNotNone(service.port)
        self.assertEqual([line for line in logLines(events) if "Ready?" in line], [])
        service.startService()
        self.assertEqual(
            len([line for line in logLines(events) if "Ready?" in line]), 1
        )

    def test_secondOnSamePortFailsFirst(self) -> None:
        """
        Two UDP listeners on one port: C{listenBeforeStart} raises for the
        second and closes the first, before any C{Ready?} line.
        """
        events = captureLogs(self)
        first = UDPEchoService("udp:0:interface=127.0.0.1", EchoSettings(), UDPLimits())
        first.listenNow()
        assert first.port is not None
        address = first.port.getHost()
        assert isinstance(address, IPv4Address)
        taken = f"udp:{address.port}:interface=127.0.0.1"
        self.addCleanup(first.stopService)
        again = UDPEchoService(taken, EchoSettings(), UDPLimits())
        other = UDPEchoService("udp:0:interface=127.0.0.1", EchoSettings(), UDPLimits())
        error = self.assertRaises(ListenFailed, listenBeforeStart, [other, again])
        self.assertIn("is already in use", str(error))
        self.assertIsNone(other.port)
        self.assertEqual([line for line in logLines(events) if "Ready?" in line], [])
