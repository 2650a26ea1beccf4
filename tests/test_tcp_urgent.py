"""
TCP urgent ("out-of-band") data, sent with C{MSG_OOB} from a Python socket
to a real C{twistd -n nbecho}: the urgent byte is not echoed, the bytes
around it are, and the connection goes on (docs/limits.rst says why).
"""

from __future__ import annotations

import socket

from tests._clients import assertEchoes, recvAll
from tests._servers import ServerFactory


def test_urgentByteNotEchoed(nbechoServer: ServerFactory) -> None:
    """
    C{abc}, an urgent C{D}, then C{ef} and a line feed come back as
    C{abcef} and a line feed; the connection echoes on afterwards.
    """
    server = nbechoServer()
    with socket.create_connection(("127.0.0.1", server.port), timeout=30) as sock:
        sock.sendall(b"abc")
        sock.send(b"D", socket.MSG_OOB)
        sock.sendall(b"ef\n")
        received = b""
        while not received.endswith(b"\n"):
            chunk = sock.recv(100)
            assert chunk, received
            received += chunk
        assert received == b"abcef\n"
        assertEchoes(sock, b"still echoing\n")
        sock.shutdown(socket.SHUT_WR)
        assert recvAll(sock) == b""
    server.waitForLog(r"Read Data 127\.0\.0\.1:\d+ abcef$")
