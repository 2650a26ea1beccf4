"""
Option values as C{twistd nbecho} takes them: plain ASCII decimal numbers
within documented bounds, and an exit word that can match a message.

Python's own C{int()} and C{float()} take much more (C{1_000}, C{1e-9},
digits of other scripts, C{inf}); a value that could never work is refused
here with one usage line rather than accepted and misbehaving later.
"""

from __future__ import annotations

import os
import re

from twisted.python import usage

from nbecho.settings import (
    DEFAULT_EXIT_WORD,
    MAX_COUNT,
    MAX_SECONDS,
    MIN_SECONDS,
    exitWordProblem,
)

#: Plain ASCII decimal numbers: no signs, exponents, underscores or digits
#: of other scripts, which Python's own int() and float() would take.
_WHOLE = re.compile(r"[0-9]{1,20}\Z")
_DECIMAL = re.compile(r"(?:[0-9]{1,20}(?:\.[0-9]{0,20})?|\.[0-9]{1,20})\Z")


def shown(text: str, limit: int = 40) -> str:
    """
    C{text} quoted for a one-line message, cut if longer than C{limit}.
    """
    return repr(text if len(text) <= limit else text[:limit] + "...")


def number(option: str, text: str, low: int, high: int = MAX_COUNT) -> int:
    """
    C{text} as a whole number from C{low} to C{high}, or a usage error: the
    ceiling keeps values that could never work (C{10**30} connections) out.
    """
    value = int(text) if _WHOLE.match(text) else None
    if value is None or not low <= value <= high:
        raise usage.UsageError(
            f"--{option} takes a whole number from {low} to {high}, not {shown(text)}"
        )
    return value


def seconds(option: str, text: str) -> float:
    """
    C{text} as a timeout: 0 (off) or L{nbecho.settings.MIN_SECONDS} to
    L{nbecho.settings.MAX_SECONDS}; a nanosecond would close every
    connection before it could be used.
    """
    value = float(text) if _DECIMAL.match(text) else -1.0
    if not (value == 0 or MIN_SECONDS <= value <= MAX_SECONDS):
        raise usage.UsageError(
            f"--{option} takes 0 or a number of seconds from {MIN_SECONDS:g} to "
            f"{MAX_SECONDS:g}, not {shown(text)}"
        )
    return value


def exitWord(text: str | None, framing: str, maxLineLength: int) -> bytes:
    """
    The exit word from C{--exit-word}: the bytes given on the command line,
    UTF-8 or not; if none is given, line framing's default, and none for raw
    framing, which is binary-safe.
    """
    if text is None:
        return DEFAULT_EXIT_WORD if framing == "line" else b""
    word = os.fsencode(text)
    problem = exitWordProblem(word)
    if problem is not None:
        raise usage.UsageError(f"--exit-word {problem}")
    if framing == "line" and len(word) > maxLineLength:
        raise usage.UsageError(
            "--exit-word is longer than --max-line-length: no line can equal it"
        )
    return word


#: The limits' options of C{twistd nbecho} (L{nbecho.server.factory},
#: L{nbecho.server.connection}, L{nbecho.server.service}), in one block.
LIMIT_PARAMETERS = [
    [
        "idle-timeout",
        None,
        "300",
        "Close a connection that sent nothing for this many seconds "
        "(0.1 to 86400); 0: never.",
    ],
    [
        "max-connections",
        None,
        "10000",
        "Refuse connections beyond this many open ones (at most 1000000); 0: no limit.",
    ],
    [
        "max-per-peer",
        None,
        "0",
        "Refuse connections beyond this many open ones from one client IP "
        "(at most 1000000); 0: no limit.",
    ],
    [
        "log-rate",
        None,
        "100",
        "Log at most this many messages a second per connection, and "
        "summarise the rest; 0: no limit.",
    ],
    [
        "log-rate-total",
        None,
        "1000",
        "Log at most this many messages a second from all connections "
        "together, and summarise the rest; 0: no limit.",
    ],
    [
        "log-connection-rate",
        None,
        "10",
        "Log at most this many connections a second (their Accept, close and "
        "refusal lines) from one client address, and summarise the rest; "
        "0: no limit.",
    ],
    [
        "log-connection-rate-total",
        None,
        "100",
        "Log at most this many connections a second from all client "
        "addresses together, and summarise the rest; 0: no limit.",
    ],
    [
        "proxy-timeout",
        None,
        "5",
        "Close a haproxy: connection that has not sent its whole PROXY header "
        "this many seconds after connecting; 0: only --idle-timeout applies.",
    ],
    [
        "shutdown-grace",
        None,
        "5",
        "On SIGTERM/SIGINT, seconds open connections get to receive their "
        "echoes before they are cut (0, or 0.1 to 86400).",
    ],
]
