"""
Bounded memory under load: a client that pushes and never reads, a line
that never ends, and ten thousand connections at once.
"""

from __future__ import annotations

import resource
import selectors
import socket
import threading
import time

import pytest

from tests._clients import peerOf, recvAll
from tests._servers import ALL_CONNECTION_LINES, ServerFactory
from tests._stress import (
    PATIENCE,
    assertHealthy,
    bystanders,
    echoLine,
    memory,
    resetPeak,
    stressServer,
)

MiB = 1 << 20
GiB = 1 << 30
#: How much the server's peak RSS may grow while one client misbehaves.
BOUND = 32 * MiB
LINE = 1024


def _block(number: int) -> bytes:
    """
    The C{number}th MiB of the pushed stream: numbered 1 KiB lines, so any
    byte lost, repeated or reordered shows.
    """
    first = number * (MiB // LINE)
    filler = b"%" * (LINE - 12)
    return b"".join(
        b"%010d " % (first + i) + filler + b"\n" for i in range(MiB // LINE)
    )


@pytest.mark.stress
@pytest.mark.parametrize("framing", ["line", "raw"])
def test_nonReadingPusherKeepsMemoryBounded(
    nbechoServer: ServerFactory, framing: str
) -> None:
    """
    A client pushing 1 GiB without reading stalls instead of growing the
    server, others are served meanwhile, and it gets every byte back in
    order once it reads, in either framing.
    """
    server = stressServer(nbechoServer, "--quiet", "--framing", framing)
    echoLine(server, b"warm up")
    base = memory(server)["VmRSS"]
    resetPeak(server)
    pusher = server.connect()
    sent = [0]
    failure: list[BaseException] = []

    def push() -> None:
        try:
            for number in range(GiB // MiB):
                pusher.sendall(_block(number))
                sent[0] += MiB
            pusher.shutdown(socket.SHUT_WR)
        except BaseException as error:  # noqa: BLE001 - asserted below
            failure.append(error)

    writer = threading.Thread(target=push, daemon=True)
    writer.start()
    # Wait until the push stalls: the server stopped reading from it.
    last, stalledSince = -1, time.monotonic()
    deadline = time.monotonic() + PATIENCE
    while time.monotonic() - stalledSince < 1.5 and time.monotonic() < deadline:
        time.sleep(0.1)
        if sent[0] != last:
            last, stalledSince = sent[0], time.monotonic()
    stalledAt = sent[0]
    assert 0 < stalledAt < GiB // 8, stalledAt
    with bystanders(server, 3):
        for i in range(20):
            echoLine(server, b"meanwhile %d" % (i,))
    stalled = memory(server)
    assert stalled["VmHWM"] - base < BOUND, (stalled, base)

    # Now read: everything comes back, in order, and the push completes.
    received = 0
    pending = bytearray()
    number = 0
    pusher.settimeout(PATIENCE)
    while True:
        chunk = pusher.recv(4 * MiB)
        if not chunk:
            break
        while len(pending) < len(chunk):
            pending += _block(number)
            number += 1
        assert pending[: len(chunk)] == chunk, f"mismatch after {received}"
        del pending[: len(chunk)]
        received += len(chunk)
    writer.join(PATIENCE)
    pusher.close()
    assert not failure, failure
    assert received == GiB
    peak = memory(server)["VmHWM"]
    print(
        f"\n1 GiB push ({framing}): stalled after {stalledAt / MiB:.1f} MiB; "
        f"server RSS {base / MiB:.1f} MiB before, peak {peak / MiB:.1f} MiB "
        f"(+{(peak - base) / MiB:.1f} MiB)"
    )
    assert peak - base < BOUND, (peak, base)
    assertHealthy(server)


@pytest.mark.stress
def test_endlessLineKeepsMemoryBounded(nbechoServer: ServerFactory) -> None:
    """
    100 MiB without a newline get the error line back and the connection
    closed, while the server's memory stays bounded.
    """
    server = stressServer(nbechoServer)
    echoLine(server, b"warm up")
    base = memory(server)["VmRSS"]
    resetPeak(server)
    with bystanders(server), server.connect() as sock:
        peer = peerOf(sock)

        def push() -> None:
            try:
                sock.sendall(b"A" * (100 * MiB))
            except OSError:
                pass  # the server may cut us off once it has said why

        writer = threading.Thread(target=push, daemon=True)
        writer.start()
        answer = recvAll(sock)
        writer.join(PATIENCE)
    assert answer == (
        b"error: line too long (limit 131072 bytes; raise it with --max-line-length)\n"
    )
    server.waitForLog(rf"Line too long from {peer}: \d+ bytes, limit 131072")
    server.waitForLog(rf"close {peer} \(line too long\)")
    peak = memory(server)["VmHWM"]
    print(f"\n100 MiB line: server peak RSS +{(peak - base) / MiB:.1f} MiB")
    assert peak - base < BOUND, (peak, base)
    assertHealthy(server)


CONNECTIONS = 10_000


def _raiseOwnFileLimit(wanted: int) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < wanted:
        assert hard >= wanted, f"hard RLIMIT_NOFILE {hard} < {wanted}: raise it"
        resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))


@pytest.mark.stress
def test_tenThousandConnections(nbechoServer: ServerFactory) -> None:
    """
    One server process holds 10,000 connections at once and each one gets
    its own message back.
    """
    _raiseOwnFileLimit(CONNECTIONS + 500)
    server = stressServer(nbechoServer, "--quiet", *ALL_CONNECTION_LINES)
    echoLine(server, b"warm up")
    base = memory(server)["VmRSS"]
    selector = selectors.DefaultSelector()
    socks: list[socket.socket] = []
    try:
        deadline = time.monotonic() + 2 * PATIENCE
        # Connect in batches so the listen backlog never overflows.
        for start in range(0, CONNECTIONS, 500):
            batch = []
            for _ in range(start, min(start + 500, CONNECTIONS)):
                sock = socket.socket()
                sock.setblocking(False)
                sock.connect_ex(("127.0.0.1", server.port))
                batch.append(sock)
                socks.append(sock)
            waiting = set(batch)
            for sock in batch:
                selector.register(sock, selectors.EVENT_WRITE)
            while waiting:
                assert time.monotonic() < deadline, "connecting took too long"
                for key, _ in selector.select(PATIENCE):
                    sock = key.fileobj  # type: ignore[assignment]
                    assert sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR) == 0
                    selector.unregister(sock)
                    waiting.discard(sock)
        server.waitForLog(r"\] Accept ", CONNECTIONS + 1, 2 * PATIENCE)
        idle = memory(server)["VmRSS"]

        expected = {}
        for number, sock in enumerate(socks):
            message = b"connection %d\n" % (number,)
            sock.send(message)
            expected[sock] = message
            selector.register(sock, selectors.EVENT_READ, bytearray())
        left = len(socks)
        while left:
            assert time.monotonic() < deadline, f"{left} echoes missing"
            for key, _ in selector.select(PATIENCE):
                sock = key.fileobj  # type: ignore[assignment]
                key.data.extend(sock.recv(4096))
                if len(key.data) >= len(expected[sock]):
                    assert bytes(key.data) == expected[sock]
                    selector.unregister(sock)
                    left -= 1
        after = memory(server)
        print(
            f"\nC10K: {CONNECTIONS} connections held; server RSS "
            f"{base / MiB:.1f} MiB with one, {idle / MiB:.1f} MiB idle "
            f"({(idle - base) / CONNECTIONS / 1024:.2f} KiB per connection), "
            f"{after['VmRSS'] / MiB:.1f} MiB after one echo each "
            f"({(after['VmRSS'] - base) / CONNECTIONS / 1024:.2f} KiB per "
            "connection)"
        )
    finally:
        selector.close()
        for sock in socks:
            sock.close()
    server.waitForLog(r"\] close ", CONNECTIONS + 1, 2 * PATIENCE)
    assertHealthy(server)
    assert server.stop() == 0
    assert f"nbecho stopped: {CONNECTIONS + 2} connections" in server.log()
