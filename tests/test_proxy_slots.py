"""
A C{haproxy:} listener against clients that never send a valid PROXY header
(port scanners, HTTP requests, health checks without C{send-proxy},
truncated headers): each gives its connection slot back exactly once, counts
as open while it waits for its header, and is closed after C{--proxy-timeout}
seconds if it sends nothing.
"""

from __future__ import annotations

import random
import socket
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import pytest

from tests._clients import recvAll, reset
from tests._servers import RunningServer, ServerFactory, portOf, waitFor
from tests._stress import PATIENCE, openFiles
from tests.test_metrics import scrape, value

HAPROXY = ("--listen", "haproxy:tcp:0:interface=127.0.0.1")
PLAIN = ("--listen", "tcp:0:interface=127.0.0.1")
METRICS = ("--metrics", "tcp:0:interface=127.0.0.1")

#: A PROXY v1 header naming a client on the loopback interface.
HEADER = b"PROXY TCP4 127.0.0.1 127.0.0.1 40000 9999\r\n"

#: The PROXY v2 signature.
V2 = b"\r\n\r\n\x00\r\nQUIT\n"

#: Bad PROXY connections in one flood, and the clients sending them at once.
FLOOD = 2000
FLOODERS = 16


def _connect(port: int, timeout: float = 10.0) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    sock.settimeout(timeout)
    return sock


def _untilClosed(sock: socket.socket) -> None:
    """
    Wait (a bounded time) for the server to close, then close too.
    """
    try:
        recvAll(sock)
    except OSError:
        pass  # timed out: the checks after the flood tell what went wrong
    sock.close()


def _sendThen(payload: bytes, end: str) -> Callable[[int], None]:
    """
    A bad client: send C{payload}, then C{end} the connection: C{"wait"} for
    the server to close it, C{"halfclose"} and wait, C{"close"} or
    C{"reset"} at once.
    """

    def client(port: int) -> None:
        sock = _connect(port, timeout=5.0)
        try:
            if payload:
                sock.sendall(payload)
            if end == "halfclose":
                sock.shutdown(socket.SHUT_WR)
            if end in ("wait", "halfclose"):
                _untilClosed(sock)
            elif end == "reset":
                reset(sock)
        except OSError:
            pass  # the server may reset a refused connection first
        finally:
            sock.close()

    return client


_garbage = random.Random(8).randbytes(64)

#: Everything a port scanner, a misconfigured health check or a broken proxy
#: may do to a haproxy: listener, and each way such a connection can end.
BAD_CLIENTS = [
    _sendThen(_garbage, "wait"),
    _sendThen(b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n", "wait"),
    _sendThen(b"PROXY TCP4 127.0.0.1 127.0.0.1 12", "close"),
    _sendThen(b"PROXY TCP4 127.0.0.1 127.0.0.1 12", "halfclose"),
    _sendThen(b"", "close"),
    _sendThen(b"", "reset"),
    _sendThen(b"PRO", "halfclose"),
    _sendThen(V2 + b"\x21\x11\x00", "reset"),
    _sendThen(b"PROXY TCP4 127.0.0.1 127.0.0.1 abc 9999\r\nhello\n", "wait"),
    _sendThen(HEADER + b"hello\n", "reset"),
]


def _holdValidClients(port: int, count: int, after: str = "") -> list[socket.socket]:
    """
    Open C{count} valid PROXY clients at once; each must get its own line
    back while all are held.  The caller closes them.
    """
    held = [_connect(port) for _ in range(count)]
    try:
        for number, sock in enumerate(held):
            sock.sendall(HEADER + b"held %d\n" % (number,))
        for number, sock in enumerate(held):
            answer = sock.recv(100)
            assert answer == b"held %d\n" % (number,), (
                f"valid PROXY client {number} of {count}{after} got {answer!r}"
            )
    except BaseException:
        for sock in held:
            sock.close()
        raise
    return held


def _proxiedEcho(port: int, line: bytes = b"hello\n") -> bytes:
    """
    What a valid PROXY client that sends C{line} and half-closes gets back.
    """
    with _connect(port) as sock:
        sock.sendall(HEADER + line)
        sock.shutdown(socket.SHUT_WR)
        return recvAll(sock)


def _flood(server: RunningServer) -> None:
    """
    L{FLOOD} bad connections to the server's haproxy: listener, L{FLOODERS}
    at a time, all finished within L{PATIENCE} seconds.
    """
    port = portOf(server.address("haproxy:"))
    deadline = time.monotonic() + PATIENCE

    def one(index: int) -> None:
        if time.monotonic() < deadline:
            BAD_CLIENTS[index % len(BAD_CLIENTS)](port)

    with ThreadPoolExecutor(FLOODERS) as pool:
        list(pool.map(one, range(FLOOD)))
    assert time.monotonic() < deadline, f"{FLOOD} bad connections took too long"


@pytest.mark.stress
def test_badProxyConnectionsGiveTheirSlotsBack(nbechoServer: ServerFactory) -> None:
    """
    Thousands of connections without a valid PROXY header leave no slot, no
    open count and no file descriptor behind: all --max-connections serve.
    """
    server = nbechoServer(
        *HAPROXY, *PLAIN, *METRICS, "--max-connections", "50", timeout=PATIENCE
    )
    scrape(server)  # the metrics site's own first connection, in the baseline
    baseline = openFiles(server)
    _flood(server)
    assert server.process.poll() is None, server.log()[-3000:]

    waitFor(
        lambda: value(scrape(server), "nbecho_connections_open") == 0,
        "the metrics to say 0 connections are open",
        details=lambda: str(scrape(server)),
    )
    waitFor(
        lambda: openFiles(server) <= baseline + 2,
        f"the server's file descriptors to come back to {baseline}",
        details=lambda: f"{openFiles(server)} open",
    )
    # Every one of the 50 slots serves again, at the same time...
    port = portOf(server.address("haproxy:"))
    held = _holdValidClients(port, 50, f" after {FLOOD} bad ones")
    try:
        assert value(scrape(server), "nbecho_connections_open") == 50
        # ...and no more than 50: each bad connection gave its slot back once.
        with _connect(portOf(server.address("tcp:"))) as extra:
            assert recvAll(extra).startswith(b"error: too many connections")
    finally:
        for sock in held:
            sock.close()
    waitFor(
        lambda: value(scrape(server), "nbecho_connections_open") == 0,
        "the held connections to close",
    )
    assert _proxiedEcho(port) == b"hello\n"


def test_badProxyConnectionsGivePerPeerSlotsBack(nbechoServer: ServerFactory) -> None:
    """
    Bad PROXY connections give their --max-per-peer slot back too.
    """
    server = nbechoServer(*HAPROXY, "--max-per-peer", "5")
    port = portOf(server.address("haproxy:"))
    baseline = openFiles(server)
    for number in range(3 * len(BAD_CLIENTS)):
        BAD_CLIENTS[number % len(BAD_CLIENTS)](port)
    waitFor(
        lambda: openFiles(server) <= baseline,
        "the bad connections to be closed",
        details=lambda: f"{openFiles(server)} open, {baseline} before",
    )
    for sock in _holdValidClients(port, 5):
        sock.close()


def test_waitingForHeaderCountsAsOpen(nbechoServer: ServerFactory) -> None:
    """
    A connection still waiting for its PROXY header is an open connection in
    the metrics, and stops being one when it closes.
    """
    server = nbechoServer(*HAPROXY, *METRICS)
    port = portOf(server.address("haproxy:"))
    waiting = [_connect(port) for _ in range(10)]
    waiting[0].sendall(b"PROXY TCP4 127.0")  # half a header
    try:
        waitFor(
            lambda: value(scrape(server), "nbecho_connections_open") == 10,
            "10 connections waiting for their header to count as open",
            timeout=10,
            details=lambda: str(scrape(server)),
        )
    finally:
        for sock in waiting:
            sock.close()
    waitFor(
        lambda: value(scrape(server), "nbecho_connections_open") == 0,
        "the closed connections to count as closed",
        timeout=10,
    )


def _closedAfter(port: int, payload: bytes, patience: float) -> float:
    """
    Send C{payload} and nothing more, and return how long the server took to
    close the connection; fail if it is still open after C{patience}.
    """
    with _connect(port, timeout=patience) as sock:
        started = time.monotonic()
        if payload:
            sock.sendall(payload)
        try:
            answer = recvAll(sock)
        except TimeoutError:
            raise AssertionError(
                f"a connection that sent {payload!r} is still open after {patience}s"
            ) from None
        assert answer == b""
        return time.monotonic() - started


def test_silentConnectionTimesOut(nbechoServer: ServerFactory) -> None:
    """
    With --proxy-timeout 1, a connection that sends no header, or half of
    one, is closed after about a second and gives its slot back.
    """
    server = nbechoServer(*HAPROXY, "--proxy-timeout", "1", "--max-connections", "2")
    port = portOf(server.address("haproxy:"))
    for payload in (b"", b"PROXY TCP4 127.0.0.1 12", V2[:5], b"", b""):
        took = _closedAfter(port, payload, patience=10)
        assert 0.8 <= took < 5, f"closed after {took:.2f}s with {payload!r}"
    assert _proxiedEcho(port) == b"hello\n"
    log = server.logBytes()
    assert b"Traceback" not in log and b"Unhandled" not in log


def test_defaultProxyTimeout(nbechoServer: ServerFactory) -> None:
    """
    Without --proxy-timeout, a silent connection is closed after the
    default 5 seconds.
    """
    server = nbechoServer(*HAPROXY)
    took = _closedAfter(portOf(server.address("haproxy:")), b"", patience=15)
    assert 4.5 <= took < 12, f"closed after {took:.2f}s"
