"""
What the stress and fault tests share: a server that takes a burst of
connections, and other clients that keep echoing while a test misbehaves,
proving that everyone else is still served.

Plain blocking sockets and threads drive the clients: the point is to load
the server, and a second reactor in the test process would only share its
one core with it.
"""

from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from tests._clients import assertEchoes
from tests._servers import RunningServer, ServerFactory

#: Upper bound for any single wait in these tests; none should come near it.
PATIENCE = 60.0

#: Where the stress servers listen: a backlog for bursts of connections.
LISTEN = ("--listen", "tcp:0:interface=127.0.0.1:backlog=1024")


def stressServer(
    nbechoServer: ServerFactory,
    *options: str,
    fileLimit: tuple[int, int] | None = None,
) -> RunningServer:
    """
    A server with C{options} on a free loopback port, waited on with
    L{PATIENCE}, with C{fileLimit} as its (soft, hard) C{RLIMIT_NOFILE}.
    """
    return nbechoServer(*LISTEN, *options, timeout=PATIENCE, fileLimit=fileLimit)


def echoLine(server: RunningServer, line: bytes) -> None:
    """
    One fresh client gets C{line} back.
    """
    with server.connect() as sock:
        assertEchoes(sock, line + b"\n")


def assertHealthy(server: RunningServer) -> None:
    """
    Still running, still echoing, nothing unhandled in the log.
    """
    assert server.process.poll() is None, server.log()[-2000:]
    echoLine(server, b"still there?")
    log = server.logBytes()
    assert b"Traceback" not in log
    assert b"Unhandled" not in log


def memory(server: RunningServer) -> dict[str, int]:
    """
    C{VmRSS} and C{VmHWM} (peak RSS) of the server, in bytes.
    """
    figures = {}
    for line in Path(f"/proc/{server.pid}/status").read_text().splitlines():
        name, _, value = line.partition(":")
        if name in ("VmRSS", "VmHWM"):
            figures[name] = int(value.split()[0]) * 1024
    return figures


def cpuSeconds(server: RunningServer) -> float:
    """
    The CPU time (user + system) the server has used so far, in seconds.
    """
    stat = Path(f"/proc/{server.pid}/stat").read_text()
    # Fields after the command name, which is in parentheses and may hold
    # spaces: utime and stime are the 14th and 15th fields of the line.
    fields = stat[stat.rindex(")") + 2 :].split()
    ticks = int(fields[11]) + int(fields[12])
    return ticks / os.sysconf("SC_CLK_TCK")


def openFiles(server: RunningServer) -> int:
    """
    How many file descriptors the server has open (sockets included).
    """
    return len(os.listdir(f"/proc/{server.pid}/fd"))


def resetPeak(server: RunningServer) -> None:
    """
    Make C{VmHWM} start again from the current RSS (Linux >= 4.0).
    """
    Path(f"/proc/{server.pid}/clear_refs").write_text("5")


class Bystander(threading.Thread):
    """
    Another client, echoing line after line while a test misbehaves: it
    proves that the others are still served, and how soon.

    @ivar slowest: the longest round trip it saw, in seconds.
    """

    def __init__(
        self,
        server: RunningServer,
        connect: Callable[[], socket.socket] | None = None,
    ) -> None:
        super().__init__(daemon=True)
        self.server = server
        self.connect = connect or server.connect
        self.stopping = threading.Event()
        self.roundTrips = 0
        self.slowest = 0.0
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            with self.connect() as sock:
                # At least one round trip, however soon the test ends.
                while self.roundTrips < 100_000:
                    started = time.monotonic()
                    assertEchoes(sock, b"bystander %d\n" % (self.roundTrips,))
                    self.slowest = max(self.slowest, time.monotonic() - started)
                    self.roundTrips += 1
                    if self.stopping.wait(0.01):
                        break
        except BaseException as error:  # noqa: BLE001 - reported by finish()
            self.error = error

    def finish(self) -> None:
        """
        Stop, and fail unless every round trip succeeded and some happened.
        """
        self.stopping.set()
        self.join(PATIENCE)
        assert self.error is None, self.error
        assert self.roundTrips > 0


@contextmanager
def bystanders(
    server: RunningServer,
    count: int = 2,
    connect: Callable[[], socket.socket] | None = None,
) -> Iterator[Sequence[Bystander]]:
    """
    C{count} other clients echoing during the block (connected by
    C{connect}, by default to the server's first listener), checked at its
    end.
    """
    running = [Bystander(server, connect) for _ in range(count)]
    for bystander in running:
        bystander.start()
    yield running
    for bystander in running:
        bystander.finish()
