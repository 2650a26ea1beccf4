"""
End-to-end tests of the reactor C{twistd nbecho} runs on: nbecho's
C{EchoEPollReactor} (Twisted's epoll reactor with cheaper dispatch of I/O
events) unless twistd is given C{--reactor}, then the one asked for; either
way it echoes, with worker processes too.
"""

from __future__ import annotations

import re
import socket

import pytest

from tests._clients import assertEchoes
from tests._servers import ALL_CONNECTION_LINES, RunningServer, ServerFactory

#: twistd's options, and the reactor class its start-up log then names.
CHOICES = [
    pytest.param((), "nbecho._twisted.EchoEPollReactor", id="default"),
    pytest.param(
        ("--reactor", "epoll"),
        "twisted.internet.epollreactor.EPollReactor",
        id="reactor-epoll",
    ),
]


def reactorClass(server: RunningServer) -> str:
    """
    The reactor class twistd's start-up log names.
    """
    (line,) = server.waitForLog(r"reactor class: (\S+)\.$")
    return line.group(1)


def servingProcesses(server: RunningServer, expected: int) -> set[str]:
    """
    Open connections, each checked with an echo and held (so that a busy
    process leaves the next accept to another), until C{expected}
    processes have logged an C{Accept}, at most 300; which did: C{""} for
    twistd's own, C{" worker N"} for a worker.
    """
    served: set[str] = set()
    held: list[socket.socket] = []
    try:
        for i in range(300):
            sock = server.connect()
            held.append(sock)
            assertEchoes(sock, b"client %d\n" % i)
            server.waitForLog(r"\] Accept ", len(held))
            served = set(
                re.findall(r"\[nbecho#info( worker \d)?\] Accept", server.log())
            )
            if len(served) >= expected:
                break
    finally:
        for sock in held:
            sock.close()
    return served


@pytest.mark.parametrize(("twistdArgs", "expected"), CHOICES)
def test_reactorEchoes(
    nbechoServer: ServerFactory, twistdArgs: tuple[str, ...], expected: str
) -> None:
    """
    twistd's start-up log names the reactor, nbecho's own unless
    C{--reactor} chose another, and on it two clients at once each get
    their lines back, small and large.
    """
    server = nbechoServer(twistdArgs=twistdArgs)
    assert reactorClass(server) == expected, server.log()
    with server.connect() as first, server.connect() as second:
        for i in range(3):
            assertEchoes(first, b"first %d\n" % i)
            assertEchoes(second, b"second %d\n" % i)
        assertEchoes(first, b"x" * 100_000 + b"\n")
    server.waitForLog(r"\] close ", 2)
    assert "Traceback" not in server.log(), server.log()


@pytest.mark.parametrize(("twistdArgs", "expected"), CHOICES)
def test_workersServe(
    nbechoServer: ServerFactory, twistdArgs: tuple[str, ...], expected: str
) -> None:
    """
    With C{--workers 2}, on either reactor, twistd's process and the
    worker both accept and echo.
    """
    server = nbechoServer(
        "--workers", "2", *ALL_CONNECTION_LINES, listeners=2, twistdArgs=twistdArgs
    )
    assert reactorClass(server) == expected, server.log()
    assert servingProcesses(server, 2) == {"", " worker 2"}, server.log()
    assert "Traceback" not in server.log(), server.log()
