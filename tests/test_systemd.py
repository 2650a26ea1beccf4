"""
systemd socket activation, run for real: C{systemd-socket-activate} holds
the listening socket, starts twistd on the first connection and hands the
socket over exactly as systemd does with the units in C{contrib/}.
"""

from __future__ import annotations

import configparser
import shlex
import subprocess
from pathlib import Path

from tests._deploy import (
    CLIENT,
    TWISTD,
    Server,
    freePort,
    lines,
    runClient,
    startTwistd,
    tool,
    waitUntil,
)

CONTRIB = Path(__file__).parent.parent / "contrib"


def _unit(name: str) -> configparser.ConfigParser:
    unit = configparser.ConfigParser(strict=False, interpolation=None)
    unit.optionxform = str  # type: ignore[assignment,method-assign]
    unit.read(CONTRIB / name)
    return unit


def _activated(tmp_path: Path) -> tuple[Server, int]:
    """
    Start the command of C{contrib/nbecho.service} under
    C{systemd-socket-activate} with the socket of C{contrib/nbecho.socket},
    moved to a free loopback port.
    """
    socketUnit = _unit("nbecho.socket")["Socket"]
    execStart = shlex.split(_unit("nbecho.service")["Service"]["ExecStart"])
    assert execStart[0].endswith("/twistd"), execStart
    assert socketUnit["ListenStream"].startswith("0.0.0.0:")
    port = freePort()
    logPath = tmp_path / "nbecho.log"
    wrapper = [
        tool("systemd-socket-activate"),
        f"--fdname={socketUnit['FileDescriptorName']}",
        "--listen",
        f"127.0.0.1:{port}",
        TWISTD,
        f"--logfile={logPath}",
    ]
    server = startTwistd(tmp_path, wrapper, execStart[1:], logPath, ready=0)
    waitUntil(lambda: "Listening on" in server.output(), "systemd-socket-activate")
    return server, port


def test_activation_on_first_connection(tmp_path: Path) -> None:
    """The first client starts twistd, which adopts the socket and echoes to it."""
    server, port = _activated(tmp_path)
    try:
        assert server.ready() == {}  # nothing runs until a client comes
        result = runClient("--port", str(port), input=lines(1000))
        assert (result.stdout, result.returncode) == (lines(1000), 0), result.stderr
        second = runClient("--port", str(port), input=b"second client\nexit\n")
        assert (second.stdout, second.returncode) == (b"second client\nexit\n", 0)
        assert server.ready() == {"systemd:domain=INET:index=0": f"127.0.0.1:{port}"}
    finally:
        log = server.stop()
    assert log.count("Accept 127.0.0.1:") == 2
    assert "Read Data 127.0.0.1:" in log and "second client" in log


def test_clients_queued_before_start(tmp_path: Path) -> None:
    """Clients that connect while twistd is still starting are all served."""
    server, port = _activated(tmp_path)
    try:
        clients = [
            subprocess.Popen(
                [CLIENT, "--port", str(port)],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
            )
            for _ in range(3)
        ]
        for index, client in enumerate(clients):
            data = b"client %d\n" % (index,) * 100
            out, _ = client.communicate(data, timeout=60)
            assert (out, client.returncode) == (data, 0)
    finally:
        log = server.stop()
    assert log.count("Accept 127.0.0.1:") == 3


def test_without_systemd(tmp_path: Path) -> None:
    """Started outside socket activation, the systemd endpoint is a one-line error."""
    result = subprocess.run(
        [
            TWISTD,
            "-n",
            "--pidfile=",
            "nbecho",
            "--listen",
            "systemd:domain=INET:index=0",
        ],
        cwd=tmp_path,
        capture_output=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 1
    assert result.stderr.decode() == (
        "twistd nbecho: cannot use endpoint 'systemd:domain=INET:index=0': "
        "no socket 0 inherited from systemd (LISTEN_FDS, LISTEN_FDNAMES) "
        "(see: twistd nbecho --help)\n"
    )
