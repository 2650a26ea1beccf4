"""
Bursts of connections: a thousand clients connecting at the same moment are
all accepted at once, on every kind of TCP listener given without its own
C{backlog=}: a listen backlog too short for the burst makes the kernel drop
SYNs, and the clients retry after a second or more.
"""

from __future__ import annotations

import errno
import select
import socket
import time
from pathlib import Path

import pytest

from tests._clients import assertEchoes
from tests._servers import RunningServer, ServerFactory, portOf
from tests._stress import PATIENCE
from tests.test_tls import makePKI

pytestmark = pytest.mark.stress

#: Clients connecting at the same moment.
BURST = 1000

#: A connect that takes this long waited for a SYN to be retransmitted.
RETRY = 1.0


def _burst(host: str, port: int, family: socket.AddressFamily) -> list[float]:
    """
    Start L{BURST} non-blocking connects to C{host:port} at once and return
    how long each took to complete, slowest first.  The sockets are closed.
    """
    sockets: dict[int, socket.socket] = {}
    started: dict[int, float] = {}
    took: list[float] = []
    poller = select.epoll()
    try:
        for _ in range(BURST):
            sock = socket.socket(family, socket.SOCK_STREAM)
            sock.setblocking(False)
            sockets[sock.fileno()] = sock
            started[sock.fileno()] = time.monotonic()
            code = sock.connect_ex((host, port))
            assert code in (0, errno.EINPROGRESS), errno.errorcode[code]
            poller.register(sock.fileno(), select.EPOLLOUT)
        deadline = time.monotonic() + PATIENCE
        while len(took) < BURST and time.monotonic() < deadline:
            for fd, _ in poller.poll(1.0):
                now = time.monotonic()
                poller.unregister(fd)
                error = sockets[fd].getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
                assert error == 0, f"connect failed: {errno.errorcode[error]}"
                took.append(now - started[fd])
        assert len(took) == BURST, f"{BURST - len(took)} connects never completed"
    finally:
        poller.close()
        for sock in sockets.values():
            sock.close()
    return sorted(took, reverse=True)


def _checkBurst(server: RunningServer, prefix: str) -> None:
    """
    A burst against the listener whose description starts with C{prefix}:
    no connect waits for a retry, and the server still echoes.
    """
    address = server.address(prefix)
    host = address.rsplit(":", 1)[0].strip("[]")
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    took = _burst(host, portOf(address), family)
    slow = [t for t in took if t >= RETRY]
    assert not slow, (
        f"{len(slow)} of {BURST} simultaneous connects to {prefix} took "
        f"{RETRY:g}s or more (slowest {took[0]:.2f}s): SYNs were dropped"
    )
    assert server.process.poll() is None


def test_burstOnPort(nbechoServer: ServerFactory) -> None:
    """
    A thousand simultaneous connects to --port are accepted without a retry.
    """
    server = nbechoServer("--port", "0", "--interface", "127.0.0.1", timeout=PATIENCE)
    _checkBurst(server, "tcp:")
    with server.connect() as sock:
        assertEchoes(sock, b"after the burst\n")


@pytest.mark.parametrize(
    "description",
    [
        "tcp:0:interface=127.0.0.1",
        "tcp6:0:interface=\\:\\:1",
        "haproxy:tcp:0:interface=127.0.0.1",
        "ssl:0:privateKey=pki/key.pem:certKey=pki/cert.pem:interface=127.0.0.1",
    ],
)
def test_burstOnListen(
    nbechoServer: ServerFactory, tmp_path: Path, description: str
) -> None:
    """
    A thousand simultaneous connects to a --listen endpoint without its own
    backlog= are accepted without a retry.
    """
    if description.startswith("ssl:"):
        makePKI(tmp_path / "pki")
    server = nbechoServer("--listen", description, timeout=PATIENCE)
    _checkBurst(server, description.split(":", 1)[0] + ":")
