"""
The log file nbecho writes, and what happens when it cannot be written.

Three ways a log file goes wrong, and what nbecho does about each:

  - It cannot be opened at start (a read-only file, a directory that does
    not exist): L{checkLogFile} says so in one line while twistd parses its
    options, before it forks a daemon whose traceback nobody would see.
  - Writes fail while serving (a full disk, C{/dev/full}): L{GuardedOutput}
    swallows the error so that no client's connection is disturbed, counts
    the lost lines in L{LOG_WRITE_FAILURES} (the metrics show that count) and
    says so on standard error, at most once a minute.
  - Rotation (C{SIGUSR1}, or a file grown past twistd's 1 MB) renames the
    file: L{RegularLogFile} only ever renames a regular file, never a device
    node or a symbolic link given as the log file.
"""

from __future__ import annotations

import os
import stat
import sys
import time
from collections.abc import Callable
from typing import IO, Any

from twisted.python.logfile import LogFile


def logFilePath(twistdOptions: Any) -> str | None:
    """
    The file twistd's options make nbecho log to, or L{None} for stdout:
    C{--logfile}, except C{-}; stdout for C{--nodaemon} without one; else
    twistd's default C{twistd.log}.
    """
    options = twistdOptions if twistdOptions is not None else {}
    path: str = options.get("logfile") or ""
    if path == "-" or (not path and options.get("nodaemon", True)):
        return None
    return path or "twistd.log"


def checkLogFile(twistdOptions: Any) -> None:
    """
    Make sure the log file twistd's options name can be written, as twistd
    will open it: created if missing, appended to otherwise.

    @raise SystemExit: with one line naming the file and the reason.
    """
    path = logFilePath(twistdOptions)
    if path is None:
        return
    try:
        with open(path, "ab"):
            pass
    except OSError as error:
        reason = error.strerror or str(error)
        raise SystemExit(
            f"twistd nbecho: cannot write the log file {path}: {reason.lower()} "
            "(give a writable file with twistd's --logfile)"
        ) from None


def isRegularFile(path: str) -> bool:
    """
    Whether C{path} itself (not what a symbolic link points to) is a
    regular file.
    """
    try:
        return stat.S_ISREG(os.lstat(path).st_mode)
    except OSError:
        return False


class RegularLogFile(LogFile):
    """
    A L{LogFile} that rotates only a regular file: twistd's own would rename
    C{/dev/full} to C{/dev/full.1} when root gives it as the log file.
    """

    def shouldRotate(self) -> bool:
        return bool(super().shouldRotate()) and isRegularFile(self.path)

    def rotate(self) -> None:
        if isRegularFile(self.path):
            super().rotate()


class WriteFailures:
    """
    The log lines lost to write errors, reported on standard error at most
    once every C{interval} seconds: the first failure at once, and then the
    lines lost since with the next failure after the interval.

    Standard error is the only place left to say it: the log is the file
    that fails.  Under systemd it reaches the journal; a daemon's is
    C{/dev/null}, and the metric (C{nbecho_log_write_errors_total}) remains.
    """

    #: Seconds between two reports on standard error.
    interval = 60.0

    def __init__(
        self,
        now: Callable[[], float] = time.monotonic,
        report: Callable[[str], object] | None = None,
    ) -> None:
        self._now = now
        self._report = report
        #: Log lines (or flushes) that failed since the server started.
        self.count = 0
        self._unreported = 0
        self._lastReport: float | None = None

    def failed(self, path: str, error: OSError) -> None:
        """
        Count one failed write to C{path}, and say so if a minute has passed
        since the last report.
        """
        self.count += 1
        self._unreported += 1
        now = self._now()
        if self._lastReport is not None and now - self._lastReport < self.interval:
            return
        self._lastReport = now
        lost, self._unreported = self._unreported, 0
        reason = (error.strerror or str(error)).lower()
        self._say(
            f"nbecho: cannot write the log to {path}: {reason}; "
            f"{lost} log line{'' if lost == 1 else 's'} lost since the last "
            f"report, {self.count} in total (reported at most once a minute; "
            "still serving)\n"
        )

    def _say(self, text: str) -> None:
        if self._report is not None:
            self._report(text)
            return
        stderr = sys.__stderr__
        if stderr is None:
            return
        try:
            stderr.write(text)
            stderr.flush()
        except (OSError, ValueError):
            pass  # nowhere left to say it; the count remains


#: The write failures of every log file of this process.
LOG_WRITE_FAILURES = WriteFailures()


class GuardedOutput:
    """
    The log's output file, whose write errors are counted in
    L{LOG_WRITE_FAILURES} instead of raised: a log observer that raises is
    reported by Twisted to the other observers, through the same file, for
    every event.
    """

    def __init__(self, outFile: IO[Any], path: str) -> None:
        #: The file written: a L{RegularLogFile}, or standard output.
        self.outFile = outFile
        self._path = path
        self._lineFailed = False

    def write(self, data: str) -> None:
        try:
            self.outFile.write(data)
        except OSError as error:
            self._lineFailed = True
            LOG_WRITE_FAILURES.failed(self._path, error)

    def flush(self) -> None:
        # The observer flushes after each line: a line whose write failed
        # already counted, whether or not its flush fails too.
        lineFailed, self._lineFailed = self._lineFailed, False
        try:
            self.outFile.flush()
        except OSError as error:
            if not lineFailed:
                LOG_WRITE_FAILURES.failed(self._path, error)

    def close(self) -> None:
        self.outFile.close()
