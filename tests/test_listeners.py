"""
Listeners beyond the TCP burst tests: a burst on a UNIX socket, and the
dual-stack default of C{--port} shared by worker processes.

(The worker test listens on all interfaces, as the default under test does;
every connection it makes is to 127.0.0.1 or ::1.)
"""

from __future__ import annotations

import errno
import re
import socket

import pytest

from tests._clients import assertEchoes
from tests._servers import ALL_CONNECTION_LINES, ServerFactory, waitFor
from tests.test_listen_dualstack import _requireIPv6

#: Clients connecting to a UNIX socket at the same moment.
BURST = 1000


@pytest.mark.stress
def test_unixBurst(nbechoServer: ServerFactory) -> None:
    """
    A thousand non-blocking connects at once to a C{unix:} listener without
    its own C{backlog=} all find room in its queue: none is refused with
    EAGAIN (a full UNIX listen queue refuses at once instead of retrying).
    """
    server = nbechoServer("--quiet", "--listen", "unix:echo.sock")
    path = str(server.logPath.parent / "echo.sock")
    sockets = []
    refused = 0
    try:
        for _ in range(BURST):
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            sockets.append(sock)
            sock.setblocking(False)
            code = sock.connect_ex(path)
            if code == errno.EAGAIN:
                refused += 1
            else:
                assert code == 0, errno.errorcode[code]
    finally:
        for sock in sockets:
            sock.close()
    assert refused == 0, f"{refused} of {BURST} connects found the queue full"
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(server.timeout)
        sock.connect(path)
        assertEchoes(sock, b"after the burst\n")


def test_workersShareTheDualStackDefault(nbechoServer: ServerFactory) -> None:
    """
    With C{--workers 2} and no C{--interface}, every process serves IPv4 and
    IPv6 clients on the one dual-stack socket, and IPv4 clients are logged
    by their IPv4 address.
    """
    _requireIPv6()
    server = nbechoServer(
        "--port", "0", "--workers", "2", *ALL_CONNECTION_LINES, listeners=0
    )
    (ready,) = server.waitForLog(r"Ready\? nbecho listening on \[::\]:(\d+) .*IPv4")
    port = int(ready.group(1))
    server.waitForLog(r"worker 2\] Ready\? .*IPv4 and IPv6")
    for host in ("127.0.0.1", "::1") * 10:
        with socket.create_connection((host, port), server.timeout) as sock:
            assertEchoes(sock, f"from {host}\n".encode())
    waitFor(
        lambda: len(server.logLines("] close ")) == 20,
        "20 close lines",
        details=server.log,
    )
    accepted = re.findall(r"Accept (\S+)", server.log())
    assert len(accepted) == 20, accepted
    assert sum(peer.startswith("127.0.0.1:") for peer in accepted) == 10, accepted
    assert sum(peer.startswith("[::1]:") for peer in accepted) == 10, accepted
    assert "::ffff:" not in server.log()
