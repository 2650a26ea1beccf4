"""
Tests for L{nbecho.settings}: the settings every connection of a server
shares, and what they refuse.
"""

from __future__ import annotations

from typing import Any

import attrs
from twisted.trial.unittest import SynchronousTestCase

from nbecho.factory import PROTOCOLS
from nbecho.settings import (
    FRAMINGS,
    LOG_RATE_CEILING,
    MAX_LINE_LENGTH_CEILING,
    EchoSettings,
)


class EchoSettingsTests(SynchronousTestCase):
    """
    L{EchoSettings} refuses what no connection could work with.
    """

    def test_defaults(self) -> None:
        """
        By default messages are lines, C{exit} ends a connection, every message
        is logged, lines may be 64 KiB long, silence ends a connection after
        five minutes, 10,000 connections fit, a stop waits five seconds, a
        PROXY header must arrive within five seconds, and a connection
        logs 100 messages a second, all of them 1,000.
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
                "logRate": 100,
                "logRateTotal": 1000,
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

    def test_maxLineLengthCeiling(self) -> None:
        """
        A line limit above L{MAX_LINE_LENGTH_CEILING} (1 GiB) is refused;
        the ceiling itself is fine.
        """
        self.assertEqual(MAX_LINE_LENGTH_CEILING, 2**30)
        self.assertRaises(ValueError, EchoSettings, maxLineLength=2**30 + 1)
        self.assertEqual(EchoSettings(maxLineLength=2**30).maxLineLength, 2**30)

    def test_logRateBounds(self) -> None:
        """
        Log rates are from 0 (no limit) to L{LOG_RATE_CEILING}.
        """
        for name in ("logRate", "logRateTotal"):
            for bad in (-1, LOG_RATE_CEILING + 1):
                fields: dict[str, Any] = {name: bad}
                self.assertRaises(ValueError, EchoSettings, **fields)
            fields = {name: LOG_RATE_CEILING}
            self.assertEqual(getattr(EchoSettings(**fields), name), LOG_RATE_CEILING)

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
