"""
Tests for L{nbecho.logs.batch}: the messages of one chunk logged as one event
with the same content as one event per message.
"""

from __future__ import annotations

import io
import json
import time
from typing import cast

from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.internet.address import IPv4Address
from twisted.logger import (
    ILogObserver,
    LogEvent,
    Logger,
    formatEvent,
    globalLogPublisher,
)
from twisted.trial.unittest import TestCase

from nbecho.logs.batch import escapeBodies, info, logMessages
from nbecho.logs.escape import escapeMessage
from nbecho.logs.jsonlog import JSONLinesObserver
from nbecho.settings import EchoSettings
from nbecho.test._helpers import RecordingTransport, connect

_bodies = st.lists(
    st.one_of(
        st.binary(max_size=300).filter(lambda b: b"\n" not in b),
        st.text(
            alphabet=st.characters(min_codepoint=32, max_codepoint=126), max_size=250
        ).map(str.encode),
    ),
    max_size=20,
)


class EscapeBodiesTests(TestCase):
    """
    Escaping a chunk at once gives what escaping each message gives.
    """

    @settings(deadline=None)  # PyPy's JIT makes first examples slow
    @given(_bodies)
    def test_sameAsEach(self, bodies: list[bytes]) -> None:
        """
        For any messages (printable or not, short or over the log limit), the
        texts are those of L{escapeMessage}, in order.
        """
        self.assertEqual(escapeBodies(bodies), [escapeMessage(b) for b in bodies])

    def test_backslashAndLong(self) -> None:
        """
        A backslash is escaped and a long line cut, even in a chunk of
        otherwise plain text.
        """
        bodies = [b"plain", b"back\\slash"]
        self.assertEqual(escapeBodies(bodies), ["plain", "back\\\\slash"])
        bodies = [b"plain", b"x" * 300]
        self.assertEqual(escapeBodies(bodies), ["plain", "x" * 200 + "... (300 bytes)"])


class InfoTests(TestCase):
    """
    L{info} makes the event C{Logger.info} makes.
    """

    def test_sameEvent(self) -> None:
        """
        Every key and value but the time is that of C{Logger.info}'s event,
        and the time is now.
        """
        events: list[LogEvent] = []
        log = Logger(namespace="nbecho", observer=cast(ILogObserver, events.append))
        log.info("Read Data {peer} {text}", peer="p", text="t", size=1)
        before = time.time()
        info(log, "Read Data {peer} {text}", peer="p", text="t", size=1)
        expected, actual = events
        self.assertGreaterEqual(actual.pop("log_time"), before)
        expected.pop("log_time")
        self.assertEqual(actual, expected)


class ProtocolBatchTests(TestCase):
    """
    The line protocol logs the lines of one chunk as one event.
    """

    def setUp(self) -> None:
        self.events: list[LogEvent] = []
        observer = cast(ILogObserver, self.events.append)
        globalLogPublisher.addObserver(observer)
        self.addCleanup(globalLogPublisher.removeObserver, observer)

    def connect(self, quiet: bool = False) -> RecordingTransport:
        self.protocol, transport = connect(
            EchoSettings(quiet=quiet), peer=IPv4Address("TCP", "127.0.0.1", 5)
        )
        return transport

    def messageEvents(self) -> list[LogEvent]:
        return [e for e in self.events if "Read Data" in (formatEvent(e) or "")]

    def test_oneEventPerChunk(self) -> None:
        """
        Three lines in one chunk: one event whose text is one C{Read Data}
        line per message with the peer, and whose fields list every message.
        """
        transport = self.connect()
        self.protocol.dataReceived(b"one\ntwo\x1b\nthree\n")
        self.assertEqual(transport.value(), b"one\ntwo\x1b\nthree\n")
        [event] = self.messageEvents()
        self.assertEqual(
            formatEvent(event),
            "Read Data 127.0.0.1:5 one\n"
            "Read Data 127.0.0.1:5 two\\x1b\n"
            "Read Data 127.0.0.1:5 three",
        )
        self.assertEqual(event["texts"], ["one", "two\\x1b", "three"])
        self.assertEqual(event["sizes"], [3, 4, 5])
        self.assertEqual(event["peer"], "127.0.0.1:5")
        self.assertEqual(event["count"], 3)

    def test_crlfAndSingle(self) -> None:
        """
        CRLF lines are logged without their terminator; a chunk with a
        single line is a plain single-message event.
        """
        self.connect()
        self.protocol.dataReceived(b"a\r\nb\r\n")
        self.protocol.dataReceived(b"c\n")
        first, second = self.messageEvents()
        self.assertEqual(first["texts"], ["a", "b"])
        self.assertEqual(second["text"], "c")
        self.assertEqual(second["size"], 1)

    def test_quiet(self) -> None:
        """
        Quiet mode logs no message at all.
        """
        transport = self.connect(quiet=True)
        self.protocol.dataReceived(b"a\nb\n")
        self.assertEqual(transport.value(), b"a\nb\n")
        self.assertEqual(self.messageEvents(), [])


class JSONLogTests(TestCase):
    """
    The JSON log keeps one record per message for a chunk's event.
    """

    def test_onePerMessage(self) -> None:
        """
        A chunk of two lines becomes two C{message} records with the peer,
        the escaped text, the size and the line the text log shows.
        """
        out = io.StringIO()
        observer = JSONLinesObserver(out)
        events: list[LogEvent] = []
        log = Logger(namespace="nbecho", observer=cast(ILogObserver, events.append))
        logMessages(log, "127.0.0.1:5", [b"one", b"t\x1bwo"])
        for event in events:
            observer(event)
        records = [json.loads(line) for line in out.getvalue().splitlines()]
        self.assertEqual(
            [(r["nbecho_event"], r["peer"], r["text"], r["size"]) for r in records],
            [
                ("message", "127.0.0.1:5", "one", 3),
                ("message", "127.0.0.1:5", "t\\x1bwo", 4),
            ],
        )
        self.assertEqual(
            [r["log_text"] for r in records],
            ["Read Data 127.0.0.1:5 one", "Read Data 127.0.0.1:5 t\\x1bwo"],
        )
        self.assertEqual(records[0]["log_time"], records[1]["log_time"])
