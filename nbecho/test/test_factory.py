"""
Tests for L{nbecho.factory}: the settings every connection shares and the
totals that outlive each connection.
"""

from __future__ import annotations

import attrs
from twisted.internet.error import ConnectionLost
from twisted.trial.unittest import SynchronousTestCase

from nbecho.factory import PROTOCOLS, EchoFactory
from nbecho.settings import FRAMINGS, EchoSettings
from nbecho.lines import LineEchoProtocol
from nbecho.protocol import EchoProtocol
from nbecho.test._helpers import connect, disconnect


class EchoSettingsTests(SynchronousTestCase):
    """
    L{EchoSettings} refuses what no connection could work with.
    """

    def test_defaults(self) -> None:
        """
        By default messages are lines, C{exit} ends a connection, every message
        is logged, lines may be 64 KiB long, silence ends a connection after
        five minutes, 10,000 connections fit, and a stop waits five seconds.
        """
        self.assertEqual(
            attrs.asdict(EchoSettings()),
            {
                "framing": "line",
                "exitWord": b"exit",
                "quiet": False,
                "maxLineLength": 65536,
                "idleTimeout": 300.0,
                "maxConnections": 10000,
                "maxPerPeer": 0,
                "shutdownGrace": 5.0,
            },
        )

    def test_unknownFraming(self) -> None:
        """
        A framing that no protocol implements is refused.
        """
        self.assertRaises(ValueError, EchoSettings, framing="words")

    def test_maxLineLengthAtLeastOne(self) -> None:
        """
        A line limit below one byte is refused; one byte is fine.
        """
        self.assertRaises(ValueError, EchoSettings, maxLineLength=0)
        self.assertEqual(EchoSettings(maxLineLength=1).maxLineLength, 1)

    def test_frozen(self) -> None:
        """
        Settings shared by every connection cannot be changed under them.
        """
        settings = EchoSettings()
        self.assertRaises(
            attrs.exceptions.FrozenInstanceError, setattr, settings, "quiet", True
        )


class EchoFactoryTests(SynchronousTestCase):
    """
    L{EchoFactory} builds the protocol of its framing and keeps totals.
    """

    def test_picksFraming(self) -> None:
        """
        The factory builds the protocol its settings name, line by default.
        """
        self.assertEqual(FRAMINGS, {"line": LineEchoProtocol, "raw": EchoProtocol})
        self.assertIsInstance(connect()[0], LineEchoProtocol)
        raw, _ = connect(EchoSettings(framing="raw"))
        self.assertIs(type(raw), EchoProtocol)

    def test_sharedSettings(self) -> None:
        """
        Every protocol of one factory uses that factory's settings.
        """
        settings = EchoSettings(exitWord=b"bye", quiet=True)
        factory = EchoFactory(settings)
        first, _ = connect(factory=factory)
        second, _ = connect(factory=factory)
        self.assertIs(first.settings, settings)
        self.assertIs(second.settings, settings)

    def test_totals(self) -> None:
        """
        The factory adds up every connection and knows how many are open.
        """
        factory = EchoFactory()
        first, _ = connect(factory=factory)
        second, _ = connect(factory=factory)
        stats = factory.stats
        self.assertEqual((stats.connectionsOpen, stats.connectionsTotal), (2, 2))
        first.dataReceived(b"one\ntwo\n")
        second.dataReceived(b"three\nfo")
        disconnect(first)
        self.assertEqual((stats.connectionsOpen, stats.connectionsTotal), (1, 2))
        self.assertEqual((stats.messages, stats.bytesIn, stats.bytesOut), (3, 16, 14))
        second.readConnectionLost()
        disconnect(second, ConnectionLost())
        self.assertEqual(stats.connectionsOpen, 0)
        self.assertEqual((stats.messages, stats.bytesIn, stats.bytesOut), (4, 16, 16))

    def test_separateFactories(self) -> None:
        """
        Two factories (two servers in one process) count apart.
        """
        one, other = EchoFactory(), EchoFactory()
        proto, _ = connect(factory=one)
        proto.dataReceived(b"x\n")
        self.assertEqual((one.stats.messages, other.stats.messages), (1, 0))
        self.assertEqual(other.stats.connectionsTotal, 0)
