"""
A daemon that cannot start says so and returns: C{twistd nbecho} without
C{-n}, run from a terminal in a temporary directory, whose listening
endpoint cannot be used.

The user must see, on the terminal the twistd parent writes to, one line
naming the endpoint's address and the reason; the parent must return within
a few seconds with status 1 and leave neither a pid file nor a process.
"""

from __future__ import annotations

import os
import socket
import subprocess
from pathlib import Path

from tests._daemons import DAEMON_START, PIDFILE, Daemons, DaemonStart
from tests._servers import tool, waitFor


def assertFailedStart(daemons: Daemons, result: DaemonStart, *named: str) -> None:
    """
    Fail unless C{result} is a start-up failure as the user must see it:
    status 1 within L{DAEMON_START} seconds, exactly one line on the
    terminal containing every string of C{named}, no traceback, no pid file
    and no process left behind.
    """
    assert result.returncode == 1, (result, daemons.log())
    assert result.seconds < DAEMON_START, result
    assert "Traceback" not in result.terminal, result
    lines = result.lines()
    assert len(lines) == 1, (lines, daemons.log())
    for text in named:
        assert text in lines[0], (text, lines[0])
    assert not (daemons.directory / PIDFILE).exists(), (lines, daemons.log())
    waitFor(
        lambda: not daemons.processes(),
        "no daemon left running after a failed start",
        timeout=5,
        details=lambda: repr(daemons.processes()),
    )


def test_portInUse(daemons: Daemons) -> None:
    """
    A port already in use ends the daemon's start with status 1 and one line
    saying so in words: C{port N is already in use on 127.0.0.1}.
    """
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = daemons.start("--port", str(port), "--interface", "127.0.0.1")
    assertFailedStart(
        daemons, result, f"nbecho: port {port} is already in use on 127.0.0.1"
    )


def _selfSigned(directory: Path) -> tuple[Path, Path]:
    """
    A throwaway self-signed certificate and its key, made by the real
    C{openssl}.
    """
    subprocess.run(
        [
            tool("openssl", required=True),
            *("req", "-x509", "-newkey", "ec"),
            *("-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-days", "1"),
            *("-keyout", "key.pem", "-out", "cert.pem", "-subj", "/CN=localhost"),
        ],
        cwd=directory,
        check=True,
        capture_output=True,
        timeout=60,
    )
    return directory / "cert.pem", directory / "key.pem"


def test_tlsPortInUse(daemons: Daemons) -> None:
    """
    A TLS endpoint whose port is taken fails the daemon's start like a plain
    one: status 1, one line naming the address and the reason.
    """
    certificate, key = _selfSigned(daemons.directory)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = daemons.start(
            "--listen",
            f"ssl:{port}:interface=127.0.0.1:privateKey={key}:certKey={certificate}",
        )
    assertFailedStart(
        daemons, result, f"nbecho: port {port} is already in use on 127.0.0.1"
    )


def test_badTLSFile(daemons: Daemons) -> None:
    """
    A private key file that is not a key fails the daemon's start with one
    line that names the file and says what is wrong in words.
    """
    bad = daemons.directory / "not-a-key.pem"
    bad.write_text("this is not a PEM file\n")
    result = daemons.start(
        "--listen", f"ssl:0:interface=127.0.0.1:privateKey={bad.name}"
    )
    assertFailedStart(daemons, result, bad.name)
    (line,) = result.lines()
    assert "[(" not in line, f"an OpenSSL error list, not words: {line}"


def test_unusableUnixSocketPath(daemons: Daemons) -> None:
    """
    A UNIX socket path in a directory that does not exist fails the daemon's
    start with one line naming the path and the reason in words.
    """
    path = daemons.directory / "no-such-directory" / "echo.sock"
    result = daemons.start("--listen", f"unix:{path}")
    assertFailedStart(daemons, result, str(path))
    (line,) = result.lines()
    assert "No such file or directory" in line or "does not exist" in line, line
    for jargon in ("Errno", ".lock", "->", "b'"):
        assert jargon not in line, (jargon, line)


def test_systemdSocketMissing(daemons: Daemons) -> None:
    """
    A systemd: endpoint started outside systemd (no socket inherited) fails
    the daemon's start with one line naming systemd.
    """
    env = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith("LISTEN_")
    }
    result = daemons.start("--listen", "systemd:domain=INET:index=0", env=env)
    assertFailedStart(daemons, result, "systemd")


def test_startsAndReturns(daemons: Daemons) -> None:
    """
    A daemon that can start returns 0 at once with a silent terminal, keeps
    its pid file and serves (the counterpart that keeps the failure tests
    honest).
    """
    result = daemons.running()
    assert result.lines() == [], result
    assert daemons.alive(daemons.pid())
    with socket.create_connection(("127.0.0.1", daemons.port()), 10) as sock:
        sock.sendall(b"up\n")
        assert sock.recv(10) == b"up\n"
