"""
C{--fault-*} and C{--greeting}: a real C{twistd nbecho} misbehaving on
purpose, seen by real clients (Python sockets, C{socat}, C{nc}), with the
metrics counting each fault by kind.
"""

from __future__ import annotations

import socket
import subprocess
import time

from tests._clients import assertEchoes, recvAll, recvExactly
from tests._servers import TIMEOUT, RunningServer, ServerFactory, tool
from tests.test_metrics import scrape, value


def roundTrip(sock: socket.socket, data: bytes) -> float:
    """
    Send C{data}, receive its echo, and return the seconds it took.
    """
    started = time.monotonic()
    sock.sendall(data)
    assert recvExactly(sock, len(data)) == data
    return time.monotonic() - started


def test_latency_never_early(nbechoServer: ServerFactory) -> None:
    """No echo comes back earlier than the latency less the jitter."""
    server = nbechoServer("--fault-latency", "0.2", "--fault-jitter", "0.05")
    with server.connect() as sock:
        times = [roundTrip(sock, b"line %d\n" % n) for n in range(5)]
    assert min(times) >= 0.15, times
    # A partial line held back, complete lines echoed: delayed all the same.
    with server.connect() as sock:
        started = time.monotonic()
        sock.sendall(b"whole\npart")
        assert recvExactly(sock, 6) == b"whole\n"
        assert time.monotonic() - started >= 0.15
    # Two chunks in flight keep their order.
    with server.connect() as sock:
        sock.sendall(b"first\n")
        sock.sendall(b"second\n")
        assert recvExactly(sock, 13) == b"first\nsecond\n"


def test_stall_then_resume_bystander_served(nbechoServer: ServerFactory) -> None:
    """A stalled connection echoes nothing for the stall, then everything;
    a connection that does not reach the stall is served meanwhile."""
    server = nbechoServer("--fault-stall", "2", "--fault-stall-after", "1000")
    payload = b"x" * 999 + b"\n"
    with server.connect() as stalled, server.connect() as bystander:
        started = time.monotonic()
        stalled.sendall(payload)
        server.waitForLog(r"Fault stall .*stalled for 2s")
        assert roundTrip(bystander, b"hello\n") < 1.5
        assert recvExactly(stalled, len(payload)) == payload
        assert time.monotonic() - started >= 2.0
        assertEchoes(stalled, b"after\n")


def test_bandwidth(nbechoServer: ServerFactory) -> None:
    """Echoes of one connection come at the bandwidth, within a wide band."""
    server = nbechoServer("--framing", "raw", "--fault-bandwidth", "20000")
    payload = b"b" * 40000
    with server.connect() as sock:
        elapsed = roundTrip(sock, payload)
    # 40000 bytes at 20000 a second, the first tenth of a second at once.
    assert 1.8 <= elapsed < 20, elapsed


def test_reset_or_clean_close(nbechoServer: ServerFactory) -> None:
    """After the first echo the client sees a reset or a clean end, as chosen."""
    reset = nbechoServer("--fault-close-after-bytes", "1", "--fault-close-how", "reset")
    with reset.connect() as sock:
        sock.sendall(b"one\n")
        assert recvExactly(sock, 4) == b"one\n"
        try:
            ending = sock.recv(100)
        except ConnectionResetError:
            ending = None
        assert ending is None
    clean = nbechoServer("--fault-close-after-bytes", "1")
    socat = subprocess.run(
        [tool("socat", required=True), "-", f"TCP:127.0.0.1:{clean.port}"],
        input=b"one\n",
        capture_output=True,
        timeout=TIMEOUT,
    )
    assert (socat.stdout, socat.returncode) == (b"one\n", 0)
    clean.waitForLog(r"Fault close .*clean close after 4 bytes")


def test_slices(nbechoServer: ServerFactory) -> None:
    """An echo arrives in pieces of the slice size, the delay apart."""
    server = nbechoServer("--fault-slice", "4", "--fault-slice-delay", "0.3")
    with server.connect() as sock:
        started = time.monotonic()
        sock.sendall(b"abcdefghij\n")
        pieces: list[bytes] = []
        while sum(map(len, pieces)) < 11:
            pieces.append(sock.recv(100))
        elapsed = time.monotonic() - started
    assert b"".join(pieces) == b"abcdefghij\n"
    assert pieces[0] == b"abcd"
    assert elapsed >= 0.6


def test_greeting_with_nc(nbechoServer: ServerFactory) -> None:
    """The greeting names host, process and listener, before byte-exact echoes."""
    server = nbechoServer("--greeting", "served by {host} pid {pid} on {listener}")
    result = subprocess.run(
        [tool("nc", required=True), "-q", "5", "127.0.0.1", str(server.port)],
        input=b"hello\n",
        capture_output=True,
        timeout=TIMEOUT,
    )
    greeting = (
        f"served by {socket.gethostname()} pid {server.pid} "
        f"on 127.0.0.1:{server.port}\n"
    ).encode()
    assert result.stdout == greeting + b"hello\n"


def test_seeded_probability_repeats(nbechoServer: ServerFactory) -> None:
    """With a seed, the same connections are reset in a second run."""

    def which(server: RunningServer) -> list[bool]:
        hit = []
        for _ in range(30):
            with server.connect() as sock:
                sock.sendall(b"x\n")
                assert recvExactly(sock, 2) == b"x\n"
                try:
                    sock.shutdown(socket.SHUT_WR)
                    hit.append(sock.recv(100) != b"")
                except OSError:  # reset already, or on the way
                    hit.append(True)
        server.stop()
        return hit

    args = (
        "--fault-close-after-bytes", "1", "--fault-close-how", "reset",
        "--fault-probability", "close=0.3", "--fault-seed", "7",
    )  # fmt: skip
    first = which(nbechoServer(*args))
    second = which(nbechoServer(*args))
    assert first == second
    assert 0 < sum(first) < 30


def test_metrics_by_kind_and_limits_hold(nbechoServer: ServerFactory) -> None:
    """Each fault counts once per connection by kind; --max-connections and
    the idle timeout still apply to a faulty connection."""
    server = nbechoServer(
        "--listen", "tcp:0:interface=127.0.0.1",
        "--metrics", "tcp:0:interface=127.0.0.1",
        "--max-connections", "1", "--idle-timeout", "2",
        "--fault-latency", "0.05", "--fault-bandwidth", "100000",
        "--fault-slice", "3", "--fault-stall", "0.2",
        "--fault-close-after-seconds", "30", "--greeting", "hi {pid}",
    )  # fmt: skip
    with server.connect() as sock:
        greeting = f"hi {server.pid}\n".encode()
        assert recvExactly(sock, len(greeting)) == greeting
        assertEchoes(sock, b"abcdefgh\n")
        with server.connect() as refused:
            assert recvAll(refused) == b"error: too many connections\n"
        samples = scrape(server)
        # Open still, and then closed by the idle timeout.
        assert recvAll(sock) == b""
    for kind in ("latency", "bandwidth", "slice", "stall"):
        assert value(samples, "nbecho_faults_total", kind=kind) == 1, kind
    assert value(samples, "nbecho_greetings_total") == 1
    assert value(samples, "nbecho_sent_bytes_total") == 9
    server.waitForLog(r"Idle timeout")
