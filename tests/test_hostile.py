"""
Hostile and broken clients against one running server, each while other
clients keep echoing: the server logs a handled event, keeps running, and
never writes a traceback or a raw control character to its log.
"""

from __future__ import annotations

import random
import socket
import struct
import threading
import time
from collections.abc import Iterator

import pytest

from tests._stress import (
    PATIENCE,
    Server,
    bystanders,
    peerOf,
    recvAll,
    recvExactly,
    running,
)

pytestmark = pytest.mark.stress


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with running(tmp_path_factory.mktemp("hostile")) as server:
        yield server
        server.assertHealthy()
        assert b"\x1b" not in server.logText()
        assert server.stop() == 0


def _echoed(server: Server, payload: bytes) -> bytes:
    """
    Send C{payload}, half-close, and read everything that comes back.
    """
    with server.connect() as sock:
        peer = peerOf(sock)

        def send() -> None:
            sock.sendall(payload)
            sock.shutdown(socket.SHUT_WR)

        writer = threading.Thread(target=send, daemon=True)
        writer.start()
        answer = recvAll(sock)
        writer.join(PATIENCE)
    server.waitForLog(rb"close " + peer + rb" \(client finished sending\)")
    return answer


def _reset(sock: socket.socket) -> None:
    """
    Close with a TCP reset instead of a FIN.
    """
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()


def test_connectAndClose(server: Server) -> None:
    """
    A client that connects and closes at once is logged as closed.
    """
    with bystanders(server):
        sock = server.connect()
        peer = peerOf(sock)
        sock.close()
        server.waitForLog(rb"close " + peer + rb" \(client finished sending\)")
    server.assertHealthy()


def test_connectAndReset(server: Server) -> None:
    """
    A client that connects and resets at once is logged as closed.
    """
    with bystanders(server):
        sock = server.connect()
        peer = peerOf(sock)
        _reset(sock)
        server.waitForLog(rb"close " + peer + rb" \(")
    server.assertHealthy()


def test_binaryGarbage(server: Server) -> None:
    """
    Random bytes come back byte for byte.
    """
    payload = random.Random(3).randbytes(4 << 20)
    with bystanders(server):
        assert _echoed(server, payload) == payload
    server.assertHealthy()


def test_invalidUtf8AndNul(server: Server) -> None:
    """
    Invalid UTF-8 and NUL bytes come back unchanged and are logged escaped.
    """
    payload = b"caf\xe9 \xff\xfe\xc3\x28\n\x00\x00nul\x00\n"
    with bystanders(server):
        assert _echoed(server, payload) == payload
    log = server.logText()
    assert rb"caf\xe9 \xff\xfe\xc3(" in log
    assert rb"\x00\x00nul\x00" in log
    server.assertHealthy()


def test_terminalEscapes(server: Server) -> None:
    """
    Terminal escape sequences come back unchanged but never reach the log raw.
    """
    payload = b"\x1b[2J\x1b]0;owned\x07\x1b[31mred\x1b[0m\r\x08\x7f\n"
    with bystanders(server):
        assert _echoed(server, payload) == payload
    log = server.logText()
    assert b"\x1b" not in log and b"\x07" not in log and b"\x08" not in log
    assert rb"\x1b[2J" in log
    server.assertHealthy()


def test_millionTinyLines(server: Server) -> None:
    """
    One million lines in one burst all come back, in order.
    """
    payload = b"".join(b"%d\n" % (i % 10,) for i in range(1_000_000))
    with bystanders(server):
        assert _echoed(server, payload) == payload
    server.waitForLog(rb"1000000 messages, 2000000 bytes in, 2000000 bytes out")
    server.assertHealthy()


def test_halfCloseWithPartialLine(server: Server) -> None:
    """
    A partial line left at half-close is echoed before the server closes.
    """
    with bystanders(server):
        assert _echoed(server, b"whole\npart") == b"whole\npart"
    server.assertHealthy()


def test_resetWithOutputQueued(server: Server) -> None:
    """
    A client that resets while the server still has its echoes queued is
    logged as lost, and nothing else notices.
    """
    with bystanders(server):
        sock = server.connect()
        peer = peerOf(sock)
        sock.settimeout(2)
        # Push without reading until the server stops reading from us.
        line = b"x" * 1023 + b"\n"
        try:
            for _ in range(64 << 10):
                sock.sendall(line * 64)
        except socket.timeout:
            pass
        _reset(sock)
        server.waitForLog(rb"close " + peer + rb" \(")
    server.assertHealthy()


def test_slowloris(server: Server) -> None:
    """
    A client sending one byte a second gets its line back, and nobody waits
    for it.
    """
    with bystanders(server) as others, server.connect() as sock:
        before = sum(other.roundTrips for other in others)
        for byte in b"slow\n":
            sock.sendall(bytes([byte]))
            time.sleep(1)
        assert recvExactly(sock, 5) == b"slow\n"
        # The others kept going while this client dawdled.
        assert sum(other.roundTrips for other in others) > before + 10
    server.waitForLog(rb"Read Data 127\.0\.0\.1:\d+ slow")
    server.assertHealthy()


def test_exitAmidUnreadInput(server: Server) -> None:
    """
    A client that pipelines lines, the exit word and more without reading
    still receives every echo up to the exit word: closing with unread
    input must not become a reset that drops echoes still queued.
    """
    before = b"".join(b"line %d\n" % (i,) for i in range(20_000))
    with bystanders(server), server.connect(receiveBuffer=1 << 16) as sock:
        peer = peerOf(sock)

        def send() -> None:
            try:
                sock.sendall(before + b"exit\n" + before * 4)
            except OSError:
                pass  # the server may stop listening to us after the exit word

        writer = threading.Thread(target=send, daemon=True)
        writer.start()
        # Not reading yet: the echoes wait in the server's kernel while it
        # reads the exit word and closes.
        server.waitForLog(rb"Read Data " + peer + rb" exit\n")
        time.sleep(0.5)
        answer = recvAll(sock)
        writer.join(PATIENCE)
    assert answer == before + b"exit\n"
    server.waitForLog(rb"close " + peer + rb" \(exit word\)")
    server.assertHealthy()
