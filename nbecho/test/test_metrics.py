"""
Tests for L{nbecho.metrics}: what the collector reports from L{EchoStats},
the standard process and build metrics beside it, and the message size
histogram taken only when metrics are on.
"""

from __future__ import annotations

import os
import resource
import time

from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families
from twisted.internet.address import IPv4Address
from twisted.internet.testing import StringTransport
from twisted.logger import capturedLogs
from twisted.trial.unittest import SkipTest, SynchronousTestCase

from nbecho import __version__
from nbecho._logbatch import messageEvents
from nbecho.factory import EchoFactory, EchoSettings
from nbecho.metrics import StatsCollector, instrument
from nbecho.protocol import EchoProtocol, LineEchoProtocol

PEER = IPv4Address("TCP", "127.0.0.1", 40000)


def samples(registry: object) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    text = generate_latest(registry).decode()  # type: ignore[arg-type]
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def connect(factory: EchoFactory) -> tuple[EchoProtocol, StringTransport]:
    protocol = factory.buildProtocol(PEER)
    assert isinstance(protocol, EchoProtocol)
    transport = StringTransport(peerAddress=PEER)
    protocol.makeConnection(transport)
    return protocol, transport


class StatsCollectorTests(SynchronousTestCase):
    def test_countersFromStats(self) -> None:
        """Every counter of EchoStats is reported under its Prometheus name."""
        factory = EchoFactory()
        stats = factory.stats
        stats.connectionsOpen, stats.connectionsTotal = 3, 7
        stats.messages, stats.bytesIn, stats.bytesOut = 11, 120, 119
        found = samples(instrument(factory))
        self.assertEqual(found["nbecho_connections_open", ()], 3)
        self.assertEqual(found["nbecho_connections_total", ()], 7)
        self.assertEqual(found["nbecho_messages_total", ()], 11)
        self.assertEqual(found["nbecho_received_bytes_total", ()], 120)
        self.assertEqual(found["nbecho_sent_bytes_total", ()], 119)

    def test_refusalsByReason(self) -> None:
        """Each refusal reason in EchoStats.refused is one labelled counter."""
        factory = EchoFactory()
        registry = instrument(factory)
        factory.stats.refused.update({"max-connections": 4, "max-per-peer": 2})
        found = samples(registry)
        self.assertEqual(
            found["nbecho_refusals_total", (("reason", "max-connections"),)], 4
        )
        self.assertEqual(
            found["nbecho_refusals_total", (("reason", "max-per-peer"),)], 2
        )

    def test_readAtScrapeTime(self) -> None:
        """The collector holds no copy: a later scrape sees later counts."""
        factory = EchoFactory()
        collector = StatsCollector(factory.stats)
        factory.stats.messages = 5
        (messages,) = (m for m in collector.collect() if m.name == "nbecho_messages")
        self.assertEqual(messages.samples[0].value, 5)

    def test_registryPerFactory(self) -> None:
        """Two instrumented factories report their own numbers, not a sum."""
        one, two = EchoFactory(), EchoFactory()
        first, second = instrument(one), instrument(two)
        one.stats.messages, two.stats.messages = 1, 2
        self.assertEqual(samples(first)["nbecho_messages_total", ()], 1)
        self.assertEqual(samples(second)["nbecho_messages_total", ()], 2)


class StandardMetricsTests(SynchronousTestCase):
    def test_buildInfo(self) -> None:
        """nbecho_build_info is 1, labelled with the running nbecho's version."""
        found = samples(instrument(EchoFactory()))
        builds = {key: value for key, value in found.items() if "build" in key[0]}
        self.assertEqual(
            builds, {("nbecho_build_info", (("version", __version__),)): 1.0}
        )

    def test_processMetrics(self) -> None:
        """The process_* metrics describe this process, read from /proc."""
        if not os.path.exists("/proc/self/stat"):
            raise SkipTest("process metrics come from /proc")
        found = samples(instrument(EchoFactory()))
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
        self.assertIs(EchoFactory().protocol, LineEchoProtocol)
        self.assertIs(EchoFactory(EchoSettings(framing="raw")).protocol, EchoProtocol)

    def test_quietLines(self) -> None:
        """With --quiet each line is still measured, and still not logged."""
        factory = EchoFactory(EchoSettings(quiet=True))
        registry = instrument(factory)
        protocol, transport = connect(factory)
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
        factory = EchoFactory()
        registry = instrument(factory)
        protocol, _ = connect(factory)
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
        factory = EchoFactory(EchoSettings(quiet=True))
        instrument(factory)
        protocol, transport = connect(factory)
        protocol.dataReceived(b"x\nexit\nafter\n")
        self.assertEqual(transport.value(), b"x\nexit\n")
        self.assertTrue(transport.disconnecting)

    def test_rawChunks(self) -> None:
        """In raw framing each chunk is one message of its own size."""
        factory = EchoFactory(EchoSettings(framing="raw"))
        registry = instrument(factory)
        protocol, _ = connect(factory)
        protocol.dataReceived(b"\x00" * 300)
        found = samples(registry)
        self.assertEqual(found["nbecho_message_size_bytes_sum", ()], 300)
        self.assertEqual(
            found["nbecho_message_size_bytes_bucket", (("le", "256.0"),)], 0
        )
