"""
Tests for L{nbecho.logs.logfile}: the start-up check, write failures counted
and reported once a minute, and rotation of regular files only.
"""

from __future__ import annotations

import errno
import os

from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from nbecho.logs import logfile
from nbecho.logs.logfile import (
    GuardedOutput,
    RegularLogFile,
    WriteFailures,
    checkLogFile,
    isRegularFile,
    logFilePath,
)

_FULL = OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


class _FailingFile:
    """
    A file whose writes, flushes or both fail as on a full disk.
    """

    def __init__(self, failWrite: bool, failFlush: bool) -> None:
        self.failWrite = failWrite
        self.failFlush = failFlush
        self.written: list[str] = []

    def write(self, data: str) -> None:
        if self.failWrite:
            raise _FULL
        self.written.append(data)

    def flush(self) -> None:
        if self.failFlush:
            raise _FULL

    def close(self) -> None:
        pass


class LogFilePathTests(SynchronousTestCase):
    def test_paths(self) -> None:
        """
        The file twistd's options make nbecho log to: none for stdout, and
        twistd's own default for a daemon without --logfile.
        """
        self.assertIsNone(logFilePath({"logfile": "-", "nodaemon": True}))
        self.assertIsNone(logFilePath({"logfile": None, "nodaemon": True}))
        self.assertIsNone(logFilePath(None))
        self.assertEqual(
            logFilePath({"logfile": None, "nodaemon": False}), "twistd.log"
        )
        self.assertEqual(logFilePath({"logfile": "a.log", "nodaemon": True}), "a.log")


class CheckLogFileTests(SynchronousTestCase):
    def test_missingDirectory(self) -> None:
        """
        A log file in a directory that does not exist is one line naming
        the file, the reason and the fix.
        """
        path = os.path.join(self.mktemp(), "nbecho.log")
        error = self.assertRaises(
            SystemExit, checkLogFile, {"logfile": path, "nodaemon": True}
        )
        self.assertEqual(
            str(error),
            f"twistd nbecho: cannot write the log file {path}: no such file or "
            "directory (give a writable file with twistd's --logfile)",
        )

    def test_writable(self) -> None:
        """
        A writable log file passes, created as twistd would create it, and
        an existing one is left as it was.
        """
        path = self.mktemp()
        checkLogFile({"logfile": path, "nodaemon": False})
        self.assertEqual(os.path.getsize(path), 0)
        with open(path, "w") as existing:
            existing.write("kept\n")
        checkLogFile({"logfile": path, "nodaemon": False})
        with open(path) as existing:
            self.assertEqual(existing.read(), "kept\n")

    def test_stdout(self) -> None:
        """
        A log on standard output has no file to check.
        """
        checkLogFile({"logfile": "-", "nodaemon": True})


class WriteFailuresTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.clock = Clock()
        self.reports: list[str] = []
        self.failures = WriteFailures(self.clock.seconds, self.reports.append)

    def test_firstAtOnceThenOnceAMinute(self) -> None:
        """
        The first failure is reported at once; later ones are counted, and
        the next failure after a minute reports how many lines were lost.
        """
        self.failures.failed("/var/log/nbecho.log", _FULL)
        self.assertEqual(
            self.reports,
            [
                "nbecho: cannot write the log to /var/log/nbecho.log: no space "
                "left on device; 1 log line lost since the last report, 1 in "
                "total (reported at most once a minute; still serving)\n"
            ],
        )
        for _ in range(5):
            self.clock.advance(10)
            self.failures.failed("/var/log/nbecho.log", _FULL)
        self.assertEqual(len(self.reports), 1)
        self.clock.advance(10)
        self.failures.failed("/var/log/nbecho.log", _FULL)
        self.assertEqual(len(self.reports), 2)
        self.assertIn("; 6 log lines lost since the last report, 7 in", self.reports[1])
        self.assertEqual(self.failures.count, 7)


class GuardedOutputTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.failures = WriteFailures(Clock().seconds, lambda text: None)
        self.patch(logfile, "LOG_WRITE_FAILURES", self.failures)

    def test_failedWriteCountsOnce(self) -> None:
        """
        A line whose write fails is counted once, whether or not its flush
        fails too, and nothing is raised to the log observer.
        """
        output = GuardedOutput(_FailingFile(True, True), "full.log")  # type: ignore[arg-type]
        output.write("line\n")
        output.flush()
        self.assertEqual(self.failures.count, 1)

    def test_failedFlushCounts(self) -> None:
        """
        A buffered line lost when it is flushed is counted.
        """
        output = GuardedOutput(_FailingFile(False, True), "-")  # type: ignore[arg-type]
        output.write("line\n")
        output.flush()
        output.write("line\n")
        output.flush()
        self.assertEqual(self.failures.count, 2)

    def test_success(self) -> None:
        """
        Lines written are passed on and not counted.
        """
        target = _FailingFile(False, False)
        output = GuardedOutput(target, "ok.log")  # type: ignore[arg-type]
        output.write("line\n")
        output.flush()
        self.assertEqual((target.written, self.failures.count), (["line\n"], 0))


class RegularLogFileTests(SynchronousTestCase):
    def test_rotatesRegularFile(self) -> None:
        """
        A regular log file is rotated as twistd rotates its own.
        """
        path = os.path.abspath(self.mktemp())
        logFile = RegularLogFile.fromFullPath(path)
        self.addCleanup(logFile.close)
        logFile.write("before\n")
        logFile.rotate()
        self.assertTrue(os.path.exists(path + ".1"))

    def test_leavesOtherFiles(self) -> None:
        """
        A log file path that is not a regular file itself (a symbolic link
        here; a device node likewise) is never renamed, on a signal or at
        the size limit.
        """
        target = os.path.abspath(self.mktemp())
        path = os.path.abspath(self.mktemp())
        os.symlink(target, path)
        logFile = RegularLogFile.fromFullPath(path, rotateLength=4)
        self.addCleanup(logFile.close)
        logFile.write("more than four bytes\n")
        logFile.write("again\n")
        logFile.rotate()
        self.assertEqual(
            (os.path.islink(path), os.path.exists(path + ".1")), (True, False)
        )
        self.assertFalse(isRegularFile(path))
        self.assertFalse(isRegularFile(os.devnull))
        self.assertTrue(isRegularFile(target))
