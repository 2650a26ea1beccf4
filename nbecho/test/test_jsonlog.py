"""
Tests for L{nbecho.logs.jsonlog}: JSON lines, where they go, and how the
observer reaches twistd.
"""

from __future__ import annotations

import io
import json
import os
import sys
from typing import Any

from twisted.application.service import Application, IService
from twisted.logger import ILogObserver, Logger
from twisted.python.logfile import LogFile
from twisted.trial.unittest import SynchronousTestCase, TestCase

from nbecho.logs import textlog
from nbecho.logs.jsonlog import JSONLinesObserver, JSONLoggingService
from nbecho.logs.textlog import logDestination
from nbecho.tap import Options, makeService


class JSONLinesObserverTests(SynchronousTestCase):
    def test_oneObjectPerLine(self) -> None:
        """Each event is one line holding one JSON object, its fields and its text."""
        out = io.StringIO()
        log = Logger(namespace="nbecho", observer=JSONLinesObserver(out))
        log.info("Read Data {peer} {text}", peer="[::1]:5", text="a\\x1b", size=2)
        log.info("second\nline {x}", x=1)
        lines = out.getvalue().splitlines()
        self.assertEqual(len(lines), 2)
        first, second = map(json.loads, lines)
        self.assertEqual(
            (first["peer"], first["text"], first["size"]), ("[::1]:5", "a\\x1b", 2)
        )
        self.assertEqual(first["log_text"], "Read Data [::1]:5 a\\x1b")
        self.assertEqual(first["log_level"]["name"], "info")
        self.assertEqual(second["log_text"], "second\nline 1")


class LogDestinationTests(SynchronousTestCase):
    def test_stdout(self) -> None:
        """--logfile=-, or --nodaemon without --logfile, is standard output."""
        for twistd in ({"logfile": "-", "nodaemon": False}, {"nodaemon": True}, None):
            destination: Any = logDestination(twistd)
            self.assertIs(destination.outFile, sys.stdout)

    def test_logfile(self) -> None:
        """--logfile names a file that twistd's LogFile rotates."""
        self.patch(textlog, "_LOG_FILES", [])
        path = self.mktemp()
        destination: Any = logDestination({"logfile": path, "nodaemon": True})
        self.addCleanup(destination.close)
        self.assertIsInstance(destination.outFile, LogFile)
        self.assertEqual(destination.outFile.path, os.path.abspath(path))


class ServiceTests(TestCase):
    def test_observerOnApplication(self) -> None:
        """Attached to twistd's application, the service sets its log observer."""
        application = Application("nbecho")
        observer = JSONLinesObserver(io.StringIO())
        JSONLoggingService(observer).setServiceParent(application)
        self.assertIs(application.getComponent(ILogObserver), observer)
        self.assertEqual(len(list(IService(application))), 1)  # type: ignore[call-overload]

    def test_textByDefault(self) -> None:
        """Without --log-format json the application keeps twistd's own logging."""
        options = Options()
        options.parseOptions(["--listen", "tcp:0:interface=127.0.0.1"])
        application = Application("nbecho")
        service = makeService(options)
        # makeService listens already (before twistd would fork).
        self.addCleanup(service.stopService)
        service.setServiceParent(application)
        self.assertIsNone(application.getComponent(ILogObserver, None))

    def test_jsonOption(self) -> None:
        """--log-format json makes the service that installs the JSON observer."""
        options = Options()
        options.parseOptions(
            ["--log-format", "json", "--listen", "tcp:0:interface=127.0.0.1"]
        )
        service = makeService(options)
        self.addCleanup(service.stopService)
        self.assertIsInstance(service, JSONLoggingService)
