"""
The client side of the end-to-end tests: runs of the real C{nbecho-client},
pipes and plain blocking sockets read with a bound, so that a server that
stops answering fails the test instead of hanging the suite.

Blocking sockets and threads rather than a reactor in the test process: a
test that loads the server should not spend the shared cores on its clients.
"""

from __future__ import annotations

import os
import selectors
import shutil
import socket
import struct
import subprocess
import threading
import time
from collections.abc import Sequence
from typing import IO

import pytest

from tests._servers import TIMEOUT, script


def _clientCommand(port: int | None, clientArgs: tuple[str, ...]) -> list[str]:
    command = [script("nbecho-client")]
    if port is not None:
        command += ["--port", str(port)]
    return [*command, *clientArgs]


def runClient(
    port: int | None,
    stdin: bytes = b"",
    *clientArgs: str,
    timeout: float = TIMEOUT,
) -> subprocess.CompletedProcess[bytes]:
    """
    Run C{nbecho-client --port PORT ARGS} with C{stdin} piped in and return
    its exit status, stdout and stderr; fail if it runs past C{timeout}.

    @param port: the server port on 127.0.0.1, or C{None} to pass only
        C{clientArgs} (for C{--connect} or option errors).
    """
    return subprocess.run(
        _clientCommand(port, clientArgs),
        input=stdin,
        capture_output=True,
        timeout=timeout,
        check=False,
    )


def startClient(port: int | None, *clientArgs: str) -> subprocess.Popen[bytes]:
    """
    Start C{nbecho-client --port PORT ARGS} with pipes on stdin, stdout and
    stderr, for tests that talk to it line by line or several at once.  The
    caller ends it.

    @param port: as for L{runClient}.
    """
    return subprocess.Popen(
        _clientCommand(port, clientArgs),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )


def readLine(stream: IO[bytes], timeout: float = TIMEOUT) -> bytes:
    """
    Read one line from a pipe, failing instead of hanging after C{timeout}.
    """
    data = b""
    deadline = time.monotonic() + timeout
    with selectors.DefaultSelector() as selector:
        selector.register(stream, selectors.EVENT_READ)
        while not data.endswith(b"\n"):
            left = deadline - time.monotonic()
            if left <= 0 or not selector.select(left):
                raise AssertionError(f"no complete line after {timeout}s: {data!r}")
            chunk = os.read(stream.fileno(), 1)
            if not chunk:
                break
            data += chunk
    return data


def readToEnd(stream: IO[bytes], timeout: float = TIMEOUT) -> bytes:
    """
    Read a pipe until its writer closes it, failing instead of hanging after
    C{timeout}.
    """
    data = b""
    deadline = time.monotonic() + timeout
    with selectors.DefaultSelector() as selector:
        selector.register(stream, selectors.EVENT_READ)
        while True:
            left = deadline - time.monotonic()
            if left <= 0 or not selector.select(left):
                raise AssertionError(f"pipe still open after {timeout}s: {data!r}")
            chunk = os.read(stream.fileno(), 65536)
            if not chunk:
                return data
            data += chunk


def lines(count: int) -> bytes:
    """
    C{seq 1 COUNT} as bytes.
    """
    return b"".join(b"%d\n" % (number,) for number in range(1, count + 1))


def recvExactly(sock: socket.socket, size: int) -> bytes:
    """
    Receive C{size} bytes, or fewer if the server closes first.
    """
    chunks = []
    while size:
        chunk = sock.recv(min(size, 1 << 20))
        if not chunk:
            break
        chunks.append(chunk)
        size -= len(chunk)
    return b"".join(chunks)


def recvAll(sock: socket.socket) -> bytes:
    """
    Everything until the server closes (or resets) the connection.
    """
    chunks = []
    while True:
        try:
            chunk = sock.recv(1 << 20)
        except ConnectionResetError:
            break
        if not chunk:
            break
        chunks.append(chunk)
    return b"".join(chunks)


def assertEchoes(sock: socket.socket, data: bytes) -> None:
    """
    Send C{data} and fail unless exactly C{data} comes back, nothing more.
    """
    sock.sendall(data)
    received = b""
    while len(received) < len(data):
        chunk = sock.recv(1 << 16)
        assert chunk, f"server closed after {received!r}"
        received += chunk
    assert received == data


def peerOf(sock: socket.socket) -> str:
    """
    How the server's log names this client: C{host:port}.
    """
    host, port = sock.getsockname()[:2]
    return f"{host}:{port}"


def reset(sock: socket.socket) -> None:
    """
    Close with a TCP reset instead of a FIN.
    """
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()


def sendAndHalfClose(sock: socket.socket, payload: bytes) -> bytes:
    """
    Send C{payload} and half-close, from a thread, while reading everything
    that comes back until the server closes: a large payload never waits on
    an echo nobody reads.
    """

    def send() -> None:
        sock.sendall(payload)
        sock.shutdown(socket.SHUT_WR)

    writer = threading.Thread(target=send, daemon=True)
    writer.start()
    answer = recvAll(sock)
    writer.join(TIMEOUT)
    return answer


def loopbackOnly(command: Sequence[str]) -> list[str]:
    """
    C{command} run in a network namespace of its own with only the loopback
    interface up (C{unshare -n}, as root): a test of how the client reads its
    arguments cannot send anything off this machine, whatever it resolves.
    """
    if os.geteuid() != 0:
        pytest.skip("unshare -n needs root (the end-to-end tests run as root in CI)")
    unshare = shutil.which("unshare")
    assert unshare is not None, "unshare (util-linux) is missing"
    return [unshare, "-n", "sh", "-c", 'ip link set lo up && exec "$@"', "sh", *command]


def inNamespaceOf(pid: int, command: Sequence[str]) -> list[str]:
    """
    C{command} run in the network namespace of process C{pid} (one started
    with L{loopbackOnly}), so that it reaches the server there on loopback.
    """
    return ["nsenter", f"--net=/proc/{pid}/ns/net", *command]
