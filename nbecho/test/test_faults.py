"""
Tests for L{nbecho.server.faults} and L{nbecho.server._faultoptions}: each
fault on a fake clock.
"""

from __future__ import annotations

from typing import Any

from twisted.internet.task import Clock
from twisted.python import usage
from twisted.trial.unittest import SynchronousTestCase

from nbecho.server._faultoptions import faultPlan
from nbecho.server.factory import EchoFactory
from nbecho.server.faults import QUEUE_BOUND, FaultPlan, Faults, installFaults
from nbecho.server.protocol import EchoProtocol
from nbecho.settings import EchoSettings
from nbecho.tap import Options
from nbecho.test._helpers import (
    RecordingTransport,
    captureLogs,
    connect,
    disconnect,
    texts,
)


def faulty(
    plan: FaultPlan, framing: str = "raw"
) -> tuple[EchoFactory, Clock, EchoProtocol, RecordingTransport]:
    """
    A connection of a server with C{plan}'s faults, on a fake clock.
    """
    clock = Clock()
    factory = EchoFactory(EchoSettings(framing=framing), clock)
    installFaults(factory, plan)
    proto, transport = connect(factory=factory)
    return factory, clock, proto, transport


class InstallTests(SynchronousTestCase):
    def test_noFaultNoLayer(self) -> None:
        """
        Without any fault the factory keeps its own protocol class: the echo
        path is the plain one.
        """
        factory = EchoFactory(EchoSettings(), Clock())
        before = factory.protocol
        installFaults(factory, None)
        installFaults(factory, FaultPlan())
        self.assertIs(factory.protocol, before)

    def test_optionsWithoutFaults(self) -> None:
        """
        The command line with no fault option gives no plan.
        """
        options = Options()
        options.parseOptions(["--port", "0"])
        self.assertIsNone(options["faults"])


class LatencyTests(SynchronousTestCase):
    def test_delayed(self) -> None:
        """
        An echo leaves no earlier than the latency, and then at once.
        """
        _, clock, proto, transport = faulty(FaultPlan(latency=0.02))
        proto.dataReceived(b"abc")
        clock.advance(0.019)
        self.assertEqual(transport.value(), b"")
        clock.advance(0.001)
        self.assertEqual(transport.value(), b"abc")

    def test_orderKept(self) -> None:
        """
        With jitter, a later chunk never overtakes an earlier one.
        """
        plan = FaultPlan(latency=0.02, jitter=0.015, seed=1)
        _, clock, proto, transport = faulty(plan)
        for n in range(200):
            proto.dataReceived(b"%d," % n)
            clock.advance(0.001)
        clock.advance(1)
        self.assertEqual(transport.value(), b"".join(b"%d," % n for n in range(200)))

    def test_jitterBounds(self) -> None:
        """
        Uniform jitter stays within the bound either way and uses it; normal
        jitter stays within three deviations and is never negative.
        """
        import random

        draw = random.Random(3)
        uniform = FaultPlan(latency=0.02, jitter=0.005)
        delays = [uniform.delay(draw) for _ in range(10000)]
        self.assertTrue(all(0.015 <= d <= 0.025 for d in delays))
        self.assertLess(min(delays), 0.0152)
        self.assertGreater(max(delays), 0.0248)
        normal = FaultPlan(latency=0.001, jitter=0.005, distribution="normal")
        delays = [normal.delay(draw) for _ in range(10000)]
        self.assertTrue(all(0 <= d <= 0.016 for d in delays))

    def test_otherConnectionsUnaffected(self) -> None:
        """
        A connection waiting for its delayed echo holds no other back: the
        delay is a timer, not a wait.
        """
        factory, clock, slow, slowTransport = faulty(FaultPlan(latency=10))
        fast, fastTransport = connect(factory=factory)
        slow.dataReceived(b"slow")
        fast.dataReceived(b"fast")
        clock.advance(10)
        self.assertEqual(fastTransport.value(), b"fast")
        self.assertEqual(slowTransport.value(), b"slow")


class BandwidthTests(SynchronousTestCase):
    def test_rate(self) -> None:
        """
        1000 bytes at 100 bytes a second take ten seconds, a tenth of a
        second's worth at a time.
        """
        _, clock, proto, transport = faulty(FaultPlan(bandwidth=100))
        proto.dataReceived(b"x" * 1000)
        clock.advance(4.95)
        self.assertEqual(len(transport.value()), 500)
        self.assertEqual({len(w) for w in transport.writes}, {10})
        clock.advance(5)
        self.assertEqual(len(transport.value()), 1000)

    def test_backpressure(self) -> None:
        """
        More than the queue bound waiting pauses reading; it resumes once the
        queue drains.
        """
        _, clock, proto, transport = faulty(FaultPlan(bandwidth=QUEUE_BOUND))
        proto.dataReceived(b"x" * (QUEUE_BOUND * 2))
        self.assertEqual(transport.producerState, "paused")
        clock.advance(1.1)
        self.assertEqual(transport.producerState, "producing")


class SliceTests(SynchronousTestCase):
    def test_pieces(self) -> None:
        """
        An echo goes out in pieces of the slice size, the delay apart.
        """
        _, clock, proto, transport = faulty(FaultPlan(sliceSize=3, sliceDelay=0.1))
        proto.dataReceived(b"abcdefgh")
        self.assertEqual(transport.writes, [b"abc"])
        clock.advance(0.1)
        clock.advance(0.1)
        self.assertEqual(transport.writes, [b"abc", b"def", b"gh"])


class StallTests(SynchronousTestCase):
    def test_stallThenResume(self) -> None:
        """
        The first bytes stall the connection: nothing is echoed and reading
        pauses for the stall, then everything comes, in order.
        """
        _, clock, proto, transport = faulty(FaultPlan(stall=2))
        proto.dataReceived(b"one")
        self.assertEqual(transport.producerState, "paused")
        clock.advance(1.9)
        self.assertEqual(transport.value(), b"")
        clock.advance(0.1)
        self.assertEqual(transport.value(), b"one")
        self.assertEqual(transport.producerState, "producing")
        proto.dataReceived(b"two")
        self.assertEqual(transport.value(), b"onetwo")


class CloseTests(SynchronousTestCase):
    def test_afterBytesClean(self) -> None:
        """
        A clean close comes right after the echo that reaches the count.
        """
        factory, _, proto, transport = faulty(FaultPlan(closeAfterBytes=1))
        proto.dataReceived(b"first")
        self.assertEqual(transport.value(), b"first")
        self.assertTrue(transport.disconnecting)
        self.assertFalse(transport.aborted)
        disconnect(proto)
        self.assertEqual(factory.stats.faults, {"close": 1})

    def test_afterBytesReset(self) -> None:
        """
        A reset close aborts the connection after the echo.
        """
        _, _, proto, transport = faulty(FaultPlan(closeAfterBytes=1, closeHow="reset"))
        proto.dataReceived(b"first")
        self.assertEqual(transport.value(), b"first")
        self.assertTrue(transport.aborted)

    def test_afterSeconds(self) -> None:
        """
        The connection closes the given time after its connect.
        """
        _, clock, _, transport = faulty(FaultPlan(closeAfterSeconds=3))
        clock.advance(2.9)
        self.assertFalse(transport.disconnecting)
        clock.advance(0.1)
        self.assertTrue(transport.disconnecting)

    def test_exitWordWaitsForEchoes(self) -> None:
        """
        A close asked for by the client waits for the delayed echoes.
        """
        _, clock, proto, transport = faulty(FaultPlan(latency=1), framing="line")
        proto.dataReceived(b"a\nexit\n")
        self.assertFalse(transport.disconnecting)
        clock.advance(1)
        self.assertEqual(transport.value(), b"a\nexit\n")
        self.assertTrue(transport.disconnecting)


class ProbabilityTests(SynchronousTestCase):
    def test_seeded(self) -> None:
        """
        A seed gives the same connections the same faults, about as many as
        the probability says.
        """
        plan = FaultPlan(
            latency=1, closeAfterBytes=1, probability={"close": 0.1}, seed=5
        )
        runs = []
        for _ in range(2):
            faults = Faults(plan)
            runs.append([faults.hits() for _ in range(1000)])
        self.assertEqual(runs[0], runs[1])
        closes = sum("close" in hits for hits in runs[0])
        self.assertTrue(60 < closes < 140, closes)
        self.assertTrue(all("latency" in hits for hits in runs[0]))

    def test_countedOncePerConnection(self) -> None:
        """
        A fault counts once for each connection it hits, however often it
        acts.
        """
        factory, clock, proto, _ = faulty(FaultPlan(latency=0.1))
        for _ in range(5):
            proto.dataReceived(b"x")
        clock.advance(1)
        self.assertEqual(factory.stats.faults, {"latency": 1})


class LogTests(SynchronousTestCase):
    def test_onceWithTheConnectionsLines(self) -> None:
        """
        A fault is logged once per connection, and only for a connection
        whose lines are logged; it is counted for every connection.
        """
        events = captureLogs(self)
        factory, clock, logged, _ = faulty(FaultPlan(latency=0.1))
        held, _ = connect(factory=factory)
        held.logged = False
        for proto in (logged, held, logged, held):
            proto.dataReceived(b"x")
        clock.advance(1)
        faultLines = [text for text in texts(events) if text.startswith("Fault")]
        self.assertEqual(
            faultLines, ["Fault latency 127.0.0.1:40000: echoes delayed 0.1s ± 0s"]
        )
        self.assertEqual(factory.stats.faults, {"latency": 2})


class GreetingTests(SynchronousTestCase):
    def test_greeting(self) -> None:
        """
        The greeting comes first, filled in, and is not counted as echoed.
        """
        factory, _, proto, transport = faulty(FaultPlan(greeting="{pid} {listener}"))
        proto.dataReceived(b"hi")
        import os

        self.assertTrue(transport.value().startswith(b"%d " % os.getpid()))
        self.assertTrue(transport.value().endswith(b"\nhi"))
        self.assertEqual(factory.stats.bytesOut, 2)
        self.assertEqual(factory.stats.greetings, 1)


class OptionTests(SynchronousTestCase):
    def plan(self, *argv: str) -> Any:
        options: dict[str, Any] = {}
        for name, _, default, _ in __import__(
            "nbecho.server._faultoptions", fromlist=["FAULT_PARAMETERS"]
        ).FAULT_PARAMETERS:
            options[name] = default
        for pair in argv:
            name, _, value = pair.partition("=")
            options[name] = value
        return faultPlan(options, 1)

    def test_values(self) -> None:
        """
        Option values become the plan.
        """
        plan = self.plan("fault-latency=0.02", "fault-probability=close=0.01,latency=1")
        self.assertEqual(plan.latency, 0.02)
        self.assertEqual(plan.probability, {"close": 0.01, "latency": 1.0})

    def test_refused(self) -> None:
        """
        Impossible values are usage errors.
        """
        for bad in [
            "fault-latency=-1",
            "fault-latency=nan",
            "fault-probability=close=1.5",
            "fault-probability=sideways=0.5",
            "fault-close-how=slam",
            "greeting={uid}",
            "fault-bandwidth=x",
        ]:
            self.assertRaises(usage.UsageError, self.plan, bad)
