"""
Signals as operators send them, to C{twistd -n nbecho} (as the shipped
systemd unit runs it) and to a daemon with a log file.

The rule these tests hold nbecho to (issue 9, item 3):

  - SIGUSR1 logs one line with the current totals (connections open and in
    total, messages, bytes, refusals) and changes nothing else; a daemon
    with a log file also rotates it, as twistd always has.
  - SIGHUP to a daemon with a log file reopens that file (for C{logrotate}'s
    move-then-signal), logs a line saying so and keeps serving; SIGHUP to a
    foreground server (no log file of its own) stops it like SIGTERM:
    gracefully, with the totals, exit status 0.
  - Neither signal ever kills nbecho silently (exit 129 or 138).
"""

from __future__ import annotations

import os
import re
import signal
import socket

from tests._clients import assertEchoes
from tests._daemons import LOGFILE, PIDFILE, Daemons
from tests._servers import TIMEOUT, ServerFactory, waitFor

#: Bound of the wait for a signal's effect.
SIGNAL_WAIT = 10.0


def _traffic(port: int) -> list[socket.socket]:
    """
    Three connections and five messages (15 bytes each way), the third
    connection closed: 2 connections open, 3 in total.  The open two are
    returned; the caller closes them.
    """
    sockets = [socket.create_connection(("127.0.0.1", port), TIMEOUT) for _ in "abc"]
    for sock, messages in zip(sockets, (b"a1\na2\n", b"b1\nb2\n", b"c1\n")):
        assertEchoes(sock, messages)
    sockets[2].close()
    return sockets[:2]


def _assertTotals(line: str) -> None:
    """
    Fail unless C{line} gives the totals after L{_traffic}.
    """
    assert re.search(r"\b2 connections open\b", line), line
    assert "total" in line and re.search(r"\b3\b", line), line
    assert re.search(r"\b5 messages\b", line), line
    assert re.search(r"\b15 bytes in\b", line), line
    assert re.search(r"\b15 bytes out\b", line), line
    assert "refus" in line, line


def _assertServes(port: int, held: list[socket.socket]) -> None:
    """
    Fail unless the connections C{held} open and a new one all still echo.
    """
    for sock in held:
        assertEchoes(sock, b"still open\n")
    with socket.create_connection(("127.0.0.1", port), TIMEOUT) as sock:
        assertEchoes(sock, b"new\n")


def test_sigusr1Foreground(nbechoServer: ServerFactory) -> None:
    """
    SIGUSR1 to C{twistd -n nbecho} logs one line with the current totals and
    the server keeps serving.
    """
    server = nbechoServer()
    held = _traffic(server.port)
    try:
        server.waitForLog(r"close 127\.0\.0\.1:")
        server.signal(signal.SIGUSR1)
        server.waitForLog(r"connections open", timeout=SIGNAL_WAIT)
        (line,) = server.logLines("connections open")
        _assertTotals(line)
        assert server.process.poll() is None, server.log()
        _assertServes(server.port, held)
    finally:
        for sock in held:
            sock.close()
    assert "Traceback" not in server.log()


def test_sighupForeground(nbechoServer: ServerFactory) -> None:
    """
    SIGHUP to C{twistd -n nbecho} stops it like SIGTERM: a shutdown line
    naming SIGHUP, the totals, exit status 0.
    """
    server = nbechoServer()
    with socket.create_connection(("127.0.0.1", server.port), TIMEOUT) as sock:
        assertEchoes(sock, b"before\n")
        server.signal(signal.SIGHUP)
        status = server.process.wait(TIMEOUT)
    log = server.log()
    assert status == 0, (status, log)
    assert [
        line
        for line in log.splitlines()
        if "SIGHUP" in line and "shutting down" in line
    ], log
    assert re.search(r"nbecho stopped: .*\b1 connection,.*\b1 message,", log), log
    assert "Traceback" not in log


def test_sigusr1Daemon(daemons: Daemons) -> None:
    """
    SIGUSR1 to a daemon with a log file logs one line with the current totals,
    rotates the log file (C{twistd.log.1} appears) and keeps serving.
    """
    daemons.running(twistdArgs=[f"--logfile={LOGFILE}"])
    pid, port = daemons.pid(), daemons.port()
    held = _traffic(port)
    try:
        daemons.waitForLog(r"close 127\.0\.0\.1:")
        os.kill(pid, signal.SIGUSR1)
        logs = (LOGFILE, f"{LOGFILE}.1")
        line = daemons.waitForLog(r"connections open", logs, SIGNAL_WAIT)
        _assertTotals(line)
        waitFor(
            lambda: (daemons.directory / f"{LOGFILE}.1").exists(),
            "twistd to rotate its log file",
            SIGNAL_WAIT,
        )
        assert daemons.alive(pid)
        _assertServes(port, held)
    finally:
        for sock in held:
            sock.close()
    everything = "".join(daemons.log(name) for name in logs)
    assert everything.count("connections open") == 1, everything
    assert "Traceback" not in everything


def test_sighupDaemon(daemons: Daemons) -> None:
    """
    SIGHUP to a daemon with a log file reopens the file (after logrotate has
    moved it away), logs a line saying so and keeps serving.
    """
    daemons.running(twistdArgs=[f"--logfile={LOGFILE}"])
    pid, port = daemons.pid(), daemons.port()
    directory = daemons.directory
    # An echo first: the daemon's main loop is running, its start-up done.
    with socket.create_connection(("127.0.0.1", port), TIMEOUT) as sock:
        assertEchoes(sock, b"before\n")
    daemons.waitForLog(r"close 127\.0\.0\.1:")
    (directory / LOGFILE).rename(directory / "moved.log")
    os.kill(pid, signal.SIGHUP)
    waitFor(
        lambda: (directory / LOGFILE).exists() or not daemons.alive(pid),
        "the daemon to reopen its log file",
        SIGNAL_WAIT,
    )
    assert daemons.alive(pid), daemons.log("moved.log")
    line = daemons.waitForLog(r"SIGHUP", (LOGFILE, "moved.log"), SIGNAL_WAIT)
    assert "reopen" in line.lower(), line
    assert (directory / PIDFILE).exists()
    with socket.create_connection(("127.0.0.1", port), TIMEOUT) as sock:
        assertEchoes(sock, b"after\n")
    # The new connection is logged to the reopened file, not the moved one.
    daemons.waitForLog(r"Accept 127\.0\.0\.1:", (LOGFILE,), SIGNAL_WAIT)
    assert daemons.log("moved.log").count("Accept ") == 1
