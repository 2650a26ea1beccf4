"""
Tests for L{nbecho.deploy.workers} and L{nbecho.deploy.worker}: settings
sent to a worker as JSON, the C{--workers} checks, the shared connection
limit, and what twistd's process makes of a worker's log events and totals.
"""

from __future__ import annotations

import io
import json
import subprocess
import sys
from typing import Any

from twisted.internet.error import ProcessDone
from twisted.internet.task import Clock
from twisted.logger import Logger, jsonFileLogObserver
from twisted.python import usage
from twisted.python.failure import Failure
from twisted.trial.unittest import SkipTest, SynchronousTestCase

from nbecho._twisted import ECHO_REACTOR
from nbecho.deploy.worker import (
    LOG_FD,
    REQUEST_KEY,
    STATS_KEY,
    _Parent,
    settingsFromJSON,
    settingsToJSON,
    statsRequest,
)
from nbecho.deploy.workers import (
    STATS_TIMEOUT,
    _WorkerProtocol,
    checkWorkers,
    shareLimits,
)
from nbecho.settings import EchoSettings
from nbecho.stats import EchoStats
from nbecho.test._helpers import captureLogs, texts


class SettingsJSONTests(SynchronousTestCase):
    def test_roundTrip(self) -> None:
        """
        Every setting reaches the worker as it was chosen.
        """
        settings = EchoSettings(
            framing="raw",
            exitWord=b"quit",
            quiet=True,
            maxLineLength=10,
            idleTimeout=2.5,
            maxConnections=7,
            maxPerPeer=3,
            shutdownGrace=0.5,
        )
        self.assertEqual(settingsFromJSON(settingsToJSON(settings)), settings)
        self.assertEqual(
            settingsFromJSON(settingsToJSON(EchoSettings())), EchoSettings()
        )

    def test_exitWordNotUTF8(self) -> None:
        """
        An exit word that is not UTF-8 (or empty) arrives byte for byte, in
        JSON that is plain ASCII.
        """
        for word in (b"\xff\xfe", "ciao👋".encode(), b""):
            text = settingsToJSON(EchoSettings(exitWord=word))
            self.assertTrue(text.isascii(), text)
            self.assertEqual(settingsFromJSON(text).exitWord, word)

    def test_checkedOnArrival(self) -> None:
        """
        Settings the worker could not serve with are refused there too.
        """
        fields = json.loads(settingsToJSON(EchoSettings()))
        fields["framing"] = "words"
        self.assertRaises(ValueError, settingsFromJSON, json.dumps(fields))


class CheckWorkersTests(SynchronousTestCase):
    def test_range(self) -> None:
        """
        From 1 to 256 workers are accepted.
        """
        self.assertEqual(checkWorkers("1", []), 1)
        self.assertEqual(checkWorkers("256", ["tcp:0"]), 256)

    def test_notANumber(self) -> None:
        """
        Zero, too many, and anything not plain ASCII digits are refused
        with the allowed range and the value given.
        """
        for text in ("0", "257", "x", "-1", "1.5", "\u0663", ""):
            error = self.assertRaises(usage.UsageError, checkWorkers, text, [])
            self.assertEqual(
                str(error), f"--workers takes a number from 1 to 256, not {text!r}"
            )

    def test_unshareableEndpoint(self) -> None:
        """
        Several workers refuse an endpoint whose socket they cannot share;
        one process serves any endpoint.
        """
        listen = ["tcp:0", "ssl:0:privateKey=k.pem"]
        error = self.assertRaises(usage.UsageError, checkWorkers, "2", listen)
        self.assertIn("not 'ssl:0:privateKey=k.pem'", str(error))
        self.assertIn("tcp:, tcp6:, unix:, systemd:", str(error))
        self.assertEqual(checkWorkers("1", listen), 1)
        shareable = ["tcp:0", "tcp6:0", "unix:/tmp/s", "systemd:domain=INET:index=0"]
        self.assertEqual(checkWorkers("4", shareable), 4)


class ShareLimitsTests(SynchronousTestCase):
    def test_split(self) -> None:
        """
        The server-wide connection limit and total log rates are split
        between the processes, so that together they stay within them.
        """
        shared = shareLimits(
            EchoSettings(maxConnections=10, logRateTotal=1000, quiet=True), 3
        )
        self.assertEqual(
            shared,
            EchoSettings(
                maxConnections=3,
                logRateTotal=333,
                logConnectionRateTotal=33,
                quiet=True,
            ),
        )

    def test_atLeastOne(self) -> None:
        """
        Each process admits at least one connection.
        """
        shared = shareLimits(EchoSettings(maxConnections=2, logRateTotal=3), 4)
        self.assertEqual((shared.maxConnections, shared.logRateTotal), (1, 1))

    def test_unchanged(self) -> None:
        """
        One process, or no limit, leaves the settings as they are; so does
        the per-connection log rate, which each process applies as given.
        """
        settings = EchoSettings(maxConnections=10)
        self.assertIs(shareLimits(settings, 1), settings)
        unlimited = EchoSettings(
            maxConnections=0, logRate=7, logRateTotal=0, logConnectionRateTotal=0
        )
        self.assertIs(shareLimits(unlimited, 8), unlimited)


class FakeProcessTransport:
    """
    A worker process's transport that records what is written to it.
    """

    pid = 4321

    def __init__(self) -> None:
        self.written: list[tuple[int, bytes]] = []

    def writeToChild(self, childFD: int, data: bytes) -> None:
        self.written.append((childFD, data))


def workerLog(**fields: Any) -> bytes:
    """
    What a worker writes on its log pipe for one close line.
    """
    out = io.StringIO()
    log = Logger(namespace="nbecho", observer=jsonFileLogObserver(out))
    log.info(
        "close {peer} ({reason}): {duration:.3f}s",
        nbecho_event="close",
        **fields,
    )
    return out.getvalue().encode("utf-8")


class WorkerEventTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.events = captureLogs(self)
        self.worker = _WorkerProtocol(2)

    def test_republished(self) -> None:
        """
        A worker's event is published here formatted exactly as this
        process formats its own ({duration:.3f} gives 0.002, not the float),
        with C{worker N} in its system and its fields kept.
        """
        data = workerLog(peer="127.0.0.1:5", reason="exit word", duration=0.0021234)
        self.worker.childDataReceived(LOG_FD, data)
        [event] = [e for e in self.events if e.get("nbecho_event") == "close"]
        self.assertEqual(texts([event]), ["close 127.0.0.1:5 (exit word): 0.002s"])
        self.assertNotIn("log_flattened", event)
        self.assertEqual(event["log_system"], "nbecho#info worker 2")
        self.assertEqual(event["worker"], 2)
        self.assertEqual(event["peer"], "127.0.0.1:5")

    def test_ownSystemKept(self) -> None:
        """
        An event that names its own system keeps it, the worker added.
        """
        out = io.StringIO()
        Logger(namespace="nbecho", observer=jsonFileLogObserver(out)).info(
            "hello", log_system="ready"
        )
        self.worker.childDataReceived(LOG_FD, out.getvalue().encode())
        [event] = [e for e in self.events if e.get("worker") == 2]
        self.assertEqual(event["log_system"], "ready worker 2")

    def test_splitAcrossReads(self) -> None:
        """
        Events cut anywhere by the pipe are published whole, once each, in
        order.
        """
        data = workerLog(peer="a", reason="r", duration=1.0) + workerLog(
            peer="b", reason="r", duration=2.0
        )
        for start in range(0, len(data), 7):
            self.worker.childDataReceived(LOG_FD, data[start : start + 7])
        self.assertEqual(
            [e["peer"] for e in self.events if e.get("worker") == 2], ["a", "b"]
        )

    def test_otherDescriptorsAndGarbage(self) -> None:
        """
        Output on other descriptors, and lines that are not events, are not
        published.
        """
        self.worker.childDataReceived(1, workerLog(peer="a", reason="r", duration=1))
        self.worker.childDataReceived(LOG_FD, b"not json\n\x1e{broken\n")
        self.assertEqual([e for e in self.events if e.get("worker") == 2], [])


class WorkerStatsTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.events = captureLogs(self)
        self.clock = Clock()
        self.worker = _WorkerProtocol(3)
        self.transport = FakeProcessTransport()
        self.worker.makeConnection(self.transport)
        self.worker.pid = self.transport.pid

    def reply(self, stats: EchoStats, request: int | None = None) -> None:
        answer: dict[str, Any] = {STATS_KEY: stats.toJSON()}
        if request is not None:
            answer[REQUEST_KEY] = request
        self.worker.childDataReceived(LOG_FD, (json.dumps(answer) + "\n").encode())

    def published(self) -> list[str]:
        return texts([e for e in self.events if e.get("worker") == 3])

    def test_askAndReply(self) -> None:
        """
        Asking writes the request on the worker's stdin; its reply becomes
        the worker's totals, fires the request and is not logged.
        """
        asked = self.worker.askStats(self.clock)
        self.assertEqual(self.transport.written, [(0, b"stats 1\n")])
        self.assertNoResult(asked)
        stats = EchoStats(1, 2, 3, 4, 5, {"max-per-peer": 1})
        self.reply(stats, 1)
        self.successResultOf(asked)
        self.assertEqual(self.worker.stats, stats)
        self.assertEqual(self.clock.getDelayedCalls(), [])
        self.assertEqual([e for e in self.events if e.get("worker") == 3], [])

    def test_noReply(self) -> None:
        """
        A worker that does not answer in time leaves its last totals, and
        the request fires all the same.
        """
        self.reply(EchoStats(messages=5))
        asked = self.worker.askStats(self.clock)
        self.clock.advance(STATS_TIMEOUT - 0.1)
        self.assertNoResult(asked)
        self.clock.advance(0.1)
        self.successResultOf(asked)
        self.assertEqual(self.worker.stats, EchoStats(messages=5))

    def test_endedWhileAsking(self) -> None:
        """
        A worker that ends fires the pending requests and its end, and is
        not asked again.
        """
        asked = self.worker.askStats(self.clock)
        self.worker.processEnded(Failure(ProcessDone(0)))
        self.successResultOf(asked)
        self.successResultOf(self.worker.ended)
        self.assertIn("worker 3 (pid 4321) ended: exit status 0", texts(self.events))
        self.successResultOf(self.worker.askStats(self.clock))
        self.assertEqual(len(self.transport.written), 1)
        self.clock.advance(STATS_TIMEOUT)

    def test_lateAnswer(self) -> None:
        """
        An answer that comes after its request timed out only updates the
        totals: nothing raises, the next request waits for its own answer,
        and the worker's log lines after it are still published.
        """
        first = self.worker.askStats(self.clock)
        self.clock.advance(STATS_TIMEOUT)
        self.successResultOf(first)
        second = self.worker.askStats(self.clock)
        self.reply(EchoStats(messages=7), 1)
        self.assertEqual(self.worker.stats, EchoStats(messages=7))
        self.assertNoResult(second)
        self.reply(EchoStats(messages=8), 2)
        self.successResultOf(second)
        self.worker.childDataReceived(
            LOG_FD, workerLog(peer="a", reason="r", duration=1.0)
        )
        self.assertEqual(self.published(), ["close a (r): 1.000s"])
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_duplicateAnswer(self) -> None:
        """
        The same answer twice fires its request once and raises nothing.
        """
        asked = self.worker.askStats(self.clock)
        self.reply(EchoStats(messages=1), 1)
        self.reply(EchoStats(messages=2), 1)
        self.successResultOf(asked)
        self.assertEqual(self.worker.stats, EchoStats(messages=2))

    def test_answerCoversEarlierRequests(self) -> None:
        """
        A worker answers in order: the answer to request 2 fires request 1
        too, and an answer without a number (the worker's last totals)
        fires every request waiting.
        """
        one, two = self.worker.askStats(self.clock), self.worker.askStats(self.clock)
        self.reply(EchoStats(messages=1), 2)
        self.successResultOf(one)
        self.successResultOf(two)
        three = self.worker.askStats(self.clock)
        self.reply(EchoStats(messages=3))
        self.successResultOf(three)

    def test_malformedAnswer(self) -> None:
        """
        Totals that are not counts leave the last ones in place, with one
        warning and no traceback; the request then fires at its timeout.
        """
        self.reply(EchoStats(messages=5))
        asked = self.worker.askStats(self.clock)
        for garbled in ({"messages": "many"}, [1, 2], {"refused": {"x": -1}}):
            line = json.dumps({STATS_KEY: garbled, REQUEST_KEY: 1}) + "\n"
            self.worker.childDataReceived(LOG_FD, line.encode())
        self.worker.childDataReceived(LOG_FD, b"5\n[]\nnull\n")
        self.assertEqual(self.worker.stats, EchoStats(messages=5))
        self.assertNoResult(asked)
        self.clock.advance(STATS_TIMEOUT)
        self.successResultOf(asked)
        warnings = [e for e in self.events if e.get("log_failure")]
        self.assertEqual(warnings, [])
        self.assertEqual(
            len(
                [
                    e
                    for e in self.events
                    if e.get("nbecho_event") == "worker_stats_unreadable"
                ]
            ),
            3,
        )


class ParentTests(SynchronousTestCase):
    """
    The worker's side: requests on its standard input.
    """

    def test_answersWithNumber(self) -> None:
        """
        Each request line, however split, is answered once with its number;
        other lines are ignored.
        """
        out = io.StringIO()
        server: Any = type("S", (), {"factory": type("F", (), {"stats": EchoStats()})})
        parent = _Parent(server, out)
        data = statsRequest(4) + b"junk\n" + statsRequest(5) + b"stats x\n"
        for i in range(len(data)):
            parent.dataReceived(data[i : i + 1])
        answers = [json.loads(line) for line in out.getvalue().splitlines()]
        self.assertEqual([a[REQUEST_KEY] for a in answers], [4, 5])


class WorkerReactorTests(SynchronousTestCase):
    """
    A worker runs the reactor twistd's process runs.
    """

    def installed(self, name: str | None) -> str:
        """
        The reactor class a fresh process has after
        C{installReactorNamed(name)}.
        """
        code = (
            "import sys\n"
            "from nbecho.deploy.worker import installReactorNamed\n"
            "installReactorNamed(sys.argv[1] or None)\n"
            "from twisted.internet import reactor\n"
            "print(type(reactor).__module__ + '.' + type(reactor).__qualname__)\n"
        )
        result = subprocess.run(
            [sys.executable, "-c", code, name or ""],
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        )
        return result.stdout.strip()

    def test_sameClass(self) -> None:
        """
        Twisted's poll reactor in twistd's process (C{--reactor poll}):
        the worker's is one too.
        """
        name = "twisted.internet.pollreactor.PollReactor"
        self.assertEqual(self.installed(name), name)

    def test_nbechos(self) -> None:
        """
        nbecho's own reactor, or no name: nbecho's reactor where it exists.
        """
        if sys.platform != "linux":
            raise SkipTest("nbecho's reactor is Linux only")
        self.assertEqual(self.installed(ECHO_REACTOR), ECHO_REACTOR)
        self.assertEqual(self.installed(None), ECHO_REACTOR)

    def test_unknownClass(self) -> None:
        """
        A name that cannot be imported leaves the choice to Twisted.
        """
        self.assertEqual(
            self.installed("nowhere.Reactor"),
            "twisted.internet.epollreactor.EPollReactor",
        )
