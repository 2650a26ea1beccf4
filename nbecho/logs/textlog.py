"""
twistd's text log, written for a fraction of the CPU.

With per-message logging on, every message is a C{twisted.logger} event, and
twistd's text observer spends more on it than the echo itself: it parses the
event's format string with L{string.Formatter} every time and formats the
time with C{datetime.strftime}, about 15 µs an event here.
L{fastClassicFormat} produces the very same line as Twisted's
L{formatEventAsClassicLogText} (a test compares them), but parses each format
string once, formats each second's timestamp once, and hands anything
unusual (tracebacks, legacy or flattened events, attribute or call fields,
conversions) to Twisted's own formatter.

The observer is installed the way twistd documents for a custom observer:
as the C{--logger} factory, chosen in C{twistd nbecho}'s option parsing only
when the operator gave no C{--logger} or C{--syslog} of their own.  It
writes where twistd would have written (C{--logfile}, stdout, or
C{twistd.log}), with the same C{SIGUSR1} rotation.  Every event still goes
through C{twisted.logger}'s publisher, so other observers see them all.
"""

from __future__ import annotations

import string
import sys
from collections.abc import Callable
from typing import IO, Any, cast

from twisted.logger import (
    FileLogObserver,
    ILogObserver,
    LogEvent,
    formatEventAsClassicLogText,
    formatTime,
    timeFormatRFC3339,
)

from nbecho.logs.connlimit import TwistedAcceptLines
from nbecho.logs.logfile import (
    GuardedOutput,
    RegularLogFile,
    checkLogFile,
    logFilePath,
)

_Compiled = tuple[tuple[str, str, str], ...]

_formatter = string.Formatter()
_compiled: dict[str, _Compiled | None] = {}


def _compile(format: str) -> _Compiled | None:
    """
    The literal text and plain fields of C{format}, or L{None} when it uses
    anything but C{{name}} and C{{name:spec}}.
    """
    parts = []
    try:
        parsed = list(_formatter.parse(format))
    except ValueError:
        return None
    for literal, field, spec, conversion in parsed:
        if field is None:
            parts.append((literal, "", ""))
            continue
        if conversion or not field.isidentifier() or "{" in (spec or ""):
            return None
        parts.append((literal, field, spec or ""))
    return tuple(parts)


class _Stamps:
    """
    The RFC 3339 timestamp of the last second seen: log lines share it.
    """

    second: int | None = None
    text = ""


def fastClassicFormat(event: LogEvent) -> str | None:
    """
    The line L{formatEventAsClassicLogText} makes of C{event}, with the
    default time format.
    """
    format = event.get("log_format")
    when = event.get("log_time")
    if (
        type(format) is not str
        or type(when) is not float
        or "log_failure" in event
        or "log_flattened" in event
    ):
        return formatEventAsClassicLogText(event)
    try:
        compiled = _compiled[format]
    except KeyError:
        compiled = _compiled[format] = _compile(format)
    if compiled is None:
        return formatEventAsClassicLogText(event)
    try:
        pieces = []
        for literal, field, spec in compiled:
            pieces.append(literal)
            if field:
                pieces.append(format_(event[field], spec))
    except Exception:  # noqa: BLE001 - Twisted reports unformattable events
        return formatEventAsClassicLogText(event)
    text = "".join(pieces)
    if not text:
        return None
    second = int(when)
    if second != _Stamps.second or when < 0:
        _Stamps.text = formatTime(when, timeFormatRFC3339)
        _Stamps.second = second
    system = event.get("log_system")
    if system is None:
        level = event.get("log_level")
        system = "{}#{}".format(
            event.get("log_namespace", "-"), "-" if level is None else level.name
        )
    elif type(system) is not str:
        return formatEventAsClassicLogText(event)
    line = f"{_Stamps.text} [{system}] {text}"
    if "\n" in line:
        line = line.replace("\n", "\n\t")
    return line + "\n"


format_ = format


def fastTextFileLogObserver(outFile: IO[Any]) -> ILogObserver:
    """
    Like L{twisted.logger.textFileLogObserver}, with L{fastClassicFormat}.
    """
    return FileLogObserver(outFile, fastClassicFormat)


class _TwistdLog:
    """
    Where twistd would write its log, noted while options are parsed.
    """

    logfile = ""
    nodaemon = True
    #: Whether Twisted's own lines about accepting connections are limited.
    limitAcceptLines = True


def logDestination(twistdOptions: Any) -> IO[Any]:
    """
    Where twistd would write its log: C{--logfile} (L{rotateLogFiles} rotates
    it on C{SIGUSR1}, as twistd rotates its own); stdout for C{-} or for
    C{--nodaemon} without C{--logfile}; else C{twistd.log}.  Both of nbecho's
    observers (this fast text one and C{--log-format json}) replace twistd's,
    so they write here, through L{GuardedOutput}: a write that fails is
    counted and reported, never raised.
    """
    path = logFilePath(twistdOptions)
    if path is None:
        # GuardedOutput has all of a file the log observers use.
        return cast(IO[Any], GuardedOutput(sys.stdout, "standard output"))
    logFile = RegularLogFile.fromFullPath(path)
    _LOG_FILES.append(logFile)
    return cast(IO[Any], GuardedOutput(logFile, path))


#: The log files L{logDestination} opened, for L{reopenLogFiles} and
#: L{rotateLogFiles}.
_LOG_FILES: list[RegularLogFile] = []


def rotateLogFiles() -> None:
    """
    Rotate the log files nbecho writes, as twistd rotates its own on
    C{SIGUSR1} (the server's signal handler calls this).
    """
    for logFile in _LOG_FILES:
        if not logFile.closed:
            logFile.rotate()


def reopenLogFiles() -> list[str]:
    """
    Reopen the log files nbecho writes, after C{logrotate} (or an operator)
    moved them away, so that new lines go to a new file at the same path.

    @return: the paths reopened; none when the log goes to stdout or
        through an observer of twistd's own (C{--logger}, C{--syslog}).
    @raise OSError: if a file cannot be opened again; the old one is still
        written then.
    """
    for logFile in _LOG_FILES:
        # LogFile.reopen closes before it opens: make sure the path can be
        # opened first, so that a failure leaves the old file in use.
        with open(logFile.path, "ab"):
            pass
        logFile.reopen()
    return [logFile.path for logFile in _LOG_FILES]


def observerFactory() -> ILogObserver:
    """
    twistd's C{--logger} factory: the fast text observer on twistd's log
    destination, with Twisted's own lines about accepting connections
    rate-limited (L{nbecho.logs.connlimit.TwistedAcceptLines}).
    """
    from twisted.internet import reactor

    observer = fastTextFileLogObserver(
        logDestination({"logfile": _TwistdLog.logfile, "nodaemon": _TwistdLog.nodaemon})
    )
    return TwistedAcceptLines(observer, _TwistdLog.limitAcceptLines, reactor)


def useFastTextLog(options: Any) -> None:
    """
    Make twistd log through L{observerFactory} when C{options} (nbecho's)
    belong to a twistd command line that chose no observer of its own.
    """
    twistd = getattr(options, "parent", None)
    if twistd is None or "logger" not in twistd or twistd["logger"] is not None:
        return
    if twistd.get("syslog") or options.get("log-format", "text") != "text":
        return
    if twistd.get("logfile") == "-" and not twistd.get("nodaemon"):
        return  # twistd refuses this itself
    _TwistdLog.logfile = twistd.get("logfile") or ""
    _TwistdLog.nodaemon = bool(twistd.get("nodaemon"))
    settings = options.get("settings")
    _TwistdLog.limitAcceptLines = bool(
        getattr(settings, "logConnectionRateTotal", 1)
        or getattr(settings, "logConnectionRate", 1)
    )
    twistd["logger"] = _FACTORY


_factory: Callable[[], ILogObserver] = observerFactory
_FACTORY = f"{_factory.__module__}.{_factory.__name__}"


def checkLogDestination(options: Any) -> None:
    """
    When nbecho writes twistd's log (its text observer, or C{--log-format
    json}), check that the log file can be written, while twistd parses its
    options: twistd opens it only after the plugin made its service, and
    a daemon's traceback would reach nobody.

    @raise SystemExit: with one line, for a log file that cannot be written.
    """
    twistd = getattr(options, "parent", None)
    if twistd is None or "logger" not in twistd or twistd.get("syslog"):
        return
    ours = twistd["logger"] == _FACTORY or (
        twistd["logger"] is None and options.get("log-format") == "json"
    )
    if ours:
        checkLogFile(twistd)
