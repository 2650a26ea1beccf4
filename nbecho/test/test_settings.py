"""
Tests for L{nbecho.settings}: the settings every connection of a server
shares, and what they refuse.
"""

from __future__ import annotations

from typing import Any

import attrs
from twisted.trial.unittest import SynchronousTestCase

from nbecho.factory import PROTOCOLS
from nbecho.settings import FRAMINGS, EchoSettings


class EchoSettingsTests(SynchronousTestCase):
    """
    L{EchoSettings} refuses what no connection could work with.
    """

    def test_defaults(self) -> None:
        """
        By default messages are lines, C{exit} ends a connection, every message
        is logged, lines may be 64 KiB long, silence ends a connection after
        five minutes, 10,000 connections fit, a stop waits five seconds, and a
        PROXY header must arrive within five seconds.
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
                "proxyTimeout": 5.0,
            },
        )

    def test_everyFramingHasAProtocol(self) -> None:
        """
        Each framing the settings accept is one the factory can serve.
        """
        self.assertEqual(sorted(FRAMINGS), sorted(PROTOCOLS))

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

    def test_negativeLimits(self) -> None:
        """
        A negative idle timeout, connection limit, per-peer limit, grace or
        PROXY header timeout is refused; zero (off, or no wait) is fine.
        """
        names = ("idleTimeout", "maxConnections", "maxPerPeer", "shutdownGrace")
        for name in (*names, "proxyTimeout"):
            limits: dict[str, Any] = {name: -1}
            self.assertRaises(ValueError, EchoSettings, **limits)
            limits[name] = 0
            self.assertEqual(getattr(EchoSettings(**limits), name), 0)

    def test_frozen(self) -> None:
        """
        Settings shared by every connection cannot be changed under them.
        """
        settings = EchoSettings()
        self.assertRaises(
            attrs.exceptions.FrozenInstanceError, setattr, settings, "quiet", True
        )
