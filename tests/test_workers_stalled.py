"""
End-to-end tests of a worker process that stops answering for a while
(C{kill -STOP}, as a busy or swapping worker would) while Prometheus
scrapes: the server keeps every log line, every client, and fast scrapes.
"""

from __future__ import annotations

import os
import select
import signal
import socket
import subprocess
import threading
import time

import pytest

from tests._servers import ALL_CONNECTION_LINES, RunningServer, ServerFactory
from tests.test_metrics import scrape, value
from tests.test_workers_combined import _accepts, _workerPid

#: Clients held open, spread over both processes by the kernel.
CLIENTS = 40


def _connectUntilBothServe(server: RunningServer) -> list[socket.socket]:
    """
    Open L{CLIENTS} connections, more if needed (bounded), until both
    processes have accepted some; each one echoes a first line.
    """
    held: list[socket.socket] = []
    for i in range(CLIENTS * 5):
        sock = server.connect()
        held.append(sock)
        sock.sendall(b"client %d first\n" % i)
        assert sock.recv(100) == b"client %d first\n" % i
        if len(held) >= CLIENTS:
            server.waitForLog(r"\] Accept ", len(held))
            if len(_accepts(server)) == 2:
                return held
    raise AssertionError("only one process accepted connections")


def _answered(socks: list[socket.socket], within: float) -> set[int]:
    """
    The indexes of C{socks} whose pending echo arrives within C{within}
    seconds (each line is short: one recv reads it whole).
    """
    answered: set[int] = set()
    deadline = time.monotonic() + within
    byFd = {sock.fileno(): i for i, sock in enumerate(socks)}
    while len(answered) < len(socks):
        left = deadline - time.monotonic()
        if left <= 0:
            break
        ready, _, _ = select.select(
            [s for i, s in enumerate(socks) if i not in answered], [], [], left
        )
        for sock in ready:
            answered.add(byFd[sock.fileno()])
    return answered


@pytest.mark.parametrize("stall", [1.5, 5.0])
def test_stalledWorkerDuringScrapes(nbechoServer: ServerFactory, stall: float) -> None:
    """
    A worker stopped for C{stall} seconds while scrapes wait for it makes
    only its own clients wait: no traceback, every client's lines in the
    log, every client still echoing afterwards, and the next scrape fast
    with both processes' totals.
    """
    server = nbechoServer(
        "--workers",
        "2",
        "--metrics",
        "tcp:0:interface=127.0.0.1",
        *ALL_CONNECTION_LINES,
        listeners=3,
    )
    worker = _workerPid(server)
    socks = _connectUntilBothServe(server)
    count = len(socks)
    scrapes: list[float] = []
    failures: list[Exception] = []
    stop = threading.Event()

    def scraping() -> None:
        for _ in range(100):
            if stop.is_set():
                return
            started = time.monotonic()
            try:
                scrape(server)
            except (OSError, subprocess.SubprocessError) as error:
                failures.append(error)
                return
            scrapes.append(time.monotonic() - started)

    os.kill(worker, signal.SIGSTOP)
    resume = time.monotonic() + stall
    try:
        scraper = threading.Thread(target=scraping)
        scraper.start()
        for i, sock in enumerate(socks):
            sock.sendall(b"client %d during\n" % i)
        # twistd's own clients are served while the worker is stopped; the
        # worker's wait.
        early = _answered(socks, min(1.0, stall / 2))
        late = [s for i, s in enumerate(socks) if i not in early]
        assert not _answered(late, 0)
        # The stall lasts its full length, scrapes running meanwhile.
        stop.wait(max(0.0, resume - time.monotonic()))
    finally:
        os.kill(worker, signal.SIGCONT)
    stop.set()
    scraper.join(60)
    assert not failures, failures
    assert 0 < len(early) < count, "both processes should hold clients"
    for i, sock in enumerate(socks):
        sock.settimeout(30)
        assert sock.recv(100) == b"client %d during\n" % i
        sock.sendall(b"client %d after\n" % i)
        assert sock.recv(100) == b"client %d after\n" % i
    started = time.monotonic()
    samples = scrape(server)
    took = time.monotonic() - started
    assert took < 0.8, f"scrape after the stall took {took:.2f}s"
    assert value(samples, "nbecho_connections_open") == count
    assert value(samples, "nbecho_messages_total") == 3 * count
    for i in range(count):
        for word in (b"first", b"during", b"after"):
            server.waitForLog(f"Read Data .* client {i} {word.decode()}")
    for sock in socks:
        sock.close()
    server.waitForLog(r"\] close ", count)
    assert server.stop() == 0
    text = server.log()
    assert "Traceback" not in text
    assert "Unhandled Error" not in text
    print(f"stall {stall}s: scrapes during {[round(t, 2) for t in scrapes]}")
    print(f"first scrape after it: {took:.3f}s")
