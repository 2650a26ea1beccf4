"""
Messages the size benchmark clients send (64 B to 128 KiB), with default
options: every byte comes back in both framings, the exit word ends a
session only as a line of its own, and the line limit's answer names the
option that raises it.
"""

from __future__ import annotations

import pytest

from tests._clients import peerOf, sendAndHalfClose
from tests._servers import ServerFactory

#: vmbench's sizes, and a line right at the default limit (LF included).
SIZES = (64, 1024, 10 * 1024, 100 * 1024, 128 * 1024 + 1)


def _messages(size: int, count: int) -> bytes:
    """
    C{count} numbered lines of C{size} bytes, LF included, made of x and
    the exit word (as vmbench's payload is all x): a lost, repeated or
    reordered byte shows, and so would an exit word taken from inside a line.
    """
    out = []
    for number in range(count):
        head = b"%06d exit " % (number,)
        out.append((head + b"x" * size)[: size - 1] + b"\n")
    return b"".join(out)


@pytest.mark.parametrize("framing", ["line", "raw"])
def test_everyByteAtEverySize(nbechoServer: ServerFactory, framing: str) -> None:
    """
    At every size, 64 B to the default line limit, fifteen messages sent at
    once per connection come back byte for byte, in both framings.
    """
    server = nbechoServer("--framing", framing, "--quiet")
    for size in SIZES:
        payload = _messages(size, 15)
        with server.connect() as sock:
            answer = sendAndHalfClose(sock, payload)
        assert len(answer) == len(payload), (framing, size)
        assert answer == payload, (framing, size)


def test_exitWordOnlyAsItsOwnLine(nbechoServer: ServerFactory) -> None:
    """
    With default options, 100 KiB lines that start with, contain and end
    with the exit word are data; the exit word as a line of its own is
    echoed and ends the session, and what follows it is not echoed.
    """
    server = nbechoServer()
    big = b"exit" + b"x" * (100 * 1024 - 10) + b"exit\n"
    payload = big * 3 + b"exit\r\n"
    with server.connect() as sock:
        peer = peerOf(sock)
        answer = sendAndHalfClose(sock, payload + b"after\n")
    assert answer == payload
    server.waitForLog(rf"close {peer} \(exit word\): 4 messages")


def test_lineTooLongNamesTheOption(nbechoServer: ServerFactory) -> None:
    """
    A line one byte over the default limit gets an answer naming the
    option that raises it, and the connection closes.
    """
    server = nbechoServer()
    with server.connect() as sock:
        peer = peerOf(sock)
        answer = sendAndHalfClose(sock, b"x" * (128 * 1024 + 1) + b"\n")
    assert answer == (
        b"error: line too long (limit 131072 bytes; raise it with --max-line-length)\n"
    )
    server.waitForLog(rf"Line too long from {peer}: 131073 bytes, limit 131072")
