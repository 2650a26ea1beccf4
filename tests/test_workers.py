"""
End-to-end tests of C{twistd -n nbecho --workers N}: real processes sharing
one listening socket, stopped together.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import NamedTuple

import pytest

from tests._servers import freePort, tool, waitFor


class Workers(NamedTuple):
    """
    A running twistd nbecho --workers 3.
    """

    server: subprocess.Popen[bytes]
    log: Path
    port: int
    pids: list[int]


TWISTD = [sys.executable, "-c", "from twisted.scripts.twistd import run; run()"]


def _waitFor(
    path: Path, pattern: str, count: int = 1, timeout: float = 60
) -> list[str]:
    """
    Wait until C{pattern} matches C{count} times in the log at C{path};
    return the matches.
    """
    found: list[str] = []

    def text() -> str:
        return path.read_text("utf-8", "replace") if path.exists() else ""

    def enough() -> bool:
        found[:] = re.findall(pattern, text())
        return len(found) >= count

    waitFor(enough, f"{pattern!r} x{count} in the log", timeout, text)
    return found


def _echoes(port: int, line: bytes) -> bool:
    """
    Whether a client gets C{line} back from C{port}; C{False} while nothing
    listens there yet.
    """
    try:
        return _echo(port, line) == line
    except ConnectionRefusedError:
        return False


def _alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat[stat.rindex(")") + 2] != "Z"


@pytest.fixture
def workers(tmp_path: Path) -> Iterator[Workers]:
    """
    A twistd nbecho with 3 processes on a free port.
    """
    log = tmp_path / "nbecho.log"
    server = subprocess.Popen(
        [
            *TWISTD,
            "-n",
            "--pidfile=",
            f"--logfile={log}",
            "nbecho",
            "--listen",
            "tcp:0:interface=127.0.0.1",
            "--workers",
            "3",
        ],
        cwd=tmp_path,
        stdin=subprocess.DEVNULL,
    )
    pids: list[int] = []
    try:
        ready = _waitFor(log, r"Ready\? nbecho listening on 127\.0\.0\.1:(\d+)", 3)
        pids = [int(p) for p in _waitFor(log, r"worker \d started, pid (\d+)", 2)]
        yield Workers(server, log, int(ready[0]), pids)
    finally:
        if server.poll() is None:
            server.kill()
            server.wait()
        for pid in pids:
            if _alive(pid):
                os.kill(pid, signal.SIGKILL)


def _echo(port: int, line: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        sock.sendall(line)
        sock.shutdown(socket.SHUT_WR)
        received = b""
        while True:
            data = sock.recv(65536)
            if not data:
                return received
            received += data


def _servedBy(log: Path, port: int, expected: int) -> set[str]:
    """
    Connect clients (held open, so that a process busy with them leaves the
    next accept to another) until C{expected} processes logged an Accept, at
    most 300; each gets its own line back.  The processes that served.
    """
    served: set[str] = set()
    held = []
    try:
        for i in range(300):
            line = b"client %d\n" % i
            sock = socket.create_connection(("127.0.0.1", port), timeout=30)
            held.append(sock)
            sock.sendall(line)
            assert sock.recv(100) == line
            text = log.read_text("utf-8", "replace")
            served = set(re.findall(r"\[nbecho#info( worker \d)?\] Accept", text))
            if len(served) == expected:
                break
    finally:
        for sock in held:
            sock.close()
    return served


def test_everyWorkerServes(workers: Workers) -> None:
    """
    Connections to the one port are served by twistd's process and by each
    worker, every client gets its own line back, and the workers' log lines
    reach twistd's log file tagged with their number.
    """
    assert _servedBy(workers.log, workers.port, 3) == {"", " worker 2", " worker 3"}
    assert _echo(workers.port, b"last\n") == b"last\n"


def test_systemdSocket(tmp_path: Path) -> None:
    """
    Under systemd socket activation (systemd-socket-activate, as
    contrib/nbecho.socket would), the socket systemd passes is served by
    twistd's process and by the worker, and SIGTERM stops both.
    """
    port = freePort()
    log = tmp_path / "nbecho.log"
    activator = subprocess.Popen(
        [
            tool("systemd-socket-activate", required=True),
            "--fdname=nbecho",
            "--listen",
            f"127.0.0.1:{port}",
            *TWISTD,
            "-n",
            "--pidfile=",
            f"--logfile={log}",
            "nbecho",
            "--listen",
            "systemd:domain=INET:index=0",
            "--workers",
            "2",
        ],
        cwd=tmp_path,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    pids: list[int] = []
    try:
        # The first client makes systemd-socket-activate start twistd.
        waitFor(lambda: _echoes(port, b"first\n"), "the first echo", 30)
        pids = [int(p) for p in _waitFor(log, r"worker \d started, pid (\d+)")]
        _waitFor(log, r"worker 2\] Ready\?")
        assert _servedBy(log, port, 2) == {"", " worker 2"}
        activator.send_signal(signal.SIGTERM)
        activator.wait(60)
        ended = _waitFor(log, r"worker \d \(pid \d+\) ended: (.*)")
        assert ended == ["exit status 0"]
    finally:
        if activator.poll() is None:
            activator.kill()
            activator.wait()
        for pid in pids:
            if _alive(pid):
                os.kill(pid, signal.SIGKILL)


def test_sigtermStopsAll(
    workers: Workers,
) -> None:
    """
    SIGTERM to twistd's process stops it and, cleanly, every worker, and
    the port is closed.
    """
    server, log, port, pids = workers
    assert _echo(port, b"before\n") == b"before\n"
    server.send_signal(signal.SIGTERM)
    server.wait(60)
    waitFor(lambda: not any(_alive(pid) for pid in pids), "every worker to end", 30)
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", port), timeout=30)
    # Each worker stopped cleanly on the SIGTERM passed on to it, not killed.
    ended = _waitFor(log, r"worker \d \(pid \d+\) ended: (.*)", 2)
    assert ended == ["exit status 0", "exit status 0"]


def test_workerStopsWithoutParent(
    workers: Workers,
) -> None:
    """
    A worker whose twistd process is killed outright stops by itself rather
    than serving on as an orphan.
    """
    server, pids = workers.server, workers.pids
    server.kill()
    server.wait(60)
    waitFor(lambda: not any(_alive(pid) for pid in pids), "every worker to end", 30)


@pytest.mark.parametrize(
    "args, message",
    [
        (["--workers", "0"], "--workers takes a number from 1 to 256"),
        (["--workers", "x"], "--workers takes a number from 1 to 256"),
        (
            ["--workers", "2", "--listen", "ssl:0:privateKey=k.pem"],
            "--workers works with tcp:, tcp6:, unix:, systemd: endpoints",
        ),
    ],
)
def test_badWorkers(tmp_path: Path, args: list[str], message: str) -> None:
    """
    A bad --workers value, or workers with an endpoint whose socket cannot be
    shared, is a one-line error and a non-zero exit.
    """
    result = subprocess.run(
        [*TWISTD, "-n", "--pidfile=", "nbecho", *args],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0
    assert message in result.stderr
    assert "Traceback" not in result.stderr


def test_limitShared() -> None:
    """
    --max-connections is the server's total: each of N processes admits its
    share, so that together they admit no more.
    """
    from twisted.scripts._twistd_unix import ServerOptions

    from nbecho.tap import makeService

    config = ServerOptions()
    config.parseOptions(
        ["-n", "nbecho", "--port", "0", "--workers", "3", "--max-connections", "10"]
    )
    service = makeService(config.subOptions)
    assert service.factory.settings.maxConnections * 3 <= 10  # type: ignore[attr-defined]
    assert service.factory.settings.maxConnections == 3  # type: ignore[attr-defined]
