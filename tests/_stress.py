"""
A real C{twistd -n nbecho} process for the stress and fault tests, with what
they read from it: its log, its memory (from C{/proc/PID/status}), its exit.

Plain blocking sockets and threads drive the clients: the point is to load
the server, and a second reactor in the test process would only share its
one core with it.
"""

from __future__ import annotations

import os
import re
import resource
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import attrs

#: Upper bound for any single wait in these tests; none should come near it.
PATIENCE = 60.0

_READY = re.compile(rb"Ready\? nbecho listening on 127\.0\.0\.1:(\d+)")


def _twistd() -> str:
    return str(Path(sys.executable).with_name("twistd"))


@attrs.define
class Server:
    """
    One running server and the files it writes.
    """

    process: subprocess.Popen[bytes]
    log: Path
    port: int

    @property
    def pid(self) -> int:
        return self.process.pid

    def logText(self) -> bytes:
        return self.log.read_bytes()

    def memory(self) -> dict[str, int]:
        """
        C{VmRSS} and C{VmHWM} (peak RSS) of the server, in bytes.
        """
        figures = {}
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            name, _, value = line.partition(":")
            if name in ("VmRSS", "VmHWM"):
                figures[name] = int(value.split()[0]) * 1024
        return figures

    def resetPeak(self) -> None:
        """
        Make C{VmHWM} start again from the current RSS (Linux >= 4.0).
        """
        Path(f"/proc/{self.pid}/clear_refs").write_text("5")

    def waitForLog(self, pattern: bytes, timeout: float = PATIENCE) -> re.Match[bytes]:
        """
        Wait until a line matching C{pattern} is in the log.
        """
        regex = re.compile(pattern)
        deadline = time.monotonic() + timeout
        while True:
            found = regex.search(self.logText())
            if found:
                return found
            if self.process.poll() is not None:
                raise AssertionError(f"server exited: {self.logText()[-2000:]!r}")
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"no {pattern!r} in log: {self.logText()[-2000:]!r}"
                )
            time.sleep(0.05)

    def waitForCount(
        self, needle: bytes, count: int, timeout: float = PATIENCE
    ) -> None:
        """
        Wait until C{needle} is in the log C{count} times.
        """
        deadline = time.monotonic() + timeout
        while (found := self.logText().count(needle)) < count:
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"{needle!r} {found} times, not {count}")
            time.sleep(0.1)

    def connect(
        self, source: str = "127.0.0.1", receiveBuffer: int = 0
    ) -> socket.socket:
        """
        A new client; a small C{receiveBuffer} keeps the kernel from
        holding much of what the server sends it.
        """
        sock = socket.socket()
        try:
            if receiveBuffer:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, receiveBuffer)
            sock.settimeout(PATIENCE)
            sock.bind((source, 0))
            sock.connect(("127.0.0.1", self.port))
        except BaseException:
            sock.close()
            raise
        return sock

    def stop(self, sig: int = signal.SIGTERM) -> int:
        """
        Signal the server and return its exit status.
        """
        if self.process.poll() is None:
            self.process.send_signal(sig)
        return self.process.wait(PATIENCE)

    def assertHealthy(self) -> None:
        """
        Still running, still echoing, nothing unhandled in the log.
        """
        assert self.process.poll() is None, self.logText()[-2000:]
        echoLine(self, b"still there?")
        assert b"Traceback" not in self.logText()
        assert b"Unhandled" not in self.logText()


@contextmanager
def running(
    tmp: Path, *options: str, fileLimit: tuple[int, int] | None = None
) -> Iterator[Server]:
    """
    Run C{twistd -n nbecho} on a free loopback port with C{options}, and
    C{fileLimit} as its (soft, hard) C{RLIMIT_NOFILE} if given.
    """

    def limit() -> None:
        if fileLimit is not None:
            resource.setrlimit(resource.RLIMIT_NOFILE, fileLimit)

    log = tmp / "nbecho.log"
    # Standard output, not --logfile: twistd rotates log files at 1 MB.
    with log.open("wb") as output:
        process = subprocess.Popen(
            [
                _twistd(),
                "-n",
                "--pidfile=",
                "nbecho",
                "--listen",
                "tcp:0:interface=127.0.0.1:backlog=1024",
                *options,
            ],
            cwd=tmp,
            stdin=subprocess.DEVNULL,
            stdout=output,
            stderr=subprocess.STDOUT,
            preexec_fn=limit,
        )
    server = Server(process, log, 0)
    try:
        server.port = int(server.waitForLog(_READY.pattern).group(1))
        yield server
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(PATIENCE)


def recvExactly(sock: socket.socket, size: int) -> bytes:
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


def echoLine(server: Server, line: bytes) -> None:
    """
    One fresh client gets C{line} back.
    """
    with server.connect() as sock:
        sock.sendall(line + b"\n")
        assert recvExactly(sock, len(line) + 1) == line + b"\n"


class Bystander(threading.Thread):
    """
    Another client, echoing line after line while a test misbehaves: it
    proves that the others are still served.
    """

    def __init__(self, server: Server) -> None:
        super().__init__(daemon=True)
        self.server = server
        self.stopping = threading.Event()
        self.roundTrips = 0
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            with self.server.connect() as sock:
                # At least one round trip, however soon the test ends.
                while self.roundTrips < 100_000:
                    line = b"bystander %d\n" % (self.roundTrips,)
                    sock.sendall(line)
                    assert recvExactly(sock, len(line)) == line
                    self.roundTrips += 1
                    if self.stopping.wait(0.01):
                        break
        except BaseException as error:  # noqa: BLE001 - reported by finish()
            self.error = error

    def finish(self) -> None:
        """
        Stop, and fail unless every round trip succeeded and some happened.
        """
        self.stopping.set()
        self.join(PATIENCE)
        assert self.error is None, self.error
        assert self.roundTrips > 0


@contextmanager
def bystanders(server: Server, count: int = 2) -> Iterator[Sequence[Bystander]]:
    """
    C{count} other clients echoing during the block, checked at its end.
    """
    running = [Bystander(server) for _ in range(count)]
    for bystander in running:
        bystander.start()
    yield running
    for bystander in running:
        bystander.finish()


def peerOf(sock: socket.socket) -> bytes:
    """
    How the server's log names this client.
    """
    host, port = sock.getsockname()[:2]
    return f"{host}:{port}".encode()


def pidExists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True
