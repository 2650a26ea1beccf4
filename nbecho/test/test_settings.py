"""
Tests for L{nbecho.settings}: the settings every connection of a server
shares, and what they refuse.
"""

from __future__ import annotations

from typing import Any

import attrs
from twisted.trial.unittest import SynchronousTestCase

from nbecho.server.factory import PROTOCOLS
from nbecho.settings import (
    FRAMINGS,
    LOG_RATE_CEILING,
    MAX_COUNT,
    MAX_EXIT_WORD,
    MAX_LINE_LENGTH,
    MAX_SECONDS,
    MIN_SECONDS,
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
        PROXY header must arrive within five seconds, a connection logs 100
        messages a second, all of them 1,000, and 10 connections a second
        from one address are logged, 100 from all.
        """
        self.assertEqual(
            attrs.asdict(EchoSettings()),
            {
                "framing": "line",
                "exitWord": b"exit",
                "quiet": False,
                "maxLineLength": 131072,
                "idleTimeout": 300.0,
                "maxConnections": 10000,
                "maxPerPeer": 0,
                "shutdownGrace": 5.0,
                "logRate": 100,
                "logRateTotal": 1000,
                "logConnectionRate": 10,
                "logConnectionRateTotal": 100,
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
        A line limit above L{MAX_LINE_LENGTH} (1 GiB) is refused;
        the ceiling itself is fine.
        """
        self.assertEqual(MAX_LINE_LENGTH, 2**30)
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

    def test_rawHasNoDefaultExitWord(self) -> None:
        """
        Raw framing, binary-safe, has no exit word unless one is given.
        """
        self.assertEqual(EchoSettings(framing="raw").exitWord, b"")
        self.assertEqual(EchoSettings(framing="raw", exitWord=b"bye").exitWord, b"bye")

    def test_exitWordBounds(self) -> None:
        """
        An exit word longer than L{MAX_EXIT_WORD} bytes or holding CR or LF
        could never end a connection and is refused.
        """
        for word in (b"x" * (MAX_EXIT_WORD + 1), b"a\nb", b"exit\r"):
            self.assertRaises(ValueError, EchoSettings, exitWord=word)
        word = b"x" * MAX_EXIT_WORD
        self.assertEqual(EchoSettings(exitWord=word).exitWord, word)

    def test_ceilings(self) -> None:
        """
        Lengths and counts above their ceilings are refused; the ceilings
        themselves are fine.
        """
        for name, ceiling in (
            ("maxLineLength", MAX_LINE_LENGTH),
            ("maxConnections", MAX_COUNT),
            ("maxPerPeer", MAX_COUNT),
        ):
            tooMany: dict[str, Any] = {name: ceiling + 1}
            self.assertRaises(ValueError, EchoSettings, **tooMany)
            atCeiling: dict[str, Any] = {name: ceiling}
            self.assertEqual(getattr(EchoSettings(**atCeiling), name), ceiling)

    def test_timeoutBounds(self) -> None:
        """
        A timeout is 0 or from L{MIN_SECONDS} to L{MAX_SECONDS}: a nanosecond
        or a year is refused.
        """
        for name in ("idleTimeout", "shutdownGrace"):
            for bad in (1e-9, MIN_SECONDS / 2, MAX_SECONDS + 1, float("inf")):
                badSettings: dict[str, Any] = {name: bad}
                self.assertRaises(ValueError, EchoSettings, **badSettings)
            for good in (0.0, MIN_SECONDS, MAX_SECONDS):
                goodSettings: dict[str, Any] = {name: good}
                self.assertEqual(getattr(EchoSettings(**goodSettings), name), good)

    def test_frozen(self) -> None:
        """
        Settings shared by every connection cannot be changed under them.
        """
        settings = EchoSettings()
        self.assertRaises(
            attrs.exceptions.FrozenInstanceError, setattr, settings, "quiet", True
        )
