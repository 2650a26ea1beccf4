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
