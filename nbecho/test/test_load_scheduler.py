"""
Tests for L{nbecho.client.load.scheduler} and the connections it drives,
on a L{task.Clock} with L{StringTransport}s: when messages go out, what is
measured, and how echoes are checked.
"""

from __future__ import annotations

from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from twisted.trial.unittest import SynchronousTestCase

from nbecho.client.load.connection import LoadProtocol
from nbecho.client.load.figures import Figures
from nbecho.client.load.messages import Messages, parseSizes
from nbecho.client.load.scheduler import Run


def _run(
    clock: Clock, connections: int = 2, **options: object
) -> tuple[Run, list[LoadProtocol]]:
    run = Run(clock, Messages(("choice", (10,))), Figures(), **options)  # type: ignore[arg-type]
    protocols = []
    for _ in range(connections):
        protocol = LoadProtocol(clock, run)
        protocol.makeConnection(StringTransport())
        protocols.append(protocol)
    return run, protocols


def _echoAll(protocol: LoadProtocol) -> None:
    transport = protocol.transport
    assert isinstance(transport, StringTransport)
    data = transport.value()
    transport.clear()
    protocol.dataReceived(data)


class OpenLoopTests(SynchronousTestCase):
    def test_sendsOnItsOwnClock(self) -> None:
        """
        Open loop, messages go out at the rate whether or not echoes come
        back, alternating between connections.
        """
        clock = Clock()
        run, protocols = _run(clock, rate=100.0, duration=1.0)
        run.start(protocols)
        clock.advance(0.5)
        sent = [len(p.inFlight) for p in protocols]
        self.assertEqual(sum(sent), 51)
        self.assertLessEqual(abs(sent[0] - sent[1]), 1)

    def test_latencyFromTheDueTime(self) -> None:
        """
        A message sent late (the clock jumped) is measured from the time it
        was due: no coordinated omission.
        """
        clock = Clock()
        run, protocols = _run(clock, connections=1, rate=10.0, duration=1.0)
        run.start(protocols)
        _echoAll(protocols[0])  # message 0, due and sent at 0
        clock.advance(0.35)  # messages 1-3 (due 0.1, 0.2, 0.3) go out now
        clock.advance(0.05)
        _echoAll(protocols[0])
        histogram = run.figures.histogram
        self.assertEqual(histogram.get_total_count(), 4)
        self.assertAlmostEqual(histogram.get_max_value() / 1e6, 0.3, places=3)

    def test_warmupLeftOut(self) -> None:
        """
        Messages due during the warm-up are sent and checked but not
        counted; the measured window starts after it.
        """
        clock = Clock()
        run, protocols = _run(clock, rate=10.0, warmup=1.0, duration=1.0)
        done = run.start(protocols)
        for _ in range(25):
            clock.advance(0.1)
            for protocol in protocols:
                _echoAll(protocol)
        figures = self.successResultOf(done)
        self.assertEqual(figures.sent, 10)
        self.assertEqual(figures.echoed, 10)
        self.assertEqual(figures.errors, {})
        self.assertAlmostEqual(figures.seconds, 1.0, places=1)

    def test_unansweredCounted(self) -> None:
        """
        Echoes still missing when the drain ends are counted unanswered.
        """
        clock = Clock()
        run, protocols = _run(clock, rate=10.0, duration=0.5, drain=1.0)
        done = run.start(protocols)
        clock.advance(0.6)
        clock.advance(1.0)
        figures = self.successResultOf(done)
        self.assertEqual(figures.errors, {"unanswered": 5})
        self.assertEqual(figures.echoed, 0)
        self.assertLess(figures.rate, 0.95 * 10)
        self.assertTrue(figures.shortfall)


class ClosedLoopTests(SynchronousTestCase):
    def test_pipelineDepth(self) -> None:
        """
        Closed loop, each connection keeps C{pipeline} messages in flight
        and sends one more per echo, until C{count}.
        """
        clock = Clock()
        run, protocols = _run(clock, pipeline=3, count=10)
        done = run.start(protocols)
        self.assertEqual([len(p.inFlight) for p in protocols], [3, 3])
        for _ in range(5):
            clock.advance(0.001)
            for protocol in protocols:
                _echoAll(protocol)
        figures = self.successResultOf(done)
        self.assertEqual((figures.sent, figures.echoed), (10, 10))

    def test_endsWithoutEchoes(self) -> None:
        """
        A server that never echoes does not hold the run past its duration
        and drain.
        """
        clock = Clock()
        run, protocols = _run(clock, duration=1.0, drain=2.0)
        done = run.start(protocols)
        clock.advance(1.0)
        self.assertNoResult(done)
        clock.advance(2.0)
        self.assertEqual(self.successResultOf(done).errors, {"unanswered": 2})


class VerificationTests(SynchronousTestCase):
    def test_echoInPieces(self) -> None:
        """
        An echo split anywhere is put back together and counted once.
        """
        clock = Clock()
        run, protocols = _run(clock, connections=1, pipeline=2, count=2)
        done = run.start(protocols)
        transport = protocols[0].transport
        assert isinstance(transport, StringTransport)
        data = transport.value()
        for i in range(len(data)):
            protocols[0].dataReceived(data[i : i + 1])
        self.assertEqual(self.successResultOf(done).echoed, 2)

    def test_mismatch(self) -> None:
        """
        One wrong byte is a mismatch, and the connection is dropped.
        """
        clock = Clock()
        run, protocols = _run(clock, connections=1, count=5)
        run.start(protocols)
        transport = protocols[0].transport
        assert isinstance(transport, StringTransport)
        data = bytearray(transport.value())
        data[3] ^= 1
        protocols[0].dataReceived(bytes(data))
        self.assertEqual(run.figures.errors, {"mismatch": 1})
        self.assertTrue(transport.disconnecting or transport.disconnected)

    def test_excess(self) -> None:
        """
        Bytes echoed that were never sent are counted as excess.
        """
        clock = Clock()
        run, protocols = _run(clock, connections=1, count=1)
        run.start(protocols)
        transport = protocols[0].transport
        assert isinstance(transport, StringTransport)
        protocols[0].dataReceived(transport.value() + b"more")
        self.assertEqual(run.figures.errors, {"excess": 1})
        self.assertEqual(run.figures.echoed, 1)


class MessagesTests(SynchronousTestCase):
    def test_lineMessages(self) -> None:
        """
        Line messages have the drawn size, one line feed at the end, and are
        never the exit word.
        """
        messages = Messages(("choice", (4,)), "line", b"exit")
        messages.block = b"exit" * 20000
        for _ in range(100):
            message = messages.next()
            self.assertEqual(len(message), 5)
            self.assertEqual(message.count(b"\n"), 1)
            self.assertNotEqual(message, b"exit\n")

    def test_sizes(self) -> None:
        """
        --size reads N, a list, or a range; anything else names the forms.
        """
        self.assertEqual(parseSizes("64"), ("choice", (64,)))
        self.assertEqual(parseSizes("1,10"), ("choice", (1, 10)))
        self.assertEqual(parseSizes("5-9"), ("range", (5, 9)))
        for bad in ("0", "x", "9-5", "1,,2"):
            self.assertRaises(ValueError, parseSizes, bad)
