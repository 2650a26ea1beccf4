"""
"All interfaces" means IPv6 too: by default C{twistd nbecho --port P}
serves IPv4 and IPv6 clients and its C{Ready?} line says so, while
C{--interface 0.0.0.0} keeps to IPv4.

(These two tests listen on all interfaces, as the default under test does;
every connection they make is to 127.0.0.1 or ::1.)
"""

from __future__ import annotations

import re
import socket

import pytest

from tests._clients import assertEchoes
from tests._servers import TIMEOUT, RunningServer, ServerFactory, waitFor


def _requireIPv6() -> None:
    """
    Skip (a failure in CI) on a machine without IPv6 on loopback.
    """
    try:
        with socket.socket(socket.AF_INET6) as probe:
            probe.bind(("::1", 0))
    except OSError as error:
        pytest.skip(f"no IPv6 on loopback: {error}")


def _readyPort(server: RunningServer) -> tuple[int, list[str]]:
    """
    Wait for the server's first C{Ready?} line; return its port and every
    C{Ready?} line so far.
    """
    server.waitForLog(r"Ready\? nbecho listening on ")
    ready = server.logLines("Ready? nbecho listening on ")
    match = re.search(r"listening on \S*?:(\d+)\b", ready[0])
    assert match is not None, ready
    return int(match.group(1)), ready


def _echoes(host: str, port: int) -> bool:
    """
    Whether a client on C{host} gets its message back; C{False} if refused.
    """
    try:
        sock = socket.create_connection((host, port), TIMEOUT)
    except ConnectionRefusedError:
        return False
    with sock:
        assertEchoes(sock, f"from {host}\n".encode())
    return True


def test_defaultServesIPv4AndIPv6(nbechoServer: ServerFactory) -> None:
    """
    C{--port 0} alone serves both 127.0.0.1 and ::1, and the C{Ready?}
    line(s) name both IPv4 and IPv6.
    """
    _requireIPv6()
    server = nbechoServer("--port", "0", listeners=0)
    port, _ = _readyPort(server)
    assert _echoes("127.0.0.1", port)
    # Two listening sockets may log their Ready? lines a moment apart.
    waitFor(lambda: _echoes("::1", port), "::1 to be served", 5, server.log)
    ready = " ".join(server.logLines("Ready? nbecho listening on "))
    assert "IPv4" in ready and "IPv6" in ready, ready


def test_interfaceAnyIPv4KeepsToIPv4(nbechoServer: ServerFactory) -> None:
    """
    C{--interface 0.0.0.0} serves 127.0.0.1 only: ::1 is refused.
    """
    _requireIPv6()
    server = nbechoServer("--port", "0", "--interface", "0.0.0.0", listeners=0)
    port, _ = _readyPort(server)
    assert _echoes("127.0.0.1", port)
    assert not _echoes("::1", port)
