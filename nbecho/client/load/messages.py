"""
The messages a load run sends: their sizes, their bytes, and the check of
their echoes.
"""

from __future__ import annotations

import random
from collections.abc import Sequence

#: Payload bytes for line framing: letters and digits only, so that no
#: echo server sees a line end, a carriage return or a control character.
_LINE_ALPHABET = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"


class SizeError(ValueError):
    """
    A C{--size} that does not parse; its text names the fix.
    """


def parseSizes(text: str) -> tuple[str, tuple[int, ...]]:
    """
    Read C{--size}: C{N} (every message N bytes), C{A,B,C} (one of these,
    picked at random for each message) or C{MIN-MAX} (uniform between).

    @return: C{("choice", sizes)} or C{("range", (MIN, MAX))}.
    @raise SizeError: if C{text} is none of these.
    """
    hint = "--size takes N, N,M,... or MIN-MAX, in bytes from 1"
    try:
        if "-" in text:
            low, high = (int(part) for part in text.split("-", 1))
            if not 1 <= low <= high:
                raise SizeError(f"{hint}, not {text!r}")
            return "range", (low, high)
        sizes = tuple(int(part) for part in text.split(","))
    except ValueError:
        raise SizeError(f"{hint}, not {text!r}") from None
    if not sizes or min(sizes) < 1:
        raise SizeError(f"{hint}, not {text!r}")
    return "choice", sizes


class Messages:
    """
    Makes the messages of a run: each a payload of the drawn size, followed
    by a line feed when the framing is C{line}.

    Payloads are cut from a block of random bytes made once, so that making
    a message costs a slice, not a random draw per byte; where they start
    varies so that an echo mixed up with another message's does not match.

    With line framing a payload never holds a line feed and never equals
    C{exitWord}, which would end the session on an nbecho server.
    """

    def __init__(
        self,
        sizes: tuple[str, Sequence[int]],
        framing: str = "line",
        exitWord: bytes = b"exit",
        seed: int = 0,
    ) -> None:
        self.kind, self.sizes = sizes[0], tuple(sizes[1])
        self.framing = framing
        self.exitWord = exitWord
        self.random = random.Random(seed)
        largest = max(self.sizes)
        length = max(4 * largest, 65536)
        if framing == "line":
            self.block = bytes(
                self.random.choice(_LINE_ALPHABET) for _ in range(length)
            )
        else:
            self.block = self.random.randbytes(length)
        self.position = 0

    def size(self) -> int:
        """
        The payload size of the next message.
        """
        if self.kind == "range":
            return self.random.randint(self.sizes[0], self.sizes[1])
        if len(self.sizes) == 1:
            return self.sizes[0]
        return self.random.choice(self.sizes)

    def next(self) -> bytes:
        """
        The bytes of the next message, framing included.
        """
        size = self.size()
        start = self.position
        if start + size > len(self.block):
            start = 0
        self.position = (start + 7919) % (len(self.block) - size + 1)
        payload = self.block[start : start + size]
        if self.framing != "line":
            return payload
        if payload == self.exitWord:
            payload = b"x" + payload[1:] if payload[:1] != b"x" else b"y" + payload[1:]
        return payload + b"\n"
