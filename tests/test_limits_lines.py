"""
The server CPU a long line costs, with C{--max-line-length} raised: linear in
the line's length, whether it arrives in small reads or at full speed, so
that a client sending one long line cannot buy seconds of the server's CPU
with each megabyte.

The bounds are generous, several times what a linear implementation needs
on a loaded two-core machine, and far below what re-copying and re-scanning
the partial line on every read costs.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator

import pytest

from tests._servers import RunningServer, ServerFactory
from tests._stress import PATIENCE, cpuSeconds

pytestmark = pytest.mark.stress

MiB = 1 << 20


def _line(size: int) -> bytes:
    """
    A line of C{size} bytes, its LF included.
    """
    line = bytes(range(ord("a"), ord("z") + 1)) * (size // 26 + 1)
    return line[: size - 1] + b"\n"


def _settled(server: RunningServer) -> float:
    """
    Wait until the server has done with what it was sent (its CPU time stops
    growing) and return its CPU time.
    """
    deadline = time.monotonic() + PATIENCE
    last = cpuSeconds(server)
    while time.monotonic() < deadline:
        time.sleep(0.3)
        now = cpuSeconds(server)
        if now - last < 0.02:
            return now
        last = now
    raise AssertionError("the server never went idle")


def _costOf(
    server: RunningServer,
    line: bytes,
    writes: Iterator[bytes],
    bound: float,
    since: dict[str, float] | None = None,
) -> float:
    """
    Send C{writes} (which add up to C{line}) on a new connection, check that
    C{line} comes back whole and return the server CPU seconds spent since
    C{since["cpu"]} (by default: the first write); fail as soon as they
    exceed C{bound}.
    """
    received = bytearray()
    problems: list[BaseException] = []

    def receive(sock: socket.socket) -> None:
        try:
            while len(received) < len(line):
                chunk = sock.recv(1 << 20)
                if not chunk:
                    break
                received.extend(chunk)
        except OSError as error:
            problems.append(error)

    def send(sock: socket.socket) -> None:
        try:
            for data in writes:
                sock.sendall(data)
        except OSError as error:
            problems.append(error)

    with socket.create_connection(("127.0.0.1", server.port), PATIENCE) as sock:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if since is None:
            since = {"cpu": cpuSeconds(server)}
        threads = [
            threading.Thread(target=job, args=(sock,), daemon=True)
            for job in (receive, send)
        ]
        for thread in threads:
            thread.start()
        deadline = time.monotonic() + PATIENCE
        while threads[0].is_alive():
            cost = cpuSeconds(server) - since["cpu"]
            assert cost < bound, (
                f"{cost:.2f}s of server CPU and only {len(received)} of "
                f"{len(line)} bytes echoed"
            )
            assert time.monotonic() < deadline, f"{len(received)} bytes echoed"
            threads[0].join(0.1)
        cost = cpuSeconds(server) - since["cpu"]
    assert not problems, problems
    assert len(received) == len(line), f"{len(received)} of {len(line)} bytes came back"
    assert received == line
    return cost


def test_longLineAtFullSpeed(nbechoServer: ServerFactory) -> None:
    """
    A 64 MiB line sent at full speed costs the server under 3 s of CPU.
    """
    server = nbechoServer("--max-line-length", str(70 * MiB), timeout=PATIENCE)
    line = _line(64 * MiB)
    cost = _costOf(server, line, iter([line]), bound=3.0)
    assert cost < 3.0, f"a 64 MiB line at full speed cost {cost:.2f}s of server CPU"


def test_smallReadsOfALongLine(nbechoServer: ServerFactory) -> None:
    """
    Once 16 MiB of a line are buffered, each small read still costs little:
    600 reads of 16 bytes and the echo take under 1 s of server CPU.
    """
    server = nbechoServer("--max-line-length", str(20 * MiB), timeout=PATIENCE)
    line = _line(16 * MiB + 600 * 16 + 1)
    prefix = len(line) - 600 * 16 - 1

    since = {"cpu": float("inf")}  # no bound until the prefix is in

    def writes() -> Iterator[bytes]:
        yield line[:prefix]
        since["cpu"] = _settled(server)
        for start in range(prefix, len(line) - 1, 16):
            time.sleep(0.005)  # one read each, unless the server lags
            yield line[start : start + 16]
        yield b"\n"

    cost = _costOf(server, line, writes(), bound=1.0, since=since)
    assert cost < 1.0, f"600 small reads after 16 MiB cost {cost:.2f}s of server CPU"
