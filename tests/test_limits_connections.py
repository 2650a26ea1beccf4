"""
The operator's limits against a real server: connection counts, idle
timeout, graceful shutdown, and the open file limit.
"""

from __future__ import annotations

import re
import socket
import threading

import pytest

from tests._clients import assertEchoes, peerOf, recvAll, recvExactly
from tests._servers import ServerFactory, waitFor
from tests._stress import (
    PATIENCE,
    assertHealthy,
    bystanders,
    echoLine,
    stressServer,
)
from tests.test_matrix import _scrape

pytestmark = pytest.mark.stress

REFUSAL = b"error: too many connections\n"


def test_connectionLimits(nbechoServer: ServerFactory) -> None:
    """
    Connections over --max-per-peer or --max-connections read one error
    line and are closed; each refusal is logged with its peer and counted,
    and a freed slot is usable again.
    """
    server = stressServer(nbechoServer, "--max-connections", "3", "--max-per-peer", "2")
    first = server.connect()
    second = server.connect()
    assertEchoes(first, b"one\n")
    assertEchoes(second, b"two\n")
    with server.connect() as third:
        assert recvAll(third) == REFUSAL
        server.waitForLog(
            rf"Refused {peerOf(third)}: too many connections \(--max-per-peer 2\)"
        )
    # Another client IP still gets in, up to the total.
    other = server.connect("127.0.0.2")
    assertEchoes(other, b"other peer\n")
    with server.connect("127.0.0.3") as fourth:
        assert recvAll(fourth) == REFUSAL
        server.waitForLog(
            rf"Refused {peerOf(fourth)}: too many connections \(--max-connections 3\)"
        )
    # Those admitted were not disturbed; a freed slot is reused.
    assertEchoes(first, b"still one\n")
    peer = peerOf(first)
    first.close()
    server.waitForLog(rf"close {peer} ")
    with server.connect() as again:
        assertEchoes(again, b"again\n")
    for sock in (second, other):
        sock.close()
    assert server.stop() == 0
    assert re.search(
        r"nbecho stopped: 4 connections, \d+ messages?, \d+ bytes? in, \d+ bytes? "
        r"out, 2 refused, 1 by --max-connections, 1 by --max-per-peer",
        server.log(),
    ), server.log()[-1000:]
    assert server.log().count("Refused ") == 2


def test_idleTimeout(nbechoServer: ServerFactory) -> None:
    """
    A connection silent for --idle-timeout seconds is closed and logged,
    while a talking one stays.
    """
    server = stressServer(nbechoServer, "--idle-timeout", "1")
    with bystanders(server, 1):
        with server.connect() as idle:
            peer = peerOf(idle)
            assertEchoes(idle, b"then silence\n")
            assert recvAll(idle) == b""
        server.waitForLog(rf"Idle timeout {peer}: nothing received for 1s")
        server.waitForLog(rf"close {peer} \(idle timeout\)")
    assertHealthy(server)


class _Pipeliner:
    """
    A client sending numbered lines as fast as it can while reading the
    echoes in another thread, until the server closes.
    """

    def __init__(self, server_port: int, number: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", server_port), PATIENCE)
        self.number = number
        self.received = bytearray()
        self.started = threading.Event()
        self.reader = threading.Thread(target=self.read, daemon=True)
        self.writer = threading.Thread(target=self.write, daemon=True)

    def stream(self, count: int, first: int = 0) -> bytes:
        return b"".join(
            b"client %d line %d\n" % (self.number, i) for i in range(first, count)
        )

    def write(self) -> None:
        try:
            for batch in range(100_000):
                self.sock.sendall(self.stream((batch + 1) * 100, batch * 100))
                self.started.set()
        except OSError:
            pass

    def read(self) -> None:
        while True:
            try:
                chunk = self.sock.recv(1 << 16)
            except OSError:
                break
            if not chunk:
                break
            self.received += chunk
        # Let the server finish its lingering close.
        try:
            self.sock.shutdown(socket.SHUT_WR)
        except OSError:
            pass


def test_gracefulShutdown(nbechoServer: ServerFactory) -> None:
    """
    On SIGTERM, clients in the middle of pipelined traffic receive every
    byte the server read from them, partial line included; the server logs
    its totals and exits 0.
    """
    server = stressServer(nbechoServer, "--quiet")
    clients = [_Pipeliner(server.port, number) for number in range(6)]
    for client in clients:
        client.reader.start()
        client.writer.start()
    # And one whose last line is surely unfinished when the signal comes.
    partial = server.connect()
    # One send, so one read: the echo of the whole line shows that the
    # server also holds the partial one.
    partial.sendall(b"complete\npartial")
    assert recvExactly(partial, 9) == b"complete\n"
    for client in clients:
        assert client.started.wait(PATIENCE)
    # Every pipeline is flowing both ways when the signal comes.
    waitFor(
        lambda: all(len(client.received) > 1000 for client in clients),
        "every client to receive echoes",
        PATIENCE,
    )
    assert server.stop() == 0
    assert recvAll(partial) == b"partial"  # after b"complete\n"
    partial.close()
    log = server.log()
    for client in clients:
        client.reader.join(PATIENCE)
        client.writer.join(PATIENCE)
        peer = peerOf(client.sock)
        client.sock.close()
        found = re.search(
            rf"close {re.escape(peer)} \(server shutting down\): \d+ messages?, "
            r"(\d+) bytes? in, (\d+) bytes? out",
            log,
        )
        assert found, log[-2000:]
        bytesIn, bytesOut = int(found.group(1)), int(found.group(2))
        received = bytes(client.received)
        assert bytesIn > 0
        assert bytesIn == bytesOut == len(received)
        assert received == client.stream(len(received) // 10 + 100)[: len(received)]
    assert re.search(
        r"nbecho stopped: 7 connections, \d+ messages?, \d+ bytes? in, "
        r"\d+ bytes? out, 0 refused",
        log,
    )
    assert "Traceback" not in log


def test_shutdownGraceCutsNonReaders(nbechoServer: ServerFactory) -> None:
    """
    A client that never reads cannot hold a stopping server beyond
    --shutdown-grace: it is cut, and the server still exits 0.
    """
    server = stressServer(nbechoServer, "--quiet", "--shutdown-grace", "1")
    stuck = server.connect()
    stuck.settimeout(2)
    try:
        for _ in range(1 << 14):
            stuck.sendall(b"y" * 65535 + b"\n")
    except socket.timeout:
        pass
    echoLine(server, b"others still served")
    assert server.stop() == 0
    stuck.close()
    log = server.log()
    assert "Shutdown grace of 1s is over: cutting 1 connection" in log
    assert re.search(
        r"close 127\.0\.0\.1:\d+ \(server shutting down, then cut after the "
        r"shutdown grace\)",
        log,
    )
    assert "nbecho stopped: 2 connections" in log


def test_fileLimitRaisedAndWarned(nbechoServer: ServerFactory) -> None:
    """
    The server raises its soft open file limit for --max-connections, and
    warns when the hard limit leaves too little room.
    """
    server = stressServer(
        nbechoServer, "--max-connections", "200", fileLimit=(128, 1024)
    )
    server.waitForLog(r"Raised the open file limit from 128 to 264")
    assertHealthy(server)
    server = stressServer(
        nbechoServer, "--max-connections", "1000", fileLimit=(128, 512)
    )
    server.waitForLog(r"Raised the open file limit from 128 to 512")
    server.waitForLog(
        r"The open file limit 512 \(hard limit 512\) is below "
        r"--max-connections 1000: connections beyond 448 will be refused"
    )
    assertHealthy(server)


def test_outOfFileDescriptors(nbechoServer: ServerFactory) -> None:
    """
    Connections never take the descriptors the server keeps for itself:
    past the room the open file limit leaves (the limit less 64), new
    connections are refused with a log line, the connections already open
    keep echoing, and a metrics scrape still answers.
    """
    server = stressServer(
        nbechoServer,
        *("--max-connections", "0"),
        *("--metrics", "tcp:0:interface=127.0.0.1"),
        *("--log-connection-rate", "0"),
        fileLimit=(128, 128),
    )
    socks = []
    held = 0
    try:
        for _ in range(80):
            socks.append(server.connect())
        server.waitForLog(
            r"Refused 127\.0\.0\.1:\d+: too many connections "
            r"\(the open file limit leaves room for 64\)"
        )
        assertEchoes(socks[0], b"first still served\n")
        held = sum(1 for sock in socks if _stillOpen(sock))
        assert held == 64
        assert _scrape(server.metricsURL())["nbecho_connections_open"] == 64
    finally:
        for sock in socks:
            sock.close()
    # Once the held ones are closed, there is room again.
    server.waitForLog(r"\] close ", held)
    assertHealthy(server)


def _stillOpen(sock: socket.socket) -> bool:
    """
    Whether the server kept this connection: it echoes.
    """
    try:
        sock.sendall(b"?\n")
        return recvExactly(sock, 2) == b"?\n"
    except OSError:
        return False
