"""
Tests for L{nbecho.logs.connlimit}: the lines connections cause, limited per
client address and in total, and summarised once a second.
"""

from __future__ import annotations

from typing import Any, cast

from twisted.internet.task import Clock
from twisted.logger import ILogObserver, LogEvent, LogLevel, formatEvent
from twisted.trial.unittest import SynchronousTestCase

from nbecho.logs.connlimit import (
    MAX_SUMMARIES,
    ConnectionLogLimit,
    TwistedAcceptLines,
)
from nbecho.test._helpers import captureLogs, logLines


class ConnectionLogLimitTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.clock = Clock()
        self.events = captureLogs(self)

    def test_perAddress(self) -> None:
        """
        One address gets its allowance a second; others are unaffected.
        """
        limit = ConnectionLogLimit(3, 0, self.clock)
        self.assertEqual([limit.admit("a") for _ in range(5)], [True] * 3 + [False] * 2)
        self.assertTrue(limit.admit("b"))
        self.clock.advance(1.0)
        self.assertTrue(limit.admit("a"))

    def test_total(self) -> None:
        """
        All addresses together get the total allowance a second.
        """
        limit = ConnectionLogLimit(0, 4, self.clock)
        admitted = [limit.admit(f"10.0.0.{i}") for i in range(10)]
        self.assertEqual(admitted, [True] * 4 + [False] * 6)

    def test_unlimited(self) -> None:
        """
        0 and 0 admit every connection and schedule nothing.
        """
        limit = ConnectionLogLimit(0, 0, self.clock)
        self.assertTrue(all(limit.admit("a") for _ in range(10_000)))
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_summary(self) -> None:
        """
        A second after the first connection held back, one line per address
        says how many were not logged and how they ended, in words.
        """
        limit = ConnectionLogLimit(1, 0, self.clock)
        for _ in range(3):
            limit.hold("127.0.0.1", "closed")
        limit.hold("127.0.0.1", "refused")
        limit.hold("::1", "failing the TLS handshake")
        self.assertEqual(logLines(self.events), [])
        self.clock.advance(1.0)
        self.assertEqual(
            logLines(self.events),
            [
                "4 connections from 127.0.0.1 not logged in the last second: "
                "3 closed, 1 refused",
                "1 connection from ::1 not logged in the last second: "
                "1 failing the TLS handshake",
            ],
        )
        self.clock.advance(5.0)
        self.assertEqual(len(logLines(self.events)), 2)

    def test_summaryBounded(self) -> None:
        """
        However many addresses were held back in a second, at most
        L{MAX_SUMMARIES} get a line of their own; the rest share one.
        """
        limit = ConnectionLogLimit(1, 0, self.clock)
        for index in range(100):
            for _ in range(index + 1):
                limit.hold(f"127.0.0.{index}", "closed")
        self.clock.advance(1.0)
        lines = logLines(self.events)
        self.assertEqual(len(lines), MAX_SUMMARIES + 1)
        self.assertTrue(lines[0].startswith("100 connections from 127.0.0.99 "))
        rest = sum(range(1, 100 - MAX_SUMMARIES + 1))
        self.assertEqual(
            lines[-1],
            f"{rest:,} connections from 90 other addresses not logged in the "
            f"last second: {rest:,} closed",
        )


def _event(text: str, **fields: Any) -> LogEvent:
    return {"log_format": text, "log_level": LogLevel.info, **fields}


class TwistedAcceptLinesTests(SynchronousTestCase):
    def test_limited(self) -> None:
        """
        Twisted's EMFILE recovery lines pass up to the allowance a second,
        the rest are summarised; other lines always pass.
        """
        clock = Clock()
        seen: list[LogEvent] = []
        self.patch(TwistedAcceptLines, "perSecond", 2)
        observer = TwistedAcceptLines(cast(ILogObserver, seen.append), True, clock)
        for port in range(5):
            observer(
                _event(
                    "EMFILE recovery: Closed socket from {address}",
                    address=("127.0.0.1", port),
                )
            )
            observer(_event("Accept {peer}", peer=port))
        self.assertEqual(len(seen), 2 + 5)
        clock.advance(1.0)
        self.assertEqual(
            formatEvent(seen[-1]),
            "3 lines of Twisted's about accepting connections (EMFILE recovery) "
            "not logged in the last second",
        )
