"""
A log file nbecho cannot write, at start and while serving, and the rotation
of a log file that is not a regular file.

The rule these tests hold nbecho to:

  - A log file that cannot be opened at start (read-only for the user
    running nbecho, or in a directory that does not exist) is one line on
    the terminal and exit status 1, before twistd forks a daemon: no
    traceback, no pid file.
  - Writes that fail while serving (a full disk; here a character device
    made like C{/dev/full}) are counted (C{nbecho_log_write_errors_total})
    and reported on standard error at most once a minute, and every client
    is still served.
  - Rotation (C{SIGUSR1}, or twistd's own at 1 MB) renames only a regular
    file: never a device node given as the log file.
"""

from __future__ import annotations

import os
import signal
import socket
import stat
import subprocess
import time
from pathlib import Path

import pytest

from tests._clients import assertEchoes, lines
from tests._servers import (
    RunningServer,
    asNobody,
    freePort,
    launch,
    script,
    twistdCommand,
    waitFor,
)
from tests.test_metrics import scrape

#: How long a start-up failure may take to reach the terminal: "at once",
#: with room for a loaded machine.
START_FAILURE = 10.0

#: The line nbecho writes, at most once a minute, when its log fails.
REPORT = "nbecho: cannot write the log to "


def _asNobody() -> list[str]:
    """
    The command prefix that runs a program as user nobody, who may read
    every file (the interpreter running these tests may live under root's
    home directory) but write only its own.
    """
    if os.geteuid() != 0:
        pytest.skip("changing to user nobody needs root")
    return asNobody(readEverything=True)


def _start(
    directory: Path, logFile: str, daemon: bool, prefix: list[str], *nbechoArgs: str
) -> tuple[subprocess.CompletedProcess[str], float]:
    """
    Run C{twistd [-n] --logfile=LOGFILE nbecho} to its end in C{directory}
    and return its result and how long it took.
    """
    twistd = [script("twistd"), "--pidfile=twistd.pid", f"--logfile={logFile}"]
    if not daemon:
        twistd.insert(1, "-n")
    command = [
        *prefix,
        *twistd,
        "nbecho",
        "--port",
        "0",
        "--interface",
        "127.0.0.1",
        *nbechoArgs,
    ]
    began = time.monotonic()
    result = subprocess.run(
        command,
        cwd=directory,
        capture_output=True,
        text=True,
        timeout=START_FAILURE * 3,
        check=False,
    )
    return result, time.monotonic() - began


def _assertOneLineFailure(
    result: subprocess.CompletedProcess[str],
    seconds: float,
    directory: Path,
    path: str,
    reason: str,
) -> None:
    terminal = result.stdout + result.stderr
    assert result.returncode == 1, terminal
    assert [line for line in terminal.splitlines() if line.strip()] == [
        f"twistd nbecho: cannot write the log file {path}: {reason} "
        "(give a writable file with twistd's --logfile)"
    ], terminal
    assert seconds < START_FAILURE, seconds
    assert not (directory / "twistd.pid").exists()


@pytest.mark.parametrize("daemon", [False, True], ids=["foreground", "daemon"])
@pytest.mark.parametrize("logFormat", ["text", "json"])
def test_readOnlyLogFile(tmp_path: Path, daemon: bool, logFormat: str) -> None:
    """
    A log file its user cannot write is one line on the terminal and exit 1
    before twistd forks, in either log format.
    """
    prefix = _asNobody()
    tmp_path.chmod(0o777)  # nobody could write a pid file, if it got that far
    readOnly = tmp_path / "read-only.log"
    readOnly.write_text("")
    readOnly.chmod(0o444)
    result, seconds = _start(
        tmp_path, str(readOnly), daemon, prefix, "--log-format", logFormat
    )
    _assertOneLineFailure(result, seconds, tmp_path, str(readOnly), "permission denied")
    assert readOnly.read_text() == ""


@pytest.mark.parametrize("daemon", [False, True], ids=["foreground", "daemon"])
def test_logFileInMissingDirectory(tmp_path: Path, daemon: bool) -> None:
    """
    A log file in a directory that does not exist is one line on the
    terminal and exit 1 before twistd forks.
    """
    result, seconds = _start(tmp_path, "missing/nbecho.log", daemon, [])
    _assertOneLineFailure(
        result, seconds, tmp_path, "missing/nbecho.log", "no such file or directory"
    )
    assert not (tmp_path / "missing").exists()


def _deviceNode(directory: Path, name: str, minor: int) -> Path:
    """
    A character device node in C{directory} made like C{/dev/full} (minor
    7) or C{/dev/null} (minor 3), so that no test ever risks the real one.
    """
    if os.geteuid() != 0:
        pytest.skip("making a device node needs root")
    node = directory / name
    os.mknod(node, 0o666 | stat.S_IFCHR, os.makedev(1, minor))
    return node


def _serveLoggingTo(directory: Path, node: Path, *nbechoArgs: str) -> RunningServer:
    """
    A foreground nbecho with metrics logging to C{node}: its C{Ready?}
    lines go there too, so it listens on free ports chosen here, and is
    ready once both answer.
    """
    port, metricsPort = freePort(), freePort()
    command = twistdCommand(
        "--port",
        str(port),
        "--interface",
        "127.0.0.1",
        "--metrics",
        f"tcp:{metricsPort}:interface=127.0.0.1",
        *nbechoArgs,
    )
    command.insert(1, f"--logfile={node}")
    # Never read the device as the log: reading /dev/full never ends.
    server = launch(directory, command, listeners=0)
    server.logPath = server.outputPath
    server.addresses = [f"127.0.0.1:{port}"]

    def listening() -> bool:
        assert server.process.poll() is None, server.output()
        for each in (port, metricsPort):
            try:
                socket.create_connection(("127.0.0.1", each), 1).close()
            except OSError:
                return False
        return True

    waitFor(listening, "the server to listen", details=server.output)
    return server


def _metricsURL(server: RunningServer) -> str:
    """
    The metrics URL of a server started by L{_serveLoggingTo}.
    """
    metricsPort = server.command[server.command.index("--metrics") + 1].split(":")[1]
    return f"http://127.0.0.1:{metricsPort}/metrics"


def _logErrors(server: RunningServer) -> float:
    """
    The C{nbecho_log_write_errors_total} that C{server} reports now.
    """
    samples = scrape(server, _metricsURL(server))
    return samples[("nbecho_log_write_errors_total", ())]


def test_fullLogFile(tmp_path: Path) -> None:
    """
    A log file whose writes fail (a disk full) costs no client anything:
    every echo arrives, the lost lines are counted in the metrics, and
    standard error says so once, not once per line.
    """
    node = _deviceNode(tmp_path, "full.log", 7)
    server = _serveLoggingTo(tmp_path, node)
    try:
        for _ in range(20):
            with server.connect() as sock:
                assertEchoes(sock, lines(5))
        waitFor(
            lambda: REPORT in server.output(),
            "the report on standard error",
            details=server.output,
        )
        first = _logErrors(server)
        assert first >= 20, first  # at least an accept and a close each
        with server.connect() as sock:
            assertEchoes(sock, lines(100))
        waitFor(
            lambda: _logErrors(server) > first,
            "the metric to count the new lines",
            details=server.output,
        )
        reports = [line for line in server.output().splitlines() if REPORT in line]
        assert len(reports) == 1, server.output()
        assert f"{REPORT}{node}: no space left on device; " in reports[0], reports
        assert "still serving" in reports[0]
    finally:
        status = server.stop()
    assert status in (0, -signal.SIGTERM), server.output()
    assert "Traceback" not in server.output()


@pytest.mark.parametrize(
    "minor, traffic",
    [(7, 10), (3, 8_000)],
    ids=["full-sigusr1", "null-past-1MB"],
)
def test_rotationLeavesDeviceNodes(tmp_path: Path, minor: int, traffic: int) -> None:
    """
    Rotation, by C{SIGUSR1} or at twistd's 1 MB, never renames a device
    node given as the log file: it stays where it was, and no C{.1} file
    appears.
    """
    node = _deviceNode(tmp_path, "device.log", minor)
    # Every message logged: 8,000 of 200 bytes write 1.9 MB of log lines.
    server = _serveLoggingTo(tmp_path, node, "--log-rate", "0", "--log-rate-total", "0")
    try:
        with server.connect() as sock:
            assertEchoes(sock, (b"x" * 199 + b"\n") * traffic)
        server.signal(signal.SIGUSR1)
        with server.connect() as sock:
            assertEchoes(sock, b"after the signal\n")
        # The SIGUSR1 totals line is written (or lost) after the rotation:
        # a scrape after it has seen the signal handled.
        scrape(server, _metricsURL(server))
        assert stat.S_ISCHR(os.lstat(node).st_mode)
        assert sorted(path.name for path in tmp_path.glob("device.log*")) == [
            "device.log"
        ]
    finally:
        server.stop()
    assert "Traceback" not in server.output()
