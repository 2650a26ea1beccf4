"""
Tests for L{nbecho.deploy.metrics}: what the collector reports from
L{EchoStats}, the standard process and build metrics beside it, and the
message size histogram taken only when metrics are on.
"""

from __future__ import annotations

import os
import resource
import time

from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families
from twisted.internet.task import Clock
from twisted.logger import capturedLogs
from twisted.trial.unittest import SkipTest, SynchronousTestCase

from nbecho import __version__
from nbecho.deploy.metrics import StatsCollector, instrument
from nbecho.logs.batch import messageEvents
from nbecho.server.lines import LineEchoProtocol
from nbecho.server.protocol import EchoProtocol
from nbecho.server.service import ServerService, buildServer
from nbecho.settings import EchoSettings
from nbecho.stats import EchoStats
from nbecho.test._helpers import attach, connect, disconnect, tcp


def samples(registry: object) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    text = generate_latest(registry).decode()  # type: ignore[arg-type]
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def server(settings: EchoSettings | None = None) -> ServerService:
    """
    A server with no listener, its factory on a fake clock.
    """
    return buildServer(settings or EchoSettings(), [], Clock())


class StatsCollectorTests(SynchronousTestCase):
    def test_countersFromStats(self) -> None:
        """Every counter of EchoStats is reported under its Prometheus name."""
        echo = server()
        factory = echo.factory
        connections = [
            connect(factory=factory, peer=tcp("10.0.0.1", n))[0] for n in range(7)
        ]
        # 11 messages, 119 bytes, on a connection that then closes.
        connections[0].dataReceived(b"0123456789\n" * 10 + b"12345678\n")
        for protocol in connections[:4]:
            disconnect(protocol)
        # One more byte in, not yet echoed, on one still open.
        connections[4].dataReceived(b"p")
        found = samples(instrument(echo))
        self.assertEqual(found["nbecho_connections_open", ()], 3)
        self.assertEqual(found["nbecho_connections_total", ()], 7)
        self.assertEqual(found["nbecho_messages_total", ()], 11)
        self.assertEqual(found["nbecho_received_bytes_total", ()], 120)
        self.assertEqual(found["nbecho_sent_bytes_total", ()], 119)

    def test_refusalsByReason(self) -> None:
        """Each refusal reason in EchoStats.refused is one labelled counter."""
        echo = server(EchoSettings(maxConnections=3, maxPerPeer=2))
        registry = instrument(echo)
        # Two of 10.0.0.1's four refused by --max-per-peer; 10.0.0.2 makes
        # three open, so all of 10.0.0.3's four by --max-connections.
        peers = [tcp("10.0.0.1", port) for port in range(4)] + [tcp("10.0.0.2")]
        peers += [tcp("10.0.0.3", port) for port in range(4)]
        for peer in peers:
            attach(echo.factory, peer)
        found = samples(registry)
        self.assertEqual(
            found["nbecho_refusals_total", (("reason", "max-connections"),)], 4
        )
        self.assertEqual(
            found["nbecho_refusals_total", (("reason", "max-per-peer"),)], 2
        )

    def test_readAtScrapeTime(self) -> None:
        """The collector holds no copy: a later scrape sees later counts."""
        echo = server()
        collector = StatsCollector(echo.totals)
        protocol, _ = connect(factory=echo.factory)
        protocol.dataReceived(b"1\n2\n3\n4\n5\n")
        (messages,) = (m for m in collector.collect() if m.name == "nbecho_messages")
        self.assertEqual(messages.samples[0].value, 5)

    def test_countsStatsSources(self) -> None:
        """A scrape reports the whole server, worker processes included."""
        echo = server()
        registry = instrument(echo)
        echo.statsSources.append(lambda: EchoStats(messages=40, bytesIn=400))
        protocol, _ = connect(factory=echo.factory)
        protocol.dataReceived(b"a\n")
        found = samples(registry)
        self.assertEqual(found["nbecho_messages_total", ()], 41)
        self.assertEqual(found["nbecho_received_bytes_total", ()], 402)

    def test_registryPerFactory(self) -> None:
        """Two instrumented factories report their own numbers, not a sum."""
        one, two = server(), server()
        first, second = instrument(one), instrument(two)
        connect(factory=one.factory)[0].dataReceived(b"a\n")
        connect(factory=two.factory)[0].dataReceived(b"a\nb\n")
        self.assertEqual(samples(first)["nbecho_messages_total", ()], 1)
        self.assertEqual(samples(second)["nbecho_messages_total", ()], 2)


class StandardMetricsTests(SynchronousTestCase):
    def test_buildInfo(self) -> None:
        """nbecho_build_info is 1, labelled with the running nbecho's version."""
        found = samples(instrument(server()))
        builds = {key: value for key, value in found.items() if "build" in key[0]}
        self.assertEqual(
            builds, {("nbecho_build_info", (("version", __version__),)): 1.0}
        )

    def test_processMetrics(self) -> None:
        """The process_* metrics describe this process, read from /proc."""
        if not os.path.exists("/proc/self/stat"):
            raise SkipTest("process metrics come from /proc")
        found = samples(instrument(server()))
        soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
        self.assertEqual(found["process_max_fds", ()], soft)
        # Both listings count the descriptor each opens to read the list.
        self.assertEqual(
            found["process_open_fds", ()], len(os.listdir("/proc/self/fd"))
        )
        self.assertGreater(found["process_resident_memory_bytes", ()], 0)
        self.assertGreater(found["process_cpu_seconds_total", ()], 0)
        started = found["process_start_time_seconds", ()]
        self.assertTrue(time.time() - 86400 * 365 < started <= time.time() + 1)


class SizeHistogramTests(SynchronousTestCase):
    def test_offByDefault(self) -> None:
        """Without metrics the factory builds the plain protocol classes."""
        self.assertIs(server().factory.protocol, LineEchoProtocol)
        self.assertIs(
            server(EchoSettings(framing="raw")).factory.protocol, EchoProtocol
        )

    def test_quietLines(self) -> None:
        """With --quiet each line is still measured, and still not logged."""
        echo = server(EchoSettings(quiet=True))
        registry = instrument(echo)
        protocol, transport = connect(factory=echo.factory)
        with capturedLogs() as events:
            protocol.dataReceived(b"a\nbbbb\r\n" + b"c" * 100 + b"\npartial")
        self.assertEqual(transport.value(), b"a\nbbbb\r\n" + b"c" * 100 + b"\n")
        self.assertFalse([e for e in events if e.get("nbecho_event") == "message"])
        found = samples(registry)
        self.assertEqual(found["nbecho_message_size_bytes_count", ()], 3)
        self.assertEqual(found["nbecho_message_size_bytes_sum", ()], 105)
        self.assertEqual(found["nbecho_message_size_bytes_bucket", (("le", "1.0"),)], 1)
        self.assertEqual(found["nbecho_messages_total", ()], 3)

    def test_loudLines(self) -> None:
        """Without --quiet each line is measured once and logged once."""
        echo = server()
        registry = instrument(echo)
        protocol, _ = connect(factory=echo.factory)
        with capturedLogs() as events:
            protocol.dataReceived(b"one\ntwo\n")
        logged = [
            e["text"]
            for e in messageEvents(events)
            if e.get("nbecho_event") == "message"
        ]
        self.assertEqual(logged, ["one", "two"])
        self.assertEqual(samples(registry)["nbecho_message_size_bytes_count", ()], 2)

    def test_exitWordStillCloses(self) -> None:
        """The exit word ends a measured connection exactly as an unmeasured one."""
        echo = server(EchoSettings(quiet=True))
        instrument(echo)
        protocol, transport = connect(factory=echo.factory)
        protocol.dataReceived(b"x\nexit\nafter\n")
        self.assertEqual(transport.value(), b"x\nexit\n")
        self.assertTrue(transport.disconnecting)

    def test_rawChunks(self) -> None:
        """In raw framing each chunk is one message of its own size."""
        echo = server(EchoSettings(framing="raw"))
        registry = instrument(echo)
        protocol, _ = connect(factory=echo.factory)
        protocol.dataReceived(b"\x00" * 300)
        found = samples(registry)
        self.assertEqual(found["nbecho_message_size_bytes_sum", ()], 300)
        self.assertEqual(
            found["nbecho_message_size_bytes_bucket", (("le", "256.0"),)], 0
        )
