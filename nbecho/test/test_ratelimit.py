"""
Tests for L{nbecho.logs.ratelimit}: per-message log lines limited per
connection and in total, with every message held back summarised.
"""

from __future__ import annotations

import re

from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from nbecho.logs.ratelimit import LogBudget, LogLimiter, formatSize, limiterFor
from nbecho.server.factory import EchoFactory
from nbecho.settings import EchoSettings
from nbecho.test._helpers import LogTestCase, connect, disconnect, tcp

#: The summary line, as operators' tools (and the end-to-end tests) match it.
SUMMARY = re.compile(
    r"Read Data (?P<peer>\S+): (?P<count>\d[\d,]*) more messages? "
    r"\((?P<size>[\d.,]+ ?[kKMG]?B)\) not logged in the last second$"
)


def messages(count: int, body: bytes = b"m") -> list[bytes]:
    """
    C{count} messages of C{body}.
    """
    return [body] * count


class FormatSizeTests(SynchronousTestCase):
    """
    Sizes read as a person would write them.
    """

    def test_sizes(self) -> None:
        """
        Bytes below 1000 are counted, larger sizes in kB, MB and GB with one
        decimal, never 1000 of a unit.
        """
        cases = {
            0: "0 B",
            999: "999 B",
            1000: "1.0 kB",
            48_213: "48.2 kB",
            999_949: "999.9 kB",
            999_999: "1.0 MB",
            2_300_000: "2.3 MB",
            1_100_000_000: "1.1 GB",
            12_345_600_000_000: "12,345.6 GB",
        }
        self.assertEqual({size: formatSize(size) for size in cases}, cases)


class LogBudgetTests(SynchronousTestCase):
    """
    The total allowance is shared and renewed each second.
    """

    def test_sharedAndRenewed(self) -> None:
        """
        Takers share C{perSecond} lines until a second has passed.
        """
        budget = LogBudget(5)
        self.assertEqual(budget.take(3, 10.0), 3)
        self.assertEqual(budget.take(3, 10.5), 2)
        self.assertEqual(budget.take(1, 10.99), 0)
        self.assertEqual(budget.take(7, 11.0), 5)

    def test_unlimited(self) -> None:
        """
        An allowance of 0 grants everything.
        """
        self.assertEqual(LogBudget(0).take(10**9, 0.0), 10**9)


class LogLimiterTests(LogTestCase):
    """
    One connection logs at most its allowance a second and summarises the
    rest at the end of that second, or when it closes.
    """

    def setUp(self) -> None:
        super().setUp()
        self.clock = Clock()
        self.clock.advance(1000)

    def limiter(self, perSecond: int = 3, total: int = 0) -> LogLimiter:
        return LogLimiter("10.0.0.1:5000", perSecond, LogBudget(total), self.clock)

    def summaries(self) -> list[re.Match[str]]:
        return [m for m in map(SUMMARY.match, self.logLines()) if m]

    def test_withinAllowance(self) -> None:
        """
        Messages within the allowance are all admitted, as the same list,
        and nothing is summarised.
        """
        limiter = self.limiter(3)
        batch = messages(3)
        self.assertIs(limiter.admit(batch), batch)
        self.clock.advance(5)
        self.assertEqual(self.summaries(), [])

    def test_overAllowanceSummarisedAfterOneSecond(self) -> None:
        """
        Messages over the allowance are held back, and summarised in one line
        with their count and size once the second has passed.
        """
        limiter = self.limiter(3)
        self.assertEqual(limiter.admit([b"a", b"bb"]), [b"a", b"bb"])
        self.clock.advance(0.5)
        self.assertEqual(limiter.admit([b"c", b"dddd", b"eeeeee"]), [b"c"])
        self.assertEqual(limiter.admit(messages(1500, b"x" * 1000)), [])
        self.clock.advance(0.49)
        self.assertEqual(self.summaries(), [])
        self.clock.advance(0.01)
        (summary,) = self.summaries()
        self.assertEqual(
            summary.group(0),
            "Read Data 10.0.0.1:5000: 1,502 more messages (1.5 MB) "
            "not logged in the last second",
        )
        event = self.events[-1]
        self.assertEqual(event["nbecho_event"], "messages_not_logged")
        self.assertEqual((event["count"], event["bytes"]), (1502, 1_500_010))

    def test_nextSecond(self) -> None:
        """
        After a second the allowance is renewed; a quiet second costs no
        summary.
        """
        limiter = self.limiter(2)
        self.assertEqual(limiter.admit(messages(3)), messages(2))
        self.clock.advance(1)
        self.assertEqual(limiter.admit(messages(2)), messages(2))
        self.clock.advance(1)
        (summary,) = self.summaries()
        self.assertEqual(summary.group("count"), "1")
        self.assertIn("1 more message (1 B)", summary.group(0))

    def test_atMostOneSummaryASecond(self) -> None:
        """
        A flood gets at most one summary line a second, each counting what
        that second held back; together they count every message.
        """
        limiter = self.limiter(10)
        admitted = 0
        for _ in range(50):
            admitted += len(limiter.admit(messages(100)))
            self.clock.advance(0.1)
        limiter.close()
        counts = [int(m.group("count").replace(",", "")) for m in self.summaries()]
        self.assertEqual(admitted + sum(counts), 5000)
        self.assertEqual(admitted, 50)
        self.assertLessEqual(len(counts), 6)

    def test_lateTimerSummarisedOnNextRead(self) -> None:
        """
        A read after the second ended summarises it before anything else,
        even when the reactor has not yet run the timer.
        """
        limiter = self.limiter(1)
        limiter.admit(messages(3))
        self.clock.rightNow += 1.5  # the timer has not run
        self.assertEqual(limiter.admit(messages(1)), messages(1))
        self.assertEqual([m.group("count") for m in self.summaries()], ["2"])
        self.clock.advance(0)
        self.assertEqual(len(self.summaries()), 1)
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_closeSummarises(self) -> None:
        """
        Closing summarises what the current second held back, at once, and
        leaves no timer behind.
        """
        limiter = self.limiter(1)
        limiter.admit(messages(4))
        limiter.close()
        self.assertEqual([m.group("count") for m in self.summaries()], ["3"])
        self.assertEqual(self.clock.getDelayedCalls(), [])
        self.clock.advance(2)
        self.assertEqual(len(self.summaries()), 1)

    def test_totalBudget(self) -> None:
        """
        Connections share the total allowance: what one took, another cannot
        log in the same second.
        """
        budget = LogBudget(5)
        first = LogLimiter("a:1", 0, budget, self.clock)
        second = LogLimiter("b:2", 0, budget, self.clock)
        self.assertEqual(len(first.admit(messages(4))), 4)
        self.assertEqual(len(second.admit(messages(4))), 1)
        self.clock.advance(1)
        self.assertEqual(len(second.admit(messages(4))), 4)
        self.assertEqual(
            [(m.group("peer"), m.group("count")) for m in self.summaries()],
            [("b:2", "3")],
        )


class LimiterForTests(SynchronousTestCase):
    """
    Connections get a limiter only when something is to be limited.
    """

    def test_none(self) -> None:
        """
        Quiet servers and servers with both limits off need no limiter.
        """
        for settings in (
            EchoSettings(quiet=True),
            EchoSettings(logRate=0, logRateTotal=0),
        ):
            self.assertIsNone(limiterFor("p", EchoFactory(settings, Clock())))
        self.assertIsNotNone(limiterFor("p", EchoFactory(EchoSettings(), Clock())))


class ProtocolTests(LogTestCase):
    """
    The echo protocols log within the limits, and still count and echo
    every message.
    """

    def logged(self) -> list[str]:
        """
        The messages' own log lines so far, summaries left out.
        """
        return [line for line in self.readData() if not SUMMARY.match(line)]

    def test_floodOfEmptyLines(self) -> None:
        """
        100,000 empty lines are all echoed and counted; 100 are logged and
        the rest summarised before the close line.
        """
        clock = Clock()
        factory = EchoFactory(EchoSettings(), clock)
        proto, transport = connect(factory=factory, peer=tcp("10.0.0.2", 7))
        flood = b"\n" * 100_000
        for start in range(0, len(flood), 4096):
            proto.dataReceived(flood[start : start + 4096])
        self.assertEqual(transport.value(), flood)
        disconnect(proto)
        lines = self.logLines()
        self.assertEqual(len(self.logged()), 100)
        self.assertEqual(
            lines[-2],
            "Read Data 10.0.0.2:7: 99,900 more messages (0 B) "
            "not logged in the last second",
        )
        self.assertRegex(lines[-1], r"^close 10\.0\.0\.2:7 .*: 100000 messages")
        self.assertEqual(factory.stats.messages, 100_000)

    def test_totalAcrossConnections(self) -> None:
        """
        With --log-rate 0 and --log-rate-total 3, two connections log three
        messages between them in a second.
        """
        factory = EchoFactory(EchoSettings(logRate=0, logRateTotal=3), Clock())
        first, _ = connect(factory=factory, peer=tcp("10.0.0.3", 1))
        second, _ = connect(factory=factory, peer=tcp("10.0.0.4", 2))
        first.dataReceived(b"a\nb\n")
        second.dataReceived(b"c\nd\n")
        self.assertEqual(
            self.logged(),
            [
                "Read Data 10.0.0.3:1 a",
                "Read Data 10.0.0.3:1 b",
                "Read Data 10.0.0.4:2 c",
            ],
        )

    def test_rawFraming(self) -> None:
        """
        Raw framing's messages are limited the same way.
        """
        proto, _ = connect(EchoSettings(framing="raw", logRate=2))
        for chunk in (b"one", b"two", b"three", b"four"):
            proto.dataReceived(chunk)
        disconnect(proto)
        self.assertEqual(len(self.logged()), 2)
        self.assertIn(
            "Read Data 127.0.0.1:40000: 2 more messages (9 B) "
            "not logged in the last second",
            self.logLines(),
        )

    def test_quiet(self) -> None:
        """
        --quiet logs neither messages nor summaries.
        """
        proto, transport = connect(EchoSettings(quiet=True, logRate=1))
        proto.dataReceived(b"a\nb\nc\n")
        disconnect(proto)
        self.assertEqual(transport.value(), b"a\nb\nc\n")
        self.assertEqual([line[:5] for line in self.logLines()], ["Accep", "close"])
