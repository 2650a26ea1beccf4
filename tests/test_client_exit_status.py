"""
The real C{nbecho-client}'s exit status when the server ends the session
first: lines sent whose echoes never came give status 3 and a count, however
fast the input came, over TCP; over UDP each line is its own exchange.
"""

from __future__ import annotations

import pytest

from tests._clients import lines, runClient
from tests._servers import RunningServer, ServerFactory


@pytest.mark.parametrize(
    "before, after, unechoed",
    [(0, 5, "5 lines"), (3, 3, "3 lines"), (2, 1, "1 line")],
    ids=["exitFirst", "exitInTheMiddle", "oneLine"],
)
def test_unechoedLinesAreCounted(
    server: RunningServer, before: int, after: int, unechoed: str
) -> None:
    """
    Piped at once, lines after the server's exit word are sent but never
    echoed: status 3 and one line saying how many, after every echo that
    came.
    """
    stdin = lines(before) + b"exit\n" + lines(after)
    for attempt in range(3):
        result = runClient(server.port, stdin, "--exit-word", "")
        assert result.stdout == lines(before) + b"exit\n", attempt
        assert result.returncode == 3, (attempt, result.stderr)
        assert result.stderr.decode().splitlines() == [
            f"nbecho-client: 127.0.0.1:{server.port}: the server closed the"
            f" connection with {unechoed} not echoed"
        ]


def test_everyLineEchoedIsZero(server: RunningServer) -> None:
    """
    Input that ends with the server's exit word: every line sent came back,
    so the status is 0 even though the server closed.
    """
    result = runClient(server.port, b"1\n2\nexit\n", "--exit-word", "")
    assert (result.returncode, result.stdout, result.stderr) == (
        0,
        b"1\n2\nexit\n",
        b"",
    )


def test_udpHasNoSessionToEnd(nbechoServer: ServerFactory) -> None:
    """
    Over UDP the server's exit word ends nothing: every line after it is
    echoed too, and the status is 0.
    """
    server = nbechoServer("--listen", "udp:0:interface=127.0.0.1")
    stdin = lines(3) + b"exit\n" + lines(3)
    result = runClient(server.port, stdin, "--udp", "--exit-word", "")
    assert (result.returncode, result.stdout, result.stderr) == (0, stdin, b"")
