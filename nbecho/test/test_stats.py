"""
Tests for L{nbecho.stats}: totals that add up across connections and
processes and survive the trip from a worker process as JSON.
"""

from __future__ import annotations

import json

from twisted.trial.unittest import SynchronousTestCase

from nbecho.stats import EchoStats


class EchoStatsTests(SynchronousTestCase):
    """
    L{EchoStats} adds up and round-trips through JSON.
    """

    def test_defaults(self) -> None:
        """
        A server that has served nobody has all counts at zero.
        """
        self.assertEqual(
            EchoStats(),
            EchoStats(
                connectionsOpen=0,
                connectionsTotal=0,
                messages=0,
                bytesIn=0,
                bytesOut=0,
                refused={},
            ),
        )

    def test_add(self) -> None:
        """
        Adding sums every count and merges refusals by limit, leaving both
        operands as they were.
        """
        one = EchoStats(1, 2, 3, 4, 5, {"max-connections": 1})
        other = EchoStats(10, 20, 30, 40, 50, {"max-connections": 2, "max-per-peer": 7})
        total = one + other
        self.assertEqual(
            total,
            EchoStats(11, 22, 33, 44, 55, {"max-connections": 3, "max-per-peer": 7}),
        )
        self.assertEqual(one.refused, {"max-connections": 1})
        self.assertEqual(other.refused, {"max-connections": 2, "max-per-peer": 7})
        total.refused["max-connections"] += 1
        self.assertEqual(one.refused, {"max-connections": 1})

    def test_jsonRoundTrip(self) -> None:
        """
        The JSON form, as a worker process sends it, gives the same record.
        """
        stats = EchoStats(1, 2, 3, 4, 5, {"max-per-peer": 6})
        sent = json.dumps(stats.toJSON())
        self.assertEqual(EchoStats.fromJSON(json.loads(sent)), stats)

    def test_fromJSONIgnoresUnknownKeys(self) -> None:
        """
        A key this version does not know (from a newer worker) is ignored,
        and a missing one counts as zero.
        """
        self.assertEqual(
            EchoStats.fromJSON({"messages": 3, "uptime": 9.5}), EchoStats(messages=3)
        )
