"""
Hostile and broken clients against one running server, each while other
clients keep echoing: the server logs a handled event, keeps running, and
never writes a traceback or a raw control character to its log.
"""

from __future__ import annotations

import random
import socket
import threading
import time
from collections.abc import Iterator

import pytest

from tests._clients import peerOf, recvAll, recvExactly, reset, sendAndHalfClose
from tests._servers import ALL_CONNECTION_LINES, RunningServer, ServerFactory
from tests._stress import LISTEN, PATIENCE, assertHealthy, bystanders

pytestmark = pytest.mark.stress


@pytest.fixture(scope="module")
def sharedServer(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    """
    One server for the whole module: each hostile client must leave it fit
    to serve the next.
    """
    servers = ServerFactory(tmp_path_factory.mktemp("hostile"))
    try:
        server = servers(*LISTEN, *ALL_CONNECTION_LINES, timeout=PATIENCE)
        yield server
        assertHealthy(server)
        assert b"\x1b" not in server.logBytes()
        assert server.stop() == 0
    finally:
        servers.stopAll()


def _echoed(server: RunningServer, payload: bytes) -> bytes:
    """
    Send C{payload}, half-close, and read everything that comes back.
    """
    with server.connect() as sock:
        peer = peerOf(sock)
        answer = sendAndHalfClose(sock, payload)
    server.waitForLog(rf"close {peer} \(client finished sending\)")
    return answer


def test_connectAndClose(sharedServer: RunningServer) -> None:
    """
    A client that connects and closes at once is logged as closed.
    """
    with bystanders(sharedServer):
        sock = sharedServer.connect()
        peer = peerOf(sock)
        sock.close()
        sharedServer.waitForLog(rf"close {peer} \(client finished sending\)")
    assertHealthy(sharedServer)


def test_connectAndReset(sharedServer: RunningServer) -> None:
    """
    A client that connects and resets at once is logged as closed.
    """
    with bystanders(sharedServer):
        sock = sharedServer.connect()
        peer = peerOf(sock)
        reset(sock)
        sharedServer.waitForLog(rf"close {peer} \(")
    assertHealthy(sharedServer)


def test_binaryGarbage(sharedServer: RunningServer) -> None:
    """
    Random bytes come back byte for byte.
    """
    payload = random.Random(3).randbytes(4 << 20)
    with bystanders(sharedServer):
        assert _echoed(sharedServer, payload) == payload
    assertHealthy(sharedServer)


def test_invalidUtf8AndNul(sharedServer: RunningServer) -> None:
    """
    Invalid UTF-8 and NUL bytes come back unchanged and are logged escaped.
    """
    payload = b"caf\xe9 \xff\xfe\xc3\x28\n\x00\x00nul\x00\n"
    with bystanders(sharedServer):
        assert _echoed(sharedServer, payload) == payload
    log = sharedServer.logBytes()
    assert rb"caf\xe9 \xff\xfe\xc3(" in log
    assert rb"\x00\x00nul\x00" in log
    assertHealthy(sharedServer)


def test_terminalEscapes(sharedServer: RunningServer) -> None:
    """
    Terminal escape sequences come back unchanged but never reach the log raw.
    """
    payload = b"\x1b[2J\x1b]0;owned\x07\x1b[31mred\x1b[0m\r\x08\x7f\n"
    with bystanders(sharedServer):
        assert _echoed(sharedServer, payload) == payload
    log = sharedServer.logBytes()
    assert b"\x1b" not in log and b"\x07" not in log and b"\x08" not in log
    assert rb"\x1b[2J" in log
    assertHealthy(sharedServer)


def test_millionTinyLines(sharedServer: RunningServer) -> None:
    """
    One million lines in one burst all come back, in order.
    """
    payload = b"".join(b"%d\n" % (i % 10,) for i in range(1_000_000))
    with bystanders(sharedServer):
        assert _echoed(sharedServer, payload) == payload
    sharedServer.waitForLog(r"1000000 messages, 2000000 bytes in, 2000000 bytes out")
    assertHealthy(sharedServer)


def test_halfCloseWithPartialLine(sharedServer: RunningServer) -> None:
    """
    A partial line left at half-close is echoed before the server closes.
    """
    with bystanders(sharedServer):
        assert _echoed(sharedServer, b"whole\npart") == b"whole\npart"
    assertHealthy(sharedServer)


def test_resetWithOutputQueued(sharedServer: RunningServer) -> None:
    """
    A client that resets while the server still has its echoes queued is
    logged as lost, and nothing else notices.
    """
    with bystanders(sharedServer):
        sock = sharedServer.connect()
        peer = peerOf(sock)
        sock.settimeout(2)
        # Push without reading until the server stops reading from us.
        line = b"x" * 1023 + b"\n"
        try:
            for _ in range(64 << 10):
                sock.sendall(line * 64)
        except socket.timeout:
            pass
        reset(sock)
        sharedServer.waitForLog(rf"close {peer} \(")
    assertHealthy(sharedServer)


def test_slowloris(sharedServer: RunningServer) -> None:
    """
    A client sending one byte a second gets its line back, and nobody waits
    for it.
    """
    with bystanders(sharedServer) as others, sharedServer.connect() as sock:
        before = sum(other.roundTrips for other in others)
        for byte in b"slow\n":
            sock.sendall(bytes([byte]))
            time.sleep(1)
        assert recvExactly(sock, 5) == b"slow\n"
        # The others kept going while this client dawdled.
        assert sum(other.roundTrips for other in others) > before + 10
    sharedServer.waitForLog(r"Read Data 127\.0\.0\.1:\d+ slow")
    assertHealthy(sharedServer)


def test_exitAmidUnreadInput(sharedServer: RunningServer) -> None:
    """
    A client that pipelines lines, the exit word and more without reading
    still receives every echo up to the exit word: closing with unread
    input must not become a reset that drops echoes still queued.
    """
    before = b"".join(b"line %d\n" % (i,) for i in range(20_000))
    with bystanders(sharedServer), sharedServer.connect(receiveBuffer=1 << 16) as sock:
        peer = peerOf(sock)

        def send() -> None:
            try:
                sock.sendall(before + b"exit\n" + before * 4)
            except OSError:
                pass  # the server may stop listening to us after the exit word

        writer = threading.Thread(target=send, daemon=True)
        writer.start()
        # Not reading yet: the echoes wait in the server's kernel while it
        # reads the exit word and closes.  The log names the exit word, or
        # (per-message lines being rate-limited) summarises the lines it
        # held back; the server reads the rest within moments.
        sharedServer.waitForLog(
            rf"Read Data {peer}( exit|: [\d,]+ more messages? .* not logged)"
        )
        # Still not reading: the writer ends once the server has taken (or
        # refused) the rest of the input.
        writer.join(PATIENCE)
        answer = recvAll(sock)
    assert answer == before + b"exit\n"
    sharedServer.waitForLog(rf"close {peer} \(exit word\)")
    assertHealthy(sharedServer)
