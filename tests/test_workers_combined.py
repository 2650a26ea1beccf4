"""
End-to-end tests of features that share a code path, run together: worker
processes with metrics, with each kind of listener, with the JSON log, with
the connection limits, and a worker killed from outside.

Each server is a real C{twistd -n nbecho --workers 2}; clients are plain
sockets and C{curl}.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import time
from pathlib import Path

import pytest

from tests._servers import (
    ALL_CONNECTION_LINES,
    RunningServer,
    ServerFactory,
    runTwistd,
    waitFor,
)
from tests.test_metrics import scrape, value

WORKER_STARTED = r"worker 2 started, pid (\d+)"


def _workerPid(server: RunningServer, count: int = 1) -> int:
    """
    The pid of worker 2, as the C{count}th start line gives it.
    """
    matches = server.waitForLog(WORKER_STARTED, count)
    return int(matches[count - 1].group(1))


def _accepts(server: RunningServer) -> set[str]:
    """
    Which processes have logged an C{Accept}: C{""} for twistd's own,
    C{" worker 2"} for the worker.
    """
    text = server.log()
    found = set(re.findall(r"\[nbecho#info( worker \d)?\] Accept", text))
    for line in text.splitlines():
        if line.startswith("{"):
            event = json.loads(line)
            if event.get("nbecho_event") == "accept":
                worker = event.get("worker")
                found.add(f" worker {worker}" if worker else "")
    return found


def _untilBothServe(
    connect: object,
    server: RunningServer,
    limit: int = 300,
    accept: str = r"\] Accept ",
) -> list[socket.socket]:
    """
    Open connections (held, so that a busy process leaves the next accept to
    the other) until both processes have accepted one, each checked with an
    echo; the open sockets.  It reads every connection's Accept line: the
    server must log them all (L{ALL_CONNECTION_LINES}).
    """
    held: list[socket.socket] = []
    for i in range(limit):
        sock = connect()  # type: ignore[operator]
        held.append(sock)
        line = b"client %d\n" % i
        sock.sendall(line)
        assert sock.recv(100) == line
        # A worker's lines reach the log through twistd's process: wait for
        # this connection's Accept before asking who served it.
        server.waitForLog(accept, len(held))
        if len(_accepts(server)) == 2:
            return held
    raise AssertionError(f"only {_accepts(server)} served {limit} connections")


def _closeAll(socks: list[socket.socket]) -> None:
    for sock in socks:
        sock.close()


def test_workersMetricsCountEveryProcess(nbechoServer: ServerFactory) -> None:
    """
    With workers and metrics together, every scrape is answered with metrics
    (the metrics port belongs to twistd's process alone) and the counters
    include the messages and connections every process served.
    """
    server = nbechoServer(
        "--workers",
        "2",
        "--metrics",
        "tcp:0:interface=127.0.0.1",
        *ALL_CONNECTION_LINES,
        listeners=3,
    )
    held = _untilBothServe(server.connect, server)
    connections = len(held)
    for sock in held:
        sock.sendall(b"second\n")
        assert sock.recv(100) == b"second\n"
    for _ in range(20):
        samples = scrape(server)
        assert value(samples, "nbecho_messages_total") == 2 * connections
        assert value(samples, "nbecho_connections_total") == connections
        assert value(samples, "nbecho_connections_open") == connections
    _closeAll(held)
    server.waitForLog(r"\] close ", connections)

    def allClosed() -> bool:
        return value(scrape(server), "nbecho_connections_open") == 0

    waitFor(allClosed, "every connection closed in the metrics", 30, server.log)
    assert value(scrape(server), "nbecho_messages_total") == 2 * connections
    assert server.stop() == 0
    (stopped,) = [
        line for line in server.logLines("nbecho stopped:") if "worker" not in line
    ]
    assert f"{connections} connections, {2 * connections} messages" in stopped


def test_killedWorkerIsReplaced(nbechoServer: ServerFactory) -> None:
    """
    A worker killed with SIGKILL is started again within 5 seconds and the
    new one serves clients; SIGTERM then stops every process.
    """
    server = nbechoServer("--workers", "2", *ALL_CONNECTION_LINES, listeners=2)
    first = _workerPid(server)
    os.kill(first, signal.SIGKILL)
    killed = time.monotonic()
    server.waitForLog(r"worker 2 ended unexpectedly")
    second = _workerPid(server, 2)
    server.waitForLog(r"\[nbecho#info worker 2\] Ready\? nbecho listening on", 2)
    assert time.monotonic() - killed < 5
    assert second != first
    before = server.log().count("worker 2] Accept")
    total = server.log().count("] Accept ")
    held: list[socket.socket] = []
    try:
        for i in range(300):
            sock = server.connect()
            held.append(sock)
            sock.sendall(b"again %d\n" % i)
            assert sock.recv(100) == b"again %d\n" % i
            server.waitForLog(r"\] Accept ", total + i + 1)
            if server.log().count("worker 2] Accept") > before:
                break
        else:
            raise AssertionError("the new worker never served")
    finally:
        _closeAll(held)
    assert server.stop() == 0
    assert not Path(f"/proc/{second}").exists() or _zombie(second)


def _zombie(pid: int) -> bool:
    stat = Path(f"/proc/{pid}/stat").read_text()
    return stat[stat.rindex(")") + 2] == "Z"


def _tcp6(server: RunningServer) -> socket.socket:
    sock = socket.socket(socket.AF_INET6)
    sock.settimeout(30)
    sock.connect(("::1", int(server.address("tcp6:").rsplit(":", 1)[1])))
    return sock


def _unix(path: Path) -> object:
    def connect() -> socket.socket:
        sock = socket.socket(socket.AF_UNIX)
        sock.settimeout(30)
        sock.connect(str(path))
        return sock

    return connect


@pytest.mark.parametrize("kind", ["tcp", "tcp6", "unix"])
def test_workersOnEachListenerKind(
    nbechoServer: ServerFactory, tmp_path: Path, kind: str
) -> None:
    """
    Worker processes serve every kind of listener they can share: both
    processes accept and echo on a TCP, an IPv6 and a UNIX socket.
    """
    if kind == "tcp":
        server = nbechoServer(
            "--workers",
            "2",
            "--listen",
            "tcp:0:interface=127.0.0.1",
            *ALL_CONNECTION_LINES,
            listeners=2,
        )
        connect: object = server.connect
    elif kind == "tcp6":
        server = nbechoServer(
            "--workers",
            "2",
            "--listen",
            r"tcp6:0:interface=\:\:1",
            *ALL_CONNECTION_LINES,
            listeners=2,
        )
        connect = lambda: _tcp6(server)  # noqa: E731
    else:
        path = tmp_path / "echo.sock"
        server = nbechoServer(
            "--workers",
            "2",
            "--listen",
            f"unix:{path}",
            *ALL_CONNECTION_LINES,
            listeners=2,
        )
        connect = _unix(path)
    _closeAll(_untilBothServe(connect, server))
    assert server.stop() == 0


def test_workersWithJSONLog(nbechoServer: ServerFactory) -> None:
    """
    With the JSON log, a worker's events are JSON objects like twistd's
    process's own, marked with the worker's number, and their text fields
    are formatted the same way (durations to the millisecond).
    """
    server = nbechoServer(
        "--workers", "2", "--log-format", "json", *ALL_CONNECTION_LINES, listeners=2
    )
    accept = '"nbecho_event": "accept"'
    _closeAll(_untilBothServe(server.connect, server, accept=accept))
    server.stop()
    closes = []
    for line in server.output().splitlines():
        if line.startswith("{"):
            event = json.loads(line)
            if event.get("nbecho_event") == "close":
                closes.append(event)
    workers = {event.get("worker") for event in closes}
    assert workers == {None, 2}, closes
    for event in closes:
        assert isinstance(event["duration"], float)
        assert isinstance(event["bytesIn"], int)


def test_workersTextDurations(nbechoServer: ServerFactory) -> None:
    """
    A worker's close line shows its duration to the millisecond, exactly as
    twistd's process shows its own.
    """
    server = nbechoServer("--workers", "2", *ALL_CONNECTION_LINES, listeners=2)
    _closeAll(_untilBothServe(server.connect, server))
    server.waitForLog(r"worker 2\] close ")
    for line in server.logLines("] close "):
        assert re.search(r"bytes out, \d+\.\d{3}s$", line), line


def test_workersShareTheConnectionLimit(nbechoServer: ServerFactory) -> None:
    """
    --max-connections counts for the whole server: with 2 processes and a
    limit of 4, at most 4 clients are served at once, the rest are told why.
    """
    server = nbechoServer("--workers", "2", "--max-connections", "4", listeners=2)
    held: list[socket.socket] = []
    answers = []
    try:
        for i in range(12):
            sock = server.connect()
            held.append(sock)
            sock.sendall(b"n%d\n" % i)
            answers.append(sock.recv(100))
    finally:
        _closeAll(held)
    served = [a for a in answers if a.startswith(b"n")]
    refused = [a for a in answers if a == b"error: too many connections\n"]
    assert len(served) <= 4
    assert len(served) + len(refused) == 12
    assert len(refused) >= 8


@pytest.mark.parametrize(
    "listen", ["haproxy:tcp:0:interface=127.0.0.1", "ssl:0:privateKey=k.pem"]
)
def test_workersRefuseWrappedListeners(tmp_path: Path, listen: str) -> None:
    """
    Listeners whose connections need more than the shared socket (PROXY
    headers, TLS) cannot go to workers: one usage line, exit status 1.
    """
    result = runTwistd(tmp_path, "--workers", "2", "--listen", listen)
    assert result.returncode == 1
    lines = [line for line in (result.stdout + result.stderr).splitlines() if line]
    assert len(lines) == 1, lines
    assert "--workers" in lines[0] and "Traceback" not in lines[0]
