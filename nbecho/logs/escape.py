"""
Client bytes made safe for an operator's terminal and log files.

A client controls every byte it sends; written raw into a log, escape
sequences could rewrite the operator's terminal and invalid UTF-8 could break
log shippers.  Everything that is not printable text is shown as an escape:
C{\\xNN} for a byte, C{\\uNNNN} for a character.
"""

from __future__ import annotations

import re
from typing import Union

#: A message as the server holds it: its bytes, or, for a long one, a view
#: of the read it came in (logging shows at most L{LOG_LIMIT} bytes of it).
Message = Union[bytes, memoryview]

#: Bytes longer than this are cut in the log; the full length is still shown.
LOG_LIMIT = 200

# Printable ASCII other than the backslash passes through untouched; anything
# else is looked at one character at a time.
_SUSPECT = re.compile(r"[^\x20-\x5b\x5d-\x7e]")


def _escapeChar(match: re.Match[str]) -> str:
    char = match.group()
    code = ord(char)
    if char == "\\":
        return "\\\\"
    if 0xDC80 <= code <= 0xDCFF:
        # A byte that was not valid UTF-8, kept by surrogateescape.
        return f"\\x{code - 0xDC00:02x}"
    if char.isprintable():
        return char
    if code < 0x80:
        return f"\\x{code:02x}"
    if code < 0x10000:
        return f"\\u{code:04x}"
    return f"\\U{code:08x}"


def escapeMessage(data: Message, limit: int = LOG_LIMIT) -> str:
    """
    Return C{data} as printable text, cut to C{limit} bytes.

    Valid UTF-8 that prints stays readable; ASCII control characters (ESC,
    NUL, ...) and bytes that are not UTF-8 become C{\\xNN} escapes, other
    unprintable characters (C1 codes, bidirectional overrides, ...)
    C{\\uNNNN}, and a backslash becomes C{\\\\}, so the result is never
    ambiguous: a C1 character is not mistaken for the invalid byte of the same
    value.  A cut message ends in C{...} and its full length.
    """
    shown = bytes(data[:limit])
    text = _SUSPECT.sub(_escapeChar, shown.decode("utf-8", "surrogateescape"))
    if len(data) > limit:
        text += f"... ({len(data)} bytes)"
    return text
