"""
Tests for L{nbecho.logs.textlog}: the same log lines as twistd's text observer,
made faster, and its installation as twistd's C{--logger}.
"""

from __future__ import annotations

import io
import os
from typing import Any, cast

from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.logger import (
    ILogObserver,
    LogEvent,
    Logger,
    LogLevel,
    eventAsJSON,
    eventFromJSON,
    formatEventAsClassicLogText,
)
from twisted.python.failure import Failure
from twisted.scripts._twistd_unix import ServerOptions
from twisted.trial.unittest import TestCase

from nbecho.logs import textlog as _textlog
from nbecho.logs.textlog import (
    fastClassicFormat,
    fastTextFileLogObserver,
    logDestination,
    observerFactory,
    reopenLogFiles,
    rotateLogFiles,
)


def _event(format: Any, **fields: Any) -> LogEvent:
    events: list[LogEvent] = []
    logger = Logger(namespace="nbecho", observer=cast(ILogObserver, events.append))
    logger.info(format, **fields)
    return events[0]


class FastClassicFormatTests(TestCase):
    """
    L{fastClassicFormat} makes the line Twisted's classic formatter makes.
    """

    def assertSameLine(self, event: LogEvent) -> None:
        self.assertEqual(fastClassicFormat(event), formatEventAsClassicLogText(event))

    def test_nbechoEvents(self) -> None:
        """
        nbecho's own events (plain fields, a format spec, a multi-line
        batch) come out exactly as twistd's text log writes them.
        """
        self.assertSameLine(_event("Accept {peer}", peer="127.0.0.1:5"))
        self.assertSameLine(_event("Read Data {peer} {text}", peer="[::1]:7", text="x"))
        self.assertSameLine(
            _event(
                "close {peer}: {n} messages {duration:.3f}s",
                peer="p",
                n=3,
                duration=1.23456,
            )
        )
        self.assertSameLine(_event("{lines}", lines="Read Data p a\nRead Data p b"))

    def test_unusualEvents(self) -> None:
        """
        Events the fast path does not handle (attribute, index and call
        fields, conversions, a missing field, a failure, no format, bytes, a
        system, no level) still give Twisted's own line.
        """

        class Thing:
            name = "thing"

            def call(self) -> str:
                return "called"

        events = [
            _event("{thing.name}", thing=Thing()),
            _event("{things[0]}", things=["first"]),
            _event("{thing.call()}", thing=Thing()),
            _event("{x!r}", x="repr"),
            _event("{missing}"),
            _event("{a:{b}}", a=1, b="3"),
            _event(None, x=1),
            _event(b"bytes {x}", x=1),
            _event("", x=1),
            {**_event("system {x}", x=1), "log_system": "worker 2"},
            {**_event("system {x}", x=1), "log_system": 42},
            {k: v for k, v in _event("no level").items() if k != "log_level"},
            {**_event("early"), "log_time": -1.5},
        ]
        try:
            1 / 0  # noqa: B018
        except ZeroDivisionError:
            events.append({**_event("failed {x}", x=1), "log_failure": Failure()})
        events.append(
            eventFromJSON(eventAsJSON(_event("{peer} {n:5d}", peer="p", n=4)))
        )
        for event in events:
            self.assertSameLine(event)

    def test_timestampEachSecond(self) -> None:
        """
        The timestamp shown changes with the second, as Twisted's does.
        """
        first = {**_event("a"), "log_time": 1_000_000.9}
        second = {**_event("a"), "log_time": 1_000_001.1}
        for event in (first, second, first):
            self.assertSameLine(event)
        self.assertNotEqual(fastClassicFormat(first), fastClassicFormat(second))

    @settings(deadline=None)  # PyPy's JIT makes first examples slow
    @given(
        st.lists(
            st.tuples(
                st.text(alphabet=st.characters(blacklist_characters="{}")),
                st.sampled_from(["a", "b", "a:>5", "b:.2f", "a!s", "c", ""]),
            ),
            max_size=5,
        ),
        st.one_of(st.text(), st.integers()),
        st.floats(allow_nan=False, allow_infinity=False),
        st.floats(min_value=0, max_value=4e9),
    )
    def test_anyFormat(
        self, parts: list[tuple[str, str]], a: object, b: float, when: float
    ) -> None:
        """
        For any format string made of text and fields, any values and any
        time, the line is the one Twisted makes.
        """
        format = "".join(
            text + ("{" + field + "}" if field else "") for text, field in parts
        )
        event = {**_event(format, a=a, b=b), "log_time": when}
        self.assertSameLine(event)

    def test_observerWrites(self) -> None:
        """
        The observer writes the line to its file, as text.
        """
        out = io.StringIO()
        event = _event("Accept {peer}", peer="p")
        fastTextFileLogObserver(out)(event)
        self.assertEqual(out.getvalue(), formatEventAsClassicLogText(event))


class InstallTests(TestCase):
    """
    twistd nbecho uses the fast observer unless told otherwise.
    """

    def parse(self, *args: str) -> ServerOptions:
        self.patch(_textlog._TwistdLog, "logfile", "")
        self.patch(_textlog._TwistdLog, "nodaemon", True)
        config = ServerOptions()
        config.parseOptions(list(args))
        return config

    def test_default(self) -> None:
        """
        With no --logger, twistd's logger becomes the fast observer's
        factory, writing to --logfile.
        """
        path = self.mktemp()
        config = self.parse("-n", f"--logfile={path}", "nbecho", "--port", "0")
        self.assertIs(config["logger"], observerFactory)
        observer = observerFactory()
        observer(_event("Accept {peer}", peer="p"))
        with open(path) as f:
            self.assertIn("[nbecho#info] Accept p", f.read())

    def test_stdout(self) -> None:
        """
        In the foreground without --logfile, the log goes to stdout, as
        twistd's would.
        """
        self.parse("-n", "nbecho", "--port", "0")
        observer: Any = observerFactory()
        self.assertIs(observer.observer._outFile.outFile, __import__("sys").stdout)
        # Twisted's accept lines are limited.
        self.assertEqual(observer.window.perSecond, 10)

    def test_ownLogger(self) -> None:
        """
        An operator's --logger, or --syslog, is left alone.
        """
        config = self.parse(
            "-n", "--logger=twisted.logger.textFileLogObserver", "nbecho", "--port", "0"
        )
        self.assertEqual(config["logger"].__name__, "textFileLogObserver")
        if hasattr(os, "getuid"):
            config = self.parse("-n", "--syslog", "nbecho", "--port", "0")
            self.assertIsNone(config["logger"])

    def test_levelsKept(self) -> None:
        """
        Warnings and errors keep their level in the system column.
        """
        events: list[LogEvent] = []
        Logger(namespace="nbecho", observer=cast(ILogObserver, events.append)).emit(
            LogLevel.warn, "w"
        )
        self.assertIn("[nbecho#warn] w", fastClassicFormat(events[0]) or "")


class ReopenTests(TestCase):
    """
    L{reopenLogFiles}, which SIGHUP calls after logrotate moved the log.
    """

    def setUp(self) -> None:
        self.patch(_textlog, "_LOG_FILES", [])

    def test_rotates(self) -> None:
        """
        L{rotateLogFiles} (which SIGUSR1 calls) moves the log to C{PATH.1}
        and goes on in a new file; a log file already closed is left alone.
        """
        path = os.path.abspath(self.mktemp())
        destination = logDestination({"logfile": path, "nodaemon": False})
        self.addCleanup(destination.close)
        closed = logDestination({"logfile": path + ".other", "nodaemon": False})
        closed.close()
        destination.write("before\n")
        rotateLogFiles()
        destination.write("after\n")
        destination.flush()
        with open(path) as new, open(path + ".1") as old:
            self.assertEqual((new.read(), old.read()), ("after\n", "before\n"))

    def test_reopensMovedFile(self) -> None:
        """
        After the log file is moved away, new lines go to a new file at the
        same path, and the moved one keeps the old lines.
        """
        path = os.path.abspath(self.mktemp())
        destination = logDestination({"logfile": path, "nodaemon": False})
        self.addCleanup(destination.close)
        destination.write("before\n")
        os.rename(path, path + ".moved")
        self.assertEqual(reopenLogFiles(), [path])
        destination.write("after\n")
        destination.flush()
        with open(path) as new, open(path + ".moved") as moved:
            self.assertEqual((new.read(), moved.read()), ("after\n", "before\n"))

    def test_noFileNothingReopened(self) -> None:
        """
        A log on stdout has no file to reopen.
        """
        logDestination({"logfile": "-"})
        logDestination({"nodaemon": True})
        self.assertEqual(reopenLogFiles(), [])

    def test_cannotReopenKeepsOldFile(self) -> None:
        """
        When the path cannot be opened again, the error is raised and the
        old file is still written.
        """
        directory = os.path.abspath(self.mktemp())
        os.mkdir(directory)
        path = os.path.join(directory, "nbecho.log")
        destination = logDestination({"logfile": path, "nodaemon": False})
        self.addCleanup(destination.close)
        os.rename(directory, directory + ".gone")
        self.assertRaises(FileNotFoundError, reopenLogFiles)
        destination.write("still\n")
        destination.flush()
        with open(os.path.join(directory + ".gone", "nbecho.log")) as old:
            self.assertEqual(old.read(), "still\n")
