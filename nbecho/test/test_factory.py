"""
Tests for L{nbecho.server.factory}: the protocol of each framing, admission by the
connection limits, the registry of open connections, and the totals.
"""

from __future__ import annotations

from twisted.internet.address import IPv6Address, UNIXAddress
from twisted.internet.defer import Deferred
from twisted.internet.error import ConnectionLost
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from nbecho.server._address import peerKey
from nbecho.server.factory import (
    MAX_CONNECTIONS,
    MAX_PER_PEER,
    PROTOCOLS,
    REFUSAL,
    EchoFactory,
    Refusal,
)
from nbecho.server.lines import LineEchoProtocol
from nbecho.server.protocol import EchoProtocol
from nbecho.settings import EchoSettings
from nbecho.test._helpers import (
    Harness,
    captureLogs,
    connect,
    disconnect,
    tcp,
    texts,
)


class EchoFactoryTests(SynchronousTestCase):
    """
    L{EchoFactory} builds the protocol of its framing and keeps totals.
    """

    def test_picksFraming(self) -> None:
        """
        The factory builds the protocol its settings name, line by default.
        """
        self.assertEqual(PROTOCOLS, {"line": LineEchoProtocol, "raw": EchoProtocol})
        self.assertIsInstance(connect()[0], LineEchoProtocol)
        raw, _ = connect(EchoSettings(framing="raw"))
        self.assertIs(type(raw), EchoProtocol)

    def test_sharedSettings(self) -> None:
        """
        Every protocol of one factory uses that factory's settings.
        """
        settings = EchoSettings(exitWord=b"bye", quiet=True)
        factory = EchoFactory(settings, Clock())
        first, _ = connect(factory=factory)
        second, _ = connect(factory=factory)
        self.assertIs(first.settings, settings)
        self.assertIs(second.settings, settings)

    def test_totals(self) -> None:
        """
        The factory adds up every connection and knows how many are open.
        """
        factory = EchoFactory(clock=Clock())
        first, _ = connect(factory=factory)
        second, _ = connect(factory=factory)
        stats = factory.stats
        self.assertEqual((stats.connectionsOpen, stats.connectionsTotal), (2, 2))
        first.dataReceived(b"one\ntwo\n")
        second.dataReceived(b"three\nfo")
        disconnect(first)
        stats = factory.stats
        self.assertEqual((stats.connectionsOpen, stats.connectionsTotal), (1, 2))
        self.assertEqual((stats.messages, stats.bytesIn, stats.bytesOut), (3, 16, 14))
        second.readConnectionLost()
        disconnect(second, ConnectionLost())
        stats = factory.stats
        self.assertEqual(stats.connectionsOpen, 0)
        self.assertEqual((stats.messages, stats.bytesIn, stats.bytesOut), (4, 16, 16))

    def test_separateFactories(self) -> None:
        """
        Two factories (two servers in one process) count apart.
        """
        one, other = EchoFactory(clock=Clock()), EchoFactory(clock=Clock())
        proto, _ = connect(factory=one)
        proto.dataReceived(b"x\n")
        self.assertEqual((one.stats.messages, other.stats.messages), (1, 0))
        self.assertEqual(other.stats.connectionsTotal, 0)

    def test_clockForTimeouts(self) -> None:
        """
        A connection's idle timeout runs on the factory's clock.
        """
        clock = Clock()
        proto, transport = connect(
            factory=EchoFactory(EchoSettings(idleTimeout=7), clock)
        )
        self.assertEqual([call.getTime() for call in clock.getDelayedCalls()], [7.0])
        clock.advance(7)
        self.assertTrue(transport.disconnecting)
        self.assertEqual(proto.closeWhy, "idle timeout")


class StatsSnapshotTests(SynchronousTestCase):
    """
    L{EchoFactory.stats} is the sum, now, of closed and open connections.
    """

    def test_sumsOpenAndClosed(self) -> None:
        """
        Counts of closed connections and of those still open add up, and
        refusals are in the same record.
        """
        harness = Harness(maxConnections=2)
        closed, _ = harness.connect(tcp("10.0.0.1"))
        stillOpen, _ = harness.connect(tcp("10.0.0.2"))
        harness.connect(tcp("10.0.0.3"))
        closed.dataReceived(b"a\nbb\n")
        closed.readConnectionLost()
        harness.lose(closed)
        stillOpen.dataReceived(b"ccc\ndd")
        stats = harness.factory.stats
        self.assertEqual((stats.connectionsOpen, stats.connectionsTotal), (1, 2))
        self.assertEqual((stats.messages, stats.bytesIn, stats.bytesOut), (3, 11, 9))
        self.assertEqual(stats.refused, {MAX_CONNECTIONS: 1})

    def test_openCountedOnce(self) -> None:
        """
        A connection's counts move from the open to the closed ones when it
        ends: the totals do not change, nor double.
        """
        factory = EchoFactory(clock=Clock())
        proto, _ = connect(factory=factory)
        proto.dataReceived(b"one\ntwo\n")
        before = factory.stats
        disconnect(proto)
        after = factory.stats
        self.assertEqual(
            (after.messages, after.bytesIn, after.bytesOut),
            (before.messages, before.bytesIn, before.bytesOut),
        )
        self.assertEqual((before.messages, after.connectionsOpen), (2, 0))

    def test_snapshotIsACopy(self) -> None:
        """
        Changing a snapshot changes neither the factory's totals nor later
        snapshots.
        """
        harness = Harness(maxConnections=1)
        harness.connect()
        harness.connect()
        snapshot = harness.factory.stats
        snapshot.messages = 99
        snapshot.refused[MAX_CONNECTIONS] = 99
        snapshot.refused["other"] = 1
        self.assertEqual(harness.factory.stats.messages, 0)
        self.assertEqual(harness.factory.stats.refused, {MAX_CONNECTIONS: 1})


class ReleaseTests(SynchronousTestCase):
    """
    L{EchoFactory.release} gives a connection's slot back exactly once.
    """

    def test_idempotent(self) -> None:
        """
        Releasing a connection twice, or releasing it and then losing it,
        frees one slot and adds its counts once.
        """
        harness = Harness(maxConnections=2, maxPerPeer=2)
        first, _ = harness.connect(tcp("10.0.0.1", 1))
        second, _ = harness.connect(tcp("10.0.0.1", 2))
        first.dataReceived(b"hi\n")
        harness.factory.release(first)
        harness.factory.release(first)
        harness.lose(first)
        factory = harness.factory
        self.assertEqual((factory.open, factory.perPeer), (1, {"10.0.0.1": 1}))
        self.assertEqual(factory.connections, {second})
        stats = factory.stats
        self.assertEqual((stats.connectionsOpen, stats.connectionsTotal), (1, 2))
        self.assertEqual((stats.messages, stats.bytesIn, stats.bytesOut), (1, 3, 3))

    def test_refusalFreesNoSlot(self) -> None:
        """
        A refused connection leaves the registry when it ends without giving
        back a slot it never had.
        """
        harness = Harness(maxConnections=1)
        accepted, _ = harness.connect(tcp("10.0.0.1"))
        refused, _ = harness.connect(tcp("10.0.0.2"))
        self.assertEqual(harness.factory.connections, {accepted, refused})
        harness.lose(refused)
        harness.lose(refused)
        self.assertEqual(harness.factory.connections, {accepted})
        self.assertEqual(harness.factory.open, 1)

    def test_unknownConnection(self) -> None:
        """
        Releasing a connection another factory built changes nothing.
        """
        harness = Harness()
        harness.connect()
        stranger, _ = Harness().connect()
        harness.factory.release(stranger)
        self.assertEqual(harness.factory.open, 1)
        self.assertEqual(len(harness.factory.connections), 1)


class HandOverTests(SynchronousTestCase):
    """
    L{EchoFactory.handOver} moves a connection's place in the registry, and
    its slot, to whatever serves it now.
    """

    def test_slotMoves(self) -> None:
        """
        After a hand-over, the new object holds the slot: releasing the old
        one changes nothing, releasing the new one frees the slot once.
        """
        factory = EchoFactory(EchoSettings(maxPerPeer=2), Clock())
        protocol = factory.buildProtocol(tcp("10.0.0.1"))
        standIn = Refusal()
        factory.handOver(protocol, standIn)
        self.assertEqual(factory.connections, {standIn})
        factory.release(protocol)
        self.assertEqual((factory.open, factory.perPeer), (1, {"10.0.0.1": 1}))
        factory.handOver(standIn, protocol)
        factory.release(standIn)
        self.assertEqual(factory.open, 1)
        factory.release(protocol)
        factory.release(protocol)
        self.assertEqual((factory.open, factory.perPeer), (0, {}))
        self.assertEqual(factory.stats.connectionsTotal, 1)
        self.successResultOf(factory.whenEmpty())

    def test_refusalStaysUncounted(self) -> None:
        """
        A refused connection handed over still holds no slot.
        """
        factory = EchoFactory(EchoSettings(maxConnections=1), Clock())
        factory.buildProtocol(tcp("10.0.0.1", 1))
        refusal = factory.buildProtocol(tcp("10.0.0.1", 2))
        standIn = Refusal()
        factory.handOver(refusal, standIn)
        factory.release(standIn)
        self.assertEqual((factory.open, len(factory.connections)), (1, 1))

    def test_releasedIsNotRevived(self) -> None:
        """
        Handing over a connection already released registers nothing.
        """
        factory = EchoFactory(settings=None, clock=Clock())
        protocol = factory.buildProtocol(tcp("10.0.0.1"))
        factory.release(protocol)
        factory.handOver(protocol, Refusal())
        self.assertEqual((factory.open, factory.connections), (0, set()))


class PeerKeyTests(SynchronousTestCase):
    def test_ipHosts(self) -> None:
        """
        IPv4 and IPv6 peers are counted by host, whatever their port.
        """
        self.assertEqual(peerKey(tcp("192.0.2.1", 1)), "192.0.2.1")
        self.assertEqual(peerKey(IPv6Address("TCP", "::1", 2)), "::1")

    def test_ipv4MappedCountsAsIPv4(self) -> None:
        """
        An IPv4 client of a dual-stack socket counts under its IPv4 address,
        as it would on an IPv4 socket.
        """
        mapped = IPv6Address("TCP", "::FFFF:192.0.2.1", 2)
        self.assertEqual(peerKey(mapped), "192.0.2.1")

    def test_unixPeersHaveNoKey(self) -> None:
        """
        UNIX-socket peers have no host to count them under.
        """
        self.assertIsNone(peerKey(UNIXAddress(None)))
        self.assertIsNone(peerKey(None))


class ConnectionLimitTests(SynchronousTestCase):
    def test_perPeerRefusal(self) -> None:
        """
        A connection over --max-per-peer from one host reads the refusal
        line and is closed, is logged once with its peer and counted, while
        another host still gets in.
        """
        events = captureLogs(self)
        harness = Harness(maxPerPeer=2)
        harness.connect(tcp("10.0.0.1", 1))
        harness.connect(tcp("10.0.0.1", 2))
        refused, transport = harness.connect(tcp("10.0.0.1", 3))
        self.assertIsInstance(refused, Refusal)
        self.assertEqual(transport.value(), REFUSAL)
        self.assertTrue(transport.writeClosed)
        other, _ = harness.connect(tcp("10.0.0.2", 4))
        self.assertNotIsInstance(other, Refusal)
        self.assertEqual(harness.factory.stats.refused, {MAX_PER_PEER: 1})
        refusals = [text for text in texts(events) if text.startswith("Refused")]
        self.assertEqual(
            refusals,
            ["Refused 10.0.0.1:3: too many connections (--max-per-peer 2)"],
        )

    def test_totalRefusalAndReuse(self) -> None:
        """
        A connection over --max-connections is refused; once one closes,
        the next is accepted again.
        """
        harness = Harness(maxConnections=2)
        first, _ = harness.connect(tcp("10.0.0.1"))
        harness.connect(tcp("10.0.0.2"))
        refused, transport = harness.connect(tcp("10.0.0.3"))
        self.assertEqual(transport.value(), REFUSAL)
        self.assertEqual(harness.factory.stats.refused, {MAX_CONNECTIONS: 1})
        harness.lose(refused)
        self.assertEqual(harness.factory.open, 2)
        harness.lose(first)
        self.assertEqual(harness.factory.open, 1)
        self.assertEqual(harness.factory.perPeer, {"10.0.0.2": 1})
        accepted, transport = harness.connect(tcp("10.0.0.3"))
        self.assertNotIsInstance(accepted, Refusal)
        self.assertEqual(transport.value(), b"")

    def test_zeroMeansNoLimit(self) -> None:
        """
        With both limits 0, nothing is refused.
        """
        harness = Harness(maxConnections=0, maxPerPeer=0)
        for port in range(50):
            protocol, _ = harness.connect(tcp("10.0.0.1", port))
            self.assertNotIsInstance(protocol, Refusal)
        self.assertEqual(harness.factory.stats.refused, {})

    def test_unixPeersOnlyCountInTotal(self) -> None:
        """
        UNIX-socket peers are exempt from --max-per-peer but count toward
        --max-connections.
        """
        harness = Harness(maxConnections=3, maxPerPeer=1)
        for _ in range(3):
            protocol, _ = harness.connect(UNIXAddress(None))
            self.assertNotIsInstance(protocol, Refusal)
        _, transport = harness.connect(UNIXAddress(None))
        self.assertEqual(transport.value(), REFUSAL)
        self.assertEqual(harness.factory.stats.refused, {MAX_CONNECTIONS: 1})

    def test_refusalReadsNothing(self) -> None:
        """
        What a refused client sends is neither echoed nor counted.
        """
        harness = Harness(maxConnections=1)
        harness.connect()
        refused, transport = harness.connect()
        refused.dataReceived(b"hello\n")
        self.assertEqual(transport.value(), REFUSAL)
        self.assertEqual(harness.factory.stats.messages, 0)


class WhenEmptyTests(SynchronousTestCase):
    def test_firesForEachWaiter(self) -> None:
        """
        Every waiter hears when the last connection closes.
        """
        harness = Harness()
        protocol, _ = harness.connect()
        waiters: list[Deferred[None]] = [harness.factory.whenEmpty() for _ in "ab"]
        for waiter in waiters:
            self.assertNoResult(waiter)
        harness.lose(protocol)
        for waiter in waiters:
            self.successResultOf(waiter)

    def test_emptyAlready(self) -> None:
        """
        With nothing open, the answer is immediate.
        """
        self.successResultOf(Harness().factory.whenEmpty())

    def test_refusalsCount(self) -> None:
        """
        A refused client still being told why keeps the factory from being
        empty: a stopping server waits for it too.
        """
        harness = Harness(maxConnections=1)
        accepted, _ = harness.connect(tcp("10.0.0.1"))
        refused, _ = harness.connect(tcp("10.0.0.2"))
        harness.lose(accepted)
        waiter = harness.factory.whenEmpty()
        self.assertNoResult(waiter)
        harness.lose(refused)
        self.successResultOf(waiter)
